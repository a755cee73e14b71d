//! What the quantization tests share: random weights drawn the same on every run, and the
//! accuracy of quantized logits against f32 ones. `examples/quant_accuracy.rs` includes this file
//! too, to measure the bench model the same way.

use std::sync::Arc;

use candle_core::{Device, Tensor};
use proxythinker::engine::{Session, Settings, StreamKind, Trio};
use proxythinker::guidance::Sampling;
use proxythinker::models::{Decoder, KvCache, PromptInput};

/// A tiny deterministic generator, so that the wide checkpoints are the same on every run.
pub struct Lcg(pub u64);

impl Lcg {
    /// Uniform in (0, 1].
    pub fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f32 {
        let (u, v) = (self.unit(), self.unit());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }
}

/// Fills every tensor of `varmap` (a model built on it creates them as zeros) as
/// tests/fixtures/reference.py draws the fixtures': normal with std 1.5/√fan_in, biases
/// 0.1·N(0, 1), norms 1 + 0.1·N(0, 1), in name order, from `seed`.
pub fn randomize(varmap: &candle_nn::VarMap, seed: u64) {
    let mut rng = Lcg(seed);
    let data = varmap.data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort(); // the generator's order must not depend on the map's
    for name in names {
        let var = &data[name];
        let dims = var.dims().to_vec();
        let n: usize = dims.iter().product();
        let (centre, scale) = if name.ends_with("bias") {
            (0.0, 0.1)
        } else if dims.len() == 1 {
            (1.0, 0.1)
        } else {
            // fan_in as torch counts it: every dimension but the first.
            (0.0, 1.5 / (dims[1..].iter().product::<usize>() as f32).sqrt())
        };
        let values: Vec<f32> = (0..n).map(|_| centre + scale * rng.normal()).collect();
        var.set(&Tensor::from_vec(values, dims, &Device::Cpu).unwrap()).unwrap();
    }
}

pub fn log_probs(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().map(|&x| x as f64).fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = logits.iter().map(|&x| (x as f64 - max).exp()).sum();
    logits.iter().map(|&x| x as f64 - max - sum.ln()).collect()
}

pub fn kl(p: &[f32], q: &[f32]) -> f64 {
    let (lp, lq) = (log_probs(p), log_probs(q));
    lp.iter().zip(&lq).map(|(a, b)| a.exp() * (a - b)).sum()
}

pub fn argmax(x: &[f32]) -> usize {
    (0..x.len()).fold(0, |best, i| if x[i] > x[best] { i } else { best })
}

/// What one quantized configuration did against f32 over some positions.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Accuracy {
    /// Largest |Δ logit| / largest |f32 logit|, over every position.
    pub max_rel: f64,
    /// Mean over positions of ‖Δ logits‖ / ‖f32 logits‖.
    pub rel_l2: f64,
    pub mean_kl: f64,
    pub argmax_equal: f64,
    /// Whether any logit differed at all (quantization was not skipped).
    pub differs: bool,
    pub positions: usize,
}

impl Accuracy {
    pub fn add(&mut self, reference: &[f32], got: &[f32]) {
        let scale = reference.iter().fold(0.0f32, |m, x| m.max(x.abs())) as f64;
        let diff = reference.iter().zip(got).fold(0.0f32, |m, (a, b)| m.max((a - b).abs())) as f64;
        self.max_rel = self.max_rel.max(diff / scale);
        let norm = |v: &mut dyn Iterator<Item = f64>| v.map(|x| x * x).sum::<f64>().sqrt();
        let delta = norm(&mut reference.iter().zip(got).map(|(a, b)| (a - b) as f64));
        self.rel_l2 += delta / norm(&mut reference.iter().map(|&a| a as f64));
        self.differs |= diff > 0.0;
        self.mean_kl += kl(reference, got);
        self.argmax_equal += (argmax(reference) == argmax(got)) as u8 as f64;
        self.positions += 1;
    }

    pub fn finish(mut self) -> Self {
        self.mean_kl /= self.positions as f64;
        self.rel_l2 /= self.positions as f64;
        self.argmax_equal /= self.positions as f64;
        self
    }
}

/// The first row of a logits tensor.
pub fn row(logits: Tensor) -> Vec<f32> {
    logits.to_vec2::<f32>().unwrap().remove(0)
}

/// Models decoded side by side, their logits combined into one distribution per position.
pub type Models = Vec<Arc<dyn Decoder>>;

/// The guided mix base[..V] + α·(rft[..V] − small[..V]) of a trio's logits (base, rft, small).
pub fn guided_mix(alpha: f32, v: usize) -> impl Fn(&[Vec<f32>]) -> Vec<f32> {
    move |l: &[Vec<f32>]| (0..v).map(|i| l[0][i] + alpha * (l[1][i] - l[2][i])).collect()
}

/// The f32 models and their quantized twins, each prompt decoded for `steps` tokens along the
/// greedy choice of the f32 `combine` (every model is fed the same tokens, so each position
/// compares like with like): the accuracy of the quantized combination against the f32 one.
pub fn along_greedy(reference: &[Arc<dyn Decoder>], quantized: &[Arc<dyn Decoder>], prompts: &[PromptInput], steps: usize, combine: &dyn Fn(&[Vec<f32>]) -> Vec<f32>) -> Accuracy {
    let mut acc = Accuracy::default();
    for p in prompts {
        let prefill = |ms: &[Arc<dyn Decoder>], cs: &mut Vec<KvCache>| -> Vec<Vec<f32>> {
            ms.iter().zip(cs.iter_mut()).map(|(m, c)| row(m.prefill(std::slice::from_ref(p), c).unwrap())).collect()
        };
        let step = |ms: &[Arc<dyn Decoder>], cs: &mut Vec<KvCache>, t: u32| -> Vec<Vec<f32>> {
            ms.iter().zip(cs.iter_mut()).map(|(m, c)| row(m.step(&[t], c).unwrap())).collect()
        };
        let mut cr: Vec<_> = reference.iter().map(|m| m.new_cache()).collect();
        let mut cq: Vec<_> = quantized.iter().map(|m| m.new_cache()).collect();
        let (mut lr, mut lq) = (prefill(reference, &mut cr), prefill(quantized, &mut cq));
        for _ in 0..steps {
            let (gr, gq) = (combine(&lr), combine(&lq));
            acc.add(&gr, &gq);
            let t = argmax(&gr) as u32;
            lr = step(reference, &mut cr, t);
            lq = step(quantized, &mut cq, t);
        }
    }
    acc.finish()
}

/// Share of positions where two token sequences agree (the longer one's length counts).
pub fn share_equal(a: &[u32], b: &[u32]) -> f64 {
    let n = a.len().max(b.len());
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / n as f64
}

/// Whole greedy sessions of `steps` tokens per prompt, quantized trio against f32 trio: (share of
/// the base model's own greedy tokens equal, the same for the guided stream), over the prompts.
pub fn session_tokens(reference: &Trio, quantized: &Trio, tokenizer: &tokenizers::Tokenizer, eos: &[u32], prompts: &[PromptInput], steps: usize, alpha: f32) -> (f64, f64) {
    let (mut own, mut guided) = (0.0, 0.0);
    for p in prompts {
        let settings = Settings { alpha, sampling: Sampling::Greedy, max_new_tokens: steps, stop_strings: vec![], stop_at_eos: false };
        let run = |trio: &Trio| {
            let mut s = Session::new(trio.clone(), tokenizer.clone(), p.clone(), settings.clone(), eos.to_vec()).unwrap();
            s.run_to_end().unwrap();
            (s.tokens(StreamKind::Base).to_vec(), s.tokens(StreamKind::Guided).to_vec())
        };
        let ((br, gr), (bq, gq)) = (run(reference), run(quantized));
        own += share_equal(&br, &bq);
        guided += share_equal(&gr, &gq);
    }
    (own / prompts.len() as f64, guided / prompts.len() as f64)
}
