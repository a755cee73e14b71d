//! The trace file: a session's records as JSON Lines.
//!
//! The first line is the header, one typed [`TraceHeader`] (`"type": "header"`, `"version": 3`:
//! who wrote it, the three models with each one's device and dtype, α, sampling, limits and stop
//! rules, the question, suffix, image, the prompt and its ids, the shared vocabulary, and with
//! `--own-templates` the RFT and small models' own prompts in `own_prompts`), written by
//! `run --trace` and the UI's export alike and read by `replay`. Version 1 headers (written
//! before the header was typed, by `run` with `placement` and by the UI with `device`/`dtype`
//! summaries) are still read. Version 3 has the header of version 2; its guided records add
//! `why` (the tokens that mattered at the step, see [`crate::engine::Why`]), which version 2
//! traces lack and are read without. Every further line is one token of one stream
//! (`"type": "token"`, `"stream": "base" | "rft" | "guided"`, then the record's fields). The file
//! is written to a temporary name beside the target and renamed into place, so a reader never
//! sees half a trace; the temporary file is created before decoding starts, so an unwritable
//! path, a directory or a special file at the target fails at once. The UI's exports never
//! replace a file ([`TraceWriter::create_new`]: the final step is a hard link, which fails if
//! the name exists). [`TraceReader`] reads one back a record at a time (`replay` keeps what it
//! reads and nothing more); [`read`] collects them all. `pandas.read_json(path, lines=True)` reads it.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::engine::Record;
use crate::error::{Error, Result};
use crate::guidance::Sampling;
use crate::trio::PerModel;

/// The version [`TraceWriter`] writes.
pub const FORMAT_VERSION: u32 = 3;

/// Where one model ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelPlace {
    pub device: String,
    pub dtype: String,
}

/// The first line of a trace: what the session was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceHeader {
    /// "proxythinker run", "proxythinker tui".
    pub written_by: String,
    /// The models as the user named them (checkpoint directories or Hub repo ids).
    pub models: PerModel<String>,
    pub preset: Option<String>,
    pub placement: PerModel<ModelPlace>,
    /// α of the guided stream's records.
    pub alpha: f32,
    pub sampling: Sampling,
    pub max_new_tokens: usize,
    pub stop_strings: Vec<String>,
    pub stop_at_eos: bool,
    /// The question as typed; `suffix` is appended to it before the chat template.
    pub question: String,
    pub suffix: String,
    pub image: Option<PathBuf>,
    /// The prompt text after the chat template, and its ids.
    pub prompt: String,
    pub input_ids: Vec<u32>,
    pub shared_vocab: usize,
    /// With `--own-templates`, the RFT and small models' own prompts (`prompt` and `input_ids`
    /// above are the base model's); absent when the base model's prompt served all three.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub own_prompts: Option<OwnPrompts>,
}

/// One model's prompt: its text after the chat template, and its ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TracePrompt {
    pub text: String,
    pub input_ids: Vec<u32>,
}

/// The prompts of the two small models when each had its own chat template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwnPrompts {
    pub rft: TracePrompt,
    pub small: TracePrompt,
}

impl TraceHeader {
    /// "cpu", or "base cuda:0, rft cuda:1, small cuda:1" when the models ran apart.
    pub fn device_summary(&self) -> String {
        summary(self.placement.as_ref().map(|p| p.device.clone()))
    }

    /// "f32", or each model's dtype when they differ.
    pub fn dtype_summary(&self) -> String {
        summary(self.placement.as_ref().map(|p| p.dtype.clone()))
    }
}

fn summary(v: PerModel<String>) -> String {
    if v.all_equal() {
        v.base
    } else {
        format!("base {}, rft {}, small {}", v.base, v.rft, v.small)
    }
}

/// A version 1 header: every field optional, as the two writers of that time each left some out.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct HeaderV1 {
    written_by: Option<String>,
    models: Option<PerModel<Option<String>>>,
    preset: Option<String>,
    /// `run --trace` wrote each model's place...
    placement: Option<PerModel<ModelPlace>>,
    /// ... and the UI's export one summary of each.
    device: Option<String>,
    dtype: Option<String>,
    alpha: Option<f32>,
    sampling: Option<Sampling>,
    max_new_tokens: Option<usize>,
    stop_strings: Option<Vec<String>>,
    stop_at_eos: Option<bool>,
    question: Option<String>,
    suffix: Option<String>,
    image: Option<PathBuf>,
    prompt: Option<String>,
    input_ids: Option<Vec<u32>>,
    shared_vocab: Option<usize>,
}

/// Reads a summary written by version 1 ("cpu", or "base cuda:0, rft cuda:1, small cuda:1").
fn from_summary(s: &str) -> PerModel<String> {
    let parts: Vec<&str> = s.split(", ").collect();
    let named = |prefix: &str| parts.iter().find_map(|p| p.strip_prefix(prefix)).map(str::to_string);
    match (named("base "), named("rft "), named("small ")) {
        (Some(b), Some(r), Some(sm)) => PerModel::new(b, r, sm),
        _ => PerModel::from_fn(|_| s.to_string()),
    }
}

impl HeaderV1 {
    fn upgrade(self) -> TraceHeader {
        let unknown = || "unknown".to_string();
        let placement = self.placement.unwrap_or_else(|| {
            let devices = self.device.as_deref().map_or_else(|| PerModel::from_fn(|_| unknown()), from_summary);
            let dtypes = self.dtype.as_deref().map_or_else(|| PerModel::from_fn(|_| unknown()), from_summary);
            devices.zip(dtypes).map(|(device, dtype)| ModelPlace { device, dtype })
        });
        TraceHeader {
            written_by: self.written_by.unwrap_or_else(|| "proxythinker run".into()),
            models: self.models.unwrap_or_default().map(|m| m.unwrap_or_else(|| "—".into())),
            preset: self.preset,
            placement,
            alpha: self.alpha.unwrap_or(0.0),
            sampling: self.sampling.unwrap_or(Sampling::Greedy),
            max_new_tokens: self.max_new_tokens.unwrap_or(0),
            stop_strings: self.stop_strings.unwrap_or_default(),
            stop_at_eos: self.stop_at_eos.unwrap_or(true),
            question: self.question.unwrap_or_default(),
            suffix: self.suffix.unwrap_or_default(),
            image: self.image,
            prompt: self.prompt.unwrap_or_default(),
            input_ids: self.input_ids.unwrap_or_default(),
            shared_vocab: self.shared_vocab.unwrap_or(0),
            own_prompts: None,
        }
    }
}

/// Reads a header line's JSON of any version this build knows.
pub fn parse_header(v: Value) -> std::result::Result<TraceHeader, String> {
    if v["type"] != "header" {
        return Err("the first line must be the header".into());
    }
    match v["version"].as_u64() {
        Some(1) => serde_json::from_value::<HeaderV1>(v).map(HeaderV1::upgrade).map_err(|e| e.to_string()),
        // Version 3 changed the records (`why`), not the header.
        Some(2 | 3) => serde_json::from_value::<TraceHeader>(v).map_err(|e| e.to_string()),
        Some(n) => Err(format!(
            "format version {n} is newer than this build reads (up to {FORMAT_VERSION}); update proxythinker"
        )),
        None => Err("the header has no format version".into()),
    }
}

/// A trace being written: the temporary file exists from `create` on.
pub struct TraceWriter {
    target: PathBuf,
    temp: PathBuf,
    file: std::fs::File,
    /// Never replace an existing file at `target`.
    no_clobber: bool,
    /// What named the target, for messages ("--trace", "the export").
    label: String,
}

impl TraceWriter {
    /// Creates the temporary file beside `path` (`--trace`), failing now if the place is not
    /// writable or `path` is a directory or a special file. An existing regular file is replaced.
    pub fn create(path: &Path) -> Result<Self> {
        Self::open(path, "--trace", false)
    }

    /// As [`create`](Self::create), for a file that must not exist yet: [`finish`](Self::finish)
    /// fails with `AlreadyExists` (see [`is_already_exists`]) rather than replace one.
    pub fn create_new(path: &Path, label: &str) -> Result<Self> {
        Self::open(path, label, true)
    }

    fn open(path: &Path, label: &str, no_clobber: bool) -> Result<Self> {
        let shown = path.display();
        let name = path.file_name().ok_or_else(|| Error::invalid(format!("{label} {shown}: not a file path; name a file")))?;
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => {
                return Err(Error::invalid(format!(
                    "{label} {shown}: is a directory; name a file, e.g. {}",
                    path.join("trace.jsonl").display()
                )))
            }
            Ok(m) if !m.is_file() => {
                return Err(Error::invalid(format!("{label} {shown}: is not a regular file (a device, FIFO or socket); name a regular file")))
            }
            Ok(_) if no_clobber => {
                return Err(Error::Write { path: path.to_path_buf(), source: std::io::ErrorKind::AlreadyExists.into() })
            }
            _ => {}
        }
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(".{}.tmp", std::process::id()));
        let temp = path.with_file_name(temp_name);
        let file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(&temp).map_err(|e| {
            Error::invalid(format!("{label} {shown}: cannot write there ({e}); choose a writable path"))
        })?;
        let label = label.to_string();
        // A kill (SIGINT, SIGTERM, SIGHUP) during decoding removes the temporary file too.
        crate::interrupt::install();
        crate::interrupt::remove_on_exit(&temp);
        Ok(TraceWriter { target: path.to_path_buf(), temp, file, no_clobber, label })
    }

    /// Writes the header and records and moves the file into place.
    pub fn finish(mut self, header: &TraceHeader, records: &[Record]) -> Result<()> {
        let io = |e: std::io::Error| Error::Write { path: self.temp.clone(), source: e };
        let mut out = std::io::BufWriter::new(&mut self.file);
        let mut head = serde_json::to_value(header).map_err(|e| Error::invalid(format!("trace header: {e}")))?;
        head["type"] = json!("header");
        head["version"] = json!(FORMAT_VERSION);
        writeln!(out, "{head}").map_err(io)?;
        for r in records {
            let mut v = serde_json::to_value(r).map_err(|e| Error::invalid(format!("trace record: {e}")))?;
            v["type"] = json!("token");
            writeln!(out, "{v}").map_err(io)?;
        }
        out.flush().map_err(io)?;
        drop(out);
        self.file.sync_all().map_err(io)?;
        let target = |e: std::io::Error| Error::Write { path: self.target.clone(), source: e };
        if self.no_clobber {
            // A hard link fails if the name exists (a rename would replace it); Drop removes the temp.
            std::fs::hard_link(&self.temp, &self.target).map_err(target)?;
        } else {
            if std::fs::metadata(&self.target).is_ok_and(|m| m.is_dir()) {
                return Err(Error::invalid(format!("{} {}: became a directory while decoding; nothing was written", self.label, self.target.display())));
            }
            std::fs::rename(&self.temp, &self.target).map_err(target)?;
        }
        Ok(())
    }
}

impl Drop for TraceWriter {
    fn drop(&mut self) {
        // After a successful rename the temporary name no longer exists; otherwise clean up.
        let _ = std::fs::remove_file(&self.temp);
        crate::interrupt::forget(&self.temp);
    }
}

/// Whether `e` says that a [`TraceWriter::create_new`] target already exists.
pub fn is_already_exists(e: &Error) -> bool {
    matches!(e, Error::Write { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists)
}

/// A trace read back.
#[derive(Debug, Clone)]
pub struct Trace {
    pub header: TraceHeader,
    pub records: Vec<Record>,
}

/// Reads a whole trace, with an error naming the line that is wrong.
pub fn read(path: &Path) -> Result<Trace> {
    read_with_progress(path, &mut |_, _| {})
}

/// [`read`], calling `progress(bytes read, file size)` every few megabytes.
pub fn read_with_progress(path: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<Trace> {
    let mut reader = TraceReader::open(path)?;
    let mut records = Vec::new();
    let mut reported = 0;
    while let Some(r) = reader.next_record()? {
        records.push(r);
        if reader.bytes_read() - reported >= PROGRESS_EVERY {
            reported = reader.bytes_read();
            progress(reported, reader.file_size());
        }
    }
    progress(reader.file_size(), reader.file_size());
    Ok(Trace { header: reader.header, records })
}

/// How often (in bytes read) a reader of a big trace reports its progress.
pub const PROGRESS_EVERY: u64 = 8 << 20;

/// A trace being read: the header at once, then one record at a time ([`next_record`]), so
/// that memory follows what the caller keeps, not the file's length. Lines are read one at a
/// time and none may be longer than [`crate::limits::TRACE_LINE_BYTES`] (a file without
/// newlines is refused at that point, not read whole); only regular files are read. Each token
/// line is parsed once, straight into its record.
///
/// [`next_record`]: TraceReader::next_record
pub struct TraceReader {
    lines: Lines,
    pub header: TraceHeader,
}

/// A trace file's lines, one at a time, each under the line limit.
struct Lines {
    path: PathBuf,
    reader: BufReader<std::fs::File>,
    buf: Vec<u8>,
    /// The number of the line in `buf` (1-based).
    line: usize,
    limit: crate::limits::Limit,
    size: u64,
    done: u64,
}

impl Lines {
    fn not_trace(&self, why: String) -> Error {
        Error::invalid(format!("{}: line {} is not a proxythinker trace line: {why}", self.path.display(), self.line.max(1)))
    }

    /// The next line (without its newline) into `buf`; false at the end of the file.
    fn next(&mut self) -> Result<bool> {
        self.buf.clear();
        self.line += 1;
        let limit = self.limit.get();
        let read = (&mut self.reader).take(limit + 1).read_until(b'\n', &mut self.buf).map_err(|e| self.not_trace(e.to_string()))?;
        if read == 0 {
            return Ok(false);
        }
        self.done += read as u64;
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
        } else if self.buf.len() as u64 > limit {
            return Err(self.not_trace(format!(
                "longer than {limit} bytes (is it a trace?); raise {} if it really is one",
                self.limit.var
            )));
        }
        Ok(true)
    }
}

/// The two tags of a token line, read without building the rest of it.
#[derive(Deserialize)]
struct Tags<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    stream: Option<std::borrow::Cow<'a, str>>,
}

impl TraceReader {
    /// Opens the trace at `path` and reads its header line.
    pub fn open(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
        if !meta.is_file() {
            return Err(Error::invalid(format!("{}: not a regular file (a directory, device or FIFO); name a trace file", path.display())));
        }
        let file = std::fs::File::open(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
        let mut lines = Lines {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(1 << 20, file),
            buf: Vec::new(),
            line: 0,
            limit: crate::limits::TRACE_LINE_BYTES,
            size: meta.len(),
            done: 0,
        };
        if !lines.next()? {
            return Err(lines.not_trace("the file is empty".into()));
        }
        let header: Value = serde_json::from_slice(&lines.buf).map_err(|e| lines.not_trace(e.to_string()))?;
        let header = parse_header(header).map_err(|why| lines.not_trace(why))?;
        Ok(TraceReader { lines, header })
    }

    /// Bytes of the file read so far.
    pub fn bytes_read(&self) -> u64 {
        self.lines.done
    }

    /// The file's size when it was opened.
    pub fn file_size(&self) -> u64 {
        self.lines.size
    }

    /// The length of the last line read, its newline included.
    pub fn last_line_bytes(&self) -> u64 {
        self.lines.buf.len() as u64 + 1
    }

    /// The next record; `None` at the end of the trace. Blank lines are skipped.
    pub fn next_record(&mut self) -> Result<Option<Record>> {
        let l = &mut self.lines;
        loop {
            if !l.next()? {
                return Ok(None);
            }
            if l.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let tags: Tags = serde_json::from_slice(&l.buf).map_err(|e| l.not_trace(e.to_string()))?;
            if tags.kind.as_deref() != Some("token") {
                return Err(l.not_trace("expected a token line".into()));
            }
            let parsed = match tags.stream.as_deref() {
                Some("base") => serde_json::from_slice(&l.buf).map(Record::Base),
                Some("rft") => serde_json::from_slice(&l.buf).map(Record::Rft),
                Some("guided") => serde_json::from_slice(&l.buf).map(Record::Guided),
                Some(other) => return Err(l.not_trace(format!("unknown stream {other:?}; expected base, rft or guided"))),
                None => return Err(l.not_trace("a token line without its `stream`".into())),
            };
            return parsed.map(Some).map_err(|e| l.not_trace(e.to_string()));
        }
    }
}
