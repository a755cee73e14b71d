//! Where proxythinker keeps its own files: the cache directory (the demo's models, the log file),
//! `$PROXYTHINKER_CACHE` or the platform's cache directory for "proxythinker".

use std::path::PathBuf;

/// The cache directory: `$PROXYTHINKER_CACHE`, else the platform's (`~/.cache/proxythinker` on
/// Linux), else a directory under the system's temporary directory.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PROXYTHINKER_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    directories::ProjectDirs::from("", "", "proxythinker")
        .map(|d| d.cache_dir().to_path_buf())
        .unwrap_or_else(|| std::env::temp_dir().join("proxythinker"))
}

/// Where the log file goes: `logs/proxythinker.log` under the cache directory.
pub fn log_file() -> PathBuf {
    cache_dir().join("logs").join("proxythinker.log")
}
