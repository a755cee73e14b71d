//! The log file: `tracing` output of the UI and of `eval` goes to [`crate::dirs::log_file`], never
//! to the terminal (the UI owns the screen; `eval` draws a progress bar on stderr).

use std::path::{Path, PathBuf};

/// Sends `tracing` output to the file at `path`. Returns the file's path, or `None` when it
/// cannot be written (the caller then runs without a log rather than printing on the screen).
pub fn init_logging(path: &Path) -> Option<PathBuf> {
    let dir = path.parent()?;
    std::fs::create_dir_all(dir).ok()?;
    let name = path.file_name()?.to_str()?;
    // The builder, unlike `rolling::never`, reports an unwritable place instead of panicking.
    let appender = tracing_appender::rolling::RollingFileAppender::builder()
        .rotation(tracing_appender::rolling::Rotation::NEVER)
        .filename_prefix(name)
        .build(dir)
        .ok()?;
    tracing_subscriber::fmt()
        .with_writer(appender)
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .try_init()
        .ok()?;
    Some(path.to_path_buf())
}
