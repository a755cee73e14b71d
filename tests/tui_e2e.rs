//! The real binary in a real terminal: tmux runs `proxythinker demo` in a 200×50 window, keys are
//! typed with send-keys and the screen read with capture-pane. Also `replay` of a file that is
//! not a trace, and bad command lines (one line on stderr, exit status 2, no panic).
//!
//! Needs tmux (`apt-get install tmux`); without it the test fails and says so.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_proxythinker");

/// A private tmux server (its own socket), killed when the test ends however it ends.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(name: &str) -> Tmux {
        let present = Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success());
        assert!(
            present,
            "tmux is not installed: the end-to-end UI test drives the binary in tmux; install it (e.g. `apt-get install tmux`)"
        );
        let tmux = Tmux { socket: format!("proxythinker-{name}-{}", std::process::id()) };
        let out = tmux.run(&["-f", "/dev/null", "new-session", "-d", "-x", "200", "-y", "50", "-s", "e2e", "sh"]);
        assert!(out.status.success(), "tmux new-session failed: {}", String::from_utf8_lossy(&out.stderr));
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().expect("run tmux")
    }

    /// Types `keys` (tmux key names, e.g. "Enter", or literal text with `literal`).
    fn send(&self, keys: &str, literal: bool) {
        let mut args = vec!["send-keys", "-t", "e2e"];
        if literal {
            args.push("-l");
        }
        args.push(keys);
        let out = self.run(&args);
        assert!(out.status.success(), "send-keys: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn type_line(&self, line: &str) {
        self.send(line, true);
        self.send("Enter", false);
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "e2e"]).stdout).into_owned()
    }

    /// Waits until the screen satisfies `ok`, failing with the last screen after `secs`.
    fn wait_for(&self, what: &str, secs: u64, ok: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            if started.elapsed() > Duration::from_secs(secs) {
                panic!("timed out waiting for {what}; the screen was:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(150));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// The token counts the three panes print on their bottom borders (" N tokens ").
fn token_counts(screen: &str) -> Vec<usize> {
    let mut counts = Vec::new();
    for line in screen.lines() {
        let mut rest = line;
        while let Some(at) = rest.find(" tokens ") {
            let before = &rest[..at];
            let digits: String = before.chars().rev().take_while(|c| c.is_ascii_digit()).collect();
            if !digits.is_empty() {
                counts.push(digits.chars().rev().collect::<String>().parse().unwrap_or(0));
            }
            rest = &rest[at + 8..];
        }
    }
    counts
}

/// The inspector's divergence figures for the selected token (`KL(guided‖base) 0.123 … base rank 4`).
fn inspector_figures(screen: &str) -> Option<String> {
    screen.lines().find_map(|line| {
        let at = line.find("KL(guided‖base) ")?;
        let figures = &line[at..];
        let first = figures["KL(guided‖base) ".len()..].chars().next()?;
        first.is_ascii_digit().then(|| figures.trim_end_matches(['│', ' ']).to_string())
    })
}

fn wait_for_file(path: &Path, secs: u64) -> String {
    let started = Instant::now();
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            if s.ends_with('\n') {
                return s;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(secs), "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn quoted(p: &Path) -> String {
    format!("'{}'", p.display())
}

#[test]
fn demo_fills_three_panes_changes_alpha_and_quits_cleanly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cache = dir.path().join("cache");
    let code = dir.path().join("code");
    let stty = dir.path().join("stty");
    let tmux = Tmux::start("demo");
    tmux.type_line(&format!(
        "cd {} && PROXYTHINKER_CACHE={} {BIN} demo --max-new-tokens 48 --ignore-eos; echo $? > {}",
        quoted(dir.path()),
        quoted(&cache),
        quoted(&code)
    ));
    let screen = tmux.wait_for("the demo header", 60, |s| s.contains("DEMO — tiny models trained on a synthetic counting task"));
    assert!(screen.contains("α=0.50"), "{screen}");
    let screen = tmux.wait_for("tokens in all three panes", 120, |s| {
        let c = token_counts(s);
        c.len() == 3 && c.iter().all(|n| *n >= 5)
    });
    for pane in ["base ·", "RFT-small ·", "guided ·"] {
        assert!(screen.contains(pane), "pane {pane} missing:\n{screen}");
    }
    // Once the session has finished, anything that changes after `]` is the engine's doing.
    let before = tmux.wait_for("the session to finish", 120, |s| s.contains("step 48/48 · finished"));
    let figures_before = inspector_figures(&before).unwrap_or_else(|| panic!("no figures in the inspector:\n{before}"));
    tmux.send("]", true);
    // The engine's reset: it confirms α (the header drops its `…`), says what it kept, and
    // finishes again once it has decoded what changed.
    let after = tmux.wait_for("the engine's answer to ]", 60, |s| {
        s.contains("α=0.60 ·") && s.contains("α=0.60: ") && s.contains("guided tokens kept") && s.contains("· finished")
    });
    assert!(!after.contains("α=0.50") && !after.contains("α=0.60…"), "{after}");
    // The guided mix moved: the inspector's divergences for the selected token are not the same.
    let figures_after = inspector_figures(&after).unwrap_or_else(|| panic!("no figures in the inspector:\n{after}"));
    assert_ne!(figures_before, figures_after, "α changed but the guided measures did not:\n{after}");
    tmux.send("q", true);
    let status = wait_for_file(&code, 20);
    assert_eq!(status.trim(), "0", "exit status");
    // Back on the normal screen, in cooked mode: the shell runs the next command.
    tmux.type_line(&format!("stty -a > {}", quoted(&stty)));
    let modes = wait_for_file(&stty, 10);
    assert!(modes.contains(" icanon") && !modes.contains("-icanon"), "still in raw mode: {modes}");
    assert!(modes.contains(" echo ") && !modes.contains("-echo "), "echo is off: {modes}");
    let screen = tmux.screen();
    assert!(!screen.contains("DEMO — tiny models"), "the alternate screen was not left:\n{screen}");
    assert!(screen.contains("demo --max-new-tokens 48"), "the shell's screen is back:\n{screen}");
    // The demo wrote its checkpoints to the cache directory and its log beside them.
    assert!(cache.join(format!("demo-{}", env!("CARGO_PKG_VERSION"))).join("base/model.safetensors").is_file());
    assert!(cache.join("logs/proxythinker.log").is_file());
}

#[test]
fn a_panic_gives_the_terminal_back_and_prints_the_message() {
    let dir = tempfile::tempdir().expect("temp dir");
    let code = dir.path().join("code");
    let stty = dir.path().join("stty");
    let tmux = Tmux::start("panic");
    tmux.type_line(&format!(
        "PROXYTHINKER_TEST_PANIC=1 PROXYTHINKER_CACHE={} {BIN} demo --max-new-tokens 8; echo $? > {}",
        quoted(&dir.path().join("cache")),
        quoted(&code)
    ));
    assert_eq!(wait_for_file(&code, 60).trim(), "101", "a panic exits with Rust's status 101");
    tmux.type_line(&format!("stty -a > {}", quoted(&stty)));
    let modes = wait_for_file(&stty, 10);
    assert!(modes.contains(" icanon") && !modes.contains("-icanon"), "still in raw mode: {modes}");
    let screen = tmux.screen();
    // The message is printed on the normal screen, after the alternate screen was left.
    assert!(screen.contains("panicking on purpose"), "{screen}");
    assert!(!screen.contains("DEMO — tiny models"), "{screen}");
}

#[test]
fn replay_of_a_file_that_is_not_a_trace_shows_the_error_in_the_ui() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("not_a_trace");
    std::fs::write(&bad, "this is not json\n").expect("write");
    let code = dir.path().join("code");
    let tmux = Tmux::start("replay");
    tmux.type_line(&format!(
        "PROXYTHINKER_CACHE={} {BIN} replay {}; echo $? > {}",
        quoted(&dir.path().join("cache")),
        quoted(&bad),
        quoted(&code)
    ));
    let screen = tmux.wait_for("the error on the status line", 30, |s| s.contains("not a proxythinker trace"));
    assert!(screen.contains("REPLAY"), "{screen}");
    // Still running: the help opens and closes.
    tmux.send("?", true);
    tmux.wait_for("the help", 10, |s| s.contains("key closes"));
    tmux.send("Escape", false);
    tmux.wait_for("the help to close", 10, |s| !s.contains("key closes"));
    tmux.send("q", true);
    assert_eq!(wait_for_file(&code, 20).trim(), "0");
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).env("PROXYTHINKER_CACHE", std::env::temp_dir().join("proxythinker-e2e")).output().expect("run the binary")
}

fn assert_one_line_error(out: &Output, contains: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(contains), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny").join(rel)
}

#[test]
fn bad_command_lines_are_one_line_errors_with_status_2() {
    let base = fixture("qwen2_5_vl");
    let rft = fixture("trio_rft");
    let small = fixture("trio_small");
    let (b, r, s) = (base.to_str().unwrap_or(""), rft.to_str().unwrap_or(""), small.to_str().unwrap_or(""));
    // No subcommand: the UI, whose checks run before the terminal is touched.
    assert_one_line_error(&run(&["--base", "/nonexistent", "--rft", r, "--small", s]), "/nonexistent");
    assert_one_line_error(&run(&["tui", "--base", b, "--rft", "/nonexistent/rft", "--small", s]), "/nonexistent/rft");
    assert_one_line_error(&run(&["--base", b, "--rft", r]), "required");
    assert_one_line_error(&run(&["--base", b, "--rft", r, "--small", s, "--alpha", "nan"]), "--alpha");
    assert_one_line_error(&run(&["--base", b, "--rft", r, "--small", s, "--question", " "]), "question is empty");
    let not_image = fixture("images/not_an_image.png");
    assert_one_line_error(
        &run(&["--base", b, "--rft", r, "--small", s, "--image", not_image.to_str().unwrap_or("")]),
        "not_an_image.png",
    );
    assert_one_line_error(&run(&["demo", "--temperature", "0"]), "--temperature");
    assert_one_line_error(&run(&["demo", "--device", "tpu"]), "tpu");
    assert_one_line_error(&run(&["replay"]), "required");
    assert_one_line_error(&run(&["replay", "/nonexistent/trace.jsonl"]), "/nonexistent/trace.jsonl: no such file");
}

#[path = "hub_support/mod.rs"]
mod hub_support;

#[test]
fn models_named_by_repo_id_download_under_a_gauge_then_the_ui_starts() {
    let hub = hub_support::FakeHub::start();
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny");
    hub.add("owner/base", "main", hub_support::dir_files(&tiny.join("qwen2_5_vl")));
    hub.add("owner/rft", "main", hub_support::dir_files(&tiny.join("trio_rft")));
    hub.add("owner/small", "main", hub_support::dir_files(&tiny.join("trio_small")));
    // Slow weights keep the download screen up long enough to be seen.
    hub.slow("model.safetensors", 1500);
    let dir = tempfile::tempdir().expect("temp dir");
    let (hf_home, code) = (dir.path().join("hf"), dir.path().join("code"));
    let tmux = Tmux::start("hub");
    tmux.type_line(&format!(
        "cd {} && HF_ENDPOINT={} HF_HOME={} PROXYTHINKER_CACHE={} {BIN} --base owner/base --rft owner/rft --small owner/small \
         --question 'How many circles?' --max-new-tokens 8 --ignore-eos; echo $? > {}",
        quoted(dir.path()),
        hub.url,
        quoted(&hf_home),
        quoted(&dir.path().join("cache")),
        quoted(&code)
    ));
    let screen = tmux.wait_for("the download screen", 30, |s| s.contains("downloading the models"));
    assert!(screen.contains("owner/"), "no file being downloaded on the screen:\n{screen}");
    let screen = tmux.wait_for("the UI after the download", 60, |s| {
        let c = token_counts(s);
        s.contains("α=0.50") && c.len() == 3 && c.iter().all(|n| *n >= 1)
    });
    assert!(!screen.contains("downloading the models"), "{screen}");
    tmux.send("q", true);
    assert_eq!(wait_for_file(&code, 20).trim(), "0", "exit status");
    // The checkpoints landed in the standard cache layout.
    let snapshots = hf_home.join("hub/models--owner--base/snapshots");
    let snapshot = std::fs::read_dir(&snapshots).expect("a snapshot").next().expect("one").expect("entry").path();
    assert!(snapshot.join("model.safetensors").is_file());
}

/// `alternate_on cursor_flag mouse_any_flag` of the pane: what the program left the terminal in.
fn terminal_flags(tmux: &Tmux) -> String {
    let out = tmux.run(&["display-message", "-p", "-t", "e2e", "#{alternate_on} #{cursor_flag} #{mouse_any_flag}"]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn sigterm_and_sighup_give_the_terminal_back_and_exit_as_killed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tmux = Tmux::start("signals");
    for (name, number) in [("TERM", 15), ("HUP", 1), ("INT", 2)] {
        let (pid, code, stty) = (dir.path().join(format!("pid-{name}")), dir.path().join(format!("code-{name}")), dir.path().join(format!("stty-{name}")));
        // `exec` keeps the shell's pid for the UI, so the test knows whom to signal.
        tmux.type_line(&format!(
            "sh -c 'echo $$ > {}; exec env PROXYTHINKER_CACHE={} {BIN} demo --max-new-tokens 3000 --ignore-eos'; echo $? > {}",
            quoted(&pid),
            quoted(&dir.path().join("cache")),
            quoted(&code)
        ));
        tmux.wait_for("tokens in the panes", 120, |s| token_counts(s).iter().any(|n| *n >= 2));
        assert_eq!(terminal_flags(&tmux), "1 0 1", "the UI has the alternate screen, no cursor, the mouse");
        let pid = wait_for_file(&pid, 10);
        let killed = Command::new("kill").arg(format!("-{name}")).arg(pid.trim()).status().expect("kill");
        assert!(killed.success());
        assert_eq!(wait_for_file(&code, 20).trim(), (128 + number).to_string(), "SIG{name}: exit status 128 + signal");
        tmux.type_line(&format!("stty -a > {}", quoted(&stty)));
        let modes = wait_for_file(&stty, 10);
        assert!(modes.contains(" icanon") && !modes.contains("-icanon"), "SIG{name}: still in raw mode: {modes}");
        assert!(modes.contains(" echo ") && !modes.contains("-echo "), "SIG{name}: echo is off: {modes}");
        assert_eq!(terminal_flags(&tmux), "0 1 0", "SIG{name}: normal screen, cursor shown, mouse capture off");
        tmux.type_line("clear");
        tmux.wait_for("the cleared screen", 10, |s| !s.contains("DEMO — tiny models"));
    }
}

#[test]
fn a_long_paste_into_the_question_does_not_stall_the_ui() {
    let dir = tempfile::tempdir().expect("temp dir");
    let code = dir.path().join("code");
    let tmux = Tmux::start("paste");
    tmux.type_line(&format!(
        "PROXYTHINKER_CACHE={} {BIN} demo --max-new-tokens 8 --ignore-eos; echo $? > {}",
        quoted(&dir.path().join("cache")),
        quoted(&code)
    ));
    tmux.wait_for("the session to finish", 120, |s| s.contains("· finished"));
    tmux.send("e", true);
    tmux.send("C-u", false);
    // The input line is open and empty before the paste arrives (a loaded machine may be slow to draw it).
    tmux.wait_for("the emptied input line", 30, |s| s.lines().any(|l| l.contains("question>     Enter confirms")));
    // 2 KiB in one paste (bracketed, as the UI asked the terminal for), then Enter right after.
    let question = format!("{} END", "word ".repeat(400));
    assert!(tmux.run(&["set-buffer", "-b", "q", &question]).status.success());
    assert!(tmux.run(&["paste-buffer", "-p", "-b", "q", "-t", "e2e"]).status.success());
    tmux.send("Enter", false);
    // Enter is not stuck behind the paste: the new question restarts the session at once.
    // (The question panel changes only on Enter; the input line is drawn elsewhere.)
    tmux.wait_for("the restart with the pasted question", 15, |s| s.contains("Question word word word"));
    let screen = tmux.wait_for("the session to finish again", 60, |s| s.contains("· finished"));
    assert!(screen.contains("Question word word word"), "the pasted question is the question:\n{screen}");
    tmux.send("q", true);
    assert_eq!(wait_for_file(&code, 20).trim(), "0");
}

#[test]
fn a_long_unbracketed_paste_does_not_stall_the_ui() {
    // A terminal without bracketed paste (or a paste the terminal does not mark) sends the text
    // as typed keys, many kilobytes at once: more than one read of the terminal takes.
    let dir = tempfile::tempdir().expect("temp dir");
    let code = dir.path().join("code");
    let tmux = Tmux::start("rawpaste");
    tmux.type_line(&format!(
        "PROXYTHINKER_CACHE={} {BIN} demo --max-new-tokens 8 --ignore-eos; echo $? > {}",
        quoted(&dir.path().join("cache")),
        quoted(&code)
    ));
    tmux.wait_for("the session to finish", 120, |s| s.contains("· finished"));
    tmux.send("e", true);
    tmux.send("C-u", false);
    tmux.wait_for("the emptied input line", 30, |s| s.lines().any(|l| l.contains("question>     Enter confirms")));
    // 3 KiB (about 3,100 of the demo's 4,096 positions), pasted without the bracket markers
    // (no -p), then Enter: nothing is typed after it, so whatever the UI has not read by then it
    // would only read once another key came.
    let question = format!("{} END", "raw ".repeat(768));
    assert!(tmux.run(&["set-buffer", "-b", "q", &question]).status.success());
    assert!(tmux.run(&["paste-buffer", "-b", "q", "-t", "e2e"]).status.success());
    tmux.send("Enter", false);
    tmux.wait_for("the restart with the pasted question", 20, |s| s.contains("Question raw raw raw"));
    let screen = tmux.wait_for("the session to finish again", 60, |s| s.contains("· finished"));
    assert!(!screen.contains("question>"), "the input line closed on Enter:\n{screen}");
    tmux.send("q", true);
    assert_eq!(wait_for_file(&code, 20).trim(), "0");
}

#[test]
fn opening_a_fifo_with_o_is_refused_and_the_ui_keeps_answering() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fifo = dir.path().join("picture.png");
    assert!(Command::new("mkfifo").arg(&fifo).status().expect("mkfifo").success());
    let code = dir.path().join("code");
    let tmux = Tmux::start("fifo");
    tmux.type_line(&format!(
        "PROXYTHINKER_CACHE={} {BIN} demo --max-new-tokens 8 --ignore-eos; echo $? > {}",
        quoted(&dir.path().join("cache")),
        quoted(&code)
    ));
    tmux.wait_for("the session to finish", 120, |s| s.contains("· finished"));
    tmux.send("o", true);
    tmux.send("C-u", false);
    tmux.type_line(&fifo.display().to_string());
    tmux.wait_for("the refusal on the status line", 10, |s| s.contains("is not a regular file"));
    tmux.send("q", true);
    assert_eq!(wait_for_file(&code, 10).trim(), "0", "q still quits");
}

#[test]
fn search_and_lookup_in_the_demo() {
    let dir = tempfile::tempdir().expect("temp dir");
    let code = dir.path().join("code");
    let tmux = Tmux::start("lookup");
    tmux.type_line(&format!(
        "cd {} && PROXYTHINKER_CACHE={} {BIN} demo --alpha 1 --max-new-tokens 64; echo $? > {}",
        quoted(dir.path()),
        quoted(&dir.path().join("cache")),
        quoted(&code)
    ));
    tmux.wait_for("the session to finish", 180, |s| s.contains("· finished"));
    // `/Wait`: the reasoner's check is found in the RFT and guided streams.
    tmux.send("/", true);
    tmux.wait_for("the search prompt", 10, |s| s.contains("search /"));
    tmux.type_line("Wait");
    // One in each stream that checks; Enter goes to the first after the cursor, round and round.
    let screen = tmux.wait_for("a match", 20, |s| s.contains("/2 of \"Wait\": "));
    let first = if screen.contains("match 1/2") { "match 1/2" } else { "match 2/2" };
    let other = if first == "match 1/2" { "match 2/2" } else { "match 1/2" };
    tmux.send("n", true);
    let screen = tmux.wait_for("the other match", 20, |s| s.contains(other));
    assert!(screen.contains("RFT-small stream") || screen.contains("guided stream"), "{screen}");
    // `t Wait`: the engine answers with the token's figures at the guided step under the cursor.
    tmux.send("t", true);
    tmux.wait_for("the lookup prompt", 10, |s| s.contains("look up> "));
    tmux.type_line("Wait");
    let screen = tmux.wait_for("the lookup's answer", 30, |s| s.contains("look up \"Wait\" at guided step") && s.contains("encodes as"));
    assert!(screen.contains("base") && screen.contains("guided") && screen.contains('#'), "{screen}");
    tmux.send("Escape", false);
    tmux.wait_for("the lookup to close", 10, |s| !s.contains("look up \"Wait\""));
    tmux.send("q", true);
    assert_eq!(wait_for_file(&code, 20).trim(), "0");
}
