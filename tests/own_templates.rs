//! `--own-templates`: each model of a trio renders the question with its own chat template. On
//! the tiny Qwen3-VL trio with the real templates (tests/fixtures/templates/): base and small
//! read the Instruct template, the RFT model the Thinking one, whose prompt is longer (it opens
//! with `<think>`). The prompts, each model's own greedy stream and the guided stream equal a
//! reference loop written with transformers (tests/fixtures/qwen3_vl_templates.py); the streams
//! advance in lockstep, live α equals a fresh run, an α sweep equals a session at each α, and by default (the paper's way) the base
//! model's template serves all three.

mod common;

use std::path::Path;
use std::process::Command;

use candle_core::{DType, Device};
use common::*;
use proxythinker::engine::{Session, Settings, StreamKind};
use proxythinker::guidance::Sampling;
use proxythinker::models::PromptInput;
use proxythinker::placement::uniform;
use proxythinker::prepare::prepare_prompt;
use proxythinker::processor::SourceImage;
use proxythinker::trio::{PerModel, Trio, TrioFiles};
use serde_json::Value;

/// The tiny Qwen3-VL trio, each a copy with the named template as its chat_template.jinja.
fn trio_dirs() -> (tempfile::TempDir, PerModel<std::path::PathBuf>) {
    let root = tempfile::tempdir().unwrap();
    let dirs = PerModel::new(("base", "qwen3_vl_untied", "Instruct"), ("rft", "qwen3_vl", "Thinking"), ("small", "qwen3_vl_small", "Instruct"))
        .map(|(role, src, template)| {
            let dir = root.path().join(role);
            std::fs::create_dir(&dir).unwrap();
            for e in std::fs::read_dir(tiny(src)).unwrap() {
                let e = e.unwrap();
                std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
            }
            let text = std::fs::read_to_string(fixtures().join(format!("templates/Qwen3-VL-{template}.chat_template.jinja"))).unwrap();
            std::fs::write(dir.join("chat_template.jinja"), text).unwrap();
            dir
        });
    (root, dirs)
}

struct Setup {
    _root: tempfile::TempDir,
    dirs: PerModel<std::path::PathBuf>,
    files: TrioFiles,
    trio: Trio,
}

fn setup() -> Setup {
    let (root, dirs) = trio_dirs();
    let files = TrioFiles::open(dirs.as_ref().map(|p| p.as_path())).unwrap_or_else(|e| panic!("{e}"));
    let trio = files.load(&uniform(DType::F32, &Device::Cpu)).unwrap_or_else(|e| panic!("{e}"));
    Setup { _root: root, dirs, files, trio }
}

impl Setup {
    /// Each model's prompt, rendered with its own template.
    fn prompts(&self, question: &str, image: Option<&str>) -> PerModel<PromptInput> {
        let image = image.map(|i| SourceImage::open(&tiny(i)).unwrap());
        self.files.0.as_ref().map(|(c, t)| prepare_prompt(c, t, question, image.as_ref(), false, &Device::Cpu).unwrap().input)
    }

    fn session(&self, prompts: &PerModel<PromptInput>, alpha: f32, n: usize) -> Session {
        let settings = Settings { alpha, sampling: Sampling::Greedy, max_new_tokens: n, stop_strings: vec![], stop_at_eos: false };
        let (checkpoint, tokenizer) = self.files.base();
        Session::with_prompts(self.trio.clone(), tokenizer.clone(), prompts.clone(), settings, checkpoint.eos_token_ids.clone()).unwrap()
    }
}

#[test]
fn own_templates_match_the_transformers_reference_in_lockstep() {
    let s = setup();
    let exp = read_json(&tiny("expected/qwen3_vl_own_templates.json"));
    let mut checked = 0;
    for case in exp["cases"].as_array().unwrap() {
        let prompts = s.prompts(case["question"].as_str().unwrap(), case["image"].as_str());
        let ids = &case["input_ids"];
        assert_eq!(prompts.base.input_ids, u32s(&ids["base"]));
        assert_eq!(prompts.rft.input_ids, u32s(&ids["rft"]));
        assert_eq!(prompts.small.input_ids, u32s(&ids["small"]));
        // The Thinking template's prompt is longer: `<think>\n` after the assistant's turn opens.
        assert!(prompts.rft.input_ids.len() > prompts.base.input_ids.len());
        assert_eq!(prompts.base.input_ids, prompts.small.input_ids);
        let n = case["new_tokens"].as_u64().unwrap() as usize;
        for (alpha, want) in case["guided"].as_object().unwrap() {
            let mut session = s.session(&prompts, alpha.parse().unwrap(), n);
            let what = format!("α={alpha} image={}", case["image"]);
            // Lockstep: after every step, each stream has one token more.
            for step in 1..=n {
                session.step().unwrap();
                for kind in [StreamKind::Base, StreamKind::Rft, StreamKind::Guided] {
                    assert_eq!(session.tokens(kind).len(), step, "{kind:?} {what}");
                }
            }
            assert_eq!(session.tokens(StreamKind::Guided), &u32s(want)[..], "guided {what}");
            assert_eq!(session.tokens(StreamKind::Base), &u32s(&case["base"])[..], "base alone {what}");
            assert_eq!(session.tokens(StreamKind::Rft), &u32s(&case["rft"])[..], "rft alone with its own prompt {what}");
            checked += 1;
        }
    }
    assert_eq!(checked, 6);
}

#[test]
fn with_own_templates_live_alpha_equals_a_fresh_run() {
    let s = setup();
    for image in [Some("images/56x56.png"), None] {
        let prompts = s.prompts("What is in the picture?", image);
        // 0.5 and 1 part after the first token: the change re-decodes from there, each cache cut
        // back to its own prompt's length.
        for (from, to) in [(0.5f32, 1.0f32), (1.0, 0.5), (2.0, 0.5), (0.5, 0.5)] {
            let mut live = s.session(&prompts, from, 12);
            live.run_to_end().unwrap();
            live.set_alpha(to).unwrap();
            live.run_to_end().unwrap();
            let mut fresh = s.session(&prompts, to, 12);
            fresh.run_to_end().unwrap();
            for kind in [StreamKind::Base, StreamKind::Rft, StreamKind::Guided] {
                assert_eq!(live.tokens(kind), fresh.tokens(kind), "{kind:?} α {from} → {to} image {image:?}");
            }
            assert_eq!(live.guided_records(), fresh.guided_records(), "records α {from} → {to}");
        }
    }
}

fn bin(config: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_proxythinker"));
    c.env("PROXYTHINKER_CONFIG", config);
    c
}

fn run_json(config: &Path, dirs: &PerModel<std::path::PathBuf>, extra: &[&str]) -> Value {
    let mut args = vec!["run", "--json", "--ignore-eos", "--max-new-tokens", "12", "--question", "How many circles are there?"];
    let (b, r, sm) = (dirs.base.to_str().unwrap(), dirs.rft.to_str().unwrap(), dirs.small.to_str().unwrap());
    args.extend(["--base", b, "--rft", r, "--small", sm]);
    args.extend(extra);
    let out = bin(config).args(&args).output().unwrap();
    serde_json::from_str(&ok(&out)).unwrap()
}

#[test]
fn run_takes_own_templates_from_the_flag_or_the_config_file_and_defaults_to_the_base_template() {
    let s = setup();
    let exp = read_json(&tiny("expected/qwen3_vl_own_templates.json"));
    let case = &exp["cases"][1];
    assert_eq!(case["image"], Value::Null);
    let lengths = |v: &Value| ["base", "rft", "small"].map(|m| v["prompt_tokens_by_model"][m].as_u64().unwrap() as usize);
    let want = ["base", "rft", "small"].map(|m| case["input_ids"][m].as_array().unwrap().len());

    let config_dir = tempfile::tempdir().unwrap();
    let none = config_dir.path().join("none.toml");
    let v = run_json(&none, &s.dirs, &["--own-templates"]);
    assert_eq!(v["own_templates"], true);
    assert_eq!(lengths(&v), want);
    assert_eq!(u32s(&v["guided"]["token_ids"]), u32s(&case["guided"]["0.5"]));
    assert_eq!(u32s(&v["rft"]["token_ids"]), u32s(&case["rft"]));

    let file = config_dir.path().join("own.toml");
    std::fs::write(&file, "own_templates = true\n").unwrap();
    let v = run_json(&file, &s.dirs, &[]);
    assert_eq!((v["own_templates"].as_bool(), lengths(&v)), (Some(true), want));

    // The paper's way: the base model's (Instruct) template for all three.
    let v = run_json(&none, &s.dirs, &[]);
    assert_eq!(v["own_templates"], false);
    assert_eq!(lengths(&v), [want[0]; 3]);
    assert_ne!(u32s(&v["rft"]["token_ids"]), u32s(&case["rft"]), "the rft model read the base model's prompt");

    // `config` says where the setting came from.
    let out = bin(&file).args(["config", "--json"]).output().unwrap();
    let c: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(c["settings"]["own_templates"]["value"], true);
    assert!(c["settings"]["own_templates"]["from"].as_str().unwrap().contains("own.toml"), "{c}");
}

#[test]
fn bench_refuses_own_templates_in_one_line() {
    let s = setup();
    let none = tempfile::tempdir().unwrap();
    let (b, r, sm) = (s.dirs.base.to_str().unwrap(), s.dirs.rft.to_str().unwrap(), s.dirs.small.to_str().unwrap());
    let out = bin(&none.path().join("none.toml")).args(["bench", "--steps", "2", "--own-templates", "--base", b, "--rft", r, "--small", sm]).output().unwrap();
    assert!(one_line_error(&out).contains("drop --own-templates"));
}

#[test]
fn a_trace_of_an_own_templates_run_records_every_model_s_prompt() {
    let s = setup();
    let exp = read_json(&tiny("expected/qwen3_vl_own_templates.json"));
    let case = &exp["cases"][1];
    let dir = tempfile::tempdir().unwrap();
    let none = dir.path().join("none.toml");
    let trace = dir.path().join("own.jsonl");
    run_json(&none, &s.dirs, &["--own-templates", "--trace", trace.to_str().unwrap()]);
    let header = proxythinker::trace::read(&trace).unwrap().header;
    assert_eq!(header.input_ids, u32s(&case["input_ids"]["base"]));
    let own = header.own_prompts.expect("the rft and small prompts are in the header");
    assert_eq!(own.rft.input_ids, u32s(&case["input_ids"]["rft"]));
    assert_eq!(own.small.input_ids, u32s(&case["input_ids"]["small"]));
    // The Thinking model's own template opens its reasoning; the base (Instruct) one does not.
    assert!(own.rft.text.ends_with("<|im_start|>assistant\n<think>\n"), "{:?}", own.rft.text);
    assert!(!header.prompt.contains("<think>"), "{:?}", header.prompt);

    // One prompt for all three: nothing more in the header.
    let plain = dir.path().join("plain.jsonl");
    run_json(&none, &s.dirs, &["--trace", plain.to_str().unwrap()]);
    let text = std::fs::read_to_string(&plain).unwrap();
    assert!(!text.lines().next().unwrap().contains("own_prompts"));
    assert!(proxythinker::trace::read(&plain).unwrap().header.own_prompts.is_none());
}

#[test]
fn with_own_templates_the_thinking_model_s_stream_opens_inside_its_think_segment() {
    let s = setup();
    let own = s.prompts("How many circles are there?", None);
    let session = s.session(&own, 0.5, 4);
    let opens = session.opens_in_think();
    assert_eq!((opens.base, opens.rft), (false, true), "the Instruct base opens none; the Thinking rft's template does");
    // The paper's way: the base model's template for all three, no segment opened.
    let one = PerModel::new(own.base.clone(), own.base.clone(), own.base.clone());
    let opens = s.session(&one, 0.5, 4).opens_in_think();
    assert_eq!((opens.base, opens.rft, opens.small), (false, false, false));
}

fn json<T: serde::Serialize>(x: &T) -> Value {
    serde_json::to_value(x).unwrap()
}

#[test]
fn an_alpha_sweep_over_prompts_of_different_lengths_gives_a_session_at_each_alpha() {
    use proxythinker::engine::{Sweep, SweepStream};
    let s = setup();
    let prompts = s.prompts("How many circles are there?", Some("images/56x56.png"));
    assert_ne!(prompts.base.input_ids.len(), prompts.rft.input_ids.len());
    let alphas = [0.5f32, 1.0, 2.0];
    let (checkpoint, tokenizer) = s.files.base();
    let settings = Settings { alpha: 0.0, sampling: Sampling::Greedy, max_new_tokens: 8, stop_strings: vec![], stop_at_eos: false };
    let mut sweep = Sweep::new(s.trio.clone(), tokenizer.clone(), prompts.clone(), settings, &alphas, checkpoint.eos_token_ids.clone()).unwrap();
    sweep.run_to_end().unwrap();
    for (i, &alpha) in alphas.iter().enumerate() {
        let mut session = s.session(&prompts, alpha, 8);
        session.run_to_end().unwrap();
        assert_eq!(sweep.tokens(SweepStream::Guided(i)), session.tokens(StreamKind::Guided), "α={alpha}");
        assert_json_near(&json(&sweep.guided_records(i)), &json(&session.guided_records()), &format!("α={alpha} guided"));
        assert_eq!(sweep.tokens(SweepStream::Rft), session.tokens(StreamKind::Rft), "rft alone with its own prompt");
        assert_json_near(&json(&sweep.stream_records(SweepStream::Base)), &json(&session.stream_records(StreamKind::Base)), "base");
        assert_json_near(&json(&sweep.stream_records(SweepStream::Rft)), &json(&session.stream_records(StreamKind::Rft)), "rft");
    }
}
