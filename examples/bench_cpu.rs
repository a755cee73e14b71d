//! CPU benchmark of one model: prefill and greedy-decode throughput.
//!
//! ```sh
//! python3 bench/make_bench_model.py target/bench-model          # once: a small random Qwen2.5-VL
//! python3 bench/make_bench_model.py target/bench-qwen3 qwen3-2b # or one shaped like Qwen3-VL-2B
//! cargo run --release --example bench_cpu -- target/bench-model [NEW_TOKENS] [REPEATS] [QUANT] [CONTEXT]
//! python3 bench/transformers_reference.py target/bench-model     # the same measurement in transformers
//! ```
//!
//! QUANT (`none`, `q8_0`, `q6_k`, `q4_k`; default none) quantizes the text decoder's linear
//! layers while loading, as `--quant` does; `q8_0+head` (any format, `+head`) quantizes the
//! output head to it too, as `--quant-head` does. Prints one JSON object: prompt tokens, prefill
//! tokens/s and decode tokens/s (medians over the repeats), and how many linear layers hold each
//! format, and the process's resident memory after loading, its peak while loading and its
//! resident memory after decoding (which shows any copy of the weights a kernel keeps). The image and question are the committed fixtures', so both sides see the same inputs.
//! `BENCH_IMAGE=tests/fixtures/tiny/images/500x380.png` (both programs read it) times a larger
//! picture: 243 image tokens instead of 64, where the vision tower's share of the prefill shows.
//! CONTEXT (default 0) appends that many text tokens to the prompt, so that decoding is timed at a
//! long context (where the KV cache's cost shows); they count as prompt tokens.
//! Without torch, `examples/make_random_model.rs` writes a model of the same shape.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Device};
use proxythinker::generate::argmax_rows;
use proxythinker::loader::Checkpoint;
use proxythinker::models::{QuantFormat, Quantization};
use proxythinker::prepare::prepare_prompt;
use proxythinker::processor::SourceImage;
use proxythinker::processor::prompt;

/// A field of /proc/self/status in bytes (Linux; None elsewhere): VmRSS is what the process holds
/// now, VmHWM the most it has held.
fn status_bytes(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = s.lines().find_map(|l| l.strip_prefix(field))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // What the binary does first: candle's thread count read once, not per product.
    proxythinker::cpu_threads::fix_thread_count();
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(args.get(1).ok_or("usage: bench_cpu MODEL_DIR [NEW_TOKENS] [REPEATS]")?);
    let new_tokens: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(64);
    let repeats: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(3);
    let (quant, head) = match args.get(4) {
        Some(s) => match s.strip_suffix("+head") {
            Some(format) => (QuantFormat::parse(format)?, QuantFormat::parse(format)?),
            None => (QuantFormat::parse(s)?, QuantFormat::None),
        },
        None => (QuantFormat::None, QuantFormat::None),
    };
    let context: usize = args.get(5).map(|s| s.parse()).transpose()?.unwrap_or(0);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // The same picture bench/transformers_reference.py gives transformers (BENCH_IMAGE, a path
    // relative to the repository, chooses another for both).
    let image_path = std::env::var("BENCH_IMAGE").unwrap_or_else(|_| "tests/fixtures/tiny/images/224x224.png".into());
    let image = SourceImage::open(&root.join(&image_path))?;
    let question = "Describe the picture in detail, then count the circles.";

    let device = Device::Cpu;
    let checkpoint = Checkpoint::open(&dir)?;
    let tokenizer = prompt::load_tokenizer(&checkpoint.tokenizer_file)?;
    let mut prepared = prepare_prompt(&checkpoint, &tokenizer, question, Some(&image), false, &device)?;
    // Ordinary text ids (not the image token or other special ids of the tiny tokenizers).
    prepared.input.input_ids.extend((0..context as u32).map(|i| 20 + (i * 37) % 250));
    let loading = Instant::now();
    // Any family: the engine's own loading path.
    let model = checkpoint.load_decoder_quantized(DType::F32, &device, Quantization { format: quant, head, vocab_dtype: None })?;
    let load_seconds = loading.elapsed().as_secs_f64();
    let (rss_loaded, peak_loading) = (status_bytes("VmRSS:"), status_bytes("VmHWM:"));
    let formats: serde_json::Map<String, serde_json::Value> =
        model.formats().into_iter().map(|(f, n)| (f.name().to_string(), n.into())).collect();
    let n_prompt = prepared.input.input_ids.len();

    let mut prefill = Vec::new();
    let mut decode = Vec::new();
    for _ in 0..repeats {
        let mut cache = model.new_cache();
        let t = Instant::now();
        let mut logits = model.prefill(std::slice::from_ref(&prepared.input), &mut cache)?;
        prefill.push(n_prompt as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        for _ in 0..new_tokens {
            let next = argmax_rows(&logits)?[0];
            logits = model.step(&[next], &mut cache)?;
        }
        decode.push(new_tokens as f64 / t.elapsed().as_secs_f64());
    }
    println!(
        "{}",
        serde_json::json!({
            "family": checkpoint.config.family.model_type(),
            "engine": "proxythinker (candle, f32, cpu)",
            "quant": quant.name(),
            "quant_head": head.name(),
            "linear_layers_by_format": formats,
            "load_seconds": load_seconds,
            "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "image": image_path,
            "prompt_tokens": n_prompt,
            "new_tokens": new_tokens,
            "context": context,
            "rss_after_load_bytes": rss_loaded,
            "peak_rss_while_loading_bytes": peak_loading,
            "rss_after_decoding_bytes": status_bytes("VmRSS:"),
            "prefill_tokens_per_second": median(prefill),
            "decode_tokens_per_second": median(decode),
        })
    );
    Ok(())
}
