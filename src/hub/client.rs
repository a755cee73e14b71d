//! The HTTP side of Hub downloads: a repo's file list at a revision, a file's metadata (etag,
//! size), and resumable, checked downloads into the cache.
//!
//! The token goes only to the Hub's own origin: scheme, host and port of a request's parsed URL
//! must equal `HF_ENDPOINT`'s. Redirects are followed here, not by the HTTP library, so each hop
//! is judged the same way (a look-alike host such as `huggingface.co.evil.example`, or the same
//! host on another port, gets no `Authorization`).
//!
//! Deadlines: `HF_HUB_DOWNLOAD_TIMEOUT` (30 s) bounds connecting and each wait for bytes. Each
//! request has an overall deadline of [`METADATA_DEADLINE_FACTOR`] times that, over all its
//! redirects: a metadata request (file list, HEAD) must be answered whole by then, a file's GET
//! must have its status line and headers by then; a file's body is held to a throughput floor
//! instead (its length is the file's): a transfer that averages less than
//! [`MIN_BYTES_PER_SECOND`] over a window of `HF_HUB_DOWNLOAD_TIMEOUT` is dropped (its bytes are
//! kept for the next run to resume). So a server that trickles a byte at a time, in the headers
//! or in the body, cannot hold a command forever. The HTTP library has no deadline for headers
//! alone, so a GET's call runs on a helper thread that is waited for until the deadline; one left
//! behind ends with the connection (the per-read wait bounds each of its reads).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::cache::RepoCache;
use super::progress::Progress;
use super::{HubConfig, RepoRef};
use crate::error::{Error, Result};

/// How many times one file's transfer is tried when the connection breaks mid-transfer
/// (each try resumes where the last stopped).
const ATTEMPTS: usize = 3;

/// Redirects followed per request.
const MAX_REDIRECTS: usize = 5;

/// A request's deadline, in times `HF_HUB_DOWNLOAD_TIMEOUT`: a metadata request's whole
/// exchange, a file's GET up to its headers, each over all its redirects.
pub const METADATA_DEADLINE_FACTOR: u32 = 2;

/// The slowest transfer kept going: averaged over each window of `HF_HUB_DOWNLOAD_TIMEOUT`.
pub const MIN_BYTES_PER_SECOND: u64 = 1024;

/// Why a request failed.
#[derive(Debug)]
pub enum FetchError {
    /// The endpoint cannot be reached at all (DNS, refused connection, TLS, timeout).
    Unreachable(String),
    /// Anything else, already phrased for the user.
    Other(String),
}

impl FetchError {
    pub fn message(self) -> String {
        match self {
            FetchError::Unreachable(m) | FetchError::Other(m) => m,
        }
    }
}

/// What the revision endpoint tells about a repo.
#[derive(Debug, Clone)]
pub struct RevisionInfo {
    /// The commit the revision points at.
    pub sha: String,
    /// The repo's file names at that commit.
    pub siblings: Vec<String>,
}

/// What a HEAD on a file tells.
#[derive(Debug, Clone)]
struct FileMeta {
    etag: String,
    size: u64,
    /// Where to GET the bytes (the CDN for LFS files on the Hub).
    url: String,
}

/// Percent-encodes everything but unreserved characters (and `/` when `keep_slash`).
fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// An etag as huggingface_hub names blobs: without `W/` and quotes.
fn normalize_etag(s: &str) -> String {
    s.trim().trim_start_matches("W/").trim_matches('"').to_string()
}

fn transport_text(t: &ureq::Transport) -> String {
    match t.message() {
        Some(m) => format!("{}: {m}", t.kind()),
        None => t.kind().to_string(),
    }
}

pub struct Client<'a> {
    config: &'a HubConfig,
    repo: &'a RepoRef,
    /// Does not follow redirects: a file's HEAD answer from the Hub itself carries its etag.
    meta: ureq::Agent,
    /// GETs; redirects are followed by [`Client::get`], which decides about the token per hop.
    data: ureq::Agent,
}

/// Why [`Client::get`] gave no response. Kept unboxed: one per request, so its size costs nothing,
/// and the callers match on the ureq error's variants directly.
#[allow(clippy::large_enum_variant)]
enum GetError {
    Http(ureq::Error),
    /// No status line and headers (or, for metadata, no whole answer) before the deadline.
    Late,
    Other(String),
}

/// What bounds one GET (over all its redirects).
#[derive(Clone, Copy)]
enum Deadline {
    /// The whole exchange, the body included, by this instant (metadata).
    Whole(Instant),
    /// The status line and headers by this instant; the body is the caller's (file transfers).
    Headers(Instant),
}

/// Time left until `until`, or `None` once it has passed.
fn left(until: Instant) -> Option<Duration> {
    until.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())
}

/// Sends `req` and waits for its status line and headers until `until`. The call runs on a
/// helper thread, as the HTTP library bounds each read but not the headers as a whole; past the
/// deadline the thread is left to end on its own (its response, if one comes, is dropped).
#[allow(clippy::result_large_err)]
fn call_by(req: ureq::Request, until: Instant) -> std::result::Result<ureq::Response, GetError> {
    let Some(wait) = left(until) else { return Err(GetError::Late) };
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("hub-request".into())
        .spawn(move || {
            let _ = tx.send(req.call());
        })
        .map_err(|e| GetError::Other(format!("cannot start a thread for a Hub request: {e}")))?;
    match rx.recv_timeout(wait) {
        Ok(r) => r.map_err(GetError::Http),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(GetError::Late),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(GetError::Other("a Hub request's thread ended without an answer".into())),
    }
}

enum Subject<'s> {
    Repo,
    File(&'s str),
}

impl<'a> Client<'a> {
    pub fn new(config: &'a HubConfig, repo: &'a RepoRef) -> Self {
        let build = |redirects: u32| {
            ureq::AgentBuilder::new()
                .timeout_connect(config.timeout)
                .timeout_read(config.timeout)
                .redirects(redirects)
                .redirect_auth_headers(ureq::RedirectAuthHeaders::Never)
                .user_agent(concat!("proxythinker/", env!("CARGO_PKG_VERSION"), "; hf_hub-compatible"))
                .build()
        };
        Client { config, repo, meta: build(0), data: build(0) }
    }

    fn endpoint(&self) -> &str {
        &self.config.endpoint
    }

    /// `scheme://host[:port]` of the endpoint, for relative redirects.
    fn origin(&self) -> &str {
        let e = self.endpoint();
        let after_scheme = e.find("://").map(|i| i + 3).unwrap_or(0);
        match e[after_scheme..].find('/') {
            Some(i) => &e[..after_scheme + i],
            None => e,
        }
    }

    /// Whether `url` has the endpoint's scheme, host and port (compared parsed, never as text).
    fn same_origin(&self, url: &str) -> bool {
        match (url::Url::parse(self.endpoint()), url::Url::parse(url)) {
            (Ok(hub), Ok(u)) => {
                hub.scheme() == u.scheme()
                    && hub.host_str().is_some()
                    && hub.host_str() == u.host_str()
                    && hub.port_or_known_default() == u.port_or_known_default()
            }
            _ => false,
        }
    }

    fn authorize(&self, req: ureq::Request, url: &str) -> ureq::Request {
        match &self.config.token {
            Some(token) if self.same_origin(url) => req.set("Authorization", &format!("Bearer {token}")),
            _ => req,
        }
    }

    /// A request's overall deadline (see the module docs), from now.
    fn deadline(&self) -> Instant {
        Instant::now() + self.config.timeout * METADATA_DEADLINE_FACTOR
    }

    /// The deadline's length in seconds, for messages.
    fn deadline_secs(&self) -> u64 {
        (self.config.timeout * METADATA_DEADLINE_FACTOR).as_secs()
    }

    /// What to say when `url` was not answered in time.
    fn late(&self, url: &str) -> String {
        format!(
            "the Hub at {} did not answer {url} within {} s (twice HF_HUB_DOWNLOAD_TIMEOUT, {} s); the server is too slow or stalled, try again later or raise HF_HUB_DOWNLOAD_TIMEOUT",
            self.endpoint(),
            self.deadline_secs(),
            self.config.timeout.as_secs()
        )
    }

    /// GET `url` with `headers`, following up to [`MAX_REDIRECTS`] redirects; the token goes to
    /// each hop only if it is the Hub's own origin. `deadline` bounds all the hops together.
    #[allow(clippy::result_large_err)]
    fn get(&self, url: &str, headers: &[(&str, String)], deadline: Deadline) -> std::result::Result<ureq::Response, GetError> {
        let mut url = url.to_string();
        for _ in 0..=MAX_REDIRECTS {
            let mut req = self.authorize(self.data.get(&url), &url);
            for (k, v) in headers {
                req = req.set(k, v);
            }
            let resp = match deadline {
                Deadline::Whole(until) => {
                    let Some(d) = left(until) else { return Err(GetError::Late) };
                    req.timeout(d).call().map_err(GetError::Http)?
                }
                Deadline::Headers(until) => call_by(req, until)?,
            };
            if !(300..400).contains(&resp.status()) {
                return Ok(resp);
            }
            let next = resp.header("Location").and_then(|l| url::Url::parse(&url).ok()?.join(l).ok());
            match next {
                Some(next) => url = next.to_string(),
                None => return Err(GetError::Other(format!("{} answered {url} with a redirect without a usable Location; check HF_ENDPOINT", self.endpoint()))),
            }
        }
        Err(GetError::Other(format!("{} redirected {url} more than {MAX_REDIRECTS} times; check HF_ENDPOINT", self.endpoint())))
    }

    fn unreachable(&self, t: &ureq::Transport) -> FetchError {
        FetchError::Unreachable(format!(
            "cannot reach the Hub at {} ({}); check the network and HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use only the cache",
            self.endpoint(),
            transport_text(t)
        ))
    }

    fn status_error(&self, code: u16, resp: &ureq::Response, subject: Subject) -> FetchError {
        let repo = &self.repo.repo;
        let endpoint = self.endpoint();
        let error_code = resp.header("X-Error-Code").unwrap_or("");
        let what = match subject {
            Subject::Repo => repo.to_string(),
            Subject::File(f) => format!("{f} of {repo}"),
        };
        let msg = match code {
            401 | 403 if self.config.token.is_none() => format!(
                "the Hub at {endpoint} refused {what} ({code}): {repo} is gated or private (or does not exist) and no token is set; set HF_TOKEN to an access token of an account that may read it, or run `huggingface-cli login`"
            ),
            401 => format!(
                "the Hub at {endpoint} rejected the token for {what} (401): the token in HF_TOKEN (or the HF token file) is invalid, or {repo} does not exist; set HF_TOKEN to a valid token or run `huggingface-cli login`"
            ),
            403 => format!(
                "the Hub at {endpoint} refused {what} (403): the token has no access to the gated or private repo {repo}; request access at {endpoint}/{repo} and use a token of an account that has it (HF_TOKEN or `huggingface-cli login`)"
            ),
            404 => match subject {
                Subject::Repo if error_code == "RevisionNotFound" => format!(
                    "revision {} not found in {repo} at {endpoint} (404); check the branch, tag or commit after @",
                    self.repo.revision
                ),
                Subject::Repo => format!("{repo} (revision {}) not found at {endpoint} (404); check the repo id", self.repo.revision),
                Subject::File(f) => format!(
                    "{f} is missing from {repo} at {endpoint} (404) although the checkpoint needs it: the repo is incomplete at revision {}; pick another revision or pass a local directory",
                    self.repo.revision
                ),
            },
            429 => format!("the Hub at {endpoint} is rate-limiting requests for {what} (429); wait a while and run again"),
            _ => format!("the Hub at {endpoint} failed to serve {what} (HTTP {code}); try again later"),
        };
        FetchError::Other(msg)
    }

    /// The commit `revision` points at and the repo's files there.
    pub fn revision_info(&self) -> std::result::Result<RevisionInfo, FetchError> {
        let url = format!("{}/api/{}/{}/revision/{}", self.endpoint(), self.repo.kind.plural(), self.repo.repo, encode(&self.repo.revision, false));
        let resp = match self.get(&url, &[], Deadline::Whole(self.deadline())) {
            Ok(r) => r,
            Err(GetError::Http(ureq::Error::Status(code, resp))) => return Err(self.status_error(code, &resp, Subject::Repo)),
            Err(GetError::Http(ureq::Error::Transport(t))) => return Err(self.unreachable(&t)),
            Err(GetError::Late) => return Err(FetchError::Other(self.late(&url))),
            Err(GetError::Other(m)) => return Err(FetchError::Other(m)),
        };
        let bad = |why: &str| {
            FetchError::Other(format!(
                "{} answered {url} with {why}: not a Hugging Face Hub endpoint? check HF_ENDPOINT",
                self.endpoint()
            ))
        };
        let text = resp.into_string().map_err(|e| bad(&format!("an unreadable body ({e})")))?;
        let v: Value = serde_json::from_str(&text).map_err(|_| bad("something that is not JSON"))?;
        let sha = v.get("sha").and_then(Value::as_str).filter(|s| super::cache::is_commit(s)).ok_or_else(|| bad("no commit `sha`"))?;
        let siblings = v
            .get("siblings")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no `siblings` list"))?
            .iter()
            .filter_map(|s| s.get("rfilename").and_then(Value::as_str).map(str::to_owned))
            .collect();
        Ok(RevisionInfo { sha: sha.to_string(), siblings })
    }

    /// The etag and size of `file` at `commit`, from a HEAD that does not follow the redirect to
    /// the CDN (the Hub's own answer carries `X-Linked-Etag` and `X-Linked-Size` for LFS files).
    fn file_meta(&self, commit: &str, file: &str) -> Result<FileMeta> {
        let prefix = match self.repo.kind {
            super::RepoKind::Model => "",
            super::RepoKind::Dataset => "datasets/",
        };
        let mut url = format!("{}/{prefix}{}/resolve/{}/{}", self.endpoint(), self.repo.repo, commit, encode(file, true));
        let until = self.deadline();
        for _ in 0..5 {
            let Some(within) = left(until) else { return Err(Error::invalid(self.late(&url))) };
            let req = self.authorize(self.meta.head(&url), &url).set("Accept-Encoding", "identity").timeout(within);
            let resp = match req.call() {
                Ok(r) => r,
                Err(ureq::Error::Status(code, resp)) => {
                    return Err(Error::invalid(self.status_error(code, &resp, Subject::File(file)).message()))
                }
                Err(ureq::Error::Transport(t)) => return Err(Error::invalid(self.unreachable(&t).message())),
            };
            let location = resp.header("Location").map(str::to_owned);
            if (300..400).contains(&resp.status()) {
                match location {
                    // The Hub's own redirects (a renamed repo) are relative: ask again there.
                    Some(l) if l.starts_with('/') => {
                        url = format!("{}{l}", self.origin());
                        continue;
                    }
                    Some(_) => {}
                    None => {
                        return Err(Error::invalid(format!(
                            "{} answered HEAD {url} with a redirect without a Location; check HF_ENDPOINT",
                            self.endpoint()
                        )))
                    }
                }
            }
            let etag = resp.header("X-Linked-Etag").or_else(|| resp.header("ETag")).map(normalize_etag);
            let size = resp
                .header("X-Linked-Size")
                .or_else(|| resp.header("Content-Length"))
                .and_then(|s| s.trim().parse::<u64>().ok());
            let (Some(etag), Some(size)) = (etag, size) else {
                return Err(Error::invalid(format!(
                    "{} sent no ETag or size for {file} of {} (HEAD {url}): not a Hugging Face Hub endpoint? check HF_ENDPOINT",
                    self.endpoint(),
                    self.repo.repo
                )));
            };
            if etag.is_empty() || !etag.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) || etag.starts_with('.') {
                return Err(Error::invalid(format!(
                    "{} sent an unusable ETag {etag:?} for {file} of {}; check HF_ENDPOINT",
                    self.endpoint(),
                    self.repo.repo
                )));
            }
            let url = match location {
                Some(l) if (300..400).contains(&resp.status()) => l,
                _ => url,
            };
            return Ok(FileMeta { etag, size, url });
        }
        Err(Error::invalid(format!("{} redirected {file} of {} too many times; check HF_ENDPOINT", self.endpoint(), self.repo.repo)))
    }

    /// Makes `snapshots/<commit>/<file>` hold the whole file, downloading its blob unless the
    /// snapshot or the blob is already in the cache.
    pub fn fetch(&self, cache: &RepoCache, commit: &str, file: &str, progress: &mut dyn Progress) -> Result<()> {
        if cache.snapshot_dir(commit).join(file).is_file() {
            return Ok(());
        }
        let meta = self.file_meta(commit, file)?;
        if !cache.blob(&meta.etag).is_file() {
            self.download_blob(cache, file, &meta, progress)?;
        }
        cache.link(commit, file, &meta.etag)?;
        Ok(())
    }

    fn interrupted(&self, file: &str, have: u64, size: u64, why: &str) -> Error {
        Error::invalid(format!(
            "download of {file} of {} from {} was interrupted after {have} of {size} bytes ({why}); run the same command again to resume",
            self.repo.repo,
            self.endpoint()
        ))
    }

    /// Downloads a blob into `blobs/<etag>.incomplete` (resuming what an earlier try left there),
    /// checks its size and sha256, and renames it to `blobs/<etag>`.
    fn download_blob(&self, cache: &RepoCache, file: &str, meta: &FileMeta, progress: &mut dyn Progress) -> Result<()> {
        let blob = cache.blob(&meta.etag);
        let tmp = cache.incomplete(&meta.etag);
        let blobs = blob.parent().unwrap();
        std::fs::create_dir_all(blobs).map_err(|source| Error::Io { path: blobs.to_path_buf(), source })?;
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| Error::Io { path: p, source }
        };
        // One download of a blob at a time, across processes (Python's included).
        let lock_path = cache.lock_file(&meta.etag);
        let lock_dir = lock_path.parent().unwrap();
        std::fs::create_dir_all(lock_dir).map_err(io(lock_dir))?;
        let lock = OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(io(&lock_path))?;
        lock.lock().map_err(io(&lock_path))?;
        if blob.is_file() {
            return Ok(()); // another process finished it while this one waited
        }
        let size = meta.size;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut have = std::fs::metadata(&tmp).map(|m| m.len()).unwrap_or(0);
            if have > size {
                std::fs::remove_file(&tmp).map_err(io(&tmp))?;
                have = 0;
            }
            if have == size && tmp.is_file() {
                break;
            }
            let mut headers = vec![("Accept-Encoding", "identity".to_string())];
            if have > 0 {
                headers.push(("Range", format!("bytes={have}-")));
            }
            let resp = match self.get(&meta.url, &headers, Deadline::Headers(self.deadline())) {
                Ok(r) => r,
                Err(GetError::Http(ureq::Error::Status(416, _))) if attempt < ATTEMPTS => {
                    std::fs::remove_file(&tmp).map_err(io(&tmp))?;
                    continue;
                }
                Err(GetError::Http(ureq::Error::Status(code, resp))) => {
                    return Err(Error::invalid(self.status_error(code, &resp, Subject::File(file)).message()))
                }
                Err(GetError::Http(ureq::Error::Transport(t))) => {
                    let msg = self.unreachable(&t).message();
                    return Err(Error::invalid(if have > 0 { format!("{msg}; {have} bytes of {file} are kept to resume") } else { msg }));
                }
                Err(GetError::Late) => {
                    let why = format!("no answer within {} s, twice HF_HUB_DOWNLOAD_TIMEOUT", self.deadline_secs());
                    return Err(self.interrupted(file, have, size, &why));
                }
                Err(GetError::Other(m)) => return Err(Error::invalid(m)),
            };
            // A 206 must continue exactly where the file stops; anything else starts over.
            let resumes = resp.status() == 206
                && resp
                    .header("Content-Range")
                    .and_then(|r| r.trim().strip_prefix("bytes "))
                    .and_then(|r| r.split('-').next())
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    == Some(have);
            if resp.status() == 206 && !resumes {
                std::fs::remove_file(&tmp).map_err(io(&tmp))?;
                if attempt < ATTEMPTS {
                    continue;
                }
                return Err(self.interrupted(file, have, size, "the server resumed at the wrong offset"));
            }
            let start = if resumes { have } else { 0 };
            let mut out = if resumes {
                OpenOptions::new().append(true).open(&tmp).map_err(io(&tmp))?
            } else {
                File::create(&tmp).map_err(io(&tmp))?
            };
            progress.start(&self.repo.repo, file, size, start);
            let mut reader = resp.into_reader();
            let mut done = start;
            let mut buf = vec![0u8; 256 * 1024];
            // The throughput floor: each window of `timeout` must bring its share of bytes.
            let window = self.config.timeout;
            let floor = (MIN_BYTES_PER_SECOND as f64 * window.as_secs_f64()) as u64;
            let (mut window_start, mut window_bytes) = (Instant::now(), 0u64);
            let result: std::result::Result<(), String> = loop {
                if window_start.elapsed() >= window {
                    if window_bytes < floor {
                        break Err(format!(
                            "slower than {MIN_BYTES_PER_SECOND} bytes/s over {:.0} s (HF_HUB_DOWNLOAD_TIMEOUT)",
                            window.as_secs_f64()
                        ));
                    }
                    (window_start, window_bytes) = (Instant::now(), 0);
                }
                match reader.read(&mut buf) {
                    Ok(0) => break Ok(()),
                    Ok(n) => {
                        window_bytes += n as u64;
                        if let Err(e) = out.write_all(&buf[..n]) {
                            return Err(Error::Io { path: tmp.clone(), source: e });
                        }
                        done += n as u64;
                        progress.advance(file, done);
                        if done > size {
                            break Err("more bytes than announced".into());
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e.to_string()),
                }
            };
            out.flush().map_err(io(&tmp))?;
            drop(out);
            let ok = result.is_ok() && done == size;
            progress.finish(file, ok);
            if done > size {
                std::fs::remove_file(&tmp).map_err(io(&tmp))?;
                return Err(Error::invalid(format!(
                    "{} sent more than the {size} bytes announced for {file} of {}; the partial file was removed, run again",
                    self.endpoint(),
                    self.repo.repo
                )));
            }
            if ok {
                break;
            }
            let why = result.err().unwrap_or_else(|| "the connection closed early".into());
            // Retry at once when this try made progress; the next try resumes from `done`.
            if attempt < ATTEMPTS && done > have {
                tracing::warn!("{file} of {}: transfer broke after {done} of {size} bytes ({why}); resuming", self.repo.repo);
                continue;
            }
            return Err(self.interrupted(file, done, size, &why));
        }
        if is_sha256(&meta.etag) {
            let digest = sha256_file(&tmp)?;
            if !digest.eq_ignore_ascii_case(&meta.etag) {
                std::fs::remove_file(&tmp).map_err(io(&tmp))?;
                return Err(Error::invalid(format!(
                    "{file} of {} from {} is corrupt (sha256 {digest}, expected {}); the download was removed, run again",
                    self.repo.repo,
                    self.endpoint(),
                    meta.etag
                )));
            }
        }
        std::fs::rename(&tmp, &blob).map_err(io(&blob))?;
        tracing::info!("downloaded {file} of {} ({size} bytes) into {}", self.repo.repo, blob.display());
        Ok(())
    }
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
