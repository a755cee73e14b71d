//! Benchmark of the per-token measuring that an α change repeats for every kept guided token:
//! the fused [`guided_measures`] against the separate log-softmax, top-k, entropy, KL and JS
//! passes it replaced, on the real vocabulary size, interleaved (A, B, A, B, ...) so that a
//! busy machine slows both alike. Prints one JSON object with the medians and their ratio.
//!
//! ```sh
//! cargo run --release --example bench_measures -- [V] [REPEATS]
//! ```

use std::time::Instant;

use proxythinker::guidance::{argmax, entropy, guided_measures, js, kl, log_softmax, top_k};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let v: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(151_936);
    let repeats: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(200);
    let mut state = 7u64;
    let mut next = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 33) as f32 / (1u64 << 31) as f32) * 16.0 - 8.0
    };
    let base: Vec<f32> = (0..v).map(|_| next()).collect();
    let mixed: Vec<f32> = base.iter().map(|&b| b + 0.5 * next()).collect();
    let (mut fused, mut separate) = (Vec::new(), Vec::new());
    let mut sink = 0.0f64;
    for _ in 0..repeats {
        let t = Instant::now();
        let m = guided_measures(&base, &mixed, 3, 10);
        fused.push(t.elapsed().as_secs_f64());
        sink += m.kl_guided_base + m.js_guided_base + m.entropy;

        let t = Instant::now();
        let lg = log_softmax(&mixed);
        let top = top_k(&lg, 10);
        let h = entropy(&lg);
        let lb = log_softmax(&base);
        let (k, j) = (kl(&lg, &lb), js(&lg, &lb));
        let flipped = argmax(&mixed) != argmax(&base);
        separate.push(t.elapsed().as_secs_f64());
        sink += k + j + h + top[0].1 + f64::from(u8::from(flipped));
    }
    let (f, s) = (median(fused), median(separate));
    println!(
        "{}",
        serde_json::json!({
            "vocabulary": v,
            "repeats": repeats,
            "fused_ms_per_token": f * 1e3,
            "separate_ms_per_token": s * 1e3,
            "speedup": s / f,
            "checksum": sink,
        })
    );
}
