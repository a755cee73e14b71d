//! Synthetic sessions for tests, snapshots and the frame benchmark: records made up from a fixed
//! word list and a small deterministic generator, so that every run draws the same screen.

use std::path::PathBuf;

use crate::engine::{Candidate, Distribution, GuidedRecord, StreamRecord, Why, WhyRow};
use crate::trio::PerModel;
use crate::guidance::Sampling;
use crate::processor::SourceImage;

use super::app::{App, Mode, SessionInfo};
use super::picture::Thumbnail;

const WORDS: [&str; 24] = [
    " The", " picture", " shows", " three", " circles", ",", " one", " red", " and", " two", " blue", ".", " Count",
    "ing", " them", ":", " 1", " 2", " 3", "\n", " so", " the", " answer", " is",
];

/// A tiny deterministic generator (a 64-bit LCG): the same seed, the same numbers.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    /// A number in [0, 1).
    fn unit(&mut self) -> f32 {
        (self.next() % 10_000) as f32 / 10_000.0
    }
}

fn candidates(rng: &mut Lcg, first: u32) -> Vec<Candidate> {
    let mut probs: Vec<f32> = (0..10).map(|k| rng.unit() / (k as f32 + 1.0).powi(2)).collect();
    probs[0] += 0.3;
    let total: f32 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    probs.sort_by(|a, b| b.total_cmp(a));
    probs
        .into_iter()
        .enumerate()
        .map(|(k, prob)| {
            let token = (first as usize + k * 7) % WORDS.len();
            Candidate { token: token as u32, text: WORDS[token].to_string(), prob }
        })
        .collect()
}

fn distribution(rng: &mut Lcg, first: u32) -> Distribution {
    let top = candidates(rng, first);
    let chosen_logprob = top[0].prob.ln();
    Distribution { top, entropy: rng.unit() * 4.0, chosen_logprob }
}

/// The record of guided step `step` (deterministic in `step` and `seed`).
pub fn guided_record(step: usize, seed: u64) -> GuidedRecord {
    let mut rng = Lcg(seed.wrapping_add(step as u64 * 7919));
    let token = (rng.next() % WORDS.len() as u64) as u32;
    let flipped = rng.next().is_multiple_of(5);
    GuidedRecord {
        step,
        token,
        text: WORDS[token as usize].to_string(),
        forced: false,
        base: distribution(&mut rng, (token + 1) % WORDS.len() as u32),
        rft: distribution(&mut rng, token),
        small: distribution(&mut rng, (token + 2) % WORDS.len() as u32),
        guided: distribution(&mut rng, token),
        kl_guided_base: rng.unit() * 2.5,
        kl_rft_small: rng.unit() * 2.0,
        js_guided_base: rng.unit() * 0.69,
        base_rank: 1 + (rng.next() % 50) as usize * usize::from(flipped),
        flipped,
        stale: false,
        why: Some(Box::new(why(&mut rng, token))),
        stop: None,
    }
}

/// A made-up "why" of a step: the chosen token and six others of the word list, with logits
/// under each model and a guidance shift of α = 0.5 times their difference.
fn why(rng: &mut Lcg, chosen: u32) -> Why {
    let mut logit = || rng.unit() * 8.0 - 2.0;
    let rows: Vec<WhyRow> = (0..7u32)
        .map(|k| {
            let token = (chosen + k * 5) % WORDS.len() as u32;
            let logits = PerModel::new(logit(), logit(), logit());
            let probs = logits.map(|l| (l - 8.0).exp().min(1.0));
            let shift = 0.5 * (logits.rft - logits.small);
            WhyRow { token, text: WORDS[token as usize].to_string(), logits, probs, shift, guided_prob: (logits.base + shift - 9.0).exp().min(1.0) }
        })
        .collect();
    Why { guided_rank: 1 + (rng.next() % 3) as usize, rows }
}

/// The record of step `step` of the base-only or RFT-only stream.
pub fn stream_record(step: usize, seed: u64) -> StreamRecord {
    let mut rng = Lcg(seed.wrapping_add(step as u64 * 104_729));
    let token = (rng.next() % WORDS.len() as u64) as u32;
    let d = distribution(&mut rng, token);
    StreamRecord {
        step,
        token,
        text: WORDS[token as usize].to_string(),
        logprob: -rng.unit() * 9.0,
        entropy: d.entropy,
        top: d.top,
        stop: None,
    }
}

/// A small striped picture, so the image pane has something to show without reading a file.
pub fn thumbnail() -> Thumbnail {
    let picture = image::RgbImage::from_fn(32, 24, |x, y| {
        let d = (x as i32 - 16).pow(2) + (y as i32 - 12).pow(2);
        image::Rgb(if d < 64 { [220, 40, 40] } else { [(x * 8) as u8, (y * 10) as u8, 120] })
    });
    // Already smaller than a thumbnail, so it is shown as made.
    let (width, height) = picture.dimensions();
    let pixels = picture.pixels().map(|p| p.0).collect();
    let source = SourceImage::from_image("synthetic.png", image::DynamicImage::ImageRgb8(picture));
    Thumbnail { width, height, pixels, source }
}

/// An app in `mode` with `n` tokens in every pane, sized `screen`.
pub fn app(n: usize, screen: (u16, u16)) -> App {
    let info = SessionInfo {
        mode: Mode::Live,
        base: "Qwen2.5-VL-32B-Instruct".into(),
        rft: "ThinkLite-VL-7B".into(),
        small: "Qwen2.5-VL-7B-Instruct".into(),
        device: "cuda:0".into(),
        dtype: "bf16".into(),
        sampling: Sampling::Greedy,
        max_new_tokens: 512.max(n),
        question: "How many circles are in the picture?".into(),
        image_path: Some(PathBuf::from("assets/sample.png")),
    };
    let mut app = App::new(info, 0.5);
    app.screen = screen;
    app.image = Some(thumbnail());
    for s in 0..n {
        app.push_base(stream_record(s, 1));
        app.push_rft(stream_record(s, 2));
        app.push_guided(guided_record(s, 3));
    }
    if n > 0 {
        app.run = super::app::RunState::Running;
    }
    app.step = n;
    app.tokens_per_second = 12.5;
    app
}

/// A trace header for a synthetic session (tests export synthetic records under it): the
/// question, sampling and budget of `app`, models named as the header shows them, on the cpu.
pub fn trace_header(app: &App) -> crate::trace::TraceHeader {
    let info = &app.info;
    crate::trace::TraceHeader {
        written_by: "proxythinker tests".into(),
        models: PerModel::new(info.base.clone(), info.rft.clone(), info.small.clone()),
        preset: None,
        placement: PerModel::from_fn(|_| crate::trace::ModelPlace { device: "cpu".into(), dtype: "f32".into() }),
        alpha: app.alpha,
        sampling: info.sampling,
        max_new_tokens: info.max_new_tokens,
        stop_strings: Vec::new(),
        stop_at_eos: true,
        question: info.question.clone(),
        suffix: String::new(),
        image: info.image_path.clone(),
        prompt: String::new(),
        input_ids: Vec::new(),
        shared_vocab: 0,
        own_prompts: None,
    }
}
