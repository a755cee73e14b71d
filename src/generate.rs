//! Greedy decoding with a KV cache: the reference loop the `generate` subcommand runs.

use candle_core::Tensor;

use crate::error::Result;
use crate::models::{Decoder, KvCache, PromptInput};

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    Eos,
    MaxNewTokens,
}

/// The new tokens and why decoding ended.
#[derive(Debug, Clone)]
pub struct Generation {
    pub token_ids: Vec<u32>,
    pub stop: StopReason,
    pub prompt_tokens: usize,
    /// Seconds spent in prefill and in the decode steps.
    pub prefill_secs: f64,
    pub decode_secs: f64,
}

/// Index of the largest value of each row; the first one wins ties, as torch.argmax does.
pub fn argmax_rows(logits: &Tensor) -> Result<Vec<u32>> {
    let rows: Vec<Vec<f32>> = logits.to_dtype(candle_core::DType::F32)?.to_vec2()?;
    Ok(rows
        .iter()
        .map(|r| {
            let mut best = 0;
            for (i, &v) in r.iter().enumerate() {
                if v > r[best] {
                    best = i;
                }
            }
            best as u32
        })
        .collect())
}

/// Greedy decoding of one prompt: at most `max_new_tokens` tokens, stopping after any token of
/// `eos` (which is kept in the output, as transformers does).
pub fn greedy<D: Decoder + ?Sized>(model: &D, prompt: &PromptInput, max_new_tokens: usize, eos: &[u32]) -> Result<Generation> {
    let mut cache: KvCache = model.new_cache();
    let t0 = std::time::Instant::now();
    let mut logits = model.prefill(std::slice::from_ref(prompt), &mut cache)?;
    let prefill_secs = t0.elapsed().as_secs_f64();
    let t1 = std::time::Instant::now();
    // Grown as tokens come: the budget is a limit, not a size to reserve.
    let mut tokens = Vec::with_capacity(max_new_tokens.min(4096));
    let mut stop = StopReason::MaxNewTokens;
    while tokens.len() < max_new_tokens {
        let next = argmax_rows(&logits)?[0];
        tokens.push(next);
        if eos.contains(&next) {
            stop = StopReason::Eos;
            break;
        }
        if tokens.len() == max_new_tokens {
            break;
        }
        logits = model.step(&[next], &mut cache)?;
    }
    Ok(Generation {
        token_ids: tokens,
        stop,
        prompt_tokens: prompt.input_ids.len(),
        prefill_secs,
        decode_secs: t1.elapsed().as_secs_f64(),
    })
}
