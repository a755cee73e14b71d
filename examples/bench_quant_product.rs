//! One quantized linear layer's decode-time product on the CPU, two ways: candle's own
//! `QMatMul::forward` and the project's `Linear` (which reads the blocks in place: see
//! `models/thin_q8_0.rs` and `models/thin_kquant.rs`), with the resident memory each adds.
//!
//! ```sh
//! cargo run --release --example bench_quant_product -- OUT_FEATURES IN_FEATURES FORMAT [ROWS] [ITERATIONS]
//! cargo run --release --example bench_quant_product -- 8960 1536 q4_k     # Qwen2.5-1.5B's gate/up
//! ```
//!
//! Prints one JSON object: per way, milliseconds per product (median), the weight bytes read per
//! second, and how much the process's resident memory grew over the products (a kept copy of the
//! weight shows here). Each way gets its own freshly quantized weight, so neither sees the
//! other's copy; the project's way is timed first.

use std::time::Instant;

use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};
use proxythinker::models::linear::{Linear, QuantFormat};

fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = s.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Milliseconds per call (median) and the resident memory's growth over the calls.
fn time(iterations: usize, mut f: impl FnMut() -> candle_core::Result<Tensor>) -> candle_core::Result<(f64, i64)> {
    let before = rss_bytes().unwrap_or(0) as i64;
    let mut ms = Vec::new();
    for _ in 0..iterations {
        let t = Instant::now();
        let y = f()?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        drop(y);
    }
    Ok((median(ms), rss_bytes().unwrap_or(0) as i64 - before))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // What the binary does first: candle's thread count read once, not per product.
    proxythinker::cpu_threads::fix_thread_count();
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: bench_quant_product OUT_FEATURES IN_FEATURES FORMAT [ROWS] [ITERATIONS]";
    let out_features: usize = args.get(1).ok_or(usage)?.parse()?;
    let in_features: usize = args.get(2).ok_or(usage)?.parse()?;
    let format = QuantFormat::parse(args.get(3).ok_or(usage)?)?;
    let rows: usize = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(1);
    let iterations: usize = args.get(5).map(|s| s.parse()).transpose()?.unwrap_or(50);
    let ggml = format.ggml().ok_or("FORMAT must be q8_0, q6_k or q4_k")?;
    if format.for_width(in_features) != format {
        return Err(format!("{format} needs IN_FEATURES to be a multiple of {}", format.block()).into());
    }
    let device = Device::Cpu;
    let w = Tensor::randn(0f32, 1.0, (out_features, in_features), &device)?;
    let x = Tensor::randn(0f32, 1.0, (1, rows, in_features), &device)?;
    let bytes = format.weight_bytes(out_features as u64, in_features as u64, DType::F32) as f64;

    let ours = Linear::from_weight(w.clone(), None, format)?;
    let (ours_ms, ours_grew) = time(iterations, || ours.forward(&x))?;
    drop(ours);
    let candle = QMatMul::from_qtensor(QTensor::quantize(&w, ggml)?)?;
    let (candle_ms, candle_grew) = time(iterations, || candle.forward(&x))?;
    let way = |ms: f64, grew: i64| {
        serde_json::json!({ "ms_per_product": ms, "weight_gb_per_s": bytes / ms / 1e6, "resident_memory_growth_bytes": grew })
    };
    println!(
        "{}",
        serde_json::json!({
            "out_features": out_features, "in_features": in_features, "format": format.name(), "rows": rows,
            "weight_bytes": bytes as u64, "threads": candle_core::utils::get_num_threads(),
            "proxythinker": way(ours_ms, ours_grew), "candle": way(candle_ms, candle_grew),
        })
    );
    Ok(())
}
