//! The Qwen2.5-VL vision tower.
//!
//! Patches are embedded, then reordered so that the patches of each attention window (an
//! 8×8-patch square by default: `window_size` pixels) are contiguous. Most blocks attend within
//! windows; the blocks listed in `fullatt_block_indexes` attend over the whole image. Blocks are
//! pre-norm with RMSNorm and a SwiGLU MLP. The merger joins each 2×2 group of patches into one
//! language-model token, and the window order is undone at the end.

use candle_core::{Module, Tensor};
use candle_nn::{rms_norm, RmsNorm, VarBuilder};

use super::config::{VisionAct, VisionConfig};
use super::linear::Linear;
use super::vision::{image_segments, linear, patch_positions, permute_groups, vision_rotary, PatchEmbed, VisionAttention};

struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
    act: VisionAct,
}

impl Mlp {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let gate = activation(&self.gate_proj.forward(x)?, self.act)?;
        self.down_proj.forward(&(gate * self.up_proj.forward(x)?)?)
    }
}

pub(crate) fn activation(x: &Tensor, act: VisionAct) -> candle_core::Result<Tensor> {
    match act {
        VisionAct::Silu => candle_nn::ops::silu(x),
        VisionAct::Gelu => x.gelu_erf(),
        VisionAct::GeluTanh => x.gelu(),
        VisionAct::QuickGelu => x * candle_nn::ops::sigmoid(&(x * 1.702)?)?,
    }
}

struct Block {
    norm1: RmsNorm,
    norm2: RmsNorm,
    attn: VisionAttention,
    mlp: Mlp,
}

/// Joins each `merge`×`merge` group of patches into one token: RMSNorm, then a two-layer MLP
/// with exact GELU.
struct Merger {
    ln_q: RmsNorm,
    fc1: Linear,
    fc2: Linear,
    group_dim: usize,
}

impl Merger {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = self.ln_q.forward(x)?;
        let n = x.elem_count() / self.group_dim;
        let x = x.reshape((n, self.group_dim))?;
        self.fc2.forward(&self.fc1.forward(&x)?.gelu_erf()?)
    }
}

pub struct VisionTower {
    patch_embed: PatchEmbed,
    blocks: Vec<Block>,
    merger: Merger,
    cfg: VisionConfig,
}

/// Window order and window boundaries of a batch of images, as Qwen2.5-VL computes them.
/// Returns the order of merge groups (indices into the processor's order) and the cumulative
/// patch counts of the non-empty windows.
pub fn window_index(grids: &[[usize; 3]], cfg: &VisionConfig) -> (Vec<u32>, Vec<usize>) {
    let merge = cfg.spatial_merge_size;
    let win = cfg.window_size / merge / cfg.patch_size; // window side in merge groups
    let unit = merge * merge;
    let mut order = Vec::new();
    let mut cu = vec![0usize];
    let mut base = 0usize;
    for &[t, h, w] in grids {
        let (gh, gw) = (h / merge, w / merge);
        let (nwh, nww) = (gh.div_ceil(win), gw.div_ceil(win));
        for ti in 0..t {
            for wy in 0..nwh {
                for wx in 0..nww {
                    let mut count = 0;
                    for y in wy * win..((wy + 1) * win).min(gh) {
                        for x in wx * win..((wx + 1) * win).min(gw) {
                            order.push((base + ti * gh * gw + y * gw + x) as u32);
                            count += 1;
                        }
                    }
                    if count > 0 {
                        let last = *cu.last().unwrap_or(&0);
                        cu.push(last + count * unit);
                    }
                }
            }
        }
        base += t * gh * gw;
    }
    (order, cu)
}

impl VisionTower {
    pub fn new(cfg: &VisionConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let d = cfg.hidden_size;
        let patch_embed = PatchEmbed::new(cfg.in_channels, cfg.temporal_patch_size, cfg.patch_size, d, vb.pp("patch_embed"))?;
        let mut blocks = Vec::with_capacity(cfg.depth);
        for i in 0..cfg.depth {
            let vb = vb.pp("blocks").pp(i);
            let m = vb.pp("mlp");
            blocks.push(Block {
                norm1: rms_norm(d, 1e-6, vb.pp("norm1"))?,
                norm2: rms_norm(d, 1e-6, vb.pp("norm2"))?,
                attn: VisionAttention::new(d, cfg.num_heads, vb.pp("attn"))?,
                mlp: Mlp {
                    gate_proj: linear(d, cfg.intermediate_size, true, m.pp("gate_proj"))?,
                    up_proj: linear(d, cfg.intermediate_size, true, m.pp("up_proj"))?,
                    down_proj: linear(cfg.intermediate_size, d, true, m.pp("down_proj"))?,
                    act: cfg.hidden_act,
                },
            });
        }
        let group_dim = d * cfg.spatial_merge_size * cfg.spatial_merge_size;
        let mvb = vb.pp("merger");
        let merger = Merger {
            ln_q: rms_norm(d, 1e-6, mvb.pp("ln_q"))?,
            fc1: linear(group_dim, group_dim, true, mvb.pp("mlp").pp(0))?,
            fc2: linear(group_dim, cfg.out_hidden_size, true, mvb.pp("mlp").pp(2))?,
            group_dim,
        };
        Ok(VisionTower { patch_embed, blocks, merger, cfg: cfg.clone() })
    }

    /// `pixels` (patches, C·T·P·P) of the images with the given grids → (tokens, out_hidden).
    pub fn forward(&self, pixels: &Tensor, grids: &[[usize; 3]]) -> candle_core::Result<Tensor> {
        let merge = self.cfg.spatial_merge_size;
        let unit = merge * merge;
        let (order, window_cu) = window_index(grids, &self.cfg);
        let full_cu = image_segments(grids);

        let x = self.patch_embed.forward(pixels)?;
        let x = permute_groups(&x, &order, unit)?;
        let positions: Vec<[usize; 2]> = grids.iter().flat_map(|&g| patch_positions(g, merge)).collect();
        let (cos, sin) = vision_rotary(&positions, self.cfg.hidden_size / self.cfg.num_heads, self.cfg.rope_theta, x.device())?;
        let cos = permute_groups(&cos, &order, unit)?;
        let sin = permute_groups(&sin, &order, unit)?;

        let mut x = x;
        for (i, block) in self.blocks.iter().enumerate() {
            let segments = if self.cfg.fullatt_block_indexes.contains(&i) { &full_cu } else { &window_cu };
            let h = block.attn.forward(&block.norm1.forward(&x)?, &cos, &sin, segments)?;
            let x1 = (x + h)?;
            let h = block.mlp.forward(&block.norm2.forward(&x1)?)?;
            x = (x1 + h)?;
        }
        let merged = self.merger.forward(&x)?;
        // Undo the window order: token at window position i came from merge group order[i].
        let mut inverse = vec![0u32; order.len()];
        for (i, &o) in order.iter().enumerate() {
            inverse[o as usize] = i as u32;
        }
        let idx = Tensor::from_vec(inverse, order.len(), merged.device())?;
        merged.index_select(&idx, 0)
    }
}
