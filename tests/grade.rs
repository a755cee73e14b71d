//! Grading as the paper's evaluation grades: every case of tests/fixtures/grading/cases.json
//! (made by make_cases.py beside it, with the reference grader) gives the reference's extracted
//! answer and verdict, through the library and through `proxythinker grade`.

mod common;

use std::process::Command;

use common::*;
use proxythinker::eval::grade::grade;
use serde_json::Value;

fn cases() -> Vec<Value> {
    read_json(&fixtures().join("grading/cases.json"))["cases"].as_array().unwrap().clone()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

#[test]
fn every_case_grades_as_the_reference_grades_it() {
    let cases = cases();
    assert!(cases.len() >= 60, "the table holds {} cases", cases.len());
    let mut wrong = Vec::new();
    for c in &cases {
        let g = grade(c["answer"].as_str().unwrap(), &strings(&c["choices"]), c["response"].as_str().unwrap());
        let want_extracted = c["extracted"].as_str().map(str::to_string);
        let want_correct = c["correct"].as_bool().unwrap();
        if g.extracted != want_extracted || g.correct != want_correct {
            wrong.push(format!("{}: got {:?} {}, reference {:?} {}", c["what"], g.extracted, g.correct, want_extracted, want_correct));
        }
    }
    assert!(wrong.is_empty(), "{} of {} cases differ from the reference:\n{}", wrong.len(), cases.len(), wrong.join("\n"));
    // Both verdicts are represented, so a grader that always says yes (or no) fails.
    let correct = cases.iter().filter(|c| c["correct"] == true).count();
    assert!(correct > 10 && correct < cases.len() - 10, "{correct} of {} correct", cases.len());
}

#[test]
fn the_grade_subcommand_prints_one_object_and_exits_0_either_way() {
    for c in cases().iter().take(12) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_proxythinker"));
        cmd.args(["grade", "--answer", c["answer"].as_str().unwrap(), "--response", c["response"].as_str().unwrap()]);
        for choice in strings(&c["choices"]) {
            cmd.args(["--choice", &choice]);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text.trim_end().lines().count(), 1);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["extracted"], c["extracted"], "{}", c["what"]);
        assert_eq!(v["correct"], c["correct"], "{}", c["what"]);
    }
}
