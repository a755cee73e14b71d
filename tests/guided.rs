//! ProxyThinker guided decoding against a reference loop written with transformers
//! (tests/fixtures/reference_guided.py): the base model (336 rows) guided by a pair with a
//! smaller vocabulary (320 rows), so the base is cut to the shared vocabulary. Then live α,
//! forced tokens, traces, the engine thread and bad input.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use candle_core::{DType, Device};
use common::*;
use proxythinker::engine::trio::TrioFiles;
use proxythinker::engine::{Command, Engine, Event, Record, Session, Settings, Stop, StreamKind, Trio};
use proxythinker::guidance::Sampling;
use proxythinker::models::PromptInput;
use proxythinker::processor::prepare_prompt;
use serde_json::Value;


struct Setup {
    files: TrioFiles,
    trio: Trio,
}

fn setup_with(rft: PathBuf, small: PathBuf) -> Setup {
    let files = TrioFiles::open(&tiny("qwen2_5_vl"), &rft, &small).unwrap_or_else(|e| panic!("{e}"));
    let trio = files.load(DType::F32, &Device::Cpu).unwrap();
    Setup { files, trio }
}

fn setup() -> Setup {
    setup_with(tiny("trio_rft"), tiny("trio_small"))
}

impl Setup {
    fn prompt(&self, question: &str, image: Option<&str>) -> PromptInput {
        let image = image.map(|i| proxythinker::processor::SourceImage::open(&tiny(i)).unwrap());
        prepare_prompt(&self.files.base.0, &self.files.base.1, question, image.as_ref(), false, &Device::Cpu)
            .unwrap()
            .input
    }

    fn session(&self, prompt: &PromptInput, alpha: f32, sampling: Sampling, n: usize) -> Session {
        let settings = Settings { alpha, sampling, max_new_tokens: n, stop_strings: vec![], stop_at_eos: false };
        Session::new(self.trio.clone(), self.files.base.1.clone(), prompt.clone(), settings, self.files.base.0.eos_token_ids.clone())
            .unwrap()
    }
}

fn expected() -> Value {
    read_json(&tiny("expected/guided.json"))
}

#[test]
fn guided_base_and_rft_streams_match_the_transformers_reference() {
    let s = setup();
    let exp = expected();
    let mut checked = 0;
    for case in exp["cases"].as_array().unwrap() {
        let prompt = s.prompt(case["prompt"].as_str().unwrap(), case["image"].as_str());
        assert_eq!(prompt.input_ids, u32s(&case["input_ids"]));
        let n = case["new_tokens"].as_u64().unwrap() as usize;
        for (alpha, want) in case["guided"].as_object().unwrap() {
            let mut session = s.session(&prompt, alpha.parse().unwrap(), Sampling::Greedy, n);
            assert_eq!(session.shared_vocab(), 320);
            session.run_to_end().unwrap();
            assert_eq!(session.tokens(StreamKind::Guided), &u32s(want)[..], "guided α={alpha} {}", case["prompt"]);
            assert_eq!(session.tokens(StreamKind::Base), &u32s(&case["base"])[..], "base alone");
            assert_eq!(session.tokens(StreamKind::Rft), &u32s(&case["rft"])[..], "rft alone");
            assert_eq!(session.stop(StreamKind::Guided), Some(&Stop::MaxNewTokens));
            checked += 1;
        }
    }
    assert_eq!(checked, 9);
}

#[test]
fn records_hold_the_measures_of_each_step() {
    let s = setup();
    let prompt = s.prompt("What is in the picture?", Some("images/56x56.png"));
    let mut session = s.session(&prompt, 1.0, Sampling::Greedy, 8);
    session.run_to_end().unwrap();
    let recs = session.guided_records();
    assert_eq!(recs.len(), 8);
    let mut flips = 0;
    for r in recs {
        assert_eq!(r.guided.top.len(), 10);
        assert_eq!(r.guided.top[0].token, r.token, "greedy picks the guided top candidate");
        assert!(r.guided.top.windows(2).all(|w| w[0].prob >= w[1].prob));
        assert!(r.kl_guided_base >= 0.0 && r.kl_rft_small >= 0.0 && r.js_guided_base >= 0.0);
        assert!(r.js_guided_base <= std::f32::consts::LN_2 + 1e-6);
        assert!(r.guided.entropy > 0.0 && r.guided.chosen_logprob <= 0.0);
        assert_eq!(r.flipped, r.base.top[0].token != r.token);
        assert_eq!(r.base_rank == 1, !r.flipped);
        flips += r.flipped as usize;
    }
    assert!(flips > 0, "α = 1 should flip some argmax on these random models");
    let base = session.stream_records(StreamKind::Base);
    assert_eq!(base.len(), 8);
    assert!(base.iter().all(|r| r.top[0].token == r.token && r.logprob <= 0.0));
}

#[test]
fn changing_alpha_live_equals_a_fresh_run_greedy_and_sampled() {
    let s = setup();
    let prompt = s.prompt("How many circles are there? Answer with a number.", Some("images/252x196.png"));
    let sampled = Sampling::Sample { temperature: 0.8, top_k: 20, top_p: 0.9, seed: 7 };
    let mut greedy_divergences = Vec::new();
    for sampling in [Sampling::Greedy, sampled] {
        for (from, to) in [(0.5f32, 2.0f32), (2.0, 1.0), (1.0, 1.0001), (0.6, 0.7), (0.7, 0.8), (0.5, 0.0)] {
            let mut live = s.session(&prompt, from, sampling, 14);
            live.run_to_end().unwrap();
            let before = live.tokens(StreamKind::Guided).to_vec();
            let diverged = live.set_alpha(to).unwrap();
            if sampling == Sampling::Greedy {
                greedy_divergences.push(diverged);
            }
            live.run_to_end().unwrap();
            let mut fresh = s.session(&prompt, to, sampling, 14);
            fresh.run_to_end().unwrap();
            for kind in [StreamKind::Base, StreamKind::Rft, StreamKind::Guided] {
                assert_eq!(live.tokens(kind), fresh.tokens(kind), "{kind:?} {sampling:?} α {from} → {to}");
            }
            assert_eq!(live.guided_records(), fresh.guided_records(), "records after α {from} → {to}");
            assert_eq!(live.stream_records(StreamKind::Base), fresh.stream_records(StreamKind::Base));
            // The reported divergence is the first changed token.
            let first_change = before.iter().zip(fresh.tokens(StreamKind::Guided)).position(|(a, b)| a != b);
            assert_eq!(diverged, first_change, "{sampling:?} α {from} → {to}");
        }
    }
    // The pairs exercise a rewind to the prompt, rewinds mid-stream, and no rewind.
    for want in [Some(0), Some(1), Some(2), Some(3), None] {
        assert!(greedy_divergences.contains(&want), "{want:?} not in {greedy_divergences:?}");
    }
}

#[test]
fn forcing_a_candidate_equals_a_fresh_run_on_the_forced_prefix() {
    let s = setup();
    let prompt = s.prompt("What is in the picture?", Some("images/56x56.png"));
    let mut live = s.session(&prompt, 0.5, Sampling::Greedy, 12);
    live.run_to_end().unwrap();
    let original = live.tokens(StreamKind::Guided).to_vec();
    let alt = live.guided_records()[4].guided.top[3].token; // the 4th candidate at step 4
    assert_ne!(alt, original[4]);
    live.force(4, alt).unwrap();
    live.run_to_end().unwrap();
    let forced = live.tokens(StreamKind::Guided).to_vec();
    assert_eq!(&forced[..4], &original[..4]);
    assert_eq!(forced[4], alt);
    assert!(live.guided_records()[4].forced);

    // Fresh session forced at the frontier.
    let mut fresh = s.session(&prompt, 0.5, Sampling::Greedy, 12);
    for _ in 0..4 {
        fresh.step().unwrap();
    }
    fresh.force(4, alt).unwrap();
    fresh.run_to_end().unwrap();
    assert_eq!(fresh.tokens(StreamKind::Guided), &forced[..]);
    assert_eq!(fresh.guided_records(), live.guided_records());

    // A fresh session whose prompt already holds the forced prefix continues the same way.
    let mut prefixed = prompt.clone();
    prefixed.input_ids.extend_from_slice(&forced[..5]);
    let mut p = s.session(&prefixed, 0.5, Sampling::Greedy, 12 - 5);
    p.run_to_end().unwrap();
    assert_eq!(p.tokens(StreamKind::Guided), &forced[5..]);

    assert!(live.force(40, 1).is_err(), "cannot force beyond the stream");
    assert!(live.force(0, 10_000).is_err(), "token outside the shared vocabulary");
}

#[test]
fn trace_round_trips() {
    let s = setup();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.jsonl");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_proxythinker"))
        .args(["run", "--base", tiny("qwen2_5_vl").to_str().unwrap(), "--rft", tiny("trio_rft").to_str().unwrap()])
        .args(["--small", tiny("trio_small").to_str().unwrap(), "--question", "What is in the picture?"])
        .args(["--image", tiny("images/56x56.png").to_str().unwrap(), "--alpha", "1", "--max-new-tokens", "6"])
        .args(["--ignore-eos", "--json", "--trace", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let trace = proxythinker::trace::read(&path).unwrap();
    assert_eq!(trace.header["alpha"], 1.0);
    assert_eq!(trace.header["version"], 1);
    let guided: Vec<u32> = trace.records.iter().filter_map(|r| match r { Record::Guided(g) => Some(g.token), _ => None }).collect();
    assert_eq!(guided, u32s(&json["guided"]["token_ids"]));
    assert_eq!(trace.records.len(), 18);
    // What was written is what a session records.
    let prompt = s.prompt("What is in the picture?", Some("images/56x56.png"));
    let mut session = s.session(&prompt, 1.0, Sampling::Greedy, 6);
    let records = session.run_to_end().unwrap();
    assert_eq!(trace.records, records);
    assert!(std::fs::read_dir(dir.path()).unwrap().count() == 1, "no temporary file left behind");
    // Not a trace: a clear error naming the line.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"type\":\"header\"}\n{\"oops\":1}\n").unwrap();
    let err = proxythinker::trace::read(&bad).unwrap_err().to_string();
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn the_engine_thread_streams_records_and_takes_commands() {
    let s = Arc::new(setup());
    let prompt = s.prompt("What is in the picture?", Some("images/56x56.png"));
    let (s2, p2) = (s.clone(), prompt.clone());
    let engine = Engine::spawn(move |alpha| {
        let settings = Settings { alpha: alpha.unwrap_or(0.5), sampling: Sampling::Greedy, max_new_tokens: 10, stop_strings: vec![], stop_at_eos: false };
        Session::new(s2.trio.clone(), s2.files.base.1.clone(), p2.clone(), settings, vec![])
    });
    let wait_finished = |engine: &Engine| -> Vec<u32> {
        let mut guided = Vec::new();
        loop {
            match engine.events.recv_timeout(std::time::Duration::from_secs(60)).expect("event") {
                Event::Record(Record::Guided(g)) => guided.push(g.token),
                Event::GuidedReset { kept } => guided = kept.iter().map(|g| g.token).collect(),
                Event::Finished => return guided,
                Event::Error(e) => panic!("{e}"),
                _ => {}
            }
        }
    };
    assert_eq!(wait_finished(&engine), u32s(&expected()["cases"][0]["guided"]["0.5"])[..10].to_vec());
    engine.commands.send(Command::SetAlpha(2.0)).unwrap();
    assert_eq!(wait_finished(&engine), u32s(&expected()["cases"][0]["guided"]["2.0"])[..10].to_vec());
    engine.commands.send(Command::SetAlpha(f32::NAN)).unwrap();
    match engine.events.recv_timeout(std::time::Duration::from_secs(60)).unwrap() {
        Event::Error(e) => assert!(e.contains("finite"), "{e}"),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn mismatched_tokenizers_are_refused() {
    let dir = small_with_a_mismatched_tokenizer();
    let err = TrioFiles::open(&tiny("qwen2_5_vl"), &tiny("trio_rft"), dir.path()).err().expect("refused").to_string();
    assert!(err.contains("--small") && err.contains("token id 200"), "{err}");
    assert_eq!(err.lines().count(), 1);
}

#[test]
fn nan_logits_stop_only_that_stream_and_keep_what_came_before() {
    // Poison the RFT model's embedding of the token its own stream emits at step 3: from then on
    // that row's logits are NaN. The base stream never sees the token.
    let exp = expected();
    let case = &exp["cases"][1];
    let rft_tokens = u32s(&case["rft"]);
    let poison = rft_tokens[3];
    assert!(!rft_tokens[..3].contains(&poison) && !u32s(&case["input_ids"]).contains(&poison));
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(tiny("trio_rft")).unwrap() {
        let e = entry.unwrap();
        std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    let path = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, view) in st.tensors() {
        let mut data = view.data().to_vec();
        if name == "model.embed_tokens.weight" {
            let hidden = view.shape()[1];
            for i in 0..hidden {
                let off = (poison as usize * hidden + i) * 4;
                data[off..off + 4].copy_from_slice(&f32::NAN.to_le_bytes());
            }
        }
        owned.push((name.to_string(), view.shape().to_vec(), data));
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = owned
        .iter()
        .map(|(n, s, d)| (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d).unwrap()))
        .collect();
    std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();

    let s = setup_with(dir.path().to_path_buf(), tiny("trio_small"));
    let prompt = s.prompt(case["prompt"].as_str().unwrap(), None);
    let mut session = s.session(&prompt, 0.5, Sampling::Greedy, 16);
    session.run_to_end().unwrap();
    assert_eq!(session.tokens(StreamKind::Rft), &rft_tokens[..4], "tokens before the NaN are kept");
    match session.stop(StreamKind::Rft) {
        Some(Stop::Error(msg)) => assert!(msg.contains("NaN"), "{msg}"),
        other => panic!("expected an error stop, got {other:?}"),
    }
    assert_eq!(session.tokens(StreamKind::Base), &u32s(&case["base"])[..], "the base stream is unaffected");
}
