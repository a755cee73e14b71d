//! The one session plan that `run`, `bench` and the UI start their sessions from: the same bad
//! input gives every front end the same one-line error; one typed trace header, written by `run
//! --trace` and the UI's export alike and read back by replay (version 1 still read); stop
//! strings and ignore-eos resolved through the config file like every other decoding setting;
//! and the module layering that keeps front ends above the plan and the plan above the engine.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use proxythinker::config::{resolve_with, Loaded};
use proxythinker::engine::Record;
use proxythinker::plan::{Inputs, SessionRequest};
use proxythinker::trio::PerModel;
use proxythinker::tui::trace_io;
use serde_json::Value;

fn dir(name: &str) -> String {
    tiny(name).to_str().unwrap().to_string()
}

/// The binary with no config file (unless `config` names one) and real free memory.
fn bin(config: Option<&Path>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_proxythinker"));
    let none = std::env::temp_dir().join("proxythinker-tests-no-config.toml");
    c.env("PROXYTHINKER_CONFIG", config.unwrap_or(&none)).env_remove("PROXYTHINKER_FREE_MEMORY_BYTES");
    c
}

fn trio_args() -> Vec<String> {
    ["--base", &dir("qwen2_5_vl"), "--rft", &dir("trio_rft"), "--small", &dir("trio_small")].map(String::from).to_vec()
}

fn stderr_line(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "exit status 2 expected; stderr: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr.trim_end().to_string()
}

#[test]
fn run_bench_and_the_ui_refuse_the_same_bad_input_with_the_same_line() {
    let mismatched = small_with_a_mismatched_tokenizer();
    let missing = std::env::temp_dir().join("proxythinker-tests-no-such-model");
    // (case, the flags that replace or extend the trio, a needle of the expected line, free memory)
    let cases: Vec<(&str, Vec<String>, &str, Option<&str>)> = vec![
        ("empty question", vec!["--question".into(), "  ".into()], "the question is empty", None),
        ("zero temperature", vec!["--temperature".into(), "0".into()], "--temperature must be a positive number", None),
        ("top-p out of range", vec!["--temperature".into(), "1".into(), "--top-p".into(), "1.5".into()], "--top-p must be in (0, 1]", None),
        ("top-k while greedy", vec!["--top-k".into(), "5".into()], "--top-k applies to sampling", None),
        ("alpha not finite", vec!["--alpha".into(), "inf".into()], "--alpha must be a finite number", None),
        ("empty stop string", vec!["--stop".into(), String::new()], "stop string 1", None),
        ("no CUDA in this build", vec!["--rft-device".into(), "cuda:0".into()], "--rft-device cuda:0: this build has no CUDA support", None),
        ("model missing", vec!["--small".into(), missing.to_str().unwrap().into()], "model directory not found", None),
        ("mismatched tokenizer", vec!["--small".into(), mismatched.path().to_str().unwrap().into()], "token id 200", None),
        ("image missing", vec!["--image".into(), "/nonexistent/picture.png".into()], "/nonexistent/picture.png", None),
        ("does not fit", vec![], "not enough memory on cpu", Some("cpu:12345")),
    ];
    for (case, flags, needle, free) in cases {
        let mut lines = BTreeMap::new();
        for front in ["run", "bench", "tui"] {
            let mut args: Vec<String> = vec![front.into()];
            args.extend(trio_args());
            // One question and one budget for all three, so that even the figures agree.
            args.extend(["--question".into(), "What is in the picture?".into()]);
            if front == "bench" {
                args.extend(["--steps".into(), "512".into()]);
            }
            // The case's flags replace the same flags above (clap refuses a flag given twice).
            for pair in flags.chunks(2) {
                match args.iter().position(|a| *a == pair[0]) {
                    Some(i) if pair.len() == 2 && !pair[1].starts_with("--") => args[i + 1] = pair[1].clone(),
                    _ => args.extend(pair.iter().cloned()),
                }
            }
            let mut cmd = bin(None);
            if let Some(f) = free {
                cmd.env("PROXYTHINKER_FREE_MEMORY_BYTES", f);
            }
            let line = stderr_line(&cmd.args(&args).output().unwrap());
            assert!(line.contains(needle), "{case}: {front}: {needle:?} not in {line:?}");
            lines.insert(front, line);
        }
        let distinct: BTreeSet<&String> = lines.values().collect();
        assert_eq!(distinct.len(), 1, "{case}: the front ends disagree: {lines:#?}");
    }
}

/// The header line of a trace file, as JSON.
fn header_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(text.lines().next().unwrap()).unwrap()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn a_run_trace_replays_with_its_models_devices_and_dtypes_and_both_writers_write_one_header() {
    let dir_ = tempfile::tempdir().unwrap();
    let path = dir_.path().join("run.jsonl");
    let mut args = vec!["run".to_string()];
    args.extend(trio_args());
    args.extend(["--question", "What is in the picture?", "--image"].map(String::from));
    args.push(tiny("images/56x56.png").to_str().unwrap().into());
    args.extend(["--max-new-tokens", "4", "--small-dtype", "bf16", "--stop", "never-seen", "--trace"].map(String::from));
    args.push(path.to_str().unwrap().into());
    let out = bin(None).args(&args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let trace = proxythinker::trace::read(&path).unwrap();
    let h = &trace.header;
    assert_eq!(h.written_by, "proxythinker run");
    assert_eq!(h.models, PerModel::new(dir("qwen2_5_vl"), dir("trio_rft"), dir("trio_small")));
    assert_eq!((h.placement.base.device.as_str(), h.placement.base.dtype.as_str()), ("cpu", "f32"));
    assert_eq!(h.placement.small.dtype, "bf16");
    assert_eq!(h.stop_strings, ["never-seen"]);
    assert_eq!(h.shared_vocab, 320);
    assert!(!h.input_ids.is_empty() && h.prompt.contains("What is in the picture?"));

    // Replay finds the models, devices and dtypes ("no device" was the old bug).
    let app = trace_io::replay_app(&path);
    assert_eq!((app.info.base.as_str(), app.info.small.as_str()), (dir("qwen2_5_vl").as_str(), dir("trio_small").as_str()));
    assert_eq!(app.info.device, "recorded on cpu");
    assert_eq!(app.info.dtype, "base f32, rft f32, small bf16");
    assert_eq!(app.guided.len(), 4);

    // The UI's export writes the plan's header: the same keys as `run --trace`, the same values
    // for the same session.
    let settings = resolve_with(
        &proxythinker::cli::GuidedArgs {
            models: proxythinker::cli::TrioArgs {
                preset: None,
                base: Some(dir("qwen2_5_vl")),
                rft: Some(dir("trio_rft")),
                small: Some(dir("trio_small")),
            },
            ..Default::default()
        }
        .overrides(),
        Loaded::default(),
    )
    .unwrap();
    let inputs = Inputs { question: "What is in the picture?".into(), image: Some(proxythinker::processor::SourceImage::open(&tiny("images/56x56.png")).unwrap()) };
    let request = SessionRequest::new(settings, &inputs.question).unwrap();
    let dirs = request.settings().resolve_models().unwrap();
    let plan = request.prepare(dirs, inputs.clone()).unwrap();
    let prompt = plan.prompt(&inputs).unwrap();
    let ui_header = plan.trace_header("proxythinker tui", &inputs, &prompt, 0.5);
    let exported = dir_.path().join("ui.jsonl");
    trace_io::export(&app, &ui_header, &exported).unwrap();
    let (run_h, ui_h) = (header_json(&path), header_json(&exported));
    assert_eq!(keys(&run_h), keys(&ui_h));
    assert_eq!(ui_h["version"], 3);
    for key in ["models", "input_ids", "prompt", "shared_vocab", "question", "image"] {
        assert_eq!(run_h[key], ui_h[key], "{key}");
    }
    // What the UI exported reads back as what it showed.
    let back = proxythinker::trace::read(&exported).unwrap();
    let guided = |records: &[Record]| records.iter().filter(|r| matches!(r, Record::Guided(_))).count();
    assert_eq!(guided(&back.records), 4);
}

#[test]
fn version_1_traces_of_both_old_writers_still_read() {
    let dir_ = tempfile::tempdir().unwrap();
    let token = r#"{"type":"token","stream":"base","step":0,"token":5,"text":"a","logprob":-0.5,"entropy":1.0,"top":[]}"#;
    // `run --trace` wrote `placement`; the UI wrote `device`/`dtype` summaries and `written_by`.
    let run_v1 = r#"{"type":"header","version":1,"models":{"base":"B","rft":"R","small":"S"},"preset":null,
        "placement":{"base":{"device":"cuda:0","dtype":"bf16"},"rft":{"device":"cuda:1","dtype":"bf16"},"small":{"device":"cuda:1","dtype":"bf16"}},
        "alpha":0.7,"sampling":{"mode":"greedy"},"max_new_tokens":9,"stop_strings":["x"],"stop_at_eos":true,
        "question":"q?","suffix":"","image":null,"prompt":"p","input_ids":[1,2],"shared_vocab":320}"#
        .replace('\n', "");
    let ui_v1 = r#"{"type":"header","version":1,"models":{"base":"B","rft":"R","small":"S"},"alpha":0.3,
        "sampling":{"mode":"greedy"},"max_new_tokens":7,"question":"q?","image":null,
        "device":"base cuda:0, rft cuda:1, small cuda:1","dtype":"bf16","written_by":"proxythinker tui"}"#
        .replace('\n', "");
    for (name, header, alpha) in [("run", run_v1, 0.7f32), ("ui", ui_v1, 0.3)] {
        let path = dir_.path().join(format!("{name}.jsonl"));
        std::fs::write(&path, format!("{header}\n{token}\n")).unwrap();
        let t = proxythinker::trace::read(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(t.header.alpha, alpha, "{name}");
        assert_eq!(t.header.models, PerModel::new("B", "R", "S").map(String::from), "{name}");
        assert_eq!(t.header.device_summary(), "base cuda:0, rft cuda:1, small cuda:1", "{name}");
        assert_eq!(t.header.dtype_summary(), "bf16", "{name}");
        assert_eq!(t.records.len(), 1);
    }
    // A version from the future is refused with what to do.
    let path = dir_.path().join("v9.jsonl");
    std::fs::write(&path, "{\"type\":\"header\",\"version\":9}\n").unwrap();
    let err = proxythinker::trace::read(&path).unwrap_err().to_string();
    assert!(err.contains("version 9") && err.contains("update proxythinker"), "{err}");
}

#[test]
fn stop_strings_and_ignore_eos_come_from_the_config_file_too() {
    let dir_ = tempfile::tempdir().unwrap();
    let config = dir_.path().join("config.toml");
    // Find a piece of text the guided stream writes, then stop there from the config file.
    let mut run = vec!["run".to_string()];
    run.extend(trio_args());
    run.extend(["--question", "What is in the picture?", "--max-new-tokens", "12", "--ignore-eos", "--json"].map(String::from));
    let free = json_of(&bin(None).args(&run).output().unwrap());
    let text = free["guided"]["text"].as_str().unwrap().to_string();
    let chars: Vec<char> = text.chars().collect();
    let needle: String = chars[chars.len() / 2..chars.len() / 2 + 2].iter().collect();
    std::fs::write(&config, format!("stop = [{needle:?}]\nignore_eos = true\n")).unwrap();

    let mut shown = vec!["config".to_string(), "--json".into()];
    shown.extend(trio_args());
    let settings = json_of(&bin(Some(&config)).args(&shown).output().unwrap());
    assert_eq!(settings["settings"]["stop"]["value"], serde_json::json!([needle]));
    assert_eq!(settings["settings"]["stop"]["from"], config.to_str().unwrap());
    assert_eq!(settings["settings"]["ignore_eos"]["value"], true);

    let run_file: Vec<String> = run.iter().filter(|a| *a != "--ignore-eos").cloned().collect();
    let stopped = json_of(&bin(Some(&config)).args(&run_file).output().unwrap());
    assert_eq!(stopped["guided"]["stop"]["reason"], "stop_string", "{stopped}");
    assert!(stopped["guided"]["text"].as_str().unwrap().contains(&needle));
    assert!(stopped["guided"]["token_ids"].as_array().unwrap().len() < free["guided"]["token_ids"].as_array().unwrap().len());
    // The command line still wins over the file.
    let mut run_cli = run_file.clone();
    run_cli.extend(["--stop".into(), "never-seen".into()]);
    let cli = json_of(&bin(Some(&config)).args(&run_cli).output().unwrap());
    assert_eq!(cli["guided"]["token_ids"], free["guided"]["token_ids"]);
}

fn json_of(out: &Output) -> Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Top-level module of a source file ("tui" for src/tui/view/header.rs).
fn module_of(path: &Path, src: &Path) -> String {
    let rel = path.strip_prefix(src).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().to_string();
    first.trim_end_matches(".rs").to_string()
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn modules_form_no_cycle_and_the_ui_prepares_nothing() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let m = module_of(f, &src);
        if m == "main" || m == "lib" {
            continue;
        }
        // Code only: docs may name what they explain.
        let text: String = std::fs::read_to_string(f)
            .unwrap()
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let uses = graph.entry(m.clone()).or_default();
        for (i, _) in text.match_indices("crate::") {
            let name: String = text[i + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() && name != m && name != "error" && name != "Result" && name != "Error" {
                uses.insert(name);
            }
        }
        if m == "tui" {
            for call in ["prepare_prompt", "preflight::", "load_model", "TrioFiles"] {
                assert!(!text.contains(call), "{} calls {call}: the UI draws and reacts; the session plan prepares", f.display());
            }
        }
    }
    // Depth-first search for a cycle, reporting the path.
    fn visit(m: &str, graph: &BTreeMap<String, BTreeSet<String>>, stack: &mut Vec<String>, done: &mut BTreeSet<String>) {
        if done.contains(m) {
            return;
        }
        if let Some(i) = stack.iter().position(|s| s == m) {
            panic!("module cycle: {} -> {m}", stack[i..].join(" -> "));
        }
        stack.push(m.to_string());
        for next in graph.get(m).into_iter().flatten() {
            visit(next, graph, stack, done);
        }
        stack.pop();
        done.insert(m.to_string());
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        visit(m, &graph, &mut Vec::new(), &mut done);
    }
    // The front ends sit on top: below them nothing names them (the UI reads its flags' types
    // from cli, which names nothing of the UI's).
    for (m, uses) in &graph {
        assert!(!uses.contains("tui"), "{m} uses tui");
        assert!(m == "tui" || !uses.contains("cli"), "{m} uses cli");
    }
}
