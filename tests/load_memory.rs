//! Peak host memory while a model loads: the loaded weights plus about one tensor, for plain and
//! quantized loads (issue: loading used to peak at twice the weights, the memory-mapped file's
//! pages and the copies both resident).
//!
//! The load runs in a child process (this test binary, re-run on one test) so that the peak it
//! reports, the kernel's VmHWM, is the load's alone and not the parent's, which builds the
//! checkpoint.

#![cfg(target_os = "linux")]

mod common;

use std::path::Path;
use std::process::Command;

use candle_core::{DType, Device};
use proxythinker::loader::Checkpoint;
use proxythinker::models::{ModelConfig, QuantFormat, Quantization, VlModel};

const CHILD: &str = "PROXYTHINKER_TEST_LOAD_CHILD";

fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A Qwen2.5-VL checkpoint of about 270 MB of f32 weights, nearly all in four wide decoder
/// layers (the tiny fixture's tokenizer and vision tower).
fn make_checkpoint(out: &Path) {
    let tiny = common::fixtures().join("tiny/qwen2_5_vl");
    for f in ["tokenizer.json", "tokenizer_config.json", "preprocessor_config.json", "generation_config.json"] {
        std::fs::copy(tiny.join(f), out.join(f)).unwrap();
    }
    let mut cfg = common::read_json(&tiny.join("config.json"));
    let hidden = 1024;
    for (k, v) in [
        ("hidden_size", hidden.into()),
        ("intermediate_size", 4096.into()),
        ("num_hidden_layers", 4.into()),
        ("num_attention_heads", 8.into()),
        ("num_key_value_heads", 2.into()),
        ("max_window_layers", 4.into()),
    ] {
        cfg[k] = v;
    }
    cfg["rope_scaling"]["mrope_section"] = serde_json::json!([16, 24, 24]);
    cfg["vision_config"]["out_hidden_size"] = hidden.into();
    std::fs::write(out.join("config.json"), serde_json::to_string(&cfg).unwrap()).unwrap();
    let config = ModelConfig::from_file(&out.join("config.json")).unwrap();
    let varmap = candle_nn::VarMap::new();
    VlModel::new(&config, candle_nn::VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    varmap.save(out.join("model.safetensors")).unwrap();
}

/// The child's side: load, then print the peak and the resident memory, in bytes.
#[test]
fn load_child() {
    let Ok(dir) = std::env::var(CHILD) else { return };
    let quant = QuantFormat::parse(&std::env::var("PROXYTHINKER_TEST_QUANT").unwrap()).unwrap();
    let checkpoint = Checkpoint::open(Path::new(&dir)).unwrap();
    let before = status_kib("VmHWM:");
    let model = checkpoint.load_model_quantized(DType::F32, &Device::Cpu, Quantization::new(quant)).unwrap();
    let peak = status_kib("VmHWM:");
    let rss = status_kib("VmRSS:");
    println!("LOAD before={} peak={} rss={}", before * 1024, peak * 1024, rss * 1024);
    drop(model);
}

fn measure(dir: &Path, quant: QuantFormat) -> (u64, u64, u64) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["load_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, dir)
        .env("PROXYTHINKER_TEST_QUANT", quant.name())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    // The harness prints the test's name on the same line, before the output.
    let line = stdout.split("LOAD ").nth(1).and_then(|l| l.lines().next()).unwrap_or_else(|| panic!("no LOAD line in {stdout}"));
    let field = |k: &str| -> u64 {
        line.split_whitespace().find_map(|w| w.strip_prefix(&format!("{k}="))).unwrap().parse().unwrap()
    };
    (field("before"), field("peak"), field("rss"))
}

#[test]
fn loading_peaks_at_the_model_plus_about_one_tensor() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    make_checkpoint(dir.path());
    let checkpoint = Checkpoint::open(dir.path()).unwrap();
    let largest = checkpoint.tensors().unwrap().iter().map(|t| t.numel() * 4).max().unwrap();
    let file = std::fs::metadata(dir.path().join("model.safetensors")).unwrap().len();
    const SLACK: u64 = 40 << 20;
    for quant in [QuantFormat::None, QuantFormat::Q8_0, QuantFormat::Q4K] {
        let loaded = checkpoint.weight_bytes(DType::F32, quant).unwrap();
        let (before, peak, rss) = measure(dir.path(), quant);
        let grew = peak.saturating_sub(before);
        eprintln!(
            "{quant}: file {:.0} MiB, loaded {:.0} MiB, largest tensor {:.0} MiB; peak grew {:.0} MiB, resident after {:.0} MiB",
            file as f64 / 1048576.0,
            loaded as f64 / 1048576.0,
            largest as f64 / 1048576.0,
            grew as f64 / 1048576.0,
            rss as f64 / 1048576.0
        );
        // The model, the tensor being converted and its bytes, and allocator slack; never the
        // whole file on top of the model.
        assert!(
            grew <= loaded + 2 * largest + SLACK,
            "{quant}: loading grew the peak by {grew} bytes, more than the loaded weights ({loaded}) + two tensors ({largest} each) + {SLACK}"
        );
    }
}
