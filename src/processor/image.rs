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
//! The picture comes decoded and upright from [`super::SourceImage`]; `preprocessor_config.json`
//! is read with serde ([`ImageProcessorConfig::from_json_str`]). The golden tests in
//! `tests/image_processor.rs` compare against fixtures written by
//! `tests/fixtures/generate_processor.py` with Pillow 13 and transformers 5.24: the resize and the
//! final `pixel_values` are bit-exact there.

use std::path::Path;

use image::{DynamicImage, RgbImage};
use serde::Deserialize;
use serde_json::Value;

use crate::checkpoint_json::{self, optional_section, setting, Setting};
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
        let file: ProcessorFile =
            checkpoint_json::read(&checkpoint_json::parse_object(text, path)?, "", path)?;
        let mut cfg = ImageProcessorConfig {
            patch_size: file.patch_size,
            temporal_patch_size: file.temporal_patch_size,
            merge_size: file.merge_size,
            image_mean: file.image_mean,
            image_std: file.image_std,
            rescale_factor: file.rescale_factor,
            do_resize: file.do_resize,
            do_rescale: file.do_rescale,
            do_normalize: file.do_normalize,
            do_convert_rgb: file.do_convert_rgb,
            ..Self::default()
        };

        // Area bounds: top-level keys win over `size`, as in Qwen2VLImageProcessor.__init__.
        let has_size = file.size.is_some();
        let size = file.size.unwrap_or_default();
        let min_pixels = file.min_pixels.or(size.shortest_edge).or(size.min_pixels);
        let max_pixels = file.max_pixels.or(size.longest_edge).or(size.max_pixels);
        match (min_pixels, max_pixels) {
            (Some(lo), Some(hi)) => (cfg.min_pixels, cfg.max_pixels) = (lo, hi),
            // Without `size`, a missing top-level bound keeps its class default.
            (lo, hi) if !has_size => {
                cfg.min_pixels = lo.unwrap_or(cfg.min_pixels);
                cfg.max_pixels = hi.unwrap_or(cfg.max_pixels);
            }
            (lo, _) => {
                let (missing, top) = if lo.is_none() {
                    ("shortest_edge", "min_pixels")
                } else {
                    ("longest_edge", "max_pixels")
                };
                return Err(Error::config(
                    path,
                    format!(
                        "`size` has no `{missing}` (and there is no top-level `{top}`), so the \
                         resize bounds are incomplete; add it"
                    ),
                ));
            }
        }

        if let Some(v) = file.resample.filter(|v| v.as_u64() != Some(PIL_BICUBIC)) {
            return Err(Error::config(
                path,
                format!(
                    "`resample` is {}, but only 3 (bicubic, Qwen's setting) is implemented; \
                     remove the key or set it to 3",
                    checkpoint_json::brief(&v)
                ),
            ));
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
        let cap = crate::limits::RESIZED_PIXELS;
        if self.do_resize && self.min_pixels as u64 > cap.get() {
            return Err(format!(
                "min_pixels ({}) is over the limit of {} pixels: every image would be upscaled past it; lower min_pixels, or raise {}",
                self.min_pixels,
                cap.get(),
                cap.var
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

/// `preprocessor_config.json` as written; a key left out takes the class default.
#[derive(Deserialize)]
#[serde(default)]
struct ProcessorFile {
    #[serde(deserialize_with = "setting")]
    min_pixels: Option<usize>,
    #[serde(deserialize_with = "setting")]
    max_pixels: Option<usize>,
    #[serde(deserialize_with = "optional_section")]
    size: Option<SizeFile>,
    #[serde(deserialize_with = "setting")]
    patch_size: usize,
    #[serde(deserialize_with = "setting")]
    temporal_patch_size: usize,
    #[serde(deserialize_with = "setting")]
    merge_size: usize,
    #[serde(deserialize_with = "setting")]
    image_mean: [f32; 3],
    #[serde(deserialize_with = "setting")]
    image_std: [f32; 3],
    #[serde(deserialize_with = "setting")]
    rescale_factor: f64,
    #[serde(deserialize_with = "setting")]
    do_resize: bool,
    #[serde(deserialize_with = "setting")]
    do_rescale: bool,
    #[serde(deserialize_with = "setting")]
    do_normalize: bool,
    #[serde(deserialize_with = "setting")]
    do_convert_rgb: bool,
    /// Kept as written, so that the error can show it.
    resample: Option<Value>,
}

impl Default for ProcessorFile {
    fn default() -> Self {
        let c = ImageProcessorConfig::default();
        ProcessorFile {
            min_pixels: None,
            max_pixels: None,
            size: None,
            patch_size: c.patch_size,
            temporal_patch_size: c.temporal_patch_size,
            merge_size: c.merge_size,
            image_mean: c.image_mean,
            image_std: c.image_std,
            rescale_factor: c.rescale_factor,
            do_resize: c.do_resize,
            do_rescale: c.do_rescale,
            do_normalize: c.do_normalize,
            do_convert_rgb: c.do_convert_rgb,
            resample: None,
        }
    }
}

/// `size`: transformers 5's `shortest_edge` / `longest_edge`, or older saves' `min_pixels` /
/// `max_pixels`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct SizeFile {
    #[serde(deserialize_with = "setting")]
    shortest_edge: Option<usize>,
    #[serde(deserialize_with = "setting")]
    longest_edge: Option<usize>,
    #[serde(deserialize_with = "setting")]
    min_pixels: Option<usize>,
    #[serde(deserialize_with = "setting")]
    max_pixels: Option<usize>,
}

/// A per-channel value: a list of three numbers, or one number used for every channel. Python
/// keeps the numbers as f64 and NumPy rounds them to f32 once.
impl Setting for [f32; 3] {
    const EXPECTED: &'static str = "a list of 3 numbers (one per RGB channel) or a single number";
    fn from_json(value: &Value) -> Option<Self> {
        match value {
            Value::Number(n) => Some([n.as_f64()? as f32; 3]),
            Value::Array(items) if items.len() == 3 => {
                let mut out = [0f32; 3];
                for (o, item) in out.iter_mut().zip(items) {
                    *o = item.as_f64()? as f32;
                }
                Some(out)
            }
            _ => None,
        }
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
pub const PRECISION_BITS: u32 = 32 - 8 - 2;
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

/// Fixed-point resampling weights for one axis (public so that tests can check them).
pub struct AxisWeights {
    /// Per output position: first input index and number of inputs used.
    bounds: Vec<(usize, usize)>,
    /// Per output position, `ksize` slots of which the first `bounds[i].1` are used.
    weights: Vec<i32>,
    ksize: usize,
}

impl AxisWeights {
    /// The weights that resample `in_size` samples to `out_size`.
    pub fn new(in_size: usize, out_size: usize) -> Self {
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

    /// Output position `i`'s first input index and its weights, one per input used.
    pub fn window(&self, i: usize) -> (usize, &[i32]) {
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
    /// Whether the vertical pass runs first when an `in_w x in_h` image is resized to
    /// `out_w x out_h`.
    pub fn vertical_first(self, in_w: usize, in_h: usize, out_w: usize, out_h: usize) -> bool {
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
pub fn over_white(c: u8, a: u8) -> u8 {
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
        let cap = crate::limits::RESIZED_PIXELS;
        if (rh as u64).saturating_mul(rw as u64) > cap.get() {
            return Err(Error::invalid(format!(
                "the processor (min_pixels/max_pixels of preprocessor_config.json) would resize the {w}x{h} image to {rw}x{rh}, over the limit of {} pixels; lower max_pixels, or raise {}",
                cap.get(),
                cap.var
            )));
        }
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
    // What the model is given is bounded whatever the processor config asks for.
    let cap = crate::limits::RESIZED_PIXELS;
    if (h as u64) * (w as u64) > cap.get() {
        return Err(Error::invalid(format!(
            "the processor (min_pixels/max_pixels/do_resize of preprocessor_config.json) makes the image {w}x{h}, over the limit of {} pixels; lower max_pixels, or raise {}",
            cap.get(),
            cap.var
        )));
    }

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
