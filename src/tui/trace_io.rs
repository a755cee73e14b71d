//! Traces and the UI: exporting what is on screen (`x`) with [`crate::trace::TraceWriter`], and
//! building the UI state of `proxythinker replay` from a trace read with [`crate::trace::read`].

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::engine::Record;
use crate::error::Result;
use crate::guidance::Sampling;
use crate::trace::TraceWriter;

use super::app::{App, Mode, SessionInfo};

/// The records of the three streams in the order the engine emits them: step by step, base then
/// RFT then guided.
pub fn records(app: &App) -> Vec<Record> {
    let steps = app.base.len().max(app.rft.len()).max(app.guided.len());
    let mut out = Vec::with_capacity(app.base.len() + app.rft.len() + app.guided.len());
    for s in 0..steps {
        if let Some(r) = app.base.get(s) {
            out.push(Record::Base(r.clone()));
        }
        if let Some(r) = app.rft.get(s) {
            out.push(Record::Rft(r.clone()));
        }
        if let Some(r) = app.guided.get(s) {
            out.push(Record::Guided(r.clone()));
        }
    }
    out
}

/// The trace header for the session on screen.
pub fn header(app: &App) -> Value {
    let info = &app.info;
    json!({
        "models": {"base": info.base, "rft": info.rft, "small": info.small},
        "alpha": app.alpha,
        "sampling": info.sampling,
        "max_new_tokens": info.max_new_tokens,
        "question": info.question,
        "image": info.image_path,
        "device": info.device,
        "dtype": info.dtype,
        "written_by": "proxythinker tui",
    })
}

/// Writes the records on screen to `path` as a trace.
pub fn export(app: &App, path: &Path) -> Result<()> {
    let writer = TraceWriter::create(path)?;
    writer.finish(&header(app), &records(app))
}

/// A fresh export path in `dir`, named after the time.
pub fn export_path(dir: &Path) -> PathBuf {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    dir.join(format!("proxythinker-trace-{secs}.jsonl"))
}

/// The UI state for replaying the trace at `path`. A file that cannot be read as a trace still
/// gives a (empty) state, with the reason on the status line: the UI opens either way.
pub fn replay_app(path: &Path) -> App {
    match crate::trace::read(path) {
        Ok(trace) => {
            let mut app = App::new(info_from_header(path, &trace.header), trace.header["alpha"].as_f64().unwrap_or(0.0) as f32);
            for r in trace.records {
                match r {
                    Record::Base(r) => app.push_base(r),
                    Record::Rft(r) => app.push_rft(r),
                    Record::Guided(r) => app.push_guided(r),
                }
            }
            app.step = app.guided.len();
            // A replay starts at the beginning, not at the newest token as a live run does.
            app.cursor = 0;
            app.follow = false;
            app.scroll = [Some(0); 3];
            app.set_status(format!("replaying {} ({} guided tokens)", path.display(), app.guided.len()));
            app
        }
        Err(e) => {
            let mut app = App::new(empty_info(path), 0.0);
            app.set_error(format!("{e}"));
            app
        }
    }
}

fn empty_info(path: &Path) -> SessionInfo {
    SessionInfo {
        mode: Mode::Replay(path.to_path_buf()),
        base: "—".into(),
        rft: "—".into(),
        small: "—".into(),
        device: "no device".into(),
        dtype: "—".into(),
        sampling: Sampling::Greedy,
        max_new_tokens: 0,
        question: String::new(),
        image_path: None,
    }
}

fn info_from_header(path: &Path, h: &Value) -> SessionInfo {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        other => other.to_string(),
    };
    let mut info = empty_info(path);
    info.base = text(&h["models"]["base"]);
    info.rft = text(&h["models"]["rft"]);
    info.small = text(&h["models"]["small"]);
    info.sampling = serde_json::from_value(h["sampling"].clone()).unwrap_or(Sampling::Greedy);
    info.max_new_tokens = h["max_new_tokens"].as_u64().unwrap_or(0) as usize;
    info.question = h["question"].as_str().unwrap_or_default().to_string();
    info.image_path = h["image"].as_str().map(PathBuf::from);
    if let Some(d) = h["dtype"].as_str() {
        info.dtype = d.to_string();
    }
    if let Some(d) = h["device"].as_str() {
        info.device = format!("recorded on {d}");
    }
    info
}
