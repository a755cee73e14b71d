//! The Qwen2 text decoder shared by Qwen2-VL and Qwen2.5-VL, and the parts of it that the
//! Qwen3-VL decoder ([`super::qwen3_vl::text`]) shares: rotary tables, grouped-query attention,
//! the causal mask, the MLP and the output head.
//!
//! A pre-norm transformer with grouped-query attention (q/k/v projections with bias, output
//! without), RMSNorm, a SwiGLU MLP, and multimodal rotary embeddings (M-RoPE): every token has a
//! temporal, a height and a width position, and the rotary half-dimension is split into three
//! sections (`mrope_section`) that rotate by one of the three positions each. Text tokens carry
//! the same value in all three.
//!
//! The seven linear layers of every decoder layer (q, k, v, o, gate, up, down) are
//! [`Linear`](super::linear::Linear)s, quantized at load time when asked; embeddings, norms,
//! biases and (by default) the output head stay in the model's dtype.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{embedding, rms_norm, Embedding, RmsNorm, VarBuilder};

use super::cache::KvCache;
use super::config::TextConfig;
use super::linear::{FusedLinear, Linear, QuantFormat, Quantization};

/// Rotary tables for one forward: cos and sin of shape (rows, tokens, head_dim / 2).
pub struct Rotary {
    cos: Tensor,
    sin: Tensor,
}

/// Inverse frequencies of the rotary embedding, computed in f32 as transformers does.
pub(crate) fn inv_freq(dim: usize, theta: f64) -> Vec<f32> {
    (0..dim)
        .step_by(2)
        .map(|i| {
            let exponent = i as f32 / dim as f32;
            1.0f32 / (theta as f32).powf(exponent)
        })
        .collect()
}

impl Rotary {
    /// Builds the tables for `positions[row][token] = [t, h, w]`.
    pub fn new(
        positions: &[Vec<[i64; 3]>],
        inv_freq: &[f32],
        mrope_section: &[usize],
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Self> {
        // Which of the three positions rotates each frequency: contiguous sections.
        let mut axis = Vec::with_capacity(inv_freq.len());
        for (a, &n) in mrope_section.iter().enumerate() {
            axis.extend(std::iter::repeat_n(a, n));
        }
        Self::with_axes(positions, inv_freq, &axis, dtype, device)
    }

    /// Builds the tables when frequency `j` rotates by position `axis[j]` (0 = t, 1 = h, 2 = w).
    pub(crate) fn with_axes(
        positions: &[Vec<[i64; 3]>],
        inv_freq: &[f32],
        axis: &[usize],
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Self> {
        let rows = positions.len();
        let tokens = positions.first().map_or(0, Vec::len);
        let half = inv_freq.len();
        let mut cos = Vec::with_capacity(rows * tokens * half);
        let mut sin = Vec::with_capacity(rows * tokens * half);
        for row in positions {
            for pos in row {
                for (j, &f) in inv_freq.iter().enumerate() {
                    // The angle is rounded to f32 as torch computes it; cos/sin then in f64
                    // to land on the correctly rounded f32.
                    let angle = (pos[axis[j]] as f32 * f) as f64;
                    cos.push(angle.cos() as f32);
                    sin.push(angle.sin() as f32);
                }
            }
        }
        let cos = Tensor::from_vec(cos, (rows, tokens, half), device)?.to_dtype(dtype)?;
        let sin = Tensor::from_vec(sin, (rows, tokens, half), device)?.to_dtype(dtype)?;
        Ok(Rotary { cos, sin })
    }

    pub(crate) fn apply(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::rotary_emb::rope(&x.contiguous()?, &self.cos, &self.sin)
    }
}

struct Attention {
    /// `q_proj`, `k_proj` and `v_proj` as one product.
    qkv_proj: FusedLinear<3>,
    o_proj: Linear,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    fn new(cfg: &TextConfig, q: QuantFormat, vb: VarBuilder) -> candle_core::Result<Self> {
        let h = cfg.hidden_size;
        let (nh, nkv, hd) = (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim);
        Ok(Attention {
            qkv_proj: FusedLinear::load(h, [(nh * hd, vb.pp("q_proj")), (nkv * hd, vb.pp("k_proj")), (nkv * hd, vb.pp("v_proj"))], true, q)?,
            o_proj: Linear::load(nh * hd, h, false, q, vb.pp("o_proj"))?,
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
        let q = q.reshape((b, l, self.num_heads, self.head_dim))?.transpose(1, 2)?;
        let k = k.reshape((b, l, self.num_kv_heads, self.head_dim))?.transpose(1, 2)?;
        let v = v.reshape((b, l, self.num_kv_heads, self.head_dim))?.transpose(1, 2)?;
        let q = rotary.apply(&q)?;
        let k = rotary.apply(&k)?;
        let (k, v) = cache.append(layer, &k, &v.contiguous()?)?;
        let out = grouped_attention(&q, &k, &v, mask, self.num_heads, self.num_kv_heads, self.head_dim)?;
        self.o_proj.forward(&out)
    }
}

/// Scaled dot-product attention of queries (b, heads, l, d) over cached keys and values (b,
/// kv_heads, s, d), softmax in f32; the heads' outputs side by side, (b, l, heads · d). Every
/// family's text decoder attends through it.
///
/// Grouped-query attention without copying keys: the query heads that share a key head are
/// stacked along the token axis, (b, kv, rep · l, d) against (b, kv, s, d), which is why the
/// mask's rows repeat per query head ([`causal_mask`]).
pub(crate) fn grouped_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
) -> candle_core::Result<Tensor> {
    let (b, _, l, _) = q.dims4()?;
    let rep = num_heads / num_kv_heads;
    let q = q.reshape((b, num_kv_heads, rep * l, head_dim))?;
    let scale = 1.0 / (head_dim as f64).sqrt();
    let scores = (q.matmul(&k.t()?)? * scale)?.to_dtype(DType::F32)?;
    let scores = match mask {
        Some(m) => scores.broadcast_add(m)?,
        None => scores,
    };
    let probs = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(v.dtype())?;
    let out = probs.matmul(v)?; // (b, kv, rep · l, d)
    out.reshape((b, num_heads, l, head_dim))?.transpose(1, 2)?.reshape((b, l, num_heads * head_dim))
}

/// The SwiGLU MLP of a decoder layer: `down(silu(gate(x)) · up(x))`, no biases.
pub(crate) struct Mlp {
    /// `gate_proj` and `up_proj` as one product.
    gate_up_proj: FusedLinear<2>,
    down_proj: Linear,
}

impl Mlp {
    pub(crate) fn new(cfg: &TextConfig, q: QuantFormat, vb: VarBuilder) -> candle_core::Result<Self> {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Mlp {
            gate_up_proj: FusedLinear::load(h, [(i, vb.pp("gate_proj")), (i, vb.pp("up_proj"))], false, q)?,
            down_proj: Linear::load(i, h, false, q, vb.pp("down_proj"))?,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let [gate, up] = self.gate_up_proj.forward(x)?;
        self.down_proj.forward(&(candle_nn::ops::silu(&gate)? * up)?)
    }

    /// The formats of its checkpoint layers (gate, up, down), with how many each entry stands for.
    pub(crate) fn formats(&self) -> [(QuantFormat, usize); 2] {
        [self.gate_up_proj.format_and_parts(), (self.down_proj.format(), 1)]
    }
}

/// The output head: the checkpoint's `lm_head.weight`, or with tied embeddings and no head in the
/// files, the embedding matrix; in `format` (the head stays unquantized unless a caller asks).
pub(crate) fn output_head(cfg: &TextConfig, embed_tokens: &Embedding, lm_head: VarBuilder, quant: Quantization) -> candle_core::Result<Linear> {
    let weight = if cfg.tie_word_embeddings && !lm_head.contains_tensor("weight") {
        embed_tokens.embeddings().clone()
    } else {
        let lm_head = match quant.vocab_dtype {
            Some(dtype) if quant.head == QuantFormat::None => lm_head.to_dtype(dtype),
            _ => lm_head,
        };
        lm_head.get((cfg.vocab_size, cfg.hidden_size), "weight")?
    };
    match weight.dtype() {
        DType::BF16 | DType::F16 if quant.head == QuantFormat::None && quant.vocab_dtype.is_some() => Linear::stored_16_bit(weight, None),
        _ => Linear::from_weight(weight, None, quant.head),
    }
}

/// The input embedding, held in `quant.vocab_dtype` where that is set (see [`Quantization`]).
pub(crate) fn token_embedding(cfg: &TextConfig, vb: VarBuilder, quant: Quantization) -> candle_core::Result<Embedding> {
    let vb = match quant.vocab_dtype {
        Some(dtype) => vb.to_dtype(dtype),
        None => vb,
    };
    embedding(cfg.vocab_size, cfg.hidden_size, vb)
}

/// How many checkpoint layers hold their weight in each format, from `(format, layers)` entries
/// (a fused product stands for several layers).
pub(crate) fn count_formats(entries: impl Iterator<Item = (QuantFormat, usize)>) -> std::collections::BTreeMap<QuantFormat, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for (format, n) in entries {
        *counts.entry(format).or_insert(0) += n;
    }
    counts
}

struct DecoderLayer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

/// The text decoder: embeddings, decoder layers, final norm and the language-model head.
pub struct TextDecoder {
    embed_tokens: Embedding,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    lm_head: Linear,
    inv_freq: Vec<f32>,
    cfg: TextConfig,
    /// The model's dtype, which the embedding's lookups are widened to.
    dtype: DType,
}

impl TextDecoder {
    /// `vb` points at the decoder's weights (`model.` on the Hub), `lm_head` at the head's
    /// (`lm_head.`); with tied embeddings the head reuses the embedding matrix. The linear layers
    /// are quantized as `quant` says.
    pub fn new(cfg: &TextConfig, vb: VarBuilder, lm_head: VarBuilder, quant: Quantization) -> candle_core::Result<Self> {
        let q = quant.format;
        let dtype = vb.dtype();
        let embed_tokens = token_embedding(cfg, vb.pp("embed_tokens"), quant)?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let vb = vb.pp("layers").pp(i);
            layers.push(DecoderLayer {
                input_layernorm: rms_norm(cfg.hidden_size, cfg.rms_norm_eps, vb.pp("input_layernorm"))?,
                self_attn: Attention::new(cfg, q, vb.pp("self_attn"))?,
                post_attention_layernorm: rms_norm(
                    cfg.hidden_size,
                    cfg.rms_norm_eps,
                    vb.pp("post_attention_layernorm"),
                )?,
                mlp: Mlp::new(cfg, q, vb.pp("mlp"))?,
            });
        }
        let norm = rms_norm(cfg.hidden_size, cfg.rms_norm_eps, vb.pp("norm"))?;
        let lm_head = output_head(cfg, &embed_tokens, lm_head, quant)?;
        Ok(TextDecoder { embed_tokens, layers, norm, lm_head, inv_freq: inv_freq(cfg.head_dim, cfg.rope_theta), cfg: cfg.clone(), dtype })
    }

    pub fn config(&self) -> &TextConfig {
        &self.cfg
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
    /// appending to `cache`, and returns the final-normed hidden state of the last token of each
    /// row, (rows, hidden).
    pub fn forward(
        &self,
        embeds: &Tensor,
        positions: &[Vec<[i64; 3]>],
        cache: &mut KvCache,
    ) -> candle_core::Result<Tensor> {
        let (_, l, _) = embeds.dims3()?;
        let device = embeds.device();
        let rotary = Rotary::new(positions, &self.inv_freq, &self.cfg.mrope_section, embeds.dtype(), device)?;
        let mask = if l > 1 { Some(causal_mask(self.cfg.num_attention_heads / self.cfg.num_key_value_heads, l, cache.len(), device)?) } else { None };
        let mut x = embeds.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            let residual = &x;
            let h = layer.input_layernorm.forward(&x)?;
            let h = layer.self_attn.forward(&h, &rotary, mask.as_ref(), cache, i)?;
            let x1 = (residual + h)?;
            let h = layer.post_attention_layernorm.forward(&x1)?;
            let h = layer.mlp.forward(&h)?;
            x = (x1 + h)?;
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

/// Additive causal mask for `l` new tokens after `past` cached ones, with rows repeated for each
/// of the `rep` query heads that share a key head: shape (rep * l, past + l). Every family's text
/// decoder attends through it.
pub(crate) fn causal_mask(rep: usize, l: usize, past: usize, device: &Device) -> candle_core::Result<Tensor> {
    let s = past + l;
    let mut m = Vec::with_capacity(rep * l * s);
    for _ in 0..rep {
        for i in 0..l {
            m.extend((0..s).map(|j| if j > past + i { f32::NEG_INFINITY } else { 0.0 }));
        }
    }
    Tensor::from_vec(m, (rep * l, s), device)
}
