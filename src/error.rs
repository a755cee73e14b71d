//! The crate's error type.
//!
//! Every error the user can cause (a missing file, a malformed config, an image that cannot be
//! decoded, a flag out of range) is a variant here whose message fits on one line and says what is
//! wrong, where, and what to do. The binary prints that line and exits with status 2.

use std::path::PathBuf;

/// Errors produced by proxythinker.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory the user named does not exist or cannot be read.
    #[error("{what} not found: {path} ({hint})")]
    NotFound { what: &'static str, path: PathBuf, hint: String },

    /// A file exists but cannot be read.
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    /// A file (or stdout) cannot be written.
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },

    /// A config file (config.json, preprocessor_config.json, ...) is malformed or unsupported.
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },

    /// A checkpoint's weights do not match what its config describes.
    #[error("{path}: {message}")]
    Weights { path: PathBuf, message: String },

    /// An input image cannot be used.
    #[error("image {path}: {message}")]
    Image { path: PathBuf, message: String },

    /// A user-supplied value (flag, prompt, option) is invalid.
    #[error("{0}")]
    Invalid(String),

    /// The tokenizer failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),

    /// The chat template failed to render.
    #[error("chat template: {0}")]
    Template(String),

    /// A tensor computation failed (a bug or resource exhaustion rather than bad input).
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }

    pub fn config(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Config { path: path.into(), message: message.into() }
    }

    pub fn weights(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Weights { path: path.into(), message: message.into() }
    }

    pub fn image(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Image { path: path.into(), message: message.into() }
    }
}

/// The first line of an error's message: candle errors can carry backtraces.
pub fn first_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or("").trim().to_string()
}
