//! Model configuration: what config.json says, with transformers' defaults filled in.
//!
//! Two layouts exist in the wild. The Hub's checkpoints are *flat*: text-model fields sit at the
//! top level next to a nested `vision_config`, and rope settings live in `rope_scaling`.
//! transformers 5 writes a *nested* layout with `text_config` and `vision_config`, and rope
//! settings in `rope_parameters`. Real configs also leave fields out and rely on the defaults of
//! transformers' config classes (Qwen2.5-VL-3B's `vision_config` holds five keys), so every
//! default here is the one transformers' config class declares. The file is read with serde into
//! structs that mirror those classes, then resolved (aliases, derived defaults) and checked.

use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::checkpoint_json::{self, optional_section, section, setting};
use crate::error::{Error, Result};

/// Which Qwen VL family a checkpoint belongs to (`model_type` in config.json).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Qwen2Vl,
    Qwen2_5Vl,
    Qwen3Vl,
}

impl Family {
    pub fn model_type(self) -> &'static str {
        match self {
            Family::Qwen2Vl => "qwen2_vl",
            Family::Qwen2_5Vl => "qwen2_5_vl",
            Family::Qwen3Vl => "qwen3_vl",
        }
    }
}

/// The text decoder's hyper-parameters (shared by both families).
#[derive(Debug, Clone, PartialEq)]
pub struct TextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    /// Split of the rotary half-dimension between temporal, height and width positions.
    pub mrope_section: Vec<usize>,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
}

/// The activation of a vision MLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisionAct {
    Silu,
    QuickGelu,
    Gelu,
    /// GELU with the tanh approximation (`gelu_pytorch_tanh`).
    GeluTanh,
}

/// The vision tower's hyper-parameters. Qwen2-VL's `embed_dim` is called `hidden_size` here, and
/// its merger output (`hidden_size` in its config) is `out_hidden_size`, so that one struct
/// describes both towers.
#[derive(Debug, Clone, PartialEq)]
pub struct VisionConfig {
    pub depth: usize,
    pub hidden_size: usize,
    pub out_hidden_size: usize,
    pub num_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: VisionAct,
    pub in_channels: usize,
    pub patch_size: usize,
    pub spatial_merge_size: usize,
    pub temporal_patch_size: usize,
    /// Qwen2.5-VL only: window attention size in pixels and the blocks that attend globally.
    pub window_size: usize,
    pub fullatt_block_indexes: Vec<usize>,
    pub tokens_per_second: usize,
    pub rope_theta: f64,
    /// Qwen3-VL only: the side² learned position embeddings and the blocks whose outputs feed
    /// DeepStack.
    pub num_position_embeddings: usize,
    pub deepstack_visual_indexes: Vec<usize>,
}

/// Everything config.json says that the model code needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub family: Family,
    pub text: TextConfig,
    pub vision: VisionConfig,
    pub image_token_id: u32,
    pub video_token_id: u32,
    pub vision_start_token_id: u32,
    pub vision_end_token_id: u32,
}

impl ModelConfig {
    /// Reads and resolves a config.json.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        Self::from_json_str(&text, path)
    }

    /// Resolves a config.json text; `path` is only used in error messages.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self> {
        let root = checkpoint_json::parse_object(text, path)?;
        let top: ConfigFile = checkpoint_json::read(&root, "", path)?;
        let family = match top.model_type.as_deref() {
            Some("qwen2_vl") => Family::Qwen2Vl,
            Some("qwen2_5_vl") => Family::Qwen2_5Vl,
            Some("qwen3_vl") => Family::Qwen3Vl,
            Some("qwen3_vl_moe") => {
                return Err(Error::config(
                    path,
                    "Qwen3-VL MoE (model_type \"qwen3_vl_moe\") is not supported; only the dense Qwen3-VL models (2B, 4B, 8B, 32B) run",
                ))
            }
            None | Some("") => {
                return Err(Error::config(
                    path,
                    "no `model_type`; this does not look like a Qwen2-VL or Qwen2.5-VL config.json",
                ))
            }
            Some(other) => {
                return Err(Error::config(
                    path,
                    format!(
                        "unsupported model_type \"{other}\"; proxythinker runs qwen2_vl, qwen2_5_vl and qwen3_vl checkpoints"
                    ),
                ))
            }
        };

        // Text fields: the nested `text_config` wins; the flat layout keeps them at the top level
        // (and a nested file's top-level keys still fill what `text_config` leaves out).
        // Qwen3-VL's text config class has defaults of its own; they lie under the file.
        let mut text_value = if family == Family::Qwen3Vl { super::qwen3_vl::config::text_defaults() } else { Map::new() };
        text_value.extend(root.as_object().cloned().unwrap_or_default());
        let text_at = match &top.text_config {
            Some(nested) => {
                text_value.extend(nested.clone());
                "text_config"
            }
            None => "",
        };
        let text_value = Value::Object(text_value);
        let text_file: TextFile = checkpoint_json::read(&text_value, text_at, path)?;
        let default_mrope: &[usize] = if family == Family::Qwen3Vl { &super::qwen3_vl::config::DEFAULT_MROPE_SECTION } else { &[16, 24, 24] };
        let text = text_file.resolve(top.tie_word_embeddings, default_mrope, path)?;

        let no_vision = Value::Object(Default::default());
        let vision_value = root.get("vision_config").unwrap_or(&no_vision);
        let vision = match family {
            Family::Qwen2_5Vl => checkpoint_json::read::<Qwen25VisionFile>(vision_value, "vision_config", path)?.resolve(path)?,
            Family::Qwen2Vl => checkpoint_json::read::<Qwen2VisionFile>(vision_value, "vision_config", path)?.resolve(path)?,
            Family::Qwen3Vl => super::qwen3_vl::config::vision_config(vision_value, path)?,
        };
        vision.validate(family, path)?;
        if vision.out_hidden_size != text.hidden_size {
            return Err(Error::config(
                path,
                format!(
                    "the vision merger outputs {} features but the text model's hidden_size is {}",
                    vision.out_hidden_size, text.hidden_size
                ),
            ));
        }
        Ok(ModelConfig {
            family,
            text,
            vision,
            image_token_id: top.image_token_id,
            video_token_id: top.video_token_id,
            vision_start_token_id: top.vision_start_token_id,
            vision_end_token_id: top.vision_end_token_id,
        })
    }
}

// What config.json says, as serde reads it (see `checkpoint_json`: `null` is absent, unknown keys
// are ignored, a wrong type names the key). Each struct's `Default` holds the defaults of the
// transformers config class it mirrors. Keys that go by two names in the wild (`depth` and
// `num_hidden_layers`, ...) are read under both, and the first name wins where both are present.

/// The top level, apart from the text model's keys.
#[derive(Deserialize)]
#[serde(default)]
struct ConfigFile {
    #[serde(deserialize_with = "setting")]
    model_type: Option<String>,
    #[serde(deserialize_with = "optional_section")]
    text_config: Option<Map<String, Value>>,
    #[serde(deserialize_with = "setting")]
    tie_word_embeddings: bool,
    #[serde(deserialize_with = "setting")]
    image_token_id: u32,
    #[serde(deserialize_with = "setting")]
    video_token_id: u32,
    #[serde(deserialize_with = "setting")]
    vision_start_token_id: u32,
    #[serde(deserialize_with = "setting")]
    vision_end_token_id: u32,
}

impl Default for ConfigFile {
    fn default() -> Self {
        ConfigFile {
            model_type: None,
            text_config: None,
            tie_word_embeddings: false,
            image_token_id: 151655,
            video_token_id: 151656,
            vision_start_token_id: 151652,
            vision_end_token_id: 151653,
        }
    }
}

/// The text model's keys: `Qwen2VLTextConfig` / `Qwen2_5_VLTextConfig` (identical defaults for
/// the keys read here).
#[derive(Deserialize)]
#[serde(default)]
struct TextFile {
    #[serde(deserialize_with = "setting")]
    vocab_size: usize,
    #[serde(deserialize_with = "setting")]
    hidden_size: usize,
    #[serde(deserialize_with = "setting")]
    intermediate_size: usize,
    #[serde(deserialize_with = "setting")]
    num_hidden_layers: usize,
    #[serde(deserialize_with = "setting")]
    num_attention_heads: usize,
    /// Defaults to `num_attention_heads`.
    #[serde(deserialize_with = "setting")]
    num_key_value_heads: Option<usize>,
    /// Defaults to `hidden_size / num_attention_heads`.
    #[serde(deserialize_with = "setting")]
    head_dim: Option<usize>,
    #[serde(deserialize_with = "setting")]
    rms_norm_eps: f64,
    #[serde(deserialize_with = "setting")]
    rope_theta: f64,
    #[serde(deserialize_with = "setting")]
    max_position_embeddings: usize,
    #[serde(deserialize_with = "setting")]
    tie_word_embeddings: bool,
    /// transformers 5's name for the rope settings; the Hub's files say `rope_scaling`.
    #[serde(deserialize_with = "optional_section")]
    rope_parameters: Option<RopeFile>,
    #[serde(deserialize_with = "optional_section")]
    rope_scaling: Option<RopeFile>,
}

impl Default for TextFile {
    fn default() -> Self {
        TextFile {
            vocab_size: 152064,
            hidden_size: 8192,
            intermediate_size: 29568,
            num_hidden_layers: 80,
            num_attention_heads: 64,
            num_key_value_heads: None,
            head_dim: None,
            rms_norm_eps: 1e-5,
            rope_theta: 1_000_000.0,
            max_position_embeddings: 32768,
            tie_word_embeddings: false,
            rope_parameters: None,
            rope_scaling: None,
        }
    }
}

/// `rope_parameters` / `rope_scaling`: theta may sit here rather than at the text level.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RopeFile {
    #[serde(deserialize_with = "setting")]
    rope_theta: Option<f64>,
    #[serde(deserialize_with = "setting")]
    mrope_section: Option<Vec<usize>>,
    #[serde(deserialize_with = "setting")]
    rope_type: Option<String>,
    /// The older name of `rope_type`.
    #[serde(rename = "type", deserialize_with = "setting")]
    legacy_type: Option<String>,
}

impl TextFile {
    /// The text config, checked; `tie_at_top` is the top level's `tie_word_embeddings`.
    fn resolve(self, tie_at_top: bool, default_mrope: &[usize], path: &Path) -> Result<TextConfig> {
        let (hidden_size, num_attention_heads) = (self.hidden_size, self.num_attention_heads);
        if num_attention_heads == 0 || hidden_size % num_attention_heads != 0 {
            return Err(Error::config(
                path,
                format!("hidden_size {hidden_size} is not divisible by num_attention_heads {num_attention_heads}"),
            ));
        }
        let num_key_value_heads = self.num_key_value_heads.unwrap_or(num_attention_heads);
        if num_key_value_heads == 0 || num_attention_heads % num_key_value_heads != 0 {
            return Err(Error::config(
                path,
                format!(
                    "num_attention_heads {num_attention_heads} is not a multiple of num_key_value_heads {num_key_value_heads}"
                ),
            ));
        }
        let head_dim = self.head_dim.unwrap_or(hidden_size / num_attention_heads);
        let rope = self.rope_parameters.or(self.rope_scaling).unwrap_or_default();
        let rope_type = rope.rope_type.or(rope.legacy_type);
        let rope_type = rope_type.as_deref().unwrap_or("default");
        if !matches!(rope_type, "default" | "mrope") {
            return Err(Error::config(
                path,
                format!("rope type \"{rope_type}\" is not supported; Qwen VL checkpoints use \"default\" or \"mrope\""),
            ));
        }
        let mrope_section = rope.mrope_section.unwrap_or_else(|| default_mrope.to_vec());
        if mrope_section.len() != 3 || mrope_section.iter().sum::<usize>() * 2 != head_dim {
            return Err(Error::config(
                path,
                format!("mrope_section {mrope_section:?} must have three parts summing to head_dim/2 = {}", head_dim / 2),
            ));
        }
        Ok(TextConfig {
            vocab_size: self.vocab_size,
            hidden_size,
            intermediate_size: self.intermediate_size,
            num_hidden_layers: self.num_hidden_layers,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rms_norm_eps: self.rms_norm_eps,
            rope_theta: rope.rope_theta.unwrap_or(self.rope_theta),
            mrope_section,
            max_position_embeddings: self.max_position_embeddings,
            // transformers ties the embeddings if either the top level or the text config says so.
            tie_word_embeddings: tie_at_top || self.tie_word_embeddings,
        })
    }
}

/// Qwen2.5-VL's `vision_config`: `Qwen2_5_VLVisionConfig`.
#[derive(Deserialize)]
#[serde(default)]
struct Qwen25VisionFile {
    #[serde(deserialize_with = "setting")]
    depth: Option<usize>,
    #[serde(deserialize_with = "setting")]
    num_hidden_layers: Option<usize>,
    #[serde(deserialize_with = "setting")]
    hidden_size: usize,
    #[serde(deserialize_with = "setting")]
    out_hidden_size: usize,
    #[serde(deserialize_with = "setting")]
    num_heads: Option<usize>,
    #[serde(deserialize_with = "setting")]
    num_attention_heads: Option<usize>,
    #[serde(deserialize_with = "setting")]
    intermediate_size: usize,
    #[serde(deserialize_with = "setting")]
    hidden_act: String,
    #[serde(deserialize_with = "setting")]
    in_channels: Option<usize>,
    #[serde(deserialize_with = "setting")]
    in_chans: Option<usize>,
    #[serde(deserialize_with = "setting")]
    patch_size: Option<usize>,
    #[serde(deserialize_with = "setting")]
    spatial_patch_size: Option<usize>,
    #[serde(deserialize_with = "setting")]
    spatial_merge_size: usize,
    #[serde(deserialize_with = "setting")]
    temporal_patch_size: usize,
    #[serde(deserialize_with = "setting")]
    window_size: usize,
    #[serde(deserialize_with = "setting")]
    fullatt_block_indexes: Vec<usize>,
    #[serde(deserialize_with = "setting")]
    tokens_per_second: usize,
    #[serde(deserialize_with = "section")]
    rope_parameters: VisionRopeFile,
}

impl Default for Qwen25VisionFile {
    fn default() -> Self {
        Qwen25VisionFile {
            depth: None,
            num_hidden_layers: None,
            hidden_size: 3584,
            out_hidden_size: 3584,
            num_heads: None,
            num_attention_heads: None,
            intermediate_size: 3420,
            hidden_act: "silu".into(),
            in_channels: None,
            in_chans: None,
            patch_size: None,
            spatial_patch_size: None,
            spatial_merge_size: 2,
            temporal_patch_size: 2,
            window_size: 112,
            fullatt_block_indexes: vec![7, 15, 23, 31],
            tokens_per_second: 4,
            rope_parameters: VisionRopeFile::default(),
        }
    }
}

impl Qwen25VisionFile {
    fn resolve(self, path: &Path) -> Result<VisionConfig> {
        Ok(VisionConfig {
            depth: self.depth.or(self.num_hidden_layers).unwrap_or(32),
            hidden_size: self.hidden_size,
            out_hidden_size: self.out_hidden_size,
            num_heads: self.num_heads.or(self.num_attention_heads).unwrap_or(16),
            intermediate_size: self.intermediate_size,
            hidden_act: vision_act(&self.hidden_act, path)?,
            in_channels: self.in_channels.or(self.in_chans).unwrap_or(3),
            patch_size: self.patch_size.or(self.spatial_patch_size).unwrap_or(14),
            spatial_merge_size: self.spatial_merge_size,
            temporal_patch_size: self.temporal_patch_size,
            window_size: self.window_size,
            fullatt_block_indexes: self.fullatt_block_indexes,
            tokens_per_second: self.tokens_per_second,
            rope_theta: self.rope_parameters.rope_theta,
            num_position_embeddings: 0,
            deepstack_visual_indexes: Vec::new(),
        })
    }
}

/// Qwen2-VL's `vision_config`: `Qwen2VLVisionConfig`, whose `embed_dim` is the tower's width and
/// whose `hidden_size` is the merger's output.
#[derive(Deserialize)]
#[serde(default)]
struct Qwen2VisionFile {
    #[serde(deserialize_with = "setting")]
    depth: Option<usize>,
    #[serde(deserialize_with = "setting")]
    num_hidden_layers: Option<usize>,
    #[serde(deserialize_with = "setting")]
    embed_dim: usize,
    #[serde(deserialize_with = "setting")]
    hidden_size: usize,
    #[serde(deserialize_with = "setting")]
    num_heads: Option<usize>,
    #[serde(deserialize_with = "setting")]
    num_attention_heads: Option<usize>,
    #[serde(deserialize_with = "setting")]
    mlp_ratio: usize,
    #[serde(deserialize_with = "setting")]
    hidden_act: String,
    #[serde(deserialize_with = "setting")]
    in_channels: Option<usize>,
    #[serde(deserialize_with = "setting")]
    in_chans: Option<usize>,
    #[serde(deserialize_with = "setting")]
    patch_size: Option<usize>,
    #[serde(deserialize_with = "setting")]
    spatial_patch_size: Option<usize>,
    #[serde(deserialize_with = "setting")]
    spatial_merge_size: usize,
    #[serde(deserialize_with = "setting")]
    temporal_patch_size: usize,
    #[serde(deserialize_with = "section")]
    rope_parameters: VisionRopeFile,
}

impl Default for Qwen2VisionFile {
    fn default() -> Self {
        Qwen2VisionFile {
            depth: None,
            num_hidden_layers: None,
            embed_dim: 1280,
            hidden_size: 3584,
            num_heads: None,
            num_attention_heads: None,
            mlp_ratio: 4,
            hidden_act: "quick_gelu".into(),
            in_channels: None,
            in_chans: None,
            patch_size: None,
            spatial_patch_size: None,
            spatial_merge_size: 2,
            temporal_patch_size: 2,
            rope_parameters: VisionRopeFile::default(),
        }
    }
}

impl Qwen2VisionFile {
    fn resolve(self, path: &Path) -> Result<VisionConfig> {
        Ok(VisionConfig {
            depth: self.depth.or(self.num_hidden_layers).unwrap_or(32),
            hidden_size: self.embed_dim,
            out_hidden_size: self.hidden_size,
            num_heads: self.num_heads.or(self.num_attention_heads).unwrap_or(16),
            intermediate_size: self.embed_dim * self.mlp_ratio,
            hidden_act: vision_act(&self.hidden_act, path)?,
            in_channels: self.in_channels.or(self.in_chans).unwrap_or(3),
            patch_size: self.patch_size.or(self.spatial_patch_size).unwrap_or(14),
            spatial_merge_size: self.spatial_merge_size,
            temporal_patch_size: self.temporal_patch_size,
            window_size: 0,
            fullatt_block_indexes: Vec::new(),
            tokens_per_second: 0,
            rope_theta: self.rope_parameters.rope_theta,
            num_position_embeddings: 0,
            deepstack_visual_indexes: Vec::new(),
        })
    }
}

/// `vision_config.rope_parameters` (transformers 5).
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

pub(crate) fn vision_act(name: &str, path: &Path) -> Result<VisionAct> {
    match name {
        "silu" | "swish" => Ok(VisionAct::Silu),
        "quick_gelu" => Ok(VisionAct::QuickGelu),
        "gelu" => Ok(VisionAct::Gelu),
        "gelu_pytorch_tanh" => Ok(VisionAct::GeluTanh),
        other => Err(Error::config(path, format!("`vision_config.hidden_act` \"{other}\" is not supported"))),
    }
}

impl VisionConfig {
    /// Checks what the vision tower's code relies on.
    fn validate(&self, family: Family, path: &Path) -> Result<()> {
        if self.num_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_heads)
            || !(self.hidden_size / self.num_heads).is_multiple_of(4)
        {
            return Err(Error::config(
                path,
                format!(
                    "vision hidden size {} must split into {} heads whose size is a multiple of 4",
                    self.hidden_size, self.num_heads
                ),
            ));
        }
        if self.spatial_merge_size == 0 || self.patch_size == 0 || self.temporal_patch_size == 0 {
            return Err(Error::config(path, "vision patch_size, temporal_patch_size and spatial_merge_size must be positive"));
        }
        if family == Family::Qwen2_5Vl && self.window_size / self.spatial_merge_size / self.patch_size == 0 {
            return Err(Error::config(path, format!("window_size {} is smaller than one merged patch", self.window_size)));
        }
        Ok(())
    }
}
