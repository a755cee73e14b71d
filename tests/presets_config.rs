//! Presets (`--preset`, `proxythinker presets`), prompt suffixes (`--suffix`) and the config file
//! (`PROXYTHINKER_CONFIG`, `proxythinker config`): what each lists, how settings are resolved
//! (command line > config file > preset > default), and how a bad config file is reported.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use proxythinker::models::ModelConfig;
use proxythinker::presets::{self, param_count, Suffix};
use serde_json::Value;

const BOXED: &str = "\n\nYour final answer MUST BE put in \\boxed{}.";
const RETHINK: &str = "\n\nPlease reason step by step, and put your final answer within \\boxed{}.";

/// The binary with a config file path that `write_config` may fill (none by default).
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env { dir: tempfile::tempdir().unwrap() }
    }
    fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }
    fn write_config(&self, text: &str) -> PathBuf {
        std::fs::write(self.config_path(), text).unwrap();
        self.config_path()
    }
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_proxythinker"))
            .args(args)
            .env("PROXYTHINKER_CONFIG", self.config_path())
            .env_remove("PROXYTHINKER_FREE_MEMORY_BYTES")
            .output()
            .unwrap()
    }
}

fn tiny(name: &str) -> String {
    fixtures().join("tiny").join(name).to_str().unwrap().to_string()
}

fn json_stdout(out: &Output) -> Value {
    assert!(out.status.success(), "exit {:?}, stderr: {}", out.status, String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(text.trim_end().lines().count(), 1, "one JSON line: {text}");
    serde_json::from_str(&text).expect("JSON")
}

fn one_line_error(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn presets_lists_the_seven_with_models_alpha_suffix_and_memory() {
    let env = Env::new();
    let v = json_stdout(&env.run(&["presets", "--json"]));
    assert_eq!(v["context_tokens"], 4096);
    let expected = [
        ("paper-72b", "Qwen/Qwen2.5-VL-72B-Instruct", "TIGER-Lab/VL-Rethinker-7B", "Qwen/Qwen2.5-VL-7B-Instruct", "rethink"),
        ("paper-32b", "Qwen/Qwen2.5-VL-32B-Instruct", "TIGER-Lab/VL-Rethinker-7B", "Qwen/Qwen2.5-VL-7B-Instruct", "rethink"),
        ("thinklite-32b", "Qwen/Qwen2.5-VL-32B-Instruct", "russwang/ThinkLite-VL-7B", "Qwen/Qwen2.5-VL-7B-Instruct", "boxed"),
        ("workstation-7b", "Qwen/Qwen2.5-VL-7B-Instruct", "UCSC-VLAA/VLAA-Thinker-Qwen2.5VL-3B", "Qwen/Qwen2.5-VL-3B-Instruct", "boxed"),
        ("qwen2vl-7b", "Qwen/Qwen2-VL-7B-Instruct", "UCSC-VLAA/VLAA-Thinker-Qwen2VL-2B", "Qwen/Qwen2-VL-2B-Instruct", "boxed"),
        ("qwen3vl-32b", "Qwen/Qwen3-VL-32B-Instruct", "Qwen/Qwen3-VL-8B-Thinking", "Qwen/Qwen3-VL-8B-Instruct", "boxed"),
        ("qwen3vl-8b", "Qwen/Qwen3-VL-8B-Instruct", "Qwen/Qwen3-VL-2B-Thinking", "Qwen/Qwen3-VL-2B-Instruct", "boxed"),
    ];
    let list = v["presets"].as_array().unwrap();
    assert_eq!(list.len(), 7);
    for (p, (name, base, rft, small, suffix)) in list.iter().zip(expected) {
        assert_eq!(p["name"], name);
        assert_eq!((p["base"]["repo"].as_str(), p["rft"]["repo"].as_str(), p["small"]["repo"].as_str()), (Some(base), Some(rft), Some(small)));
        assert_eq!(p["alpha"], 0.5);
        assert_eq!(p["suffix"], suffix);
        assert_eq!(p["suffix_text"], if suffix == "boxed" { BOXED } else { RETHINK });
        // Weights: the stated parameter counts × 2 bytes (bf16).
        let params: u64 = ["base", "rft", "small"].iter().map(|m| p[*m]["params"].as_u64().unwrap()).sum();
        let m = &p["memory_bf16"];
        assert_eq!(m["weights_bytes"].as_u64().unwrap(), params * 2, "{name}");
        let total = ["weights_bytes", "kv_cache_bytes", "live_alpha_bytes"].iter().map(|k| m[*k].as_u64().unwrap()).sum::<u64>();
        assert_eq!(m["total_bytes"].as_u64().unwrap(), total);
    }
    // KV cache of workstation-7b by hand: 4096 tokens × bf16 × (2 rows × 28 layers × 2 × 4 heads × 128
    // for the 7B, 2 rows + 1 row × 36 layers × 2 × 2 heads × 128 for the 3B pair); live α 8·151936 per token.
    let ws = &list[3]["memory_bf16"];
    let kv = 4096 * 2 * (2 * 28 * 2 * 4 * 128 + 3 * 36 * 2 * 2 * 128);
    assert_eq!(ws["kv_cache_bytes"].as_u64().unwrap(), kv);
    assert_eq!(ws["live_alpha_bytes"].as_u64().unwrap(), 4096 * 8 * 151_936);
    // qwen3vl-8b: the 8B's 36 layers × 8 KV heads for 2 rows, the 2B pair's 28 layers × 8 KV heads
    // for 3 rows; weights 2 bytes a parameter: 8.77 B + 2 × 2.13 B (a Thinking model has its
    // Instruct model's architecture).
    let q8 = &list[6]["memory_bf16"];
    assert_eq!(q8["kv_cache_bytes"].as_u64().unwrap(), 4096 * 2 * (2 * 36 * 2 * 8 * 128 + 3 * 28 * 2 * 8 * 128));
    assert_eq!(q8["weights_bytes"].as_u64().unwrap(), 2 * (8_767_123_696 + 2 * 2_127_532_032));
    // The readable table names each preset, its models and the memory in GB.
    let out = env.run(&["presets"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for (name, base, rft, small, _) in expected {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} in {text}"));
        assert!(line.contains(base) && line.contains(rft) && line.contains(small) && line.contains(" GB"), "{line}");
    }
    assert!(text.contains("4096-token context"), "{text}");
}

#[test]
fn param_count_equals_the_fixture_safetensors_headers() {
    for name in ["qwen2_5_vl", "qwen2_vl", "qwen2_5_vl_tf5", "trio_rft", "trio_small"] {
        let dir = fixtures().join("tiny").join(name);
        let cfg = ModelConfig::from_file(&dir.join("config.json")).unwrap();
        let mut numel = 0u64;
        for f in std::fs::read_dir(&dir).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_some_and(|e| e == "safetensors") {
                numel += header_numel(&p);
            }
        }
        assert_eq!(param_count(&cfg), numel, "{name}");
    }
}

/// Sum of the tensor sizes in a safetensors header, read here without the crate's loader.
fn header_numel(path: &Path) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(_, t)| t["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).product::<u64>())
        .sum()
}

#[test]
fn stated_counts_match_the_real_hub_configs() {
    for spec in presets::BASE_ARCHITECTURES {
        let file = fixtures().join("configs").join(format!("{}.config.json", spec.repo.split('/').nth(1).unwrap()));
        let cfg = ModelConfig::from_file(&file).unwrap();
        assert_eq!(spec.params, param_count(&cfg), "{}", spec.repo);
        let t = &cfg.text;
        assert_eq!(
            (spec.layers, spec.kv_heads, spec.head_dim, spec.vocab),
            (t.num_hidden_layers as u64, t.num_key_value_heads as u64, t.head_dim as u64, t.vocab_size as u64),
            "{}",
            spec.repo
        );
    }
    // Every preset's models have one of these architectures.
    for p in presets::all() {
        for m in p.models() {
            assert!(presets::BASE_ARCHITECTURES.iter().any(|a| a.params == m.params && a.layers == m.layers), "{}", m.repo);
        }
    }
}

fn setting<'a>(v: &'a Value, key: &str) -> (&'a Value, &'a str) {
    (&v["settings"][key]["value"], v["settings"][key]["from"].as_str().unwrap_or_else(|| panic!("{key}: {v}")))
}

#[test]
fn a_preset_resolves_its_three_repo_ids() {
    let env = Env::new();
    let v = json_stdout(&env.run(&["config", "--preset", "workstation-7b", "--json"]));
    assert_eq!(setting(&v, "preset"), (&Value::from("workstation-7b"), "command line"));
    assert_eq!(setting(&v, "base"), (&Value::from("Qwen/Qwen2.5-VL-7B-Instruct"), "preset workstation-7b"));
    assert_eq!(setting(&v, "rft"), (&Value::from("UCSC-VLAA/VLAA-Thinker-Qwen2.5VL-3B"), "preset workstation-7b"));
    assert_eq!(setting(&v, "small"), (&Value::from("Qwen/Qwen2.5-VL-3B-Instruct"), "preset workstation-7b"));
    assert_eq!(setting(&v, "alpha"), (&Value::from(0.5), "preset workstation-7b"));
    assert_eq!(setting(&v, "suffix"), (&Value::from("boxed"), "preset workstation-7b"));
    assert_eq!(v["config_file_found"], false);
    // An unknown preset is one line naming the known ones.
    let err = one_line_error(&env.run(&["config", "--preset", "huge-1t"]));
    assert!(err.contains("huge-1t") && err.contains("workstation-7b"), "{err}");
    // No models and no preset: the old error.
    let err = one_line_error(&env.run(&["run", "--question", "hi", "--rft", "x/y"]));
    assert!(err.contains("--base is required"), "{err}");
}

#[test]
fn precedence_is_command_line_then_config_then_preset_then_default() {
    let env = Env::new();
    let path = env.write_config(
        "preset = \"workstation-7b\"\nalpha = 0.7\nrft = \"/models/my-rft\"\nmax_new_tokens = 64\ndtype = \"bf16\"\ntemperature = 0.8\nhub_cache = \"/data/hf\"\n",
    );
    let file = path.to_str().unwrap();
    let v = json_stdout(&env.run(&["config", "--json", "--small", "/cli/small", "--base-dtype", "f16", "--seed", "3"]));
    assert_eq!(v["config_file"], file);
    assert_eq!(v["config_file_found"], true);
    assert_eq!(setting(&v, "preset"), (&Value::from("workstation-7b"), file));
    assert_eq!(setting(&v, "base"), (&Value::from("Qwen/Qwen2.5-VL-7B-Instruct"), "preset workstation-7b"));
    assert_eq!(setting(&v, "rft"), (&Value::from("/models/my-rft"), file));
    assert_eq!(setting(&v, "small"), (&Value::from("/cli/small"), "command line"));
    assert_eq!(setting(&v, "alpha"), (&Value::from(0.7f32 as f64), file));
    assert_eq!(setting(&v, "suffix"), (&Value::from("boxed"), "preset workstation-7b"));
    assert_eq!(setting(&v, "max_new_tokens"), (&Value::from(64), file));
    assert_eq!(setting(&v, "temperature"), (&Value::from(0.8f32 as f64), file));
    assert_eq!(setting(&v, "seed"), (&Value::from(3), "command line"));
    assert_eq!(setting(&v, "top_k"), (&Value::from(0), "default"));
    assert_eq!(setting(&v, "base_dtype"), (&Value::from("f16"), "command line"));
    assert_eq!(setting(&v, "rft_dtype"), (&Value::from("bf16"), file));
    assert_eq!(setting(&v, "rft_device"), (&Value::from("cpu"), "default"));
    assert_eq!(setting(&v, "hub_cache"), (&Value::from("/data/hf"), file));
    // The command line beats the file, and --greedy beats the file's temperature.
    let v = json_stdout(&env.run(&["config", "--json", "--alpha", "0.25", "--rft", "/cli/rft", "--greedy", "--suffix", "none"]));
    assert_eq!(setting(&v, "alpha"), (&Value::from(0.25), "command line"));
    assert_eq!(setting(&v, "rft"), (&Value::from("/cli/rft"), "command line"));
    assert_eq!(setting(&v, "temperature"), (&Value::Null, "command line"));
    assert_eq!(setting(&v, "suffix"), (&Value::from("none"), "command line"));
    // A preset typed on the command line replaces the file's models, α and suffix as a whole
    // (flags typed beside it still win).
    let v = json_stdout(&env.run(&["config", "--json", "--preset", "qwen2vl-7b", "--small", "/cli/small"]));
    assert_eq!(setting(&v, "preset"), (&Value::from("qwen2vl-7b"), "command line"));
    assert_eq!(setting(&v, "rft"), (&Value::from("UCSC-VLAA/VLAA-Thinker-Qwen2VL-2B"), "preset qwen2vl-7b"));
    assert_eq!(setting(&v, "small"), (&Value::from("/cli/small"), "command line"));
    assert_eq!(setting(&v, "alpha"), (&Value::from(0.5), "preset qwen2vl-7b"));
    assert_eq!(setting(&v, "max_new_tokens"), (&Value::from(64), file));
    // The readable form says where each came from.
    let out = env.run(&["config"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("config file: {file}")), "{text}");
    let base = text.lines().find(|l| l.starts_with("base ")).unwrap();
    assert!(base.contains("Qwen/Qwen2.5-VL-7B-Instruct") && base.ends_with("preset workstation-7b"), "{base}");
    let alpha = text.lines().find(|l| l.starts_with("alpha ")).unwrap();
    assert!(alpha.ends_with(file), "{alpha}");
    // Without a config file every default says so.
    let empty = Env::new();
    let v = json_stdout(&empty.run(&["config", "--json"]));
    assert_eq!(setting(&v, "alpha"), (&Value::from(0.5), "default"));
    assert_eq!(setting(&v, "base_dtype"), (&Value::from("f32"), "default"));
    assert_eq!(setting(&v, "small_device"), (&Value::from("cpu"), "default"));
    assert_eq!(setting(&v, "max_new_tokens"), (&Value::from(512), "default"));
}

#[test]
fn a_malformed_config_names_the_file_line_and_key() {
    let env = Env::new();
    let path = env.write_config("alpha = 0.5\nmax_new_tokens = \"many\"\n");
    let err = one_line_error(&env.run(&["config"]));
    assert!(err.contains(&format!("{}:2:", path.display())) && err.contains("max_new_tokens"), "{err}");
    // A syntax error.
    env.write_config("# settings\nalpha = 0.5\nseed = \n");
    let err = one_line_error(&env.run(&["config", "--json"]));
    assert!(err.contains(&format!("{}:3:", path.display())) && err.contains("seed"), "{err}");
    // A value its key does not take.
    env.write_config("dtype = \"f64\"\n");
    let err = one_line_error(&env.run(&["config"]));
    assert!(err.contains(":1:") && err.contains("dtype") && err.contains("f64"), "{err}");
    // It stops `run` too, before anything else.
    let err = one_line_error(&env.run(&["run", "--preset", "workstation-7b", "--question", "hi"]));
    assert!(err.contains(&format!("{}:1:", path.display())), "{err}");
}

#[test]
fn an_unknown_key_is_named() {
    let env = Env::new();
    let path = env.write_config("alpha = 0.5\n\nalhpa = 0.6\n");
    let err = one_line_error(&env.run(&["config"]));
    assert!(err.contains("alhpa") && err.contains(&format!("{}:3:1", path.display())), "{err}");
}

fn run_tiny(env: &Env, extra: &[&str]) -> Value {
    let mut args = vec!["run", "--question", "What is in the picture?", "--max-new-tokens", "2", "--json"];
    args.extend_from_slice(extra);
    json_stdout(&env.run(&args))
}

#[test]
fn suffixes_change_the_prompt() {
    let env = Env::new();
    let (b, r, s) = (tiny("qwen2_5_vl"), tiny("trio_rft"), tiny("trio_small"));
    let models = ["--base", b.as_str(), "--rft", r.as_str(), "--small", s.as_str()];
    let prompt = |suffix: Option<&str>| -> String {
        let mut extra = models.to_vec();
        if let Some(x) = suffix {
            extra.extend(["--suffix", x]);
        }
        run_tiny(&env, &extra)["prompt"].as_str().unwrap().to_string()
    };
    let q = "What is in the picture?";
    let plain = prompt(None);
    assert!(plain.contains(&format!("{q}<|im_end|>")), "{plain}");
    assert_eq!(prompt(Some("none")), plain);
    for (name, text) in [("boxed", BOXED), ("rethink", RETHINK), (" Answer in one word.", " Answer in one word.")] {
        let p = prompt(Some(name));
        assert!(p.contains(&format!("{q}{text}<|im_end|>")), "{name}: {p}");
        assert_eq!(p.replace(text, ""), plain, "only the suffix differs");
    }
    assert_eq!(Suffix::parse("boxed").text(), BOXED);
    assert_eq!(Suffix::parse("rethink").text(), RETHINK);
    // A suffix in the config file applies; --suffix beats it.
    env.write_config("suffix = \"rethink\"\n");
    let p = run_tiny(&env, &models)["prompt"].as_str().unwrap().to_string();
    assert!(p.contains(&format!("{q}{RETHINK}<|im_end|>")), "{p}");
    let mut extra = models.to_vec();
    extra.extend(["--suffix", "boxed"]);
    let p = run_tiny(&env, &extra)["prompt"].as_str().unwrap().to_string();
    assert!(p.contains(&format!("{q}{BOXED}<|im_end|>")), "{p}");
}

#[test]
fn run_takes_models_and_alpha_from_the_config_and_alpha_from_the_command_line() {
    let env = Env::new();
    env.write_config(&format!(
        "base = {:?}\nrft = {:?}\nsmall = {:?}\nalpha = 0.25\n",
        tiny("qwen2_5_vl"),
        tiny("trio_rft"),
        tiny("trio_small")
    ));
    let v = run_tiny(&env, &[]);
    assert_eq!(v["alpha"], 0.25);
    assert_eq!(v["guided"]["token_ids"].as_array().unwrap().len(), 2);
    let v = run_tiny(&env, &["--alpha", "0.5"]);
    assert_eq!(v["alpha"], 0.5);
    // Without the config and without --alpha: 0.5.
    std::fs::remove_file(env.config_path()).unwrap();
    let (b, r, s) = (tiny("qwen2_5_vl"), tiny("trio_rft"), tiny("trio_small"));
    let v = run_tiny(&env, &["--base", &b, "--rft", &r, "--small", &s]);
    assert_eq!(v["alpha"], 0.5);
    assert_eq!(v["placement"]["base"], serde_json::json!({"device": "cpu", "dtype": "f32"}));
}
