//! The command-line contract: `logits` and `generate` print one JSON object with the agreed
//! keys, and every kind of bad input gets one line on stderr and exit status 2, never a panic.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_proxythinker"))
}

fn model(name: &str) -> PathBuf {
    fixtures().join("tiny").join(name)
}

fn image(name: &str) -> PathBuf {
    fixtures().join("tiny/images").join(name)
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run proxythinker")
}

fn json_stdout(out: &Output) -> Value {
    assert!(out.status.success(), "exit {:?}, stderr: {}", out.status, String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(text.trim_end().lines().count(), 1, "stdout must be exactly one JSON line");
    serde_json::from_str(&text).expect("stdout is JSON")
}

/// Asserts a clean failure: status 2, one line on stderr that mentions every needle.
fn assert_user_error(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line expected, got: {stderr}");
    for n in needles {
        assert!(stderr.to_lowercase().contains(&n.to_lowercase()), "{n:?} not in: {stderr}");
    }
    assert!(out.stdout.is_empty(), "nothing on stdout on error");
}

fn copy_checkpoint(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(model(name)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

fn edit_json(path: &Path, f: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

fn expected_case(file: &str) -> Value {
    read_json(&fixtures().join("tiny/expected").join(file))
}

#[test]
fn logits_prints_ids_and_logits_of_the_last_position() {
    let case = expected_case("03_qwen2_5_vl_logits.json");
    let img = image("224x224.png");
    let out = run(&["logits", "--model", model("qwen2_5_vl").to_str().unwrap(), "--image", img.to_str().unwrap(), "--prompt", case["prompt"].as_str().unwrap()]);
    let v = json_stdout(&out);
    assert_eq!(u32s(&v["input_ids"]), u32s(&case["input_ids"]));
    assert!(max_abs_diff(&f32s(&v["logits"]), &f32s(&case["logits"])) < 1e-4);
    assert_eq!(v["image_grid_thw"], serde_json::json!([[1, 16, 16]]));
}

#[test]
fn logits_raw_skips_the_template() {
    let case = expected_case("08_qwen2_5_vl_logits.json");
    assert_eq!(case["raw"], true);
    let out = run(&["logits", "--model", model("qwen2_5_vl").to_str().unwrap(), "--prompt", case["prompt"].as_str().unwrap(), "--raw"]);
    let v = json_stdout(&out);
    assert_eq!(u32s(&v["input_ids"]), u32s(&case["input_ids"]));
    assert!(max_abs_diff(&f32s(&v["logits"]), &f32s(&case["logits"])) < 1e-4);
}

#[test]
fn generate_json_gives_the_greedy_tokens_of_transformers() {
    let case = expected_case("22_qwen2_vl_generate.json");
    let img = image("56x56.png");
    let out = run(&[
        "generate", "--model", model("qwen2_vl").to_str().unwrap(), "--image", img.to_str().unwrap(),
        "--prompt", case["prompt"].as_str().unwrap(), "--max-new-tokens", "12", "--ignore-eos", "--json",
    ]);
    let v = json_stdout(&out);
    assert_eq!(u32s(&v["token_ids"]), u32s(&case["token_ids"]));
    assert_eq!(v["text"], case["text"]);
    assert_eq!(v["stop"], "max_new_tokens");
}

#[test]
fn generate_stops_at_the_eos_ids_of_generation_config() {
    let case = expected_case("09_qwen2_5_vl_generate.json");
    let tokens = u32s(&case["token_ids"]);
    let dir = copy_checkpoint("qwen2_5_vl");
    // Declare the third greedy token an eos token: decoding must end right after it.
    edit_json(&dir.path().join("generation_config.json"), |v| v["eos_token_id"] = serde_json::json!([tokens[2], 9999]));
    let args = |extra: &[&str]| {
        let mut a = vec!["generate", "--model", dir.path().to_str().unwrap(), "--prompt", case["prompt"].as_str().unwrap(), "--max-new-tokens", "12", "--json"];
        a.extend_from_slice(extra);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let v = json_stdout(&bin().args(args(&[])).output().unwrap());
    let first_eos = tokens.iter().position(|&t| t == tokens[2]).unwrap();
    assert_eq!(u32s(&v["token_ids"]), tokens[..=first_eos].to_vec());
    assert_eq!(v["stop"], "eos");
    let v = json_stdout(&bin().args(args(&["--ignore-eos"])).output().unwrap());
    assert_eq!(u32s(&v["token_ids"]), tokens);
}

#[test]
fn plain_generate_prints_the_text() {
    let out = run(&["generate", "--model", model("qwen2_vl").to_str().unwrap(), "--prompt", "Hi", "--max-new-tokens", "3"]);
    assert!(out.status.success());
    assert!(!out.stdout.is_empty());
}

#[test]
fn missing_model_directory() {
    let out = run(&["logits", "--model", "/nonexistent/model", "--prompt", "hi"]);
    assert_user_error(&out, &["model directory not found", "/nonexistent/model"]);
}

#[test]
fn missing_file_in_checkpoint() {
    let dir = copy_checkpoint("qwen2_5_vl");
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    let out = run(&["logits", "--model", dir.path().to_str().unwrap(), "--prompt", "hi"]);
    assert_user_error(&out, &["tokenizer.json"]);
    let dir = copy_checkpoint("qwen2_vl");
    std::fs::remove_file(dir.path().join("model-00002-of-00002.safetensors")).unwrap();
    let out = run(&["logits", "--model", dir.path().to_str().unwrap(), "--prompt", "hi"]);
    assert_user_error(&out, &["weight shard", "model-00002-of-00002.safetensors"]);
}

#[test]
fn unsupported_model_type() {
    let dir = copy_checkpoint("qwen2_5_vl");
    edit_json(&dir.path().join("config.json"), |v| v["model_type"] = "llava".into());
    let out = run(&["logits", "--model", dir.path().to_str().unwrap(), "--prompt", "hi"]);
    assert_user_error(&out, &["unsupported model_type", "llava", "config.json"]);
}

#[test]
fn tensor_of_the_wrong_shape() {
    let dir = copy_checkpoint("qwen2_5_vl");
    edit_json(&dir.path().join("config.json"), |v| v["intermediate_size"] = 96.into());
    let out = run(&["logits", "--model", dir.path().to_str().unwrap(), "--prompt", "hi"]);
    assert_user_error(&out, &["shape mismatch", "mlp", "do not match config.json"]);
}

#[test]
fn missing_tensor() {
    let dir = copy_checkpoint("qwen2_vl");
    edit_json(&dir.path().join("config.json"), |v| v["num_hidden_layers"] = 3.into());
    let out = run(&["logits", "--model", dir.path().to_str().unwrap(), "--prompt", "hi"]);
    assert_user_error(&out, &["model.layers.2"]);
}

#[test]
fn file_that_is_not_an_image_and_empty_image() {
    for (name, needle) in [("not_an_image.png", "not_an_image.png"), ("empty.png", "empty")] {
        let img = image(name);
        let out = run(&["logits", "--model", model("qwen2_5_vl").to_str().unwrap(), "--image", img.to_str().unwrap(), "--prompt", "hi"]);
        assert_user_error(&out, &[needle]);
    }
    let out = run(&["logits", "--model", model("qwen2_5_vl").to_str().unwrap(), "--image", "/no/such.png", "--prompt", "hi"]);
    assert_user_error(&out, &["/no/such.png"]);
}

#[test]
fn empty_prompt() {
    let out = run(&["logits", "--model", model("qwen2_5_vl").to_str().unwrap(), "--prompt", "  "]);
    assert_user_error(&out, &["prompt is empty"]);
}

#[test]
fn bad_device_and_dtype() {
    let m = model("qwen2_5_vl");
    let out = run(&["logits", "--model", m.to_str().unwrap(), "--prompt", "hi", "--device", "tpu"]);
    assert_user_error(&out, &["unknown device", "tpu"]);
    let out = run(&["logits", "--model", m.to_str().unwrap(), "--prompt", "hi", "--dtype", "f8"]);
    assert_user_error(&out, &["unknown dtype", "f8"]);
    if !cfg!(feature = "cuda") {
        let out = run(&["logits", "--model", m.to_str().unwrap(), "--prompt", "hi", "--device", "cuda:0"]);
        assert_user_error(&out, &["no CUDA support", "--features cuda"]);
    }
}

#[test]
fn malformed_config_names_line_and_file() {
    let dir = copy_checkpoint("qwen2_5_vl");
    std::fs::write(dir.path().join("config.json"), "{\n  \"model_type\": \"qwen2_5_vl\",\n  oops\n}").unwrap();
    let out = run(&["logits", "--model", dir.path().to_str().unwrap(), "--prompt", "hi"]);
    assert_user_error(&out, &["config.json", "line 3"]);
}

fn run_args(extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "run".into(), "--base".into(), model("qwen2_5_vl").to_str().unwrap().into(),
        "--rft".into(), model("trio_rft").to_str().unwrap().into(),
        "--small".into(), model("trio_small").to_str().unwrap().into(),
        "--question".into(), "What is in the picture?".into(), "--max-new-tokens".into(), "5".into(),
    ];
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

#[test]
fn run_json_has_the_three_streams() {
    let v = json_stdout(&bin().args(run_args(&["--alpha", "0.5", "--json", "--ignore-eos"])).output().unwrap());
    for key in ["base", "rft", "guided"] {
        assert_eq!(v[key]["token_ids"].as_array().unwrap().len(), 5, "{key}");
        assert!(v[key]["text"].is_string(), "{key}");
    }
    let out = bin().args(run_args(&["--alpha", "0.5"])).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("=== base ===") && text.contains("=== guided (alpha = 0.50) ==="), "{text}");
}

#[test]
fn plain_run_escapes_the_control_characters_of_model_text() {
    // The tiny models' streams hold raw control characters (the guided one starts with U+0004).
    let v = json_stdout(&bin().args(run_args(&["--alpha", "0.5", "--json", "--ignore-eos"])).output().unwrap());
    let texts: Vec<String> = ["base", "rft", "guided"].iter().map(|k| v[*k]["text"].as_str().unwrap().to_string()).collect();
    assert!(texts.iter().any(|t| t.chars().any(|c| c.is_control() && c != '\n')), "the fixture must produce control characters: {texts:?}");
    let out = bin().args(run_args(&["--alpha", "0.5", "--ignore-eos"])).output().unwrap();
    let plain = ok(&out);
    let raw: Vec<char> = plain.chars().filter(|c| c.is_control() && *c != '\n').collect();
    assert!(raw.is_empty(), "raw control characters reached the terminal: {raw:?} in {plain:?}");
    // Each stream is there, escaped as the UI's panes show it: a control character is `·`.
    for t in &texts {
        assert!(plain.contains(&proxythinker::printable::terminal_text(t)), "{t:?} not in {plain:?}");
    }
    assert!(plain.contains("=== guided (alpha = 0.50) ===\n·"), "{plain:?}");
}

#[test]
fn run_refuses_a_non_finite_alpha_and_bad_sampling() {
    for a in ["nan", "inf"] {
        let out = bin().args(run_args(&["--alpha", a])).output().unwrap();
        assert_user_error(&out, &["--alpha must be a finite number"]);
    }
    let out = bin().args(run_args(&["--alpha", "0.5", "--temperature", "0"])).output().unwrap();
    assert_user_error(&out, &["--temperature must be a positive number"]);
    let out = bin().args(run_args(&["--alpha", "0.5", "--greedy", "--temperature", "0.7"])).output().unwrap();
    assert_user_error(&out, &["--greedy"]);
    let mut zero = run_args(&["--alpha", "0.5"]);
    let n = zero.iter().position(|a| a == "--max-new-tokens").unwrap();
    zero[n + 1] = "0".into();
    assert_user_error(&bin().args(&zero).output().unwrap(), &["--max-new-tokens must be at least 1"]);
}

#[test]
fn run_with_an_unwritable_trace_fails_before_decoding() {
    let out = bin().args(run_args(&["--alpha", "0.5", "--trace", "/nonexistent-dir/trace.jsonl"])).output().unwrap();
    assert_user_error(&out, &["--trace", "/nonexistent-dir/trace.jsonl", "cannot write there"]);
}

/// The first record of `stream` in a trace written by `run --trace`.
fn first_record(trace: &Path, stream: &str) -> Value {
    std::fs::read_to_string(trace)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["type"] == "token" && v["stream"] == stream)
        .unwrap_or_else(|| panic!("no {stream} record"))
}

#[test]
fn run_places_each_model_with_its_own_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let (uniform, mixed) = (dir.path().join("uniform.jsonl"), dir.path().join("mixed.jsonl"));
    let common = ["--alpha", "0.5", "--json", "--ignore-eos", "--trace"];
    let mut a = common.to_vec();
    a.push(uniform.to_str().unwrap());
    json_stdout(&bin().args(run_args(&a)).output().unwrap());
    let mut a = common.to_vec();
    a.extend([mixed.to_str().unwrap(), "--rft-dtype", "bf16", "--small-dtype", "f16", "--small-device", "cpu"]);
    let v = json_stdout(&bin().args(run_args(&a)).output().unwrap());
    assert_eq!(v["placement"]["base"], serde_json::json!({"device": "cpu", "dtype": "f32"}));
    assert_eq!(v["placement"]["rft"], serde_json::json!({"device": "cpu", "dtype": "bf16"}));
    assert_eq!(v["placement"]["small"], serde_json::json!({"device": "cpu", "dtype": "f16"}));
    assert_eq!(v["guided"]["token_ids"].as_array().unwrap().len(), 5);
    // The base model stayed in f32: its first step is bit for bit the uniform run's. The RFT
    // model really ran in bf16: its log-probabilities moved.
    assert_eq!(first_record(&uniform, "base")["logprob"], first_record(&mixed, "base")["logprob"]);
    assert_ne!(first_record(&uniform, "rft")["logprob"], first_record(&mixed, "rft")["logprob"]);
}

#[test]
fn a_per_model_device_error_names_its_flag() {
    let out = bin().args(run_args(&["--alpha", "0.5", "--small-device", "npu"])).output().unwrap();
    assert_user_error(&out, &["--small-device", "unknown device"]);
    if !cfg!(feature = "cuda") {
        let out = bin().args(run_args(&["--alpha", "0.5", "--small-device", "cuda:1"])).output().unwrap();
        assert_user_error(&out, &["--small-device cuda:1", "no CUDA support"]);
    }
}

#[test]
fn bench_reports_the_figures_the_readme_quotes() {
    // At α = 1.56 on the fixture trio, moving α by 0.01 changes the third guided token of this
    // question (found by running `run` along α): live α has tokens to keep and one to re-decode.
    let (question, alpha) = ("Describe the picture, then count the circles in it.", 1.56f32);
    let bench = |dtype: &str| {
        let mut a = run_args(&[]);
        a[0] = "bench".into();
        // bench takes --steps, not the max-new-tokens of run.
        let q = a.iter().position(|x| x == "--question").unwrap();
        a.drain(q..q + 4);
        a.extend(["--question", question, "--alpha", &alpha.to_string()].map(String::from));
        a.extend(["--steps", "3", "--unbatched", "--dtype", dtype].map(String::from));
        json_stdout(&bin().args(&a).output().unwrap())
    };
    let f32 = bench("f32");
    for key in [
        "prefill_seconds",
        "guided_only_tokens_per_second",
        "session_steps_per_second",
        "lockstep_batched_steps_per_second",
        "five_forwards_steps_per_second",
        "live_alpha_seconds",
        "live_alpha_first_token_seconds",
        "live_alpha_all_fresh_seconds",
    ] {
        // A NaN or infinite figure is written as null, so this also asks for a finite one.
        assert!(f32[key].as_f64().is_some_and(|v| v > 0.0 && v.is_finite()), "{key}: {}", f32[key]);
    }
    assert_eq!(f32["steps"], 3);
    assert_eq!(f32["placement"], "cpu f32");
    // Live α, against two fresh runs: the tokens kept are those before the first guided token
    // that differs between α and α + 0.01 (all of them if none does).
    let guided_at = |a: f32| {
        let mut args = run_args(&["--alpha", &a.to_string(), "--suffix", "none", "--ignore-eos", "--json", "--dtype", "f32"]);
        let q = args.iter().position(|x| x == "--question").unwrap();
        args[q + 1] = question.into();
        args[q + 3] = "3".into();
        u32s(&json_stdout(&bin().args(&args).output().unwrap())["guided"]["token_ids"])
    };
    let (before, after) = (guided_at(alpha), guided_at(alpha + 0.01));
    let first_change = before.iter().zip(&after).position(|(a, b)| a != b);
    assert!(first_change.is_some_and(|p| p > 0 && p < 3), "keeps some tokens and re-decodes some: {before:?} → {after:?}");
    assert_eq!(f32["live_alpha_kept_tokens"].as_u64(), first_change.map(|p| p as u64), "{before:?} → {after:?}");
    // The weights one step reads are counted from the headers at the loading dtype.
    let bf16 = bench("bf16");
    assert_eq!(bf16["weight_bytes_per_step"].as_u64().unwrap() * 2, f32["weight_bytes_per_step"].as_u64().unwrap());
}
