//! The terminal UI (`proxythinker`, `proxythinker demo`, `proxythinker replay FILE`).
//!
//! Built like other ratatui apps (gitui, yazi): [`app`] is the state as plain data, [`update`]
//! turns messages (keys, mouse, resizes, engine events) into a new state and a list of effects
//! without any I/O, [`view`] draws a frame from the state alone, and this module is the loop
//! that glues them to the terminal and to the engine. The engine decodes on its own thread; the
//! loop only ever polls it (`try_recv`) and waits at most one frame for input, so the UI never
//! waits on decoding.

pub mod app;
pub mod args;
pub mod demo;
pub mod download;
pub mod graphics;
pub mod launch;
pub mod layout;
pub mod measure;
pub mod picture;
pub mod synthetic;
pub mod terminal;
pub mod trace_io;
pub mod update;
pub mod view;

use std::path::{Path, PathBuf};
use std::sync::mpsc::TryRecvError;
use std::time::Duration;

use ratatui::crossterm::event::{self, Event as TermEvent};

use crate::engine::trio::TrioFiles;
use crate::engine::Engine;
use crate::error::{Error, Result};

pub use args::{with_default_subcommand, DecodingArgs, DemoArgs, ReplayArgs, TuiArgs};

use app::{App, Mode, RunState, SessionInfo};
use launch::Launcher;
use picture::Thumbnail;
use update::{update, Effect, Msg};

/// How long the loop waits for a key before looking at the engine again (one frame at 60 Hz).
const FRAME: Duration = Duration::from_millis(16);
/// Engine events handled per frame at most, so that a flood of records cannot starve the keys.
const EVENTS_PER_FRAME: usize = 4096;

/// The last path component, as the header shows a model.
fn short(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// What a live session needs, checked before the terminal is taken over.
struct Prepared {
    app: App,
    launcher: Launcher,
    /// Appended to every question before the chat template (`--suffix`).
    suffix: String,
}

/// Checks the arguments and opens the checkpoints; every failure here is a command-line error.
fn prepare(
    mode: Mode,
    paths: [&Path; 3],
    image: Option<PathBuf>,
    question: String,
    settings: &crate::config::Settings,
    decoding: &DecodingArgs,
) -> Result<Prepared> {
    let alpha = settings.alpha.value;
    let sampling = settings.sampling();
    sampling.validate().map_err(Error::invalid)?;
    if question.trim().is_empty() {
        return Err(Error::invalid("the question is empty: pass one with --question"));
    }
    let max_new_tokens = settings.max_new_tokens.value;
    if max_new_tokens == 0 {
        return Err(Error::invalid("--max-new-tokens must be at least 1"));
    }
    let placement = settings.placement.open()?;
    let source = image.as_deref().map(crate::processor::SourceImage::open).transpose()?;
    let files = TrioFiles::open(paths[0], paths[1], paths[2])?;
    // The preflight sizes the first question's context (the image processed on the cpu only to
    // count its tokens); the weights are not read yet.
    let suffix = settings.suffix.value.text().to_string();
    let (base_ckpt, tokenizer) = &files.base;
    let counted = crate::processor::prepare_prompt(
        base_ckpt,
        tokenizer,
        &format!("{question}{suffix}"),
        source.as_ref(),
        false,
        &candle_core::Device::Cpu,
    )?;
    let prompt_tokens = counted.input.input_ids.len() as u64;
    let notes = crate::preflight::check(
        &files,
        &settings.placement,
        &placement,
        prompt_tokens + max_new_tokens as u64,
        max_new_tokens as u64,
    )?;
    // Shown on the status line once the UI is up (stderr would be one more line before an error).
    let note = notes.into_iter().chain(crate::preflight::vocab_note(&files)).collect::<Vec<_>>().join("; ");
    let mut launcher = Launcher::new(files, placement, sampling, max_new_tokens);
    launcher.stop_strings = decoding.sampling.stop.clone();
    launcher.stop_at_eos = !decoding.sampling.ignore_eos;
    let info = SessionInfo {
        mode,
        base: short(paths[0]),
        rft: short(paths[1]),
        small: short(paths[2]),
        device: settings.placement.device_summary(),
        dtype: settings.placement.dtype_summary(),
        sampling,
        max_new_tokens,
        question,
        image_path: image,
    };
    let mut app = App::new(info, alpha);
    app.image = source.as_ref().map(Thumbnail::from_source);
    if !note.is_empty() {
        app.set_status(note);
    }
    Ok(Prepared { app, launcher, suffix })
}

/// `proxythinker [tui] --base .. --rft .. --small ..` (or `--preset NAME`)
pub fn run_tui(args: &TuiArgs) -> Result<()> {
    let settings = crate::config::resolve(args.decoding.overrides(Some(&args.models), args.alpha, args.suffix.as_deref()))?;
    let [base, rft, small] = download::resolve_all(settings.model_references()?)?;
    let p = prepare(Mode::Live, [&base, &rft, &small], args.image.clone(), args.question.clone(), &settings, &args.decoding)?;
    run_live(p)
}

/// `proxythinker demo` (the config file's α, decoding and placement apply; its models, preset
/// and suffix do not)
pub fn run_demo(args: &DemoArgs) -> Result<()> {
    let settings = crate::config::resolve(args.decoding.overrides(None, args.alpha, None))?;
    let files = demo::install()?;
    let question = args.question.clone().unwrap_or_else(demo::question);
    let mut p = prepare(
        Mode::Demo,
        [&files.base, &files.rft, &files.small],
        Some(files.image.clone()),
        question,
        &settings,
        &args.decoding,
    )?;
    p.app.info.base = "demo/base".into();
    p.app.info.rft = "demo/rft".into();
    p.app.info.small = "demo/small".into();
    run_live(p)
}

/// `proxythinker replay FILE`
pub fn run_replay(args: &ReplayArgs) -> Result<()> {
    // A path that names nothing is a command-line mistake; a file that is not a trace opens the
    // UI with the reason on the status line.
    if !args.file.is_file() {
        return Err(Error::invalid(format!(
            "replay {}: no such file; give the path of a trace written by `run --trace` or by `x` in the UI",
            args.file.display()
        )));
    }
    let mut app = trace_io::replay_app(&args.file);
    if let Some(img) = app.info.image_path.as_deref() {
        app.image = Thumbnail::open(img).ok();
    }
    run_app(app, None)
}

fn run_live(p: Prepared) -> Result<()> {
    run_app(p.app, Some((p.launcher, p.suffix)))
}

/// Takes over the terminal and runs the loop until `q`.
fn run_app(mut app: App, launcher: Option<(Launcher, String)>) -> Result<()> {
    let log = terminal::init_logging(&terminal::log_file());
    tracing::info!("starting the UI ({:?})", app.info.mode);
    let export_dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let (launcher, suffix) = launcher.map_or((None, String::new()), |(l, s)| (Some(l), s));
    let mut runtime = Runtime { engine: None, launcher, suffix, export_dir, engine_gone: false };
    // The terminal first: its panic hook must be in place before the engine thread exists.
    let mut guard = terminal::enter().map_err(|e| Error::invalid(format!("cannot use this terminal: {e}")))?;
    if let Some(l) = &runtime.launcher {
        let image = app.image.as_ref().map(|t| t.source.clone());
        runtime.engine = Some(l.spawn(format!("{}{}", app.info.question, runtime.suffix), image, app.alpha));
        // A note from the checks (vocabularies that differ, ...) stays visible next to "loading".
        let note = app.status.take().map(|s| s.text);
        if let Some(n) = &note {
            tracing::info!("{n}");
        }
        let loading = match &log {
            Some(path) => format!("loading the models… (log: {})", path.display()),
            None => "loading the models…".into(),
        };
        app.set_status(match note {
            Some(n) => format!("{loading} · {n}"),
            None => loading,
        });
    }
    let result = event_loop(&mut guard.terminal, &mut app, &mut runtime);
    drop(guard);
    runtime.shut_down();
    if let Err(e) = &result {
        tracing::error!("the UI stopped: {e}");
    }
    result
}

/// What the loop owns besides the state: the engine and how to start another.
struct Runtime {
    engine: Option<Engine>,
    launcher: Option<Launcher>,
    /// Appended to every question before the chat template (`--suffix`).
    suffix: String,
    export_dir: PathBuf,
    /// The engine's thread has ended (and the status line said so).
    engine_gone: bool,
}

impl Runtime {
    /// Replaces the engine; the old one finishes its current step on a thread of its own, so the
    /// UI does not wait for it.
    fn replace_engine(&mut self, new: Option<Engine>) {
        if let Some(old) = std::mem::replace(&mut self.engine, new) {
            std::thread::spawn(move || drop(old));
        }
        self.engine_gone = false;
    }

    /// Hands the engine's waiting events to `update` without blocking; whether any came.
    fn poll_engine(&mut self, app: &mut App) -> bool {
        let Some(engine) = &self.engine else { return false };
        let mut any = false;
        for _ in 0..EVENTS_PER_FRAME {
            match engine.events.try_recv() {
                Ok(ev) => {
                    update(app, Msg::Engine(ev));
                    any = true;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    if !self.engine_gone {
                        self.engine_gone = true;
                        // Keep the engine's own error, which says more, when it sent one.
                        if app.status.as_ref().is_none_or(|s| !s.error) {
                            app.set_error("the engine has stopped: press r to restart (details in the log)");
                        }
                        any = true;
                    }
                    break;
                }
            }
        }
        any
    }

    fn shut_down(&mut self) {
        // Not joined: the process is about to exit, and a step in progress would delay it.
        if let Some(engine) = self.engine.take() {
            let _ = engine.commands.send(crate::engine::Command::Stop);
            std::mem::forget(engine);
        }
    }

    /// Carries out one effect; `false` means quit.
    fn apply(&mut self, app: &mut App, effect: Effect) -> bool {
        match effect {
            Effect::Quit => return false,
            Effect::SendCommand(cmd) => {
                if let Some(e) = &self.engine {
                    if e.commands.send(cmd).is_err() {
                        app.set_error("the engine has stopped: press r to restart (details in the log)");
                    }
                }
            }
            Effect::Restart { question, image } => {
                let engine = self.launcher.as_ref().map(|l| l.spawn(format!("{question}{}", self.suffix), image, app.alpha));
                self.replace_engine(engine);
                app.run = RunState::Loading;
            }
            Effect::OpenImage(path) => {
                let path = expand_home(&path);
                let msg = match Thumbnail::open(&path) {
                    Ok(thumbnail) => Msg::ImageOpened { path, thumbnail },
                    Err(e) => Msg::Failed(e.to_string()),
                };
                for e in update(app, msg) {
                    if !self.apply(app, e) {
                        return false;
                    }
                }
            }
            Effect::ExportTrace => {
                let path = trace_io::export_path(&self.export_dir);
                let msg = match trace_io::export(app, &path) {
                    Ok(()) => Msg::Done(format!("trace written to {}", path.display())),
                    Err(e) => Msg::Failed(e.to_string()),
                };
                update(app, msg);
            }
        }
        true
    }
}

fn expand_home(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => path.to_path_buf(),
    }
}

fn to_msg(ev: TermEvent) -> Option<Msg> {
    match ev {
        TermEvent::Key(k) => Some(Msg::Key(k)),
        TermEvent::Mouse(m) => Some(Msg::Mouse(m)),
        TermEvent::Resize(w, h) => Some(Msg::Resize(w, h)),
        _ => None,
    }
}

fn event_loop(terminal: &mut terminal::Term, app: &mut App, runtime: &mut Runtime) -> Result<()> {
    let io = |e: std::io::Error| Error::invalid(format!("terminal: {e}"));
    let size = terminal.size().map_err(io)?;
    update(app, Msg::Resize(size.width, size.height));
    // Asked once the alternate screen is up and before any event is read (see `graphics`).
    let mut graphics = graphics::Graphics::detect();
    let mut dirty = true;
    // A test hook: the end-to-end test checks that a panic gives the terminal back.
    let panic_for_test = std::env::var_os("PROXYTHINKER_TEST_PANIC").is_some();
    loop {
        dirty |= runtime.poll_engine(app);
        if dirty {
            terminal.draw(|f| view::draw_with_graphics(f, app, graphics.as_mut())).map_err(io)?;
            dirty = false;
            if panic_for_test && !app.guided.is_empty() {
                panic!("PROXYTHINKER_TEST_PANIC is set: panicking on purpose");
            }
        }
        if event::poll(FRAME).map_err(io)? {
            // Take every input that is waiting before drawing again.
            loop {
                if let Some(msg) = to_msg(event::read().map_err(io)?) {
                    for effect in update(app, msg) {
                        if !runtime.apply(app, effect) {
                            return Ok(());
                        }
                    }
                    dirty = true;
                }
                if !event::poll(Duration::ZERO).map_err(io)? {
                    break;
                }
            }
        }
    }
}
