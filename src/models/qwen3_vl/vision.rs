//! The Qwen3-VL vision tower.
//!
//! Patches of 16 pixels (two frames) are embedded by a Conv3d with bias, and a learned position
//! embedding is added: a square table of `side × side` embeddings (`num_position_embeddings`)
//! resampled bilinearly, corners aligned, to each image's patch grid. Blocks are pre-norm with
//! LayerNorm, full attention over each image with the 2-D rotary embedding, and a two-layer MLP
//! (tanh-approximated GELU). The merger joins each 2×2 group of patches into one language-model
//! token. For DeepStack, the outputs of the blocks in `deepstack_visual_indexes` also go through
//! mergers of their own, which normalise the joined group rather than each patch; the text
//! decoder adds those features to its first layers' hidden states.

use candle_core::{Module, Tensor};
use candle_nn::{embedding, layer_norm, Embedding, LayerNorm, VarBuilder};

use crate::models::config::VisionConfig;
use crate::models::qwen2_5_vl::activation;
use crate::models::linear::Linear;
use crate::models::vision::{image_segments, linear, patch_positions, vision_rotary, VisionAttention};

/// The Conv3d patch embedding, kernel = stride = (temporal, patch, patch), with bias: a matrix
/// product over flattened patches.
struct PatchEmbed {
    weight: Tensor,
    bias: Tensor,
}

impl PatchEmbed {
    fn new(cfg: &VisionConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let (d, p) = (cfg.hidden_size, cfg.patch_size);
        let w = vb.get((d, cfg.in_channels, cfg.temporal_patch_size, p, p), "proj.weight")?;
        let weight = w.reshape((d, cfg.in_channels * cfg.temporal_patch_size * p * p))?.t()?;
        Ok(PatchEmbed { weight, bias: vb.get(d, "proj.bias")? })
    }

    /// (patches, C·T·P·P) → (patches, hidden).
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.to_dtype(self.weight.dtype())?.matmul(&self.weight)?.broadcast_add(&self.bias)
    }
}

/// Joins each `merge`×`merge` group of patches into one token: LayerNorm (of each patch, or of
/// the joined group for the DeepStack mergers), then a two-layer MLP with exact GELU.
struct Merger {
    norm: LayerNorm,
    norm_after_join: bool,
    linear_fc1: Linear,
    linear_fc2: Linear,
    group_dim: usize,
}

impl Merger {
    fn new(cfg: &VisionConfig, norm_after_join: bool, vb: VarBuilder) -> candle_core::Result<Self> {
        let group_dim = cfg.hidden_size * cfg.spatial_merge_size * cfg.spatial_merge_size;
        let norm_dim = if norm_after_join { group_dim } else { cfg.hidden_size };
        Ok(Merger {
            norm: layer_norm(norm_dim, 1e-6, vb.pp("norm"))?,
            norm_after_join,
            linear_fc1: linear(group_dim, group_dim, true, vb.pp("linear_fc1"))?,
            linear_fc2: linear(group_dim, cfg.out_hidden_size, true, vb.pp("linear_fc2"))?,
            group_dim,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let groups = x.elem_count() / self.group_dim;
        let x = if self.norm_after_join {
            self.norm.forward(&x.reshape((groups, self.group_dim))?)?
        } else {
            self.norm.forward(x)?.reshape((groups, self.group_dim))?
        };
        self.linear_fc2.forward(&self.linear_fc1.forward(&x)?.gelu_erf()?)
    }
}

struct Block {
    norm1: LayerNorm,
    norm2: LayerNorm,
    attn: VisionAttention,
    linear_fc1: Linear,
    linear_fc2: Linear,
}

/// What the tower makes of a batch of images: the merged tokens (tokens, out_hidden) and one
/// DeepStack feature tensor of the same shape per entry of `deepstack_visual_indexes`.
pub struct VisionOutput {
    pub tokens: Tensor,
    pub deepstack: Vec<Tensor>,
}

pub struct VisionTower {
    patch_embed: PatchEmbed,
    pos_embed: Embedding,
    blocks: Vec<Block>,
    merger: Merger,
    deepstack_mergers: Vec<Merger>,
    cfg: VisionConfig,
}

/// For each patch of the images (processor order), the four learned-table entries it
/// interpolates and their weights: bilinear with corners aligned, so the grid's first and last
/// patches sit exactly on the table's first and last entries. Computed in f32 as transformers does.
pub fn position_taps(grids: &[[usize; 3]], side: usize, merge: usize) -> (Vec<[u32; 4]>, Vec<[f32; 4]>) {
    // The source coordinate on one axis of length `size` and its two taps with their weights.
    let axis = |i: usize, size: usize| -> ([usize; 2], [f32; 2]) {
        let src = i as f32 * (side - 1) as f32 / (size.max(2) - 1) as f32;
        let floor = src.floor();
        let lo = (floor as usize).min(side - 1);
        let hi = (floor as usize + 1).min(side - 1);
        // The hat kernel at distances (src - floor) and |src - floor - 1|, rounded as torch
        // rounds them (1 - (1 - frac) need not equal frac in f32).
        let weight = |offset: f32| (1.0 - (src - floor - offset).abs()).max(0.0);
        ([lo, hi], [weight(0.0), weight(1.0)])
    };
    let mut taps = Vec::new();
    let mut weights = Vec::new();
    for &grid in grids {
        let [_, h, w] = grid;
        for [row, col] in patch_positions(grid, merge) {
            let (ht, hw) = axis(row, h);
            let (wt, ww) = axis(col, w);
            let mut t = [0u32; 4];
            let mut wgt = [0f32; 4];
            for a in 0..2 {
                for b in 0..2 {
                    t[a * 2 + b] = (ht[a] * side + wt[b]) as u32;
                    wgt[a * 2 + b] = hw[a] * ww[b];
                }
            }
            taps.push(t);
            weights.push(wgt);
        }
    }
    (taps, weights)
}

impl VisionTower {
    pub fn new(cfg: &VisionConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let (d, i) = (cfg.hidden_size, cfg.intermediate_size);
        let mut blocks = Vec::with_capacity(cfg.depth);
        for n in 0..cfg.depth {
            let vb = vb.pp("blocks").pp(n);
            blocks.push(Block {
                norm1: layer_norm(d, 1e-6, vb.pp("norm1"))?,
                norm2: layer_norm(d, 1e-6, vb.pp("norm2"))?,
                attn: VisionAttention::new(d, cfg.num_heads, vb.pp("attn"))?,
                linear_fc1: linear(d, i, true, vb.pp("mlp").pp("linear_fc1"))?,
                linear_fc2: linear(i, d, true, vb.pp("mlp").pp("linear_fc2"))?,
            });
        }
        let deepstack_mergers = (0..cfg.deepstack_visual_indexes.len())
            .map(|n| Merger::new(cfg, true, vb.pp("deepstack_merger_list").pp(n)))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(VisionTower {
            patch_embed: PatchEmbed::new(cfg, vb.pp("patch_embed"))?,
            pos_embed: embedding(cfg.num_position_embeddings, d, vb.pp("pos_embed"))?,
            blocks,
            merger: Merger::new(cfg, false, vb.pp("merger"))?,
            deepstack_mergers,
            cfg: cfg.clone(),
        })
    }

    /// The learned position embeddings of every patch, (patches, hidden).
    fn position_embeddings(&self, grids: &[[usize; 3]]) -> candle_core::Result<Tensor> {
        let side = (self.cfg.num_position_embeddings as f64).sqrt() as usize;
        let (taps, weights) = position_taps(grids, side, self.cfg.spatial_merge_size);
        let n = taps.len();
        let device = self.pos_embed.embeddings().device();
        let table = self.pos_embed.embeddings();
        let mut sum: Option<Tensor> = None;
        for k in 0..4 {
            let idx = Tensor::from_vec(taps.iter().map(|t| t[k]).collect::<Vec<_>>(), n, device)?;
            let w = Tensor::from_vec(weights.iter().map(|w| w[k]).collect::<Vec<_>>(), (n, 1), device)?;
            let term = table.index_select(&idx, 0)?.broadcast_mul(&w.to_dtype(table.dtype())?)?;
            sum = Some(match sum {
                None => term,
                Some(s) => (s + term)?,
            });
        }
        sum.ok_or_else(|| candle_core::Error::Msg("no position taps".into()))
    }

    /// `pixels` (patches, C·T·P·P) of the images with the given grids → merged tokens and
    /// DeepStack features.
    pub fn forward(&self, pixels: &Tensor, grids: &[[usize; 3]]) -> candle_core::Result<VisionOutput> {
        let merge = self.cfg.spatial_merge_size;
        let segments = image_segments(grids);
        let positions: Vec<[usize; 2]> = grids.iter().flat_map(|&g| patch_positions(g, merge)).collect();
        let x = self.patch_embed.forward(pixels)?;
        let mut x = (&x + self.position_embeddings(grids)?.to_dtype(x.dtype())?)?;
        let head_dim = self.cfg.hidden_size / self.cfg.num_heads;
        let (cos, sin) = vision_rotary(&positions, head_dim, self.cfg.rope_theta, x.device())?;
        let mut deepstack = Vec::with_capacity(self.deepstack_mergers.len());
        for (n, b) in self.blocks.iter().enumerate() {
            let h = b.attn.forward(&b.norm1.forward(&x)?, &cos, &sin, &segments)?;
            let x1 = (x + h)?;
            let h = activation(&b.linear_fc1.forward(&b.norm2.forward(&x1)?)?, self.cfg.hidden_act)?;
            x = (x1 + b.linear_fc2.forward(&h)?)?;
            if let Some(k) = self.cfg.deepstack_visual_indexes.iter().position(|&i| i == n) {
                deepstack.push(self.deepstack_mergers[k].forward(&x)?);
            }
        }
        Ok(VisionOutput { tokens: self.merger.forward(&x)?, deepstack })
    }
}

#[cfg(test)]
mod tests {
    use super::position_taps;

    #[test]
    fn the_grid_corners_land_on_the_table_corners() {
        // A 2×4 patch grid on a 4×4 table: rows 0 and 1 map to table rows 0 and 3.
        let (taps, weights) = position_taps(&[[1, 2, 4]], 4, 2);
        // Processor order: the first 2×2 group is patches (0,0) (0,1) (1,0) (1,1).
        assert_eq!(taps[0][0], 0);
        assert_eq!(weights[0], [1.0, 0.0, 0.0, 0.0]);
        // (1, 1): row 3 of the table, column 1 of 3 → src 1.0 exactly.
        assert_eq!(taps[3][0], 3 * 4 + 1);
        assert_eq!(weights[3][0], 1.0);
        for w in &weights {
            assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
    }
}
