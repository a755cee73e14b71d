//! Weights apart from state: batched rows, truncation, cache growth and row selection give
//! exactly what separate fresh decodes give; f16 and bf16 stay close to f32.

mod common;

use candle_core::{DType, Tensor};
use common::*;
use proxythinker::generate::{argmax_rows, greedy};
use proxythinker::models::{KvCache, PromptInput, VlModel};

fn rows_f32(t: &Tensor) -> Vec<Vec<f32>> {
    t.to_vec2().unwrap()
}

/// Greedy-decodes `n` tokens after a prefill, returning the tokens and the logits of every step.
fn decode(model: &VlModel, cache: &mut KvCache, mut logits: Tensor, n: usize) -> (Vec<Vec<u32>>, Vec<Tensor>) {
    let mut toks = Vec::new();
    let mut all = vec![logits.clone()];
    for _ in 0..n {
        let next = argmax_rows(&logits).unwrap();
        toks.push(next.clone());
        logits = model.step(&next, cache).unwrap();
        all.push(logits.clone());
    }
    (toks, all)
}

fn two_prompts_of_equal_length(fx: &Fixture) -> (PromptInput, PromptInput) {
    // Same template, different images of the same grid and different words of one token count.
    let a = fx.prompt("What is in the picture?", Some("images/224x224.png"), false).input;
    let b = fx.prompt("What is on the picture?", Some("images/224x224.png"), false).input;
    assert_eq!(a.input_ids.len(), b.input_ids.len(), "test prompts must tokenize to equal lengths");
    assert_ne!(a.input_ids, b.input_ids);
    (a, b)
}

#[test]
fn a_batch_of_two_rows_equals_each_row_alone() {
    for model_dir in ["qwen2_5_vl", "qwen2_vl"] {
        let fx = load(model_dir, DType::F32);
        let (a, b) = two_prompts_of_equal_length(&fx);
        let mut batch_cache = fx.model.new_cache();
        let batch_logits = fx.model.prefill(&[a.clone(), b.clone()], &mut batch_cache).unwrap();
        assert_eq!(batch_cache.rows(), 2);
        let (batch_toks, batch_steps) = decode(&fx.model, &mut batch_cache, batch_logits, 6);
        for (row, prompt) in [(0usize, &a), (1, &b)] {
            let mut cache = fx.model.new_cache();
            let logits = fx.model.prefill(std::slice::from_ref(prompt), &mut cache).unwrap();
            let (toks, steps) = decode(&fx.model, &mut cache, logits, 6);
            let batch_row: Vec<u32> = batch_toks.iter().map(|t| t[row]).collect();
            assert_eq!(batch_row, toks.iter().map(|t| t[0]).collect::<Vec<_>>(), "{model_dir} row {row}");
            for (s, (bl, l)) in batch_steps.iter().zip(&steps).enumerate() {
                let d = max_abs_diff(&rows_f32(bl)[row], &rows_f32(l)[0]);
                assert!(d < 1e-5, "{model_dir} row {row} step {s}: batched logits differ by {d}");
            }
        }
    }
}

#[test]
fn truncate_then_continue_equals_a_fresh_decode() {
    let fx = load("qwen2_5_vl", DType::F32);
    let p = fx.prompt("How many circles are there? Answer with a number.", Some("images/252x196.png"), false).input;
    let prompt_len = p.input_ids.len();
    let first = greedy(&fx.model, &p, 10, &[]).unwrap().token_ids;

    // Decode 10 tokens, cut back to 4, force a different 5th token, continue 5 more.
    let mut cache = fx.model.new_cache();
    let logits = fx.model.prefill(std::slice::from_ref(&p), &mut cache).unwrap();
    let (toks, _) = decode(&fx.model, &mut cache, logits, 10);
    assert_eq!(toks.iter().map(|t| t[0]).collect::<Vec<_>>(), first);
    cache.truncate(prompt_len + 4).unwrap();
    assert_eq!(cache.len(), prompt_len + 4);
    let forced = (first[4] + 1) % 300;
    let logits = fx.model.step(&[forced], &mut cache).unwrap();
    let (cont, steps) = decode(&fx.model, &mut cache, logits, 5);

    // Fresh: the prompt plus the kept tokens and the forced one, as one prompt.
    let mut fresh_prompt = p.clone();
    fresh_prompt.input_ids.extend_from_slice(&first[..4]);
    fresh_prompt.input_ids.push(forced);
    let mut fresh_cache = fx.model.new_cache();
    let fresh_logits = fx.model.prefill(std::slice::from_ref(&fresh_prompt), &mut fresh_cache).unwrap();
    let (fresh, fresh_steps) = decode(&fx.model, &mut fresh_cache, fresh_logits, 5);
    assert_eq!(cont, fresh);
    for (a, b) in steps.iter().zip(&fresh_steps) {
        let d = max_abs_diff(&rows_f32(a)[0], &rows_f32(b)[0]);
        assert!(d < 1e-4, "continued logits differ from a fresh decode by {d}");
    }
}

#[test]
fn extend_with_several_tokens_equals_stepping_them() {
    let fx = load("qwen2_vl", DType::F32);
    let p = fx.prompt("What is in the picture?", Some("images/56x56.png"), false).input;
    let mut a = fx.model.new_cache();
    fx.model.prefill(std::slice::from_ref(&p), &mut a).unwrap();
    let mut b = a.select_rows(&[0]).unwrap();
    let toks = [5u32, 77, 123];
    let la = fx.model.extend(&[toks.to_vec()], &mut a).unwrap();
    let mut lb = None;
    for t in toks {
        lb = Some(fx.model.step(&[t], &mut b).unwrap());
    }
    let d = max_abs_diff(&rows_f32(&la)[0], &rows_f32(&lb.unwrap())[0]);
    assert!(d < 1e-4, "extend vs step differ by {d}");
    assert_eq!(a.len(), b.len());
}

#[test]
fn rows_can_be_selected_and_stacked() {
    let fx = load("qwen2_5_vl", DType::F32);
    let (a, b) = two_prompts_of_equal_length(&fx);
    let mut ca = fx.model.new_cache();
    let la = fx.model.prefill(std::slice::from_ref(&a), &mut ca).unwrap();
    let mut cb = fx.model.new_cache();
    let lb = fx.model.prefill(std::slice::from_ref(&b), &mut cb).unwrap();
    // [b, a, a]: one prefill per prompt, three rows decoded together.
    let stacked = KvCache::cat_rows(&[&cb, &ca]).unwrap();
    let mut three = stacked.select_rows(&[0, 1, 1]).unwrap();
    let na = argmax_rows(&la).unwrap()[0];
    let nb = argmax_rows(&lb).unwrap()[0];
    let l3 = rows_f32(&fx.model.step(&[nb, na, na], &mut three).unwrap());
    let la2 = rows_f32(&fx.model.step(&[na], &mut ca).unwrap());
    let lb2 = rows_f32(&fx.model.step(&[nb], &mut cb).unwrap());
    assert!(max_abs_diff(&l3[0], &lb2[0]) < 1e-5);
    assert!(max_abs_diff(&l3[1], &la2[0]) < 1e-5);
    assert_eq!(l3[1], l3[2]);
}

#[test]
fn truncation_refuses_to_cut_into_the_image() {
    let fx = load("qwen2_5_vl", DType::F32);
    let p = fx.prompt("What is in the picture?", Some("images/56x56.png"), false).input;
    let mut cache = fx.model.new_cache();
    fx.model.prefill(std::slice::from_ref(&p), &mut cache).unwrap();
    let err = cache.truncate(3).unwrap_err().to_string();
    assert!(err.contains("image"), "{err}");
    assert!(cache.truncate(cache.len() + 1).is_err());
}

#[test]
fn half_precision_stays_close_to_f32() {
    let f32m = load("qwen2_5_vl", DType::F32);
    let p = f32m.prompt("What is in the picture?", Some("images/224x224.png"), false).input;
    let mut c = f32m.model.new_cache();
    let reference: Vec<f32> = f32m.model.prefill(std::slice::from_ref(&p), &mut c).unwrap().squeeze(0).unwrap().to_vec1().unwrap();
    let scale = reference.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    for (dtype, bound) in [(DType::F16, 0.02), (DType::BF16, 0.08)] {
        let fx = load("qwen2_5_vl", dtype);
        let mut c = fx.model.new_cache();
        let logits: Vec<f32> = fx.model.prefill(std::slice::from_ref(&p), &mut c).unwrap().squeeze(0).unwrap().to_vec1().unwrap();
        let rel = max_abs_diff(&logits, &reference) / scale;
        assert!(rel < bound, "{dtype:?}: max |Δlogit| / max |logit| = {rel}");
        assert_eq!(argmax_rows(&Tensor::new(&logits[..], &candle_core::Device::Cpu).unwrap().unsqueeze(0).unwrap()).unwrap(),
                   argmax_rows(&Tensor::new(&reference[..], &candle_core::Device::Cpu).unwrap().unsqueeze(0).unwrap()).unwrap());
    }
}

#[test]
fn a_cache_that_grows_past_its_buffers_and_is_truncated_decodes_as_a_fresh_prefill() {
    let fx = load("qwen2_5_vl", DType::F32);
    let p = fx.prompt("What is in the picture?", Some("images/56x56.png"), false).input;
    let mut cache = fx.model.new_cache();
    let logits = fx.model.prefill(std::slice::from_ref(&p), &mut cache).unwrap();
    let prompt_len = cache.len();
    // Past two growths of the buffers (they grow by 256 positions), with ordinary text tokens
    // (a random model's greedy choice may be an image token, which a prefill refuses).
    let n = 540 - prompt_len;
    let toks: Vec<u32> = (0..n as u32).map(|i| 20 + (i * 37) % 250).collect();
    let mut steps = vec![logits];
    for &t in &toks {
        steps.push(fx.model.step(&[t], &mut cache).unwrap());
    }
    assert_eq!(cache.len(), prompt_len + n);
    assert_eq!(cache.capacity(), 768, "room for the next chunk, not a copy per step");
    // The same sequence prefilled at once.
    let mut whole = p.clone();
    whole.input_ids.extend_from_slice(&toks);
    let mut fresh = fx.model.new_cache();
    let fresh_logits = fx.model.prefill(std::slice::from_ref(&whole), &mut fresh).unwrap();
    let d = max_abs_diff(&rows_f32(&steps[n])[0], &rows_f32(&fresh_logits)[0]);
    assert!(d < 1e-4, "after {n} steps the logits differ from a fresh prefill by {d}");
    // Truncating below a growth boundary keeps the buffers and continues exactly.
    let back = 200;
    cache.truncate(prompt_len + back).unwrap();
    assert_eq!(cache.capacity(), 768);
    let again = rows_f32(&fx.model.step(&[toks[back]], &mut cache).unwrap());
    let d = max_abs_diff(&again[0], &rows_f32(&steps[back + 1])[0]);
    assert!(d < 1e-5, "re-decoding after truncation differs by {d}");
}
