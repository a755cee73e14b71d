//! What a Qwen3-VL config.json says beyond the Qwen2 families: the defaults of
//! `Qwen3VLTextConfig` for the text model and `Qwen3VLVisionConfig` for the vision tower.
//!
//! The Hub's files nest `text_config` and `vision_config`; rope settings sit in
//! `text_config.rope_scaling` (transformers 4.57) or `text_config.rope_parameters` (transformers
//! 5). transformers always interleaves the M-RoPE sections for this family, whatever
//! `mrope_interleaved` says, so the flag is not read.

use std::path::Path;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::checkpoint_json::{self, section, setting};
use crate::error::{Error, Result};
use crate::models::config::{vision_act, VisionConfig};

/// `Qwen3VLTextConfig`'s defaults for the keys the text decoder reads, laid under what the file
/// says. `rope_theta` is the class's `default_theta`, used only when no rope settings name one.
pub(crate) fn text_defaults() -> Map<String, Value> {
    let defaults = json!({
        "vocab_size": 151936,
        "hidden_size": 4096,
        "intermediate_size": 22016,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "head_dim": 128,
        "max_position_embeddings": 128000,
        "rms_norm_eps": 1e-6,
        "rope_theta": 500000.0,
    });
    match defaults {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The split of the rotary half-dimension when the rope settings give none (the rotary
/// embedding's own default).
pub(crate) const DEFAULT_MROPE_SECTION: [usize; 3] = [24, 20, 20];

/// `vision_config`: `Qwen3VLVisionConfig`.
#[derive(Deserialize)]
#[serde(default)]
struct VisionFile {
    #[serde(deserialize_with = "setting")]
    depth: Option<usize>,
    #[serde(deserialize_with = "setting")]
    num_hidden_layers: Option<usize>,
    #[serde(deserialize_with = "setting")]
    hidden_size: usize,
    #[serde(deserialize_with = "setting")]
    hidden_act: String,
    #[serde(deserialize_with = "setting")]
    intermediate_size: usize,
    #[serde(deserialize_with = "setting")]
    num_heads: Option<usize>,
    #[serde(deserialize_with = "setting")]
    num_attention_heads: Option<usize>,
    #[serde(deserialize_with = "setting")]
    in_channels: usize,
    #[serde(deserialize_with = "setting")]
    patch_size: usize,
    #[serde(deserialize_with = "setting")]
    spatial_merge_size: usize,
    #[serde(deserialize_with = "setting")]
    temporal_patch_size: usize,
    #[serde(deserialize_with = "setting")]
    out_hidden_size: usize,
    #[serde(deserialize_with = "setting")]
    num_position_embeddings: usize,
    #[serde(deserialize_with = "setting")]
    deepstack_visual_indexes: Vec<usize>,
    #[serde(deserialize_with = "section")]
    rope_parameters: VisionRopeFile,
}

impl Default for VisionFile {
    fn default() -> Self {
        VisionFile {
            depth: None,
            num_hidden_layers: None,
            hidden_size: 1152,
            hidden_act: "gelu_pytorch_tanh".into(),
            intermediate_size: 4304,
            num_heads: None,
            num_attention_heads: None,
            in_channels: 3,
            patch_size: 16,
            spatial_merge_size: 2,
            temporal_patch_size: 2,
            out_hidden_size: 3584,
            num_position_embeddings: 2304,
            deepstack_visual_indexes: vec![8, 16, 24],
            rope_parameters: VisionRopeFile::default(),
        }
    }
}

#[derive(Deserialize)]
#[serde(default)]
struct VisionRopeFile {
    #[serde(deserialize_with = "setting")]
    rope_theta: f64,
}

impl Default for VisionRopeFile {
    fn default() -> Self {
        VisionRopeFile { rope_theta: 10_000.0 }
    }
}

/// Reads and checks `vision_config` of a Qwen3-VL config.json.
pub(crate) fn vision_config(value: &Value, path: &Path) -> Result<VisionConfig> {
    let file: VisionFile = checkpoint_json::read(value, "vision_config", path)?;
    let depth = file.depth.or(file.num_hidden_layers).unwrap_or(27);
    let side = (file.num_position_embeddings as f64).sqrt() as usize;
    if file.num_position_embeddings == 0 || side * side != file.num_position_embeddings {
        return Err(Error::config(
            path,
            format!(
                "`vision_config.num_position_embeddings` {} must be a positive square (a side × side grid)",
                file.num_position_embeddings
            ),
        ));
    }
    if let Some(&bad) = file.deepstack_visual_indexes.iter().find(|&&i| i >= depth) {
        return Err(Error::config(
            path,
            format!("`vision_config.deepstack_visual_indexes` names block {bad} but the tower has {depth} blocks"),
        ));
    }
    Ok(VisionConfig {
        depth,
        hidden_size: file.hidden_size,
        out_hidden_size: file.out_hidden_size,
        num_heads: file.num_heads.or(file.num_attention_heads).unwrap_or(16),
        intermediate_size: file.intermediate_size,
        hidden_act: vision_act(&file.hidden_act, path)?,
        in_channels: file.in_channels,
        patch_size: file.patch_size,
        spatial_merge_size: file.spatial_merge_size,
        temporal_patch_size: file.temporal_patch_size,
        window_size: 0,
        fullatt_block_indexes: Vec::new(),
        tokens_per_second: 0,
        rope_theta: file.rope_parameters.rope_theta,
        num_position_embeddings: file.num_position_embeddings,
        deepstack_visual_indexes: file.deepstack_visual_indexes,
    })
}
