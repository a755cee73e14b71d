//! The Hugging Face cache layout of one repo: `models--owner--name/{blobs,refs,snapshots}`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{shards, RepoRef, INDEX_FILE, NEEDED_FILES, SINGLE_WEIGHTS};
use crate::error::{Error, Result};

/// One model repo's directory in the hub cache.
#[derive(Debug, Clone)]
pub struct RepoCache {
    /// `<cache>/models--owner--name`.
    pub dir: PathBuf,
}

/// Whether `s` is a full commit hash.
pub fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A temporary name next to `path`, unique across processes and threads.
fn tmp_name(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
}

impl RepoCache {
    pub fn new(cache_dir: &Path, repo: &RepoRef) -> Self {
        RepoCache { dir: cache_dir.join(format!("{}--{}", repo.kind.plural(), repo.repo.replace('/', "--"))) }
    }

    pub fn blob(&self, etag: &str) -> PathBuf {
        self.dir.join("blobs").join(etag)
    }

    pub fn incomplete(&self, etag: &str) -> PathBuf {
        self.dir.join("blobs").join(format!("{etag}.incomplete"))
    }

    /// The lock file guarding the download of a blob: `<cache>/.locks/models--owner--name/<etag>.lock`,
    /// where huggingface_hub's file locks live (both use `flock` on Unix).
    pub fn lock_file(&self, etag: &str) -> PathBuf {
        let name = self.dir.file_name().unwrap_or_default();
        self.dir.parent().unwrap_or(Path::new(".")).join(".locks").join(name).join(format!("{etag}.lock"))
    }

    pub fn snapshot_dir(&self, commit: &str) -> PathBuf {
        self.dir.join("snapshots").join(commit)
    }

    pub fn ref_file(&self, revision: &str) -> PathBuf {
        self.dir.join("refs").join(revision)
    }

    /// The commit a revision names in the cache: itself if it is a commit with a snapshot, else
    /// the content of `refs/<revision>`.
    pub fn commit_of(&self, revision: &str) -> Option<String> {
        if is_commit(revision) && self.snapshot_dir(revision).is_dir() {
            return Some(revision.to_string());
        }
        let commit = std::fs::read_to_string(self.ref_file(revision)).ok()?;
        let commit = commit.trim();
        is_commit(commit).then(|| commit.to_string())
    }

    /// Records that `revision` points at `commit` (not needed when the revision is the commit).
    pub fn write_ref(&self, revision: &str, commit: &str) -> Result<()> {
        if revision == commit {
            return Ok(());
        }
        let path = self.ref_file(revision);
        if std::fs::read_to_string(&path).ok().as_deref() == Some(commit) {
            return Ok(());
        }
        std::fs::create_dir_all(path.parent().unwrap()).map_err(io(&path))?;
        let tmp = tmp_name(&path);
        std::fs::write(&tmp, commit).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))
    }

    /// Makes `snapshots/<commit>/<file>` point at the blob `etag` (a relative symlink as
    /// huggingface_hub makes, or a copy where symlinks cannot be made).
    pub fn link(&self, commit: &str, file: &str, etag: &str) -> Result<PathBuf> {
        let dest = self.snapshot_dir(commit).join(file);
        let parent = dest.parent().unwrap().to_path_buf();
        std::fs::create_dir_all(&parent).map_err(io(&parent))?;
        let blob = self.blob(etag);
        // Made under a temporary name and renamed over `dest`: atomic, also against a
        // concurrent download of the same file.
        let tmp = tmp_name(&dest);
        #[cfg(unix)]
        {
            let depth = file.matches('/').count() + 2;
            let mut target = PathBuf::new();
            for _ in 0..depth {
                target.push("..");
            }
            target.push("blobs");
            target.push(etag);
            if std::os::unix::fs::symlink(&target, &tmp).is_ok() {
                std::fs::rename(&tmp, &dest).map_err(io(&dest))?;
                return Ok(dest);
            }
        }
        std::fs::copy(&blob, &tmp).map_err(io(&blob))?;
        std::fs::rename(&tmp, &dest).map_err(io(&dest))?;
        Ok(dest)
    }

    /// The snapshot of `repo` from the cache alone, checked to hold every file a checkpoint
    /// needs; the error names the repo, the missing file, and what to do.
    pub fn offline_snapshot(&self, repo: &RepoRef, cache_dir: &Path) -> Result<PathBuf> {
        let fix = "download it where the Hub is reachable (or set HF_HUB_OFFLINE=0), or pass a local checkpoint directory";
        let Some(commit) = self.commit_of(&repo.revision) else {
            let missing = if is_commit(&repo.revision) { self.snapshot_dir(&repo.revision) } else { self.ref_file(&repo.revision) };
            return Err(Error::invalid(format!(
                "offline (HF_HUB_OFFLINE=1) and {repo} is not in the Hugging Face cache {} (missing {}); {fix}",
                cache_dir.display(),
                missing.display()
            )));
        };
        let snap = self.snapshot_dir(&commit);
        let missing = |file: &str| {
            Error::invalid(format!(
                "offline (HF_HUB_OFFLINE=1) and {file} of {repo} is not in the Hugging Face cache (missing {}); {fix}",
                snap.join(file).display()
            ))
        };
        for (file, required) in NEEDED_FILES {
            if *required && !snap.join(file).is_file() {
                return Err(missing(file));
            }
        }
        let index = snap.join(INDEX_FILE);
        if index.is_file() {
            for shard in shards(&index)? {
                if !snap.join(&shard).is_file() {
                    return Err(missing(&shard));
                }
            }
        } else if !snap.join(SINGLE_WEIGHTS).is_file() {
            return Err(missing(SINGLE_WEIGHTS));
        }
        Ok(snap)
    }
}
