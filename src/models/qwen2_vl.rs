//! The Qwen2-VL vision tower.
//!
//! Patches are embedded and pass through pre-norm blocks with LayerNorm and a two-layer MLP
//! (quick-GELU by default) that attend over the whole image; no windows. The merger joins each
//! 2×2 group of patches into one language-model token after a LayerNorm.

use candle_core::{Module, Tensor};
use candle_nn::{layer_norm, LayerNorm, VarBuilder};

use super::config::{VisionAct, VisionConfig};
use super::qwen2_5_vl::activation;
use super::linear::Linear;
use super::vision::{image_segments, linear, patch_positions, vision_rotary, PatchEmbed, VisionAttention};

struct Block {
    norm1: LayerNorm,
    norm2: LayerNorm,
    attn: VisionAttention,
    fc1: Linear,
    fc2: Linear,
    act: VisionAct,
}

pub struct VisionTower {
    patch_embed: PatchEmbed,
    blocks: Vec<Block>,
    ln_q: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    group_dim: usize,
    cfg: VisionConfig,
}

impl VisionTower {
    pub fn new(cfg: &VisionConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let d = cfg.hidden_size;
        let patch_embed = PatchEmbed::new(cfg.in_channels, cfg.temporal_patch_size, cfg.patch_size, d, vb.pp("patch_embed"))?;
        let mut blocks = Vec::with_capacity(cfg.depth);
        for i in 0..cfg.depth {
            let vb = vb.pp("blocks").pp(i);
            blocks.push(Block {
                norm1: layer_norm(d, 1e-6, vb.pp("norm1"))?,
                norm2: layer_norm(d, 1e-6, vb.pp("norm2"))?,
                attn: VisionAttention::new(d, cfg.num_heads, vb.pp("attn"))?,
                fc1: linear(d, cfg.intermediate_size, true, vb.pp("mlp").pp("fc1"))?,
                fc2: linear(cfg.intermediate_size, d, true, vb.pp("mlp").pp("fc2"))?,
                act: cfg.hidden_act,
            });
        }
        let group_dim = d * cfg.spatial_merge_size * cfg.spatial_merge_size;
        let mvb = vb.pp("merger");
        Ok(VisionTower {
            patch_embed,
            blocks,
            ln_q: layer_norm(d, 1e-6, mvb.pp("ln_q"))?,
            fc1: linear(group_dim, group_dim, true, mvb.pp("mlp").pp(0))?,
            fc2: linear(group_dim, cfg.out_hidden_size, true, mvb.pp("mlp").pp(2))?,
            group_dim,
            cfg: cfg.clone(),
        })
    }

    /// `pixels` (patches, C·T·P·P) of the images with the given grids → (tokens, out_hidden).
    pub fn forward(&self, pixels: &Tensor, grids: &[[usize; 3]]) -> candle_core::Result<Tensor> {
        let merge = self.cfg.spatial_merge_size;
        let segments = image_segments(grids);
        let positions: Vec<[usize; 2]> = grids.iter().flat_map(|&g| patch_positions(g, merge)).collect();
        let mut x = self.patch_embed.forward(pixels)?;
        let (cos, sin) = vision_rotary(&positions, self.cfg.hidden_size / self.cfg.num_heads, self.cfg.rope_theta, x.device())?;
        for b in &self.blocks {
            let h = b.attn.forward(&b.norm1.forward(&x)?, &cos, &sin, &segments)?;
            let x1 = (x + h)?;
            let h = b.fc2.forward(&activation(&b.fc1.forward(&b.norm2.forward(&x1)?)?, b.act)?)?;
            x = (x1 + h)?;
        }
        let x = self.ln_q.forward(&x)?;
        let n = x.elem_count() / self.group_dim;
        self.fc2.forward(&self.fc1.forward(&x.reshape((n, self.group_dim))?)?.gelu_erf()?)
    }
}
