//! Qwen3-VL parity with transformers on tiny random checkpoints: prompt ids, pixel values,
//! last-position logits and greedy continuations, for a tied-head checkpoint in the Hub's layout
//! (`rope_scaling`, DeepStack after vision blocks 0 and 2) and an untied one with transformers 5's
//! `rope_parameters` (DeepStack after block 1). The expected values come from
//! `tests/fixtures/reference_qwen3_vl.py`.

mod common;

use std::sync::Arc;

use candle_core::{DType, Device};
use common::*;
use proxythinker::generate::greedy;
use proxythinker::loader::Checkpoint;
use proxythinker::models::{Decoder, Family};
use proxythinker::prepare::{prepare_prompt, PreparedPrompt};
use proxythinker::processor::{prompt, SourceImage};
use serde_json::Value;

/// Logits must agree with transformers' to this bound in f32.
const LOGITS_TOL: f32 = 1e-4;

struct Qwen3Fixture {
    checkpoint: Checkpoint,
    tokenizer: tokenizers::Tokenizer,
    model: Arc<dyn Decoder>,
}

fn load_qwen3(name: &str) -> Qwen3Fixture {
    let checkpoint = Checkpoint::open(&tiny(name)).unwrap_or_else(|e| panic!("{e}"));
    let tokenizer = prompt::load_tokenizer(&checkpoint.tokenizer_file).unwrap();
    let model = checkpoint.load_decoder(DType::F32, &Device::Cpu).unwrap_or_else(|e| panic!("{e}"));
    Qwen3Fixture { checkpoint, tokenizer, model }
}

impl Qwen3Fixture {
    fn prompt(&self, case: &Value) -> PreparedPrompt {
        let image = case["image"]
            .as_str()
            .map(|i| SourceImage::open(&fixtures().join("tiny").join(i)).unwrap_or_else(|e| panic!("{e}")));
        let question = case["prompt"].as_str().unwrap();
        prepare_prompt(&self.checkpoint, &self.tokenizer, question, image.as_ref(), case["raw"].as_bool().unwrap(), &Device::Cpu)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn last_logits(&self, p: &PreparedPrompt) -> Vec<f32> {
        let mut cache = self.model.new_cache();
        self.model.prefill(std::slice::from_ref(&p.input), &mut cache).unwrap().squeeze(0).unwrap().to_vec1().unwrap()
    }
}

fn cases(kind: &str) -> Vec<Value> {
    let manifest = read_json(&fixtures().join("tiny/expected/qwen3_vl_manifest.json"));
    manifest["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == kind)
        .map(|c| read_json(&fixtures().join("tiny/expected").join(c["file"].as_str().unwrap())))
        .collect()
}

fn describe(case: &Value) -> String {
    format!("{} image={} prompt={:?} raw={}", case["model"], case["image"], case["prompt"], case["raw"])
}

#[test]
fn qwen3_vl_checkpoints_load_as_the_hub_has_them() {
    let tied = load_qwen3("qwen3_vl");
    let untied = load_qwen3("qwen3_vl_untied");
    for fx in [&tied, &untied] {
        let c = &fx.checkpoint.config;
        assert_eq!(c.family, Family::Qwen3Vl);
        assert_eq!((c.text.head_dim, c.text.num_attention_heads, c.text.hidden_size), (24, 4, 64));
        assert_eq!(c.text.mrope_section, vec![5, 4, 3]);
        assert_eq!(c.text.rope_theta, 5_000_000.0);
        assert_eq!((c.vision.patch_size, c.vision.num_position_embeddings), (16, 64));
        assert_eq!(fx.checkpoint.processor.patch_size, 16);
        assert_eq!(fx.checkpoint.processor.image_mean, [0.5; 3]);
        assert_eq!((fx.checkpoint.processor.min_pixels, fx.checkpoint.processor.max_pixels), (4096, 131072));
    }
    assert!(tied.checkpoint.config.text.tie_word_embeddings);
    assert!(!untied.checkpoint.config.text.tie_word_embeddings);
    assert_eq!(tied.checkpoint.config.vision.deepstack_visual_indexes, vec![0, 2]);
    assert_eq!(untied.checkpoint.config.vision.deepstack_visual_indexes, vec![1]);
    assert_eq!((tied.model.vocab_size(), untied.model.vocab_size()), (336, 368));
    // The parameter count matches the tensors in the file (the tied head is stored once).
    for fx in [&tied, &untied] {
        let stored: u64 = fx.checkpoint.tensors().unwrap().iter().map(|t| t.numel()).sum();
        assert_eq!(proxythinker::presets::param_count(&fx.checkpoint.config), stored, "{}", fx.checkpoint.dir.display());
    }
}

#[test]
fn qwen3_vl_prompt_ids_and_pixels_match_transformers() {
    let mut checked = 0;
    for case in cases("logits").iter().chain(cases("generate").iter()) {
        let fx = load_qwen3(case["model"].as_str().unwrap());
        let p = fx.prompt(case);
        assert_eq!(p.text, case["template_text"].as_str().unwrap(), "template text for {}", describe(case));
        assert_eq!(p.input.input_ids, u32s(&case["input_ids"]), "input ids for {}", describe(case));
        if let Some(grid) = case["image_grid_thw"].as_array().and_then(|g| g.first()) {
            let img = &p.input.images[0];
            let want: Vec<usize> = grid.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
            assert_eq!(img.grid_thw.to_vec(), want, "grid for {}", describe(case));
            let shape: Vec<usize> =
                case["pixel_values_shape"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
            assert_eq!(img.pixel_values.dims(), &shape[..], "pixel shape for {}", describe(case));
            let ours: Vec<f32> = img.pixel_values.flatten_all().unwrap().to_vec1().unwrap();
            let head = f32s(&case["pixel_values_head"]);
            assert_eq!(max_abs_diff(&ours[..head.len()], &head), 0.0, "pixels for {}", describe(case));
            let sum: f64 = ours.iter().map(|&x| x as f64).sum();
            let want_sum = case["pixel_values_sum"].as_f64().unwrap();
            assert!((sum - want_sum).abs() < 1e-3 * (1.0 + want_sum.abs()), "pixel sum {sum} vs {want_sum} for {}", describe(case));
        }
        checked += 1;
    }
    assert!(checked >= 18, "only {checked} cases");
}

#[test]
fn qwen3_vl_last_logits_match_transformers_in_f32() {
    let mut worst = 0.0f32;
    let mut checked = 0;
    for case in cases("logits") {
        let fx = load_qwen3(case["model"].as_str().unwrap());
        let logits = fx.last_logits(&fx.prompt(&case));
        let d = max_abs_diff(&logits, &f32s(&case["logits"]));
        eprintln!("max |Δlogit| = {d:e} for {}", describe(&case));
        assert!(d < LOGITS_TOL, "max |Δlogit| = {d} for {}", describe(&case));
        worst = worst.max(d);
        checked += 1;
    }
    assert!(checked >= 14, "only {checked} cases");
    eprintln!("worst max |Δlogit| over {checked} cases: {worst:e}");
}

#[test]
fn qwen3_vl_greedy_continuations_match_transformers() {
    let mut checked = 0;
    for case in cases("generate") {
        let fx = load_qwen3(case["model"].as_str().unwrap());
        let p = fx.prompt(&case);
        let want = u32s(&case["token_ids"]);
        let g = greedy(&*fx.model, &p.input, want.len(), &[]).unwrap();
        assert_eq!(g.token_ids, want, "greedy tokens for {}", describe(&case));
        let text = prompt::decode(&fx.tokenizer, &g.token_ids).unwrap();
        assert_eq!(text, case["text"].as_str().unwrap(), "decoded text for {}", describe(&case));
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} cases");
}

#[test]
fn qwen3_vl_batched_rows_and_truncation_equal_single_runs() {
    let fx = load_qwen3("qwen3_vl");
    let case = cases("logits").into_iter().find(|c| c["model"] == "qwen3_vl" && c["image"] == "images/84x112.png").unwrap();
    let p = fx.prompt(&case);
    let single = fx.last_logits(&p);
    // Two rows of one batch: the second row's image and DeepStack slots sit one prompt further on.
    let mut cache = fx.model.new_cache();
    let rows = [p.input.clone(), p.input.clone()];
    let batched: Vec<Vec<f32>> = fx.model.prefill(&rows, &mut cache).unwrap().to_vec2().unwrap();
    for row in &batched {
        assert!(max_abs_diff(row, &single) < 1e-5);
    }
    // Step, truncate back, step again: the same logits.
    let first = fx.model.step(&[7, 7], &mut cache).unwrap().to_vec2::<f32>().unwrap();
    let len = cache.len();
    fx.model.step(&[9, 9], &mut cache).unwrap();
    cache.truncate(len - 1).unwrap();
    let again = fx.model.step(&[7, 7], &mut cache).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(first, again);
}

#[test]
fn a_qwen3_vl_model_cannot_guide_a_qwen2_5_vl_base() {
    let open = |name: &str| {
        let c = Checkpoint::open(&tiny(name)).unwrap();
        let t = prompt::load_tokenizer(&c.tokenizer_file).unwrap();
        (c, t)
    };
    let err = proxythinker::trio::check_compatible(&open("qwen2_5_vl"), &open("qwen3_vl"), "--rft").unwrap_err().to_string();
    assert!(err.contains("qwen3_vl") && err.contains("qwen2_5_vl") && !err.contains('\n'), "{err}");
    assert!(proxythinker::trio::check_compatible(&open("qwen3_vl"), &open("qwen3_vl_untied"), "--rft").is_ok());
}

#[test]
fn qwen3_vl_half_precision_stays_close_to_f32() {
    let case = cases("logits").into_iter().find(|c| c["model"] == "qwen3_vl" && c["image"] == "images/224x224.png").unwrap();
    let fx = load_qwen3("qwen3_vl");
    let p = fx.prompt(&case);
    let reference = fx.last_logits(&p);
    let scale = reference.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let argmax = |v: &[f32]| v.iter().enumerate().fold(0, |best, (i, &x)| if x > v[best] { i } else { best });
    for (dtype, bound) in [(DType::F16, 0.02), (DType::BF16, 0.08)] {
        let model = fx.checkpoint.load_decoder(dtype, &Device::Cpu).unwrap();
        let mut cache = model.new_cache();
        let logits: Vec<f32> = model.prefill(std::slice::from_ref(&p.input), &mut cache).unwrap().squeeze(0).unwrap().to_vec1().unwrap();
        let rel = max_abs_diff(&logits, &reference) / scale;
        assert!(rel < bound, "{dtype:?}: max |Δlogit| / max |logit| = {rel}");
        assert_eq!(argmax(&logits), argmax(&reference), "{dtype:?}");
    }
}

#[test]
fn qwen3_vl_weights_that_do_not_fit_the_config_are_refused_in_one_line() {
    // A checkpoint whose config promises more text layers than the file holds.
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(tiny("qwen3_vl")).unwrap() {
        let e = entry.unwrap();
        std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    let config = dir.path().join("config.json");
    let text = std::fs::read_to_string(&config).unwrap().replace("\"num_hidden_layers\": 3", "\"num_hidden_layers\": 4");
    std::fs::write(&config, text).unwrap();
    let err = Checkpoint::open(dir.path()).unwrap().load_decoder(DType::F32, &Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("layers.3") && err.contains("do not match config.json") && !err.contains('\n'), "{err}");

    // Attention biases would load and be ignored: refused instead.
    std::fs::copy(tiny("qwen3_vl").join("config.json"), &config).unwrap();
    let weights = dir.path().join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&weights, &Device::Cpu).unwrap();
    let bias = candle_core::Tensor::zeros(96, DType::F32, &Device::Cpu).unwrap();
    tensors.insert("model.language_model.layers.0.self_attn.q_proj.bias".into(), bias);
    candle_core::safetensors::save(&tensors, &weights).unwrap();
    let err = Checkpoint::open(dir.path()).unwrap().load_decoder(DType::F32, &Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("attention biases") && !err.contains('\n'), "{err}");
}
