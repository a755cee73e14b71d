//! Hub references: `owner/name[@revision]` downloads into the standard Hugging Face cache, from a
//! fake Hub on loopback (tests/hub_support) that answers as huggingface.co does. Configuration is
//! passed explicitly (`HubConfig`), never through the process environment, except in the
//! end-to-end tests, which run the binary with its own environment.

mod hub_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use hub_support::{dir_files, sha256_hex, FakeHub, Part};
use proxythinker::hub::{self, HubConfig, NoProgress, Progress, RepoRef};
use proxythinker::loader::Checkpoint;

fn tiny(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny").join(name)
}

/// A fixture checkpoint as a repo, plus files a checkpoint does not need.
fn repo_files(name: &str) -> BTreeMap<String, Vec<u8>> {
    let mut files = dir_files(&tiny(name));
    files.insert("README.md".into(), b"# a model card\n".to_vec());
    files.insert("pytorch_model.bin".into(), vec![7u8; 4096]);
    files.insert(".gitattributes".into(), b"*.safetensors filter=lfs\n".to_vec());
    files
}

fn config(hub: &FakeHub, cache: &Path) -> HubConfig {
    HubConfig::new(hub.url.clone(), cache)
}

fn resolve(reference: &str, config: &HubConfig) -> proxythinker::error::Result<PathBuf> {
    hub::resolve_with(reference, "--model", config, &mut NoProgress)
}

fn err(reference: &str, config: &HubConfig) -> String {
    let e = resolve(reference, config).expect_err("resolve should fail").to_string();
    assert_eq!(e.lines().count(), 1, "one line: {e}");
    e
}

fn contains_all(msg: &str, needles: &[&str]) {
    for n in needles {
        assert!(msg.contains(n), "{n:?} not in: {msg}");
    }
}

fn names(files: &[&str]) -> BTreeMap<String, usize> {
    files.iter().map(|f| (f.to_string(), 1)).collect()
}

fn repo_dir(cache: &Path, repo: &str) -> PathBuf {
    cache.join(format!("models--{}", repo.replace('/', "--")))
}

/// Every file under `dir`, recursively, relative.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() && !e.file_type().unwrap().is_symlink() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[derive(Default)]
struct Recorder {
    events: Vec<(String, String, u64, u64)>,
}

impl Progress for Recorder {
    fn start(&mut self, repo: &str, file: &str, total: u64, done: u64) {
        self.events.push(("start".into(), format!("{repo}:{file}"), total, done));
    }
    fn advance(&mut self, file: &str, done: u64) {
        self.events.push(("advance".into(), file.into(), 0, done));
    }
    fn finish(&mut self, file: &str, ok: bool) {
        self.events.push((if ok { "ok" } else { "broken" }.into(), file.into(), 0, 0));
    }
}

const SINGLE_NEEDED: &[&str] = &[
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
];

#[test]
fn first_download_fetches_only_what_a_checkpoint_needs_into_the_standard_layout() {
    let hub = FakeHub::start();
    let commit = hub.add("owner/single", "main", repo_files("qwen2_5_vl"));
    let cache = tempfile::tempdir().unwrap();
    let mut rec = Recorder::default();
    let dir = hub::resolve_with("owner/single", "--model", &config(&hub, cache.path()), &mut rec).unwrap();

    let repo = repo_dir(cache.path(), "owner/single");
    assert_eq!(dir, repo.join("snapshots").join(&commit));
    assert_eq!(std::fs::read_to_string(repo.join("refs/main")).unwrap(), commit);
    // Exactly the needed files, each asked for once; nothing else (README, .bin, ...).
    assert_eq!(hub.resolved_files(), names(SINGLE_NEEDED));
    assert!(!hub.requests().iter().any(|r| r.path.contains("README") || r.path.contains(".bin") || r.path.contains("chat_template")));
    for f in SINGLE_NEEDED {
        assert_eq!(hub.gets(f), 1, "{f} downloaded once");
    }
    let fixture = dir_files(&tiny("qwen2_5_vl"));
    let mut in_snapshot: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    in_snapshot.sort();
    assert_eq!(in_snapshot, SINGLE_NEEDED);
    for f in SINGLE_NEEDED {
        let p = dir.join(f);
        // Symlinks into blobs/, as huggingface_hub makes them, with the fixture's bytes.
        let target = std::fs::read_link(&p).unwrap();
        assert!(target.starts_with("../../blobs"), "{f} -> {}", target.display());
        assert_eq!(std::fs::read(&p).unwrap(), fixture[*f], "{f}");
    }
    // LFS blobs are named by their sha256.
    let sha = sha256_hex(&fixture["model.safetensors"]);
    assert_eq!(std::fs::read_link(dir.join("model.safetensors")).unwrap(), Path::new("../../blobs").join(&sha));
    assert!(repo.join("blobs").join(&sha).is_file());
    assert!(!walk(&repo).iter().any(|p| p.to_string_lossy().ends_with(".incomplete")));
    // Progress: each downloaded file starts at 0 and ends whole.
    let starts: Vec<_> = rec.events.iter().filter(|e| e.0 == "start").collect();
    assert_eq!(starts.len(), SINGLE_NEEDED.len());
    let w = rec.events.iter().find(|e| e.0 == "start" && e.1 == "owner/single:model.safetensors").unwrap();
    assert_eq!((w.2, w.3), (fixture["model.safetensors"].len() as u64, 0));
    let last = rec.events.iter().rfind(|e| e.0 == "advance" && e.1 == "model.safetensors").unwrap();
    assert_eq!(last.3, fixture["model.safetensors"].len() as u64);
    assert_eq!(rec.events.iter().filter(|e| e.0 == "ok").count(), SINGLE_NEEDED.len());
    // The snapshot is a checkpoint.
    Checkpoint::open(&dir).unwrap();
}

#[test]
fn a_sharded_checkpoint_fetches_the_index_then_its_shards() {
    let hub = FakeHub::start();
    let mut files = repo_files("qwen2_vl");
    files.insert("model.safetensors".into(), vec![1u8; 100]); // a stray file the index does not list
    hub.add("owner/sharded", "main", files);
    let cache = tempfile::tempdir().unwrap();
    let dir = resolve("owner/sharded", &config(&hub, cache.path())).unwrap();
    assert_eq!(
        hub.resolved_files(),
        names(&[
            "chat_template.json",
            "config.json",
            "generation_config.json",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
            "model.safetensors.index.json",
            "preprocessor_config.json",
            "tokenizer.json",
            "tokenizer_config.json",
        ])
    );
    // The index comes before the shards.
    let order: Vec<String> = hub.requests().iter().filter(|r| r.path.contains("/resolve/")).map(|r| r.path.clone()).collect();
    let pos = |f: &str| order.iter().position(|p| p.ends_with(f)).unwrap();
    assert!(pos("model.safetensors.index.json") < pos("model-00001-of-00002.safetensors"));
    let ck = Checkpoint::open(&dir).unwrap();
    assert_eq!(ck.weight_files.len(), 2);
    assert!(ck.chat_template.is_some());
}

#[test]
fn a_second_resolve_is_a_cache_hit_without_file_requests() {
    let hub = FakeHub::start();
    hub.add("owner/single", "main", repo_files("qwen2_5_vl"));
    let cache = tempfile::tempdir().unwrap();
    let cfg = config(&hub, cache.path());
    let first = resolve("owner/single", &cfg).unwrap();
    assert!(!hub.file_requests().is_empty());
    hub.clear_log();
    let second = resolve("owner/single", &cfg).unwrap();
    assert_eq!(first, second);
    assert!(hub.file_requests().is_empty(), "no file requests on a cache hit: {:?}", hub.file_requests());
    // Only the revision lookup.
    assert_eq!(hub.requests().len(), 1);
}

#[test]
fn offline_with_a_warm_cache_makes_no_requests() {
    let hub = FakeHub::start();
    hub.add("owner/single", "main", repo_files("qwen2_5_vl"));
    let cache = tempfile::tempdir().unwrap();
    let mut cfg = config(&hub, cache.path());
    let online = resolve("owner/single", &cfg).unwrap();
    hub.clear_log();
    cfg.offline = true;
    assert_eq!(resolve("owner/single", &cfg).unwrap(), online);
    assert!(hub.requests().is_empty(), "{:?}", hub.requests());
    Checkpoint::open(&online).unwrap();
}

#[test]
fn an_unreachable_hub_falls_back_to_a_complete_cached_snapshot() {
    let hub = FakeHub::start();
    hub.add("owner/single", "main", repo_files("qwen2_5_vl"));
    let cache = tempfile::tempdir().unwrap();
    let online = resolve("owner/single", &config(&hub, cache.path())).unwrap();
    let down = HubConfig::new(dead_endpoint(), cache.path());
    assert_eq!(resolve("owner/single", &down).unwrap(), online);
}

#[test]
fn offline_with_a_cold_cache_names_the_repo_and_the_missing_file() {
    let hub = FakeHub::start();
    hub.add("owner/single", "main", repo_files("qwen2_5_vl"));
    let cache = tempfile::tempdir().unwrap();
    let mut cfg = config(&hub, cache.path());
    cfg.offline = true;
    let e = err("owner/single", &cfg);
    contains_all(&e, &["--model owner/single", "HF_HUB_OFFLINE", "owner/single@main", "refs/main", "HF_HUB_OFFLINE=0", "local"]);
    assert!(hub.requests().is_empty());

    // A snapshot that lost a file: the error names it.
    cfg.offline = false;
    let dir = resolve("owner/single", &cfg).unwrap();
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    cfg.offline = true;
    hub.clear_log();
    let e = err("owner/single", &cfg);
    contains_all(&e, &["tokenizer.json", "owner/single", "HF_HUB_OFFLINE"]);
    assert!(hub.requests().is_empty());
    // Online again, the missing file is fetched (and only it).
    cfg.offline = false;
    resolve("owner/single", &cfg).unwrap();
    assert_eq!(hub.resolved_files(), names(&["tokenizer.json"]));
}

#[test]
fn an_interrupted_download_resumes_on_the_next_resolve_and_never_leaves_a_half_file_in_the_snapshot() {
    let hub = FakeHub::start();
    let commit = hub.add("owner/single", "main", repo_files("qwen2_5_vl"));
    let weights = dir_files(&tiny("qwen2_5_vl"))["model.safetensors"].clone();
    let sha = sha256_hex(&weights);
    let cache = tempfile::tempdir().unwrap();
    let cfg = config(&hub, cache.path());
    hub.cut("model.safetensors", usize::MAX);
    let e = err("owner/single", &cfg);
    contains_all(&e, &["model.safetensors", "owner/single", "interrupted", "again"]);

    let repo = repo_dir(cache.path(), "owner/single");
    let snapshot = repo.join("snapshots").join(&commit);
    assert!(!snapshot.join("model.safetensors").exists(), "no half file in the snapshot");
    assert!(!repo.join("blobs").join(&sha).exists(), "no half blob under its final name");
    let partial = repo.join("blobs").join(format!("{sha}.incomplete"));
    let have = std::fs::metadata(&partial).unwrap().len();
    assert!(have > 0 && have < weights.len() as u64, "{have}");
    // Nothing in snapshots/ differs from what the Hub serves.
    for p in walk(&repo.join("snapshots")) {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(std::fs::read(&p).unwrap(), dir_files(&tiny("qwen2_5_vl"))[&name], "{name}");
    }
    // A loader that opened the snapshot now fails cleanly rather than reading half a file.
    assert!(Checkpoint::open(&snapshot).is_err());

    hub.cut("model.safetensors", 0);
    hub.clear_log();
    let dir = resolve("owner/single", &cfg).unwrap();
    assert_eq!(std::fs::read(dir.join("model.safetensors")).unwrap(), weights);
    assert!(!partial.exists());
    let gets: Vec<_> = hub.requests().into_iter().filter(|r| r.method == "GET" && r.path.starts_with("/cdn/")).collect();
    assert_eq!(gets.len(), 1, "{gets:?}");
    assert_eq!(gets[0].range.as_deref(), Some(format!("bytes={have}-").as_str()), "resumed with a Range request");
    // The other files were not fetched again.
    assert_eq!(hub.resolved_files(), names(&["model.safetensors"]));
}

#[test]
fn a_transfer_cut_off_once_is_resumed_within_the_same_resolve() {
    let hub = FakeHub::start();
    hub.add("owner/single", "main", repo_files("qwen2_5_vl"));
    let weights = dir_files(&tiny("qwen2_5_vl"))["model.safetensors"].clone();
    let cache = tempfile::tempdir().unwrap();
    hub.cut("model.safetensors", 1);
    let dir = resolve("owner/single", &config(&hub, cache.path())).unwrap();
    assert_eq!(std::fs::read(dir.join("model.safetensors")).unwrap(), weights);
    let ranges: Vec<_> = hub.requests().into_iter().filter(|r| r.path.starts_with("/cdn/")).map(|r| r.range).collect();
    assert_eq!(ranges.len(), 2);
    assert_eq!(ranges[0], None);
    assert_eq!(ranges[1], Some(format!("bytes={}-", weights.len() / 2)));
}

#[test]
fn concurrent_resolves_download_each_blob_once() {
    let hub = FakeHub::start();
    hub.add("owner/single", "main", repo_files("qwen2_5_vl"));
    hub.slow("model.safetensors", 400);
    let cache = tempfile::tempdir().unwrap();
    let cfg = config(&hub, cache.path());
    let dirs: Vec<PathBuf> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2).map(|_| s.spawn(|| resolve("owner/single", &cfg).unwrap())).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(dirs[0], dirs[1]);
    assert_eq!(hub.gets("model.safetensors"), 1, "the second waited for the first (a lock in .locks/)");
    let weights = dir_files(&tiny("qwen2_5_vl"))["model.safetensors"].clone();
    assert_eq!(std::fs::read(dirs[0].join("model.safetensors")).unwrap(), weights);
    let sha = sha256_hex(&weights);
    assert!(cache.path().join(".locks/models--owner--single").join(format!("{sha}.lock")).is_file());
}

#[test]
fn a_corrupt_download_is_refused_and_removed() {
    let hub = FakeHub::start();
    let commit = hub.add("owner/single", "main", repo_files("qwen2_5_vl"));
    let weights = dir_files(&tiny("qwen2_5_vl"))["model.safetensors"].clone();
    let sha = sha256_hex(&weights);
    let cache = tempfile::tempdir().unwrap();
    let cfg = config(&hub, cache.path());
    hub.corrupt("model.safetensors", true);
    let e = err("owner/single", &cfg);
    contains_all(&e, &["model.safetensors", "corrupt", "sha256", "again"]);
    let repo = repo_dir(cache.path(), "owner/single");
    assert!(!repo.join("snapshots").join(&commit).join("model.safetensors").exists());
    assert!(!repo.join("blobs").join(&sha).exists());
    assert!(!repo.join("blobs").join(format!("{sha}.incomplete")).exists());
    hub.corrupt("model.safetensors", false);
    let dir = resolve("owner/single", &cfg).unwrap();
    assert_eq!(std::fs::read(dir.join("model.safetensors")).unwrap(), weights);
}

#[test]
fn a_missing_shard_is_named() {
    let hub = FakeHub::start();
    // The index lists a shard the repo lacks.
    let mut files = repo_files("qwen2_vl");
    files.remove("model-00002-of-00002.safetensors");
    hub.add("owner/broken", "main", files);
    // The repo lists the shard, but the Hub answers 404 for it.
    hub.add("owner/lost", "main", repo_files("qwen2_vl"));
    hub.hide("model-00002-of-00002.safetensors");
    let cache = tempfile::tempdir().unwrap();
    let cfg = config(&hub, cache.path());

    let e = err("owner/broken", &cfg);
    contains_all(&e, &["--model owner/broken", "model-00002-of-00002.safetensors", "model.safetensors.index.json", "missing"]);
    assert!(!hub.resolved_files().keys().any(|f| f.starts_with("model-0000")), "no shard fetched before the check");

    let e = err("owner/lost", &cfg);
    contains_all(&e, &["--model owner/lost", "model-00002-of-00002.safetensors", "404", "missing"]);
    let snap = walk(&repo_dir(cache.path(), "owner/lost").join("snapshots"));
    assert!(!snap.iter().any(|p| p.ends_with("model-00002-of-00002.safetensors")));
}

#[test]
fn a_gated_repo_needs_a_token() {
    let hub = FakeHub::start();
    hub.add("owner/gated", "main", repo_files("qwen2_5_vl"));
    hub.gate("owner/gated", "hf_secret");
    let cache = tempfile::tempdir().unwrap();
    let mut cfg = config(&hub, cache.path());

    let e = err("owner/gated", &cfg);
    contains_all(&e, &["owner/gated", "401", "gated", "HF_TOKEN", "huggingface-cli login"]);

    cfg.token = Some("hf_wrong".into());
    let e = err("owner/gated", &cfg);
    contains_all(&e, &["owner/gated", "403", "no access", "HF_TOKEN"]);

    cfg.token = Some("hf_secret".into());
    hub.clear_log();
    let dir = resolve("owner/gated", &cfg).unwrap();
    Checkpoint::open(&dir).unwrap();
    // The token goes to the Hub, not to the CDN the Hub redirects to.
    for r in hub.requests() {
        if r.path.starts_with("/cdn/") {
            assert_eq!(r.auth, None, "{r:?}");
        } else {
            assert_eq!(r.auth.as_deref(), Some("Bearer hf_secret"), "{r:?}");
        }
    }
}

#[test]
fn a_revision_after_at_picks_a_branch_a_tag_or_a_commit() {
    let hub = FakeHub::start();
    let main = hub.add("owner/multi", "main", repo_files("qwen2_5_vl"));
    let v1 = hub.add("owner/multi", "v1", repo_files("qwen2_vl"));
    let pr = hub.add("owner/multi", "refs/pr/1", repo_files("trio_small"));
    let cache = tempfile::tempdir().unwrap();
    let cfg = config(&hub, cache.path());
    let repo = repo_dir(cache.path(), "owner/multi");

    let dir = resolve("owner/multi@v1", &cfg).unwrap();
    assert_eq!(dir, repo.join("snapshots").join(&v1));
    assert_eq!(std::fs::read_to_string(repo.join("refs/v1")).unwrap(), v1);
    assert_eq!(std::fs::read(dir.join("config.json")).unwrap(), std::fs::read(tiny("qwen2_vl/config.json")).unwrap());
    assert!(hub.requests()[0].path.ends_with("/revision/v1"));

    let dir = resolve(&format!("owner/multi@{main}"), &cfg).unwrap();
    assert_eq!(dir, repo.join("snapshots").join(&main));
    assert!(!repo.join("refs").join(&main).exists(), "a commit needs no ref");
    assert_eq!(std::fs::read(dir.join("config.json")).unwrap(), std::fs::read(tiny("qwen2_5_vl/config.json")).unwrap());

    hub.clear_log();
    let dir = resolve("owner/multi@refs/pr/1", &cfg).unwrap();
    assert_eq!(dir, repo.join("snapshots").join(&pr));
    assert_eq!(std::fs::read_to_string(repo.join("refs/refs/pr/1")).unwrap(), pr);
    assert!(hub.requests()[0].path.ends_with("/revision/refs%2Fpr%2F1"), "{:?}", hub.requests()[0]);

    let e = err("owner/multi@nope", &cfg);
    contains_all(&e, &["nope", "owner/multi", "not found"]);
    let e = err("owner/absent", &cfg);
    contains_all(&e, &["owner/absent", "not found"]);
}

fn dead_endpoint() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    url
}

#[test]
fn an_unreachable_hub_is_named() {
    let cache = tempfile::tempdir().unwrap();
    let endpoint = dead_endpoint();
    let e = err("owner/single", &HubConfig::new(endpoint.clone(), cache.path()));
    contains_all(&e, &["--model owner/single", "cannot reach", &endpoint, "HF_ENDPOINT", "HF_HUB_OFFLINE"]);
}

#[test]
fn references_that_are_paths_stay_paths() {
    let cache = tempfile::tempdir().unwrap();
    let cfg = HubConfig::new(dead_endpoint(), cache.path());
    let local = tiny("qwen2_5_vl");
    assert_eq!(resolve(local.to_str().unwrap(), &cfg).unwrap(), local);
    for p in ["./a/b", "/x/y", "a/b/c", "model", "~/m", "a\\b"] {
        assert!(hub::looks_like_a_path(p), "{p}");
        assert_eq!(resolve(p, &cfg).unwrap(), PathBuf::from(p));
    }
    for id in ["Qwen/Qwen2.5-VL-3B-Instruct", "owner/name@v1.0", "owner/name@refs/pr/1"] {
        assert!(!hub::looks_like_a_path(id), "{id}");
    }
    assert_eq!(RepoRef::parse("o/n"), Some(RepoRef { repo: "o/n".into(), revision: "main".into(), kind: proxythinker::hub::RepoKind::Model }));
    assert_eq!(RepoRef::parse("o/n@refs/pr/1").unwrap().revision, "refs/pr/1");
    for bad in ["o/n@", "o/-n", "o/n@../x", "o/n n", "o/n@a b"] {
        assert_eq!(RepoRef::parse(bad), None, "{bad}");
    }
    let e = err("o/n n", &cfg);
    contains_all(&e, &["--model o/n n", "owner/name"]);
    // Nothing in the cache was touched.
    assert!(walk(cache.path()).is_empty());
}

#[test]
fn configuration_comes_from_the_huggingface_environment_variables() {
    let home = tempfile::tempdir().unwrap();
    let hf_home = home.path().join("hf");
    std::fs::create_dir_all(&hf_home).unwrap();
    std::fs::write(hf_home.join("token"), "hf_from_file\n").unwrap();
    let env = |pairs: &[(&str, String)]| {
        let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        HubConfig::from_vars(move |k| map.get(k).cloned())
    };
    let h = home.path().to_string_lossy().into_owned();

    let c = env(&[("HOME", h.clone())]);
    assert_eq!(c.endpoint, "https://huggingface.co");
    assert_eq!(c.cache_dir, home.path().join(".cache/huggingface/hub"));
    assert_eq!(c.token, None);
    assert!(!c.offline);

    let c = env(&[("HOME", h.clone()), ("XDG_CACHE_HOME", format!("{h}/xdg"))]);
    assert_eq!(c.cache_dir, home.path().join("xdg/huggingface/hub"));

    let c = env(&[("HOME", h.clone()), ("HF_HOME", hf_home.to_string_lossy().into_owned()), ("HF_ENDPOINT", "http://mirror.test/".into()), ("HF_HUB_OFFLINE", "1".into())]);
    assert_eq!(c.cache_dir, hf_home.join("hub"));
    assert_eq!(c.token.as_deref(), Some("hf_from_file"));
    assert_eq!(c.endpoint, "http://mirror.test");
    assert!(c.offline);

    let c = env(&[
        ("HOME", h.clone()),
        ("HF_HOME", hf_home.to_string_lossy().into_owned()),
        ("HF_HUB_CACHE", format!("{h}/elsewhere")),
        ("HF_TOKEN", "hf_from_env".into()),
        ("HF_HUB_OFFLINE", "0".into()),
    ]);
    assert_eq!(c.cache_dir, home.path().join("elsewhere"));
    assert_eq!(c.token.as_deref(), Some("hf_from_env"));
    assert!(!c.offline);

    let c = env(&[("HOME", h.clone()), ("HF_HOME", "~/hfh".into()), ("HF_HUB_OFFLINE", "true".into())]);
    assert_eq!(c.cache_dir, home.path().join("hfh/hub"));
    assert!(c.offline);
}

// ---- end to end, through the binary ----

fn bin(hub_url: &str, hf_home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_proxythinker"));
    for k in ["HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"] {
        c.env_remove(k);
    }
    c.env("HF_ENDPOINT", hub_url).env("HF_HOME", hf_home);
    c
}

fn logits_json(mut cmd: Command, model: &str) -> serde_json::Value {
    let img = tiny("images/224x224.png");
    let out = cmd
        .args(["logits", "--model", model, "--image", img.to_str().unwrap(), "--prompt", "How many circles?"])
        .output()
        .unwrap();
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_binary_downloads_a_repo_id_and_gives_the_same_logits_as_the_local_directory() {
    let hub = FakeHub::start();
    let commit = hub.add("owner/name", "main", repo_files("qwen2_5_vl"));
    let hf_home = tempfile::tempdir().unwrap();
    let from_hub = logits_json(bin(&hub.url, hf_home.path()), "owner/name");
    let local = logits_json(bin(&dead_endpoint(), hf_home.path()), tiny("qwen2_5_vl").to_str().unwrap());
    assert_eq!(from_hub["input_ids"], local["input_ids"]);
    assert_eq!(from_hub["logits"], local["logits"]);
    assert!(from_hub["logits"].as_array().unwrap().len() > 10);
    let snapshot = hf_home.path().join("hub/models--owner--name/snapshots").join(&commit);
    assert_eq!(Path::new(from_hub["model"].as_str().unwrap()), snapshot);
    assert!(snapshot.join("model.safetensors").is_file());

    // Offline, the same cache serves without the Hub.
    let mut offline = bin(&dead_endpoint(), hf_home.path());
    offline.env("HF_HUB_OFFLINE", "1");
    assert_eq!(logits_json(offline, "owner/name")["logits"], local["logits"]);
}

#[test]
fn the_binary_reports_a_cold_offline_cache_in_one_line_with_status_2() {
    let hf_home = tempfile::tempdir().unwrap();
    let mut cmd = bin(&dead_endpoint(), hf_home.path());
    cmd.env("HF_HUB_OFFLINE", "1");
    let img = tiny("images/224x224.png");
    let out = cmd.args(["logits", "--model", "owner/name", "--image", img.to_str().unwrap(), "--prompt", "x"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    contains_all(&stderr, &["--model owner/name", "HF_HUB_OFFLINE", "owner/name@main"]);
    assert!(out.stdout.is_empty());
}

/// A config whose waits are short: 1 s per read, so a request's deadline is 2 s.
fn impatient(hub: &FakeHub, cache: &Path) -> HubConfig {
    let mut c = config(hub, cache);
    c.timeout = std::time::Duration::from_secs(1);
    c
}

#[test]
fn a_file_whose_headers_trickle_in_is_given_up_at_the_request_deadline() {
    // One byte of the status line and headers every 200 ms: no single wait reaches the 1 s read
    // timeout, but the answer would take half a minute; the request's deadline is 2 s.
    let hub = FakeHub::start();
    hub.add("owner/single", "main", repo_files("qwen2_5_vl"));
    hub.trickle("model.safetensors", 200, Part::Headers);
    let cache = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let e = err("owner/single", &impatient(&hub, cache.path()));
    let took = started.elapsed();
    contains_all(&e, &["model.safetensors", "no answer within 2 s", "HF_HUB_DOWNLOAD_TIMEOUT", "run the same command again"]);
    assert!(took < std::time::Duration::from_secs(8), "took {took:?}");
    // Run again once the server answers: the download completes.
    hub.trickle("model.safetensors", 0, Part::Headers);
    let dir = resolve("owner/single", &config(&hub, cache.path())).unwrap();
    assert_eq!(std::fs::read(dir.join("model.safetensors")).unwrap(), dir_files(&tiny("qwen2_5_vl"))["model.safetensors"]);
}

#[test]
fn a_file_whose_body_trickles_in_is_dropped_by_the_throughput_floor_and_kept_to_resume() {
    // Five bytes a second, below the 1 KiB/s floor over each 1 s window; each of the three tries
    // resumes where the last stopped.
    let hub = FakeHub::start();
    hub.add("owner/single", "main", repo_files("qwen2_5_vl"));
    hub.trickle("model.safetensors", 200, Part::Body);
    let cache = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let e = err("owner/single", &impatient(&hub, cache.path()));
    let took = started.elapsed();
    contains_all(&e, &["model.safetensors", "slower than 1024 bytes/s", "HF_HUB_DOWNLOAD_TIMEOUT", "run the same command again to resume"]);
    assert!(took < std::time::Duration::from_secs(15), "took {took:?}");
    let weights = dir_files(&tiny("qwen2_5_vl"))["model.safetensors"].clone();
    let incomplete = repo_dir(cache.path(), "owner/single").join("blobs").join(format!("{}.incomplete", sha256_hex(&weights)));
    let kept = std::fs::metadata(&incomplete).map(|m| m.len()).unwrap_or(0);
    assert!(kept > 0 && (kept as usize) < weights.len(), "{kept} bytes kept");
    let ranges = hub.requests().into_iter().filter(|r| r.path.starts_with("/cdn/")).filter_map(|r| r.range).count();
    assert_eq!(ranges, 2, "the second and third tries resumed");
    hub.trickle("model.safetensors", 0, Part::Body);
    let dir = resolve("owner/single", &config(&hub, cache.path())).unwrap();
    assert_eq!(std::fs::read(dir.join("model.safetensors")).unwrap(), weights);
}
