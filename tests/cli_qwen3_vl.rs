//! The command line on Qwen3-VL checkpoints: `logits` and `generate` give transformers' values,
//! and a trio that mixes Qwen3-VL with another family, or a MoE checkpoint, is refused in one
//! line with exit status 2 before any weights load.

mod common;

use std::process::{Command, Output};

use common::*;
use serde_json::Value;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_proxythinker")).args(args).output().expect("run proxythinker")
}

fn json_stdout(out: &Output) -> Value {
    assert!(out.status.success(), "exit {:?}, stderr: {}", out.status, String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&String::from_utf8(out.stdout.clone()).unwrap()).expect("stdout is JSON")
}

fn assert_user_error(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line expected, got: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "{n:?} not in: {stderr}");
    }
}

fn case(file: &str) -> Value {
    read_json(&fixtures().join("tiny/expected").join(file))
}

#[test]
fn logits_of_an_image_prompt_match_transformers() {
    let want = case("qwen3_vl_03_qwen3_vl_logits.json");
    let img = fixtures().join("tiny").join(want["image"].as_str().unwrap());
    let model = tiny("qwen3_vl");
    let out = run(&["logits", "--model", model.to_str().unwrap(), "--image", img.to_str().unwrap(), "--prompt", want["prompt"].as_str().unwrap()]);
    let v = json_stdout(&out);
    assert_eq!(v["model_type"], "qwen3_vl");
    assert_eq!(u32s(&v["input_ids"]), u32s(&want["input_ids"]));
    assert_eq!(v["image_grid_thw"], want["image_grid_thw"]);
    assert!(max_abs_diff(&f32s(&v["logits"]), &f32s(&want["logits"])) < 1e-4);
}

#[test]
fn generate_gives_the_greedy_tokens_of_transformers() {
    let want = case("qwen3_vl_15_qwen3_vl_untied_generate.json");
    let img = fixtures().join("tiny").join(want["image"].as_str().unwrap());
    let model = tiny("qwen3_vl_untied");
    let out = run(&["generate", "--json", "--ignore-eos", "--max-new-tokens", "12", "--model", model.to_str().unwrap(), "--image", img.to_str().unwrap(), "--prompt", want["prompt"].as_str().unwrap()]);
    assert_eq!(u32s(&json_stdout(&out)["token_ids"]), u32s(&want["token_ids"]));
}

#[test]
fn a_trio_mixing_families_is_refused_before_loading() {
    let (q3, q25) = (tiny("qwen3_vl"), tiny("qwen2_5_vl"));
    let out = run(&["run", "--base", q3.to_str().unwrap(), "--rft", q25.to_str().unwrap(), "--small", q3.to_str().unwrap(), "--question", "Hi", "--max-new-tokens", "2"]);
    assert_user_error(&out, &["qwen2_5_vl", "qwen3_vl", "one family"]);
}

#[test]
fn a_moe_checkpoint_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(tiny("qwen3_vl")).unwrap() {
        let e = entry.unwrap();
        std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    let config = dir.path().join("config.json");
    let text = std::fs::read_to_string(&config).unwrap().replace("\"model_type\": \"qwen3_vl\"", "\"model_type\": \"qwen3_vl_moe\"");
    std::fs::write(&config, text).unwrap();
    let out = run(&["logits", "--model", dir.path().to_str().unwrap(), "--prompt", "Hi"]);
    assert_user_error(&out, &["config.json", "only the dense Qwen3-VL models"]);
    // As any model of a trio, before a weight loads.
    let (moe, q3) = (dir.path().to_str().unwrap(), tiny("qwen3_vl"));
    let q3 = q3.to_str().unwrap();
    for [base, rft, small] in [[moe, q3, q3], [q3, q3, moe]] {
        let all = ["run", "--question", "Hi", "--max-new-tokens", "2", "--base", base, "--rft", rft, "--small", small];
        let out = run(&all);
        assert_user_error(&out, &["config.json", "qwen3_vl_moe", "only the dense Qwen3-VL models"]);
    }
}
