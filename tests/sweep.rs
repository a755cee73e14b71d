//! The α sweep (`eval`'s decoder): one prompt at several α values in one batch gives, for every
//! α, what a fresh session at that α gives (greedy and sampled, with streams ending at different
//! steps), the base and RFT streams once, and rows that leave the batch as their streams end.

mod common;

use candle_core::{DType, Device};
use common::*;
use proxythinker::engine::{Session, Settings, Stop, StreamKind, Sweep, SweepStream, Trio};
use proxythinker::guidance::Sampling;
use proxythinker::models::PromptInput;
use proxythinker::placement::uniform;
use proxythinker::prepare::prepare_prompt;
use proxythinker::trio::{PerModel, TrioFiles};

struct Setup {
    files: TrioFiles,
    trio: Trio,
}

fn setup() -> Setup {
    let dirs = PerModel::new(tiny("qwen2_5_vl"), tiny("trio_rft"), tiny("trio_small"));
    let files = TrioFiles::open(dirs.as_ref().map(|p| p.as_path())).unwrap_or_else(|e| panic!("{e}"));
    let trio = files.load(&uniform(DType::F32, &Device::Cpu)).unwrap();
    Setup { files, trio }
}

const ALPHAS: [f32; 4] = [0.25, 0.5, 1.0, 2.0];

impl Setup {
    /// The prompt `eval` asks `question` with (the paper's `\boxed{}` suffix).
    fn prompt(&self, question: &str, image: Option<&str>) -> PromptInput {
        let question = format!("{question}{}", proxythinker::presets::Suffix::parse("boxed").text());
        let question = question.as_str();
        let image = image.map(|i| proxythinker::processor::SourceImage::open(&tiny(i)).unwrap());
        prepare_prompt(&self.files.base().0, &self.files.base().1, question, image.as_ref(), false, &Device::Cpu).unwrap().input
    }

    fn eos(&self) -> Vec<u32> {
        self.files.base().0.eos_token_ids.clone()
    }

    fn sweep(&self, prompt: &PromptInput, settings: &Settings, alphas: &[f32]) -> proxythinker::Result<Sweep> {
        let tokenizer = self.files.base().1.clone();
        Sweep::new(self.trio.clone(), tokenizer, PerModel::from_fn(|_| prompt.clone()), settings.clone(), alphas, self.eos())
    }

    fn session(&self, prompt: &PromptInput, settings: &Settings, alpha: f32) -> Session {
        let settings = Settings { alpha, ..settings.clone() };
        let mut s = Session::new(self.trio.clone(), self.files.base().1.clone(), prompt.clone(), settings, self.eos()).unwrap();
        s.run_to_end().unwrap();
        s
    }
}

/// Stop strings that end the tiny models' streams after a few tokens, each at its own step.
fn settings(sampling: Sampling) -> Settings {
    Settings { alpha: 0.0, sampling, max_new_tokens: 16, stop_strings: vec!["sw".into(), " answer".into()], stop_at_eos: true }
}

fn json<T: serde::Serialize>(x: &T) -> serde_json::Value {
    serde_json::to_value(x).unwrap()
}

/// Decodes `prompt` at every α of [`ALPHAS`] in one sweep and checks every stream against a
/// fresh session at that α; returns the lengths of the guided streams.
fn check_against_sessions(s: &Setup, prompt: &PromptInput, settings: &Settings, what: &str) -> Vec<usize> {
    let mut sweep = s.sweep(prompt, settings, &ALPHAS).unwrap();
    sweep.run_to_end().unwrap();
    let mut lengths = Vec::new();
    let mut texts = Vec::new();
    for (i, &alpha) in ALPHAS.iter().enumerate() {
        let session = s.session(prompt, settings, alpha);
        let at = format!("{what} α={alpha}");
        assert_eq!(sweep.tokens(SweepStream::Guided(i)), session.tokens(StreamKind::Guided), "{at}: guided tokens");
        assert_eq!(sweep.stop(SweepStream::Guided(i)), session.stop(StreamKind::Guided), "{at}: guided stop");
        assert_eq!(sweep.text(SweepStream::Guided(i)).unwrap(), session.text(StreamKind::Guided).unwrap(), "{at}");
        assert_json_near(&json(&sweep.guided_records(i)), &json(&session.guided_records()), &format!("{at} guided records"));
        for (mine, theirs) in [(SweepStream::Base, StreamKind::Base), (SweepStream::Rft, StreamKind::Rft)] {
            assert_eq!(sweep.tokens(mine), session.tokens(theirs), "{at}: {theirs:?} tokens");
            assert_eq!(sweep.stop(mine), session.stop(theirs), "{at}: {theirs:?} stop");
            assert_json_near(&json(&sweep.stream_records(mine)), &json(&session.stream_records(theirs)), &format!("{at} {theirs:?} records"));
        }
        lengths.push(sweep.tokens(SweepStream::Guided(i)).len());
        texts.push(sweep.tokens(SweepStream::Guided(i)).to_vec());
    }
    // Otherwise the check could not tell one α from another.
    texts.dedup();
    assert!(texts.len() > 2, "{what}: the α values should give different guided streams: {texts:?}");
    lengths
}

#[test]
fn every_guided_row_of_a_greedy_sweep_is_a_session_at_its_alpha() {
    let s = setup();
    let mut lengths = Vec::new();
    for (q, image) in [("How many circles are in the picture?", Some("images/56x56.png")), ("What colour is the square?", Some("images/100x75.png")), ("What is 2 + 2?", None)] {
        lengths.extend(check_against_sessions(&s, &s.prompt(q, image), &settings(Sampling::Greedy), q));
    }
    lengths.sort();
    lengths.dedup();
    assert!(lengths.len() > 2, "the streams should end at different steps: {lengths:?}");
}

#[test]
fn every_guided_row_of_a_sampled_sweep_draws_as_a_session_at_its_alpha() {
    let s = setup();
    let sampling = Sampling::Sample { temperature: 0.8, top_k: 20, top_p: 0.9, seed: 3 };
    for (q, image) in [("How many circles are in the picture?", Some("images/56x56.png")), ("What is 2 + 2?", None)] {
        check_against_sessions(&s, &s.prompt(q, image), &settings(sampling), q);
    }
}

#[test]
fn a_stream_that_ends_leaves_the_batch() {
    let s = setup();
    let prompt = s.prompt("How many circles are in the picture?", Some("images/56x56.png"));
    let mut sweep = s.sweep(&prompt, &settings(Sampling::Greedy), &ALPHAS).unwrap();
    let k = ALPHAS.len();
    assert_eq!(sweep.rows(), PerModel::new(1 + k, 1 + k, k), "base and RFT: own row and one per α; small: one per α");
    let mut seen = Vec::new();
    while !sweep.is_done() {
        sweep.step().unwrap();
        let open = |s: SweepStream| usize::from(sweep.stop(s).is_none());
        let guided: usize = (0..k).map(|i| open(SweepStream::Guided(i))).sum();
        let want = PerModel::new(open(SweepStream::Base) + guided, open(SweepStream::Rft) + guided, guided);
        assert_eq!(sweep.rows(), want, "each model decodes exactly the rows of streams still open");
        seen.push(sweep.rows().base);
    }
    seen.dedup();
    assert!(seen.len() > 2, "streams should have left the batch one after another: {seen:?}");
    assert_eq!(sweep.rows(), PerModel::new(0, 0, 0));
    assert!(matches!(sweep.stop(SweepStream::Guided(0)), Some(Stop::MaxNewTokens | Stop::StopString(_) | Stop::Eos)));
    // Another step of an ended sweep does nothing.
    sweep.step().unwrap();
}

#[test]
fn a_sweep_refuses_no_alpha_and_a_non_finite_one() {
    let s = setup();
    let prompt = s.prompt("What is 2 + 2?", None);
    let err = |alphas: &[f32]| s.sweep(&prompt, &settings(Sampling::Greedy), alphas).err().expect("refused").to_string();
    assert!(err(&[]).contains("at least one α"), "{}", err(&[]));
    let nan = err(&[0.5, f32::NAN]);
    assert!(nan.contains("finite") && nan.contains("NaN"), "{nan}");
}
