//! Parity with transformers on tiny random checkpoints: prompt ids, pixel values, last-position
//! logits and greedy continuations, for Qwen2.5-VL (Hub and transformers-5 layouts) and Qwen2-VL.
//! The expected values come from `tests/fixtures/reference.py`.

mod common;

use candle_core::DType;
use common::*;
use proxythinker::generate::greedy;
use proxythinker::processor::image;
use serde_json::Value;

/// Logits must agree with transformers' to this bound in f32.
const LOGITS_TOL: f32 = 1e-4;

fn cases(kind: &str) -> Vec<Value> {
    let manifest = read_json(&fixtures().join("tiny/expected/manifest.json"));
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
fn prompt_ids_and_pixels_match_transformers() {
    let mut checked = 0;
    for case in cases("logits").iter().chain(cases("generate").iter()) {
        let fx = load(case["model"].as_str().unwrap(), DType::F32);
        let p = fx.prompt(case["prompt"].as_str().unwrap(), case["image"].as_str(), case["raw"].as_bool().unwrap());
        assert_eq!(p.text, case["template_text"].as_str().unwrap(), "template text for {}", describe(case));
        assert_eq!(p.input.input_ids, u32s(&case["input_ids"]), "input ids for {}", describe(case));
        if let Some(grid) = case["image_grid_thw"].as_array().and_then(|g| g.first()) {
            let img = &p.input.images[0];
            let want: Vec<usize> = grid.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
            assert_eq!(img.grid_thw.to_vec(), want, "grid for {}", describe(case));
            let shape: Vec<usize> = case["pixel_values_shape"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
            assert_eq!(img.pixel_values.dims(), &shape[..], "pixel shape for {}", describe(case));
            let ours: Vec<f32> = img.pixel_values.flatten_all().unwrap().to_vec1().unwrap();
            let head = f32s(&case["pixel_values_head"]);
            // Pillow-exact resize: identical pixels, resized or not.
            assert_eq!(max_abs_diff(&ours[..head.len()], &head), 0.0, "pixels for {}", describe(case));
            let sum: f64 = ours.iter().map(|&x| x as f64).sum();
            let want_sum = case["pixel_values_sum"].as_f64().unwrap();
            assert!((sum - want_sum).abs() < 1e-3 * (1.0 + want_sum.abs()), "pixel sum {sum} vs {want_sum} for {}", describe(case));
        }
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} cases");
}

#[test]
fn last_logits_match_transformers_in_f32() {
    let mut worst = 0.0f32;
    let mut checked = 0;
    for case in cases("logits") {
        let fx = load(case["model"].as_str().unwrap(), DType::F32);
        let p = fx.prompt(case["prompt"].as_str().unwrap(), case["image"].as_str(), case["raw"].as_bool().unwrap());
        let mut cache = fx.model.new_cache();
        let logits: Vec<f32> = fx.model.prefill(std::slice::from_ref(&p.input), &mut cache).unwrap().squeeze(0).unwrap().to_vec1().unwrap();
        let want = f32s(&case["logits"]);
        let d = max_abs_diff(&logits, &want);
        assert!(d < LOGITS_TOL, "max |Δlogit| = {d} for {}", describe(&case));
        worst = worst.max(d);
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} cases");
    eprintln!("worst max |Δlogit| over {checked} cases: {worst:e}");
}

#[test]
fn greedy_continuations_match_transformers() {
    let mut checked = 0;
    for case in cases("generate") {
        let fx = load(case["model"].as_str().unwrap(), DType::F32);
        let p = fx.prompt(case["prompt"].as_str().unwrap(), case["image"].as_str(), case["raw"].as_bool().unwrap());
        let want = u32s(&case["token_ids"]);
        let g = greedy(&fx.model, &p.input, want.len(), &[]).unwrap();
        assert_eq!(g.token_ids, want, "greedy tokens for {}", describe(&case));
        let text = proxythinker::processor::prompt::decode(&fx.tokenizer, &g.token_ids).unwrap();
        assert_eq!(text, case["text"].as_str().unwrap(), "decoded text for {}", describe(&case));
        checked += 1;
    }
    assert!(checked >= 6, "only {checked} cases");
}

#[test]
fn transformers5_layout_gives_the_hub_layout_logits() {
    let hub = load("qwen2_5_vl", DType::F32);
    let tf5 = load("qwen2_5_vl_tf5", DType::F32);
    assert_eq!(tf5.checkpoint.layout, proxythinker::loader::WeightLayout::Transformers5);
    assert_eq!(hub.checkpoint.layout, proxythinker::loader::WeightLayout::Hub);
    assert_eq!(hub.checkpoint.config, tf5.checkpoint.config);
    let run = |fx: &Fixture| -> Vec<f32> {
        let p = fx.prompt("What is in the picture?", Some("images/224x224.png"), false);
        let mut cache = fx.model.new_cache();
        fx.model.prefill(std::slice::from_ref(&p.input), &mut cache).unwrap().squeeze(0).unwrap().to_vec1().unwrap()
    };
    assert_eq!(run(&hub), run(&tf5));
}

#[test]
fn resized_image_grid_follows_smart_resize() {
    // 30x700 is rounded to multiples of 28 and its sides are not; its grid is smart_resize's.
    let fx = load("qwen2_5_vl", DType::F32);
    let p = fx.prompt("q", Some("images/30x700.png"), false);
    let (h, w) = image::smart_resize(700, 30, 28, 3136, 200704).unwrap();
    assert_eq!(p.input.images[0].grid_thw, [1, h / 14, w / 14]);
    assert_eq!((h, w), (700, 28));
}
