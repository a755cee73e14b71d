//! Image preprocessing for Qwen2-VL and Qwen2.5-VL, reproducing transformers' slow (PIL-based)
//! image processor bit for bit.
//!
//! Both model families share one processor: `Qwen2VLImageProcessor` (in transformers 5 the
//! PIL/NumPy implementation is `Qwen2VLImageProcessorPil`; the default class uses torchvision and
//! gives slightly different pixels). For a single image it
//!
//! 1. converts to RGB: images with an alpha channel (or a transparent colour) are composited onto
//!    opaque white with Pillow's integer `alpha_composite`, others are converted the way PIL's
//!    `convert("RGB")` does ([`to_rgb`]);
//! 2. picks a size whose sides are multiples of `patch_size * merge_size` and whose area lies within
//!    `[min_pixels, max_pixels]` ([`smart_resize`]);
//! 3. resizes with Pillow's bicubic filter ([`resize_bicubic`], a re-derivation of Pillow's
//!    fixed-point separable resampler, so the 8-bit result is identical; Pillow 13 changed which
//!    pass runs first in some cases, see [`PassOrder`]);
//! 4. rescales (`x as f64 * rescale_factor`, then rounded to f32) and normalises
//!    (`(x - mean) / std` in f32), the same operations and precisions as transformers' NumPy code;
//! 5. repeats the frame `temporal_patch_size` times and cuts it into flattened patches in the order
//!    the vision tower expects ([`preprocess`]).
//!
//! The golden tests at the bottom compare against fixtures written by
//! `tests/fixtures/generate_processor.py` with Pillow 13 and transformers 5.24: the resize and the
//! final `pixel_values` are bit-exact there.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// CLIP's per-channel mean, the default `image_mean` of Qwen's processor.
pub const OPENAI_CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// CLIP's per-channel standard deviation, the default `image_std` of Qwen's processor.
#[allow(clippy::excessive_precision)] // written as transformers writes it; rounds to the same f32
pub const OPENAI_CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];
/// transformers' default lower bound on the resized area (`56 * 56`).
pub const DEFAULT_MIN_PIXELS: usize = 56 * 56;
/// transformers' default upper bound on the resized area (`28 * 28 * 1280`). The Hub configs of
/// Qwen2-VL and Qwen2.5-VL override it with `max_pixels: 12845056`.
pub const DEFAULT_MAX_PIXELS: usize = 28 * 28 * 1280;
/// transformers refuses images whose longer side is more than this many times the shorter one.
pub const MAX_ASPECT_RATIO: f64 = 200.0;

/// PIL's resampling code for bicubic, the only filter Qwen's processor uses.
const PIL_BICUBIC: u64 = 3;

/// The settings of `preprocessor_config.json` that change the pixels.
///
/// `Default` gives the class defaults of transformers' `Qwen2VLImageProcessor`, which are what a
/// config file gets for any key it leaves out. Note that the Hub configs of Qwen2-VL and Qwen2.5-VL
/// set `max_pixels` to 12845056 rather than the class default 1003520.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageProcessorConfig {
    /// Lower bound on the resized area (transformers 5: `size.shortest_edge`).
    pub min_pixels: usize,
    /// Upper bound on the resized area (transformers 5: `size.longest_edge`).
    pub max_pixels: usize,
    /// Side of a square vision patch, in pixels.
    pub patch_size: usize,
    /// Frames per temporal patch; a still image is repeated this many times.
    pub temporal_patch_size: usize,
    /// Side of the square of patches merged into one language-model token.
    pub merge_size: usize,
    pub image_mean: [f32; 3],
    pub image_std: [f32; 3],
    /// Multiplier applied to the 0..=255 pixel values (Python float, 1/255 by default).
    pub rescale_factor: f64,
    pub do_resize: bool,
    pub do_rescale: bool,
    pub do_normalize: bool,
    pub do_convert_rgb: bool,
}

impl Default for ImageProcessorConfig {
    fn default() -> Self {
        Self {
            min_pixels: DEFAULT_MIN_PIXELS,
            max_pixels: DEFAULT_MAX_PIXELS,
            patch_size: 14,
            temporal_patch_size: 2,
            merge_size: 2,
            image_mean: OPENAI_CLIP_MEAN,
            image_std: OPENAI_CLIP_STD,
            rescale_factor: 1.0 / 255.0,
            do_resize: true,
            do_rescale: true,
            do_normalize: true,
            do_convert_rgb: true,
        }
    }
}

impl ImageProcessorConfig {
    /// Reads `preprocessor_config.json` from disk; see [`Self::from_json_str`].
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound {
                what: "preprocessor config",
                path: path.to_path_buf(),
                hint: "check the checkpoint directory; it should contain preprocessor_config.json"
                    .into(),
            },
            _ => Error::Io {
                path: path.to_path_buf(),
                source: e,
            },
        })?;
        Self::from_json_str(&text, path)
    }

    /// Parses the text of a `preprocessor_config.json`; `path` is only used in error messages.
    ///
    /// Both layouts are accepted: the Hub one (`min_pixels` / `max_pixels` at the top level) and
    /// the transformers 5 one (`size: {"shortest_edge": min, "longest_edge": max}`). As in
    /// transformers, a top-level `min_pixels` / `max_pixels` wins over the matching `size` entry.
    /// `size: {"min_pixels", "max_pixels"}` (older saves) is read as well, although transformers
    /// 5.24 rejects it. Missing keys and `null` values take the class defaults ([`Default`]);
    /// unknown keys are ignored; a key of the wrong type is an error naming it. `resample`, if
    /// present, must be 3 (bicubic), the only filter implemented here.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            Error::config(
                path,
                format!("not valid JSON ({e}); fix or re-download the file"),
            )
        })?;
        let Value::Object(obj) = value else {
            return Err(Error::config(
                path,
                "expected a JSON object at the top level; fix or re-download the file",
            ));
        };
        let p = JsonFields {
            obj: &obj,
            path,
            prefix: "",
        };
        let mut cfg = Self::default();

        // Area bounds: top-level keys win over `size`, as in Qwen2VLImageProcessor.__init__.
        let size_min;
        let size_max;
        match obj.get("size") {
            None | Some(Value::Null) => {
                size_min = None;
                size_max = None;
            }
            Some(Value::Object(size)) => {
                let s = JsonFields {
                    obj: size,
                    path,
                    prefix: "size.",
                };
                size_min = s.usize("shortest_edge")?.or(s.usize("min_pixels")?);
                size_max = s.usize("longest_edge")?.or(s.usize("max_pixels")?);
            }
            Some(other) => {
                return Err(Error::config(
                    path,
                    format!(
                    "`size` must be an object like {{\"shortest_edge\": 3136, \"longest_edge\": \
                         12845056}}, got {}; fix the value",
                    brief(other)
                ),
                ))
            }
        }
        let has_size = matches!(obj.get("size"), Some(Value::Object(_)));
        let min_pixels = p.usize("min_pixels")?.or(size_min);
        let max_pixels = p.usize("max_pixels")?.or(size_max);
        match (min_pixels, max_pixels) {
            (Some(lo), Some(hi)) => {
                cfg.min_pixels = lo;
                cfg.max_pixels = hi;
            }
            (None, None) if !has_size => {}
            (lo, hi) if !has_size => {
                // Only one top-level bound: the other keeps its class default.
                cfg.min_pixels = lo.unwrap_or(cfg.min_pixels);
                cfg.max_pixels = hi.unwrap_or(cfg.max_pixels);
            }
            (lo, _) => {
                let missing = if lo.is_none() {
                    "shortest_edge"
                } else {
                    "longest_edge"
                };
                return Err(Error::config(
                    path,
                    format!(
                        "`size` has no `{missing}` (and there is no top-level `{}`), so the \
                         resize bounds are incomplete; add it",
                        if lo.is_none() {
                            "min_pixels"
                        } else {
                            "max_pixels"
                        }
                    ),
                ));
            }
        }

        if let Some(v) = p.usize("patch_size")? {
            cfg.patch_size = v;
        }
        if let Some(v) = p.usize("temporal_patch_size")? {
            cfg.temporal_patch_size = v;
        }
        if let Some(v) = p.usize("merge_size")? {
            cfg.merge_size = v;
        }
        if let Some(v) = p.triple("image_mean")? {
            cfg.image_mean = v;
        }
        if let Some(v) = p.triple("image_std")? {
            cfg.image_std = v;
        }
        if let Some(v) = p.f64("rescale_factor")? {
            cfg.rescale_factor = v;
        }
        if let Some(v) = p.bool("do_resize")? {
            cfg.do_resize = v;
        }
        if let Some(v) = p.bool("do_rescale")? {
            cfg.do_rescale = v;
        }
        if let Some(v) = p.bool("do_normalize")? {
            cfg.do_normalize = v;
        }
        if let Some(v) = p.bool("do_convert_rgb")? {
            cfg.do_convert_rgb = v;
        }
        if let Some(v) = obj.get("resample").filter(|v| !v.is_null()) {
            if v.as_u64() != Some(PIL_BICUBIC) {
                return Err(Error::config(
                    path,
                    format!(
                        "`resample` is {}, but only 3 (bicubic, Qwen's setting) is implemented; \
                         remove the key or set it to 3",
                        brief(v)
                    ),
                ));
            }
        }

        cfg.validate().map_err(|msg| Error::config(path, msg))?;
        Ok(cfg)
    }

    /// The side length that resized images are a multiple of: `patch_size * merge_size`.
    pub fn factor(&self) -> usize {
        self.patch_size * self.merge_size
    }

    /// Checks the values transformers would fail on later (or silently misuse).
    fn validate(&self) -> std::result::Result<(), String> {
        for (key, v) in [
            ("patch_size", self.patch_size),
            ("temporal_patch_size", self.temporal_patch_size),
            ("merge_size", self.merge_size),
        ] {
            if v == 0 {
                return Err(format!(
                    "`{key}` is 0; it must be at least 1 (Qwen uses 14/2/2)"
                ));
            }
        }
        if self.do_resize && (self.min_pixels == 0 || self.max_pixels == 0) {
            return Err(format!(
                "min_pixels ({}) and max_pixels ({}) must both be positive when do_resize is true \
                 (transformers rejects 0 too); fix the values",
                self.min_pixels, self.max_pixels
            ));
        }
        if !self.rescale_factor.is_finite() {
            return Err(format!(
                "`rescale_factor` is {}; it must be a finite number such as 1/255",
                self.rescale_factor
            ));
        }
        Ok(())
    }
}

/// Typed access to the fields of one JSON object, with errors that name the key.
struct JsonFields<'a> {
    obj: &'a Map<String, Value>,
    path: &'a Path,
    prefix: &'static str,
}

impl JsonFields<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    fn wrong(&self, key: &str, expected: &str, got: &Value) -> Error {
        Error::config(
            self.path,
            format!(
                "`{}{key}` must be {expected}, got {}; fix the value",
                self.prefix,
                brief(got)
            ),
        )
    }

    fn usize(&self, key: &str) -> Result<Option<usize>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| self.wrong(key, "a non-negative integer", v)),
        }
    }

    fn f64(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "a number", v)),
        }
    }

    fn bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "true or false", v)),
        }
    }

    /// A per-channel value: a list of three numbers, or one number used for every channel.
    fn triple(&self, key: &str) -> Result<Option<[f32; 3]>> {
        let expected = "a list of 3 numbers (one per RGB channel) or a single number";
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => {
                let x = n
                    .as_f64()
                    .ok_or_else(|| self.wrong(key, expected, &Value::Number(n.clone())))?;
                Ok(Some([x as f32; 3]))
            }
            Some(v @ Value::Array(items)) if items.len() == 3 => {
                let mut out = [0f32; 3];
                for (o, item) in out.iter_mut().zip(items) {
                    // Python keeps floats as f64 and NumPy rounds them to f32 once.
                    *o = item.as_f64().ok_or_else(|| self.wrong(key, expected, v))? as f32;
                }
                Ok(Some(out))
            }
            Some(v) => Err(self.wrong(key, expected, v)),
        }
    }
}

/// A short rendering of a JSON value for error messages.
fn brief(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}...", s.chars().take(57).collect::<String>())
    } else {
        s
    }
}

/// transformers' `smart_resize`: the `(height, width)` an image is resized to.
///
/// Both sides become multiples of `factor` (rounded to the nearest multiple, ties to even, as
/// Python's `round`); if the area then exceeds `max_pixels` the image is scaled down (sides
/// floored), if it falls below `min_pixels` it is scaled up (sides ceiled), keeping the aspect
/// ratio. The floating-point steps are the same as Python's, so the result is identical.
///
/// Errors: a zero side or factor, an aspect ratio over 200 (transformers raises too), and a result
/// with a zero side (possible only with `min_pixels == 0`; transformers returns it and fails when
/// resizing). Sides smaller than `factor` are fine, as in transformers 5.24: they are scaled up.
pub fn smart_resize(
    height: usize,
    width: usize,
    factor: usize,
    min_pixels: usize,
    max_pixels: usize,
) -> Result<(usize, usize)> {
    if height == 0 || width == 0 {
        return Err(Error::invalid(format!(
            "cannot resize a {width}x{height} image: both sides must be at least 1 pixel"
        )));
    }
    if factor == 0 {
        return Err(Error::invalid(
            "smart_resize factor is 0; patch_size and merge_size must be at least 1",
        ));
    }
    let (hf, wf, ff) = (height as f64, width as f64, factor as f64);
    let ratio = hf.max(wf) / hf.min(wf);
    if ratio > MAX_ASPECT_RATIO {
        return Err(Error::invalid(format!(
            "size {width}x{height} has an aspect ratio of {ratio:.1}, over the limit of \
             {MAX_ASPECT_RATIO} in Qwen's processor; crop or pad the image"
        )));
    }
    let area = |h: usize, w: usize| (h as u128) * (w as u128);
    let mut h_bar = (hf / ff).round_ties_even() as usize * factor;
    let mut w_bar = (wf / ff).round_ties_even() as usize * factor;
    // Python divides the exact integer product; it is exact in f64 below 2^53.
    let hw = area(height, width) as f64;
    if area(h_bar, w_bar) > max_pixels as u128 {
        let beta = (hw / max_pixels as f64).sqrt();
        h_bar = factor.max((hf / beta / ff).floor() as usize * factor);
        w_bar = factor.max((wf / beta / ff).floor() as usize * factor);
    } else if area(h_bar, w_bar) < min_pixels as u128 {
        let beta = (min_pixels as f64 / hw).sqrt();
        h_bar = (hf * beta / ff).ceil() as usize * factor;
        w_bar = (wf * beta / ff).ceil() as usize * factor;
    }
    if h_bar == 0 || w_bar == 0 {
        return Err(Error::invalid(format!(
            "a {width}x{height} image resizes to {w_bar}x{h_bar}, which is empty; set min_pixels \
             to at least 1 (Qwen uses 3136)"
        )));
    }
    Ok((h_bar, w_bar))
}

// ---------------------------------------------------------------------------------------------
// Pillow-compatible bicubic resampling.
//
// Pillow resizes in two separable passes (horizontal then vertical, or the reverse: see
// `PassOrder`), each a 1-D convolution whose kernel is the cubic convolution kernel (a = -0.5)
// stretched by the downscale factor (so downscaling averages, i.e. antialiases). For every output
// position the window of input samples and its weights are computed in f64, normalised to sum to
// 1, and converted to fixed point with 22 fractional bits; 8-bit pixels are then accumulated in
// i32 starting from one half, shifted back and clamped to 0..=255 after each pass. A pass is
// skipped when its dimension is unchanged.

/// Fractional bits of the fixed-point weights (32 bits minus 8 for the pixel, minus 2 for the
/// kernel's overshoot and the sign).
const PRECISION_BITS: u32 = 32 - 8 - 2;
/// Support (half-width) of the cubic kernel at scale 1.
const BICUBIC_SUPPORT: f64 = 2.0;

/// The cubic convolution kernel with a = -0.5, evaluated with Pillow's operation order.
fn bicubic_kernel(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Fixed-point resampling weights for one axis.
struct AxisWeights {
    /// Per output position: first input index and number of inputs used.
    bounds: Vec<(usize, usize)>,
    /// Per output position, `ksize` slots of which the first `bounds[i].1` are used.
    weights: Vec<i32>,
    ksize: usize,
}

impl AxisWeights {
    fn new(in_size: usize, out_size: usize) -> Self {
        // Pillow takes the source extent from a float box; sizes are exact in f32 up to 2^24.
        let scale = (in_size as f32) as f64 / out_size as f64;
        let filterscale = if scale < 1.0 { 1.0 } else { scale };
        let support = BICUBIC_SUPPORT * filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let inv = 1.0 / filterscale;
        let mut bounds = Vec::with_capacity(out_size);
        let mut weights = vec![0i32; out_size * ksize];
        let mut k = vec![0f64; ksize];
        for (xx, slot) in weights.chunks_exact_mut(ksize).enumerate() {
            let center = (xx as f64 + 0.5) * scale;
            // `as i64` truncates toward zero like C's (int) cast.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
            let n = (xmax - xmin).max(0) as usize;
            let mut total = 0.0;
            for (x, kx) in k[..n].iter_mut().enumerate() {
                let w = bicubic_kernel(((x as i64 + xmin) as f64 - center + 0.5) * inv);
                *kx = w;
                total += w;
            }
            let one = (1i64 << PRECISION_BITS) as f64;
            for (s, &kx) in slot.iter_mut().zip(&k[..n]) {
                let kx = if total != 0.0 { kx / total } else { kx };
                *s = if kx < 0.0 {
                    (-0.5 + kx * one) as i32
                } else {
                    (0.5 + kx * one) as i32
                };
            }
            bounds.push((xmin as usize, n));
        }
        Self {
            bounds,
            weights,
            ksize,
        }
    }

    fn window(&self, i: usize) -> (usize, &[i32]) {
        let (start, n) = self.bounds[i];
        (start, &self.weights[i * self.ksize..i * self.ksize + n])
    }
}

/// Rounds a fixed-point accumulator back to a byte, clamping like Pillow's lookup table.
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Which of the two passes Pillow runs first when both dimensions change.
///
/// Pillow up to 12 always resampled horizontally first. Pillow 13 (python-pillow/Pillow#9549) runs
/// the vertical pass first when the height loses more than twice as many pixels as the width
/// (`in_h - out_h > 2 * max(in_w - out_w, 0)`), which includes every "width up, height down"
/// resize. The intermediate image is rounded to 8 bits, so the order changes the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PassOrder {
    /// Pillow 13's rule (the Pillow that transformers 5.24 was checked against here).
    #[default]
    Pillow13,
    /// Always horizontal first, as Pillow 12 and earlier.
    HorizontalFirst,
}

impl PassOrder {
    fn vertical_first(self, in_w: usize, in_h: usize, out_w: usize, out_h: usize) -> bool {
        match self {
            PassOrder::HorizontalFirst => false,
            PassOrder::Pillow13 => 2 * in_w.saturating_sub(out_w) < in_h.saturating_sub(out_h),
        }
    }
}

/// Resizes an 8-bit RGB image exactly as Pillow 13's `Image.resize((width, height),
/// Image.BICUBIC)` does; see [`resize_bicubic_with`] for Pillow 12 and earlier.
///
/// Same size returns a copy (Pillow does too). A zero `width` or `height` gives an empty image
/// (Pillow raises instead).
pub fn resize_bicubic(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    resize_bicubic_with(img, width, height, PassOrder::Pillow13)
}

/// [`resize_bicubic`] with an explicit choice of which pass runs first when both sides change.
pub fn resize_bicubic_with(img: &RgbImage, width: u32, height: u32, order: PassOrder) -> RgbImage {
    let (in_w, in_h) = (img.width() as usize, img.height() as usize);
    let (out_w, out_h) = (width as usize, height as usize);
    if out_w == 0 || out_h == 0 {
        return RgbImage::new(width, height);
    }
    let need_horizontal = out_w != in_w;
    let need_vertical = out_h != in_h;
    let src = img.as_raw().as_slice();
    let pixels = match (need_horizontal, need_vertical) {
        (false, false) => return img.clone(),
        (true, false) => horizontal_pass(src, in_w, 0..in_h, &AxisWeights::new(in_w, out_w)),
        (false, true) => vertical_pass(src, in_w, 0, &AxisWeights::new(in_h, out_h)),
        (true, true) if order.vertical_first(in_w, in_h, out_w, out_h) => {
            let tmp = vertical_pass(src, in_w, 0, &AxisWeights::new(in_h, out_h));
            horizontal_pass(&tmp, in_w, 0..out_h, &AxisWeights::new(in_w, out_w))
        }
        (true, true) => {
            let vert = AxisWeights::new(in_h, out_h);
            // Only the source rows the vertical pass reads go through the horizontal pass.
            let first = vert.bounds[0].0;
            let (s, n) = vert.bounds[out_h - 1];
            let tmp = horizontal_pass(src, in_w, first..s + n, &AxisWeights::new(in_w, out_w));
            vertical_pass(&tmp, out_w, first, &vert)
        }
    };
    RgbImage::from_raw(width, height, pixels).expect("resampling produces width*height*3 bytes")
}

/// Resamples rows `rows` of an interleaved RGB image `in_w` pixels wide to the width of `weights`.
fn horizontal_pass(
    src: &[u8],
    in_w: usize,
    rows: std::ops::Range<usize>,
    weights: &AxisWeights,
) -> Vec<u8> {
    let out_w = weights.bounds.len();
    let mut out = vec![0u8; rows.len() * out_w * 3];
    for (out_row, y) in out.chunks_exact_mut(out_w * 3).zip(rows) {
        let in_row = &src[y * in_w * 3..(y + 1) * in_w * 3];
        for (xx, px) in out_row.chunks_exact_mut(3).enumerate() {
            let (start, k) = weights.window(xx);
            let mut acc = [1i32 << (PRECISION_BITS - 1); 3];
            for (p, &w) in in_row[start * 3..].chunks_exact(3).zip(k) {
                acc[0] += p[0] as i32 * w;
                acc[1] += p[1] as i32 * w;
                acc[2] += p[2] as i32 * w;
            }
            px.copy_from_slice(&acc.map(clip8));
        }
    }
    out
}

/// Resamples the columns of an interleaved RGB image `width` pixels wide whose first row is source
/// row `row0` to the height of `weights`.
fn vertical_pass(src: &[u8], width: usize, row0: usize, weights: &AxisWeights) -> Vec<u8> {
    let stride = width * 3;
    let out_h = weights.bounds.len();
    let mut out = vec![0u8; out_h * stride];
    let mut acc = vec![0i32; stride];
    for (yy, out_row) in out.chunks_exact_mut(stride).enumerate() {
        let (start, k) = weights.window(yy);
        acc.fill(1i32 << (PRECISION_BITS - 1));
        for (i, &w) in k.iter().enumerate() {
            let row = start + i - row0;
            for (a, &p) in acc.iter_mut().zip(&src[row * stride..(row + 1) * stride]) {
                *a += p as i32 * w;
            }
        }
        for (o, &a) in out_row.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// RGB conversion.

/// Pillow's `alpha_composite` of one channel value `c` with alpha `a` over opaque white, in
/// Pillow's integer arithmetic (for an opaque white background it reduces to a rounded division
/// of `c*a + 255*(255-a)` by 255).
fn over_white(c: u8, a: u8) -> u8 {
    let (c, a) = (c as u32, a as u32);
    let v = c * a + 255 * (255 - a) + 128;
    ((v + (v >> 8)) >> 8) as u8
}

/// Converts any decoded image to 8-bit RGB the way transformers 5.24's `convert_to_rgb` does for a
/// PIL image: images with transparency are converted to RGBA and composited onto opaque white
/// (`PIL.Image.alpha_composite`), everything else goes through PIL's `convert("RGB")`.
///
/// The decoded layouts are mapped to what PIL would have opened: 16-bit RGB(A) and grey+alpha keep
/// the high byte (PIL opens them as 8-bit `RGB`/`RGBA`), 16-bit grey is clipped to 255 (PIL's
/// `I;16` to `RGB` conversion clips rather than scales), grey is replicated. Float images (which
/// PIL cannot open as RGB) use the image crate's conversion.
pub fn to_rgb(img: &DynamicImage) -> RgbImage {
    let (w, h) = (img.width(), img.height());
    let from_fn =
        |f: &dyn Fn(u32, u32) -> [u8; 3]| RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)));
    match img {
        DynamicImage::ImageRgb8(rgb) => rgb.clone(),
        DynamicImage::ImageLuma8(g) => from_fn(&|x, y| [g.get_pixel(x, y).0[0]; 3]),
        DynamicImage::ImageLumaA8(g) => from_fn(&|x, y| {
            let [l, a] = g.get_pixel(x, y).0;
            [over_white(l, a); 3]
        }),
        DynamicImage::ImageRgba8(rgba) => composite_rgba8(rgba),
        DynamicImage::ImageLuma16(g) => from_fn(&|x, y| [g.get_pixel(x, y).0[0].min(255) as u8; 3]),
        DynamicImage::ImageLumaA16(g) => from_fn(&|x, y| {
            let [l, a] = g.get_pixel(x, y).0;
            [over_white((l >> 8) as u8, (a >> 8) as u8); 3]
        }),
        DynamicImage::ImageRgb16(rgb) => from_fn(&|x, y| {
            let [r, g, b] = rgb.get_pixel(x, y).0;
            [(r >> 8) as u8, (g >> 8) as u8, (b >> 8) as u8]
        }),
        DynamicImage::ImageRgba16(rgba) => from_fn(&|x, y| {
            let [r, g, b, a] = rgba.get_pixel(x, y).0.map(|v| (v >> 8) as u8);
            [over_white(r, a), over_white(g, a), over_white(b, a)]
        }),
        DynamicImage::ImageRgb32F(_) => img.to_rgb8(),
        _ => composite_rgba8(&img.to_rgba8()),
    }
}

fn composite_rgba8(rgba: &image::RgbaImage) -> RgbImage {
    let mut out = Vec::with_capacity(rgba.as_raw().len() / 4 * 3);
    for p in rgba.as_raw().chunks_exact(4) {
        out.extend_from_slice(&[
            over_white(p[0], p[3]),
            over_white(p[1], p[3]),
            over_white(p[2], p[3]),
        ]);
    }
    RgbImage::from_raw(rgba.width(), rgba.height(), out).expect("3 bytes per RGBA pixel")
}

// ---------------------------------------------------------------------------------------------
// The processor.

/// One image, ready for the vision tower.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessedImage {
    /// Row-major `(num_patches, patch_dim)`.
    pub pixel_values: Vec<f32>,
    /// `grid_t * grid_h * grid_w`.
    pub num_patches: usize,
    /// `channels * temporal_patch_size * patch_size * patch_size` (1176 for Qwen).
    pub patch_dim: usize,
    /// `[grid_t, grid_h, grid_w]` in patches; `grid_t` is 1 for a still image.
    pub grid_thw: [usize; 3],
    /// The size the image was resized to, `(height, width)` in pixels.
    pub resized: (usize, usize),
}

/// Runs the whole Qwen2-VL image processor on one image (see the module docs for the steps).
///
/// Rows of `pixel_values` are ordered `(grid_h / merge, grid_w / merge, merge, merge)`, i.e. the
/// `merge x merge` patches that become one token are adjacent; within a row the order is
/// `(channel, temporal, patch_y, patch_x)`, the frame being repeated over `temporal`.
pub fn preprocess(img: &DynamicImage, cfg: &ImageProcessorConfig) -> Result<ProcessedImage> {
    cfg.validate()
        .map_err(|msg| Error::invalid(format!("image processor config: {msg}")))?;
    let rgb = if cfg.do_convert_rgb {
        to_rgb(img)
    } else {
        match img {
            DynamicImage::ImageRgb8(rgb) => rgb.clone(),
            DynamicImage::ImageRgb16(_) => to_rgb(img),
            other => {
                return Err(Error::invalid(format!(
                    "image is {:?}, but do_convert_rgb is false in the processor config; set it \
                     to true or pass an RGB image",
                    other.color()
                )))
            }
        }
    };
    let (h, w) = (rgb.height() as usize, rgb.width() as usize);
    let factor = cfg.factor();
    let rgb = if cfg.do_resize {
        let (rh, rw) = smart_resize(h, w, factor, cfg.min_pixels, cfg.max_pixels)?;
        let (rw32, rh32) = match (u32::try_from(rw), u32::try_from(rh)) {
            (Ok(a), Ok(b)) => (a, b),
            _ => {
                return Err(Error::invalid(format!(
                    "a {w}x{h} image would be resized to {rw}x{rh}, which is too large; lower \
                     max_pixels"
                )))
            }
        };
        resize_bicubic(&rgb, rw32, rh32)
    } else {
        if h == 0 || w == 0 || h % factor != 0 || w % factor != 0 {
            return Err(Error::invalid(format!(
                "image is {w}x{h}, but with do_resize false both sides must be positive multiples \
                 of patch_size*merge_size = {factor}; enable do_resize or resize the image"
            )));
        }
        rgb
    };
    let (h, w) = (rgb.height() as usize, rgb.width() as usize);

    // Channel-first f32 planes, rescaled and normalised with transformers' precisions.
    const C: usize = 3;
    let plane = h * w;
    let mut planes = vec![0f32; C * plane];
    for (i, px) in rgb.as_raw().chunks_exact(C).enumerate() {
        for c in 0..C {
            let mut x = if cfg.do_rescale {
                (px[c] as f64 * cfg.rescale_factor) as f32
            } else {
                px[c] as f32
            };
            if cfg.do_normalize {
                x = (x - cfg.image_mean[c]) / cfg.image_std[c];
            }
            planes[c * plane + i] = x;
        }
    }

    let (p, m, t) = (cfg.patch_size, cfg.merge_size, cfg.temporal_patch_size);
    let (grid_h, grid_w) = (h / p, w / p);
    let num_patches = grid_h * grid_w;
    let patch_dim = C * t * p * p;
    let mut pixel_values = Vec::with_capacity(num_patches * patch_dim);
    for bh in 0..grid_h / m {
        for bw in 0..grid_w / m {
            for mh in 0..m {
                for mw in 0..m {
                    let y0 = (bh * m + mh) * p;
                    let x0 = (bw * m + mw) * p;
                    for c in 0..C {
                        for _ in 0..t {
                            for py in 0..p {
                                let start = c * plane + (y0 + py) * w + x0;
                                pixel_values.extend_from_slice(&planes[start..start + p]);
                            }
                        }
                    }
                }
            }
        }
    }
    debug_assert_eq!(pixel_values.len(), num_patches * patch_dim);
    Ok(ProcessedImage {
        pixel_values,
        num_patches,
        patch_dim,
        grid_thw: [1, grid_h, grid_w],
        resized: (h, w),
    })
}

/// The patches as a `(num_patches, patch_dim)` f32 tensor.
pub fn to_tensor(
    p: &ProcessedImage,
    device: &candle_core::Device,
) -> candle_core::Result<candle_core::Tensor> {
    candle_core::Tensor::from_slice(&p.pixel_values, (p.num_patches, p.patch_dim), device)
}

/// Opens and decodes an image file (PNG, JPEG, BMP, GIF, WebP or TIFF, recognised by content),
/// applying its EXIF orientation as transformers' `load_image` does. Alpha is kept: [`preprocess`]
/// composites it onto white.
pub fn load_image(path: &Path) -> Result<DynamicImage> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound {
            what: "image",
            path: path.to_path_buf(),
            hint: "check the path and the current directory".into(),
        },
        _ => Error::Io {
            path: path.to_path_buf(),
            source: e,
        },
    })?;
    if meta.is_dir() {
        return Err(Error::image(
            path,
            "is a directory, not an image file; name a file inside it",
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    decode_image(&bytes, path)
}

/// Decodes an in-memory image file; `path` is only used in error messages.
pub fn decode_image(bytes: &[u8], path: &Path) -> Result<DynamicImage> {
    if bytes.is_empty() {
        return Err(Error::image(
            path,
            "file is empty (0 bytes); re-export or re-download it",
        ));
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
    let Some(format) = reader.format() else {
        return Err(Error::image(
            path,
            "not a recognised image format (supported: PNG, JPEG, BMP, GIF, WebP, TIFF); convert \
             it to PNG or JPEG",
        ));
    };
    let name = format!("{format:?}").to_uppercase();
    let decode_err = |e: image::ImageError| image_error(path, &name, e);
    let mut decoder = reader.into_decoder().map_err(decode_err)?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(decode_err)?;
    img.apply_orientation(orientation);
    if img.width() == 0 || img.height() == 0 {
        return Err(Error::image(
            path,
            format!(
                "image is {}x{} pixels, which has nothing to process; use a non-empty image",
                img.width(),
                img.height()
            ),
        ));
    }
    Ok(img)
}

fn image_error(path: &Path, format: &str, e: image::ImageError) -> Error {
    let msg = match e {
        image::ImageError::Unsupported(u) => format!(
            "this {format} variant is not supported ({u}); convert the image to 8-bit PNG or JPEG"
        ),
        image::ImageError::Limits(l) => {
            format!("image is too large to decode ({l}); downscale it first")
        }
        other => format!(
            "cannot decode as {format} ({other}); the file may be truncated or corrupt, re-export it"
        ),
    };
    Error::image(PathBuf::from(path), msg.replace('\n', " "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/processor");

    fn fixture(name: &str) -> Value {
        let path = format!("{FIXTURES}/{name}");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{path}: {e}; run tests/fixtures/generate_processor.py"));
        serde_json::from_str(&text).unwrap()
    }

    fn b64decode(s: &str) -> Vec<u8> {
        fn val(c: u8) -> u32 {
            match c {
                b'A'..=b'Z' => (c - b'A') as u32,
                b'a'..=b'z' => (c - b'a') as u32 + 26,
                b'0'..=b'9' => (c - b'0') as u32 + 52,
                b'+' => 62,
                b'/' => 63,
                _ => panic!("bad base64 byte {c}"),
            }
        }
        let s = s.trim_end_matches('=').as_bytes();
        let mut out = Vec::with_capacity(s.len() * 3 / 4);
        for chunk in s.chunks(4) {
            let mut n = 0u32;
            for (i, &c) in chunk.iter().enumerate() {
                n |= val(c) << (18 - 6 * i);
            }
            let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            out.extend_from_slice(&bytes[..chunk.len() - 1]);
        }
        out
    }

    fn f32s(bytes: &[u8]) -> Vec<f32> {
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }

    fn fnv1a64(data: &[u8]) -> String {
        let mut h: u64 = 0xcbf29ce484222325;
        for &b in data {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
        format!("{h:016x}")
    }

    /// Mirror of `hash32` in generate_processor.py.
    fn hash32(seed: u32, x: u32, y: u32, c: u32) -> u32 {
        let mut h = seed
            .wrapping_mul(0x9E3779B1)
            .wrapping_add(x.wrapping_mul(0x85EBCA77))
            .wrapping_add(y.wrapping_mul(0xC2B2AE3D))
            .wrapping_add(c.wrapping_mul(0x27D4EB2F));
        h ^= h >> 15;
        h = h.wrapping_mul(0x2C1B3C6D);
        h ^= h >> 12;
        h = h.wrapping_mul(0x297A2D39);
        h ^= h >> 15;
        h
    }

    /// Mirror of `synth` in generate_processor.py: row-major, interleaved channels.
    fn synth(width: u32, height: u32, channels: u32, seed: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity((width * height * channels) as usize);
        for y in 0..height {
            for x in 0..width {
                for c in 0..channels {
                    let n = hash32(seed, x, y, c);
                    let v = if c == 3 {
                        match (n >> 8) & 3 {
                            0 => 0,
                            1 => 255,
                            _ => n & 0xff,
                        }
                    } else if x < width / 2 {
                        n & 0xff
                    } else {
                        let g = match c {
                            0 => x * 255 / (width - 1).max(1),
                            1 => y * 255 / (height - 1).max(1),
                            _ => (x + y) * 255 / (width + height - 2).max(1),
                        } as i64;
                        (g + (n & 31) as i64 - 16).clamp(0, 255) as u32
                    };
                    out.push(v as u8);
                }
            }
        }
        out
    }

    fn synth_image(mode: &str, w: u32, h: u32, seed: u32) -> (DynamicImage, Vec<u8>) {
        match mode {
            "RGB" => {
                let raw = synth(w, h, 3, seed);
                (
                    DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, raw.clone()).unwrap()),
                    raw,
                )
            }
            "RGBA" => {
                let raw = synth(w, h, 4, seed);
                let img = image::RgbaImage::from_raw(w, h, raw.clone()).unwrap();
                (DynamicImage::ImageRgba8(img), raw)
            }
            "L" => {
                let raw = synth(w, h, 1, seed);
                let img = image::GrayImage::from_raw(w, h, raw.clone()).unwrap();
                (DynamicImage::ImageLuma8(img), raw)
            }
            other => panic!("unknown mode {other}"),
        }
    }

    fn u(v: &Value) -> usize {
        v.as_u64().unwrap() as usize
    }

    // ---- smart_resize ----

    #[test]
    fn smart_resize_matches_transformers_table() {
        let table = fixture("smart_resize.json");
        let cases = table["cases"].as_array().unwrap();
        assert!(cases.len() > 300);
        let mut failures = Vec::new();
        for case in cases {
            let got = smart_resize(
                u(&case["h"]),
                u(&case["w"]),
                u(&case["factor"]),
                u(&case["min"]),
                u(&case["max"]),
            );
            let ok = match (&case["out"], &got) {
                (Value::String(s), Err(_)) => s == "error",
                (Value::Array(hw), Ok((h, w))) => u(&hw[0]) == *h && u(&hw[1]) == *w,
                _ => false,
            };
            if !ok {
                failures.push(format!("{case} -> {got:?}"));
            }
        }
        assert!(
            failures.is_empty(),
            "{} mismatches:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn smart_resize_rounds_half_to_even() {
        // 42/28 = 1.5 -> 2, 70/28 = 2.5 -> 2, 98/28 = 3.5 -> 4.
        assert_eq!(smart_resize(42, 560, 28, 1, usize::MAX).unwrap(), (56, 560));
        assert_eq!(smart_resize(70, 560, 28, 1, usize::MAX).unwrap(), (56, 560));
        assert_eq!(
            smart_resize(98, 560, 28, 1, usize::MAX).unwrap(),
            (112, 560)
        );
    }

    #[test]
    fn smart_resize_bounds_and_errors() {
        // Tiny images are scaled up to at least min_pixels (no error in transformers 5.24).
        let (h, w) = smart_resize(1, 1, 28, 3136, 1003520).unwrap();
        assert_eq!((h, w), (56, 56));
        // Large images are scaled down below max_pixels.
        let (h, w) = smart_resize(3024, 4032, 28, 3136, 1003520).unwrap();
        assert!(h * w <= 1003520 && h % 28 == 0 && w % 28 == 0);
        assert!(smart_resize(201, 1, 28, 3136, 1003520).is_err());
        assert!(smart_resize(200, 1, 28, 3136, 1003520).is_ok());
        assert!(smart_resize(0, 10, 28, 3136, 1003520).is_err());
        assert!(smart_resize(10, 10, 0, 3136, 1003520).is_err());
        assert!(smart_resize(10, 10, 28, 0, 1003520).is_err());
        let err = smart_resize(1, 300, 28, 3136, 1003520)
            .unwrap_err()
            .to_string();
        assert!(err.contains("aspect ratio") && !err.contains('\n'), "{err}");
    }

    // ---- resize ----

    /// Max absolute byte difference and number of differing bytes.
    fn byte_diff(got: &[u8], want: &[u8]) -> (i32, usize) {
        assert_eq!(got.len(), want.len());
        let max = got
            .iter()
            .zip(want)
            .map(|(&a, &b)| (a as i32 - b as i32).abs())
            .max();
        (
            max.unwrap_or(0),
            got.iter().zip(want).filter(|(a, b)| a != b).count(),
        )
    }

    #[test]
    fn resize_matches_pillow_bit_exactly() {
        let fx = fixture("resize.json");
        let mut report = Vec::new();
        let mut vertical_first_cases = 0;
        for case in fx["cases"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let (sw, sh) = (u(&case["src_w"]) as u32, u(&case["src_h"]) as u32);
            let (dw, dh) = (u(&case["dst_w"]) as u32, u(&case["dst_h"]) as u32);
            let raw = synth(sw, sh, 3, u(&case["seed"]) as u32);
            assert_eq!(
                fnv1a64(&raw),
                case["input_fnv1a64"].as_str().unwrap(),
                "{name}: input"
            );
            let src = RgbImage::from_raw(sw, sh, raw).unwrap();

            let want = b64decode(case["output_b64"].as_str().unwrap());
            let got = resize_bicubic(&src, dw, dh);
            assert_eq!((got.width(), got.height()), (dw, dh), "{name}");
            let (max, count) = byte_diff(got.as_raw(), &want);
            if max != 0 {
                report.push(format!(
                    "{name} (Pillow 13): {count} bytes differ, max diff {max}"
                ));
            }

            // Pillow <= 12 order: stored only where it differs from Pillow 13's.
            let legacy = match case.get("horizontal_first_output_b64") {
                Some(b) => {
                    vertical_first_cases += 1;
                    b64decode(b.as_str().unwrap())
                }
                None => want,
            };
            let got = resize_bicubic_with(&src, dw, dh, PassOrder::HorizontalFirst);
            let (max, count) = byte_diff(got.as_raw(), &legacy);
            if max != 0 {
                report.push(format!(
                    "{name} (horizontal first): {count} bytes differ, max {max}"
                ));
            }
        }
        assert!(
            vertical_first_cases >= 2,
            "fixture lacks vertical-first cases"
        );
        assert!(report.is_empty(), "{}", report.join("\n"));
    }

    #[test]
    fn pass_order_rule() {
        let v = |iw, ih, ow, oh| PassOrder::Pillow13.vertical_first(iw, ih, ow, oh);
        assert!(v(45, 30, 56, 28)); // width up, height down
        assert!(!v(100, 100, 60, 50)); // 40 columns lost, 50 rows: not more than twice
        assert!(v(101, 103, 76, 51)); // 25 columns, 52 rows
        assert!(!v(101, 103, 75, 51)); // 26 columns, 52 rows: exactly twice is not enough
        assert!(!v(100, 100, 200, 110)); // height up
        assert!(!PassOrder::HorizontalFirst.vertical_first(45, 30, 56, 28));
    }

    #[test]
    fn resize_same_size_is_a_copy_and_constant_stays_constant() {
        let raw = synth(9, 7, 3, 42);
        let img = RgbImage::from_raw(9, 7, raw).unwrap();
        assert_eq!(resize_bicubic(&img, 9, 7), img);
        let flat = RgbImage::from_pixel(33, 17, image::Rgb([200, 7, 255]));
        for (w, h) in [(56, 28), (5, 3), (33, 40), (70, 17), (1, 1)] {
            let out = resize_bicubic(&flat, w, h);
            assert!(out.pixels().all(|p| p.0 == [200, 7, 255]), "{w}x{h}");
        }
        assert_eq!(resize_bicubic(&flat, 0, 5).as_raw().len(), 0);
    }

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        for (i, o) in [(37, 56), (500, 28), (7, 7), (1, 28), (100, 99)] {
            let aw = AxisWeights::new(i, o);
            for xx in 0..o {
                let (start, k) = aw.window(xx);
                assert!(start + k.len() <= i);
                let s: i64 = k.iter().map(|&w| w as i64).sum();
                assert!(
                    (s - (1 << PRECISION_BITS)).abs() <= k.len() as i64,
                    "{i}->{o} @{xx}: {s}"
                );
            }
        }
    }

    // ---- RGB conversion ----

    #[test]
    fn compositing_over_white_matches_pillow_formula() {
        assert_eq!(over_white(10, 255), 10);
        assert_eq!(over_white(10, 0), 255);
        assert_eq!(over_white(0, 128), 127);
        // Exhaustive check against the exact rounded division by 255.
        for c in 0..=255u32 {
            for a in 0..=255u32 {
                let exact = (c * a + 255 * (255 - a)) as f64 / 255.0;
                let got = over_white(c as u8, a as u8) as f64;
                assert!((got - exact).abs() <= 0.5 + 1e-9, "c={c} a={a}");
            }
        }
    }

    #[test]
    fn to_rgb_handles_pil_modes() {
        let la = image::GrayAlphaImage::from_raw(2, 1, vec![100, 255, 100, 0]).unwrap();
        let rgb = to_rgb(&DynamicImage::ImageLumaA8(la));
        assert_eq!(rgb.as_raw(), &[100, 100, 100, 255, 255, 255]);
        let g16 = image::ImageBuffer::<image::Luma<u16>, _>::from_raw(3, 1, vec![7u16, 255, 4000])
            .unwrap();
        let rgb = to_rgb(&DynamicImage::ImageLuma16(g16));
        assert_eq!(rgb.as_raw(), &[7, 7, 7, 255, 255, 255, 255, 255, 255]);
        let c16 = image::ImageBuffer::<image::Rgb<u16>, _>::from_raw(
            1,
            1,
            vec![0x80ffu16, 0x12ff, 0x00ff],
        )
        .unwrap();
        assert_eq!(
            to_rgb(&DynamicImage::ImageRgb16(c16)).as_raw(),
            &[0x80, 0x12, 0x00]
        );
    }

    // ---- full processor ----

    #[test]
    fn preprocess_matches_transformers_pil_processor() {
        let fx = fixture("preprocess.json");
        let mut report = Vec::new();
        for case in fx["cases"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let cfg = ImageProcessorConfig::from_json_str(
                &case["config"].to_string(),
                Path::new("fixture-config.json"),
            )
            .unwrap();
            let (w, h) = (u(&case["w"]) as u32, u(&case["h"]) as u32);
            let (img, raw) = synth_image(
                case["mode"].as_str().unwrap(),
                w,
                h,
                u(&case["seed"]) as u32,
            );
            assert_eq!(
                fnv1a64(&raw),
                case["input_fnv1a64"].as_str().unwrap(),
                "{name}: input"
            );
            let out = preprocess(&img, &cfg).unwrap();
            let grid: Vec<usize> = case["grid_thw"].as_array().unwrap().iter().map(u).collect();
            assert_eq!(out.grid_thw.to_vec(), grid, "{name}");
            let rhw: Vec<usize> = case["resized_hw"]
                .as_array()
                .unwrap()
                .iter()
                .map(u)
                .collect();
            assert_eq!(vec![out.resized.0, out.resized.1], rhw, "{name}");
            let shape: Vec<usize> = case["shape"].as_array().unwrap().iter().map(u).collect();
            assert_eq!(vec![out.num_patches, out.patch_dim], shape, "{name}");
            assert_eq!(out.pixel_values.len(), out.num_patches * out.patch_dim);

            let (idx, want): (Vec<usize>, Vec<f32>) = match case.get("pixel_values_b64") {
                Some(b) => {
                    let want = f32s(&b64decode(b.as_str().unwrap()));
                    ((0..want.len()).collect(), want)
                }
                None => (
                    case["sample_index"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(u)
                        .collect(),
                    f32s(&b64decode(case["sample_values_b64"].as_str().unwrap())),
                ),
            };
            let max_diff = idx
                .iter()
                .zip(&want)
                .map(|(&i, &w)| (out.pixel_values[i] - w).abs())
                .fold(0f32, f32::max);
            let sum: f64 = out.pixel_values.iter().map(|&v| v as f64).sum();
            let want_sum = case["sum"].as_f64().unwrap();
            // Bit-exact: the resize is exact and the float steps use the same precisions.
            if max_diff != 0.0 || (sum - want_sum).abs() > 1e-6 * want_sum.abs().max(1.0) {
                report.push(format!(
                    "{name}: max abs diff {max_diff}, sum {sum} vs {want_sum}"
                ));
            }
        }
        assert!(report.is_empty(), "{}", report.join("\n"));
    }

    #[test]
    fn patch_layout_follows_transformers_order() {
        // A 4x8 image, patch 2, merge 2, temporal 2: value encodes (channel, y, x).
        let cfg = ImageProcessorConfig {
            patch_size: 2,
            merge_size: 2,
            temporal_patch_size: 2,
            do_resize: false,
            do_rescale: false,
            do_normalize: false,
            ..Default::default()
        };
        let img = RgbImage::from_fn(8, 4, |x, y| image::Rgb([(y * 8 + x) as u8, 100, 200]));
        let out = preprocess(&DynamicImage::ImageRgb8(img), &cfg).unwrap();
        assert_eq!(out.grid_thw, [1, 2, 4]);
        assert_eq!((out.num_patches, out.patch_dim), (8, 3 * 2 * 2 * 2));
        let row = |r: usize| &out.pixel_values[r * 24..(r + 1) * 24];
        // Row 0: block (0,0), patch (0,0): pixels (y,x) in {0,1}x{0,1}, red twice, then green...
        assert_eq!(&row(0)[..8], &[0., 1., 8., 9., 0., 1., 8., 9.]);
        assert_eq!(&row(0)[8..12], &[100.; 4]);
        // Row 1: same block, patch (0,1) -> x 2..4.
        assert_eq!(&row(1)[..4], &[2., 3., 10., 11.]);
        // Row 2: patch (1,0) -> y 2..4.
        assert_eq!(&row(2)[..4], &[16., 17., 24., 25.]);
        // Row 4: next block to the right -> x 4..6.
        assert_eq!(&row(4)[..4], &[4., 5., 12., 13.]);
    }

    #[test]
    fn preprocess_errors_are_clear() {
        let cfg = ImageProcessorConfig {
            do_resize: false,
            ..Default::default()
        };
        let img = DynamicImage::ImageRgb8(RgbImage::new(30, 28));
        let err = preprocess(&img, &cfg).unwrap_err().to_string();
        assert!(err.contains("multiples") && err.contains("28"), "{err}");
        let cfg = ImageProcessorConfig::default();
        let img = DynamicImage::ImageRgb8(RgbImage::new(1000, 2));
        assert!(preprocess(&img, &cfg)
            .unwrap_err()
            .to_string()
            .contains("aspect ratio"));
    }

    #[test]
    fn to_tensor_has_patch_shape() {
        let img = DynamicImage::ImageRgb8(RgbImage::from_raw(37, 23, synth(37, 23, 3, 1)).unwrap());
        let cfg = ImageProcessorConfig::default();
        let p = preprocess(&img, &cfg).unwrap();
        let t = to_tensor(&p, &candle_core::Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[p.num_patches, 1176]);
        assert_eq!(p.grid_thw, [1, 4, 6]);
        assert_eq!(p.resized, (56, 84));
        let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(v, p.pixel_values);
    }

    // ---- config ----

    fn parse(v: Value) -> Result<ImageProcessorConfig> {
        ImageProcessorConfig::from_json_str(&v.to_string(), Path::new("preprocessor_config.json"))
    }

    #[test]
    #[allow(clippy::excessive_precision)]
    fn config_defaults_match_transformers() {
        let c = ImageProcessorConfig::default();
        assert_eq!((c.min_pixels, c.max_pixels), (3136, 1003520));
        assert_eq!(
            (c.patch_size, c.temporal_patch_size, c.merge_size),
            (14, 2, 2)
        );
        assert_eq!(c.image_mean, [0.48145466, 0.4578275, 0.40821073]);
        assert_eq!(c.image_std, [0.26862954, 0.26130258, 0.27577711]);
        assert_eq!(c.rescale_factor, 1.0 / 255.0);
        assert!(c.do_resize && c.do_rescale && c.do_normalize && c.do_convert_rgb);
        assert_eq!(parse(json!({})).unwrap(), c);
    }

    #[test]
    fn config_parses_hub_file_of_qwen25_vl() {
        let c = parse(json!({
            "min_pixels": 3136,
            "max_pixels": 12845056,
            "patch_size": 14,
            "temporal_patch_size": 2,
            "merge_size": 2,
            "image_mean": [0.48145466, 0.4578275, 0.40821073],
            "image_std": [0.26862954, 0.26130258, 0.27577711],
            "image_processor_type": "Qwen2VLImageProcessor",
            "processor_class": "Qwen2_5_VLProcessor"
        }))
        .unwrap();
        assert_eq!((c.min_pixels, c.max_pixels), (3136, 12845056));
        assert_eq!(c.image_mean, OPENAI_CLIP_MEAN);
    }

    #[test]
    fn config_size_styles_and_precedence() {
        let c = parse(json!({"size": {"shortest_edge": 100, "longest_edge": 5000}})).unwrap();
        assert_eq!((c.min_pixels, c.max_pixels), (100, 5000));
        // Top-level keys win over `size`, as in Qwen2VLImageProcessor.__init__.
        let c =
            parse(json!({"min_pixels": 7, "size": {"shortest_edge": 100, "longest_edge": 5000}}))
                .unwrap();
        assert_eq!((c.min_pixels, c.max_pixels), (7, 5000));
        let c = parse(json!({"size": {"min_pixels": 9, "max_pixels": 99}})).unwrap();
        assert_eq!((c.min_pixels, c.max_pixels), (9, 99));
        let c = parse(json!({"max_pixels": 4704})).unwrap();
        assert_eq!((c.min_pixels, c.max_pixels), (3136, 4704));
        let c = parse(json!({"min_pixels": null, "size": null, "image_std": 0.5})).unwrap();
        assert_eq!((c.min_pixels, c.image_std), (3136, [0.5; 3]));
        let err = parse(json!({"size": {"shortest_edge": 100}}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("longest_edge"), "{err}");
    }

    #[test]
    fn config_errors_name_the_key() {
        for (v, key) in [
            (json!({"patch_size": "14"}), "`patch_size`"),
            (json!({"patch_size": 14.5}), "`patch_size`"),
            (json!({"min_pixels": -1}), "`min_pixels`"),
            (
                json!({"size": {"longest_edge": "big"}}),
                "`size.longest_edge`",
            ),
            (json!({"image_mean": [0.5, 0.5]}), "`image_mean`"),
            (json!({"do_resize": 1}), "`do_resize`"),
            (json!({"rescale_factor": "1/255"}), "`rescale_factor`"),
            (json!({"size": 224}), "`size`"),
            (json!({"resample": 2}), "`resample`"),
            (json!({"merge_size": 0}), "`merge_size`"),
        ] {
            let err = parse(v.clone()).unwrap_err().to_string();
            assert!(err.contains(key), "{v}: {err}");
            assert!(err.starts_with("preprocessor_config.json: "), "{err}");
            assert!(!err.contains('\n'), "{err}");
        }
        assert!(parse(json!({"resample": 3, "unknown": [1, 2]})).is_ok());
        let err = ImageProcessorConfig::from_json_str("{", Path::new("p.json")).unwrap_err();
        assert!(err.to_string().contains("not valid JSON"), "{err}");
        let err = ImageProcessorConfig::from_json_str("[]", Path::new("p.json")).unwrap_err();
        assert!(err.to_string().contains("object"), "{err}");
    }

    #[test]
    fn config_from_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("preprocessor_config.json");
        let err = ImageProcessorConfig::from_file(&path).unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err}");
        std::fs::write(&path, r#"{"max_pixels": 12845056}"#).unwrap();
        assert_eq!(
            ImageProcessorConfig::from_file(&path).unwrap().max_pixels,
            12845056
        );
    }

    // ---- loading ----

    #[test]
    fn load_image_reports_problems() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.png");
        let err = load_image(&missing).unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err}");
        assert!(err.to_string().contains("nope.png"));

        let err = load_image(dir.path()).unwrap_err().to_string();
        assert!(err.contains("directory"), "{err}");

        let empty = dir.path().join("empty.jpg");
        std::fs::write(&empty, b"").unwrap();
        let err = load_image(&empty).unwrap_err().to_string();
        assert!(err.contains("empty"), "{err}");

        let text = dir.path().join("notes.png");
        std::fs::write(&text, b"hello, this is not an image").unwrap();
        let err = load_image(&text).unwrap_err().to_string();
        assert!(err.contains("not a recognised image format"), "{err}");

        // A PNG signature followed by garbage: recognised, but undecodable.
        let broken = dir.path().join("broken.png");
        std::fs::write(&broken, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDRgarbage").unwrap();
        let err = load_image(&broken).unwrap_err().to_string();
        assert!(err.contains("PNG") && !err.contains('\n'), "{err}");
    }

    #[test]
    fn load_image_round_trips_png_with_alpha() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.png");
        let rgba = image::RgbaImage::from_raw(2, 1, vec![10, 20, 30, 255, 10, 20, 30, 0]).unwrap();
        rgba.save(&path).unwrap();
        let img = load_image(&path).unwrap();
        assert_eq!(img.color(), image::ColorType::Rgba8);
        assert_eq!(to_rgb(&img).as_raw(), &[10, 20, 30, 255, 255, 255]);
    }
}
