//! Datasets for `eval`: a JSON Lines file, one question per line.
//!
//! Each line is an object with `id` (string or number; the line number when absent), `question`,
//! `answer`, optional `image` (a path relative to the file, or the picture itself as base64,
//! optionally as a `data:` URL), optional `choices` (a list of option texts, A first), and any
//! other fields, which are kept and reported (`category`, `skill`, ... group the summary).
//! The paper's datasets keep their own fields: a line with `query_cot` (MathVerse) or `query`
//! (MathVista, whose query already holds its hint and choices) is asked that text as given, as
//! the paper asks them; `options` (MathVision) is read as `choices`. A line
//! that lacks what a question needs is an error naming the file, the line and the field; with
//! `--skip-bad` it becomes a skipped question with that reason.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::processor::SourceImage;

/// One question of a dataset.
#[derive(Debug, Clone)]
pub struct Question {
    pub id: String,
    /// 1-based line of the file, for messages.
    pub line: usize,
    pub question: String,
    pub answer: String,
    pub choices: Vec<String>,
    /// Where the picture is (a path, or "<file>:<line> (base64)").
    pub image: Option<ImageRef>,
    /// The question came from the paper's own prompt field (`query`, `query_cot`): asked as given.
    pub prompt_as_given: bool,
    /// Every other field of the line, reported with the results.
    pub extra: BTreeMap<String, Value>,
}

/// A question's picture, read when the question's turn comes.
#[derive(Debug, Clone)]
pub enum ImageRef {
    Path(PathBuf),
    Base64 { label: PathBuf, data: String },
    /// The encoded picture itself (a parquet image column's `bytes`).
    Bytes { label: PathBuf, data: std::sync::Arc<[u8]> },
}

impl ImageRef {
    pub fn open(&self) -> Result<SourceImage> {
        match self {
            ImageRef::Path(p) => SourceImage::open(p),
            ImageRef::Base64 { label, data } => {
                let payload = data.split_once("base64,").map_or(data.as_str(), |(_, rest)| rest);
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(payload.trim())
                    .map_err(|e| Error::image(label, format!("the image field is not a path of an existing file nor valid base64 ({e})")))?;
                SourceImage::from_bytes(&bytes, label)
            }
            ImageRef::Bytes { label, data } => SourceImage::from_bytes(data, label),
        }
    }

    /// What the results call the picture.
    pub fn label(&self) -> String {
        match self {
            ImageRef::Path(p) => p.display().to_string(),
            ImageRef::Base64 { label, .. } | ImageRef::Bytes { label, .. } => label.display().to_string(),
        }
    }
}

/// A line that could not become a question.
#[derive(Debug, Clone)]
pub struct BadLine {
    pub id: String,
    pub line: usize,
    pub reason: String,
}

/// A dataset read from a file: its questions, and the lines that were refused (only kept with
/// `skip_bad`; otherwise the first is an error).
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The file, or what names the dataset (`owner/name@commit:split`), for messages and the
    /// run's identity.
    pub path: PathBuf,
    /// The directory name of the paper's output layout (`MathVista-testmini`, or the file's stem).
    pub name: String,
    pub questions: Vec<Question>,
    pub bad: Vec<BadLine>,
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Reads a JSON Lines dataset.
pub fn read_jsonl(path: &Path, skip_bad: bool) -> Result<Dataset> {
    if !path.is_file() {
        return Err(Error::invalid(format!(
            "--data {}: no such file; give a JSON Lines file with one question per line (see the README's eval section)",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut questions = Vec::new();
    let mut bad = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let where_ = format!("{}:{n}", path.display());
        let parsed = parse_line(line, n, dir, &where_);
        match parsed {
            Ok(q) => {
                if !seen.insert(q.id.clone()) {
                    let reason = format!("{where_}: id {:?} is used by an earlier line; ids must be unique", q.id);
                    if !skip_bad {
                        return Err(Error::invalid(reason));
                    }
                    bad.push(BadLine { id: format!("line-{n}"), line: n, reason });
                    continue;
                }
                questions.push(q);
            }
            Err((id, reason)) => {
                if !skip_bad {
                    return Err(Error::invalid(format!("{reason} (or pass --skip-bad to record it as skipped)")));
                }
                bad.push(BadLine { id, line: n, reason });
            }
        }
    }
    if questions.is_empty() && bad.is_empty() {
        return Err(Error::invalid(format!("--data {}: the file holds no questions", path.display())));
    }
    let name = path.file_stem().map_or("dataset".into(), |s| s.to_string_lossy().into_owned());
    Ok(Dataset { path: path.to_path_buf(), name, questions, bad })
}

/// One line as a question, or (its id, why not).
fn parse_line(line: &str, n: usize, dir: &Path, where_: &str) -> std::result::Result<Question, (String, String)> {
    let fallback_id = format!("line-{n}");
    let v: Value = serde_json::from_str(line).map_err(|e| (fallback_id.clone(), format!("{where_}: not a JSON object ({e})")))?;
    let Value::Object(obj) = v else {
        return Err((fallback_id, format!("{where_}: not a JSON object")));
    };
    parse_record(obj, n, dir, where_, None)
}

/// One record (a JSON Lines object, or a parquet row turned into one) as a question, or (its id,
/// why not). `image` is the picture when the caller found it already (a parquet image column);
/// otherwise the `image` field is read as a path relative to `dir` or as base64.
pub(crate) fn parse_record(
    mut obj: serde_json::Map<String, Value>,
    n: usize,
    dir: &Path,
    where_: &str,
    image: Option<ImageRef>,
) -> std::result::Result<Question, (String, String)> {
    let fallback_id = format!("line-{n}");
    // MathVista numbers its questions `pid`, MathVerse `sample_index`.
    let own_id = obj.remove("id").filter(|v| !v.is_null());
    let id = match own_id.or_else(|| ["pid", "sample_index"].iter().find_map(|k| obj.get(*k).filter(|v| !v.is_null()).cloned())) {
        None => fallback_id,
        Some(v) => text_of(&v).ok_or_else(|| (fallback_id.clone(), format!("{where_}: field `id` must be a string or a number")))?,
    };
    let field = |obj: &mut serde_json::Map<String, Value>, name: &str| -> std::result::Result<String, (String, String)> {
        match obj.remove(name) {
            Some(v) => match text_of(&v) {
                Some(s) if !s.trim().is_empty() => Ok(s),
                _ => Err((id.clone(), format!("{where_}: field `{name}` must be a non-empty string"))),
            },
            None => Err((id.clone(), format!("{where_}: field `{name}` is missing"))),
        }
    };
    // The paper's prompt fields come first: they are what it asks (and already list any choices).
    let asked_as_given = ["query_cot", "query"].into_iter().find(|f| obj.get(*f).and_then(text_of).is_some_and(|s| !s.trim().is_empty()));
    let question = match asked_as_given {
        Some(f) => {
            let text = obj.get(f).and_then(text_of).unwrap_or_default();
            // Keep the plain question among the reported fields.
            obj.remove(f);
            text
        }
        None => field(&mut obj, "question")?,
    };
    let answer = field(&mut obj, "answer")?;
    let listed = obj.remove("choices").filter(|v| !v.is_null()).or_else(|| obj.remove("options").filter(|v| !v.is_null()));
    let choices = match listed {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|c| text_of(c).ok_or_else(|| (id.clone(), format!("{where_}: every entry of `choices` must be a string"))))
            .collect::<std::result::Result<Vec<_>, _>>()?,
        Some(_) => return Err((id, format!("{where_}: field `choices` must be a list of strings"))),
    };
    let image = match image {
        Some(found) => {
            obj.remove("image");
            Some(found)
        }
        None => read_image_field(&mut obj, dir, where_).map_err(|reason| (id.clone(), reason))?,
    };
    Ok(Question { id, line: n, question, answer, choices, image, prompt_as_given: asked_as_given.is_some(), extra: obj.into_iter().collect() })
}

/// The `image` field of a record: a path relative to `dir`, base64 text, or absent.
fn read_image_field(obj: &mut serde_json::Map<String, Value>, dir: &Path, where_: &str) -> std::result::Result<Option<ImageRef>, String> {
    Ok(match obj.remove("image") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => {
            let candidate = dir.join(&s);
            if s.starts_with("data:") || (!candidate.exists() && s.len() > 256) {
                Some(ImageRef::Base64 { label: PathBuf::from(format!("{where_} (base64 image)")), data: s })
            } else if candidate.is_file() {
                Some(ImageRef::Path(candidate))
            } else {
                return Err(format!("{where_}: field `image`: {} is not a file", candidate.display()));
            }
        }
        Some(_) => return Err(format!("{where_}: field `image` must be a path or base64 text")),
    })
}

/// The prompt of a question before the suffix: the question as given, and for multiple choice
/// the options as the paper's code lists them for MathVision (a hint, the question, then
/// "(A) ..." lines).
pub fn prompt_text(q: &Question) -> String {
    if q.choices.is_empty() || q.prompt_as_given {
        return q.question.clone();
    }
    let list: Vec<String> = q.choices.iter().enumerate().map(|(i, c)| format!("({}) {c}", (b'A' + i as u8) as char)).collect();
    format!(
        "Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, E, at the end.\nQuestion: {}\nChoices:\n{}",
        q.question,
        list.join("\n")
    )
}

/// Keeps the questions of shard `index` of `count` (every count-th, from index) and at most `limit`.
pub fn select(questions: Vec<Question>, shard: Option<(usize, usize)>, limit: Option<usize>) -> Vec<Question> {
    let picked = questions.into_iter().enumerate().filter(|(i, _)| shard.is_none_or(|(k, n)| i % n == k)).map(|(_, q)| q);
    match limit {
        Some(l) => picked.take(l).collect(),
        None => picked.collect(),
    }
}
