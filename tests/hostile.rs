//! Hostile and careless input (issue 11): each case builds its bomb on the fly (small files with
//! big headers, FIFOs, servers on loopback that misbehave) and asserts the promised behaviour:
//! one line on stderr, exit status 2, bounded memory and time, no token leaked. Nothing here
//! allocates what the bombs ask for: the refusal happens before.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proxythinker::hub::{self, HubConfig, NoProgress};

const BIN: &str = env!("CARGO_BIN_EXE_proxythinker");
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn tiny(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny").join(name)
}

/// One request as a [`Server`] saw it.
#[derive(Debug, Clone)]
struct Seen {
    /// The request line, for failure messages.
    #[allow(dead_code)]
    line: String,
    authorization: Option<String>,
}

type Handler = Arc<dyn Fn(&str, &mut TcpStream) + Send + Sync>;

/// A bare HTTP/1.1 server on loopback: logs each request, answers with `handler` (which writes
/// the raw response), closes the connection.
struct Server {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn on(listener: TcpListener, seen: Arc<Mutex<Vec<Seen>>>, handler: Handler) -> Server {
        let port = listener.local_addr().unwrap().port();
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (log, handler) = (log.clone(), handler.clone());
                std::thread::spawn(move || {
                    let mut stream = stream;
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() {
                        return;
                    }
                    let mut authorization = None;
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            if k.eq_ignore_ascii_case("authorization") {
                                authorization = Some(v.trim().to_string());
                            }
                        }
                    }
                    log.lock().unwrap().push(Seen { line: line.trim().to_string(), authorization });
                    handler(line.trim(), &mut stream);
                });
            }
        });
        Server { port, seen }
    }

    fn start(handler: Handler) -> Server {
        Server::on(TcpListener::bind("127.0.0.1:0").unwrap(), Arc::new(Mutex::new(Vec::new())), handler)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn respond(stream: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut out = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let _ = stream.write_all(out.as_bytes());
    let _ = stream.write_all(body);
}

fn revision_json() -> Vec<u8> {
    format!(r#"{{"sha":"{COMMIT}","siblings":[{{"rfilename":"config.json"}},{{"rfilename":"tokenizer.json"}},{{"rfilename":"model.safetensors"}}]}}"#)
        .into_bytes()
}

fn config_with_token(endpoint: &str, cache: &Path) -> HubConfig {
    let mut c = HubConfig::new(endpoint, cache);
    c.token = Some("hf_secret".into());
    c.timeout = Duration::from_secs(5);
    c
}

/// A Hub whose file answers redirect to `target` (absolute), as the Hub redirects LFS files.
fn redirecting_hub(listener: TcpListener, target: String) -> Server {
    Server::on(
        listener,
        Arc::new(Mutex::new(Vec::new())),
        Arc::new(move |line: &str, s: &mut TcpStream| {
            if line.contains("/api/models/") {
                respond(s, "200 OK", &[("Content-Type", "application/json".into())], &revision_json());
            } else {
                let sha = "a".repeat(64);
                respond(
                    s,
                    "302 Found",
                    &[("Location", format!("{target}/cdn/{sha}")), ("X-Linked-Etag", format!("\"{sha}\"")), ("X-Linked-Size", "10".into())],
                    b"",
                );
            }
        }),
    )
}

#[test]
fn the_token_never_goes_to_a_look_alike_origin() {
    // The look-alike's port is the Hub's port with a digit appended (127.0.0.1:4123 → :41239):
    // a string-prefix test of the URL takes one for the other.
    let (hub_listener, look_alike_listener) = (0..50)
        .find_map(|_| {
            let la = TcpListener::bind("127.0.0.1:0").ok()?;
            let port = la.local_addr().ok()?.port();
            (port % 10 == 9 && port / 10 >= 1024).then_some(())?;
            Some((TcpListener::bind(("127.0.0.1", port / 10)).ok()?, la))
        })
        .or_else(|| {
            // Ask for ports until one ends in 9 and its prefix is free.
            (0..2000).find_map(|_| {
                let la = TcpListener::bind("127.0.0.1:0").ok()?;
                let port = la.local_addr().ok()?.port();
                if port % 10 != 9 || port / 10 < 1024 {
                    return None;
                }
                Some((TcpListener::bind(("127.0.0.1", port / 10)).ok()?, la))
            })
        })
        .expect("two ports that look alike");
    let look_alike = Server::on(look_alike_listener, Arc::new(Mutex::new(Vec::new())), Arc::new(|_: &str, s: &mut TcpStream| respond(s, "404 Not Found", &[], b"")));
    let hub = redirecting_hub(hub_listener, look_alike.url());
    assert!(look_alike.url().starts_with(&hub.url()), "{} vs {}", look_alike.url(), hub.url());
    let cache = tempfile::tempdir().unwrap();
    let _ = hub::resolve_with("owner/name", "--model", &config_with_token(&hub.url(), cache.path()), &mut NoProgress);
    assert!(hub.seen().iter().any(|r| r.authorization.is_some()), "the Hub itself gets the token: {:?}", hub.seen());
    let seen = look_alike.seen();
    assert!(!seen.is_empty(), "the redirect was followed");
    assert!(seen.iter().all(|r| r.authorization.is_none()), "token leaked to {}: {seen:?}", look_alike.url());
}

#[test]
fn a_redirect_to_the_same_host_on_another_port_loses_the_token() {
    let other = Server::start(Arc::new(|_: &str, s: &mut TcpStream| respond(s, "404 Not Found", &[], b"")));
    let target = other.url();
    // The revision API itself redirects (ureq's "same host" rule kept the token here).
    let hub = Server::start(Arc::new(move |line: &str, s: &mut TcpStream| {
        let path = line.split_whitespace().nth(1).unwrap_or("/");
        respond(s, "302 Found", &[("Location", format!("{target}{path}"))], b"");
    }));
    let cache = tempfile::tempdir().unwrap();
    let err = hub::resolve_with("owner/name", "--model", &config_with_token(&hub.url(), cache.path()), &mut NoProgress)
        .expect_err("the other port has nothing");
    assert_eq!(err.to_string().lines().count(), 1, "{err}");
    let seen = other.seen();
    assert!(!seen.is_empty(), "the redirect was followed: {:?}", hub.seen());
    assert!(seen.iter().all(|r| r.authorization.is_none()), "token sent to another port: {seen:?}");
    assert!(hub.seen().iter().all(|r| r.authorization.as_deref() == Some("Bearer hf_secret")));
}

/// A server that sends a status line and headers, then one body byte every `every`.
fn trickling(every: Duration, length: usize) -> Server {
    Server::start(Arc::new(move |_: &str, s: &mut TcpStream| {
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\nContent-Type: application/json\r\n\r\n");
        let _ = s.write_all(head.as_bytes());
        for _ in 0..length {
            std::thread::sleep(every);
            if s.write_all(b" ").is_err() {
                return;
            }
        }
    }))
}

#[test]
fn a_hub_that_trickles_bytes_cannot_hold_a_request_forever() {
    // One byte every 200 ms never trips the 1 s wait for bytes, but the whole request has a deadline.
    let hub = trickling(Duration::from_millis(200), 10_000);
    let cache = tempfile::tempdir().unwrap();
    let mut config = HubConfig::new(hub.url(), cache.path());
    config.timeout = Duration::from_secs(1);
    let started = Instant::now();
    let err = hub::resolve_with("owner/name", "--model", &config, &mut NoProgress).expect_err("a deadline");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_eq!(err.to_string().lines().count(), 1, "{err}");
}

// ---- the binary under a memory and time bound -------------------------------------------------

/// Address space the binary may map in these tests: far below what the bombs ask for, well above
/// what a refusal (or a tiny model's run) needs.
const ADDRESS_SPACE_KB: u64 = 3_000_000;

/// Runs the binary with `args` under `ulimit -v` and a wall-clock limit of `secs` (killed past
/// it), with no config file and a private cache. Returns the output and the time it took.
fn bounded(args: &[&str], envs: &[(&str, &str)], secs: u64) -> (Output, Duration) {
    let cache = std::env::temp_dir().join(format!("proxythinker-hostile-{}", std::process::id()));
    let mut c = Command::new("sh");
    c.arg("-c").arg(format!("ulimit -v {ADDRESS_SPACE_KB}; exec \"$0\" \"$@\"")).arg(BIN).args(args);
    c.env("PROXYTHINKER_CONFIG", std::env::temp_dir().join("proxythinker-tests-no-config.toml"))
        .env("PROXYTHINKER_CACHE", &cache)
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("PROXYTHINKER_FREE_MEMORY_BYTES");
    for (k, v) in envs {
        c.env(k, v);
    }
    let started = Instant::now();
    let mut child = c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!("{args:?} still running after {secs} s; stderr: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = started.elapsed();
    (child.wait_with_output().expect("output"), took)
}

/// Exit status 2, one line on stderr that holds every needle, no panic, no abort.
fn refused(out: &Output, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("memory allocation"), "{stderr}");
    for n in needles {
        assert!(stderr.contains(n), "{n:?} not in: {stderr}");
    }
    stderr
}

fn trio_args(question: &str) -> Vec<String> {
    let mut a: Vec<String> = vec!["run".into(), "--question".into(), question.into()];
    for (flag, name) in [("--base", "qwen2_5_vl"), ("--rft", "trio_rft"), ("--small", "trio_small")] {
        a.push(flag.into());
        a.push(tiny(name).to_str().unwrap().into());
    }
    a
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn prompts_past_the_context_are_refused_with_the_counts() {
    // 22 kB and 120 kB questions: far past the fixtures' 4096-token context.
    for size in [22_000, 120_000] {
        let question = "how many circles are there? ".repeat(size / 28);
        let (out, took) = bounded(&strs(&trio_args(&question)), &[], 30);
        refused(&out, &["the prompt is", "tokens but", "reads at most 4096", "max_position_embeddings"]);
        assert!(took < Duration::from_secs(20), "{took:?}");
    }
    // The same for one model.
    let question = "circles ".repeat(3000);
    let model = tiny("qwen2_5_vl");
    let (out, _) = bounded(&["logits", "--model", model.to_str().unwrap(), "--prompt", &question], &[], 30);
    refused(&out, &["the prompt is", "reads at most 4096"]);
}

#[test]
fn budgets_past_the_context_are_refused_before_decoding() {
    let model = tiny("qwen2_5_vl");
    let (out, _) = bounded(&["generate", "--model", model.to_str().unwrap(), "--prompt", "Hi", "--max-new-tokens", "1000000000000"], &[], 30);
    refused(&out, &["plus --max-new-tokens 1000000000000", "4096-token context", "lower --max-new-tokens to at most"]);
    // u64::MAX: no arithmetic wraps around to a budget that passes.
    let mut args = trio_args("How many circles?");
    args.extend(["--max-new-tokens".into(), u64::MAX.to_string()]);
    let (out, took) = bounded(&strs(&args), &[], 30);
    refused(&out, &["4096-token context", "lower --max-new-tokens"]);
    assert!(took < Duration::from_secs(20), "{took:?}");
}

/// A copy of a fixture checkpoint with `file` written into it.
fn checkpoint_with(name: &str, file: &str, contents: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(tiny(name)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    std::fs::write(dir.path().join(file), contents).unwrap();
    dir
}

#[test]
fn a_template_that_renders_megabytes_is_refused_by_the_context() {
    let ckpt = checkpoint_with("qwen2_5_vl", "chat_template.jinja", b"{% for i in range(1000) %}{% for j in range(300) %}xxxxxxxxxx{% endfor %}{% endfor %}{{ messages[0].content[0].text }}");
    let (out, _) = bounded(&["logits", "--model", ckpt.path().to_str().unwrap(), "--prompt", "Hi"], &[], 60);
    refused(&out, &["the prompt is", "reads at most 4096"]);
}

#[test]
fn a_template_that_writes_gigabytes_stops_at_the_prompt_limit() {
    // Each `"x" * 100000000` is one instruction (minijinja's own cap per string): fuel alone let
    // this render 10 GB into memory and abort.
    let ckpt = checkpoint_with("qwen2_5_vl", "chat_template.jinja", b"{% for i in range(100) %}{{ 'x' * 100000000 }}{% endfor %}{{ messages[0].content[0].text }}");
    let (out, took) = bounded(&["logits", "--model", ckpt.path().to_str().unwrap(), "--prompt", "Hi"], &[], 60);
    refused(&out, &["rendered more than 4194304 bytes", "PROXYTHINKER_MAX_PROMPT_BYTES"]);
    assert!(took < Duration::from_secs(20), "{took:?}");
}

#[test]
fn a_question_over_the_prompt_limit_is_refused_before_it_is_tokenized() {
    let question = "circles ".repeat(250);
    let (out, _) = bounded(
        &["logits", "--model", tiny("qwen2_5_vl").to_str().unwrap(), "--prompt", &question],
        &[("PROXYTHINKER_MAX_PROMPT_BYTES", "1000")],
        30,
    );
    refused(&out, &["the question is 2000 bytes", "over the prompt limit of 1000 bytes", "PROXYTHINKER_MAX_PROMPT_BYTES"]);
}

#[test]
fn a_prompt_of_megabytes_is_refused_from_its_first_bytes() {
    // 4 MB rendered (just under the prompt limit): tokenizing it all took 1.2 GB and 12 s; a
    // prefix of 8 bytes per token of context already shows it cannot fit.
    let ckpt = checkpoint_with("qwen2_5_vl", "chat_template.jinja", b"{{ 'x ' * 2090000 }}{{ messages[0].content[0].text }}");
    let (out, took) = bounded(&["logits", "--model", ckpt.path().to_str().unwrap(), "--prompt", "Hi"], &[], 60);
    refused(&out, &["the prompt is more than", "tokens but", "reads at most 4096", "the first 32767 of the prompt's 4180", "bytes alone"]);
    assert!(took < Duration::from_secs(20), "{took:?}");
}

#[test]
fn the_preflight_counts_the_prefill() {
    // A prompt inside the context whose prefill alone needs more than the free memory given.
    let question = "circles ".repeat(600);
    let mut args = trio_args(&question);
    args.extend(["--max-new-tokens".into(), "4".into()]);
    let (out, _) = bounded(&strs(&args), &[("PROXYTHINKER_FREE_MEMORY_BYTES", "cpu:60000000")], 30);
    refused(&out, &["not enough memory on cpu", "prefill"]);
}

// ---- traces and exports ------------------------------------------------------------------------

#[test]
fn run_trace_at_a_directory_is_refused_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = trio_args("How many circles?");
    args.extend(["--max-new-tokens".into(), "4".into(), "--trace".into(), dir.path().to_str().unwrap().into()]);
    let (out, took) = bounded(&strs(&args), &[], 30);
    refused(&out, &["--trace", "is a directory; name a file"]);
    assert!(out.stdout.is_empty());
    assert!(took < Duration::from_secs(10), "{took:?}");
    // A FIFO is no trace file either (and must not block the run).
    let fifo = dir.path().join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let n = args.len();
    args[n - 1] = fifo.to_str().unwrap().into();
    let (out, _) = bounded(&strs(&args), &[], 30);
    refused(&out, &["is not a regular file"]);
}

#[test]
fn a_trace_that_cannot_be_finished_says_so_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t.jsonl");
    let writer = proxythinker::trace::TraceWriter::create(&target).unwrap();
    std::fs::create_dir(&target).unwrap(); // the target turned into a directory while decoding
    let a = proxythinker::tui::synthetic::app(3, (120, 40));
    let err = writer.finish(&proxythinker::tui::synthetic::trace_header(&a), &proxythinker::tui::trace_io::records(&a)).unwrap_err().to_string();
    assert!(err.contains("t.jsonl") && err.contains("became a directory"), "{err}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, [std::ffi::OsString::from("t.jsonl")], "no temporary file left");
}

#[test]
fn an_export_that_cannot_be_written_names_the_export_not_the_trace_flag() {
    let dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("no-such-dir");
    let a = proxythinker::tui::synthetic::app(3, (120, 40));
    let err = proxythinker::tui::trace_io::export_new(&a, &proxythinker::tui::synthetic::trace_header(&a), &gone).unwrap_err().to_string();
    assert!(err.starts_with("the export ") && err.contains("no-such-dir") && err.contains("cannot write there"), "{err}");
    assert!(!err.contains("--trace"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn a_closed_stdout_is_a_write_error_naming_stdout() {
    let mut args = trio_args("How many circles?");
    args.extend(["--max-new-tokens".into(), "2".into()]);
    let mut child = Command::new(BIN)
        .args(&args)
        .env("PROXYTHINKER_CONFIG", std::env::temp_dir().join("proxythinker-tests-no-config.toml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader went away before anything was printed
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    // (The trio's vocabulary note comes first.)
    let last = stderr.trim_end().lines().last().unwrap_or("");
    assert!(last.starts_with("error: cannot write <stdout>: Broken pipe"), "{stderr}");
}

#[test]
fn two_exports_within_a_second_keep_both_files() {
    use proxythinker::tui::{synthetic, trace_io};
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (synthetic::app(3, (120, 40)), synthetic::app(5, (120, 40)));
    let first = trace_io::export_new(&a, &synthetic::trace_header(&a), dir.path()).unwrap();
    let second = trace_io::export_new(&b, &synthetic::trace_header(&b), dir.path()).unwrap();
    assert_ne!(first, second);
    assert_eq!(proxythinker::trace::read(&first).unwrap().records.len(), 9, "the first export is still whole");
    assert_eq!(proxythinker::trace::read(&second).unwrap().records.len(), 15);
    // Exporting onto an existing name is refused, never a replacement.
    let err = trace_io::export(&b, &synthetic::trace_header(&b), &first).unwrap_err();
    assert!(proxythinker::trace::is_already_exists(&err), "{err}");
    assert_eq!(proxythinker::trace::read(&first).unwrap().records.len(), 9);
}

// ---- images ------------------------------------------------------------------------------------

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend((data.len() as u32).to_be_bytes());
    let mut body = kind.to_vec();
    body.extend(data);
    out.extend(&body);
    out.extend(crc32(&body).to_be_bytes());
}

/// A PNG of a few dozen bytes whose header declares `w`×`h` RGB pixels.
fn png_bomb(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    png_chunk(&mut out, b"IHDR", &ihdr);
    png_chunk(&mut out, b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    png_chunk(&mut out, b"IEND", &[]);
    out
}

#[test]
fn an_image_that_declares_billions_of_pixels_is_refused_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny("qwen2_5_vl");
    for (w, h) in [(40_000, 40_000), (20_000, 20_000)] {
        let path = dir.path().join(format!("{w}x{h}.png"));
        std::fs::write(&path, png_bomb(w, h)).unwrap();
        let (out, took) = bounded(&["logits", "--model", model.to_str().unwrap(), "--prompt", "Hi", "--image", path.to_str().unwrap()], &[], 30);
        refused(&out, &[&format!("declares {w}x{h} pixels"), "PROXYTHINKER_MAX_IMAGE_PIXELS"]);
        assert!(took < Duration::from_secs(10), "{took:?}");
    }
    // The library refuses it too (the UI's `o` and replay's picture go through the same decoder).
    let err = proxythinker::processor::SourceImage::from_bytes(&png_bomb(40_000, 40_000), Path::new("bomb.png")).unwrap_err();
    assert!(err.to_string().contains("over the limit"), "{err}");
}

#[test]
fn special_files_are_no_images_and_never_block() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.png");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let model = tiny("qwen2_5_vl");
    for special in [Path::new("/dev/zero"), fifo.as_path()] {
        let (out, took) = bounded(&["logits", "--model", model.to_str().unwrap(), "--prompt", "Hi", "--image", special.to_str().unwrap()], &[], 20);
        refused(&out, &["is not a regular file"]);
        assert!(took < Duration::from_secs(10), "{took:?}");
        let mut args = trio_args("How many circles?");
        args.extend(["--image".into(), special.to_str().unwrap().into()]);
        let (out, _) = bounded(&strs(&args), &[], 20);
        refused(&out, &["is not a regular file"]);
        // What the UI's `o` and a replayed trace's picture call.
        let err = proxythinker::tui::picture::Thumbnail::open(special).expect_err("refused");
        assert!(err.to_string().contains("is not a regular file"), "{err}");
    }
    // Bigger than the file-size limit (lowered for the test): refused, not read.
    let big = dir.path().join("big.png");
    std::fs::write(&big, vec![0u8; 4096]).unwrap();
    let (out, _) = bounded(&["logits", "--model", model.to_str().unwrap(), "--prompt", "Hi", "--image", big.to_str().unwrap()], &[("PROXYTHINKER_MAX_IMAGE_FILE_BYTES", "1000")], 20);
    refused(&out, &["over the limit of 1000 bytes", "PROXYTHINKER_MAX_IMAGE_FILE_BYTES"]);
}

#[test]
fn a_processor_config_that_upscales_toward_billions_of_pixels_is_refused() {
    let image = tiny("images/100x75.png");
    let config = |lo: u64, hi: u64| {
        let text = std::fs::read_to_string(tiny("qwen2_5_vl/preprocessor_config.json")).unwrap();
        text.replace("\"min_pixels\": 3136", &format!("\"min_pixels\": {lo}")).replace("\"max_pixels\": 200704", &format!("\"max_pixels\": {hi}"))
    };
    let ckpt = checkpoint_with("qwen2_5_vl", "preprocessor_config.json", config(3_000_000_000, 3_000_000_000).as_bytes());
    let (out, took) = bounded(&["logits", "--model", ckpt.path().to_str().unwrap(), "--prompt", "Hi", "--image", image.to_str().unwrap()], &[], 30);
    refused(&out, &["min_pixels (3000000000) is over the limit", "PROXYTHINKER_MAX_RESIZED_PIXELS"]);
    assert!(took < Duration::from_secs(10), "{took:?}");
    // A huge max_pixels is harmless by itself; the resized area is what is capped.
    let ckpt = checkpoint_with("qwen2_5_vl", "preprocessor_config.json", config(3136, 3_000_000_000).as_bytes());
    let image = tiny("images/500x380.png");
    let (out, _) = bounded(&["logits", "--model", ckpt.path().to_str().unwrap(), "--prompt", "Hi", "--image", image.to_str().unwrap()], &[("PROXYTHINKER_MAX_RESIZED_PIXELS", "100000")], 30);
    refused(&out, &["would resize the 500x380 image to", "over the limit of 100000 pixels"]);
}

#[test]
fn a_chat_template_that_loops_runs_out_of_fuel() {
    let ckpt = checkpoint_with("qwen2_5_vl", "chat_template.jinja", b"{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}hi");
    let (out, took) = bounded(&["logits", "--model", ckpt.path().to_str().unwrap(), "--prompt", "Hi"], &[], 60);
    refused(&out, &["chat template", "loops or does far too much", "PROXYTHINKER_TEMPLATE_FUEL"]);
    assert!(took < Duration::from_secs(30), "{took:?}");
}

#[test]
fn a_trace_line_without_end_is_refused_at_the_line_limit() {
    let dir = tempfile::tempdir().unwrap();
    // 200 MB of zeros and no newline (sparse: costs no disk).
    let path = dir.path().join("no_newline.jsonl");
    std::fs::File::create(&path).unwrap().set_len(200 << 20).unwrap();
    let started = Instant::now();
    let err = proxythinker::trace::read(&path).unwrap_err().to_string();
    assert!(err.contains("line 1") && err.contains("longer than 67108864 bytes") && err.contains("PROXYTHINKER_MAX_TRACE_LINE_BYTES"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // A record line past the limit, after a good header.
    let a = proxythinker::tui::synthetic::app(2, (120, 40));
    let long = dir.path().join("long.jsonl");
    proxythinker::tui::trace_io::export(&a, &proxythinker::tui::synthetic::trace_header(&a), &long).unwrap();
    let header_only: String = std::fs::read_to_string(&long).unwrap().lines().next().unwrap().to_string() + "\n";
    std::fs::write(&long, &header_only).unwrap();
    std::fs::OpenOptions::new().write(true).open(&long).unwrap().set_len(header_only.len() as u64 + (100 << 20)).unwrap();
    let err = proxythinker::trace::read(&long).unwrap_err().to_string();
    assert!(err.contains("line 2") && err.contains("longer than"), "{err}");
    // The FIFO case: refused, never opened.
    let fifo = dir.path().join("fifo.jsonl");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let err = proxythinker::trace::read(&fifo).unwrap_err().to_string();
    assert!(err.contains("not a regular file"), "{err}");
    let (out, _) = bounded(&["replay", fifo.to_str().unwrap()], &[], 20);
    refused(&out, &["not a regular file"]);
}

// ---- the weak ones -----------------------------------------------------------------------------

#[test]
fn careless_command_lines_and_config_files_get_one_line_naming_the_real_source() {
    let (out, _) = bounded(&[], &[], 10);
    refused(&out, &["a subcommand is missing", "run", "demo", "replay"]);
    // The UI with stdout redirected: no escape codes in the file.
    let (out, _) = bounded(&["demo"], &[], 30);
    refused(&out, &["stdout is not a terminal"]);
    let mut args = trio_args("How many circles?");
    args.extend(["--stop".into(), "".into()]);
    let (out, _) = bounded(&strs(&args), &[], 30);
    refused(&out, &["stop string 1", "is empty"]);
    let dir = tempfile::tempdir().unwrap();
    let run = strs(&trio_args("How many circles?")).iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let (out, _) = bounded(&strs(&run), &[("PROXYTHINKER_CONFIG", dir.path().to_str().unwrap())], 30);
    refused(&out, &["is a directory or special file", "PROXYTHINKER_CONFIG"]);
    let file = dir.path().join("config.toml");
    std::fs::write(&file, "temperature = -1.0\n").unwrap();
    let (out, _) = bounded(&strs(&run), &[("PROXYTHINKER_CONFIG", file.to_str().unwrap())], 30);
    let err = refused(&out, &[&format!("temperature in {}", file.display())]);
    assert!(!err.contains("--temperature"), "{err}");
    std::fs::write(&file, format!("{} = 1\n", "k".repeat(8 << 20))).unwrap();
    let (out, _) = bounded(&strs(&run), &[("PROXYTHINKER_CONFIG", file.to_str().unwrap())], 30);
    let err = refused(&out, &["config.toml:1:1"]);
    assert!(err.len() < 1000, "{} bytes: {}", err.len(), &err[..200]);
}

#[test]
fn a_truncated_jpeg_is_refused_and_a_whole_one_is_not() {
    let whole = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/orientation/portrait_exif6.jpg")).unwrap();
    assert!(proxythinker::processor::SourceImage::from_bytes(&whole, Path::new("whole.jpg")).is_ok());
    let cut = &whole[..whole.len() * 2 / 3];
    let err = proxythinker::processor::SourceImage::from_bytes(cut, Path::new("cut.jpg")).unwrap_err().to_string();
    assert!(err.contains("cut.jpg") && err.contains("truncated"), "{err}");
}

/// The fixture's model.safetensors with `tensor` relabelled as `dtype` (same element size, so
/// the file stays well formed: only the header says integers).
fn weights_relabelled(tensor: &str, dtype: &str) -> Vec<u8> {
    weights_with_header(tensor, |entry| entry["dtype"] = dtype.into())
}

/// The fixture's model.safetensors with the header entry of `tensor` changed by `edit`.
fn weights_with_header(tensor: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let bytes = std::fs::read(tiny("qwen2_5_vl").join("model.safetensors")).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    assert_eq!(header[tensor]["dtype"], "F32", "{tensor} in the fixture");
    edit(&mut header[tensor]);
    let mut text = header.to_string().into_bytes();
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(text);
    out.extend(&bytes[8 + len..]);
    out
}

#[test]
fn integer_weights_are_refused_naming_the_tensor_its_dtype_and_the_file() {
    for (tensor, dtype) in [("lm_head.weight", "I32"), ("model.layers.0.self_attn.q_proj.bias", "U32")] {
        let ckpt = checkpoint_with("qwen2_5_vl", "model.safetensors", &weights_relabelled(tensor, dtype));
        let file = ckpt.path().join("model.safetensors");
        let (out, _) = bounded(&["logits", "--model", ckpt.path().to_str().unwrap(), "--prompt", "Hi"], &[], 30);
        refused(&out, &[file.to_str().unwrap(), tensor, dtype, "integer"]);
    }
}

#[test]
fn a_header_shape_past_its_bytes_is_refused_before_any_arithmetic() {
    // [2³², 2³²] elements would wrap the preflight's byte counts (it panicked in debug builds).
    for tensor in ["model.embed_tokens.weight", "model.layers.0.mlp.down_proj.weight"] {
        let bytes = weights_with_header(tensor, |e| e["shape"] = serde_json::json!([1u64 << 32, 1u64 << 32]));
        let ckpt = checkpoint_with("qwen2_5_vl", "model.safetensors", &bytes);
        let (out, _) = bounded(&["logits", "--model", ckpt.path().to_str().unwrap(), "--prompt", "Hi"], &[], 30);
        refused(&out, &["model.safetensors", "overflow computing buffer size", "download it again"]);
    }
    // Offsets past the end of the file.
    let bytes = weights_with_header("lm_head.weight", |e| e["data_offsets"] = serde_json::json!([0, 1u64 << 40]));
    let ckpt = checkpoint_with("qwen2_5_vl", "model.safetensors", &bytes);
    let (out, _) = bounded(&["logits", "--model", ckpt.path().to_str().unwrap(), "--prompt", "Hi"], &[], 30);
    refused(&out, &["model.safetensors", "download it again"]);
}

#[test]
fn a_shard_index_may_not_point_outside_the_checkpoint() {
    let ckpt = checkpoint_with("qwen2_5_vl", "model.safetensors.index.json", br#"{"weight_map": {"lm_head.weight": "../outside/shard.safetensors"}}"#);
    let (out, _) = bounded(&["logits", "--model", ckpt.path().to_str().unwrap(), "--prompt", "Hi"], &[], 30);
    refused(&out, &["../outside/shard.safetensors", "outside the checkpoint directory"]);
}

#[test]
fn a_run_killed_while_decoding_leaves_no_temporary_trace() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    let mut args = trio_args("How many circles?");
    args.extend(["--max-new-tokens".into(), "3000".into(), "--ignore-eos".into(), "--trace".into(), trace.to_str().unwrap().into()]);
    for signal in ["INT", "TERM"] {
        let mut child = Command::new(BIN)
            .args(&args)
            .env("PROXYTHINKER_CONFIG", std::env::temp_dir().join("proxythinker-tests-no-config.toml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The temporary file exists from before decoding on.
        let started = Instant::now();
        let temp = loop {
            let found = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).find(|p| p.to_string_lossy().ends_with(".tmp"));
            if let Some(t) = found {
                break t;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "no temporary trace file appeared");
            std::thread::sleep(Duration::from_millis(10));
        };
        std::thread::sleep(Duration::from_millis(300));
        assert!(Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status().unwrap().success());
        let status = child.wait().unwrap();
        let number = if signal == "INT" { 2 } else { 15 };
        assert_eq!(status.code(), Some(128 + number), "SIG{signal}: exit status 128 + signal");
        assert!(!temp.exists(), "SIG{signal}: {} was left behind", temp.display());
        assert!(!trace.exists());
    }
}
