//! The Qwen VL model families.
//!
//! `qwen2_vl` and `qwen2_5_vl` differ in their vision towers and share the text decoder in
//! `text`. A [`VlModel`] is weights only: each sequence's state lives in a [`KvCache`] that the
//! caller owns, so one set of weights decodes any number of sequences, and rows of equal length
//! decode together in one batched forward. The text decoder's linear layers are
//! [`linear::Linear`]s: plain, or quantized while the model loads ([`VlModel::new_quantized`]).

pub mod cache;
pub mod config;
pub mod linear;
pub mod qwen2_5_vl;
pub mod qwen2_vl;
pub mod qwen3_vl;
pub mod quantize;
pub mod text;
mod thin;
pub mod thin_float;
pub mod thin_kquant;
pub mod thin_q8_0;
pub mod vision;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

pub use cache::KvCache;
pub use config::{Family, ModelConfig, TextConfig, VisionConfig};
pub use linear::{QuantFormat, Quantization};

use crate::error::{Error, Result};

/// One image of a prompt: its patches (patches, C·T·P·P) and its grid [t, h, w] in patches.
#[derive(Debug, Clone)]
pub struct ImageInput {
    pub pixel_values: Tensor,
    pub grid_thw: [usize; 3],
}

/// One row of a prefill: the prompt's token ids (image pads already expanded) and its images, in
/// the order their pads appear.
#[derive(Debug, Clone)]
pub struct PromptInput {
    pub input_ids: Vec<u32>,
    pub images: Vec<ImageInput>,
}

/// What the engine needs of a model family: weights that decode rows held in a caller-owned
/// cache. A new family (its own vision tower, its own text decoder) plugs in by implementing this
/// and being returned by [`crate::loader::Checkpoint::load_model`]'s caller; the session, bench
/// and preflight do not change.
pub trait Decoder: Send + Sync {
    /// Rows of the language-model head (may exceed the tokenizer's size: padding rows).
    fn vocab_size(&self) -> usize;
    fn device(&self) -> &Device;
    fn dtype(&self) -> DType;
    /// An empty cache for this model.
    fn new_cache(&self) -> KvCache;
    /// Runs the prompts of `rows` (all of one length) into the empty `cache`; the logits (rows,
    /// vocab) in f32 at each row's last prompt position.
    fn prefill(&self, rows: &[PromptInput], cache: &mut KvCache) -> Result<Tensor>;
    /// Decodes one new token per row; the logits (rows, vocab) in f32.
    fn step(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Tensor>;
    /// How many of the text decoder's linear layers hold each weight format (what `--quant`
    /// made of them).
    fn formats(&self) -> std::collections::BTreeMap<QuantFormat, usize>;
}

impl Decoder for VlModel {
    fn vocab_size(&self) -> usize {
        VlModel::vocab_size(self)
    }
    fn device(&self) -> &Device {
        VlModel::device(self)
    }
    fn dtype(&self) -> DType {
        VlModel::dtype(self)
    }
    fn new_cache(&self) -> KvCache {
        VlModel::new_cache(self)
    }
    fn prefill(&self, rows: &[PromptInput], cache: &mut KvCache) -> Result<Tensor> {
        VlModel::prefill(self, rows, cache)
    }
    fn step(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Tensor> {
        VlModel::step(self, tokens, cache)
    }
    fn formats(&self) -> std::collections::BTreeMap<QuantFormat, usize> {
        VlModel::formats(self)
    }
}

enum VisionTower {
    Qwen2(qwen2_vl::VisionTower),
    Qwen2_5(qwen2_5_vl::VisionTower),
}

/// A Qwen2-VL or Qwen2.5-VL model: vision tower and text decoder.
pub struct VlModel {
    config: ModelConfig,
    vision: VisionTower,
    text: text::TextDecoder,
    dtype: DType,
    device: Device,
}

impl VlModel {
    /// Builds the model from weights named as on the Hub: `model.*` for the decoder, `visual.*`
    /// for the vision tower, `lm_head.*` for the head.
    pub fn new(config: &ModelConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        Self::new_quantized(config, vb, Quantization::default())
    }

    /// [`new`](Self::new) with the text decoder's linear layers quantized as `quant` says (the
    /// vision tower stays in the model's dtype).
    pub fn new_quantized(config: &ModelConfig, vb: VarBuilder, quant: Quantization) -> candle_core::Result<Self> {
        let vision = match config.family {
            Family::Qwen2Vl => VisionTower::Qwen2(qwen2_vl::VisionTower::new(&config.vision, vb.pp("visual"))?),
            Family::Qwen2_5Vl => VisionTower::Qwen2_5(qwen2_5_vl::VisionTower::new(&config.vision, vb.pp("visual"))?),
            Family::Qwen3Vl => candle_core::bail!("Qwen3-VL is its own model: load it with Checkpoint::load_decoder"),
        };
        let text = text::TextDecoder::new(&config.text, vb.pp("model"), vb.pp("lm_head"), quant)?;
        Ok(VlModel { config: config.clone(), vision, text, dtype: vb.dtype(), device: vb.device().clone() })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// How many of the text decoder's linear layers (head included) hold each format.
    pub fn formats(&self) -> std::collections::BTreeMap<QuantFormat, usize> {
        self.text.formats()
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Rows of the language-model head (may exceed the tokenizer's size: padding rows).
    pub fn vocab_size(&self) -> usize {
        self.config.text.vocab_size
    }

    /// An empty cache for this model.
    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.config.text.num_hidden_layers)
    }

    /// Vision embeddings (tokens, hidden) of one image.
    pub fn encode_image(&self, image: &ImageInput) -> candle_core::Result<Tensor> {
        let pixels = image.pixel_values.to_device(&self.device)?.to_dtype(self.dtype)?;
        match &self.vision {
            VisionTower::Qwen2(v) => v.forward(&pixels, &[image.grid_thw]),
            VisionTower::Qwen2_5(v) => v.forward(&pixels, &[image.grid_thw]),
        }
    }

    /// Runs the prompts of `rows` (all of one length) into the empty `cache` and returns the
    /// logits (rows, vocab) in f32 at each row's last prompt position.
    pub fn prefill(&self, rows: &[PromptInput], cache: &mut KvCache) -> Result<Tensor> {
        let len = check_prefill_rows(rows, cache, self.config.text.num_hidden_layers)?;
        let vocab = self.config.text.vocab_size as u32;
        if let Some(bad) = rows.iter().flat_map(|r| r.input_ids.iter()).find(|&&t| t >= vocab) {
            return Err(Error::invalid(format!("token id {bad} is outside the model's vocabulary of {vocab}")));
        }

        let mut positions = Vec::with_capacity(rows.len());
        let mut deltas = Vec::with_capacity(rows.len());
        let mut min_len = 0;
        let mut flat_ids = Vec::with_capacity(rows.len() * len);
        let mut image_embeds = Vec::new();
        let mut image_slots = Vec::new(); // flat index of every image token, in order
        for (r, row) in rows.iter().enumerate() {
            let (pos, delta, image_end) = self.rope_index(row)?;
            positions.push(pos);
            deltas.push(delta);
            min_len = min_len.max(image_end);
            flat_ids.extend_from_slice(&row.input_ids);
            image_slots.extend(
                row.input_ids.iter().enumerate().filter(|(_, &t)| t == self.config.image_token_id).map(|(i, _)| (r * len + i) as u32),
            );
            for image in &row.images {
                image_embeds.push(self.encode_image(image)?);
            }
        }

        let ids = Tensor::from_vec(flat_ids, (rows.len() * len,), &self.device)?;
        let mut embeds = self.text.embed(&ids)?; // (rows * len, hidden)
        if !image_embeds.is_empty() {
            // Scatter the image features into the image-pad slots with one gather: every slot
            // reads either its own text embedding or the next image feature.
            let features = Tensor::cat(&image_embeds, 0)?.to_dtype(embeds.dtype())?;
            let n_text = rows.len() * len;
            let mut gather: Vec<u32> = (0..n_text as u32).collect();
            for (k, &slot) in image_slots.iter().enumerate() {
                gather[slot as usize] = (n_text + k) as u32;
            }
            let table = Tensor::cat(&[&embeds, &features], 0)?;
            embeds = table.index_select(&Tensor::from_vec(gather, n_text, &self.device)?, 0)?;
        }
        let embeds = embeds.reshape((rows.len(), len, self.config.text.hidden_size))?;
        cache.start(deltas, min_len);
        let hidden = self.text.forward(&embeds, &positions, cache)?;
        Ok(self.text.logits(&hidden)?)
    }

    /// Decodes one new token per row and returns the logits (rows, vocab) in f32.
    pub fn step(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Tensor> {
        let rows: Vec<Vec<u32>> = tokens.iter().map(|&t| vec![t]).collect();
        self.extend(&rows, cache)
    }

    /// Appends several tokens per row (all rows the same number) and returns the logits (rows,
    /// vocab) in f32 after the last of them.
    pub fn extend(&self, tokens: &[Vec<u32>], cache: &mut KvCache) -> Result<Tensor> {
        if cache.is_empty() {
            return Err(Error::invalid("decoding needs a cache filled by prefill first"));
        }
        if tokens.len() != cache.rows() {
            return Err(Error::invalid(format!(
                "{} rows of tokens given to a cache of {} rows",
                tokens.len(),
                cache.rows()
            )));
        }
        let l = tokens.first().map_or(0, Vec::len);
        if l == 0 || tokens.iter().any(|t| t.len() != l) {
            return Err(Error::invalid("every row must append the same, non-zero number of tokens"));
        }
        let vocab = self.config.text.vocab_size as u32;
        if let Some(bad) = tokens.iter().flatten().find(|&&t| t >= vocab) {
            return Err(Error::invalid(format!("token id {bad} is outside the model's vocabulary of {vocab}")));
        }
        let start = cache.len() as i64;
        let positions: Vec<Vec<[i64; 3]>> = cache
            .rope_deltas()
            .iter()
            .map(|&d| (0..l as i64).map(|i| [start + i + d; 3]).collect())
            .collect();
        let flat: Vec<u32> = tokens.iter().flatten().copied().collect();
        let ids = Tensor::from_vec(flat, (tokens.len(), l), &self.device)?;
        let embeds = self.text.embed(&ids)?;
        let hidden = self.text.forward(&embeds, &positions, cache)?;
        Ok(self.text.logits(&hidden)?)
    }

    /// The 3-D rotary positions of a prompt, its M-RoPE delta (next position minus next index)
    /// and the index just past its last image token.
    ///
    /// Text advances all three positions by one per token. An image of `h × w` merged tokens
    /// starts at the current position `p`: token (y, x) sits at (p, p + y, p + x), and the text
    /// after it resumes at `p + max(h, w)`.
    pub fn rope_index(&self, row: &PromptInput) -> Result<(Vec<[i64; 3]>, i64, usize)> {
        mrope_positions(&self.config, row)
    }
}

/// [`VlModel::rope_index`] for any family with this config: Qwen3-VL places images the same way.
pub fn mrope_positions(config: &ModelConfig, row: &PromptInput) -> Result<(Vec<[i64; 3]>, i64, usize)> {
    let merge = config.vision.spatial_merge_size;
    let image_token = config.image_token_id;
    let ids = &row.input_ids;
    let mut pos = Vec::with_capacity(ids.len());
    let mut images = row.images.iter();
    let mut current: i64 = 0;
    let mut image_end = 0;
    let mut i = 0;
    while i < ids.len() {
        if ids[i] != image_token {
            pos.push([current; 3]);
            current += 1;
            i += 1;
            continue;
        }
        let run = ids[i..].iter().take_while(|&&t| t == image_token).count();
        let Some(image) = images.next() else {
            return Err(Error::invalid(format!(
                "the prompt has more runs of image tokens than images ({} given)",
                row.images.len()
            )));
        };
        let [t, h, w] = image.grid_thw;
        let (gh, gw) = (h / merge, w / merge);
        if run != t * gh * gw {
            return Err(Error::invalid(format!(
                "the prompt has {run} image tokens in a row but the image gives {} features",
                t * gh * gw
            )));
        }
        for ti in 0..t as i64 {
            for y in 0..gh as i64 {
                for x in 0..gw as i64 {
                    pos.push([current + ti, current + y, current + x]);
                }
            }
        }
        current += gh.max(gw) as i64;
        i += run;
        image_end = i;
    }
    if images.next().is_some() {
        return Err(Error::invalid(format!(
            "{} images given but the prompt has fewer runs of image tokens",
            row.images.len()
        )));
    }
    let delta = current - ids.len() as i64;
    Ok((pos, delta, image_end))
}

/// Checks the rows of a prefill (at least one, none empty, all of one length) against an empty
/// cache made for a model of `layers` decoder layers; the rows' length. Every family's prefill
/// starts here.
pub(crate) fn check_prefill_rows(rows: &[PromptInput], cache: &KvCache, layers: usize) -> Result<usize> {
    let Some(first) = rows.first() else {
        return Err(Error::invalid("prefill needs at least one prompt"));
    };
    let len = first.input_ids.len();
    if len == 0 {
        return Err(Error::invalid("the prompt is empty: give a prompt of at least one token"));
    }
    if rows.iter().any(|r| r.input_ids.len() != len) {
        return Err(Error::invalid("prompts decoded as one batch must have the same number of tokens"));
    }
    if !cache.is_empty() || cache.num_layers() != layers {
        return Err(Error::invalid("prefill needs an empty cache made by this model's new_cache()"));
    }
    Ok(len)
}
