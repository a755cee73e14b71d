//! ProxyThinker guided decoding against a reference loop written with transformers
//! (tests/fixtures/reference_guided.py): the base model (336 rows) guided by a pair with a
//! smaller vocabulary (320 rows), so the base is cut to the shared vocabulary. Then live α,
//! forced tokens, traces, the engine thread and bad input.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use candle_core::{DType, Device};
use common::*;
use proxythinker::placement::uniform;
use proxythinker::trio::{PerModel, TrioFiles};
use proxythinker::engine::{Command, Engine, Event, Record, Session, Settings, Stop, StreamKind, Trio};
use proxythinker::guidance::Sampling;
use proxythinker::models::PromptInput;
use proxythinker::prepare::prepare_prompt;
use serde_json::Value;


struct Setup {
    files: TrioFiles,
    trio: Trio,
}

fn setup_with(rft: PathBuf, small: PathBuf) -> Setup {
    let files = TrioFiles::open(PerModel::new(&tiny("qwen2_5_vl"), &rft, &small).map(|p| p.as_path())).unwrap_or_else(|e| panic!("{e}"));
    let trio = files.load(&uniform(DType::F32, &Device::Cpu)).unwrap();
    Setup { files, trio }
}

fn setup() -> Setup {
    setup_with(tiny("trio_rft"), tiny("trio_small"))
}

impl Setup {
    fn prompt(&self, question: &str, image: Option<&str>) -> PromptInput {
        let image = image.map(|i| proxythinker::processor::SourceImage::open(&tiny(i)).unwrap());
        prepare_prompt(&self.files.base().0, &self.files.base().1, question, image.as_ref(), false, &Device::Cpu)
            .unwrap()
            .input
    }

    fn session(&self, prompt: &PromptInput, alpha: f32, sampling: Sampling, n: usize) -> Session {
        let settings = Settings { alpha, sampling, max_new_tokens: n, stop_strings: vec![], stop_at_eos: false };
        Session::new(self.trio.clone(), self.files.base().1.clone(), prompt.clone(), settings, self.files.base().0.eos_token_ids.clone())
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

/// log-softmax in f64, written out here rather than taken from the crate, so that the checks
/// below do not share the code they check.
fn log_probs(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().map(|&x| x as f64).fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = logits.iter().map(|&x| (x as f64 - max).exp()).sum();
    logits.iter().map(|&x| x as f64 - max - sum.ln()).collect()
}

/// Σ p (log p − log q) over the tokens p gives mass to.
fn kl_by_formula(lp: &[f64], lq: &[f64]) -> f64 {
    lp.iter().zip(lq).filter(|(a, _)| a.exp() > 0.0).map(|(a, b)| a.exp() * (a - b)).sum()
}

/// ½ KL(p‖m) + ½ KL(q‖m) with m the average of p and q.
fn js_by_formula(lp: &[f64], lq: &[f64]) -> f64 {
    let lm: Vec<f64> = lp.iter().zip(lq).map(|(a, b)| (0.5 * (a.exp() + b.exp())).ln()).collect();
    0.5 * kl_by_formula(lp, &lm) + 0.5 * kl_by_formula(lq, &lm)
}

fn entropy_by_formula(lp: &[f64]) -> f64 {
    -lp.iter().filter(|a| a.exp() > 0.0).map(|a| a.exp() * a).sum::<f64>()
}

/// The first index of the largest value.
fn first_max(x: &[f64]) -> usize {
    (0..x.len()).fold(0, |best, i| if x[i] > x[best] { i } else { best })
}

/// `got` (a record's f32) agrees with `want` (f64 from the reference forwards) up to the f32
/// logits of another batch shape: about 1e-6 apart here, while swapping a divergence's arguments
/// moves it by 1e-2.
fn near(got: f32, want: f64) -> bool {
    (got as f64 - want).abs() <= 1e-5 + 2e-5 * want.abs()
}

#[test]
fn records_hold_the_measures_of_each_step() {
    let s = setup();
    let prompt = s.prompt("What is in the picture?", Some("images/56x56.png"));
    let alpha = 1.0f32;
    let mut session = s.session(&prompt, alpha, Sampling::Greedy, 8);
    session.run_to_end().unwrap();
    let recs = session.guided_records().to_vec();
    assert_eq!(recs.len(), 8);
    let v = session.shared_vocab();

    // The reference: each model on its own, one row, prefilled with the prompt and then fed the
    // recorded guided tokens (the session batches the guided row with the base-only and RFT-only
    // ones). Every measure is recomputed from those logits in f64 by its textbook formula.
    let models = [&s.trio.base, &s.trio.rft, &s.trio.small];
    let mut caches: Vec<_> = models.iter().map(|m| m.new_cache()).collect();
    let mut logits: Vec<Vec<f32>> = models
        .iter()
        .zip(caches.iter_mut())
        .map(|(m, c)| m.prefill(std::slice::from_ref(&prompt), c).unwrap().to_vec2::<f32>().unwrap().remove(0))
        .collect();
    let (mut flips, mut largest_kl) = (0, 0.0f64);
    for (step, r) in recs.iter().enumerate() {
        let [b, rft, small] = [&logits[0][..v], &logits[1][..v], &logits[2][..v]];
        let mixed: Vec<f32> = (0..v).map(|i| b[i] + alpha * (rft[i] - small[i])).collect();
        let [lb, lr, ls, lg] = [b, rft, small, &mixed[..]].map(log_probs);
        assert_eq!(r.step, step);
        assert_eq!(r.token as usize, first_max(&lg), "step {step}: greedy takes the mix's argmax");

        let want_kl_gb = kl_by_formula(&lg, &lb);
        let want_kl_rs = kl_by_formula(&lr, &ls);
        let want_js = js_by_formula(&lg, &lb);
        assert!(near(r.kl_guided_base, want_kl_gb), "step {step}: KL(guided‖base) {} vs {want_kl_gb}", r.kl_guided_base);
        assert!(near(r.kl_rft_small, want_kl_rs), "step {step}: KL(rft‖small) {} vs {want_kl_rs}", r.kl_rft_small);
        assert!(near(r.js_guided_base, want_js), "step {step}: JS(guided,base) {} vs {want_js}", r.js_guided_base);
        largest_kl = largest_kl.max(want_kl_gb).max(want_kl_rs);

        // Each model's distribution over the shared vocabulary: entropy, the chosen token's
        // log-probability, and the ten most probable tokens in order with their probabilities.
        for (name, d, lp) in [("base", &r.base, &lb), ("rft", &r.rft, &lr), ("small", &r.small, &ls), ("guided", &r.guided, &lg)] {
            assert!(near(d.entropy, entropy_by_formula(lp)), "step {step} {name}: entropy {} vs {}", d.entropy, entropy_by_formula(lp));
            assert!(near(d.chosen_logprob, lp[r.token as usize]), "step {step} {name}: log p of the token");
            let mut order: Vec<usize> = (0..v).collect();
            order.sort_by(|&i, &j| lp[j].total_cmp(&lp[i]).then(i.cmp(&j)));
            let want: Vec<u32> = order[..10].iter().map(|&i| i as u32).collect();
            assert_eq!(d.top.iter().map(|c| c.token).collect::<Vec<_>>(), want, "step {step} {name}: top 10");
            for c in &d.top {
                assert!(near(c.prob, lp[c.token as usize].exp()), "step {step} {name}: p of {}", c.token);
            }
        }
        // The chosen token's rank among the base's shared-vocabulary logits, ties to the lower id.
        let chosen = lb[r.token as usize];
        let want_rank = 1 + (0..v).filter(|&i| lb[i] > chosen || (lb[i] == chosen && i < r.token as usize)).count();
        assert_eq!(r.base_rank, want_rank, "step {step}: base rank");
        assert_eq!(r.flipped, first_max(&lg) != first_max(&lb), "step {step}: flip marker");
        flips += r.flipped as usize;

        // Why: each pooled token's logits and probabilities under the three models, its shift
        // α·(rft − small) and guided probability; the pool holds the chosen token first, each
        // model's five favourites, and the plausible tokens with the most extreme rft − small.
        let why = r.why.as_ref().expect("a fresh record says why");
        assert_eq!(why.rows[0].token, r.token, "step {step}: the chosen token first");
        let guided_rank = 1 + (0..v).filter(|&i| lg[i] > lg[r.token as usize] || (lg[i] == lg[r.token as usize] && i < r.token as usize)).count();
        assert_eq!(why.guided_rank, guided_rank, "step {step}: guided rank");
        for row in &why.rows {
            let i = row.token as usize;
            // The session batches rows, the reference does not: equal to rounding.
            for (got, want) in [(row.logits.base, b[i]), (row.logits.rft, rft[i]), (row.logits.small, small[i])] {
                assert!(near(got, want as f64), "step {step}: logit of {i} {got} vs {want}");
            }
            for (got, lp) in [(row.probs.base, &lb), (row.probs.rft, &lr), (row.probs.small, &ls), (row.guided_prob, &lg)] {
                assert!(near(got, lp[i].exp()), "step {step}: probability of {i}");
            }
            assert!(near(row.shift, (alpha * (rft[i] - small[i])) as f64), "step {step}: shift of {i}");
        }
        for lp in [&lb, &lr, &ls] {
            let mut order: Vec<usize> = (0..v).collect();
            order.sort_by(|&i, &j| lp[j].total_cmp(&lp[i]).then(i.cmp(&j)));
            assert!(order[..5].iter().all(|&i| why.rows.iter().any(|w| w.token as usize == i)), "step {step}: favourites pooled");
        }
        let plausible: Vec<usize> = (0..v).filter(|&i| lb[i].max(lr[i]).max(ls[i]) >= (1e-3f64).ln()).collect();
        let most = plausible.iter().copied().max_by(|&i, &j| (rft[i] - small[i]).total_cmp(&(rft[j] - small[j])).then(j.cmp(&i))).unwrap();
        assert_eq!(why.promoted(1).first().map(|w| w.token as usize), Some(most).filter(|&i| rft[i] - small[i] > 0.0), "step {step}: most promoted");

        let t = r.token;
        for ((m, c), l) in models.iter().zip(caches.iter_mut()).zip(logits.iter_mut()) {
            *l = m.step(&[t], c).unwrap().to_vec2::<f32>().unwrap().remove(0);
        }
    }
    assert!(flips > 0, "α = 1 should flip some argmax on these random models");
    // The token that ended each stream says why (here the budget of 8); no other token does.
    assert!(recs[..7].iter().all(|r| r.stop.is_none()) && recs[7].stop == Some(Stop::MaxNewTokens) || session.stop(StreamKind::Guided) == Some(&Stop::Eos));
    assert_eq!(recs.last().unwrap().stop.as_ref(), session.stop(StreamKind::Guided));
    for kind in [StreamKind::Base, StreamKind::Rft] {
        let own = session.stream_records(kind);
        assert_eq!(own.last().unwrap().stop.as_ref(), session.stop(kind), "{kind:?}");
        assert!(own[..own.len() - 1].iter().all(|r| r.stop.is_none()), "{kind:?}");
    }
    assert!(largest_kl > 0.05, "the random models disagree, so the divergences are not all near 0: {largest_kl}");

    // The base-only and RFT-only streams: each model on its own tokens, over its whole vocabulary
    // (they are not mixed, so nothing cuts them); what colours their panes is −log p and entropy.
    for (kind, model) in [(StreamKind::Base, &s.trio.base), (StreamKind::Rft, &s.trio.rft)] {
        let own = session.stream_records(kind);
        assert_eq!(own.len(), 8);
        let mut cache = model.new_cache();
        let mut l = model.prefill(std::slice::from_ref(&prompt), &mut cache).unwrap().to_vec2::<f32>().unwrap().remove(0);
        for (step, r) in own.iter().enumerate() {
            let lp = log_probs(&l);
            assert_eq!(r.token as usize, first_max(&lp), "{kind:?} step {step}: its own argmax");
            assert!(near(r.logprob, lp[r.token as usize]), "{kind:?} step {step}: log p {} vs {}", r.logprob, lp[r.token as usize]);
            assert!(near(r.entropy, entropy_by_formula(&lp)), "{kind:?} step {step}: entropy");
            assert!(near(r.top[0].prob, lp[r.token as usize].exp()), "{kind:?} step {step}: top probability");
            l = model.step(&[r.token], &mut cache).unwrap().to_vec2::<f32>().unwrap().remove(0);
        }
    }
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
    assert_eq!(trace.header.alpha, 1.0);
    assert_eq!(trace.header.written_by, "proxythinker run");
    let guided: Vec<u32> = trace.records.iter().filter_map(|r| match r { Record::Guided(g) => Some(g.token), _ => None }).collect();
    assert_eq!(guided, u32s(&json["guided"]["token_ids"]));
    assert_eq!(trace.records.len(), 18);
    // What was written is what a session records.
    let prompt = s.prompt("What is in the picture?", Some("images/56x56.png"));
    let mut session = s.session(&prompt, 1.0, Sampling::Greedy, 6);
    let records = session.run_to_end().unwrap();
    assert_eq!(trace.records, records);
    assert!(std::fs::read_dir(dir.path()).unwrap().count() == 1, "no temporary file left behind");
    // Version 3 carries each guided step's why; a version 2 trace (no `why`) still reads, without it.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.lines().next().unwrap().contains("\"version\":3"), "{text}");
    let v2: Vec<String> = text
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            if v["type"] == "header" {
                v["version"] = 2.into();
            }
            v.as_object_mut().unwrap().remove("why");
            v.to_string()
        })
        .collect();
    let old = dir.path().join("v2.jsonl");
    std::fs::write(&old, v2.join("\n") + "\n").unwrap();
    let back = proxythinker::trace::read(&old).unwrap();
    let without: Vec<Record> = records
        .iter()
        .cloned()
        .map(|r| match r {
            Record::Guided(g) => Record::Guided(proxythinker::engine::GuidedRecord { why: None, ..g }),
            other => other,
        })
        .collect();
    assert_eq!(back.records, without);
    assert!(records.iter().all(|r| !matches!(r, Record::Guided(g) if g.why.is_none())));
    std::fs::remove_file(&old).unwrap();
    // Not a trace: a clear error naming the line.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"type\":\"header\",\"version\":1}\n{\"oops\":1}\n").unwrap();
    let err = proxythinker::trace::read(&bad).unwrap_err().to_string();
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn the_engine_thread_streams_records_and_takes_commands() {
    let s = Arc::new(setup());
    let prompt = s.prompt("What is in the picture?", Some("images/56x56.png"));
    let (s2, p2) = (s.clone(), prompt.clone());
    let engine = Engine::spawn(move || {
        let settings = Settings { alpha: 0.5, sampling: Sampling::Greedy, max_new_tokens: 10, stop_strings: vec![], stop_at_eos: false };
        Session::new(s2.trio.clone(), s2.files.base().1.clone(), p2.clone(), settings, vec![])
    });
    // The guided tokens once the engine says `Finished`, and the resets (α, changed from, kept) before it.
    type Reset = (f32, Option<usize>, usize);
    let wait_finished = |engine: &Engine| -> (Vec<u32>, Vec<Reset>) {
        let (mut guided, mut resets) = (Vec::new(), Vec::new());
        loop {
            match engine.events.recv_timeout(std::time::Duration::from_secs(60)).expect("event") {
                Event::Record(Record::Guided(g)) => guided.push(g.token),
                Event::GuidedReset { alpha, changed_from, kept } => {
                    resets.push((alpha, changed_from, kept.len()));
                    guided = kept.iter().map(|g| g.token).collect();
                }
                Event::Finished => return (guided, resets),
                Event::Error(e) => panic!("{e}"),
                _ => {}
            }
        }
    };
    let at_half = u32s(&expected()["cases"][0]["guided"]["0.5"])[..10].to_vec();
    let at_two = u32s(&expected()["cases"][0]["guided"]["2.0"])[..10].to_vec();
    assert_eq!(wait_finished(&engine), (at_half.clone(), vec![]));
    // A new α: the reset says which α is in force and from which step the tokens changed, and
    // `Finished` comes again once the re-decoding has ended.
    engine.commands.send(Command::SetAlpha(2.0)).unwrap();
    let first_change = at_half.iter().zip(&at_two).position(|(a, b)| a != b);
    assert!(first_change.is_some(), "the fixture's streams at α 0.5 and 2.0 differ");
    let kept = first_change.unwrap_or(10);
    assert_eq!(wait_finished(&engine), (at_two.clone(), vec![(2.0, first_change, kept)]));
    // The same α again keeps every token: the session is still finished, and says so.
    engine.commands.send(Command::SetAlpha(2.0)).unwrap();
    assert_eq!(wait_finished(&engine), (at_two.clone(), vec![(2.0, None, 10)]));
    // A forced token changes the stream from its step.
    let other = (0..300).find(|t| *t != at_two[3]).unwrap_or(0);
    engine.commands.send(Command::Force { step: 3, token: other }).unwrap();
    let (forced, resets) = wait_finished(&engine);
    assert_eq!(resets, vec![(2.0, Some(3), 3)]);
    assert_eq!((&forced[..3], forced[3], forced.len()), (&at_two[..3], other, 10));
    // A refused α is an error; the α in force stays.
    engine.commands.send(Command::SetAlpha(f32::NAN)).unwrap();
    match engine.events.recv_timeout(std::time::Duration::from_secs(60)).unwrap() {
        Event::Error(e) => assert!(e.contains("finite"), "{e}"),
        other => panic!("expected an error, got {other:?}"),
    }
    engine.commands.send(Command::SetAlpha(2.0)).unwrap();
    match engine.events.recv_timeout(std::time::Duration::from_secs(60)).unwrap() {
        Event::GuidedReset { alpha, changed_from, .. } => assert_eq!((alpha, changed_from), (2.0, None)),
        other => panic!("expected a reset, got {other:?}"),
    }
}

#[test]
fn mismatched_tokenizers_are_refused() {
    let dir = small_with_a_mismatched_tokenizer();
    let (base, rft) = (tiny("qwen2_5_vl"), tiny("trio_rft"));
    let err = TrioFiles::open(PerModel::new(base.as_path(), rft.as_path(), dir.path())).err().expect("refused").to_string();
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

#[test]
fn lazy_alpha_decides_first_then_refreshes_nearest_first_and_ends_equal_to_a_fresh_run() {
    let s = setup();
    let prompt = s.prompt("How many circles are there? Answer with a number.", Some("images/252x196.png"));
    let sampled = Sampling::Sample { temperature: 0.8, top_k: 20, top_p: 0.9, seed: 7 };
    for sampling in [Sampling::Greedy, sampled] {
        for (from, to) in [(0.5f32, 2.0f32), (1.0, 1.0001), (0.5, 0.0)] {
            let mut eager = s.session(&prompt, from, sampling, 14);
            eager.run_to_end().unwrap();
            let mut live = s.session(&prompt, from, sampling, 14);
            live.run_to_end().unwrap();
            let before = live.guided_records().to_vec();
            let diverged = live.set_alpha_lazy(to).unwrap();
            assert_eq!(diverged, eager.set_alpha(to).unwrap(), "{sampling:?} α {from} → {to}: the same first change");
            let kept = diverged.unwrap_or(14);
            assert_eq!(live.guided_records().len(), kept);
            // The kept records are marked and still hold the old α's measures.
            assert_eq!(live.stale_count(), kept);
            assert!(live.guided_records().iter().zip(&before).all(|(r, b)| r.stale && r.guided == b.guided));
            // Nearest first: three records around step 5 (or the stream's end).
            let near = 5.min(kept.saturating_sub(1));
            let fresh = live.refresh_stale(near, 3);
            let steps: Vec<usize> = fresh.iter().map(|r| r.step).collect();
            let mut want: Vec<usize> = (0..kept).collect();
            want.sort_by_key(|&i| (i.abs_diff(near), i));
            want.truncate(3);
            want.sort();
            assert_eq!(steps, want, "{sampling:?} α {from} → {to}");
            assert!(fresh.iter().all(|r| !r.stale));
            assert_eq!(live.stale_count(), kept - fresh.len());
            for r in &fresh {
                assert_eq!(r, &eager.guided_records()[r.step], "a refreshed record is the eager one");
            }
            // Decoding goes on with stale records left; refreshing the rest gives a fresh run's.
            live.run_to_end().unwrap();
            live.refresh_stale(0, usize::MAX);
            assert_eq!(live.stale_count(), 0);
            let mut fresh_run = s.session(&prompt, to, sampling, 14);
            fresh_run.run_to_end().unwrap();
            assert_eq!(live.guided_records(), fresh_run.guided_records(), "{sampling:?} α {from} → {to}");
            // A fresh record's trace line does not carry the marker.
            assert!(!serde_json::to_string(&live.guided_records()[0]).unwrap().contains("stale"));
        }
    }
}

#[test]
fn the_engine_re_measures_kept_records_after_an_alpha_change_and_they_end_as_a_fresh_run() {
    let s = Arc::new(setup());
    let prompt = s.prompt("What is in the picture?", Some("images/56x56.png"));
    let (s2, p2) = (s.clone(), prompt.clone());
    let engine = Engine::spawn(move || {
        let settings = Settings { alpha: 0.5, sampling: Sampling::Greedy, max_new_tokens: 10, stop_strings: vec![], stop_at_eos: false };
        Session::new(s2.trio.clone(), s2.files.base().1.clone(), p2.clone(), settings, vec![])
    });
    // The records as the UI keeps them: kept on a reset, replaced when refreshed.
    let mut records: Vec<proxythinker::engine::GuidedRecord> = Vec::new();
    let mut refreshed = 0;
    let mut apply = |ev: Event, records: &mut Vec<proxythinker::engine::GuidedRecord>| -> bool {
        match ev {
            Event::Record(Record::Guided(g)) => records.push(g),
            Event::GuidedReset { kept, .. } => *records = kept,
            Event::Refreshed(fresh) => {
                for r in fresh {
                    refreshed += 1;
                    let step = r.step;
                    records[step] = r;
                }
            }
            Event::Finished => return true,
            Event::Error(e) => panic!("{e}"),
            _ => {}
        }
        false
    };
    while !apply(engine.events.recv_timeout(std::time::Duration::from_secs(60)).unwrap(), &mut records) {}
    // 0.5 → 0.5001 keeps every token (the fixture's stream does not change), so the session is
    // finished at once and the records are re-measured after `Finished`.
    engine.commands.send(Command::SetAlpha(0.5001)).unwrap();
    let mut finished = false;
    while !finished || records.iter().any(|r| r.stale) {
        finished |= apply(engine.events.recv_timeout(std::time::Duration::from_secs(60)).unwrap(), &mut records);
    }
    let mut fresh = s.session(&prompt, 0.5001, Sampling::Greedy, 10);
    fresh.run_to_end().unwrap();
    assert_eq!(records.iter().map(|r| r.token).collect::<Vec<_>>(), fresh.tokens(StreamKind::Guided));
    assert_eq!(records, fresh.guided_records());
    assert_eq!(refreshed, 10, "every kept record was re-measured once");
}

/// The UI driven by a real engine: every event through `update`, every command the keys ask
/// for sent to the engine, until the state the header shows has settled.
fn settle(app: &mut proxythinker::tui::app::App, engine: &Engine) {
    use proxythinker::tui::app::RunState;
    use proxythinker::tui::update::{update, Msg};
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !(app.run == RunState::Finished && app.pending_alpha.is_none() && app.guided.iter().all(|r| !r.stale)) {
        assert!(std::time::Instant::now() < deadline, "the session did not settle: {:?}", app.run);
        if let Ok(ev) = engine.events.recv_timeout(std::time::Duration::from_millis(200)) {
            update(app, Msg::Engine(ev));
        }
    }
}

#[test]
fn the_header_says_finished_after_alpha_changes_on_a_finished_session() {
    use proxythinker::tui::app::RunState;
    use proxythinker::tui::update::{update, Effect, Msg};
    use proxythinker::tui::view::{buffer_text, header};
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    let s = Arc::new(setup());
    let prompt = s.prompt("What is in the picture?", Some("images/56x56.png"));
    let (s2, p2) = (s.clone(), prompt.clone());
    let engine = Engine::spawn(move || {
        let settings = Settings { alpha: 0.5, sampling: Sampling::Greedy, max_new_tokens: 12, stop_strings: vec![], stop_at_eos: false };
        Session::new(s2.trio.clone(), s2.files.base().1.clone(), p2.clone(), settings, vec![])
    });
    let mut app = proxythinker::tui::synthetic::app(0, (120, 40));
    app.alpha = 0.5;
    settle(&mut app, &engine);
    let header_text = |app: &proxythinker::tui::app::App| {
        let mut t = ratatui::Terminal::new(ratatui::backend::TestBackend::new(120, 3)).unwrap();
        t.draw(|f| f.render_widget(header::Header(app), f.area())).unwrap();
        buffer_text(t.backend().buffer())
    };
    let press = |app: &mut proxythinker::tui::app::App, code: KeyCode| {
        for fx in update(app, Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))) {
            if let Effect::SendCommand(c) = fx {
                engine.commands.send(c).unwrap();
            }
        }
    };
    // `}`, an exact α typed with `a` that changes tokens, and the same α again (every token
    // kept, nothing to decode): each time the header ends up saying "finished", never "running".
    let typed = |text: &str| text.chars().map(|c| if c == '\n' { KeyCode::Enter } else { KeyCode::Char(c) }).collect::<Vec<_>>();
    let mut changed = false;
    for keys in [vec![KeyCode::Char('}')], typed("a3\n"), typed("a3\n")] {
        let before: Vec<u32> = app.guided.iter().map(|r| r.token).collect();
        for k in keys {
            press(&mut app, k);
        }
        settle(&mut app, &engine);
        assert_eq!(app.run, RunState::Finished);
        let shown = header_text(&app);
        assert!(shown.contains("finished") && !shown.contains("running") && !shown.contains("re-decoding"), "{shown}");
        assert_eq!(app.guided.len(), 12, "{shown}");
        changed |= before != app.guided.iter().map(|r| r.token).collect::<Vec<_>>();
    }
    assert_eq!(app.alpha, 3.0);
    assert!(changed, "α = 3 should change some guided token on these random models");
}
