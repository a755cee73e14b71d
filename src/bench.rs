//! `proxythinker bench`: decoding speed of a trio on this machine, as figures for the README.
//!
//! It times, on the same models and prompt, in one process:
//! - the prefill of the three models (vision tower included);
//! - guided decoding alone: one row per model, the mix and the argmax on the models' device, one
//!   token id back to the host per step (what the paper's native loop does);
//! - the full session: three streams in lockstep with every record measured (what the UI runs),
//!   then a change of α by 0.01 as the engine makes it (the time to the first re-decoded token,
//!   then until every kept record is re-measured) and, for comparison, all at once;
//! - with `--unbatched`, the session's five rows without the records, batched as the session
//!   batches them (three forwards per step) and as five separate forwards per step: the batching
//!   ratio.
//!
//! Decoding ignores eos so that every run takes exactly `--steps` steps. The weight bytes one
//! guided step must read (text decoders and output heads; the vision towers are idle while
//! decoding) are reported too, so the caller can set tokens/s against a memory-bandwidth limit.

use std::time::Instant;

use candle_core::{DType, Tensor, D};
use serde::Serialize;

use crate::engine::StreamKind;
use crate::error::Result;
use crate::guidance;
use crate::models::{Decoder, KvCache, PromptInput};
use crate::plan::SessionPlan;
use crate::trio::{guided_row, Row, ROW_PLAN};

/// What one bench run measured.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    /// The host's threads, for CPU runs.
    pub host: String,
    /// Where the models ran ("cuda:0 bf16", or each model's).
    pub placement: String,
    pub prompt_tokens: usize,
    pub image_tokens: usize,
    pub steps: usize,
    pub load_seconds: f64,
    /// The three models' prefills, one after the other.
    pub prefill_seconds: f64,
    pub guided_only_tokens_per_second: f64,
    /// Lockstep steps per second of the full session (each step: one token of each stream).
    pub session_steps_per_second: f64,
    /// With `--unbatched`: the session's rows without the records, as three batched forwards per
    /// step, and as five single-row forwards per step.
    pub lockstep_batched_steps_per_second: Option<f64>,
    pub five_forwards_steps_per_second: Option<f64>,
    /// Bytes of weights one guided step reads: the three text decoders and output heads (the
    /// linear layers at their quantized size).
    pub weight_bytes_per_step: u64,
    /// The first step where the session's guided token differs from the guided-only loop's, if
    /// any. In f32 on the CPU the two agree; in bf16 on a GPU the session's two-row forwards and
    /// the loop's one-row forwards may round differently, and random weights leave near-ties.
    pub first_divergence: Option<usize>,
    /// Seconds a change of α (by 0.01) took after the session, done all at once: deciding which
    /// tokens stay and re-measuring every kept record before any re-decoding (how the UI waited
    /// before records were re-measured in the background).
    pub live_alpha_seconds: f64,
    pub live_alpha_kept_tokens: usize,
    /// The same change done as the engine does it: seconds until the first re-decoded guided
    /// token is out (deciding which tokens stay, then one step; deciding alone where every token
    /// is kept), and then seconds until every kept record is re-measured.
    pub live_alpha_first_token_seconds: f64,
    pub live_alpha_all_fresh_seconds: f64,
}

/// Synchronises the device (a host copy of a scalar), so that host clocks time finished work.
fn sync(t: &Tensor) -> Result<()> {
    t.flatten_all()?.narrow(0, 0, 1)?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
    Ok(())
}

/// Guided decoding alone, with the mix and the argmax on the device.
/// One step of the three models on one row each, launched one after the other as the session
/// does (see `engine::session::forward_trio`).
fn step_all(models: [&dyn Decoder; 3], token: &[u32], caches: &mut [KvCache]) -> Result<Vec<Tensor>> {
    models.iter().zip(caches.iter_mut()).map(|(m, c)| m.step(token, c)).collect()
}

fn guided_only(models: [&dyn Decoder; 3], prompt: &PromptInput, alpha: f64, steps: usize) -> Result<(f64, f64, Vec<u32>)> {
    let v = models.iter().map(|m| m.vocab_size()).min().unwrap_or(0);
    let t0 = Instant::now();
    let mut caches: Vec<_> = models.iter().map(|m| m.new_cache()).collect();
    let mut logits = Vec::new();
    for (m, c) in models.iter().zip(caches.iter_mut()) {
        logits.push(m.prefill(std::slice::from_ref(prompt), c)?);
    }
    sync(&logits[2])?;
    let prefill = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let mut tokens = Vec::with_capacity(steps);
    for _ in 0..steps {
        // The mix runs on the base model's device; the others' logits come to it.
        let cut = |l: &Tensor| l.narrow(D::Minus1, 0, v)?.to_device(models[0].device());
        let mixed = (cut(&logits[0])? + ((cut(&logits[1])? - cut(&logits[2])?)? * alpha)?)?;
        let token: Vec<u32> = mixed.argmax(D::Minus1)?.to_vec1()?;
        tokens.push(token[0]);
        logits = step_all(models, &token, &mut caches)?;
    }
    sync(&logits[2])?;
    Ok((prefill, steps as f64 / t1.elapsed().as_secs_f64(), tokens))
}

/// The session's five rows decoded without the records: as three batched forwards per step
/// (base [base-only, guided], RFT [rft-only, guided], small [guided]) when `batched`, else as five
/// separate single-row forwards. The two differ only in batching.
fn five_rows(models: [&dyn Decoder; 3], prompt: &PromptInput, alpha: f32, steps: usize, batched: bool) -> Result<f64> {
    let v = models.iter().map(|m| m.vocab_size()).min().unwrap_or(0);
    // The rows of the session's row plan, in order (base-only, guided@base, rft-only,
    // guided@rft, guided@small), each with its model, and where each model's guided row lands.
    let layout: Vec<(&dyn Decoder, Row)> =
        models.iter().zip(ROW_PLAN.into_array()).flat_map(|(m, rows)| rows.iter().map(move |r| (*m, *r))).collect();
    let offsets = [0, ROW_PLAN.base.len(), ROW_PLAN.base.len() + ROW_PLAN.rft.len()];
    let [base_g, rft_g, small_g] = [0, 1, 2].map(|i| offsets[i] + guided_row(ROW_PLAN.into_array()[i]));
    // (model, rows) of each forward: one per model, or one per row.
    let plan: Vec<(&dyn Decoder, usize)> = if batched {
        models.iter().zip(ROW_PLAN.into_array()).map(|(m, rows)| (*m, rows.len())).collect()
    } else {
        layout.iter().map(|(m, _)| (*m, 1)).collect()
    };
    let mut caches = Vec::new();
    let mut logits = Vec::new();
    for &(m, rows) in &plan {
        let mut c = m.new_cache();
        let l = m.prefill(std::slice::from_ref(prompt), &mut c)?;
        let pick = Tensor::new(&vec![0u32; rows][..], l.device())?;
        caches.push(c.select_rows(&vec![0; rows])?);
        logits.push(l.index_select(&pick, 0)?);
    }
    let t = Instant::now();
    for _ in 0..steps {
        let mut rows: Vec<Vec<f32>> = Vec::with_capacity(layout.len());
        for l in &logits {
            rows.extend(l.to_dtype(DType::F32)?.to_vec2::<f32>()?);
        }
        let g = guidance::argmax(&guidance::combine(&rows[base_g], &guidance::delta(&rows[rft_g], &rows[small_g], v), alpha));
        let mut feed = layout.iter().zip(&rows).map(|((_, kind), r)| if *kind == Row::Guided { g } else { guidance::argmax(r) });
        for (i, &(m, n)) in plan.iter().enumerate() {
            let tokens: Vec<u32> = feed.by_ref().take(n).collect();
            logits[i] = m.step(&tokens, &mut caches[i])?;
        }
    }
    sync(&logits[logits.len() - 1])?;
    Ok(steps as f64 / t.elapsed().as_secs_f64())
}

/// Runs the benchmark over the plan's trio (`plan.decoding.max_new_tokens` steps per run, eos
/// ignored); see the module docs.
pub fn run(plan: &SessionPlan, prompt: &PromptInput, unbatched: bool) -> Result<BenchReport> {
    let (alpha, steps) = (plan.decoding.alpha, plan.decoding.max_new_tokens);
    let t = Instant::now();
    let trio = plan.trio()?;
    let load_seconds = t.elapsed().as_secs_f64();
    let weight_bytes_per_step = plan
        .files
        .checkpoints()
        .zip(plan.devices.as_ref())
        .zip(plan.placement().quantizations())
        .into_array()
        .iter()
        .map(|((c, (dtype, device)), quant)| c.decode_weight_bytes_with_head(*dtype, c.placed(*quant, *dtype, device.is_cpu())?))
        .sum::<Result<u64>>()?;
    let models = trio.as_ref().map(|m| m.as_ref()).into_array();

    // A short warm-up, so that kernel loading and allocator growth stay out of the figures.
    guided_only(models, prompt, alpha as f64, 2)?;
    let (prefill_seconds, guided_only_tps, guided_tokens) = guided_only(models, prompt, alpha as f64, steps)?;

    let prepared = crate::prepare::PreparedPrompt { text: String::new(), input: prompt.clone(), per_model: None, per_model_text: None };
    let mut session = plan.session(&prepared, alpha)?;
    let t = Instant::now();
    session.run_to_end()?;
    let session_sps = steps as f64 / t.elapsed().as_secs_f64();
    let session_tokens = session.tokens(StreamKind::Guided);
    let first_divergence = session_tokens.iter().zip(&guided_tokens).position(|(a, b)| a != b);
    // Live α as the engine does it: decide, re-decode the first changed token, then re-measure
    // the kept records; then, on the same stream, the all-at-once way for comparison.
    let t = Instant::now();
    let changed = session.set_alpha_lazy(alpha + 0.01)?;
    if changed.is_some() {
        session.step()?;
    }
    let live_alpha_first_token_seconds = t.elapsed().as_secs_f64();
    let kept = changed.unwrap_or(steps);
    let t = Instant::now();
    session.refresh_stale(kept, usize::MAX);
    let live_alpha_all_fresh_seconds = t.elapsed().as_secs_f64();
    session.run_to_end()?;
    let t = Instant::now();
    session.set_alpha(alpha)?;
    let live_alpha_seconds = t.elapsed().as_secs_f64();
    drop(session);

    let (batched, five) = if unbatched {
        (Some(five_rows(models, prompt, alpha, steps, true)?), Some(five_rows(models, prompt, alpha, steps, false)?))
    } else {
        (None, None)
    };
    Ok(BenchReport {
        host: format!("{} threads", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)),
        placement: plan.placement().describe(),
        prompt_tokens: prompt.input_ids.len(),
        image_tokens: prompt.images.iter().map(|i| i.grid_thw.iter().product::<usize>() / 4).sum(),
        steps,
        load_seconds,
        prefill_seconds,
        guided_only_tokens_per_second: guided_only_tps,
        session_steps_per_second: session_sps,
        lockstep_batched_steps_per_second: batched,
        five_forwards_steps_per_second: five,
        weight_bytes_per_step,
        first_divergence,
        live_alpha_seconds,
        live_alpha_kept_tokens: kept,
        live_alpha_first_token_seconds,
        live_alpha_all_fresh_seconds,
    })
}
