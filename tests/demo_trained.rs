//! The demo's trained trio (assets/demo/, made by scripts/train_demo.py) shows ProxyThinker's
//! effect in miniature, through the real loading code: the checkpoints the demo writes to its
//! cache directory are run with `proxythinker run` on the demo's picture and on held-out pictures.
//! At α = 0 the guided stream is the base stream; at α = 1 it picks up the reasoner's checking
//! habit ("Wait", "verify") that the base never shows, and keeps the `\boxed{}` answer.
//! `proxythinker eval` reads the committed held-out set and scores it the same way.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use common::*;
use proxythinker::eval::run::ResultLine;
use proxythinker::tui::demo::{self, DemoFiles};
use serde_json::Value;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_proxythinker"));
    c.env("PROXYTHINKER_CONFIG", std::env::temp_dir().join("proxythinker-tests-no-config.toml"))
        .env_remove("PROXYTHINKER_FREE_MEMORY_BYTES")
        .env("PROXYTHINKER_CACHE", std::env::temp_dir().join("proxythinker-tests-cache"));
    c
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn heldout() -> PathBuf {
    repo().join("assets/demo/heldout.jsonl")
}

/// The checkpoints exactly as `demo` writes them from the bytes embedded in the binary.
fn installed(dir: &Path) -> DemoFiles {
    demo::install_in(dir).unwrap_or_else(|e| panic!("{e}"))
}

fn trio(files: &DemoFiles) -> Vec<String> {
    let s = |p: &Path| p.to_str().unwrap().to_string();
    vec!["--base".into(), s(&files.base), "--rft".into(), s(&files.rft), "--small".into(), s(&files.small)]
}

/// The demo's own picture and question, then the first held-out counting and colour questions
/// (pictures written out of the JSONL file's base64).
fn cases(files: &DemoFiles, dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = vec![(files.image.clone(), demo::question())];
    let text = std::fs::read_to_string(heldout()).unwrap();
    for category in ["count", "colour"] {
        let line: Value = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|v| v["category"] == category)
            .unwrap_or_else(|| panic!("no {category} question in the held-out set"));
        let data = line["image"].as_str().unwrap().strip_prefix("data:image/png;base64,").expect("a data URL");
        let png = base64::engine::general_purpose::STANDARD.decode(data).unwrap();
        let path = dir.join(format!("{category}.png"));
        std::fs::write(&path, png).unwrap();
        out.push((path, line["question"].as_str().unwrap().to_string()));
    }
    out
}

/// `proxythinker run --json` on the demo trio: (base, rft, guided) texts and guided token ids.
fn run(files: &DemoFiles, image: &Path, question: &str, alpha: &str) -> Value {
    let mut args = vec!["run".to_string()];
    args.extend(trio(files));
    args.extend(["--image".into(), image.to_str().unwrap().into(), "--question".into(), question.into()]);
    args.extend(["--alpha", alpha, "--max-new-tokens", "96", "--json"].map(String::from));
    serde_json::from_str(&ok(&bin().args(&args).output().unwrap())).unwrap()
}

fn text<'a>(v: &'a Value, stream: &str) -> &'a str {
    v[stream]["text"].as_str().unwrap()
}

/// How many of [`cases`] the α = 1 test holds for (the demo's own question first).
const CHECKED_AT_ALPHA_1: usize = 3;

fn checks(s: &str) -> bool {
    s.contains("Wait") || s.contains("verify")
}

#[test]
fn at_alpha_0_the_guided_stream_is_the_base_stream() {
    let dir = tempfile::tempdir().unwrap();
    let files = installed(dir.path());
    for (image, question) in cases(&files, dir.path()) {
        let v = run(&files, &image, &question, "0");
        assert_eq!(v["guided"]["token_ids"], v["base"]["token_ids"], "{question}: {v}");
        assert_eq!(v["guided"]["stop"]["reason"], "eos", "the base answer ends by itself: {v}");
        assert!(!checks(text(&v, "guided")), "{question}: {}", text(&v, "guided"));
    }
}

#[test]
fn at_alpha_1_the_guided_stream_verifies_like_the_reasoner_and_the_base_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let files = installed(dir.path());
    for (image, question) in cases(&files, dir.path()).into_iter().take(CHECKED_AT_ALPHA_1) {
        let v = run(&files, &image, &question, "1");
        let (base, rft, guided) = (text(&v, "base"), text(&v, "rft"), text(&v, "guided"));
        assert!(!checks(base), "the base answers directly: {base}");
        assert!(base.contains("\\boxed{"), "{base}");
        assert!(rft.contains("Wait, let me verify"), "the reasoner checks: {rft}");
        assert!(checks(guided), "{question}: guided picked up the check: {guided}");
        assert!(guided.contains("\\boxed{"), "and answers in the base's format: {guided}");
        assert_eq!(v["guided"]["stop"]["reason"], "eos", "{v}");
    }
}

#[test]
fn eval_scores_the_heldout_set_and_guided_at_alpha_0_grades_as_the_base() {
    let dir = tempfile::tempdir().unwrap();
    let files = installed(dir.path());
    let out = dir.path().join("eval");
    let mut args = vec!["eval".to_string(), "--data".into(), heldout().to_str().unwrap().into()];
    args.extend(["--out".into(), out.to_str().unwrap().into()]);
    args.extend(trio(&files));
    args.extend(["--alphas", "0,1", "--limit", "20", "--max-new-tokens", "96"].map(String::from));
    ok(&bin().args(&args).output().unwrap());
    let lines: Vec<ResultLine> = std::fs::read_to_string(out.join("results.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 20 * 4, "20 questions × (base, rft, guided at 2 α)");
    let find = |id: &str, stream: &str, alpha: Option<f32>| {
        lines.iter().find(|l| l.id == id && l.stream == stream && l.alpha == alpha).unwrap()
    };
    let mut verified = 0;
    for base in lines.iter().filter(|l| l.stream == "base") {
        let still = find(&base.id, "guided", Some(0.0));
        assert_eq!(still.response, base.response, "{}", base.id);
        assert_eq!(still.correct, base.correct);
        assert!(base.extracted.is_some(), "the base boxes an answer: {}", base.response);
        verified += usize::from(checks(&find(&base.id, "guided", Some(1.0)).response));
    }
    assert!(verified >= 15, "guided at α=1 checks its answer on {verified} of 20 questions");
}

#[test]
fn the_inspectors_why_table_shows_the_reasoner_pushing_wait() {
    // The demo's own question at α = 1, through `run --trace` and the UI's replay of that trace,
    // as a user inspecting the guided stream sees it.
    let dir = tempfile::tempdir().unwrap();
    let files = installed(dir.path());
    let trace = dir.path().join("demo.trace.jsonl");
    let mut args = vec!["run".to_string()];
    args.extend(trio(&files));
    args.extend(["--image".into(), files.image.to_str().unwrap().into(), "--question".into(), demo::question()]);
    args.extend(["--alpha", "1", "--max-new-tokens", "96", "--trace", trace.to_str().unwrap()].map(String::from));
    ok(&bin().args(&args).output().unwrap());
    let (mut app, _) = proxythinker::tui::trace_io::replay(&trace);
    assert!(!app.guided.is_empty(), "the replay holds the guided stream");

    // The guided token where "Wait" begins: the base would not have said it; the reasoner did.
    let text: String = app.guided.iter().map(|r| r.text.as_str()).collect();
    let at = text.find("Wait").unwrap_or_else(|| panic!("no Wait in the guided stream: {text}"));
    let mut start = 0;
    let i = app.guided.iter().position(|r| {
        start += r.text.len();
        start > at
    }).unwrap();
    let r = app.guided[i].clone();
    assert!(r.text.trim_start().starts_with('W'), "the token that begins Wait: {:?}", r.text);
    assert!(r.base_rank > 1, "the base alone would have chosen another token: rank {}", r.base_rank);
    let why = r.why.as_ref().expect("a why table");
    let chosen = why.chosen().unwrap();
    assert_eq!(chosen.token, r.token);
    assert!(chosen.shift > 0.0, "guidance raised it: {chosen:?}");
    assert!(chosen.probs.rft > chosen.probs.small && chosen.probs.rft > chosen.probs.base, "the reasoner wants it most: {chosen:?}");
    assert_eq!(why.guided_rank, 1, "and it became the guided choice");
    assert_eq!(why.promoted(1).first().map(|p| p.token), Some(r.token), "the most promoted plausible token");

    // What the inspector draws for it.
    app.follow = false;
    app.focus = proxythinker::tui::app::Pane::Guided;
    app.cursor = i;
    let mut term = ratatui::Terminal::new(ratatui::backend::TestBackend::new(200, 50)).unwrap();
    term.draw(|f| proxythinker::tui::view::draw(f, &app)).unwrap();
    let buf = term.backend().buffer();
    let rows: Vec<String> = (0..buf.area.height).map(|y| (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect()).collect();
    let screen = rows.join("\n");
    let token = proxythinker::printable::terminal_text(&r.text).replace('\n', "↵");
    let verdict = format!("guidance moved `{token}` from base rank {} to 1", r.base_rank);
    assert!(screen.contains(&verdict) && screen.contains("from the reasoner"), "{verdict}\n{screen}");
    let chosen_row = rows.iter().find(|l| l.contains('▶') && l.contains(&format!(" {} ", r.token))).unwrap_or_else(|| panic!("the chosen row\n{screen}"));
    assert!(chosen_row.contains(&format!("+{:.2}", chosen.shift)), "its shift in the table: {chosen_row}");
    let promoted = rows.iter().find(|l| l.contains("▲ promoted")).unwrap_or_else(|| panic!("{screen}"));
    assert!(promoted.contains(token.trim()), "{promoted}");
}
