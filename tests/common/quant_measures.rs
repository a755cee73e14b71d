//! What the quantization tests share: random weights drawn the same on every run, and the
//! accuracy of quantized logits against f32 ones.

use candle_core::{Device, Tensor};

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
