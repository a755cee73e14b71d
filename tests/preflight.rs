//! Memory preflight and trio checks before any weights load: the figures on the fixture
//! checkpoints (weights from the safetensors headers, KV cache by formula from config.json, live
//! α), an α sweep's rows (`eval`), a forced refusal through the binary, a normal run that passes, a mismatched tokenizer
//! refused through the binary, and the note when vocabularies differ.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use candle_core::DType;
use common::*;
use proxythinker::config::{resolve_with, Loaded, Overrides, PlacementOverrides, TrioPlacement};
use proxythinker::trio::{PerModel, TrioFiles};
use proxythinker::preflight::{self, estimate, estimate_for, per_device, Decoding};
use proxythinker::presets::human_bytes;
use serde_json::Value;


fn trio() -> TrioFiles {
    let dirs = PerModel::new(tiny("qwen2_5_vl"), tiny("trio_rft"), tiny("trio_small"));
    TrioFiles::open(dirs.as_ref().map(|p| p.as_path())).unwrap()
}

fn placement(placement: PlacementOverrides) -> TrioPlacement {
    resolve_with(&Overrides { placement, ..Overrides::default() }, Loaded::default()).unwrap().placement
}

/// Sum of the tensor sizes in a checkpoint's safetensors headers, read here by hand.
fn numel(dir: &Path) -> u64 {
    let mut n = 0;
    for f in std::fs::read_dir(dir).unwrap() {
        let p = f.unwrap().path();
        if p.extension().is_none_or(|e| e != "safetensors") {
            continue;
        }
        let bytes = std::fs::read(&p).unwrap();
        let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header: Value = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
        for (k, t) in header.as_object().unwrap() {
            if k != "__metadata__" {
                n += t["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).product::<u64>();
            }
        }
    }
    n
}

/// layers × 2 × kv_heads × head_dim from config.json (head_dim = hidden / heads when absent).
fn kv_per_token_elems(dir: &Path) -> u64 {
    let c = read_json(&dir.join("config.json"));
    let c = if c.get("text_config").is_some() { c["text_config"].clone() } else { c };
    let heads = c["num_attention_heads"].as_u64().unwrap();
    let head_dim = c.get("head_dim").and_then(Value::as_u64).unwrap_or(c["hidden_size"].as_u64().unwrap() / heads);
    let kv = c.get("num_key_value_heads").and_then(Value::as_u64).unwrap_or(heads);
    c["num_hidden_layers"].as_u64().unwrap() * 2 * kv * head_dim
}

#[test]
fn figures_on_the_fixture_checkpoints() {
    let files = trio();
    let (context, guided) = (100u64, 40u64);
    let dirs = [tiny("qwen2_5_vl"), tiny("trio_rft"), tiny("trio_small")];
    let rows = [2u64, 2, 1];
    for (dtype, size) in [(DType::F32, 4u64), (DType::BF16, 2)] {
        let p = placement(PlacementOverrides { dtype: Some(dtype), ..Default::default() });
        let needs = estimate(&files, &p, context, guided).unwrap().into_array();
        for i in 0..3 {
            assert_eq!(needs[i].weights, numel(&dirs[i]) * size, "{} weights", needs[i].name);
            assert_eq!(needs[i].kv_cache, rows[i] * context * kv_per_token_elems(&dirs[i]) * size, "{} kv", needs[i].name);
        }
        // Live α: f32 base[..V] with the base model, rft[..V] − small[..V] with the RFT model; V = 320.
        assert_eq!([needs[0].live_alpha, needs[1].live_alpha, needs[2].live_alpha], [4 * 320 * guided, 4 * 320 * guided, 0]);
        let all = per_device(&needs);
        assert_eq!(all.len(), 1, "one device");
        // The prefill is transient and one model at a time: the device needs the largest one.
        let prefill = needs.iter().map(|n| n.prefill).max().unwrap();
        assert_eq!(all[0].total(), needs.iter().map(|n| n.total() - n.prefill).sum::<u64>() + prefill);
        assert_eq!(all[0].models, ["base", "rft", "small"]);
    }
    // Each model in its own dtype.
    let p = placement(PlacementOverrides { dtypes: PerModel::new(None, Some(DType::BF16), Some(DType::F16)), ..Default::default() });
    let needs = estimate(&files, &p, context, guided).unwrap().into_array();
    assert_eq!([needs[0].weights, needs[1].weights, needs[2].weights], [numel(&dirs[0]) * 4, numel(&dirs[1]) * 2, numel(&dirs[2]) * 2]);
}

fn bin(free: Option<&str>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_proxythinker"));
    c.env("PROXYTHINKER_CONFIG", std::env::temp_dir().join("proxythinker-tests-no-config.toml"));
    match free {
        Some(f) => c.env("PROXYTHINKER_FREE_MEMORY_BYTES", f),
        None => c.env_remove("PROXYTHINKER_FREE_MEMORY_BYTES"),
    };
    c
}

fn run_args(extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = vec!["run".into(), "--question".into(), "What is in the picture?".into(), "--max-new-tokens".into(), "5".into()];
    for (flag, name) in [("--base", "qwen2_5_vl"), ("--rft", "trio_rft"), ("--small", "trio_small")] {
        a.push(flag.into());
        a.push(tiny(name).to_str().unwrap().into());
    }
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn one_line_error(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(!stderr.contains("panicked") && out.stdout.is_empty(), "{stderr}");
    stderr
}

fn json_stdout(out: &Output) -> Value {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[test]
fn a_trio_that_does_not_fit_is_refused_with_the_figures_and_a_normal_run_passes() {
    // A normal run passes (real MemAvailable, then a generous override).
    let v = json_stdout(&bin(None).args(run_args(&["--json"])).output().unwrap());
    let prompt_tokens = v["prompt_tokens"].as_u64().unwrap();
    json_stdout(&bin(Some("cpu:100000000000")).args(run_args(&["--json"])).output().unwrap());
    // 12345 bytes free: refused before loading, one line naming the device, the need and the free amount.
    let out = bin(Some("cpu:12345")).args(run_args(&["--json"])).output().unwrap();
    let err = one_line_error(&out);
    let p = placement(PlacementOverrides::default());
    let need: u64 = per_device(&estimate(&trio(), &p, prompt_tokens + 5, 5).unwrap().into_array())[0].total();
    for needle in ["not enough memory on cpu", &format!("need {}", human_bytes(need)), "but 12.1 KiB is free", "--dtype bf16"] {
        assert!(err.contains(needle), "{needle:?} not in: {err}");
    }
    // Exactly the need fits; one byte less does not.
    json_stdout(&bin(Some(&format!("cpu:{need}"))).args(run_args(&["--json"])).output().unwrap());
    one_line_error(&bin(Some(&format!("cpu:{}", need - 1))).args(run_args(&["--json"])).output().unwrap());
    // In bf16 the suggestion to use bf16 goes away; a longer context needs more.
    let err = one_line_error(&bin(Some("cpu:12345")).args(run_args(&["--dtype", "bf16"])).output().unwrap());
    assert!(!err.contains("--dtype bf16") && err.contains("as bf16"), "{err}");
    // The bench and the UI check too.
    let mut bench: Vec<String> = vec!["bench".into(), "--steps".into(), "2".into()];
    bench.extend(run_args(&[]).into_iter().skip(5));
    let err = one_line_error(&bin(Some("cpu:12345")).args(&bench).output().unwrap());
    assert!(err.contains("not enough memory on cpu"), "{err}");
    let mut tui: Vec<String> = vec!["tui".into()];
    tui.extend(run_args(&[]).into_iter().skip(1));
    let err = one_line_error(&bin(Some("cpu:12345")).args(&tui).output().unwrap());
    assert!(err.contains("not enough memory on cpu"), "{err}");
    // A malformed override is an error, not a silent pass.
    let err = one_line_error(&bin(Some("cpu=12")).args(run_args(&[])).output().unwrap());
    assert!(err.contains("PROXYTHINKER_FREE_MEMORY_BYTES"), "{err}");
}

/// A line of /proc/meminfo, read here by hand, in bytes.
#[cfg(target_os = "linux")]
fn meminfo(key: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let line = text.lines().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("no {key} in /proc/meminfo"));
    let kib: u64 = line[key.len()..].trim().trim_end_matches("kB").trim().parse().unwrap();
    kib * 1024
}

// Linux only: elsewhere there is no /proc/meminfo, and the test below checks the note instead.
#[cfg(target_os = "linux")]
#[test]
fn mem_available_is_read_on_linux() {
    // Free memory moves between two reads: the figure must lie between what was seen just before
    // and just after, give or take 5% of the machine's memory (a unit slip is 1024 times off).
    let before = meminfo("MemAvailable:");
    let got = preflight::mem_available().unwrap();
    let after = meminfo("MemAvailable:");
    let slack = meminfo("MemTotal:") / 20;
    assert!(got + slack >= before.min(after) && got <= before.max(after) + slack, "{got} vs {before}..{after}");
    // It is what a run checks against when nothing overrides it: no note says the check was skipped.
    let out = bin(None).args(run_args(&["--json"])).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !stderr.contains("memory preflight skipped"), "{stderr}");
}

// Elsewhere free RAM is not read: the run goes on, saying that the check was skipped and what the
// models need.
#[cfg(not(target_os = "linux"))]
#[test]
fn elsewhere_the_memory_preflight_is_skipped_with_a_note() {
    assert!(preflight::mem_available().is_err());
    let out = bin(None).args(run_args(&["--json"])).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let note = "note: memory preflight skipped for cpu (free RAM is only read on Linux (/proc/meminfo)); the models need ";
    assert!(stderr.contains(note), "{stderr}");
    // A figure given by hand is checked, so there is nothing to note.
    let out = bin(Some("cpu:100000000000")).args(run_args(&["--json"])).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !stderr.contains("memory preflight skipped"), "{stderr}");
}

#[test]
fn a_mismatched_tokenizer_is_refused_through_the_binary() {
    let dir = small_with_a_mismatched_tokenizer();
    let mut args = run_args(&[]);
    let i = args.iter().position(|a| a == "--small").unwrap();
    args[i + 1] = dir.path().to_str().unwrap().into();
    let err = one_line_error(&bin(None).args(&args).output().unwrap());
    assert!(err.contains("--small") && err.contains("token id 200") && err.contains("share a tokenizer"), "{err}");
}

#[test]
fn run_notes_differing_vocabularies_on_stderr() {
    // Free memory given by hand, so that no system's memory note joins the vocabulary note.
    let out = bin(Some("cpu:100000000000")).args(run_args(&["--json"])).output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end(), "note: vocabularies differ (base 336, rft 320, small 320); mixing over the shared 320");
    // Same sizes: no note.
    let mut args = run_args(&["--json"]);
    let i = args.iter().position(|a| a == "--base").unwrap();
    args[i + 1] = tiny("trio_small").to_str().unwrap().into();
    let out = bin(Some("cpu:100000000000")).args(&args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn eval_counts_a_kv_cache_row_per_alpha_in_every_model_and_no_live_alpha_store() {
    let files = trio();
    let p = placement(PlacementOverrides::default());
    let dirs = [tiny("qwen2_5_vl"), tiny("trio_rft"), tiny("trio_small")];
    let (context, guided) = (100u64, 40u64);
    // Three α: base and RFT carry their own row and one per α, the small model one per α.
    let needs = estimate_for(&files, &p, context, guided, &Decoding::sweep(3)).unwrap().into_array();
    for (i, rows) in [4u64, 4, 3].into_iter().enumerate() {
        assert_eq!(needs[i].kv_cache, rows * context * kv_per_token_elems(&dirs[i]) * 4, "{} kv", needs[i].name);
        assert_eq!(needs[i].live_alpha, 0, "a sweep's α values are fixed: no live-α store");
    }
    // A session's figures are what they were.
    assert_eq!(estimate_for(&files, &p, context, guided, &Decoding::session()).unwrap(), estimate(&files, &p, context, guided).unwrap());

    // Through the binary: with room for one α's rows but not three's, one α runs and three are refused.
    let question = ["--question", "How many circles are in the picture?", "--suffix", "boxed", "--image"];
    let mut run: Vec<String> = run_args(&["--json"]).into_iter().skip(5).collect();
    run.splice(0..0, ["run".to_string()].into_iter().chain(question.map(String::from)).chain([tiny("images/56x56.png").to_str().unwrap().into(), "--max-new-tokens".into(), "8".into()]));
    let prompt_tokens = json_stdout(&bin(None).args(&run).output().unwrap())["prompt_tokens"].as_u64().unwrap();
    let need = |k: usize| per_device(&estimate_for(&files, &p, prompt_tokens + 8, 8, &Decoding::sweep(k)).unwrap().into_array())[0].total();
    assert!(need(1) < need(3));
    let out = tempfile::tempdir().unwrap();
    let eval = |alphas: &str, free: u64| {
        let mut a: Vec<String> = vec!["eval".into(), "--data".into(), fixtures().join("eval/tiny.jsonl").to_str().unwrap().into()];
        a.extend(["--out".to_string(), out.path().join(alphas).to_str().unwrap().into(), "--alphas".into(), alphas.into(), "--max-new-tokens".into(), "8".into()]);
        a.extend(run_args(&[]).into_iter().skip(5));
        bin(Some(&format!("cpu:{free}"))).args(&a).output().unwrap()
    };
    let err = one_line_error(&eval("0.25,0.5,1", need(3) - 1));
    assert!(err.contains(&format!("need {}", human_bytes(need(3)))) && err.contains("--alphas"), "{err}");
    for (alphas, free) in [("0.5", need(3) - 1), ("0.25,0.5,1", need(3))] {
        let o = eval(alphas, free);
        assert!(o.status.success(), "{alphas}: {}", String::from_utf8_lossy(&o.stderr));
    }
}
