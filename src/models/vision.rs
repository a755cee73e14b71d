//! Pieces the two vision towers share: the patch embedding, the 2-D rotary embedding, packed
//! attention over variable-length segments, and the patch order helpers.
//!
//! A vision tower sees an image as a sequence of patches ordered so that each 2×2 group that the
//! merger joins is contiguous (the processor's order). Every patch has a (row, column) position
//! in the patch grid; its rotary embedding rotates the first half of each head by the row and the
//! second half by the column.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;

use super::linear::{Linear, QuantFormat};

use super::text::inv_freq;

/// The Conv3d patch embedding, kernel = stride = (temporal, patch, patch), no bias. A
/// convolution whose kernel equals its stride is a matrix product over flattened patches.
pub struct PatchEmbed {
    weight: Tensor,
}

impl PatchEmbed {
    pub fn new(in_channels: usize, temporal: usize, patch: usize, dim: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        let w = vb.get((dim, in_channels, temporal, patch, patch), "proj.weight")?;
        Ok(PatchEmbed { weight: w.reshape((dim, in_channels * temporal * patch * patch))?.t()? })
    }

    /// (patches, C·T·P·P) → (patches, dim).
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.to_dtype(self.weight.dtype())?.matmul(&self.weight)
    }
}

/// Grid positions (row, column) of each patch of an image of `grid = [t, h, w]` patches, in the
/// processor's merge-group order, repeated over `t`.
pub fn patch_positions(grid: [usize; 3], merge: usize) -> Vec<[usize; 2]> {
    let [t, h, w] = grid;
    let mut pos = Vec::with_capacity(t * h * w);
    for _ in 0..t {
        for bh in 0..h / merge {
            for bw in 0..w / merge {
                for mh in 0..merge {
                    for mw in 0..merge {
                        pos.push([bh * merge + mh, bw * merge + mw]);
                    }
                }
            }
        }
    }
    pos
}

/// cos and sin tables (patches, head_dim / 2) of the vision rotary embedding for the given
/// positions: the row rotates the first quarter of frequencies, the column the second.
pub fn vision_rotary(
    positions: &[[usize; 2]],
    head_dim: usize,
    theta: f64,
    device: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    let freqs = inv_freq(head_dim / 2, theta);
    let quarter = freqs.len();
    let mut cos = Vec::with_capacity(positions.len() * quarter * 2);
    let mut sin = Vec::with_capacity(positions.len() * quarter * 2);
    for p in positions {
        for &coord in p {
            for &f in &freqs {
                let angle = (coord as f32 * f) as f64;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
    }
    let n = positions.len();
    Ok((Tensor::from_vec(cos, (n, quarter * 2), device)?, Tensor::from_vec(sin, (n, quarter * 2), device)?))
}

/// A vision tower's linear layer (in, out), with a bias if `bias`: kept in the model's dtype (the
/// tower is never quantized), as the project's [`Linear`], whose wide products on the CPU run as
/// slices on candle's thread pool like the text decoder's.
pub(crate) fn linear(in_features: usize, out_features: usize, bias: bool, vb: VarBuilder) -> candle_core::Result<Linear> {
    Linear::load(in_features, out_features, bias, QuantFormat::None, vb)
}

/// Multi-head self-attention over packed segments: patches attend only to patches of the same
/// segment (an image, or a window of one).
pub struct VisionAttention {
    qkv: Linear,
    proj: Linear,
    num_heads: usize,
    head_dim: usize,
}

impl VisionAttention {
    pub fn new(dim: usize, num_heads: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(VisionAttention {
            qkv: linear(dim, dim * 3, true, vb.pp("qkv"))?,
            proj: linear(dim, dim, true, vb.pp("proj"))?,
            num_heads,
            head_dim: dim / num_heads,
        })
    }

    /// `x` (patches, dim); `cos`/`sin` (patches, head_dim / 2) in f32; `segments` the boundaries
    /// of the attention segments (cumulative lengths starting at 0).
    pub fn forward(&self, x: &Tensor, cos: &Tensor, sin: &Tensor, segments: &[usize]) -> candle_core::Result<Tensor> {
        let (n, dim) = x.dims2()?;
        let dtype = x.dtype();
        let qkv = self.qkv.forward(x)?.reshape((n, 3, self.num_heads, self.head_dim))?.permute((1, 2, 0, 3))?;
        // Rotary embedding in f32, as transformers applies it, then back to the working dtype.
        let rope = |t: Tensor| -> candle_core::Result<Tensor> {
            let t = t.unsqueeze(0)?.to_dtype(DType::F32)?.contiguous()?;
            candle_nn::rotary_emb::rope(&t, cos, sin)?.to_dtype(dtype)
        };
        let q = rope(qkv.get(0)?)?; // (1, heads, n, hd)
        let k = rope(qkv.get(1)?)?;
        let v = qkv.get(2)?.unsqueeze(0)?.contiguous()?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();

        // Consecutive segments of equal length run as one batch.
        let mut outs = Vec::new();
        let mut i = 0;
        while i + 1 < segments.len() {
            let len = segments[i + 1] - segments[i];
            let mut j = i + 1;
            while j + 1 < segments.len() && segments[j + 1] - segments[j] == len {
                j += 1;
            }
            let count = j - i;
            let start = segments[i];
            let take = |t: &Tensor| -> candle_core::Result<Tensor> {
                t.narrow(2, start, count * len)?
                    .reshape((self.num_heads, count, len, self.head_dim))?
                    .transpose(0, 1)?
                    .contiguous()
            };
            let (qs, ks, vs) = (take(&q)?, take(&k)?, take(&v)?);
            let scores = (qs.matmul(&ks.t()?)? * scale)?.to_dtype(DType::F32)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?.to_dtype(dtype)?;
            let o = probs.matmul(&vs)?; // (count, heads, len, hd)
            outs.push(o.transpose(1, 2)?.reshape((count * len, dim))?);
            i = j;
        }
        let out = Tensor::cat(&outs, 0)?;
        self.proj.forward(&out)
    }
}

/// Cumulative segment boundaries of whole images: one segment per temporal slice of each image.
pub fn image_segments(grids: &[[usize; 3]]) -> Vec<usize> {
    let mut cu = vec![0];
    for g in grids {
        for _ in 0..g[0] {
            let last = *cu.last().unwrap_or(&0);
            cu.push(last + g[1] * g[2]);
        }
    }
    cu
}

/// Reorders the rows of `x` (n · unit rows) in groups of `unit` consecutive rows by `order`.
pub fn permute_groups(x: &Tensor, order: &[u32], unit: usize) -> candle_core::Result<Tensor> {
    let (n, d) = x.dims2()?;
    let idx = Tensor::from_slice(order, order.len(), x.device())?;
    x.reshape((n / unit, unit * d))?.index_select(&idx, 0)?.reshape((n, d))
}
