//! Helpers shared by the integration tests: fixture paths and loading a fixture model.

#![allow(dead_code)]

pub mod quant_measures;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use proxythinker::loader::Checkpoint;
use proxythinker::models::VlModel;
use proxythinker::prepare::{prepare_prompt, PreparedPrompt};
use proxythinker::processor::SourceImage;
use proxythinker::processor::prompt;
use serde_json::Value;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn f32s(v: &Value) -> Vec<f32> {
    v.as_array().expect("array of numbers").iter().map(|x| x.as_f64().expect("number") as f32).collect()
}

pub fn u32s(v: &Value) -> Vec<u32> {
    v.as_array().expect("array of ids").iter().map(|x| x.as_u64().expect("id") as u32).collect()
}

pub struct Fixture {
    pub checkpoint: Checkpoint,
    pub tokenizer: tokenizers::Tokenizer,
    pub model: VlModel,
}

pub fn load(model_dir: &str, dtype: DType) -> Fixture {
    let dir = fixtures().join("tiny").join(model_dir);
    let checkpoint = Checkpoint::open(&dir).unwrap_or_else(|e| panic!("{e}"));
    let tokenizer = prompt::load_tokenizer(&checkpoint.tokenizer_file).unwrap();
    let model = checkpoint.load_model(dtype, &Device::Cpu).unwrap_or_else(|e| panic!("{e}"));
    Fixture { checkpoint, tokenizer, model }
}

impl Fixture {
    pub fn prompt(&self, question: &str, image: Option<&str>, raw: bool) -> PreparedPrompt {
        let image =
            image.map(|i| SourceImage::open(&fixtures().join("tiny").join(i)).unwrap_or_else(|e| panic!("{e}")));
        prepare_prompt(&self.checkpoint, &self.tokenizer, question, image.as_ref(), raw, &Device::Cpu)
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// A committed tiny checkpoint directory.
pub fn tiny(name: &str) -> PathBuf {
    fixtures().join("tiny").join(name)
}

/// A copy of the `trio_small` checkpoint whose tokenizer gives id 200 to another token: same
/// vocabulary size, different meaning of an id, so it cannot guide the others.
pub fn small_with_a_mismatched_tokenizer() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(tiny("trio_small")).unwrap() {
        let e = entry.unwrap();
        std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    let tok_path = dir.path().join("tokenizer.json");
    let mut tok: Value = serde_json::from_str(&std::fs::read_to_string(&tok_path).unwrap()).unwrap();
    let vocab = tok["model"]["vocab"].as_object_mut().unwrap();
    let (name, id) = vocab.iter().find(|(_, v)| v.as_u64() == Some(200)).map(|(k, v)| (k.clone(), v.clone())).unwrap();
    vocab.remove(&name);
    vocab.insert("zzz_not_a_token".into(), id);
    std::fs::write(&tok_path, tok.to_string()).unwrap();
    dir
}

/// The stdout of a command that must have succeeded (its stderr in the failure message).
pub fn ok(out: &std::process::Output) -> String {
    assert!(out.status.success(), "exit {:?}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The stderr of a command that must have failed with exit status 2 and a one-line message.
pub fn one_line_error(out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    stderr
}

/// Asserts that two JSON values (records, traces) are the same up to the last bits of f32:
/// every string, integer, bool and key equal; every fractional number within 1e-5 + 1e-4·|want|.
/// A list of candidates (objects with a `token`) is compared by token, since two candidates
/// whose probabilities differ by less than that may trade places. Logits from forwards over
/// different numbers of rows differ by about 1e-6 (see tests/decoding.rs).
pub fn assert_json_near(got: &Value, want: &Value, at: &str) {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            let (gk, wk): (Vec<_>, Vec<_>) = (g.keys().collect(), w.keys().collect());
            assert_eq!(gk, wk, "{at}: different fields");
            for (k, v) in w {
                assert_json_near(&g[k], v, &format!("{at}.{k}"));
            }
        }
        (Value::Array(g), Value::Array(w)) => {
            assert_eq!(g.len(), w.len(), "{at}: different lengths");
            let by_token = |a: &[Value]| {
                let mut a = a.to_vec();
                if a.iter().all(|x| x.get("token").is_some_and(Value::is_u64)) {
                    a.sort_by_key(|x| x["token"].as_u64());
                }
                a
            };
            for (i, (a, b)) in by_token(g).iter().zip(&by_token(w)).enumerate() {
                assert_json_near(a, b, &format!("{at}[{i}]"));
            }
        }
        (Value::Number(g), Value::Number(w)) if g.is_f64() || w.is_f64() => {
            let (g, w) = (g.as_f64().unwrap(), w.as_f64().unwrap());
            assert!((g - w).abs() <= 1e-5 + 1e-4 * w.abs(), "{at}: {g} against {w}");
        }
        _ => assert_eq!(got, want, "{at}"),
    }
}
