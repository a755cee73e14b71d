//! A fake Hugging Face Hub on loopback for the download tests: a threaded HTTP/1.1 server that
//! serves fixture repos the way huggingface.co does.
//!
//! - `GET /api/models/{owner}/{name}/revision/{rev}`: `{"id", "sha", "siblings": [{"rfilename"}]}`
//!   (404 with `X-Error-Code: RepoNotFound` / `RevisionNotFound`).
//! - `HEAD|GET /{owner}/{name}/resolve/{rev}/{file}`: small files answer 200 with `ETag` (a
//!   git-blob-like 40-hex id), `X-Repo-Commit` and the body; LFS files (`*.safetensors`, `*.bin`)
//!   answer 302 to `/cdn/{sha256}` with `X-Linked-Etag: "<sha256>"`, `X-Linked-Size`,
//!   `X-Repo-Commit`. Gated repos need `Authorization: Bearer <token>` here (401 without, 403 with a
//!   wrong one), as on the Hub, while the API and the CDN stay open.
//! - Dataset repos the same way under `/api/datasets/…` and `/datasets/{owner}/{name}/resolve/…`
//!   (added with [`FakeHub::add_dataset`]; `*.parquet` files are LFS files).
//! - `GET /cdn/{sha256}`: the LFS bytes, with `Range: bytes=N-` answered 206 + `Content-Range`.
//!
//! Test knobs: cut a file's transfer off halfway (n times), corrupt its bytes, answer 404 for a
//! file still listed in `siblings`, delay its body, trickle its GET's headers or body a byte at
//! a time; every request is logged (method, path, Range, Authorization).

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

/// One logged request.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
    pub auth: Option<String>,
}

#[derive(Default)]
struct Repo {
    refs: HashMap<String, String>,
    commits: HashMap<String, BTreeMap<String, Vec<u8>>>,
    gated_token: Option<String>,
}

#[derive(Default)]
struct State {
    repos: HashMap<String, Repo>,
    /// sha256 → (file name, bytes) of LFS files, served under /cdn/.
    lfs: HashMap<String, (String, Vec<u8>)>,
    log: Vec<Req>,
    /// file name → how many more transfers of it are cut off halfway.
    cut: HashMap<String, usize>,
    corrupt: HashSet<String>,
    hidden: HashSet<String>,
    /// file name → milliseconds to wait before sending its bytes.
    slow: HashMap<String, u64>,
    /// file name → (milliseconds between bytes, in the headers or the body) of its GETs.
    trickle: HashMap<String, (u64, Part)>,
}

/// Which part of an answer [`FakeHub::trickle`] sends a byte at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Headers,
    Body,
}

pub struct FakeHub {
    pub url: String,
    state: Arc<Mutex<State>>,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

pub fn is_lfs(file: &str) -> bool {
    file.ends_with(".safetensors") || file.ends_with(".bin") || file.ends_with(".parquet")
}

/// The files of a directory, by name.
pub fn dir_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            files.insert(entry.file_name().to_string_lossy().into_owned(), std::fs::read(entry.path()).unwrap());
        }
    }
    files
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl FakeHub {
    pub fn start() -> FakeHub {
        // The Hub, and its CDN on another port (another origin: the token must not go there).
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let cdn = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let cdn_url = format!("http://{}", cdn.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        for l in [listener, cdn] {
            let (st, cdn_url) = (state.clone(), cdn_url.clone());
            std::thread::spawn(move || {
                for stream in l.incoming() {
                    let Ok(stream) = stream else { continue };
                    let (st, cdn_url) = (st.clone(), cdn_url.clone());
                    std::thread::spawn(move || {
                        let _ = handle(stream, &st, &cdn_url);
                    });
                }
            });
        }
        FakeHub { url, state }
    }

    /// Adds a commit with `files` to `repo` and points `revision` (a branch or tag) at it.
    /// Returns the commit id.
    pub fn add(&self, repo: &str, revision: &str, files: BTreeMap<String, Vec<u8>>) -> String {
        let mut h = Sha256::new();
        h.update(repo.as_bytes());
        h.update(revision.as_bytes());
        for (name, bytes) in &files {
            h.update(name.as_bytes());
            h.update(bytes);
        }
        let commit: String = h.finalize().iter().take(20).map(|b| format!("{b:02x}")).collect();
        let mut st = self.state.lock().unwrap();
        for (name, bytes) in &files {
            if is_lfs(name) {
                st.lfs.insert(sha256_hex(bytes), (name.clone(), bytes.clone()));
            }
        }
        let r = st.repos.entry(repo.to_string()).or_default();
        r.commits.insert(commit.clone(), files);
        r.refs.insert(revision.to_string(), commit.clone());
        commit
    }

    /// [`add`](Self::add) for a dataset repo.
    pub fn add_dataset(&self, repo: &str, revision: &str, files: BTreeMap<String, Vec<u8>>) -> String {
        self.add(&format!("datasets/{repo}"), revision, files)
    }

    /// Files need `Authorization: Bearer <token>`.
    pub fn gate(&self, repo: &str, token: &str) {
        self.state.lock().unwrap().repos.get_mut(repo).unwrap().gated_token = Some(token.to_string());
    }

    /// Cuts the next `times` transfers of `file` off halfway.
    pub fn cut(&self, file: &str, times: usize) {
        self.state.lock().unwrap().cut.insert(file.to_string(), times);
    }

    /// Serves `file` with one byte changed (its size and etag unchanged).
    pub fn corrupt(&self, file: &str, on: bool) {
        let mut st = self.state.lock().unwrap();
        if on {
            st.corrupt.insert(file.to_string());
        } else {
            st.corrupt.remove(file);
        }
    }

    /// Waits `ms` milliseconds before sending the bytes of `file`.
    /// Sends `part` of every GET answer for `file` one byte every `ms` milliseconds (a server
    /// that never lets the per-read timeout trip).
    pub fn trickle(&self, file: &str, ms: u64, part: Part) {
        self.state.lock().unwrap().trickle.insert(file.to_string(), (ms, part));
    }

    pub fn slow(&self, file: &str, ms: u64) {
        self.state.lock().unwrap().slow.insert(file.to_string(), ms);
    }

    /// Answers 404 for `file` although `siblings` lists it.
    pub fn hide(&self, file: &str) {
        self.state.lock().unwrap().hidden.insert(file.to_string());
    }

    pub fn requests(&self) -> Vec<Req> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn clear_log(&self) {
        self.state.lock().unwrap().log.clear();
    }

    /// Requests for file contents or metadata (anything but the revision API).
    pub fn file_requests(&self) -> Vec<Req> {
        self.requests().into_iter().filter(|r| !r.path.starts_with("/api/")).collect()
    }

    /// The names of the files asked for through `/resolve/` (any method), each with the number
    /// of HEAD requests for it (the client asks for a file's metadata once per download).
    pub fn resolved_files(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for r in self.requests() {
            if let Some(i) = r.path.find("/resolve/") {
                let rest = &r.path[i + "/resolve/".len()..];
                let file = rest.split_once('/').map(|(_, f)| f).unwrap_or("");
                *out.entry(decode(file)).or_insert(0) += (r.method == "HEAD") as usize;
            }
        }
        out
    }

    /// How many GET requests fetched bytes of `file` (from `/resolve/` or the CDN).
    pub fn gets(&self, file: &str) -> usize {
        let st = self.state.lock().unwrap();
        st.log
            .iter()
            .filter(|r| r.method == "GET")
            .filter(|r| {
                r.path.ends_with(&format!("/{file}"))
                    || r.path.strip_prefix("/cdn/").is_some_and(|sha| st.lfs.get(sha).is_some_and(|(f, _)| f == file))
            })
            .count()
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Send only this many body bytes, then close (a transfer cut off).
    cut_at: Option<usize>,
    /// Wait this long before the body.
    delay_ms: u64,
    /// Send the headers or the body one byte every this many milliseconds.
    trickle: Option<(u64, Part)>,
}

impl Response {
    fn new(status: u16) -> Self {
        Response { status, headers: Vec::new(), body: Vec::new(), cut_at: None, delay_ms: 0, trickle: None }
    }
    fn header(mut self, k: &str, v: impl Into<String>) -> Self {
        self.headers.push((k.to_string(), v.into()));
        self
    }
    fn body(mut self, b: Vec<u8>) -> Self {
        self.body = b;
        self
    }
    fn error(status: u16, code: &str, msg: &str) -> Self {
        Response::new(status)
            .header("X-Error-Code", code)
            .header("Content-Type", "application/json")
            .body(serde_json::json!({ "error": msg }).to_string().into_bytes())
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        _ => "Other",
    }
}

fn handle(stream: TcpStream, state: &Mutex<State>, base: &str) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let req = Req { method: method.clone(), path: path.clone(), range: headers.get("range").cloned(), auth: headers.get("authorization").cloned() };
    let resp = {
        let mut st = state.lock().unwrap();
        st.log.push(req.clone());
        route(&mut st, &req, base)
    };
    let mut out = stream;
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    let mut has_len = false;
    for (k, v) in &resp.headers {
        has_len |= k.eq_ignore_ascii_case("content-length");
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has_len {
        head.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    // One byte at a time, `ms` apart (stops when the client hangs up).
    let trickle = |out: &mut TcpStream, bytes: &[u8], ms: u64| -> std::io::Result<()> {
        for b in bytes {
            out.write_all(std::slice::from_ref(b))?;
            out.flush()?;
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        Ok(())
    };
    match resp.trickle {
        Some((ms, Part::Headers)) => trickle(&mut out, head.as_bytes(), ms)?,
        _ => out.write_all(head.as_bytes())?,
    }
    if method != "HEAD" {
        out.flush()?;
        std::thread::sleep(std::time::Duration::from_millis(resp.delay_ms));
        let n = resp.cut_at.unwrap_or(resp.body.len()).min(resp.body.len());
        match resp.trickle {
            Some((ms, Part::Body)) => trickle(&mut out, &resp.body[..n], ms)?,
            _ => out.write_all(&resp.body[..n])?,
        }
    }
    out.flush()?;
    let _ = out.shutdown(std::net::Shutdown::Both);
    Ok(())
}

/// Answers a GET with `bytes`, honouring Range and the cut/corrupt knobs for `file`.
fn serve_bytes(st: &mut State, req: &Req, file: &str, bytes: &[u8], mut resp: Response) -> Response {
    let mut body = bytes.to_vec();
    if st.corrupt.contains(file) && !body.is_empty() {
        let mid = body.len() / 2;
        body[mid] ^= 0xff;
    }
    let total = body.len();
    let start = req
        .range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|s| s.parse::<usize>().ok());
    if let Some(start) = start {
        if start >= total {
            return Response::new(416).header("Content-Range", format!("bytes */{total}"));
        }
        resp.status = 206;
        resp = resp.header("Content-Range", format!("bytes {start}-{}/{total}", total - 1));
        body = body[start..].to_vec();
    }
    resp = resp.header("Content-Length", body.len().to_string());
    if req.method == "GET" {
        resp.delay_ms = st.slow.get(file).copied().unwrap_or(0);
        resp.trickle = st.trickle.get(file).copied();
        if let Some(n) = st.cut.get_mut(file) {
            if *n > 0 {
                *n -= 1;
                resp.cut_at = Some(body.len() / 2);
            }
        }
    }
    resp.body(body)
}

fn route(st: &mut State, req: &Req, base: &str) -> Response {
    let path = req.path.split('?').next().unwrap_or("");
    // Dataset repos live under their own prefix, kept in the repo's key.
    let (kind, api, path) = if let Some(rest) = path.strip_prefix("/api/datasets/") {
        ("datasets/", Some(rest), path)
    } else if let Some(rest) = path.strip_prefix("/api/models/") {
        ("", Some(rest), path)
    } else if path.starts_with("/datasets/") {
        ("datasets/", None, &path["/datasets".len()..])
    } else {
        ("", None, path)
    };
    if let Some(rest) = api {
        let parts: Vec<&str> = rest.splitn(4, '/').collect();
        if parts.len() != 4 || parts[2] != "revision" || req.method != "GET" {
            return Response::error(404, "EntryNotFound", "no such API");
        }
        let repo_id = format!("{kind}{}/{}", parts[0], parts[1]);
        let rev = decode(parts[3]);
        let Some(repo) = st.repos.get(&repo_id) else {
            return Response::error(404, "RepoNotFound", "Repository not found");
        };
        let Some((commit, files)) = lookup(repo, &rev) else {
            return Response::error(404, "RevisionNotFound", "Invalid rev id");
        };
        let siblings: Vec<_> = files.keys().map(|f| serde_json::json!({ "rfilename": f })).collect();
        let body = serde_json::json!({ "id": repo_id, "sha": commit, "siblings": siblings, "private": false });
        return Response::new(200).header("Content-Type", "application/json").body(body.to_string().into_bytes());
    }
    if let Some(sha) = path.strip_prefix("/cdn/") {
        let Some((file, bytes)) = st.lfs.get(sha).cloned() else {
            return Response::error(404, "EntryNotFound", "no such blob");
        };
        let resp = Response::new(200).header("ETag", format!("\"{sha}\""));
        return serve_bytes(st, req, &file, &bytes, resp);
    }
    // /{owner}/{name}/resolve/{rev}/{file...}
    let parts: Vec<&str> = path.trim_start_matches('/').splitn(5, '/').collect();
    if parts.len() != 5 || parts[2] != "resolve" {
        return Response::error(404, "EntryNotFound", "not found");
    }
    let repo_id = format!("{kind}{}/{}", parts[0], parts[1]);
    let rev = decode(parts[3]);
    let file = decode(parts[4]);
    let Some(repo) = st.repos.get(&repo_id) else {
        return Response::error(401, "RepoNotFound", "Repository not found");
    };
    if let Some(token) = &repo.gated_token {
        match req.auth.as_deref() {
            None => return Response::error(401, "GatedRepo", "Access to this gated repo is restricted: log in"),
            Some(a) if a != format!("Bearer {token}") => {
                return Response::error(403, "GatedRepo", "Access to this gated repo is restricted")
            }
            _ => {}
        }
    }
    let Some((commit, files)) = lookup(repo, &rev) else {
        return Response::error(404, "RevisionNotFound", "Invalid rev id");
    };
    let (commit, files) = (commit.clone(), files.clone());
    if st.hidden.contains(&file) {
        return Response::error(404, "EntryNotFound", "Entry not found");
    }
    let Some(bytes) = files.get(&file) else {
        return Response::error(404, "EntryNotFound", "Entry not found");
    };
    if is_lfs(&file) {
        let sha = sha256_hex(bytes);
        return Response::new(302)
            .header("Location", format!("{base}/cdn/{sha}"))
            .header("X-Repo-Commit", commit)
            .header("X-Linked-Etag", format!("\"{sha}\""))
            .header("X-Linked-Size", bytes.len().to_string())
            .header("ETag", format!("\"{}\"", &sha256_hex(&[b"git".as_slice(), bytes].concat())[..40]));
    }
    let etag = &sha256_hex(&[b"blob".as_slice(), bytes].concat())[..40];
    let resp = Response::new(200).header("ETag", format!("\"{etag}\"")).header("X-Repo-Commit", commit);
    serve_bytes(st, req, &file, bytes, resp)
}

fn lookup<'r>(repo: &'r Repo, rev: &str) -> Option<(&'r String, &'r BTreeMap<String, Vec<u8>>)> {
    let commit = repo.refs.get(rev).map(String::as_str).unwrap_or(rev);
    repo.commits.get_key_value(commit)
}
