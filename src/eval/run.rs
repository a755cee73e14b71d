//! Running a dataset: every question through one guided session, all three streams graded, an α
//! sweep on top, results that survive a crash, a summary.
//!
//! Per question one [`Sweep`](crate::engine::Sweep) decodes every α at once: each model is
//! prefilled once, and the base-alone and RFT-alone streams (which do not depend on α) and one
//! guided stream per α decode as rows of one batch, each row leaving the batch when its stream
//! ends; each stream is what `run` gives at that α.
//!
//! `DIR/results.jsonl` gets one line per question × stream (× α for guided), appended and
//! flushed as each question finishes, so a crash loses at most the question in flight; running
//! the same command again resumes after the last complete question. `DIR/run.json` records what
//! the run is (models, α list, prompt suffix, decoding, dataset): a resume with other settings is
//! refused. `DIR/summary.json` and the table on stdout give each stream's accuracy with a 95%
//! Wilson interval, per category where the dataset has one, and the questions guidance turned
//! from wrong to right and back. `DIR/<dataset>/<stream>.jsonl` hold `prompt` and
//! `generated_text` per question, the layout of the paper's own scorer.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::dataset::{prompt_text, Dataset, Question};
use super::grade::grade;
use crate::engine::{GuidedRecord, Record, Stop, StreamRecord, SweepStream};
use crate::error::{Error, Result};
use crate::plan::{Inputs, SessionPlan};

/// What an eval run does besides its plan and dataset.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub alphas: Vec<f32>,
    pub out: PathBuf,
    /// Keep each question's trace (at each α) for `replay`.
    pub traces: bool,
    /// Record bad questions (a broken image, ...) as skipped instead of stopping.
    pub skip_bad: bool,
}

/// One line of results.jsonl.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResultLine {
    pub id: String,
    /// "base", "rft", "guided", or "skipped".
    pub stream: String,
    /// α of a guided line.
    pub alpha: Option<f32>,
    pub prompt: String,
    pub response: String,
    pub extracted: Option<String>,
    pub correct: bool,
    pub tokens: usize,
    /// eos, stop_string, max_new_tokens, error; for a skipped question, why.
    pub stop: String,
    /// The question's wall time, prefill included, the same on each of its lines: its streams
    /// decode as rows of one batch (0 for a skipped question).
    pub seconds: f64,
    pub answer: String,
    /// The dataset line's other fields (category, skill, ...).
    #[serde(default)]
    pub fields: BTreeMap<String, Value>,
}

/// What `run.json` holds: a resume must match it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunIdentity {
    pub models: crate::trio::PerModel<String>,
    pub alphas: Vec<f32>,
    pub suffix: String,
    pub sampling: crate::guidance::Sampling,
    pub max_new_tokens: usize,
    pub stop_strings: Vec<String>,
    pub stop_at_eos: bool,
    pub dataset: PathBuf,
}

impl RunIdentity {
    pub fn of(plan: &SessionPlan, dataset: &Path, alphas: &[f32]) -> RunIdentity {
        RunIdentity {
            models: plan.references.clone(),
            alphas: alphas.to_vec(),
            suffix: plan.settings.suffix.value.text().to_string(),
            sampling: plan.decoding.sampling,
            max_new_tokens: plan.decoding.max_new_tokens,
            stop_strings: plan.decoding.stop_strings.clone(),
            stop_at_eos: plan.decoding.stop_at_eos,
            dataset: dataset.to_path_buf(),
        }
    }

    /// The first difference from `other`, in words.
    fn difference(&self, other: &RunIdentity) -> Option<String> {
        let say = |what: &str, a: String, b: String| Some(format!("{what} was {a}, now {b}"));
        if self.models != other.models {
            return say("the models", format!("{:?}", self.models), format!("{:?}", other.models));
        }
        if self.alphas != other.alphas {
            return say("the α list", format!("{:?}", self.alphas), format!("{:?}", other.alphas));
        }
        if self.suffix != other.suffix {
            return say("the prompt suffix", format!("{:?}", self.suffix), format!("{:?}", other.suffix));
        }
        if self.dataset != other.dataset {
            return say("the dataset", self.dataset.display().to_string(), other.dataset.display().to_string());
        }
        if self != other {
            return Some("the decoding settings (sampling, max-new-tokens or stop rules) differ".into());
        }
        None
    }
}

/// The streams a question is complete with: base, rft, one guided line per α.
fn expected_lines(alphas: &[f32]) -> usize {
    2 + alphas.len()
}

/// Reads earlier results, keeping only complete questions (a crash may leave a torn last line or
/// a question half written), and rewrites the file with them.
fn resume(path: &Path, alphas: &[f32]) -> Result<Vec<ResultLine>> {
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    let mut lines: Vec<ResultLine> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        match serde_json::from_str::<ResultLine>(line) {
            Ok(l) => lines.push(l),
            // Only the last line may be torn by a crash.
            Err(_) if i + 1 == text.lines().count() => {}
            Err(e) => {
                return Err(Error::invalid(format!(
                    "{}:{}: not a result line ({e}); remove the file or choose another --out",
                    path.display(),
                    i + 1
                )))
            }
        }
    }
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for l in &lines {
        *count.entry(l.id.clone()).or_default() += 1;
    }
    let complete = |l: &ResultLine| l.stream == "skipped" || count.get(&l.id) == Some(&expected_lines(alphas));
    let kept: Vec<ResultLine> = lines.into_iter().filter(complete).collect();
    let body: String = kept.iter().map(|l| serde_json::to_string(l).expect("a result line encodes") + "\n").collect();
    let temp = path.with_extension("jsonl.tmp");
    std::fs::write(&temp, body).map_err(|source| Error::Io { path: temp.clone(), source })?;
    std::fs::rename(&temp, path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    Ok(kept)
}

/// The records of one α's streams, step by step, base then RFT then guided (as the engine emits
/// them, and as `run --trace` writes them).
fn records_of(base: &[StreamRecord], rft: &[StreamRecord], guided: &[GuidedRecord]) -> Vec<Record> {
    let steps = base.len().max(rft.len()).max(guided.len());
    let mut out = Vec::new();
    for s in 0..steps {
        out.extend(base.get(s).cloned().map(Record::Base));
        out.extend(rft.get(s).cloned().map(Record::Rft));
        out.extend(guided.get(s).cloned().map(Record::Guided));
    }
    out
}

fn stop_name(stop: Option<&Stop>) -> String {
    match stop {
        Some(Stop::Eos) => "eos".into(),
        Some(Stop::StopString(_)) => "stop_string".into(),
        Some(Stop::MaxNewTokens) => "max_new_tokens".into(),
        Some(Stop::Error(e)) => format!("error: {e}"),
        None => "none".into(),
    }
}

/// A file name for an id (ids are the dataset's: anything).
fn safe_name(id: &str) -> String {
    id.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect()
}

/// Decodes one question at every α at once (one [`Sweep`]) and grades its streams. Every line
/// of the question gets its wall time, prefill included, in `seconds`: the streams decode as
/// rows of one batch, so none has a time of its own.
fn run_question(plan: &SessionPlan, q: &Question, opts: &EvalOptions) -> Result<Vec<ResultLine>> {
    let image = q.image.as_ref().map(|i| i.open()).transpose()?;
    let inputs = Inputs { question: prompt_text(q), image };
    let prompt = plan.prompt(&inputs)?;
    let started = Instant::now();
    let mut sweep = plan.sweep(&prompt, &opts.alphas)?;
    sweep.run_to_end()?;
    let seconds = started.elapsed().as_secs_f64();
    let line = |stream: &str, s: SweepStream, alpha: Option<f32>| -> Result<ResultLine> {
        let response = sweep.text(s)?;
        let g = grade(&q.answer, &q.choices, &response);
        Ok(ResultLine {
            id: q.id.clone(),
            stream: stream.into(),
            alpha,
            prompt: prompt.text.clone(),
            response,
            extracted: g.extracted,
            correct: g.correct,
            tokens: sweep.tokens(s).len(),
            stop: stop_name(sweep.stop(s)),
            seconds,
            answer: q.answer.clone(),
            fields: q.extra.clone(),
        })
    };
    let mut out = vec![line("base", SweepStream::Base, None)?, line("rft", SweepStream::Rft, None)?];
    for (i, &alpha) in opts.alphas.iter().enumerate() {
        out.push(line("guided", SweepStream::Guided(i), Some(alpha))?);
        if opts.traces {
            let dir = opts.out.join("traces");
            std::fs::create_dir_all(&dir).map_err(|source| Error::Io { path: dir.clone(), source })?;
            let path = dir.join(format!("{}-alpha{alpha}.jsonl", safe_name(&q.id)));
            let writer = crate::trace::TraceWriter::create(&path)?;
            let records = records_of(sweep.stream_records(SweepStream::Base), sweep.stream_records(SweepStream::Rft), sweep.guided_records(i));
            writer.finish(&plan.trace_header("proxythinker eval", &inputs, &prompt, alpha), &records)?;
        }
    }
    Ok(out)
}

fn skipped(q_id: &str, answer: &str, reason: &str) -> ResultLine {
    ResultLine {
        id: q_id.into(),
        stream: "skipped".into(),
        alpha: None,
        prompt: String::new(),
        response: String::new(),
        extracted: None,
        correct: false,
        tokens: 0,
        stop: reason.into(),
        seconds: 0.0,
        answer: answer.into(),
        fields: BTreeMap::new(),
    }
}

/// Makes the output directory, or checks that it holds this same run (a resume); `run` does it
/// too, and a front end calls it first so that a refusal comes before anything else is said.
pub fn claim_out(plan: &SessionPlan, dataset: &Dataset, opts: &EvalOptions) -> Result<()> {
    if opts.alphas.is_empty() {
        return Err(Error::invalid("--alphas is empty: give at least one α, e.g. --alphas 0.5"));
    }
    std::fs::create_dir_all(&opts.out)
        .map_err(|e| Error::invalid(format!("--out {}: cannot create the directory ({e}); choose a writable place", opts.out.display())))?;
    let identity = RunIdentity::of(plan, &dataset.path, &opts.alphas);
    let id_path = opts.out.join("run.json");
    if id_path.is_file() {
        let text = std::fs::read_to_string(&id_path).map_err(|source| Error::Io { path: id_path.clone(), source })?;
        let earlier: RunIdentity = serde_json::from_str(&text)
            .map_err(|e| Error::invalid(format!("{}: not a proxythinker eval run ({e}); choose another --out", id_path.display())))?;
        if let Some(diff) = earlier.difference(&identity) {
            return Err(Error::invalid(format!(
                "--out {} holds another run ({diff}); choose another --out, or remove the directory to start over",
                opts.out.display()
            )));
        }
    } else {
        let text = serde_json::to_string_pretty(&identity).map_err(|e| Error::invalid(format!("run.json: {e}")))?;
        std::fs::write(&id_path, text + "\n").map_err(|source| Error::Io { path: id_path.clone(), source })?;
    }
    Ok(())
}

/// Runs the dataset (resuming from `opts.out` when it holds the same run) and writes the summary.
pub fn run(plan: &SessionPlan, dataset: &Dataset, questions: &[Question], opts: &EvalOptions) -> Result<Summary> {
    claim_out(plan, dataset, opts)?;
    let results_path = opts.out.join("results.jsonl");
    let mut results = resume(&results_path, &opts.alphas)?;
    let done: BTreeSet<String> = results.iter().map(|l| l.id.clone()).collect();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&results_path)
        .map_err(|source| Error::Io { path: results_path.clone(), source })?;
    let mut append = |lines: &[ResultLine], results: &mut Vec<ResultLine>| -> Result<()> {
        let body: String = lines.iter().map(|l| serde_json::to_string(l).expect("a result line encodes") + "\n").collect();
        file.write_all(body.as_bytes()).and_then(|_| file.flush()).map_err(|source| Error::Io { path: results_path.clone(), source })?;
        results.extend_from_slice(lines);
        Ok(())
    };
    for bad in &dataset.bad {
        if !done.contains(&bad.id) {
            append(&[skipped(&bad.id, "", &bad.reason)], &mut results)?;
        }
    }
    let todo: Vec<&Question> = questions.iter().filter(|q| !done.contains(&q.id)).collect();
    let bar = indicatif::ProgressBar::new(todo.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} questions, ETA {eta} · {msg}")
            .expect("a valid template"),
    );
    // A test hook: abort (as a crash would) after this many questions.
    let abort_after: Option<usize> = std::env::var("PROXYTHINKER_TEST_EVAL_ABORT_AFTER").ok().and_then(|v| v.parse().ok());
    let started = Instant::now();
    let mut tokens = 0usize;
    for (k, q) in todo.iter().enumerate() {
        let lines = match run_question(plan, q, opts) {
            Ok(lines) => lines,
            Err(e) if opts.skip_bad => vec![skipped(&q.id, &q.answer, &e.to_string())],
            Err(e) => return Err(Error::invalid(format!("{}:{}: question {:?}: {e}", dataset.path.display(), q.line, q.id))),
        };
        tokens += lines.iter().map(|l| l.tokens).sum::<usize>();
        append(&lines, &mut results)?;
        tracing::info!("eval: question {} done ({} of {})", q.id, k + 1, todo.len());
        bar.inc(1);
        bar.set_message(format!(
            "{} · {:.1} tokens/s",
            running_accuracy(&results, &opts.alphas),
            tokens as f64 / started.elapsed().as_secs_f64().max(1e-9)
        ));
        if abort_after == Some(k + 1) {
            std::process::abort();
        }
    }
    bar.finish_and_clear();
    let summary = Summary::of(&results, &opts.alphas, questions);
    let text = serde_json::to_string_pretty(&summary.to_json()).map_err(|e| Error::invalid(format!("summary: {e}")))?;
    let summary_path = opts.out.join("summary.json");
    std::fs::write(&summary_path, text + "\n").map_err(|source| Error::Io { path: summary_path, source })?;
    write_paper_layout(&opts.out, &dataset.name, questions, &results)?;
    Ok(summary)
}

fn running_accuracy(results: &[ResultLine], alphas: &[f32]) -> String {
    let acc = |stream: &str, alpha: Option<f32>| {
        let lines: Vec<&ResultLine> = results.iter().filter(|l| l.stream == stream && l.alpha == alpha).collect();
        let right = lines.iter().filter(|l| l.correct).count();
        format!("{}/{}", right, lines.len())
    };
    let mut parts = vec![format!("base {}", acc("base", None)), format!("rft {}", acc("rft", None))];
    parts.extend(alphas.iter().map(|a| format!("α={a} {}", acc("guided", Some(*a)))));
    parts.join(" · ")
}

/// The paper's layout: one file per stream (and α) under `DIR/<dataset name>/`, one line per
/// question in dataset order, with `prompt` and `generated_text`.
fn write_paper_layout(out: &Path, name: &str, questions: &[Question], results: &[ResultLine]) -> Result<()> {
    let dir = out.join(name);
    std::fs::create_dir_all(&dir).map_err(|source| Error::Io { path: dir.clone(), source })?;
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    for q in questions {
        for l in results.iter().filter(|l| l.id == q.id && l.stream != "skipped") {
            let file = match l.alpha {
                Some(a) => format!("guided-alpha{a}.jsonl"),
                None => format!("{}.jsonl", l.stream),
            };
            let row = json!({"id": l.id, "prompt": l.prompt, "generated_text": l.response, "answer": l.answer});
            files.entry(file).or_default().push_str(&format!("{row}\n"));
        }
    }
    for (file, body) in files {
        let path = dir.join(file);
        std::fs::write(&path, body).map_err(|source| Error::Io { path, source })?;
    }
    Ok(())
}

/// An accuracy with its 95% Wilson interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Accuracy {
    pub correct: usize,
    pub total: usize,
    pub accuracy: f64,
    pub low: f64,
    pub high: f64,
}

impl Accuracy {
    pub fn of(correct: usize, total: usize) -> Accuracy {
        let (lo, hi) = wilson(correct, total);
        Accuracy { correct, total, accuracy: if total == 0 { 0.0 } else { correct as f64 / total as f64 }, low: lo, high: hi }
    }
}

/// The 95% Wilson score interval of `k` successes in `n` trials.
pub fn wilson(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z = 1.959_963_984_540_054_f64;
    let (n, p) = (n as f64, k as f64 / n as f64);
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * ((p * (1.0 - p) / n) + z * z / (4.0 * n * n)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Accuracies of every stream (guided per α), overall and per category, and where guidance
/// changed the base's verdict.
#[derive(Debug, Clone)]
pub struct Summary {
    pub alphas: Vec<f32>,
    /// (stream label, accuracy): "base", "rft", "guided α=0.5", ...
    pub overall: Vec<(String, Accuracy)>,
    /// category → (stream label, accuracy).
    pub per_category: BTreeMap<String, Vec<(String, Accuracy)>>,
    /// Per α: ids the guided stream got right where the base was wrong, and the reverse.
    pub fixed: Vec<(f32, Vec<String>)>,
    pub broken: Vec<(f32, Vec<String>)>,
    pub skipped: usize,
}

/// The fields a summary groups by, when the dataset has them.
/// MathVista keeps them under `metadata`, and MathVerse's `problem_version` is its main split.
const CATEGORY_FIELDS: [&str; 6] = ["category", "skill", "skills", "subject", "task", "problem_version"];

fn categories(l: &ResultLine) -> Vec<String> {
    let mut out = Vec::new();
    let nested = l.fields.get("metadata").and_then(Value::as_object);
    for f in CATEGORY_FIELDS {
        match l.fields.get(f).or_else(|| nested.and_then(|m| m.get(f))) {
            Some(Value::String(s)) => out.push(format!("{f}={s}")),
            Some(Value::Array(items)) => out.extend(items.iter().filter_map(|v| v.as_str()).map(|s| format!("{f}={s}"))),
            _ => {}
        }
    }
    out
}

impl Summary {
    pub fn of(results: &[ResultLine], alphas: &[f32], questions: &[Question]) -> Summary {
        let ids: BTreeSet<&str> = questions.iter().map(|q| q.id.as_str()).collect();
        let graded: Vec<&ResultLine> = results.iter().filter(|l| l.stream != "skipped" && ids.contains(l.id.as_str())).collect();
        let streams: Vec<(String, &str, Option<f32>)> = [("base".to_string(), "base", None), ("rft".to_string(), "rft", None)]
            .into_iter()
            .chain(alphas.iter().map(|a| (format!("guided α={a}"), "guided", Some(*a))))
            .collect();
        let accuracy = |lines: &[&&ResultLine], stream: &str, alpha: Option<f32>| {
            let mine: Vec<_> = lines.iter().filter(|l| l.stream == stream && l.alpha == alpha).collect();
            Accuracy::of(mine.iter().filter(|l| l.correct).count(), mine.len())
        };
        let all: Vec<&&ResultLine> = graded.iter().collect();
        let overall = streams.iter().map(|(label, s, a)| (label.clone(), accuracy(&all, s, *a))).collect();
        let mut cats: BTreeSet<String> = BTreeSet::new();
        for l in &graded {
            cats.extend(categories(l));
        }
        let per_category = cats
            .into_iter()
            .map(|c| {
                let lines: Vec<&&ResultLine> = graded.iter().filter(|l| categories(l).contains(&c)).collect();
                let row = streams.iter().map(|(label, s, a)| (label.clone(), accuracy(&lines, s, *a))).collect();
                (c, row)
            })
            .collect();
        let verdict = |id: &str, stream: &str, alpha: Option<f32>| {
            graded.iter().find(|l| l.id == id && l.stream == stream && l.alpha == alpha).map(|l| l.correct)
        };
        let base_ids: Vec<&str> = graded.iter().filter(|l| l.stream == "base").map(|l| l.id.as_str()).collect();
        let changed = |from: bool| {
            alphas
                .iter()
                .map(|a| {
                    let ids = base_ids
                        .iter()
                        .filter(|id| verdict(id, "base", None) == Some(from) && verdict(id, "guided", Some(*a)) == Some(!from))
                        .map(|s| s.to_string())
                        .collect();
                    (*a, ids)
                })
                .collect()
        };
        let skipped = results.iter().filter(|l| l.stream == "skipped").count();
        Summary { alphas: alphas.to_vec(), overall, per_category, fixed: changed(false), broken: changed(true), skipped }
    }

    pub fn to_json(&self) -> Value {
        let rows = |rows: &[(String, Accuracy)]| -> Value {
            Value::Object(rows.iter().map(|(k, a)| (k.clone(), serde_json::to_value(a).expect("encodes"))).collect())
        };
        json!({
            "alphas": self.alphas,
            "accuracy": rows(&self.overall),
            "per_category": self.per_category.iter().map(|(c, r)| (c.clone(), rows(r))).collect::<serde_json::Map<_, _>>(),
            "guided_fixed_base": self.fixed.iter().map(|(a, ids)| json!({"alpha": a, "ids": ids})).collect::<Vec<_>>(),
            "guided_broke_base": self.broken.iter().map(|(a, ids)| json!({"alpha": a, "ids": ids})).collect::<Vec<_>>(),
            "skipped": self.skipped,
        })
    }

    /// The table printed on stdout.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let line = |s: &mut String, label: &str, a: &Accuracy| {
            s.push_str(&format!(
                "{label:<16} {:>6.1}%  [{:>5.1}, {:>5.1}]  {}/{}\n",
                100.0 * a.accuracy,
                100.0 * a.low,
                100.0 * a.high,
                a.correct,
                a.total
            ));
        };
        s.push_str(&format!("{:<16} {:>7}  {:>14}  right/total\n", "stream", "accuracy", "95% interval"));
        for (label, a) in &self.overall {
            line(&mut s, label, a);
        }
        for (cat, rows) in &self.per_category {
            s.push_str(&format!("\n{cat}\n"));
            for (label, a) in rows {
                line(&mut s, label, a);
            }
        }
        for ((a, fixed), (_, broken)) in self.fixed.iter().zip(&self.broken) {
            s.push_str(&format!("\nα={a}: guidance fixed {} base answers and broke {}\n", fixed.len(), broken.len()));
        }
        if self.skipped > 0 {
            s.push_str(&format!("{} questions skipped (see results.jsonl)\n", self.skipped));
        }
        s
    }
}
