//! Model references: a local checkpoint directory, or a Hugging Face Hub repo id.
//!
//! Every place that names a model (`--model`, `--base`, `--rft`, `--small`, presets) goes
//! through [`resolve`], which turns the reference into a local directory holding the files a
//! checkpoint needs.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// Turns a model reference into a local checkpoint directory. `flag` names where the reference
/// came from, for error messages.
pub fn resolve(reference: &str, flag: &str) -> Result<PathBuf> {
    let path = PathBuf::from(reference);
    if path.exists() || looks_like_a_path(reference) {
        return Ok(path);
    }
    Err(Error::invalid(format!(
        "{flag} {reference}: no such directory (Hub repo ids are not supported by this build yet); pass a checkpoint directory"
    )))
}

/// Whether a reference can only be a path (a Hub id is `owner/name[@revision]`).
pub fn looks_like_a_path(reference: &str) -> bool {
    reference.starts_with('.')
        || reference.starts_with('/')
        || reference.starts_with('~')
        || reference.contains('\\')
        || reference.matches('/').count() != 1
}
