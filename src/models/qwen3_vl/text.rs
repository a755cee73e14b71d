//! The Qwen3-VL text decoder.
//!
//! A pre-norm transformer like Qwen2's, with three differences. Attention has no biases and an
//! explicit `head_dim`, and each head's queries and keys pass through their own RMSNorm before the
//! rotary embedding (QK-norm). The M-RoPE sections are *interleaved*: frequency `j` follows the
//! height position when `j ≡ 1 (mod 3)`, the width position when `j ≡ 2 (mod 3)`, each for as many
//! frequencies as its section holds, and the temporal position otherwise, so every axis sees low
//! and high frequencies alike. And DeepStack: the vision tower's intermediate features are added
//! to the hidden states at the image positions after each of the first decoder layers.
//!
//! The rest is the Qwen2 decoder's ([`crate::models::text`]): its rotary tables, grouped-query
//! attention, causal mask, MLP and output head. The seven linear layers of every decoder layer
//! (q, k, v, o, gate, up, down) are [`Linear`]s, quantized at load time when asked; embeddings,
//! norms and (by default) the head stay in the model's dtype.

use candle_core::{DType, Module, Tensor};
use candle_nn::{rms_norm, Embedding, RmsNorm, VarBuilder};

use crate::models::cache::KvCache;
use crate::models::config::TextConfig;
use crate::models::linear::{FusedLinear, Linear, QuantFormat, Quantization};
use crate::models::text::{causal_mask, count_formats, grouped_attention, inv_freq, output_head, token_embedding, Mlp, Rotary};

/// Which position (0 = temporal, 1 = height, 2 = width) rotates each of the `half` frequencies.
pub fn interleaved_axes(half: usize, mrope_section: &[usize]) -> Vec<usize> {
    (0..half)
        .map(|j| match j % 3 {
            1 if j < 3 * mrope_section[1] => 1,
            2 if j < 3 * mrope_section[2] => 2,
            _ => 0,
        })
        .collect()
}

/// Vision features to add to the hidden states: the flat (row · token) index of every image
/// token, and one (image tokens, hidden) tensor per decoder layer that receives them.
pub struct DeepStack<'a> {
    pub slots: &'a Tensor,
    pub features: &'a [Tensor],
}

struct Attention {
    /// `q_proj`, `k_proj` and `v_proj` as one product.
    qkv_proj: FusedLinear<3>,
    o_proj: Linear,
    q_norm: RmsNorm,
    k_norm: RmsNorm,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    fn new(cfg: &TextConfig, format: QuantFormat, vb: VarBuilder) -> candle_core::Result<Self> {
        let h = cfg.hidden_size;
        let (nh, nkv, hd) = (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim);
        // Released Qwen3-VL models have no attention biases (`attention_bias: false`); weights that
        // carry them would otherwise load and be silently ignored.
        if vb.contains_tensor("q_proj.bias") {
            candle_core::bail!("attention biases ({}) are not supported for Qwen3-VL", "q_proj.bias");
        }
        Ok(Attention {
            qkv_proj: FusedLinear::load(h, [(nh * hd, vb.pp("q_proj")), (nkv * hd, vb.pp("k_proj")), (nkv * hd, vb.pp("v_proj"))], false, format)?,
            o_proj: Linear::load(nh * hd, h, false, format, vb.pp("o_proj"))?,
            q_norm: rms_norm(hd, cfg.rms_norm_eps, vb.pp("q_norm"))?,
            k_norm: rms_norm(hd, cfg.rms_norm_eps, vb.pp("k_norm"))?,
            num_heads: nh,
            num_kv_heads: nkv,
            head_dim: hd,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        rotary: &Rotary,
        mask: Option<&Tensor>,
        cache: &mut KvCache,
        layer: usize,
    ) -> candle_core::Result<Tensor> {
        let (b, l, _) = x.dims3()?;
        let [q, k, v] = self.qkv_proj.forward(x)?;
        let q = self.q_norm.forward(&q.reshape((b, l, self.num_heads, self.head_dim))?)?.transpose(1, 2)?;
        let k = self.k_norm.forward(&k.reshape((b, l, self.num_kv_heads, self.head_dim))?)?.transpose(1, 2)?;
        let v = v.reshape((b, l, self.num_kv_heads, self.head_dim))?.transpose(1, 2)?;
        let q = rotary.apply(&q)?;
        let k = rotary.apply(&k)?;
        let (k, v) = cache.append(layer, &k, &v.contiguous()?)?;
        let out = grouped_attention(&q, &k, &v, mask, self.num_heads, self.num_kv_heads, self.head_dim)?;
        self.o_proj.forward(&out)
    }
}

struct DecoderLayer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

/// Embeddings, decoder layers, final norm and the language-model head.
pub struct TextDecoder {
    embed_tokens: Embedding,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    lm_head: Linear,
    inv_freq: Vec<f32>,
    rotary_axes: Vec<usize>,
    cfg: TextConfig,
    /// The model's dtype, which the embedding's lookups are widened to.
    dtype: DType,
}

impl TextDecoder {
    /// `vb` points at `model.language_model.`, `lm_head` at `lm_head.`; tied embeddings (no
    /// head in the files) reuse the embedding matrix. The seven linear layers of every decoder
    /// layer are quantized as `quant` says, the head as `quant.head` says.
    pub fn new(cfg: &TextConfig, vb: VarBuilder, lm_head: VarBuilder, quant: Quantization) -> candle_core::Result<Self> {
        let h = cfg.hidden_size;
        let dtype = vb.dtype();
        let embed_tokens = token_embedding(cfg, vb.pp("embed_tokens"), quant)?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for n in 0..cfg.num_hidden_layers {
            let vb = vb.pp("layers").pp(n);
            layers.push(DecoderLayer {
                input_layernorm: rms_norm(h, cfg.rms_norm_eps, vb.pp("input_layernorm"))?,
                self_attn: Attention::new(cfg, quant.format, vb.pp("self_attn"))?,
                post_attention_layernorm: rms_norm(h, cfg.rms_norm_eps, vb.pp("post_attention_layernorm"))?,
                mlp: Mlp::new(cfg, quant.format, vb.pp("mlp"))?,
            });
        }
        let norm = rms_norm(h, cfg.rms_norm_eps, vb.pp("norm"))?;
        let lm_head = output_head(cfg, &embed_tokens, lm_head, quant)?;
        let inv_freq = inv_freq(cfg.head_dim, cfg.rope_theta);
        let rotary_axes = interleaved_axes(inv_freq.len(), &cfg.mrope_section);
        Ok(TextDecoder { embed_tokens, layers, norm, lm_head, inv_freq, rotary_axes, cfg: cfg.clone(), dtype })
    }

    /// How many linear layers (the head included) hold their weight in each format: what a
    /// quantized load actually did, fallbacks included.
    pub fn formats(&self) -> std::collections::BTreeMap<QuantFormat, usize> {
        let layers = self.layers.iter().flat_map(|l| {
            let a = &l.self_attn;
            [a.qkv_proj.format_and_parts(), (a.o_proj.format(), 1)].into_iter().chain(l.mlp.formats())
        });
        count_formats(layers.chain(std::iter::once((self.lm_head.format(), 1))))
    }

    /// Token embeddings of `ids` (rows, tokens).
    pub fn embed(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        self.embed_tokens.forward(ids)?.to_dtype(self.dtype)
    }

    /// Runs the decoder layers over `embeds` (rows, tokens, hidden) at the given 3-D positions,
    /// appending to `cache`, adding `deepstack` features after the first layers, and returns the
    /// final-normed hidden state of each row's last token, (rows, hidden).
    pub fn forward(
        &self,
        embeds: &Tensor,
        positions: &[Vec<[i64; 3]>],
        cache: &mut KvCache,
        deepstack: Option<DeepStack>,
    ) -> candle_core::Result<Tensor> {
        let (rows, l, hidden) = embeds.dims3()?;
        let device = embeds.device();
        let rotary = Rotary::with_axes(positions, &self.inv_freq, &self.rotary_axes, embeds.dtype(), device)?;
        let mask = if l > 1 { Some(causal_mask(self.cfg.num_attention_heads / self.cfg.num_key_value_heads, l, cache.len(), device)?) } else { None };
        let mut x = embeds.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            let h = layer.self_attn.forward(&layer.input_layernorm.forward(&x)?, &rotary, mask.as_ref(), cache, i)?;
            let x1 = (x + h)?;
            let h = layer.mlp.forward(&layer.post_attention_layernorm.forward(&x1)?)?;
            x = (x1 + h)?;
            if let Some(features) = deepstack.as_ref().and_then(|d| d.features.get(i).map(|f| (d.slots, f))) {
                let (slots, f) = features;
                let flat = x.reshape((rows * l, hidden))?;
                x = flat.index_add(slots, &f.to_dtype(flat.dtype())?, 0)?.reshape((rows, l, hidden))?;
            }
        }
        cache.advance(l);
        let last = x.narrow(1, l - 1, 1)?.squeeze(1)?;
        self.norm.forward(&last)
    }

    /// Language-model logits (rows, vocab) in f32 for final hidden states (rows, hidden).
    pub fn logits(&self, hidden: &Tensor) -> candle_core::Result<Tensor> {
        self.lm_head.forward(hidden)?.to_dtype(DType::F32)
    }
}

#[cfg(test)]
mod tests {
    use super::interleaved_axes;

    #[test]
    fn sections_interleave_then_the_temporal_axis_takes_the_rest() {
        // Qwen3-VL's [24, 20, 20] over 64 frequencies: t h w t h w … for 60, then t for 4.
        let axes = interleaved_axes(64, &[24, 20, 20]);
        assert_eq!(&axes[..6], &[0, 1, 2, 0, 1, 2]);
        assert_eq!(&axes[57..], &[0, 1, 2, 0, 0, 0, 0]);
        assert_eq!(axes.iter().filter(|&&a| a == 1).count(), 20);
        assert_eq!(axes.iter().filter(|&&a| a == 0).count(), 24);
        // The fixtures' [5, 4, 3] over 12: the width section ends before the height section.
        assert_eq!(interleaved_axes(12, &[5, 4, 3]), vec![0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 0]);
    }
}
