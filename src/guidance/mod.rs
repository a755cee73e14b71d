//! ProxyThinker's guidance arithmetic: vocabulary alignment, the α combination, sampling, and the
//! divergence measures shown per token. Pure functions on logit slices, tested on their own.
//!
//! As in the paper's code, logits are mixed raw, before temperature, top-k/top-p and softmax:
//! `guided = base[..V] + α · (rft[..V] − small[..V])` with V the smallest vocabulary.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use wide::{f32x8, f64x4};

/// `rft[..V] − small[..V]`: the direction guidance pushes the base in.
pub fn delta(rft: &[f32], small: &[f32], v: usize) -> Vec<f32> {
    rft[..v].iter().zip(&small[..v]).map(|(r, s)| r - s).collect()
}

/// `base[..V] + α · delta`, computed in that order so that replaying a stored `base` and `delta`
/// at a new α gives bit for bit what a fresh run at that α computes.
pub fn combine(base: &[f32], delta: &[f32], alpha: f32) -> Vec<f32> {
    base[..delta.len()].iter().zip(delta).map(|(b, d)| b + alpha * d).collect()
}

/// [`combine`] into `out` (cleared first), so that a loop over many tokens reuses one buffer.
pub fn combine_into(out: &mut Vec<f32>, base: &[f32], delta: &[f32], alpha: f32) {
    out.clear();
    out.extend(base[..delta.len()].iter().zip(delta).map(|(b, d)| b + alpha * d));
}

/// The index of the largest `base[i] + α · delta[i]`, the same values [`combine`] computes (first
/// on ties, NaN never wins, as [`argmax`]), in one pass with nothing allocated: the mix is made a
/// block at a time on the stack and each block's maximum taken lane-wise. Live α runs it over
/// every kept token, so it is what a change of α waits for first.
pub fn argmax_mixed(base: &[f32], delta: &[f32], alpha: f32) -> u32 {
    let n = delta.len();
    let Some(first) = base[..n].first().map(|&b| b + alpha * delta[0]) else { return 0 };
    if first.is_nan() {
        return 0;
    }
    let mut block = [0f32; BLOCK];
    let mut best = (0, first);
    for (c, (b, d)) in base[..n].chunks(BLOCK).zip(delta.chunks(BLOCK)).enumerate() {
        let block = &mut block[..b.len()];
        // The same two roundings as `combine` (Rust never fuses them), so replays stay bit-exact.
        for ((m, &b), &d) in block.iter_mut().zip(b).zip(d) {
            *m = b + alpha * d;
        }
        fold_block(&mut best, c * BLOCK, block);
    }
    best.0 as u32
}

/// Entries per block of the vectorised maximum searches (a block stays in L1).
const BLOCK: usize = 512;

/// Lanes of the vectorised passes.
const LANES: usize = 8;

fn lanes(x: &[f32]) -> f32x8 {
    f32x8::new(x.try_into().expect("a slice of LANES entries"))
}

/// The largest value of `x` that is not NaN (−∞ when there is none), and whether `x` holds a NaN.
fn max_and_nan(x: &[f32]) -> (f32, bool) {
    let (mut acc, mut nan) = (f32x8::splat(f32::NEG_INFINITY), f32x8::ZERO);
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        let v = lanes(c);
        nan |= v.is_nan();
        // A NaN lane compares false, so it never replaces what is held.
        acc = v.simd_gt(acc).select(v, acc);
    }
    let mut max = acc.to_array().into_iter().fold(f32::NEG_INFINITY, |m, v| if v > m { v } else { m });
    let mut nan = nan.any();
    for &v in tail {
        nan |= v.is_nan();
        if v > max {
            max = v;
        }
    }
    (max, nan)
}

/// Folds block `block`, which starts at index `at`, into `best`, the index and value of the
/// first maximum so far: a later block replaces it only with a strictly larger value.
fn fold_block(best: &mut (usize, f32), at: usize, block: &[f32]) {
    let (max, _) = max_and_nan(block);
    if max > best.1 {
        let i = block.iter().position(|&v| v == max).expect("the maximum is an entry");
        *best = (at + i, max);
    }
}

/// [`choose`] on `combine(base, delta, alpha)`: the same token, without building the mix when
/// decoding is greedy.
pub fn choose_mixed(base: &[f32], delta: &[f32], alpha: f32, sampling: &Sampling, step: usize) -> u32 {
    match sampling {
        Sampling::Greedy => argmax_mixed(base, delta, alpha),
        Sampling::Sample { .. } => choose(&combine(base, delta, alpha), sampling, step),
    }
}

/// How the next token is chosen from logits.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Sampling {
    /// The largest logit (first on ties), as the paper's runs do.
    Greedy,
    /// Temperature, then top-k (0 = off), then top-p (1 = off), then a draw from a generator
    /// seeded by `seed` and the step, so a step's draw depends on nothing but its logits.
    Sample { temperature: f32, top_k: usize, top_p: f32, seed: u64 },
}

impl Sampling {
    /// Checks the parameters, naming the flag at fault.
    pub fn validate(&self) -> Result<(), String> {
        if let Sampling::Sample { temperature, top_p, .. } = *self {
            if !(temperature.is_finite() && temperature > 0.0) {
                return Err(format!("--temperature must be a positive number, got {temperature}"));
            }
            if !(top_p > 0.0 && top_p <= 1.0) {
                return Err(format!("--top-p must be in (0, 1], got {top_p}"));
            }
        }
        Ok(())
    }
}

/// Index of the largest value; the first wins ties, as torch.argmax does. A NaN never wins,
/// except at index 0, where it stays (nothing compares larger than it).
pub fn argmax(x: &[f32]) -> u32 {
    let Some(&first) = x.first() else { return 0 };
    if first.is_nan() {
        return 0;
    }
    let mut best = (0, first);
    for (c, block) in x.chunks(BLOCK).enumerate() {
        fold_block(&mut best, c * BLOCK, block);
    }
    best.0 as u32
}

/// Whether any logit is NaN (a broken model or overflow): the stream must stop, not guess.
pub fn has_nan(x: &[f32]) -> bool {
    x.iter().any(|v| v.is_nan())
}

/// Chooses the token of step `step` from `logits`.
pub fn choose(logits: &[f32], sampling: &Sampling, step: usize) -> u32 {
    match *sampling {
        Sampling::Greedy => argmax(logits),
        Sampling::Sample { temperature, top_k, top_p, seed } => {
            let mut order: Vec<u32> = (0..logits.len() as u32).collect();
            // Descending by logit, ties by index, so the candidate order is deterministic.
            order.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]).then(a.cmp(&b)));
            if top_k > 0 {
                order.truncate(top_k.max(1));
            }
            let max = logits[order[0] as usize] / temperature;
            let mut probs: Vec<f64> = order.iter().map(|&i| ((logits[i as usize] / temperature - max) as f64).exp()).collect();
            let total: f64 = probs.iter().sum();
            probs.iter_mut().for_each(|p| *p /= total);
            if top_p < 1.0 {
                let mut cum = 0.0;
                let mut keep = probs.len();
                for (i, p) in probs.iter().enumerate() {
                    cum += p;
                    if cum >= top_p as f64 {
                        keep = i + 1;
                        break;
                    }
                }
                probs.truncate(keep);
                order.truncate(keep);
            }
            let total: f64 = probs.iter().sum();
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut u: f64 = rng.random::<f64>() * total;
            for (i, p) in probs.iter().enumerate() {
                if u < *p {
                    return order[i];
                }
                u -= p;
            }
            *order.last().expect("at least one candidate")
        }
    }
}

/// log-softmax in f64 for stable measures.
pub fn log_softmax(x: &[f32]) -> Vec<f64> {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
    let lse = x.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln() + max;
    x.iter().map(|&v| v as f64 - lse).collect()
}

/// How far below zero rounding can take a divergence of two log-softmax outputs in f64 (sums of
/// up to ~150k terms): such a value is reported as 0. A value further below zero means the inputs
/// were not log-probabilities, and it is returned as it is so that the bug shows.
const ROUNDING: f64 = 1e-9;

/// A divergence with rounding's tiny negatives made 0. NaN stays NaN (`f64::max` would turn it
/// into 0, and a broken distribution would pass for two identical ones).
fn non_negative(total: f64) -> f64 {
    if total < 0.0 && total > -ROUNDING {
        0.0
    } else {
        total
    }
}

/// Shannon entropy (nats) of a distribution given as log-probabilities. A `-inf` entry is a zero
/// probability and adds nothing (0 · log 0 = 0); a NaN entry makes the entropy NaN.
pub fn entropy(logp: &[f64]) -> f64 {
    let mut total = 0.0;
    for &l in logp {
        if l.is_nan() {
            return f64::NAN;
        }
        let p = l.exp();
        if p > 0.0 {
            total -= p * l;
        }
    }
    total
}

/// KL(p‖q) in nats, from log-probabilities. Where p is 0 (`-inf`, or so small that it underflows)
/// the term is 0 whatever q is; where p > 0 and q is 0 the divergence is infinite. NaN in either
/// input gives NaN.
pub fn kl(logp: &[f64], logq: &[f64]) -> f64 {
    let mut total = 0.0;
    for (&a, &b) in logp.iter().zip(logq) {
        if a.is_nan() || b.is_nan() {
            return f64::NAN;
        }
        let p = a.exp();
        if p > 0.0 {
            total += p * (a - b);
        }
    }
    non_negative(total)
}

/// Jensen–Shannon divergence in nats, from log-probabilities: ½ KL(p‖m) + ½ KL(q‖m) with
/// m = (p + q) / 2, so it is finite (at most ln 2) even where one side is 0. NaN in either input
/// gives NaN.
pub fn js(logp: &[f64], logq: &[f64]) -> f64 {
    let mut total = 0.0;
    for (&a, &b) in logp.iter().zip(logq) {
        if a.is_nan() || b.is_nan() {
            return f64::NAN;
        }
        let (p, q) = (a.exp(), b.exp());
        let m = 0.5 * (p + q);
        if m <= 0.0 {
            continue;
        }
        let lm = m.ln();
        if p > 0.0 {
            total += 0.5 * p * (a - lm);
        }
        if q > 0.0 {
            total += 0.5 * q * (b - lm);
        }
    }
    non_negative(total)
}

/// The `k` most probable tokens, most probable first, with their probabilities.
pub fn top_k(logp: &[f64], k: usize) -> Vec<(u32, f64)> {
    let mut idx: Vec<u32> = (0..logp.len() as u32).collect();
    let k = k.min(idx.len());
    idx.select_nth_unstable_by(k.saturating_sub(1).min(logp.len().saturating_sub(1)), |&a, &b| {
        logp[b as usize].total_cmp(&logp[a as usize]).then(a.cmp(&b))
    });
    let mut top: Vec<u32> = idx[..k].to_vec();
    top.sort_by(|&a, &b| logp[b as usize].total_cmp(&logp[a as usize]).then(a.cmp(&b)));
    top.into_iter().map(|i| (i, logp[i as usize].exp())).collect()
}

/// What guidance makes of one step, measured against the base model: the guided distribution
/// (top `k`, entropy, the chosen token's log-probability), KL(guided‖base), JS(guided, base) and
/// whether the argmax moved. The values [`log_softmax`], [`top_k`], [`entropy`], [`kl`] and
/// [`js`] give separately (to rounding), in three passes over the vocabulary and no allocation
/// per call: after an α change every kept token is re-measured with it, so its cost is what the
/// user waits for.
#[derive(Debug, Clone, PartialEq)]
pub struct GuidedMeasures {
    pub top: Vec<(u32, f64)>,
    pub entropy: f64,
    pub chosen_logprob: f64,
    pub kl_guided_base: f64,
    pub js_guided_base: f64,
    pub flipped: bool,
    /// log Σ exp(mixed): a token's guided log-probability is its mixed logit minus this.
    pub log_normaliser: f64,
}

thread_local! {
    /// [`guided_measures`]' buffers (the unnormalised probabilities of base and mix, 8 bytes per
    /// vocabulary entry), kept per thread so that re-measuring thousands of tokens allocates once.
    /// They are f32 (relative error 6e-8, far below what the measures are shown with); every sum is
    /// f64.
    static SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<f32>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// The four f64 lanes of four f32 values.
fn widen(x: &[f32]) -> f64x4 {
    f64x4::new([x[0] as f64, x[1] as f64, x[2] as f64, x[3] as f64])
}

/// The first index of `max` in `x`, 0 when `max` is −∞ (as a `>` scan from −∞ finds).
fn first_index_of(x: &[f32], max: f32) -> usize {
    if max == f32::NEG_INFINITY {
        return 0;
    }
    x.iter().position(|&v| v == max).unwrap_or(0)
}

/// [`GuidedMeasures`] of the mixed logits `mixed` against the base logits `base` (same length).
///
/// The passes run eight lanes at a time (wide's f32 exponential, within an ulp or two of the
/// correctly rounded one, and its f64 logarithm), the sums in f64 lanes; the top k is kept by a
/// scalar insertion that only runs for the lanes above the k-th value so far.
pub fn guided_measures(base: &[f32], mixed: &[f32], chosen: u32, k: usize) -> GuidedMeasures {
    debug_assert_eq!(base.len(), mixed.len());
    let n = base.len().min(mixed.len());
    let (base, mixed) = (&base[..n], &mixed[..n]);
    // Pass 1: the maxima (and argmaxes, the first index on ties), NaN anywhere.
    let ((max_b, nan_b), (max_m, nan_m)) = (max_and_nan(base), max_and_nan(mixed));
    let nan = nan_b || nan_m;
    let flipped = first_index_of(mixed, max_m) != first_index_of(base, max_b);
    SCRATCH.with_borrow_mut(|(eb, em)| {
        // Pass 2: the unnormalised probabilities, kept for pass 3, and their sums; the top k of
        // the mix (most probable first, the lower id first on ties, as `top_k`).
        eb.clear();
        em.clear();
        eb.resize(n, 0.0);
        em.resize(n, 0.0);
        let (sb, sm) = (f32x8::splat(max_b), f32x8::splat(max_m));
        let (mut sum_b, mut sum_m) = (f64x4::ZERO, f64x4::ZERO);
        let mut top: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
        let keep = |top: &mut Vec<(u32, f32)>, i: usize, m: f32| {
            if k > 0 && (top.len() < k || m > top[top.len() - 1].1) {
                let at = top.partition_point(|&(_, v)| v >= m);
                top.insert(at, (i as u32, m));
                top.truncate(k);
            }
        };
        let whole = n - n % LANES;
        for i in (0..whole).step_by(LANES) {
            let (b, m) = (lanes(&base[i..i + LANES]), lanes(&mixed[i..i + LANES]));
            let (xb, xm) = ((b - sb).exp().to_array(), (m - sm).exp().to_array());
            eb[i..i + LANES].copy_from_slice(&xb);
            em[i..i + LANES].copy_from_slice(&xm);
            sum_b += widen(&xb[..4]) + widen(&xb[4..]);
            sum_m += widen(&xm[..4]) + widen(&xm[4..]);
            if k > 0 && (top.len() < k || m.simd_gt(f32x8::splat(top[top.len() - 1].1)).any()) {
                for (j, &v) in mixed[i..i + LANES].iter().enumerate() {
                    keep(&mut top, i + j, v);
                }
            }
        }
        let (mut sum_b, mut sum_m) = (sum_b.reduce_add(), sum_m.reduce_add());
        for i in whole..n {
            (eb[i], em[i]) = ((base[i] - max_b).exp(), (mixed[i] - max_m).exp());
            sum_b += eb[i] as f64;
            sum_m += em[i] as f64;
            keep(&mut top, i, mixed[i]);
        }
        let (lse_b, lse_m) = (sum_b.ln() + max_b as f64, sum_m.ln() + max_m as f64);
        let logp = |m: f32| m as f64 - lse_m;
        let top = top.into_iter().map(|(i, m)| (i, logp(m).exp())).collect();
        if nan {
            return GuidedMeasures {
                top,
                entropy: f64::NAN,
                chosen_logprob: f64::NAN,
                kl_guided_base: f64::NAN,
                js_guided_base: f64::NAN,
                flipped,
                log_normaliser: lse_m,
            };
        }
        // Pass 3: entropy, KL and JS, four f64 lanes at a time. Zero probabilities add nothing
        // (0 · log 0 = 0): their lanes are masked out, never multiplied by −∞.
        let (inv_b, inv_m) = (1.0 / sum_b, 1.0 / sum_m);
        let (vinv_b, vinv_m, vlse_b, vlse_m) = (f64x4::splat(inv_b), f64x4::splat(inv_m), f64x4::splat(lse_b), f64x4::splat(lse_m));
        let (zero, half) = (f64x4::ZERO, f64x4::splat(0.5));
        let (mut ent, mut kl_total, mut js_total) = (f64x4::ZERO, f64x4::ZERO, f64x4::ZERO);
        let whole = n - n % 4;
        for i in (0..whole).step_by(4) {
            let (lg, lb) = (widen(&mixed[i..]) - vlse_m, widen(&base[i..]) - vlse_b);
            let (p, q) = (widen(&em[i..]) * vinv_m, widen(&eb[i..]) * vinv_b);
            let (p_pos, q_pos) = (p.simd_gt(zero), q.simd_gt(zero));
            let mid = half * (p + q);
            let mid_pos = mid.simd_gt(zero);
            let lm = mid_pos.select(mid, f64x4::ONE).ln();
            ent += p_pos.select(p * lg, zero);
            kl_total += p_pos.select(p * (lg - lb), zero);
            js_total += p_pos.select(half * p * (lg - lm), zero) + q_pos.select(half * q * (lb - lm), zero);
        }
        let (mut entropy, mut kl_total, mut js_total) = (-ent.reduce_add(), kl_total.reduce_add(), js_total.reduce_add());
        for i in whole..n {
            let (lg, lb) = (mixed[i] as f64 - lse_m, base[i] as f64 - lse_b);
            let (p, q) = (em[i] as f64 * inv_m, eb[i] as f64 * inv_b);
            if p > 0.0 {
                entropy -= p * lg;
                kl_total += p * (lg - lb);
            }
            let mid = 0.5 * (p + q);
            if mid > 0.0 {
                let lm = mid.ln();
                if p > 0.0 {
                    js_total += 0.5 * p * (lg - lm);
                }
                if q > 0.0 {
                    js_total += 0.5 * q * (lb - lm);
                }
            }
        }
        GuidedMeasures {
            top,
            entropy,
            chosen_logprob: logp(mixed[chosen as usize]),
            kl_guided_base: non_negative(kl_total),
            js_guided_base: non_negative(js_total),
            flipped,
            log_normaliser: lse_m,
        }
    })
}

/// 1-based rank of `token` under `logits` (1 = the argmax).
pub fn rank(logits: &[f32], token: u32) -> usize {
    let v = logits[token as usize];
    1 + logits.iter().enumerate().filter(|&(i, &x)| x > v || (x == v && (i as u32) < token)).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Equal to rounding: the fused passes keep probabilities in f32 and divide by the sum where
    /// the separate ones subtract its log in f64.
    fn to_rounding(a: f64, b: f64) -> bool {
        a == b || (a - b).abs() <= 1e-6 * (1.0 + a.abs().max(b.abs()))
    }

    #[test]
    fn the_fused_guided_measures_equal_the_separate_ones() {
        let mut rng = 12345u64;
        let mut next = move || {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((rng >> 33) as f32 / (1u64 << 31) as f32) * 12.0 - 6.0
        };
        for case in 0..6 {
            let n = 3000 + case * 17;
            let mut base: Vec<f32> = (0..n).map(|_| next()).collect();
            let mut mixed: Vec<f32> = base.iter().map(|&b| b + 0.7 * next()).collect();
            // Ties (the lower id first), masked tokens, a flip in odd cases.
            mixed[10] = 40.0;
            mixed[20] = 40.0;
            mixed[30] = 39.0;
            base[5] = f32::NEG_INFINITY;
            mixed[6] = f32::NEG_INFINITY;
            if case % 2 == 0 {
                base[10] = 50.0;
            }
            let chosen = (case * 31) as u32;
            let got = guided_measures(&base, &mixed, chosen, 10);
            let (lg, lb) = (log_softmax(&mixed), log_softmax(&base));
            let want_top = top_k(&lg, 10);
            assert_eq!(got.top.iter().map(|t| t.0).collect::<Vec<_>>(), want_top.iter().map(|t| t.0).collect::<Vec<_>>(), "case {case}");
            assert_eq!(&got.top[..3].iter().map(|t| t.0).collect::<Vec<_>>(), &[10, 20, 30]);
            assert!(got.top.iter().zip(&want_top).all(|(a, b)| to_rounding(a.1, b.1)));
            assert!(to_rounding(got.entropy, entropy(&lg)), "{} vs {}", got.entropy, entropy(&lg));
            assert!(to_rounding(got.chosen_logprob, lg[chosen as usize]));
            assert!(to_rounding(got.kl_guided_base, kl(&lg, &lb)), "{} vs {}", got.kl_guided_base, kl(&lg, &lb));
            assert!(to_rounding(got.js_guided_base, js(&lg, &lb)), "{} vs {}", got.js_guided_base, js(&lg, &lb));
            assert_eq!(got.flipped, argmax(&mixed) != argmax(&base));
            assert_eq!(got.flipped, case % 2 == 1, "case {case}");
        }
        let nan = guided_measures(&[0.0, f32::NAN], &[0.0, 1.0], 0, 2);
        assert!(nan.kl_guided_base.is_nan() && nan.js_guided_base.is_nan() && nan.entropy.is_nan());
    }

    #[test]
    fn combine_is_base_plus_alpha_times_difference_on_the_shared_vocabulary() {
        let base = [1.0, 2.0, 3.0, 100.0];
        let d = delta(&[0.5, 0.0, 1.0], &[0.0, 1.0, 0.0, 7.0], 3);
        assert_eq!(d, vec![0.5, -1.0, 1.0]);
        assert_eq!(combine(&base, &d, 2.0), vec![2.0, 0.0, 5.0]);
        assert_eq!(combine(&base, &d, 0.0), vec![1.0, 2.0, 3.0]);
    }

    #[test]
    fn the_mix_choice_without_the_mix_is_the_choice_on_the_mix() {
        let base: Vec<f32> = (0..400).map(|i| ((i as f32) * 0.731).sin() * 4.0).collect();
        let delta: Vec<f32> = (0..400).map(|i| ((i as f32) * 1.37).cos() * 2.0).collect();
        let sampled = Sampling::Sample { temperature: 0.8, top_k: 20, top_p: 0.9, seed: 3 };
        for alpha in [0.0f32, 0.25, 0.5, 1.0, 2.0, -1.0, 7.5] {
            let mixed = combine(&base, &delta, alpha);
            assert_eq!(argmax_mixed(&base, &delta, alpha), argmax(&mixed), "α {alpha}");
            for step in 0..20 {
                for s in [Sampling::Greedy, sampled] {
                    assert_eq!(choose_mixed(&base, &delta, alpha, &s, step), choose(&mixed, &s, step), "α {alpha} {s:?}");
                }
            }
        }
        // Ties go to the first; a NaN never wins (also at index 0, as argmax keeps it).
        assert_eq!(argmax_mixed(&[1.0, 2.0, 2.0], &[1.0, 0.0, 0.0], 1.0), 0);
        assert_eq!(argmax_mixed(&[1.0, f32::NAN, 3.0], &[0.0, 0.0, 0.0], 1.0), 2);
        assert_eq!(argmax_mixed(&[f32::NAN, 5.0], &[0.0, 0.0], 1.0), argmax(&[f32::NAN, 5.0]));
        // The base may be longer than the shared vocabulary: only V entries count.
        assert_eq!(argmax_mixed(&[1.0, 0.0, 99.0], &[0.0, 0.5], 1.0), 0);
    }

    #[test]
    fn the_blocked_maximum_searches_agree_with_a_plain_scan() {
        fn plain(x: &[f32]) -> u32 {
            let mut best = 0;
            for (i, &v) in x.iter().enumerate() {
                if v > x[best] {
                    best = i;
                }
            }
            best as u32
        }
        // Three blocks and a tail: a tie across blocks goes to the first, NaN never wins.
        let n = 2 * BLOCK + 37;
        let mut x: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.37).sin()).collect();
        x[700] = f32::NAN;
        x[BLOCK + 88] = 3.0;
        x[2 * BLOCK + 6] = 3.0;
        assert_eq!((argmax(&x), plain(&x)), (BLOCK as u32 + 88, BLOCK as u32 + 88));
        x[2 * BLOCK + 30] = 4.0;
        assert_eq!(argmax(&x), 2 * BLOCK as u32 + 30);
        assert_eq!(argmax(&[f32::NEG_INFINITY, f32::NAN, f32::NEG_INFINITY]), 0);
        let mut state = 99u64;
        let mut next = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) % 64) as f32 - 32.0
        };
        for len in [1, 7, 8, 9, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 5] {
            // Few distinct values, so ties are everywhere; some −∞ and NaN.
            let mut base: Vec<f32> = (0..len).map(|_| next()).collect();
            let delta: Vec<f32> = (0..len).map(|_| next() / 4.0).collect();
            for i in (3..len).step_by(97) {
                base[i] = if i % 2 == 0 { f32::NAN } else { f32::NEG_INFINITY };
            }
            assert_eq!(argmax(&base), plain(&base), "len {len}");
            for alpha in [0.0, 0.5, 3.0] {
                assert_eq!(argmax_mixed(&base, &delta, alpha), plain(&combine(&base, &delta, alpha)), "len {len} α {alpha}");
            }
        }
    }

    #[test]
    fn greedy_takes_the_first_maximum() {
        assert_eq!(choose(&[1.0, 3.0, 3.0, 2.0], &Sampling::Greedy, 0), 1);
    }

    #[test]
    fn sampling_is_reproducible_per_step_and_respects_top_k_and_top_p() {
        let logits: Vec<f32> = (0..50).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        let s = Sampling::Sample { temperature: 1.0, top_k: 5, top_p: 1.0, seed: 42 };
        let top5: Vec<u32> = top_k(&log_softmax(&logits), 5).iter().map(|t| t.0).collect();
        let draws: Vec<u32> = (0..200).map(|step| choose(&logits, &s, step)).collect();
        assert!(draws.iter().all(|t| top5.contains(t)));
        assert!(draws.iter().collect::<std::collections::HashSet<_>>().len() > 1, "draws vary by step");
        assert_eq!(draws, (0..200).map(|step| choose(&logits, &s, step)).collect::<Vec<_>>());
        // top_p tiny keeps only the most probable token.
        let p = Sampling::Sample { temperature: 1.0, top_k: 0, top_p: 1e-6, seed: 1 };
        assert!((0..50).all(|step| choose(&logits, &p, step) == argmax(&logits)));
        let other_seed = Sampling::Sample { temperature: 1.0, top_k: 5, top_p: 1.0, seed: 43 };
        assert_ne!(draws, (0..200).map(|step| choose(&logits, &other_seed, step)).collect::<Vec<_>>());
    }

    #[test]
    fn measures_match_hand_computed_values() {
        let p = log_softmax(&[0.0, 0.0]);
        assert!((entropy(&p) - 2f64.ln()).abs() < 1e-12);
        let q = log_softmax(&[(3f32).ln(), 0.0]); // 0.75, 0.25
        let want_kl = 0.5 * (0.5f64 / 0.75).ln() + 0.5 * (0.5f64 / 0.25).ln();
        assert!((kl(&p, &q) - want_kl).abs() < 1e-6);
        assert!(kl(&p, &p).abs() < 1e-12);
        let m = [0.625f64, 0.375];
        let want_js = 0.5 * (0.5 * (0.5 / m[0]).ln() + 0.5 * (0.5 / m[1]).ln())
            + 0.5 * (0.75 * (0.75 / m[0]).ln() + 0.25 * (0.25 / m[1]).ln());
        assert!((js(&p, &q) - want_js).abs() < 1e-6);
        assert_eq!(rank(&[0.1, 0.9, 0.5], 2), 2);
        assert_eq!(rank(&[0.1, 0.9, 0.5], 1), 1);
        let t = top_k(&q, 1);
        assert_eq!(t[0].0, 0);
        assert!((t[0].1 - 0.75).abs() < 1e-6);
        assert!(has_nan(&[1.0, f32::NAN]) && !has_nan(&[1.0]));
    }

    /// Log-probabilities of probabilities written out by hand; ln 0 = -inf, a zero probability.
    fn ln(p: &[f64]) -> Vec<f64> {
        p.iter().map(|x| x.ln()).collect()
    }

    fn close(got: f64, want: f64) -> bool {
        (got - want).abs() < 1e-12
    }

    #[test]
    fn divergences_of_small_distributions_worked_out_by_hand() {
        let (half, quarter) = (0.5f64, 0.25f64);
        // KL((½,¼,¼)‖(¼,¼,½)) = ½ ln 2 + ¼ ln 1 + ¼ ln ½ = ¼ ln 2.
        let got = kl(&ln(&[half, quarter, quarter]), &ln(&[quarter, quarter, half]));
        assert!(close(got, 0.173_286_795_139_986_32), "{got}");
        // KL((.9,.1)‖(.5,.5)) = .9 ln 1.8 + .1 ln .2, and the other way ½ ln(5/9) + ½ ln 5 = ln(5/3):
        // KL is not symmetric.
        let (p, q) = (ln(&[0.9, 0.1]), ln(&[0.5, 0.5]));
        assert!(close(kl(&p, &q), 0.368_064_207_168_497_1), "{}", kl(&p, &q));
        assert!(close(kl(&q, &p), 0.510_825_623_765_990_7), "{}", kl(&q, &p));
        // JS with m = (.7, .3): ½ (.9 ln(9/7) + .1 ln(1/3)) + ½ (.5 ln(5/7) + .5 ln(5/3)); symmetric.
        assert!(close(js(&p, &q), 0.101_749_225_079_196_75), "{}", js(&p, &q));
        assert!(close(js(&q, &p), 0.101_749_225_079_196_75), "{}", js(&q, &p));
        // H(½,¼,¼) = ½ ln 2 + ½ ln 4 = 1.5 ln 2.
        assert!(close(entropy(&ln(&[half, quarter, quarter])), 1.039_720_770_839_917_9));

        // Zero probabilities are -inf log-probabilities, and 0 · log 0 = 0.
        let (p, q) = (ln(&[half, half, 0.0]), ln(&[quarter, quarter, half]));
        // KL(p‖q) = 2 · ½ ln 2 = ln 2: the third term is 0 although p's log is -inf.
        assert!(close(kl(&p, &q), std::f64::consts::LN_2), "{}", kl(&p, &q));
        // q puts mass where p has none: KL(q‖p) is infinite, not NaN.
        assert_eq!(kl(&q, &p), f64::INFINITY);
        // m = (3/8, 3/8, ¼): JS = ½ ln(4/3) + ½ (½ ln(2/3) + ½ ln 2) = ¾ ln(4/3).
        assert!(close(js(&p, &q), 0.215_761_554_338_835_65), "{}", js(&p, &q));
        // Disjoint supports: JS reaches its top, ln 2; KL is infinite; a point mass has no entropy.
        let (a, b) = (ln(&[1.0, 0.0]), ln(&[0.0, 1.0]));
        assert!(close(js(&a, &b), std::f64::consts::LN_2), "{}", js(&a, &b));
        assert_eq!(kl(&a, &b), f64::INFINITY);
        assert_eq!(entropy(&a), 0.0);
        // A log-probability so low that its probability underflows to 0 counts as 0 too.
        assert_eq!(kl(&[0.0, -1000.0], &[0.0, f64::NEG_INFINITY]), 0.0);
    }

    #[test]
    fn nan_in_a_distribution_makes_its_measures_nan_and_only_rounding_is_clamped() {
        let p = ln(&[0.5, 0.25, 0.25]);
        for i in 0..3 {
            let mut bad = p.clone();
            bad[i] = f64::NAN;
            assert!(kl(&bad, &p).is_nan() && kl(&p, &bad).is_nan(), "KL with NaN at {i}");
            assert!(js(&bad, &p).is_nan() && js(&p, &bad).is_nan(), "JS with NaN at {i}");
            assert!(entropy(&bad).is_nan(), "entropy with NaN at {i}");
        }
        // Even where the other side is a zero probability (whose term would be skipped).
        let zero = ln(&[1.0, 0.0]);
        assert!(kl(&zero, &[0.0, f64::NAN]).is_nan() && js(&zero, &[0.0, f64::NAN]).is_nan());
        assert!(kl(&[0.0, f64::NAN], &zero).is_nan() && js(&[0.0, f64::NAN], &zero).is_nan());
        // Identical distributions: exactly 0.
        assert_eq!(kl(&p, &p), 0.0);
        assert_eq!(js(&p, &p), 0.0);
        // q's masses a hair above p's (as rounding leaves them): the small negative KL is 0.
        let hair: Vec<f64> = p.iter().map(|l| l + 1e-12).collect();
        assert_eq!(kl(&p, &hair), 0.0);
        // Inputs that are not log-probabilities (q sums to e^0.1): the negative is not hidden.
        let off: Vec<f64> = p.iter().map(|l| l + 0.1).collect();
        assert!(close(kl(&p, &off), -0.1), "{}", kl(&p, &off));
    }
}
