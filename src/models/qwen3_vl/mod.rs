//! Qwen3-VL (the dense 2B, 4B, 8B and 32B models, Instruct and Thinking): vision tower, text
//! decoder and the DeepStack link between them.
//!
//! A prompt's image pads are replaced by the tower's merged tokens, as in Qwen2.5-VL, and the
//! tower's intermediate features (DeepStack) are added to the same positions after each of the
//! first decoder layers, one feature set per layer. Positions follow Qwen2-VL's M-RoPE layout
//! ([`crate::models::mrope_positions`]); the decoder interleaves the rotary sections. Weights
//! are named as on the Hub: `model.language_model.*`, `model.visual.*`, `lm_head.*`. Like the
//! other families, the model is weights only and decodes rows held in a caller-owned
//! [`KvCache`].

pub mod config;
pub mod text;
pub mod vision;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::{check_prefill_rows, mrope_positions, Decoder, ImageInput, KvCache, ModelConfig, PromptInput, QuantFormat, Quantization};
use crate::error::{Error, Result};

/// A Qwen3-VL model: vision tower and text decoder.
pub struct Qwen3VlModel {
    config: ModelConfig,
    vision: vision::VisionTower,
    text: text::TextDecoder,
    dtype: DType,
    device: Device,
}

impl Qwen3VlModel {
    /// Builds the model from weights named as on the Hub (`vb` at the files' root).
    pub fn new(config: &ModelConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        Self::new_quantized(config, vb, Quantization::default())
    }

    /// [`new`](Self::new) with the text decoder's linear layers quantized as `quant` says, while
    /// they load (the vision tower and its mergers stay in the model's dtype).
    pub fn new_quantized(config: &ModelConfig, vb: VarBuilder, quant: Quantization) -> candle_core::Result<Self> {
        let vision = vision::VisionTower::new(&config.vision, vb.pp("model").pp("visual"))?;
        let text = text::TextDecoder::new(&config.text, vb.pp("model").pp("language_model"), vb.pp("lm_head"), quant)?;
        Ok(Qwen3VlModel { config: config.clone(), vision, text, dtype: vb.dtype(), device: vb.device().clone() })
    }

    /// How many of the text decoder's linear layers (head included) hold each format.
    pub fn formats(&self) -> std::collections::BTreeMap<QuantFormat, usize> {
        self.text.formats()
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The merged vision tokens of one image and its DeepStack features.
    pub fn encode_image(&self, image: &ImageInput) -> candle_core::Result<vision::VisionOutput> {
        let pixels = image.pixel_values.to_device(&self.device)?.to_dtype(self.dtype)?;
        self.vision.forward(&pixels, &[image.grid_thw])
    }

    fn check_tokens<'a>(&self, ids: impl IntoIterator<Item = &'a u32>) -> Result<()> {
        let vocab = self.config.text.vocab_size as u32;
        match ids.into_iter().find(|&&t| t >= vocab) {
            Some(bad) => Err(Error::invalid(format!("token id {bad} is outside the model's vocabulary of {vocab}"))),
            None => Ok(()),
        }
    }

    /// Runs the prompts of `rows` (all of one length) into the empty `cache`; the logits (rows,
    /// vocab) in f32 at each row's last prompt position.
    pub fn prefill(&self, rows: &[PromptInput], cache: &mut KvCache) -> Result<Tensor> {
        let len = check_prefill_rows(rows, cache, self.config.text.num_hidden_layers)?;
        self.check_tokens(rows.iter().flat_map(|r| r.input_ids.iter()))?;

        let mut positions = Vec::with_capacity(rows.len());
        let mut deltas = Vec::with_capacity(rows.len());
        let mut min_len = 0;
        let mut flat_ids = Vec::with_capacity(rows.len() * len);
        let mut image_tokens = Vec::new();
        let levels = self.config.vision.deepstack_visual_indexes.len();
        let mut deepstack: Vec<Vec<Tensor>> = vec![Vec::new(); levels];
        let mut image_slots = Vec::new(); // flat index of every image token, in order
        for (r, row) in rows.iter().enumerate() {
            let (pos, delta, image_end) = mrope_positions(&self.config, row)?;
            positions.push(pos);
            deltas.push(delta);
            min_len = min_len.max(image_end);
            flat_ids.extend_from_slice(&row.input_ids);
            let image_token = self.config.image_token_id;
            image_slots.extend(row.input_ids.iter().enumerate().filter(|(_, &t)| t == image_token).map(|(i, _)| (r * len + i) as u32));
            for image in &row.images {
                let out = self.encode_image(image)?;
                image_tokens.push(out.tokens);
                for (level, f) in deepstack.iter_mut().zip(out.deepstack) {
                    level.push(f);
                }
            }
        }

        let n_text = rows.len() * len;
        let ids = Tensor::from_vec(flat_ids, (n_text,), &self.device)?;
        let mut embeds = self.text.embed(&ids)?; // (rows · len, hidden)
        let mut deepstack_features = Vec::new();
        let slots = Tensor::from_vec(image_slots.clone(), image_slots.len(), &self.device)?;
        if !image_tokens.is_empty() {
            // Every slot reads either its own text embedding or the next image token: one gather.
            let features = Tensor::cat(&image_tokens, 0)?.to_dtype(embeds.dtype())?;
            let mut gather: Vec<u32> = (0..n_text as u32).collect();
            for (k, &slot) in image_slots.iter().enumerate() {
                gather[slot as usize] = (n_text + k) as u32;
            }
            let table = Tensor::cat(&[&embeds, &features], 0)?;
            embeds = table.index_select(&Tensor::from_vec(gather, n_text, &self.device)?, 0)?;
            for level in &deepstack {
                deepstack_features.push(Tensor::cat(level, 0)?);
            }
        }
        let embeds = embeds.reshape((rows.len(), len, self.config.text.hidden_size))?;
        let stack = (!deepstack_features.is_empty())
            .then_some(text::DeepStack { slots: &slots, features: &deepstack_features });
        cache.start(deltas, min_len);
        let hidden = self.text.forward(&embeds, &positions, cache, stack)?;
        Ok(self.text.logits(&hidden)?)
    }

    /// Appends several tokens per row (all rows the same number) and returns the logits (rows,
    /// vocab) in f32 after the last of them.
    pub fn extend(&self, tokens: &[Vec<u32>], cache: &mut KvCache) -> Result<Tensor> {
        if cache.is_empty() {
            return Err(Error::invalid("decoding needs a cache filled by prefill first"));
        }
        if tokens.len() != cache.rows() {
            return Err(Error::invalid(format!("{} rows of tokens given to a cache of {} rows", tokens.len(), cache.rows())));
        }
        let l = tokens.first().map_or(0, Vec::len);
        if l == 0 || tokens.iter().any(|t| t.len() != l) {
            return Err(Error::invalid("every row must append the same, non-zero number of tokens"));
        }
        self.check_tokens(tokens.iter().flatten())?;
        // After the prompt, text positions are the index plus the row's M-RoPE delta on all axes.
        let start = cache.len() as i64;
        let positions: Vec<Vec<[i64; 3]>> =
            cache.rope_deltas().iter().map(|&d| (0..l as i64).map(|i| [start + i + d; 3]).collect()).collect();
        let flat: Vec<u32> = tokens.iter().flatten().copied().collect();
        let ids = Tensor::from_vec(flat, (tokens.len(), l), &self.device)?;
        let embeds = self.text.embed(&ids)?;
        let hidden = self.text.forward(&embeds, &positions, cache, None)?;
        Ok(self.text.logits(&hidden)?)
    }
}

impl Decoder for Qwen3VlModel {
    fn vocab_size(&self) -> usize {
        self.config.text.vocab_size
    }
    fn device(&self) -> &Device {
        &self.device
    }
    fn dtype(&self) -> DType {
        self.dtype
    }
    fn new_cache(&self) -> KvCache {
        KvCache::new(self.config.text.num_hidden_layers)
    }
    fn prefill(&self, rows: &[PromptInput], cache: &mut KvCache) -> Result<Tensor> {
        Qwen3VlModel::prefill(self, rows, cache)
    }
    fn step(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Tensor> {
        let rows: Vec<Vec<u32>> = tokens.iter().map(|&t| vec![t]).collect();
        self.extend(&rows, cache)
    }
    fn formats(&self) -> std::collections::BTreeMap<QuantFormat, usize> {
        Qwen3VlModel::formats(self)
    }
}

/// Every parameter a Qwen3-VL checkpoint with this config holds.
pub fn param_count(cfg: &ModelConfig) -> u64 {
    let t = &cfg.text;
    let (v, h, i, l) = (t.vocab_size as u64, t.hidden_size as u64, t.intermediate_size as u64, t.num_hidden_layers as u64);
    let hd = t.head_dim as u64;
    let (q, kv) = (t.num_attention_heads as u64 * hd, t.num_key_value_heads as u64 * hd);
    // q, k, v and o without biases; the q and k norms; gate, up and down; two RMSNorms.
    let layer = h * q + 2 * h * kv + q * h + 2 * hd + 3 * h * i + 2 * h;
    let text = v * h + l * layer + h + if t.tie_word_embeddings { 0 } else { v * h };
    let vc = &cfg.vision;
    let (d, vi) = (vc.hidden_size as u64, vc.intermediate_size as u64);
    // LayerNorms with biases, qkv and proj with biases, fc1 and fc2 with biases.
    let block = 4 * d + (d * 3 * d + 3 * d) + (d * d + d) + (d * vi + vi) + (vi * d + d);
    let g = d * (vc.spatial_merge_size * vc.spatial_merge_size) as u64;
    let out = vc.out_hidden_size as u64;
    let mlp = (g * g + g) + (g * out + out);
    let merger = 2 * d + mlp;
    let deepstack_merger = 2 * g + mlp;
    let patch = d * (vc.in_channels * vc.temporal_patch_size * vc.patch_size * vc.patch_size) as u64 + d;
    let positions = vc.num_position_embeddings as u64 * d;
    let vision = patch
        + positions
        + vc.depth as u64 * block
        + merger
        + vc.deepstack_visual_indexes.len() as u64 * deepstack_merger;
    text + vision
}
