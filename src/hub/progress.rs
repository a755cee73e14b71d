//! Reporting download progress: a trait for callers (the TUI draws a gauge from it) and a
//! progress bar per file on stderr for the command line.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Receives the progress of each file a download fetches. Files found in the cache report
/// nothing. All methods default to doing nothing.
pub trait Progress {
    /// A transfer of `file` (of `repo`) starts: `total` bytes, of which `done` are already on disk
    /// (a resumed download).
    fn start(&mut self, repo: &str, file: &str, total: u64, done: u64) {
        let _ = (repo, file, total, done);
    }
    /// `done` of the file's bytes are on disk.
    fn advance(&mut self, file: &str, done: u64) {
        let _ = (file, done);
    }
    /// The transfer of `file` ended, whole (`ok`) or not.
    fn finish(&mut self, file: &str, ok: bool) {
        let _ = (file, ok);
    }
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// A progress bar per file on stderr; draws nothing when stderr is not a terminal.
#[derive(Debug, Default)]
pub struct TerminalProgress {
    bar: Option<ProgressBar>,
}

impl TerminalProgress {
    pub fn new() -> Self {
        TerminalProgress { bar: None }
    }
}

impl Progress for TerminalProgress {
    fn start(&mut self, repo: &str, file: &str, total: u64, done: u64) {
        // ProgressDrawTarget::stderr() is hidden when stderr is not a terminal.
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(format!("{repo}: {file}"));
        bar.set_position(done);
        self.bar = Some(bar);
    }

    fn advance(&mut self, _file: &str, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
    }

    fn finish(&mut self, _file: &str, ok: bool) {
        if let Some(bar) = self.bar.take() {
            if ok {
                bar.finish();
            } else {
                bar.abandon();
            }
        }
    }
}
