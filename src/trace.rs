//! The trace file: a session's records as JSON Lines.
//!
//! The first line is a header (`"type": "header"`: format version, the three models, α, sampling,
//! limits, the question, image and prompt ids); every further line is one token of one stream
//! (`"type": "token"`, `"stream": "base" | "rft" | "guided"`, then the record's fields). The file
//! is written to a temporary name beside the target and renamed into place, so a reader never
//! sees half a trace; the temporary file is created before decoding starts, so an unwritable
//! path fails at once. `pandas.read_json(path, lines=True)` reads it.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::engine::Record;
use crate::error::{Error, Result};

pub const FORMAT_VERSION: u32 = 1;

/// A trace being written: the temporary file exists from `create` on.
pub struct TraceWriter {
    target: PathBuf,
    temp: PathBuf,
    file: std::fs::File,
}

impl TraceWriter {
    /// Creates the temporary file beside `path`, failing now if the place is not writable.
    pub fn create(path: &Path) -> Result<Self> {
        let name = path.file_name().ok_or_else(|| Error::invalid(format!("--trace {}: not a file path", path.display())))?;
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(".{}.tmp", std::process::id()));
        let temp = path.with_file_name(temp_name);
        let file = std::fs::File::create(&temp).map_err(|e| {
            Error::invalid(format!("--trace {}: cannot write there ({e}); choose a writable path", path.display()))
        })?;
        Ok(TraceWriter { target: path.to_path_buf(), temp, file })
    }

    /// Writes the header and records and moves the file into place.
    pub fn finish(mut self, header: &Value, records: &[Record]) -> Result<()> {
        let io = |e: std::io::Error| Error::Io { path: self.temp.clone(), source: e };
        let mut out = std::io::BufWriter::new(&mut self.file);
        let mut head = header.clone();
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
        std::fs::rename(&self.temp, &self.target).map_err(|e| Error::Io { path: self.target.clone(), source: e })?;
        Ok(())
    }
}

impl Drop for TraceWriter {
    fn drop(&mut self) {
        // After a successful rename the temporary name no longer exists; otherwise clean up.
        let _ = std::fs::remove_file(&self.temp);
    }
}

/// A trace read back.
#[derive(Debug, Clone)]
pub struct Trace {
    pub header: Value,
    pub records: Vec<Record>,
}

/// Reads a trace, with an error naming the line that is wrong.
pub fn read(path: &Path) -> Result<Trace> {
    let file = std::fs::File::open(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
    let not_trace = |line: usize, why: String| {
        Error::invalid(format!("{}: line {line} is not a proxythinker trace line: {why}", path.display()))
    };
    let mut lines = BufReader::new(file).lines();
    let first = lines.next().ok_or_else(|| not_trace(1, "the file is empty".into()))?.map_err(|e| not_trace(1, e.to_string()))?;
    let header: Value = serde_json::from_str(&first).map_err(|e| not_trace(1, e.to_string()))?;
    if header["type"] != "header" {
        return Err(not_trace(1, "the first line must be the header".into()));
    }
    let mut records = Vec::new();
    for (i, line) in lines.enumerate() {
        let n = i + 2;
        let line = line.map_err(|e| not_trace(n, e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let mut v: Value = serde_json::from_str(&line).map_err(|e| not_trace(n, e.to_string()))?;
        if v["type"] != "token" {
            return Err(not_trace(n, "expected a token line".into()));
        }
        v.as_object_mut().map(|o| o.remove("type"));
        records.push(serde_json::from_value(v).map_err(|e| not_trace(n, e.to_string()))?);
    }
    Ok(Trace { header, records })
}
