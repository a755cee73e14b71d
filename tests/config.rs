//! config.json resolution against transformers: the real config.json texts of the checkpoints the
//! presets name (tests/fixtures/configs/, with the values transformers' AutoConfig resolves in
//! expected_configs.json; for Qwen3-VL also the parameter count transformers builds), the
//! Qwen3-VL preprocessor_config.json, a minimal Qwen2.5-VL-3B-style vision_config that relies on defaults,
//! and the nested transformers-5 layout.

mod common;

use std::path::Path;

use common::*;
use proxythinker::models::config::{Family, ModelConfig, VisionAct};
use serde_json::Value;

fn usize_of(v: &Value) -> usize {
    v.as_u64().unwrap_or_else(|| panic!("expected an integer, got {v}")) as usize
}

fn list(v: &Value) -> Vec<usize> {
    v.as_array().unwrap().iter().map(usize_of).collect()
}

#[test]
fn real_hub_configs_resolve_as_transformers_resolves_them() {
    let dir = fixtures().join("configs");
    let expected = read_json(&dir.join("expected_configs.json"));
    let expected = expected.as_object().unwrap();
    assert!(expected.len() >= 10);
    let qwen3 = expected.values().filter(|w| w["model_type"] == "qwen3_vl").count();
    assert_eq!(qwen3, 4, "the 2B, 4B, 8B and 32B Qwen3-VL configs");
    for (file, want) in expected {
        let cfg = ModelConfig::from_file(&dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let t = &want["text"];
        let v = &want["vision"];
        let family = match want["model_type"].as_str() {
            Some("qwen2_vl") => Family::Qwen2Vl,
            Some("qwen3_vl") => Family::Qwen3Vl,
            _ => Family::Qwen2_5Vl,
        };
        assert_eq!(cfg.family, family, "{file}");
        assert_eq!(cfg.image_token_id as usize, usize_of(&want["image_token_id"]), "{file}");
        assert_eq!(cfg.vision_start_token_id as usize, usize_of(&want["vision_start_token_id"]), "{file}");
        assert_eq!(cfg.text.hidden_size, usize_of(&t["hidden_size"]), "{file}");
        assert_eq!(cfg.text.num_hidden_layers, usize_of(&t["num_hidden_layers"]), "{file}");
        assert_eq!(cfg.text.num_attention_heads, usize_of(&t["num_attention_heads"]), "{file}");
        assert_eq!(cfg.text.num_key_value_heads, usize_of(&t["num_key_value_heads"]), "{file}");
        assert_eq!(cfg.text.intermediate_size, usize_of(&t["intermediate_size"]), "{file}");
        assert_eq!(cfg.text.vocab_size, usize_of(&t["vocab_size"]), "{file}");
        assert_eq!(cfg.text.rope_theta, t["rope_theta"].as_f64().unwrap(), "{file}");
        assert_eq!(cfg.text.rms_norm_eps, t["rms_norm_eps"].as_f64().unwrap(), "{file}");
        assert_eq!(cfg.text.tie_word_embeddings, t["tie_word_embeddings"].as_bool().unwrap(), "{file}");
        assert_eq!(cfg.text.mrope_section, list(&t["mrope_section"]), "{file}");
        assert_eq!(cfg.vision.depth, usize_of(&v["depth"]), "{file}");
        assert_eq!(cfg.vision.num_heads, usize_of(&v["num_heads"]), "{file}");
        assert_eq!(cfg.vision.patch_size, usize_of(&v["patch_size"]), "{file}");
        assert_eq!(cfg.vision.spatial_merge_size, usize_of(&v["spatial_merge_size"]), "{file}");
        assert_eq!(cfg.vision.temporal_patch_size, usize_of(&v["temporal_patch_size"]), "{file}");
        assert_eq!(cfg.vision.rope_theta, v["rope_theta"].as_f64().unwrap_or(10000.0), "{file}");
        match family {
            Family::Qwen2_5Vl => {
                assert_eq!(cfg.vision.hidden_size, usize_of(&v["hidden_size"]), "{file}");
                assert_eq!(cfg.vision.intermediate_size, usize_of(&v["intermediate_size"]), "{file}");
                assert_eq!(cfg.vision.out_hidden_size, usize_of(&v["out_hidden_size"]), "{file}");
                assert_eq!(cfg.vision.window_size, usize_of(&v["window_size"]), "{file}");
                assert_eq!(cfg.vision.fullatt_block_indexes, list(&v["fullatt_block_indexes"]), "{file}");
                assert_eq!(cfg.vision.hidden_act, VisionAct::Silu, "{file}");
            }
            Family::Qwen2Vl => {
                // Qwen2-VL calls the tower width embed_dim and the merger output hidden_size.
                let embed = usize_of(if v["embed_dim"].is_null() { &v["hidden_size"] } else { &v["embed_dim"] });
                assert_eq!(cfg.vision.hidden_size, embed, "{file}");
                assert_eq!(cfg.vision.intermediate_size, embed * usize_of(&v["mlp_ratio"]), "{file}");
                assert_eq!(cfg.vision.out_hidden_size, cfg.text.hidden_size, "{file}");
                assert_eq!(cfg.vision.hidden_act, VisionAct::QuickGelu, "{file}");
            }
            Family::Qwen3Vl => {
                // What transformers builds from this config on the meta device, head counted once when tied.
                let params = want["params"].as_u64().unwrap_or_else(|| panic!("{file}: no params"));
                assert_eq!(proxythinker::presets::param_count(&cfg), params, "{file}");
                assert_eq!(cfg.text.head_dim, usize_of(&t["head_dim"]), "{file}");
                assert_eq!(cfg.vision.hidden_size, usize_of(&v["hidden_size"]), "{file}");
                assert_eq!(cfg.vision.intermediate_size, usize_of(&v["intermediate_size"]), "{file}");
                assert_eq!(cfg.vision.out_hidden_size, usize_of(&v["out_hidden_size"]), "{file}");
                assert_eq!(cfg.vision.num_position_embeddings, usize_of(&v["num_position_embeddings"]), "{file}");
                assert_eq!(cfg.vision.deepstack_visual_indexes, list(&v["deepstack_visual_indexes"]), "{file}");
                assert_eq!(cfg.vision.hidden_act, VisionAct::GeluTanh, "{file}");
            }
        }
    }
}

#[test]
fn the_qwen3_vl_preprocessor_config_bounds_the_area_by_size() {
    use proxythinker::processor::image::ImageProcessorConfig;
    // The Hub's preprocessor_config.json of the Qwen3-VL models: `size` holds the pixel-area
    // bounds (transformers 5's names), patch 16, merge 2, mean and std 0.5.
    let cfg = ImageProcessorConfig::from_file(&fixtures().join("configs/Qwen3-VL.preprocessor_config.json")).unwrap();
    assert_eq!((cfg.min_pixels, cfg.max_pixels), (65_536, 16_777_216));
    assert_eq!((cfg.patch_size, cfg.merge_size, cfg.temporal_patch_size), (16, 2, 2));
    assert_eq!((cfg.image_mean, cfg.image_std), ([0.5; 3], [0.5; 3]));
}

#[test]
fn a_minimal_vision_config_takes_transformers_defaults() {
    // Qwen2.5-VL-3B-style: five vision keys and rope type "default"; values transformers 5.24's
    // Qwen2_5_VLConfig resolves for this text.
    let text = std::fs::read_to_string(fixtures().join("configs/Qwen2.5-VL-3B-Instruct.config.json")).unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    v["vision_config"] = serde_json::json!({"hidden_size": 1280, "in_chans": 3, "out_hidden_size": 2048,
                                            "spatial_patch_size": 14, "tokens_per_second": 2});
    v["rope_scaling"] = serde_json::json!({"type": "default", "mrope_section": [16, 24, 24]});
    let cfg = ModelConfig::from_json_str(&v.to_string(), Path::new("config.json")).unwrap();
    assert_eq!(
        (cfg.vision.depth, cfg.vision.intermediate_size, cfg.vision.num_heads, cfg.vision.window_size),
        (32, 3420, 16, 112)
    );
    assert_eq!(cfg.vision.fullatt_block_indexes, vec![7, 15, 23, 31]);
    assert_eq!(cfg.vision.hidden_act, VisionAct::Silu);
    assert_eq!(cfg.vision.patch_size, 14);
    assert!(cfg.text.tie_word_embeddings);
    assert_eq!(cfg.text.vocab_size, 151936);
    assert_eq!(cfg.text.mrope_section, vec![16, 24, 24]);
}

#[test]
fn nested_transformers5_config_equals_the_flat_one() {
    let flat = ModelConfig::from_file(&fixtures().join("tiny/qwen2_5_vl/config.json")).unwrap();
    let nested = ModelConfig::from_file(&fixtures().join("tiny/qwen2_5_vl_tf5/config.json")).unwrap();
    assert_eq!(flat, nested);
}

#[test]
fn bad_configs_are_refused_with_the_key_named() {
    let p = Path::new("x/config.json");
    let cases = [
        (r#"{"model_type": "llava"}"#, "unsupported model_type"),
        (r#"{"architectures": []}"#, "no `model_type`"),
        (r#"{"model_type": "qwen2_5_vl", "hidden_size": "big"}"#, "`hidden_size` must be a non-negative integer"),
        (r#"{"model_type": "qwen2_5_vl", "hidden_size": 64, "num_attention_heads": 4, "rope_scaling": {"mrope_section": [2, 3]}, "vision_config": {"out_hidden_size": 64}}"#, "mrope_section"),
        (r#"{"model_type": "qwen2_5_vl", "hidden_size": 64, "num_attention_heads": 4, "rope_scaling": {"type": "yarn", "mrope_section": [2, 3, 3]}}"#, "rope type \"yarn\""),
        (r#"{"model_type": "qwen2_vl", "hidden_size": 64, "num_attention_heads": 4, "rope_scaling": {"mrope_section": [2, 3, 3]}, "vision_config": {"hidden_size": 32}}"#, "merger outputs 32"),
        (r#"{"model_type": "qwen2_5_vl", "text_config": {"num_hidden_layers": -1}}"#, "`text_config.num_hidden_layers`"),
        ("{ not json", "line 1"),
        (r#"{"model_type": "qwen2_5_vl", "vision_config": {"depth": "x"}}"#, r#"`vision_config.depth` must be a non-negative integer, got "x""#),
        (r#"{"model_type": "qwen2_5_vl", "rope_scaling": {"mrope_section": [16, "24", 24]}}"#, "`rope_scaling.mrope_section` must be a list"),
        // serde would read a list as a struct's fields in order: `[]` must not pass as "all defaults".
        (r#"{"model_type": "qwen2_5_vl", "rope_scaling": []}"#, "`rope_scaling` must be an object, got []"),
        (r#"{"model_type": "qwen2_5_vl", "vision_config": []}"#, "`vision_config` must be an object"),
        (r#"{"model_type": "qwen2_5_vl", "text_config": 5}"#, "`text_config` must be an object"),
    ];
    for (text, needle) in cases {
        let err = ModelConfig::from_json_str(text, p).unwrap_err().to_string();
        assert!(err.contains(needle), "{needle:?} not in {err:?}");
        assert!(err.starts_with("x/config.json"), "{err}");
        assert_eq!(err.lines().count(), 1);
    }
}

#[test]
fn verification_phrases_come_from_the_config_file_and_config_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "verification_phrases = [\"hmm\", \"double-check\"]\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_proxythinker")).env("PROXYTHINKER_CONFIG", &file).args(["config", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["settings"]["verification_phrases"]["value"], serde_json::json!(["hmm", "double-check"]));
    assert!(v["settings"]["verification_phrases"]["from"].as_str().unwrap().contains("c.toml"));
    let none = dir.path().join("none.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_proxythinker")).env("PROXYTHINKER_CONFIG", &none).args(["config", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["settings"]["verification_phrases"]["value"][0], "wait");
}
