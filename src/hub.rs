//! Model references: a local checkpoint directory, or a Hugging Face Hub repo id.
//!
//! Every place that names a model (`--model`, `--base`, `--rft`, `--small`, presets) goes
//! through [`resolve`], which turns the reference into a local directory holding the files a
//! checkpoint needs.
//!
//! A reference that exists on disk, or can only be a path (`./x`, `/x`, `a/b/c`, ...), is a
//! directory. Otherwise `owner/name[@revision]` names a repo on the Hub (revision: a branch, a
//! tag or a commit; `main` when left out). Its files are downloaded into the standard Hugging
//! Face cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`), in the
//! layout Python's `huggingface_hub` uses, so the two share one cache:
//!
//! ```text
//! models--owner--name/
//!   blobs/<etag>                      file contents, named by their etag (sha256 for LFS files)
//!   refs/<revision>                   the commit a branch or tag pointed to
//!   snapshots/<commit>/<file>         symlinks into blobs/ (copies where symlinks fail)
//! ```
//!
//! and the snapshot directory is returned. Only the files a checkpoint needs are fetched (see
//! [`NEEDED_FILES`]; shards are read from `model.safetensors.index.json`). Downloads go to
//! `blobs/<etag>.incomplete`, resume with an HTTP Range request after an interruption, are
//! checked (size, and sha256 where the etag is one) and only then renamed into place, so a file
//! in `snapshots/` is always whole.
//!
//! Configuration comes from the environment in [`resolve`] ([`HubConfig::from_env`]: `HF_HOME`,
//! `HF_HUB_CACHE`, `HF_ENDPOINT`, `HF_TOKEN` or `$HF_HOME/token`, `HF_HUB_OFFLINE`) and is passed
//! explicitly to [`resolve_with`].

mod cache;
mod client;
mod progress;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::error::{Error, Result};

pub use cache::RepoCache;
pub use progress::{NoProgress, Progress, TerminalProgress};

/// The Hub used when `HF_ENDPOINT` is not set.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Files a checkpoint needs besides its weights: (name, required). Weights are
/// `model.safetensors`, or `model.safetensors.index.json` and the shards it lists.
pub const NEEDED_FILES: &[(&str, bool)] = &[
    ("config.json", true),
    ("tokenizer.json", true),
    ("tokenizer_config.json", false),
    ("chat_template.json", false),
    ("chat_template.jinja", false),
    ("preprocessor_config.json", false),
    ("generation_config.json", false),
];

/// The weights index of a sharded checkpoint.
pub const INDEX_FILE: &str = "model.safetensors.index.json";
/// The weights of a single-file checkpoint.
pub const SINGLE_WEIGHTS: &str = "model.safetensors";

/// Where and how to reach the Hub, and where its cache is.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Base URL of the Hub, without a trailing slash (`HF_ENDPOINT`).
    pub endpoint: String,
    /// The hub cache directory holding `models--owner--name/` (`HF_HUB_CACHE`).
    pub cache_dir: PathBuf,
    /// Access token for gated and private repos (`HF_TOKEN`, or the file `$HF_HOME/token`).
    pub token: Option<String>,
    /// Never touch the network; use what the cache holds (`HF_HUB_OFFLINE=1`).
    pub offline: bool,
    /// Connect timeout, and the longest wait for bytes of a response.
    pub timeout: Duration,
}

fn is_true(v: Option<String>) -> bool {
    matches!(v.map(|s| s.trim().to_ascii_lowercase()).as_deref(), Some("1" | "true" | "yes" | "on" | "y" | "t"))
}

impl HubConfig {
    /// The configuration Python's `huggingface_hub` would use in this process's environment.
    pub fn from_env() -> Self {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// The configuration for the environment variables that `var` returns (a testable
    /// [`HubConfig::from_env`]): `HF_ENDPOINT`, `HF_HOME` (else `$XDG_CACHE_HOME/huggingface`,
    /// else `~/.cache/huggingface`), `HF_HUB_CACHE` (or the older `HUGGINGFACE_HUB_CACHE`; else
    /// `$HF_HOME/hub`), `HF_TOKEN` (or `HUGGING_FACE_HUB_TOKEN`; else the file `HF_TOKEN_PATH`,
    /// else `$HF_HOME/token`), `HF_HUB_OFFLINE` (or `TRANSFORMERS_OFFLINE`), and
    /// `HF_HUB_DOWNLOAD_TIMEOUT` (seconds).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let get = |k: &str| var(k).filter(|v| !v.trim().is_empty());
        let home = || {
            get("HOME")
                .map(PathBuf::from)
                .or_else(|| directories::BaseDirs::new().map(|d| d.home_dir().to_path_buf()))
                .unwrap_or_else(std::env::temp_dir)
        };
        let hf_home = get("HF_HOME").map(|h| expand_tilde(&h, &home)).unwrap_or_else(|| {
            get("XDG_CACHE_HOME").map(PathBuf::from).unwrap_or_else(|| home().join(".cache")).join("huggingface")
        });
        let cache_dir = get("HF_HUB_CACHE")
            .or_else(|| get("HUGGINGFACE_HUB_CACHE"))
            .map(|c| expand_tilde(&c, &home))
            .unwrap_or_else(|| hf_home.join("hub"));
        let endpoint = get("HF_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.to_string()).trim().trim_end_matches('/').to_string();
        let token = get("HF_TOKEN").or_else(|| get("HUGGING_FACE_HUB_TOKEN")).or_else(|| {
            let path = get("HF_TOKEN_PATH").map(|p| expand_tilde(&p, &home)).unwrap_or_else(|| hf_home.join("token"));
            std::fs::read_to_string(path).ok()
        });
        let token = token.map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
        let offline = is_true(var("HF_HUB_OFFLINE")) || is_true(var("TRANSFORMERS_OFFLINE"));
        let timeout = get("HF_HUB_DOWNLOAD_TIMEOUT")
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(Duration::from_secs_f64)
            .unwrap_or(Duration::from_secs(30));
        HubConfig { endpoint, cache_dir, token, offline, timeout }
    }

    /// A configuration for `endpoint` with its cache in `cache_dir`, online, without a token.
    pub fn new(endpoint: impl Into<String>, cache_dir: impl Into<PathBuf>) -> Self {
        HubConfig {
            endpoint: endpoint.into().trim_end_matches('/').to_string(),
            cache_dir: cache_dir.into(),
            token: None,
            offline: false,
            timeout: Duration::from_secs(30),
        }
    }
}

fn expand_tilde(p: &str, home: &dyn Fn() -> PathBuf) -> PathBuf {
    match p.strip_prefix("~/") {
        Some(rest) => home().join(rest),
        None if p == "~" => home(),
        None => PathBuf::from(p),
    }
}

/// A Hub repo id and revision: `owner/name[@revision]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoRef {
    /// `owner/name`.
    pub repo: String,
    /// A branch, a tag or a commit (`main` when the reference names none).
    pub revision: String,
    /// A model repo or a dataset repo: the Hub serves them under different paths, and the cache
    /// keeps them apart (`models--…`, `datasets--…`).
    pub kind: RepoKind,
}

/// What kind of repo a [`RepoRef`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RepoKind {
    #[default]
    Model,
    Dataset,
}

impl RepoKind {
    /// The plural the Hub's API and the cache use: `models` or `datasets`.
    pub fn plural(self) -> &'static str {
        match self {
            RepoKind::Model => "models",
            RepoKind::Dataset => "datasets",
        }
    }
}

fn valid_repo_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 96
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !s.starts_with(['-', '.'])
        && !s.ends_with(['-', '.'])
        && !s.contains("..")
        && !s.contains("--")
}

fn valid_revision(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('/')
        && !s.ends_with('/')
        && !s.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\')
        && s.split('/').all(|part| !part.is_empty() && part != "." && part != "..")
}

impl RepoRef {
    /// Parses `owner/name[@revision]`; `None` when `reference` is not one.
    pub fn parse(reference: &str) -> Option<RepoRef> {
        let (id, revision) = match reference.split_once('@') {
            Some((id, rev)) => (id, rev),
            None => (reference, "main"),
        };
        let (owner, name) = id.split_once('/')?;
        if !valid_repo_part(owner) || !valid_repo_part(name) || !valid_revision(revision) {
            return None;
        }
        Some(RepoRef { repo: id.to_string(), revision: revision.to_string(), kind: RepoKind::Model })
    }

    /// [`parse`](Self::parse) for a dataset repo.
    pub fn parse_dataset(reference: &str) -> Option<RepoRef> {
        Self::parse(reference).map(|r| RepoRef { kind: RepoKind::Dataset, ..r })
    }
}

impl std::fmt::Display for RepoRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.repo, self.revision)
    }
}

/// Turns a model reference into a local checkpoint directory, downloading a Hub repo's files
/// into the cache with a progress bar per file on stderr (when stderr is a terminal).
/// Configuration comes from the environment ([`HubConfig::from_env`]). `flag` names where the
/// reference came from, for error messages.
pub fn resolve(reference: &str, flag: &str) -> Result<PathBuf> {
    resolve_with(reference, flag, &HubConfig::from_env(), &mut TerminalProgress::new())
}

/// [`resolve`] with an explicit configuration and progress reporter.
pub fn resolve_with(reference: &str, flag: &str, config: &HubConfig, progress: &mut dyn Progress) -> Result<PathBuf> {
    let path = PathBuf::from(reference);
    if path.exists() || looks_like_a_path(reference) {
        return Ok(path);
    }
    let Some(repo) = RepoRef::parse(reference) else {
        return Err(Error::invalid(format!(
            "{flag} {reference}: no such directory, and not a Hub repo id (owner/name or owner/name@revision); pass a checkpoint directory or a repo id"
        )));
    };
    download(&repo, config, progress).map_err(|e| match e {
        Error::Invalid(msg) => Error::Invalid(one_line(&format!("{flag} {reference}: {msg}"))),
        Error::Io { path, source } => Error::Invalid(one_line(&format!(
            "{flag} {reference}: cannot use {} in the Hugging Face cache ({source}); make it writable, or point HF_HUB_CACHE or HF_HOME at a writable directory",
            path.display()
        ))),
        other => other,
    })
}

/// Whether a reference can only be a path (a Hub id is `owner/name[@revision]`, and the
/// revision may hold slashes: `owner/name@refs/pr/1`).
pub fn looks_like_a_path(reference: &str) -> bool {
    let id = reference.split('@').next().unwrap_or(reference);
    reference.starts_with('.')
        || reference.starts_with('/')
        || reference.starts_with('~')
        || reference.contains('\\')
        || id.matches('/').count() != 1
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Downloads (or finds in the cache) the files of a checkpoint in `repo` and returns the
/// snapshot directory. Offline, only the cache is used.
pub fn download(repo: &RepoRef, config: &HubConfig, progress: &mut dyn Progress) -> Result<PathBuf> {
    let cache = RepoCache::new(&config.cache_dir, repo);
    if config.offline {
        return cache.offline_snapshot(repo, &config.cache_dir);
    }
    let client = client::Client::new(config, repo);
    let info = match client.revision_info() {
        Ok(info) => info,
        Err(client::FetchError::Unreachable(msg)) => {
            // Like huggingface_hub: without a network, a complete cached snapshot still serves.
            if let Ok(dir) = cache.offline_snapshot(repo, &config.cache_dir) {
                tracing::warn!("{repo}: {msg}; using the cached snapshot {}", dir.display());
                return Ok(dir);
            }
            return Err(Error::invalid(msg));
        }
        Err(e) => return Err(Error::invalid(e.message())),
    };
    let commit = info.sha.clone();
    cache.write_ref(&repo.revision, &commit)?;
    let snapshot = cache.snapshot_dir(&commit);

    let has = |f: &str| info.siblings.iter().any(|s| s == f);
    for (file, required) in NEEDED_FILES {
        if *required && !has(file) {
            return Err(Error::invalid(format!(
                "{repo} has no {file} at commit {commit}: not a model checkpoint in the Hugging Face layout; check the repo id and revision"
            )));
        }
    }
    let mut files: Vec<String> = Vec::new();
    if has(INDEX_FILE) {
        client.fetch(&cache, &commit, INDEX_FILE, progress)?;
        for shard in shards(&snapshot.join(INDEX_FILE))? {
            if !has(&shard) {
                return Err(Error::invalid(format!(
                    "weight shard {shard}, listed by {INDEX_FILE}, is missing from {repo} (commit {commit}): the repo is incomplete at this revision; pick another revision or pass a local directory"
                )));
            }
            files.push(shard);
        }
    } else if has(SINGLE_WEIGHTS) {
        files.push(SINGLE_WEIGHTS.to_string());
    } else {
        return Err(Error::invalid(format!(
            "{repo} has neither {SINGLE_WEIGHTS} nor {INDEX_FILE} at commit {commit}: only safetensors checkpoints are supported; check the repo id and revision"
        )));
    }
    let mut all: Vec<String> = NEEDED_FILES.iter().filter(|(f, _)| has(f)).map(|(f, _)| f.to_string()).collect();
    // Small files first, so that a broken repo fails before gigabytes are fetched.
    all.extend(files);
    for file in &all {
        client.fetch(&cache, &commit, file, progress)?;
    }
    Ok(snapshot)
}

/// Downloads (or finds in the cache) the files of a dataset repo that `select` picks from the
/// repo's file list, and returns the snapshot directory with the picked names. `select` sees
/// every file at the revision and words its own refusal. Offline, the cached snapshot's files
/// are listed instead (only what an earlier run fetched).
pub fn download_dataset(
    repo: &RepoRef,
    config: &HubConfig,
    progress: &mut dyn Progress,
    select: &dyn Fn(&[String]) -> Result<Vec<String>>,
) -> Result<(PathBuf, Vec<String>)> {
    let cache = RepoCache::new(&config.cache_dir, repo);
    let cached = || -> Result<(PathBuf, Vec<String>)> {
        let Some(commit) = cache.commit_of(&repo.revision) else {
            return Err(Error::invalid(format!(
                "offline (HF_HUB_OFFLINE=1) and the dataset {repo} is not in the Hugging Face cache {}; download it where the Hub is reachable (or set HF_HUB_OFFLINE=0), or pass a local file",
                config.cache_dir.display()
            )));
        };
        let snapshot = cache.snapshot_dir(&commit);
        let mut files = Vec::new();
        list_files(&snapshot, &snapshot, &mut files);
        files.sort();
        let picked = select(&files)?;
        Ok((snapshot, picked))
    };
    if config.offline {
        return cached();
    }
    let client = client::Client::new(config, repo);
    let info = match client.revision_info() {
        Ok(info) => info,
        Err(client::FetchError::Unreachable(msg)) => {
            if let Ok(found) = cached() {
                tracing::warn!("{repo}: {msg}; using the cached snapshot {}", found.0.display());
                return Ok(found);
            }
            return Err(Error::invalid(msg));
        }
        Err(e) => return Err(Error::invalid(e.message())),
    };
    cache.write_ref(&repo.revision, &info.sha)?;
    let picked = select(&info.siblings)?;
    for file in &picked {
        client.fetch(&cache, &info.sha, file, progress)?;
    }
    Ok((cache.snapshot_dir(&info.sha), picked))
}

/// Every file under `dir`, as paths relative to `root` with `/` between parts.
pub(crate) fn list_files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            list_files(root, &path, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/"));
        }
    }
}

/// The shard file names a `model.safetensors.index.json` lists, sorted and deduplicated.
pub fn shards(index: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(index).map_err(|source| Error::Io { path: index.to_path_buf(), source })?;
    let v: Value = serde_json::from_str(&text).map_err(|e| Error::config(index, format!("not valid JSON: {e}")))?;
    let Some(map) = v.get("weight_map").and_then(Value::as_object) else {
        return Err(Error::config(index, "no `weight_map` object: the shard index is malformed"));
    };
    let mut files: Vec<String> = Vec::new();
    for (name, file) in map {
        let Some(file) = file.as_str() else {
            return Err(Error::config(index, format!("`weight_map.{name}` must be a file name")));
        };
        if file.starts_with('/') || file.split('/').any(|p| p == ".." || p.is_empty()) || file.contains('\\') {
            return Err(Error::config(index, format!("`weight_map.{name}`: {file:?} is not a file name inside the repo")));
        }
        files.push(file.to_string());
    }
    files.sort();
    files.dedup();
    if files.is_empty() {
        return Err(Error::config(index, "the shard index lists no files"));
    }
    Ok(files)
}
