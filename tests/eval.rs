//! `proxythinker eval` end to end on the tiny trio and tests/fixtures/eval/tiny.jsonl (image
//! paths, a base64 image, multiple choice, a text-only question): every result line, the
//! summary, the guided stream at each α against `run` at that α, three α values in one batch
//! against the serial path's results and `run`'s traces, a resume after a crash, a changed run
//! refused, and bad dataset lines.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::*;
use proxythinker::eval::run::{wilson, ResultLine};
use serde_json::Value;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_proxythinker"));
    c.env("PROXYTHINKER_CONFIG", std::env::temp_dir().join("proxythinker-tests-no-config.toml"))
        .env_remove("PROXYTHINKER_FREE_MEMORY_BYTES")
        .env_remove("PROXYTHINKER_TEST_EVAL_ABORT_AFTER")
        .env("PROXYTHINKER_CACHE", std::env::temp_dir().join("proxythinker-tests-cache"));
    c
}

fn trio() -> Vec<String> {
    let d = |n: &str| tiny(n).to_str().unwrap().to_string();
    vec!["--base".into(), d("qwen2_5_vl"), "--rft".into(), d("trio_rft"), "--small".into(), d("trio_small")]
}

fn data() -> String {
    fixtures().join("eval/tiny.jsonl").to_str().unwrap().to_string()
}

fn eval_args(out: &Path, extra: &[&str]) -> Vec<String> {
    let mut a = vec!["eval".to_string(), "--data".into(), data(), "--out".into(), out.to_str().unwrap().into()];
    a.extend(trio());
    a.extend(["--alphas", "0.5,1", "--max-new-tokens", "6", "--ignore-eos"].map(String::from));
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn results(out: &Path) -> Vec<ResultLine> {
    std::fs::read_to_string(out.join("results.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn every_question_gets_each_stream_graded_and_guided_matches_run_at_each_alpha() {
    let dir = tempfile::tempdir().unwrap();
    let table = ok(&bin().args(eval_args(dir.path(), &[])).output().unwrap());
    let lines = results(dir.path());
    assert_eq!(lines.len(), 4 * 4, "4 questions × (base, rft, guided at 2 α)");
    let keys: BTreeSet<(String, String, Option<String>)> =
        lines.iter().map(|l| (l.id.clone(), l.stream.clone(), l.alpha.map(|a| a.to_string()))).collect();
    assert_eq!(keys.len(), lines.len(), "no line twice");
    for l in &lines {
        assert_eq!(l.tokens, 6, "{l:?}");
        assert_eq!(l.stop, "max_new_tokens");
        assert!(l.prompt.contains("\\boxed{}"), "the paper's suffix by default: {}", l.prompt);
    }
    // Ids as given (a number becomes its text), other fields kept, multiple choice listed.
    let q2 = lines.iter().find(|l| l.id == "2").expect("id 2");
    assert_eq!(q2.fields.get("source"), Some(&Value::from("synthetic")));
    let q3 = lines.iter().find(|l| l.id == "q3").unwrap();
    assert!(q3.prompt.contains("(B) circle"), "{}", q3.prompt);

    // The guided stream at each α is what `run` gives at that α.
    for alpha in ["0.5", "1"] {
        let mut run = vec!["run".to_string()];
        run.extend(trio());
        run.extend(["--question", "How many circles are in the picture?", "--suffix", "boxed", "--image"].map(String::from));
        run.push(tiny("images/56x56.png").to_str().unwrap().into());
        run.extend(["--alpha", alpha, "--max-new-tokens", "6", "--ignore-eos", "--json"].map(String::from));
        let v: Value = serde_json::from_str(&ok(&bin().args(&run).output().unwrap())).unwrap();
        let a: f32 = alpha.parse().unwrap();
        let guided = lines.iter().find(|l| l.id == "q1" && l.stream == "guided" && l.alpha == Some(a)).unwrap();
        assert_eq!(guided.response, v["guided"]["text"].as_str().unwrap(), "α={alpha}");
        let base = lines.iter().find(|l| l.id == "q1" && l.stream == "base").unwrap();
        assert_eq!(base.response, v["base"]["text"].as_str().unwrap());
    }

    // The summary: every stream, per category, and the table on stdout.
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap()).unwrap();
    for stream in ["base", "rft", "guided α=0.5", "guided α=1"] {
        assert_eq!(summary["accuracy"][stream]["total"], 4, "{stream}");
        let right = lines.iter().filter(|l| l.correct && stream.starts_with(l.stream.as_str())).count();
        assert!(summary["accuracy"][stream]["correct"].as_u64().unwrap() as usize <= right);
    }
    assert_eq!(summary["per_category"]["category=counting"]["base"]["total"], 2);
    assert!(table.contains("guided α=0.5") && table.contains("95% interval"), "{table}");
    // The paper's layout, one line per question.
    let paper = std::fs::read_to_string(dir.path().join("tiny/guided-alpha0.5.jsonl")).unwrap();
    assert_eq!(paper.lines().count(), 4);
    assert!(paper.contains("generated_text"));
}

/// Every line as the serial path (one session per question, each further α through live α,
/// commit 42de91b) wrote it for `--alphas 0.25,0.5,1 --max-new-tokens 16 --stop sw --stop " answer"`,
/// with `seconds` set to 0: streams there end after 3 to 16 tokens.
const SERIAL_RESULTS: &str = "eval/serial-3-alphas.jsonl";
const SERIAL_SUMMARY: &str = "eval/serial-3-alphas-summary.json";

#[test]
fn three_alphas_decoded_as_one_batch_give_the_serial_results_and_the_traces_run_writes() {
    let dir = tempfile::tempdir().unwrap();
    let decoding = ["--max-new-tokens", "16", "--stop", "sw", "--stop", " answer"];
    let mut args = vec!["eval".to_string(), "--data".into(), data(), "--out".into(), dir.path().to_str().unwrap().into()];
    args.extend(trio());
    args.extend(["--alphas", "0.25,0.5,1", "--traces"].map(String::from));
    args.extend(decoding.map(String::from));
    ok(&bin().args(&args).output().unwrap());

    // Result lines and the summary: what the serial path wrote, but for the time.
    let lines = results(dir.path());
    let serial: Vec<ResultLine> = std::fs::read_to_string(fixtures().join(SERIAL_RESULTS))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), serial.len());
    for (got, want) in lines.iter().zip(&serial) {
        let question: Vec<&ResultLine> = lines.iter().filter(|l| l.id == got.id).collect();
        assert!(got.seconds > 0.0 && question.iter().all(|l| l.seconds == got.seconds), "one wall time per question: {question:?}");
        assert_eq!(&ResultLine { seconds: 0.0, ..got.clone() }, want);
    }
    let summary = std::fs::read_to_string(dir.path().join("summary.json")).unwrap();
    assert_eq!(summary, std::fs::read_to_string(fixtures().join(SERIAL_SUMMARY)).unwrap());

    // Each α's trace holds what `run --trace` records at that α, record for record (measures up
    // to the last bits of f32: the batch has more rows than a session's).
    let traced = |path: &Path| -> Vec<Value> {
        std::fs::read_to_string(path).unwrap().lines().skip(1).map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    for (id, question, image) in [("q1", "How many circles are in the picture?", Some("images/56x56.png")), ("q4", "What is 2 + 2?", None)] {
        for alpha in ["0.25", "0.5", "1"] {
            let trace = dir.path().join(format!("run-{id}-{alpha}.jsonl"));
            let mut run = vec!["run".to_string()];
            run.extend(trio());
            run.extend(["--question", question, "--suffix", "boxed", "--alpha", alpha, "--trace"].map(String::from));
            run.push(trace.to_str().unwrap().into());
            if let Some(image) = image {
                run.extend(["--image".to_string(), tiny(image).to_str().unwrap().into()]);
            }
            run.extend(decoding.map(String::from));
            ok(&bin().args(&run).output().unwrap());
            let want = traced(&trace);
            let got = traced(&dir.path().join(format!("traces/{id}-alpha{alpha}.jsonl")));
            assert!(want.len() > 3, "{id} α={alpha}: {} records", want.len());
            assert_json_near(&Value::from(got), &Value::from(want), &format!("{id} α={alpha} trace"));
        }
    }
}

#[test]
fn a_crashed_run_resumes_without_losing_or_repeating_a_question_and_a_changed_run_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // Crash (abort) after two questions, as a kill would.
    let crashed = bin().args(eval_args(dir.path(), &[])).env("PROXYTHINKER_TEST_EVAL_ABORT_AFTER", "2").output().unwrap();
    assert!(!crashed.status.success());
    let before = results(dir.path());
    assert_eq!(before.len(), 2 * 4, "two whole questions were kept");
    // A torn last line, as a crash mid-write leaves.
    let path = dir.path().join("results.jsonl");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"id\": \"q3\", \"stream\": \"ba");
    std::fs::write(&path, text).unwrap();
    ok(&bin().args(eval_args(dir.path(), &[])).output().unwrap());
    let after = results(dir.path());
    assert_eq!(after.len(), 4 * 4);
    assert_eq!(&after[..8], &before[..], "the finished questions were not decoded again");
    let ids: BTreeSet<&str> = after.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(ids.len(), 4);
    // Another α list in the same directory is refused, naming what changed.
    let mut other = eval_args(dir.path(), &[]);
    let i = other.iter().position(|a| a == "0.5,1").unwrap();
    other[i] = "0.25".into();
    let err = one_line_error(&bin().args(&other).output().unwrap());
    assert!(err.contains("the α list") && err.contains("another --out"), "{err}");
}

#[test]
fn bad_dataset_lines_name_file_line_and_field_or_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bad.jsonl");
    std::fs::write(
        &data,
        "{\"id\": \"a\", \"question\": \"What is 2 + 2?\", \"answer\": \"4\"}\n{\"id\": \"b\", \"question\": \"no answer here\"}\n{\"id\": \"c\", \"question\": \"q\", \"answer\": \"1\", \"image\": \"missing.png\"}\n",
    )
    .unwrap();
    let mut args = eval_args(&dir.path().join("out"), &[]);
    args[2] = data.to_str().unwrap().into();
    let err = one_line_error(&bin().args(&args).output().unwrap());
    assert!(err.contains("bad.jsonl:2") && err.contains("`answer`"), "{err}");
    args.push("--skip-bad".into());
    ok(&bin().args(&args).output().unwrap());
    let lines = results(&dir.path().join("out"));
    let skipped: Vec<&ResultLine> = lines.iter().filter(|l| l.stream == "skipped").collect();
    assert_eq!(skipped.len(), 2, "{lines:?}");
    assert!(skipped.iter().any(|l| l.stop.contains("missing.png")));
    assert_eq!(lines.iter().filter(|l| l.id == "a").count(), 4);
}

#[test]
fn the_wilson_interval_is_the_textbook_one() {
    // 8 of 10: 0.4902 – 0.9433; 0 of 10: 0 – 0.2775; 10 of 10: 0.7225 – 1.
    let close = |(a, b): (f64, f64), (c, d): (f64, f64)| (a - c).abs() < 1e-4 && (b - d).abs() < 1e-4;
    assert!(close(wilson(8, 10), (0.4902, 0.9433)), "{:?}", wilson(8, 10));
    assert!(close(wilson(0, 10), (0.0, 0.2775)), "{:?}", wilson(0, 10));
    assert!(close(wilson(10, 10), (0.7225, 1.0)), "{:?}", wilson(10, 10));
}

#[test]
fn the_summary_counts_each_stream_per_category_and_where_guidance_changed_the_verdict() {
    use proxythinker::eval::dataset::Question;
    use proxythinker::eval::run::Summary;
    let line = |id: &str, stream: &str, alpha: Option<f32>, correct: bool, cat: &str| ResultLine {
        id: id.into(),
        stream: stream.into(),
        alpha,
        prompt: String::new(),
        response: String::new(),
        extracted: None,
        correct,
        tokens: 1,
        stop: "eos".into(),
        seconds: 0.0,
        answer: String::new(),
        fields: [("category".to_string(), Value::from(cat))].into_iter().collect(),
    };
    // Base right on a only; guided fixes b and breaks a at α=1; at α=0.5 it fixes b.
    let results = vec![
        line("a", "base", None, true, "x"),
        line("a", "rft", None, true, "x"),
        line("a", "guided", Some(0.5), true, "x"),
        line("a", "guided", Some(1.0), false, "x"),
        line("b", "base", None, false, "y"),
        line("b", "rft", None, true, "y"),
        line("b", "guided", Some(0.5), true, "y"),
        line("b", "guided", Some(1.0), true, "y"),
    ];
    let q = |id: &str| Question {
        id: id.into(),
        line: 1,
        question: String::new(),
        answer: String::new(),
        choices: vec![],
        image: None,
        prompt_as_given: false,
        extra: Default::default(),
    };
    let s = Summary::of(&results, &[0.5, 1.0], &[q("a"), q("b")]);
    let acc: Vec<(String, usize)> = s.overall.iter().map(|(k, a)| (k.clone(), a.correct)).collect();
    assert_eq!(acc, [("base".into(), 1), ("rft".into(), 2), ("guided α=0.5".into(), 2), ("guided α=1".into(), 1)]);
    assert_eq!(s.fixed, [(0.5, vec!["b".to_string()]), (1.0, vec!["b".to_string()])]);
    assert_eq!(s.broken, [(0.5, vec![]), (1.0, vec!["a".to_string()])]);
    assert_eq!(s.per_category["category=x"][0].1.correct, 1);
    assert_eq!(s.per_category["category=y"][1].1.correct, 1);
}

#[test]
fn the_papers_datasets_are_asked_as_the_paper_asks_them() {
    use proxythinker::eval::dataset::{prompt_text, read_jsonl};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("papers.jsonl");
    let lines = [
        // MathVista: `query` holds the hint and the choices already; `choices` maps the truth to a letter.
        r#"{"pid": "1", "question": "Which is bigger?", "query": "Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.\nQuestion: Which is bigger?\nChoices:\n(A) 3\n(B) 5", "choices": ["3", "5"], "answer": "5"}"#,
        // MathVerse: `query_cot`.
        r#"{"question": "Find x.", "query_cot": "Please first conduct reasoning, and then answer the question. Find x.", "answer": "4"}"#,
        // MathVision: `question` and `options`, formatted as the paper's code formats them.
        r#"{"id": 7, "question": "Which shape?", "options": ["square", "circle"], "answer": "B"}"#,
    ];
    std::fs::write(&data, lines.join("\n")).unwrap();
    let d = read_jsonl(&data, false).unwrap();
    assert_eq!(prompt_text(&d.questions[0]), "Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.\nQuestion: Which is bigger?\nChoices:\n(A) 3\n(B) 5");
    assert_eq!(d.questions[0].choices, ["3", "5"]);
    assert_eq!(d.questions[0].extra.get("question"), Some(&Value::from("Which is bigger?")), "the plain question is kept");
    assert_eq!(prompt_text(&d.questions[1]), "Please first conduct reasoning, and then answer the question. Find x.");
    assert_eq!(
        prompt_text(&d.questions[2]),
        "Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, E, at the end.\nQuestion: Which shape?\nChoices:\n(A) square\n(B) circle"
    );
    // MathVision's truth is a letter: its option text and the letter both grade as right.
    let q = &d.questions[2];
    assert!(proxythinker::eval::grade::grade(&q.answer, &q.choices, "\\boxed{circle}").correct);
    assert!(proxythinker::eval::grade::grade(&q.answer, &q.choices, "\\boxed{B}").correct);
    assert!(!proxythinker::eval::grade::grade(&q.answer, &q.choices, "\\boxed{square}").correct);
}

#[test]
fn the_papers_prompt_suffixes_are_there_by_name() {
    use proxythinker::presets::Suffix;
    assert_eq!(Suffix::parse("answer").text(), "\n\nYour final answer MUST BE put between <answer> </answer>.");
    assert_eq!(
        Suffix::parse("r1onevision").text(),
        "\n\nFirst output the thinking process in <think> </think> tags and then output the final answer in <answer> </answer> tags."
    );
    // The paper's code writes this one as a raw string: backslash-n, not a line break.
    assert!(Suffix::parse("thinklite").text().starts_with("\\n\\nYou FIRST think"));
    assert!(Suffix::parse("rethink72b").text().contains("self-questioning, self-verification, self-correction"));
    for name in ["answer", "r1onevision", "thinklite", "rethink72b"] {
        assert_eq!(Suffix::parse(name).name(), name);
    }
}
