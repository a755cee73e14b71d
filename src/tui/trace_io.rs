//! Traces and the UI: exporting what is on screen (`x`) with [`crate::trace::TraceWriter`] under
//! the same typed header `run --trace` writes, and building the UI state of `proxythinker
//! replay` from a trace streamed with [`crate::trace::TraceReader`].

use std::path::{Path, PathBuf};

use crate::engine::Record;
use crate::error::Result;
use crate::guidance::Sampling;
use crate::trace::{TraceHeader, TraceWriter};

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

/// Writes the records on screen to `path` as a trace with `header`; an existing file at `path`
/// is never replaced (that is an error).
pub fn export(app: &App, header: &TraceHeader, path: &Path) -> Result<()> {
    let writer = TraceWriter::create_new(path, "the export")?;
    writer.finish(header, &records(app))
}

/// A fresh export path in `dir`, named after the time.
pub fn export_path(dir: &Path) -> PathBuf {
    export_candidate(dir, 1)
}

/// The `n`-th name tried for an export made now: `proxythinker-trace-<secs>.jsonl`, then
/// `proxythinker-trace-<secs>-2.jsonl`, ...
fn export_candidate(dir: &Path, n: u32) -> PathBuf {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    match n {
        1 => dir.join(format!("proxythinker-trace-{secs}.jsonl")),
        n => dir.join(format!("proxythinker-trace-{secs}-{n}.jsonl")),
    }
}

/// Exports into `dir` under a name no file has yet (two exports within one second get two
/// files); returns the path written.
pub fn export_new(app: &App, header: &TraceHeader, dir: &Path) -> Result<PathBuf> {
    let mut n = 1;
    loop {
        let path = export_candidate(dir, n);
        match export(app, header, &path) {
            Ok(()) => return Ok(path),
            Err(e) if crate::trace::is_already_exists(&e) && n < 1000 => n += 1,
            Err(e) => return Err(e),
        }
    }
}

/// The UI state for replaying the trace at `path`, and the trace's header. A file that cannot be
/// read as a trace still gives a (empty) state, with the reason on the status line: the UI
/// opens either way.
pub fn replay(path: &Path) -> (App, Option<TraceHeader>) {
    replay_with_progress(path, &mut |_, _| {})
}

/// [`replay`], reporting `progress(bytes read, file size)` while the trace is read. Records
/// go into the UI state as they are read (nothing else holds them), and reading stops once the
/// records kept reach [`crate::limits::REPLAY_BYTES`] of trace lines, with a note on the status
/// line: memory stays bounded however long the trace is.
pub fn replay_with_progress(path: &Path, progress: &mut dyn FnMut(u64, u64)) -> (App, Option<TraceHeader>) {
    let failed = |e: crate::error::Error| {
        let mut app = App::new(empty_info(path), 0.0);
        app.set_error(format!("{e}"));
        (app, None)
    };
    let mut reader = match crate::trace::TraceReader::open(path) {
        Ok(r) => r,
        Err(e) => return failed(e),
    };
    let header = reader.header.clone();
    let mut app = App::new(info_from_header(path, &header), header.alpha);
    // The prompts say which streams began inside a think segment (the RFT model's own prompt
    // with --own-templates, else the base model's for all three).
    let base_opens = crate::think::ends_open(&header.prompt);
    let rft_opens = header.own_prompts.as_ref().map_or(base_opens, |own| crate::think::ends_open(&own.rft.text));
    app.think_at_start = [base_opens, rft_opens, base_opens];
    let cap = crate::limits::REPLAY_BYTES;
    let (limit, mut kept, mut reported) = (cap.get(), 0u64, 0u64);
    let mut cut = false;
    loop {
        match reader.next_record() {
            Ok(Some(r)) => {
                kept += reader.last_line_bytes();
                match r {
                    Record::Base(r) => app.push_base(r),
                    Record::Rft(r) => app.push_rft(r),
                    Record::Guided(r) => app.push_guided(r),
                }
            }
            Ok(None) => break,
            Err(e) => return failed(e),
        }
        if reader.bytes_read() - reported >= crate::trace::PROGRESS_EVERY {
            reported = reader.bytes_read();
            progress(reported, reader.file_size());
        }
        if kept >= limit {
            cut = true;
            break;
        }
    }
    progress(reader.file_size(), reader.file_size());
    app.step = app.guided.len();
    // A replay starts at the beginning, not at the newest token as a live run does.
    app.cursor = 0;
    app.follow = false;
    app.scroll = [Some(0); 3];
    if cut {
        let share = reader.bytes_read().saturating_mul(100) / reader.file_size().max(1);
        app.set_status(format!(
            "replaying {}: only its first {} guided tokens ({share}% of the file): the rest would pass {} ({limit} bytes of records); raise it to replay more",
            path.display(),
            app.guided.len(),
            cap.var
        ));
    } else {
        app.set_status(format!("replaying {} ({} guided tokens)", path.display(), app.guided.len()));
    }
    (app, Some(header))
}

/// [`replay`] without the header.
pub fn replay_app(path: &Path) -> App {
    replay(path).0
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

fn info_from_header(path: &Path, h: &TraceHeader) -> SessionInfo {
    SessionInfo {
        base: h.models.base.clone(),
        rft: h.models.rft.clone(),
        small: h.models.small.clone(),
        device: format!("recorded on {}", h.device_summary()),
        dtype: h.dtype_summary(),
        sampling: h.sampling,
        max_new_tokens: h.max_new_tokens,
        question: h.question.clone(),
        image_path: h.image.clone(),
        ..empty_info(path)
    }
}
