//! `eval` on parquet datasets laid out as the Hugging Face Hub lays out MathVista and MathVerse
//! (tests/fixtures/eval/make_parquet.py): from a local directory by split, from a single file,
//! and by repo id from a fake Hub on loopback into the Hugging Face cache, with only the split's
//! files fetched and an offline rerun served from the cache. Bad choices of split or subset and
//! bad rows are one line naming what to pass or which file, row and field.

mod common;
mod hub_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use hub_support::FakeHub;
use proxythinker::eval::run::ResultLine;
use serde_json::Value;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_proxythinker"));
    c.env("PROXYTHINKER_CONFIG", std::env::temp_dir().join("proxythinker-tests-no-config.toml"))
        .env_remove("PROXYTHINKER_FREE_MEMORY_BYTES")
        .env_remove("PROXYTHINKER_TEST_EVAL_ABORT_AFTER")
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_OFFLINE");
    c
}

fn eval_args(data: &str, out: &Path, extra: &[&str]) -> Vec<String> {
    let d = |n: &str| tiny(n).to_str().unwrap().to_string();
    let mut a: Vec<String> = ["eval", "--data", data, "--out", out.to_str().unwrap()].map(String::from).to_vec();
    a.extend(["--base".into(), d("qwen2_5_vl"), "--rft".into(), d("trio_rft"), "--small".into(), d("trio_small")]);
    a.extend(["--alphas", "0.5", "--max-new-tokens", "4", "--ignore-eos"].map(String::from));
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn results(out: &Path) -> Vec<ResultLine> {
    std::fs::read_to_string(out.join("results.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn vista() -> PathBuf {
    fixtures().join("eval/mathvista_like")
}

/// The files of a directory tree, by path relative to it.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(p.strip_prefix(root).unwrap().to_str().unwrap().replace('\\', "/"), std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Checks the three MathVista-shaped questions' results: ids from `pid`, the paper's `query` as
/// the prompt, the picture from `decoded_image`, categories from `metadata`.
fn check_vista_results(out: &Path, layout: &str) {
    let lines = results(out);
    assert_eq!(lines.len(), 3 * 3, "3 questions × (base, rft, guided): {lines:?}");
    let ids: std::collections::BTreeSet<&str> = lines.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(ids, ["1", "2", "3"].into_iter().collect());
    let q2 = lines.iter().find(|l| l.id == "2" && l.stream == "base").unwrap();
    assert!(q2.prompt.contains("Choices:\n(A) square\n(B) circle"), "{}", q2.prompt);
    assert_eq!(q2.fields["image_path"], Value::from("images/2.jpg"), "the path column is kept, the bytes are not");
    assert!(!q2.fields.contains_key("decoded_image"));
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["per_category"]["category=general-vqa"]["base"]["total"], 2, "{summary}");
    assert_eq!(summary["per_category"]["skills=arithmetic reasoning"]["base"]["total"], 2, "{summary}");
    let paper = std::fs::read_to_string(out.join(layout).join("base.jsonl")).unwrap();
    assert_eq!(paper.lines().count(), 3);
}

#[test]
fn a_parquet_directory_is_read_by_split_with_its_pictures_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    ok(&bin().args(eval_args(vista().to_str().unwrap(), &out, &["--split", "testmini"])).output().unwrap());
    check_vista_results(&out, "mathvista_like-testmini");

    // The picture is the row's own: question 1 (56×56) decodes as `run` does on that image.
    let mut run: Vec<String> = vec!["run".into()];
    let d = |n: &str| tiny(n).to_str().unwrap().to_string();
    run.extend(["--base".into(), d("qwen2_5_vl"), "--rft".into(), d("trio_rft"), "--small".into(), d("trio_small")]);
    let first = results(&out).into_iter().find(|l| l.id == "1" && l.stream == "guided").unwrap();
    let query = "Hint: Please answer the question requiring an integer answer.\nQuestion: How many circles are in the picture?";
    run.extend(["--question".into(), query.into(), "--suffix".into(), "boxed".into(), "--image".into(), d("images/56x56.png")]);
    run.extend(["--alpha", "0.5", "--max-new-tokens", "4", "--ignore-eos", "--json"].map(String::from));
    let v: Value = serde_json::from_str(&ok(&bin().args(&run).output().unwrap())).unwrap();
    assert_eq!(first.response, v["guided"]["text"].as_str().unwrap());
}

#[test]
fn a_single_parquet_file_with_an_image_struct_column_and_a_row_without_picture() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let data = fixtures().join("eval/mathverse_like/testmini.parquet");
    let cache = dir.path().join("cache");
    ok(&bin().env("PROXYTHINKER_CACHE", &cache).args(eval_args(data.to_str().unwrap(), &out, &[])).output().unwrap());
    // Per-question progress goes to the log file, not the terminal.
    let log = std::fs::read_to_string(cache.join("logs/proxythinker.log")).unwrap();
    assert!(log.contains("eval: question 2 done (2 of 2)"), "{log}");
    let lines = results(&out);
    assert_eq!(lines.len(), 2 * 3, "{lines:?}");
    let text_only = lines.iter().find(|l| l.id == "2" && l.stream == "base").unwrap();
    assert!(text_only.prompt.contains("what is 2 + 2?"), "MathVerse's query_cot is asked: {}", text_only.prompt);
    assert!(!text_only.prompt.contains("<|image_pad|>") && !text_only.prompt.contains("<|vision_start|>"), "{}", text_only.prompt);
    let with_image = lines.iter().find(|l| l.id == "1" && l.stream == "base").unwrap();
    assert!(with_image.prompt.contains("<|vision_start|>"), "{}", with_image.prompt);
    assert!(dir.path().join("out/testmini/rft.jsonl").is_file());
}

#[test]
fn a_hub_dataset_fetches_only_its_split_into_the_cache_and_runs_offline_after() {
    let hub = FakeHub::start();
    hub.add_dataset("AI4Math/MathVista", "main", tree(&vista()));
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("hub");
    let env = |c: &mut Command| {
        c.env("HF_ENDPOINT", &hub.url).env("HF_HUB_CACHE", &cache);
    };
    let out = dir.path().join("out");
    let mut c = bin();
    env(&mut c);
    ok(&c.args(eval_args("AI4Math/MathVista", &out, &["--split", "testmini"])).output().unwrap());
    check_vista_results(&out, "MathVista-testmini");
    let fetched = hub.resolved_files();
    assert!(fetched.contains_key("data/testmini-00000-of-00001.parquet"), "{fetched:?}");
    assert!(!fetched.contains_key("data/test-00000-of-00001.parquet") && !fetched.contains_key("README.md"), "only the split: {fetched:?}");
    let snapshots = cache.join("datasets--AI4Math--MathVista/snapshots");
    assert_eq!(std::fs::read_dir(&snapshots).unwrap().count(), 1, "the Hugging Face cache layout for datasets");
    let run: Value = serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert!(run["dataset"].as_str().unwrap().starts_with("AI4Math/MathVista@"), "{run}");

    // Offline, the cache serves the same split; the resume finds every question done.
    hub.clear_log();
    let mut c = bin();
    env(&mut c);
    ok(&c.env("HF_HUB_OFFLINE", "1").args(eval_args("AI4Math/MathVista", &out, &["--split", "testmini"])).output().unwrap());
    assert!(hub.requests().is_empty(), "{:?}", hub.requests());
    assert_eq!(results(&out).len(), 9);

    // A split the repo lacks is named with the ones it has.
    let mut c = bin();
    env(&mut c);
    let err = one_line_error(&c.args(eval_args("AI4Math/MathVista", &dir.path().join("o2"), &["--split", "train"])).output().unwrap());
    assert!(err.contains("--data AI4Math/MathVista") && err.contains("no split \"train\" (its splits: test, testmini)"), "{err}");
    let mut c = bin();
    env(&mut c);
    let err = one_line_error(&c.args(eval_args("AI4Math/Nothing", &dir.path().join("o3"), &[])).output().unwrap());
    assert!(err.contains("AI4Math/Nothing") && err.contains("404"), "{err}");
}

#[test]
fn a_missing_split_a_split_on_a_file_and_a_bad_row_are_one_line_each() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let err = one_line_error(&bin().args(eval_args(vista().to_str().unwrap(), &out, &[])).output().unwrap());
    assert!(err.contains("several splits (test, testmini); pick one with --split"), "{err}");
    let jsonl = fixtures().join("eval/tiny.jsonl");
    let err = one_line_error(&bin().args(eval_args(jsonl.to_str().unwrap(), &out, &["--split", "test"])).output().unwrap());
    assert!(err.contains("a single file has no splits, so leave --split out"), "{err}");
    // The `test` split's row has an empty answer: file, row and field are named.
    let err = one_line_error(&bin().args(eval_args(vista().to_str().unwrap(), &out, &["--split", "test"])).output().unwrap());
    assert!(err.contains("test-00000-of-00001.parquet row 1") && err.contains("`answer`") && err.contains("--skip-bad"), "{err}");
    let not_parquet = dir.path().join("broken.parquet");
    std::fs::write(&not_parquet, b"PAR1 this is not parquet").unwrap();
    let err = one_line_error(&bin().args(eval_args(not_parquet.to_str().unwrap(), &out, &[])).output().unwrap());
    assert!(err.contains("broken.parquet: not a readable parquet file"), "{err}");
}
