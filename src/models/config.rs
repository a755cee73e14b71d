//! Model configuration: what config.json says, with transformers' defaults filled in.
//!
//! Two layouts exist in the wild. The Hub's checkpoints are *flat*: text-model fields sit at the
//! top level next to a nested `vision_config`, and rope settings live in `rope_scaling`.
//! transformers 5 writes a *nested* layout with `text_config` and `vision_config`, and rope
//! settings in `rope_parameters`. Real configs also leave fields out and rely on the defaults of
//! transformers' config classes (Qwen2.5-VL-3B's `vision_config` holds five keys), so every
//! default here is the one transformers' config class declares.

use std::path::Path;

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Which Qwen VL family a checkpoint belongs to (`model_type` in config.json).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Qwen2Vl,
    Qwen2_5Vl,
}

impl Family {
    pub fn model_type(self) -> &'static str {
        match self {
            Family::Qwen2Vl => "qwen2_vl",
            Family::Qwen2_5Vl => "qwen2_5_vl",
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

/// A view of a JSON object that reports missing or mistyped keys against the file they came from.
struct Fields<'a> {
    obj: &'a Map<String, Value>,
    path: &'a Path,
    section: &'static str,
}

impl<'a> Fields<'a> {
    fn key_name(&self, key: &str) -> String {
        if self.section.is_empty() {
            format!("`{key}`")
        } else {
            format!("`{}.{key}`", self.section)
        }
    }

    fn usize_or(&self, keys: &[&str], default: usize) -> Result<usize> {
        for key in keys {
            if let Some(v) = self.obj.get(*key) {
                if v.is_null() {
                    continue;
                }
                return v.as_u64().map(|x| x as usize).ok_or_else(|| {
                    Error::config(self.path, format!("{} must be a non-negative integer, found {v}", self.key_name(key)))
                });
            }
        }
        Ok(default)
    }

    fn f64_or(&self, key: &str, default: f64) -> Result<f64> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_f64()
                .ok_or_else(|| Error::config(self.path, format!("{} must be a number, found {v}", self.key_name(key)))),
        }
    }

    fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| Error::config(self.path, format!("{} must be true or false, found {v}", self.key_name(key)))),
        }
    }

    fn str_or(&self, key: &str, default: &'a str) -> Result<&'a str> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_str()
                .ok_or_else(|| Error::config(self.path, format!("{} must be a string, found {v}", self.key_name(key)))),
        }
    }

    fn usize_list_or(&self, key: &str, default: &[usize]) -> Result<Vec<usize>> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(default.to_vec()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_u64().map(|x| x as usize).ok_or_else(|| {
                        Error::config(self.path, format!("{} must be a list of integers, found {v}", self.key_name(key)))
                    })
                })
                .collect(),
            Some(v) => Err(Error::config(self.path, format!("{} must be a list of integers, found {v}", self.key_name(key)))),
        }
    }
}

impl ModelConfig {
    /// Reads and resolves a config.json.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        Self::from_json_str(&text, path)
    }

    /// Resolves a config.json text; `path` is only used in error messages.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self> {
        let root: Value = serde_json::from_str(text).map_err(|e| {
            Error::config(path, format!("not valid JSON at line {} column {}: {e}", e.line(), e.column()))
        })?;
        let Value::Object(root) = root else {
            return Err(Error::config(path, "expected a JSON object at the top level"));
        };
        let top = Fields { obj: &root, path, section: "" };
        let model_type = top.str_or("model_type", "")?;
        let family = match model_type {
            "qwen2_vl" => Family::Qwen2Vl,
            "qwen2_5_vl" => Family::Qwen2_5Vl,
            "" => {
                return Err(Error::config(
                    path,
                    "no `model_type`; this does not look like a Qwen2-VL or Qwen2.5-VL config.json",
                ))
            }
            other => {
                return Err(Error::config(
                    path,
                    format!(
                        "unsupported model_type \"{other}\"; proxythinker runs qwen2_vl and qwen2_5_vl checkpoints"
                    ),
                ))
            }
        };

        // Text fields: the nested `text_config` wins; the flat layout keeps them at the top level.
        let mut text_obj = root.clone();
        text_obj.remove("vision_config");
        if let Some(v) = root.get("text_config") {
            let Value::Object(nested) = v else {
                return Err(Error::config(path, "`text_config` must be an object"));
            };
            for (k, v) in nested {
                text_obj.insert(k.clone(), v.clone());
            }
        }
        let section = if root.contains_key("text_config") { "text_config" } else { "" };
        let text = Self::text_config(&Fields { obj: &text_obj, path, section }, &root, path)?;

        let empty = Map::new();
        let vision_obj = match root.get("vision_config") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(o)) => o,
            Some(_) => return Err(Error::config(path, "`vision_config` must be an object")),
        };
        let vision = Self::vision_config(family, &Fields { obj: vision_obj, path, section: "vision_config" })?;
        if vision.out_hidden_size != text.hidden_size {
            return Err(Error::config(
                path,
                format!(
                    "the vision merger outputs {} features but the text model's hidden_size is {}",
                    vision.out_hidden_size, text.hidden_size
                ),
            ));
        }

        let id = |key: &str, default: usize| -> Result<u32> { Ok(top.usize_or(&[key], default)? as u32) };
        Ok(ModelConfig {
            family,
            text,
            vision,
            image_token_id: id("image_token_id", 151655)?,
            video_token_id: id("video_token_id", 151656)?,
            vision_start_token_id: id("vision_start_token_id", 151652)?,
            vision_end_token_id: id("vision_end_token_id", 151653)?,
        })
    }

    fn text_config(f: &Fields, root: &Map<String, Value>, path: &Path) -> Result<TextConfig> {
        // Defaults of Qwen2VLTextConfig / Qwen2_5_VLTextConfig (identical for the fields used).
        let hidden_size = f.usize_or(&["hidden_size"], 8192)?;
        let num_attention_heads = f.usize_or(&["num_attention_heads"], 64)?;
        if num_attention_heads == 0 || hidden_size % num_attention_heads != 0 {
            return Err(Error::config(
                path,
                format!("hidden_size {hidden_size} is not divisible by num_attention_heads {num_attention_heads}"),
            ));
        }
        let num_key_value_heads = f.usize_or(&["num_key_value_heads"], num_attention_heads)?;
        if num_key_value_heads == 0 || num_attention_heads % num_key_value_heads != 0 {
            return Err(Error::config(
                path,
                format!(
                    "num_attention_heads {num_attention_heads} is not a multiple of num_key_value_heads {num_key_value_heads}"
                ),
            ));
        }
        let head_dim = f.usize_or(&["head_dim"], hidden_size / num_attention_heads)?;

        // Rope settings: `rope_parameters` (transformers 5) or `rope_scaling` (Hub), theta either
        // inside them or at the top level.
        let rope_obj = match f.obj.get("rope_parameters").or_else(|| f.obj.get("rope_scaling")) {
            Some(Value::Object(o)) => Some(o),
            None | Some(Value::Null) => None,
            Some(_) => return Err(Error::config(path, "`rope_scaling` must be an object")),
        };
        let mut rope_theta = f.f64_or("rope_theta", 1_000_000.0)?;
        let mut mrope_section = vec![16, 24, 24];
        if let Some(rope) = rope_obj {
            let rf = Fields { obj: rope, path, section: "rope_scaling" };
            rope_theta = rf.f64_or("rope_theta", rope_theta)?;
            mrope_section = rf.usize_list_or("mrope_section", &mrope_section)?;
            let rope_type = rope.get("rope_type").or_else(|| rope.get("type")).and_then(Value::as_str).unwrap_or("default");
            if !matches!(rope_type, "default" | "mrope") {
                return Err(Error::config(
                    path,
                    format!("rope type \"{rope_type}\" is not supported; Qwen VL checkpoints use \"default\" or \"mrope\""),
                ));
            }
        }
        if mrope_section.len() != 3 || mrope_section.iter().sum::<usize>() * 2 != head_dim {
            return Err(Error::config(
                path,
                format!("mrope_section {mrope_section:?} must have three parts summing to head_dim/2 = {}", head_dim / 2),
            ));
        }
        // transformers ties the embeddings if either the top level or the text config says so.
        let top = Fields { obj: root, path, section: "" };
        let tie_word_embeddings = top.bool_or("tie_word_embeddings", false)? || f.bool_or("tie_word_embeddings", false)?;
        Ok(TextConfig {
            vocab_size: f.usize_or(&["vocab_size"], 152064)?,
            hidden_size,
            intermediate_size: f.usize_or(&["intermediate_size"], 29568)?,
            num_hidden_layers: f.usize_or(&["num_hidden_layers"], 80)?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rms_norm_eps: f.f64_or("rms_norm_eps", 1e-5)?,
            rope_theta,
            mrope_section,
            max_position_embeddings: f.usize_or(&["max_position_embeddings"], 32768)?,
            tie_word_embeddings,
        })
    }

    fn vision_config(family: Family, f: &Fields) -> Result<VisionConfig> {
        let act = |name: &str| -> Result<VisionAct> {
            match name {
                "silu" | "swish" => Ok(VisionAct::Silu),
                "quick_gelu" => Ok(VisionAct::QuickGelu),
                "gelu" => Ok(VisionAct::Gelu),
                other => Err(Error::config(f.path, format!("`vision_config.hidden_act` \"{other}\" is not supported"))),
            }
        };
        let rope_theta = match f.obj.get("rope_parameters") {
            Some(Value::Object(o)) => Fields { obj: o, path: f.path, section: "vision_config.rope_parameters" }
                .f64_or("rope_theta", 10_000.0)?,
            _ => 10_000.0,
        };
        let cfg = match family {
            Family::Qwen2_5Vl => VisionConfig {
                depth: f.usize_or(&["depth", "num_hidden_layers"], 32)?,
                hidden_size: f.usize_or(&["hidden_size"], 3584)?,
                out_hidden_size: f.usize_or(&["out_hidden_size"], 3584)?,
                num_heads: f.usize_or(&["num_heads", "num_attention_heads"], 16)?,
                intermediate_size: f.usize_or(&["intermediate_size"], 3420)?,
                hidden_act: act(f.str_or("hidden_act", "silu")?)?,
                in_channels: f.usize_or(&["in_channels", "in_chans"], 3)?,
                patch_size: f.usize_or(&["patch_size", "spatial_patch_size"], 14)?,
                spatial_merge_size: f.usize_or(&["spatial_merge_size"], 2)?,
                temporal_patch_size: f.usize_or(&["temporal_patch_size"], 2)?,
                window_size: f.usize_or(&["window_size"], 112)?,
                fullatt_block_indexes: f.usize_list_or("fullatt_block_indexes", &[7, 15, 23, 31])?,
                tokens_per_second: f.usize_or(&["tokens_per_second"], 4)?,
                rope_theta,
            },
            Family::Qwen2Vl => {
                let embed_dim = f.usize_or(&["embed_dim"], 1280)?;
                VisionConfig {
                    depth: f.usize_or(&["depth", "num_hidden_layers"], 32)?,
                    hidden_size: embed_dim,
                    out_hidden_size: f.usize_or(&["hidden_size"], 3584)?,
                    num_heads: f.usize_or(&["num_heads", "num_attention_heads"], 16)?,
                    intermediate_size: embed_dim * f.usize_or(&["mlp_ratio"], 4)?,
                    hidden_act: act(f.str_or("hidden_act", "quick_gelu")?)?,
                    in_channels: f.usize_or(&["in_channels", "in_chans"], 3)?,
                    patch_size: f.usize_or(&["patch_size", "spatial_patch_size"], 14)?,
                    spatial_merge_size: f.usize_or(&["spatial_merge_size"], 2)?,
                    temporal_patch_size: f.usize_or(&["temporal_patch_size"], 2)?,
                    window_size: 0,
                    fullatt_block_indexes: Vec::new(),
                    tokens_per_second: 0,
                    rope_theta,
                }
            }
        };
        if cfg.num_heads == 0 || cfg.hidden_size % cfg.num_heads != 0 || (cfg.hidden_size / cfg.num_heads) % 4 != 0 {
            return Err(Error::config(
                f.path,
                format!(
                    "vision hidden size {} must split into {} heads whose size is a multiple of 4",
                    cfg.hidden_size, cfg.num_heads
                ),
            ));
        }
        if cfg.spatial_merge_size == 0 || cfg.patch_size == 0 || cfg.temporal_patch_size == 0 {
            return Err(Error::config(f.path, "vision patch_size, temporal_patch_size and spatial_merge_size must be positive"));
        }
        if family == Family::Qwen2_5Vl && cfg.window_size / cfg.spatial_merge_size / cfg.patch_size == 0 {
            return Err(Error::config(
                f.path,
                format!("window_size {} is smaller than one merged patch", cfg.window_size),
            ));
        }
        Ok(cfg)
    }
}
