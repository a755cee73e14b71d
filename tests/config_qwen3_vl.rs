//! Qwen3-VL config.json resolution: transformers 5.24's defaults for what a file leaves out (the
//! values below are what `Qwen3VLConfig` resolves), both rope layouts, and the refusals (the MoE
//! models, broken DeepStack or position-table settings) in one line naming the file.

use std::path::Path;

use proxythinker::models::config::{Family, ModelConfig, VisionAct};

fn parse(text: &str) -> proxythinker::Result<ModelConfig> {
    ModelConfig::from_json_str(text, Path::new("x/config.json"))
}

#[test]
fn a_minimal_qwen3_vl_config_takes_transformers_defaults() {
    // transformers' own defaults disagree (merger 3584, text 4096), so the merger width is given.
    let cfg = parse(r#"{"model_type": "qwen3_vl", "vision_config": {"out_hidden_size": 4096}}"#).unwrap();
    let t = &cfg.text;
    assert_eq!(cfg.family, Family::Qwen3Vl);
    assert_eq!((t.vocab_size, t.hidden_size, t.num_hidden_layers, t.intermediate_size), (151936, 4096, 32, 22016));
    assert_eq!((t.num_attention_heads, t.num_key_value_heads, t.head_dim), (32, 32, 128));
    assert_eq!((t.rms_norm_eps, t.max_position_embeddings, t.rope_theta), (1e-6, 128000, 500000.0));
    assert_eq!(t.mrope_section, vec![24, 20, 20]);
    assert!(!t.tie_word_embeddings);
    let v = &cfg.vision;
    assert_eq!((v.depth, v.hidden_size, v.num_heads, v.intermediate_size), (27, 1152, 16, 4304));
    assert_eq!((v.patch_size, v.spatial_merge_size, v.temporal_patch_size), (16, 2, 2));
    assert_eq!((v.num_position_embeddings, v.rope_theta), (2304, 10000.0));
    assert_eq!(v.deepstack_visual_indexes, vec![8, 16, 24]);
    assert_eq!(v.hidden_act, VisionAct::GeluTanh);
    assert_eq!(cfg.image_token_id, 151655);
}

/// Shaped like the Hub's Qwen3-VL-2B-Instruct config.json (transformers 4.57 layout).
const HUB_SHAPED: &str = r#"{
  "architectures": ["Qwen3VLForConditionalGeneration"], "model_type": "qwen3_vl",
  "image_token_id": 151655, "video_token_id": 151656, "vision_start_token_id": 151652, "vision_end_token_id": 151653,
  "tie_word_embeddings": true,
  "text_config": {
    "model_type": "qwen3_vl_text", "vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 6144,
    "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
    "rms_norm_eps": 1e-06, "max_position_embeddings": 262144, "tie_word_embeddings": true,
    "rope_scaling": {"mrope_interleaved": true, "mrope_section": [24, 20, 20], "rope_type": "default"},
    "rope_theta": 5000000
  },
  "vision_config": {
    "model_type": "qwen3_vl", "depth": 24, "hidden_size": 1024, "intermediate_size": 4096, "num_heads": 16,
    "hidden_act": "gelu_pytorch_tanh", "in_channels": 3, "patch_size": 16, "spatial_merge_size": 2,
    "temporal_patch_size": 2, "num_position_embeddings": 2304, "out_hidden_size": 2048,
    "deepstack_visual_indexes": [5, 11, 17]
  }
}"#;

#[test]
fn both_rope_layouts_resolve_alike() {
    let hub = parse(HUB_SHAPED).unwrap();
    assert_eq!((hub.text.rope_theta, hub.text.head_dim, hub.text.num_hidden_layers), (5_000_000.0, 128, 28));
    assert_eq!(hub.vision.deepstack_visual_indexes, vec![5, 11, 17]);
    assert!(hub.text.tie_word_embeddings);
    let tf5 = HUB_SHAPED.replace(
        r#""rope_scaling": {"mrope_interleaved": true, "mrope_section": [24, 20, 20], "rope_type": "default"},
    "rope_theta": 5000000"#,
        r#""rope_parameters": {"mrope_interleaved": true, "mrope_section": [24, 20, 20], "rope_type": "default", "rope_theta": 5000000.0}"#,
    );
    assert_ne!(tf5, HUB_SHAPED);
    assert_eq!(parse(&tf5).unwrap(), hub);
}

#[test]
fn qwen3_vl_configs_that_cannot_run_are_refused_in_one_line() {
    let cases = [
        (r#"{"model_type": "qwen3_vl_moe"}"#.to_string(), "only the dense Qwen3-VL models"),
        (HUB_SHAPED.replace("[5, 11, 17]", "[5, 11, 24]"), "names block 24 but the tower has 24 blocks"),
        (HUB_SHAPED.replace("2304", "2300"), "`vision_config.num_position_embeddings` 2300 must be a positive square"),
        (HUB_SHAPED.replace("[24, 20, 20]", "[24, 20, 24]"), "mrope_section"),
        (HUB_SHAPED.replace("gelu_pytorch_tanh", "relu6"), "`vision_config.hidden_act` \"relu6\""),
    ];
    for (text, needle) in cases {
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains(needle), "{needle:?} not in {err:?}");
        assert!(err.starts_with("x/config.json"), "{err}");
        assert_eq!(err.lines().count(), 1);
    }
}
