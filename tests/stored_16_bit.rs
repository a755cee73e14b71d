//! A checkpoint stored in bf16 or f16 (as the Hub's Qwen checkpoints are) that runs in f32 on
//! the CPU keeps its vocabulary matrices (input embedding, output head) as stored and widens their
//! values as it uses them. What a user relies on: the logits are the f32 model's (the same
//! checkpoint with every tensor widened to f32 on disk), only the order of f32 sums differs; the
//! greedy continuation is the same; and the memory the preflight counts is the smaller one.

mod common;

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use common::quant_measures::{argmax, row};
use common::*;
use proxythinker::loader::Checkpoint;
use proxythinker::models::{Quantization, QuantFormat};
use proxythinker::prepare::prepare_prompt;
use proxythinker::processor::SourceImage;

const STEPS: usize = 12;

/// A copy of the tiny fixture `name` whose tensors are rounded to `dtype` and stored as `stored`.
fn copy_as(name: &str, dtype: DType, stored: DType) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = tiny(name);
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().is_some_and(|n| n != "model.safetensors") {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    let tensors = candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    let tensors: std::collections::HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(k, t)| {
            let t = if t.dtype().is_float() { t.to_dtype(dtype).unwrap().to_dtype(stored).unwrap() } else { t };
            (k, t)
        })
        .collect();
    candle_core::safetensors::save(&tensors, dir.path().join("model.safetensors")).unwrap();
    dir
}

/// Logits along the greedy continuation of `reference`, fed to both models.
fn compare(stored: &Path, widened: &Path) -> (f32, usize) {
    let (cs, cw) = (Checkpoint::open(stored).unwrap(), Checkpoint::open(widened).unwrap());
    let tokenizer = proxythinker::processor::prompt::load_tokenizer(&cs.tokenizer_file).unwrap();
    let (ms, mw) = (
        cs.load_decoder_quantized(DType::F32, &Device::Cpu, Quantization::default()).unwrap(),
        cw.load_decoder_quantized(DType::F32, &Device::Cpu, Quantization::default()).unwrap(),
    );
    let image = SourceImage::open(&tiny("images/56x56.png")).unwrap();
    let input = prepare_prompt(&cs, &tokenizer, "Describe the picture.", Some(&image), false, &Device::Cpu).unwrap().input;
    let (mut ks, mut kw) = (ms.new_cache(), mw.new_cache());
    let mut ls = row(ms.prefill(std::slice::from_ref(&input), &mut ks).unwrap());
    let mut lw = row(mw.prefill(std::slice::from_ref(&input), &mut kw).unwrap());
    let (mut worst, mut same) = (0f32, 0);
    for _ in 0..STEPS {
        let scale = lw.iter().fold(0f32, |m, v| m.max(v.abs()));
        worst = worst.max(ls.iter().zip(&lw).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale);
        let t = argmax(&lw) as u32;
        same += usize::from(argmax(&ls) as u32 == t);
        ls = row(ms.step(&[t], &mut ks).unwrap());
        lw = row(mw.step(&[t], &mut kw).unwrap());
    }
    (worst, same)
}

#[test]
fn a_16_bit_checkpoint_in_f32_gives_the_widened_checkpoints_logits() {
    // An untied head (Qwen2.5-VL) and a tied one (Qwen3-VL, whose head is the embedding).
    for name in ["qwen2_5_vl", "qwen3_vl"] {
        for dtype in [DType::BF16, DType::F16] {
            let stored = copy_as(name, dtype, dtype);
            let widened = copy_as(name, dtype, DType::F32);
            let (worst, same) = compare(stored.path(), widened.path());
            eprintln!("{name} {dtype:?}: max |Δ logit| / max |logit| {worst:.1e}, argmax equal {same}/{STEPS}");
            assert!(worst < 1e-5, "{name} {dtype:?}: the logits differ by {worst} of the largest");
            assert_eq!(same, STEPS, "{name} {dtype:?}: the greedy choice changed");
        }
    }
}

#[test]
fn the_vocabulary_matrices_are_counted_as_stored_on_the_cpu_in_f32() {
    for name in ["qwen2_5_vl", "qwen3_vl"] {
        let stored = copy_as(name, DType::BF16, DType::BF16);
        let c = Checkpoint::open(stored.path()).unwrap();
        let vocab: u64 = c.tensors().unwrap().iter().filter(|t| t.name.ends_with("embed_tokens.weight") || t.name == "lm_head.weight").map(|t| t.numel()).sum();
        assert!(vocab > 0, "{name}: no vocabulary matrix found");
        let plain = Quantization::default();
        let placed = c.placed(plain, DType::F32, true).unwrap();
        assert_eq!(placed.vocab_dtype, Some(DType::BF16), "{name}");
        let f32_bytes = c.weight_bytes_with_head(DType::F32, plain).unwrap();
        assert_eq!(c.weight_bytes_with_head(DType::F32, placed).unwrap(), f32_bytes - vocab * 2, "{name}: two bytes saved per vocabulary value");
        // Only where it pays and loses nothing: not on a GPU, not in bf16, not from f32 files.
        assert_eq!(c.placed(plain, DType::F32, false).unwrap().vocab_dtype, None, "{name}: a GPU");
        assert_eq!(c.placed(plain, DType::BF16, true).unwrap().vocab_dtype, None, "{name}: a bf16 model");
        let f32_files = Checkpoint::open(&tiny(name)).unwrap();
        assert_eq!(f32_files.placed(plain, DType::F32, true).unwrap().vocab_dtype, None, "{name}: f32 files");
        // A quantized head is made from the stored embedding; its bytes are counted as before.
        let q = Quantization { head: QuantFormat::Q8_0, ..plain };
        let placed_q = c.placed(q, DType::F32, true).unwrap();
        assert!(c.weight_bytes_with_head(DType::F32, placed_q).unwrap() < c.weight_bytes_with_head(DType::F32, q).unwrap());
    }
}
