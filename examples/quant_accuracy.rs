//! Accuracy of `--quant` against f32 on checkpoints of real size: the README's table for the bench
//! model (`examples/make_random_model`'s 543 M Qwen2.5-VL as base, two `small` ones as RFT and
//! small), measured as `tests/quant.rs` measures the test checkpoints.
//!
//! ```sh
//! cargo run --release --example make_random_model -- target/bench-model-f32 base 0 f32
//! cargo run --release --example make_random_model -- target/bench-rft-f32 small 1 f32
//! cargo run --release --example make_random_model -- target/bench-small-f32 small 2 f32
//! cargo run --release --example quant_accuracy -- target/bench-model-f32 target/bench-rft-f32 target/bench-small-f32 [STEPS] [ALPHA]
//! ```
//!
//! For q8_0, q6_k, q4_k and q8_0 with `--quant-head q8_0`, all three models quantized alike, over
//! two prompts (the bench's 224×224 image with its question, and a text-only question) and STEPS
//! (default 64) tokens of the continuation that f32 chooses greedily: the base model alone and the
//! guided mix base[..V] + α·(rft[..V] − small[..V]) (α default 0.5) against f32's, as max |Δ logit|
//! / max |logit|, mean ‖Δ‖/‖logits‖, mean KL(f32 ‖ quantized) of the next-token distribution and
//! the share of positions whose argmax is f32's; then whole greedy sessions of STEPS tokens: the
//! share of the base model's own tokens and of the guided stream's equal to the f32 session's,
//! position by position. Prints one JSON object per format, then the rows as a markdown table.

#[allow(dead_code)]
#[path = "../tests/common/quant_measures.rs"]
mod quant_measures;

use std::path::PathBuf;
use std::sync::Arc;

use candle_core::{DType, Device};
use proxythinker::engine::Trio;
use proxythinker::models::{Decoder, QuantFormat, Quantization};
use proxythinker::prepare::prepare_prompt;
use proxythinker::processor::SourceImage;
use proxythinker::trio::{PerModel, TrioFiles};
use quant_measures::{along_greedy, guided_mix, session_tokens, Accuracy};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // What the binary does first: candle's thread count read once, not per product.
    proxythinker::cpu_threads::fix_thread_count();
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: quant_accuracy BASE_DIR RFT_DIR SMALL_DIR [STEPS] [ALPHA]";
    let dir = |i: usize| args.get(i).map(PathBuf::from).ok_or(usage);
    let (base, rft, small) = (dir(1)?, dir(2)?, dir(3)?);
    let steps: usize = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(64);
    let alpha: f32 = args.get(5).map(|s| s.parse()).transpose()?.unwrap_or(0.5);

    let files = TrioFiles::open(PerModel::new(base.as_path(), rft.as_path(), small.as_path()))?;
    let (checkpoint, tokenizer) = files.base();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let image = SourceImage::open(&root.join("tests/fixtures/tiny/images/224x224.png"))?;
    let prompts = [("Describe the picture in detail, then count the circles.", Some(&image)), ("What is two plus two?", None)]
        .into_iter()
        .map(|(q, i)| prepare_prompt(checkpoint, tokenizer, q, i, false, &Device::Cpu).map(|p| p.input))
        .collect::<Result<Vec<_>, _>>()?;
    let placement = proxythinker::placement::uniform(DType::F32, &Device::Cpu);
    let load = |quant: Quantization| -> Result<Trio, proxythinker::error::Error> { files.load_quantized(&placement, PerModel::from_fn(|_| quant)) };
    let models = |t: &Trio| -> Vec<Arc<dyn Decoder>> { t.clone().into_array().to_vec() };
    let reference = load(Quantization::default())?;
    let v = files.shared_vocab();
    let alone = |l: &[Vec<f32>]| l[0].clone();
    let mix = guided_mix(alpha, v);

    let mut rows = Vec::new();
    for (name, quant) in [
        ("q8_0", Quantization::new(QuantFormat::Q8_0)),
        ("q6_k", Quantization::new(QuantFormat::Q6K)),
        ("q4_k", Quantization::new(QuantFormat::Q4K)),
        ("q8_0+head", Quantization { format: QuantFormat::Q8_0, head: QuantFormat::Q8_0, vocab_dtype: None }),
    ] {
        let quantized = load(quant)?;
        let formats: serde_json::Map<String, serde_json::Value> =
            quantized.base.formats().into_iter().map(|(f, n)| (f.name().to_string(), n.into())).collect();
        let single = along_greedy(&models(&reference)[..1], &models(&quantized)[..1], &prompts, steps, &alone);
        let guided = along_greedy(&models(&reference), &models(&quantized), &prompts, steps, &mix);
        let (own_equal, guided_equal) = session_tokens(&reference, &quantized, tokenizer, &checkpoint.eos_token_ids, &prompts, steps, alpha);
        let figures = |a: &Accuracy| {
            serde_json::json!({
                "max_abs_delta_over_max_abs_logit": a.max_rel,
                "mean_rel_l2": a.rel_l2,
                "mean_kl": a.mean_kl,
                "argmax_equal": a.argmax_equal,
                "positions": a.positions,
            })
        };
        println!(
            "{}",
            serde_json::json!({
                "quant": name,
                "base_linear_layers_by_format": formats,
                "steps": steps,
                "alpha": alpha,
                "base": figures(&single),
                "guided_mix": figures(&guided),
                "base_greedy_tokens_equal": own_equal,
                "guided_tokens_equal": guided_equal,
            })
        );
        rows.push((name, single, guided, own_equal, guided_equal));
    }
    println!("| format | base: max \\|Δ\\| / max \\|logit\\| | base: ‖Δ‖/‖logits‖ | base: mean KL | base: argmax equal | base: greedy tokens equal | guided mix: max \\|Δ\\| / max \\|logit\\| | guided mix: ‖Δ‖/‖logits‖ | guided mix: mean KL | guided mix: argmax equal | guided tokens equal |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (name, s, g, own, guided) in rows {
        println!(
            "| {name} | {:.3} | {:.3} | {:.1e} | {:.0}% | {:.0}% | {:.3} | {:.3} | {:.1e} | {:.0}% | {:.0}% |",
            s.max_rel,
            s.rel_l2,
            s.mean_kl,
            100.0 * s.argmax_equal,
            100.0 * own,
            g.max_rel,
            g.rel_l2,
            g.mean_kl,
            100.0 * g.argmax_equal,
            100.0 * guided
        );
    }
    Ok(())
}
