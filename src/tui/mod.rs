//! The terminal UI (`proxythinker`, `proxythinker demo`, `proxythinker replay FILE`).
//!
//! Built like other ratatui apps (gitui, yazi): [`app`] is the state as plain data, [`keymap`]
//! the key bindings as data (read by key handling, the help and the hint line), [`update`]
//! turns messages (keys, mouse, resizes, engine events) into a new state and a list of effects
//! without any I/O, [`view`] draws a frame from the state alone, and this module is the loop
//! that glues them to the terminal and to the engine. The engine decodes on its own thread; the
//! loop only ever polls it (`try_recv`) and waits at most one frame for input, so the UI never
//! waits on decoding; an image opened with `o` is read on a thread of its own and polled the same
//! way. A signal (SIGTERM, SIGHUP, SIGINT) ends the loop within a frame ([`crate::interrupt`]).
//! Input is read with crossterm's poll(2) source (its `use-dev-tty` feature): the default mio
//! source is edge-triggered and reads 1 KiB per readiness, so the rest of an unbracketed paste
//! sat unread (and the keys after it with it) until another key arrived. All waiting input is
//! handled before the next frame is drawn.

pub mod app;
pub mod demo;
pub mod download;
pub mod graphics;
pub mod keymap;
pub mod latex;
pub mod layout;
pub mod line_edit;
pub mod measure;
pub mod picture;
pub mod search;
pub mod synthetic;
pub mod terminal;
pub mod trace_io;
pub mod update;
pub mod view;

use std::path::{Path, PathBuf};
use std::sync::mpsc::TryRecvError;
use std::sync::Arc;
use std::time::Duration;

use ratatui::crossterm::event::{self, Event as TermEvent};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::plan::{Inputs, SessionPlan, SessionRequest};
use crate::processor::SourceImage;
use crate::trace::TraceHeader;
use crate::trio::PerModel;

use crate::cli::{DemoArgs, ReplayArgs, TuiArgs};

use app::{App, Mode, RunState, SessionInfo};
use picture::Thumbnail;
use update::{update, Effect, Msg};

/// How long the loop waits for a key before looking at the engine again (one frame at 60 Hz).
const FRAME: Duration = Duration::from_millis(16);
/// How often the spinner turns.
const SPIN: Duration = Duration::from_millis(100);
/// The wait for more input once some came: the rest of a paste is read before the next draw.
const DRAIN: Duration = Duration::from_millis(1);
/// Engine events handled per frame at most, so that a flood of records cannot starve the keys.
const EVENTS_PER_FRAME: usize = 4096;

/// The question the UI asks when none is given.
pub const DEFAULT_QUESTION: &str = "Describe the picture.";

/// Builds the UI state of a live session from its plan; nothing here loads or prepares anything.
fn live_app(mode: Mode, plan: &SessionPlan, inputs: &Inputs, names: PerModel<String>) -> Result<App> {
    // The thumbnail is drawn from the picture the model is given, decoded once.
    let thumbnail = inputs.image.as_ref().map(Thumbnail::from_source);
    let info = SessionInfo {
        mode,
        base: names.base,
        rft: names.rft,
        small: names.small,
        device: plan.placement().device_summary(),
        dtype: plan.placement().dtype_summary(),
        sampling: plan.decoding.sampling,
        max_new_tokens: plan.decoding.max_new_tokens,
        question: inputs.question.clone(),
        image_path: inputs.image.as_ref().map(|s| s.path.clone()),
    };
    let mut app = App::new(info, plan.decoding.alpha);
    app.phrases = crate::markers::normalise(&plan.settings.verification_phrases.value);
    app.image = thumbnail;
    // Shown on the status line once the UI is up (stderr would be one more line before an error).
    let note = plan.notes.join("; ");
    if !note.is_empty() {
        app.set_status(note);
    }
    Ok(app)
}

/// `proxythinker [tui] --base .. --rft .. --small ..` (or `--preset NAME`)
pub fn run_tui(args: &TuiArgs) -> Result<()> {
    let settings = crate::config::resolve(&args.guided.overrides())?;
    let inputs = args.input.inputs_or(DEFAULT_QUESTION)?;
    let request = SessionRequest::new(settings, &inputs.question)?;
    let dirs = download::resolve_all(request.references()?)?;
    let plan = request.prepare(dirs, inputs.clone())?;
    let mut app = live_app(Mode::Live, &plan, &inputs, plan.short_names())?;
    app.truth = args.answer.clone();
    run_app(app, Some((Arc::new(plan), inputs)))
}

/// `proxythinker demo` (the config file's α, decoding and placement apply; its models, preset
/// and suffix do not)
pub fn run_demo(args: &DemoArgs) -> Result<()> {
    let settings = crate::config::resolve(&args.decoding.overrides())?;
    let files = demo::install()?;
    let question = args.input.question.clone().unwrap_or_else(demo::question);
    let image = SourceImage::open(args.input.image.as_deref().unwrap_or(&files.image))?;
    let inputs = Inputs { question, image: Some(image) };
    let request = SessionRequest::new(settings, &inputs.question)?;
    let names = PerModel::new("demo/base", "demo/rft", "demo/small").map(String::from);
    let dirs = PerModel::new(files.base, files.rft, files.small);
    let plan = request.prepare_named(names.clone(), dirs, inputs.clone())?;
    let mut app = live_app(Mode::Demo, &plan, &inputs, names)?;
    app.truth = args.answer.clone();
    run_app(app, Some((Arc::new(plan), inputs)))
}

/// `proxythinker replay FILE`
pub fn run_replay(args: &ReplayArgs) -> Result<()> {
    // A path that names nothing is a command-line mistake; a file that is not a trace opens the
    // UI with the reason on the status line.
    match std::fs::metadata(&args.file) {
        Ok(m) if m.is_file() => {}
        Ok(_) => {
            return Err(Error::invalid(format!(
                "replay {}: not a regular file (a directory, device or FIFO); give the path of a trace file",
                args.file.display()
            )))
        }
        Err(_) => {
            return Err(Error::invalid(format!(
                "replay {}: no such file; give the path of a trace written by `run --trace` or by `x` in the UI",
                args.file.display()
            )))
        }
    }
    // A big trace takes a while to read: say how far it is, before the terminal is taken over.
    let show = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut progress = |done: u64, total: u64| {
        if show && total >= 8 << 20 {
            eprint!("\rreading {}: {}%", args.file.display(), done.saturating_mul(100) / total);
        }
    };
    let (mut app, header) = trace_io::replay_with_progress(&args.file, &mut progress);
    if show && std::fs::metadata(&args.file).is_ok_and(|m| m.len() >= 8 << 20) {
        eprint!("\r\x1b[K");
    }
    if let Some(img) = app.info.image_path.as_deref() {
        app.image = Thumbnail::open(img).ok();
    }
    app.truth = args.answer.clone();
    let mut runtime = Runtime::new(None);
    runtime.replayed = header;
    run_app_with(app, runtime)
}

/// Starts an engine decoding `inputs` at `alpha` over the plan's models (loaded by the first
/// engine that needs them). Errors (weights that do not load, an image the processor refuses)
/// arrive as `Event::Error`.
fn spawn(plan: &Arc<SessionPlan>, inputs: Inputs, alpha: f32) -> Engine {
    let plan = Arc::clone(plan);
    Engine::spawn(move || plan.start(&inputs, alpha))
}

fn run_app(app: App, live: Option<(Arc<SessionPlan>, Inputs)>) -> Result<()> {
    let (plan, first) = live.map_or((None, None), |(p, i)| (Some(p), Some(i)));
    let mut runtime = Runtime::new(plan);
    runtime.first = first;
    run_app_with(app, runtime)
}

/// Takes over the terminal and runs the loop until `q`.
fn run_app_with(mut app: App, mut runtime: Runtime) -> Result<()> {
    let log = crate::logging::init_logging(&crate::dirs::log_file());
    tracing::info!("starting the UI ({:?})", app.info.mode);
    // The terminal first: its panic hook must be in place before the engine thread exists.
    let mut guard = terminal::enter().map_err(|e| Error::invalid(format!("cannot use this terminal: {e}")))?;
    if let (Some(plan), Some(inputs)) = (&runtime.plan, runtime.first.take()) {
        runtime.engine = Some(spawn(plan, inputs, app.alpha));
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
    // Killed (SIGTERM, SIGHUP, SIGINT): the terminal is back; exit as a killed command does.
    crate::interrupt::exit_if_received();
    runtime.shut_down();
    if let Err(e) = &result {
        tracing::error!("the UI stopped: {e}");
    }
    result
}

/// What the loop owns besides the state: the engine and the plan that starts another.
struct Runtime {
    engine: Option<Engine>,
    /// The checked trio and settings (None in a replay: no models).
    plan: Option<Arc<SessionPlan>>,
    /// The inputs of the first session, started once the terminal is ours.
    first: Option<Inputs>,
    /// A replayed trace's header, written again by an export.
    replayed: Option<TraceHeader>,
    export_dir: PathBuf,
    /// The engine's thread has ended (and the status line said so).
    engine_gone: bool,
    /// An image being read for `o`, on a thread of its own: a slow or stuck file must not freeze
    /// the keys.
    opening: Option<std::sync::mpsc::Receiver<Msg>>,
    /// A directory being listed for Tab on the image path, on a thread of its own (a slow or
    /// huge directory must not freeze the keys); a later Tab replaces it.
    listing: Option<std::sync::mpsc::Receiver<Msg>>,
}

impl Runtime {
    fn new(plan: Option<Arc<SessionPlan>>) -> Runtime {
        let export_dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        Runtime { engine: None, plan, first: None, replayed: None, export_dir, engine_gone: false, opening: None, listing: None }
    }

    /// The header of the session on screen: the plan describes a live one (its prompt prepared
    /// again from the question and image on screen), a replay keeps the trace's own.
    fn trace_header(&self, app: &App) -> Result<TraceHeader> {
        match (&self.plan, &self.replayed) {
            (Some(plan), _) => {
                let inputs = Inputs { question: app.info.question.clone(), image: app.image.as_ref().map(|t| t.source.clone()) };
                let prompt = plan.prompt(&inputs)?;
                Ok(plan.trace_header("proxythinker tui", &inputs, &prompt, app.alpha))
            }
            (None, Some(header)) => Ok(header.clone()),
            (None, None) => Err(Error::invalid("nothing to export: this trace could not be read")),
        }
    }

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
                        update(app, Msg::EngineStopped);
                        any = true;
                    }
                    break;
                }
            }
        }
        any
    }

    /// Hands an opened image (or the reason it did not open) to `update`; `false` means quit.
    fn poll_opening(&mut self, app: &mut App) -> (bool, bool) {
        let Some(rx) = &self.opening else { return (false, true) };
        let msg = match rx.try_recv() {
            Ok(msg) => msg,
            Err(TryRecvError::Empty) => return (false, true),
            Err(TryRecvError::Disconnected) => Msg::Failed("reading the image stopped (see the log)".into()),
        };
        self.opening = None;
        for e in update(app, msg) {
            if !self.apply(app, e) {
                return (true, false);
            }
        }
        (true, true)
    }

    /// Hands a finished directory listing to `update`; whether one came.
    fn poll_listing(&mut self, app: &mut App) -> bool {
        let Some(rx) = &self.listing else { return false };
        match rx.try_recv() {
            Ok(msg) => {
                self.listing = None;
                update(app, msg);
                true
            }
            Err(TryRecvError::Empty) => false,
            Err(TryRecvError::Disconnected) => {
                self.listing = None;
                false
            }
        }
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
                        update(app, Msg::EngineStopped);
                    }
                }
            }
            Effect::Restart { question, image } => {
                // At the α the engine last confirmed (`update` dropped any pending one).
                let engine = self.plan.as_ref().map(|p| spawn(p, Inputs { question, image }, app.alpha));
                self.replace_engine(engine);
                app.run = RunState::Loading;
            }
            Effect::OpenImage(path) => {
                let path = expand_home(&path);
                let (tx, rx) = std::sync::mpsc::channel();
                update(app, Msg::Done(format!("opening {}…", path.display())));
                // A later `o` replaces this one; the old thread's answer then goes nowhere.
                self.opening = Some(rx);
                std::thread::spawn(move || {
                    let msg = match Thumbnail::open(&path) {
                        Ok(thumbnail) => Msg::ImageOpened { path, thumbnail },
                        Err(e) => Msg::Failed(e.to_string()),
                    };
                    let _ = tx.send(msg);
                });
            }
            Effect::CompletePath(typed) => {
                let (tx, rx) = std::sync::mpsc::channel();
                self.listing = Some(rx);
                std::thread::spawn(move || {
                    let dir = expand_home(Path::new(line_edit::split_path(&typed).0));
                    let _ = tx.send(Msg::Completed(line_edit::list_candidates(&typed, &dir)));
                });
            }
            Effect::ExportTrace => {
                let msg = match self.trace_header(app).and_then(|header| trace_io::export_new(app, &header, &self.export_dir)) {
                    Ok(path) => match app.stale_count() {
                        0 => Msg::Done(format!("trace written to {}", path.display())),
                        n => Msg::Done(format!(
                            "trace written to {}: {n} guided records in it were measured at an earlier α (marked \"stale\": true)",
                            path.display()
                        )),
                    },
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
        TermEvent::Paste(text) => Some(Msg::Paste(text)),
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
    let mut last_tick = std::time::Instant::now();
    loop {
        // The spinner turns while something is under way.
        if app.busy() && last_tick.elapsed() >= SPIN {
            update(app, Msg::Tick);
            last_tick = std::time::Instant::now();
            dirty = true;
        }
        if crate::interrupt::received().is_some() {
            return Ok(());
        }
        dirty |= runtime.poll_engine(app);
        let (opened, go_on) = runtime.poll_opening(app);
        if !go_on {
            return Ok(());
        }
        dirty |= opened;
        dirty |= runtime.poll_listing(app);
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
                // Not `Duration::ZERO`: crossterm's poll(2) source (the `use-dev-tty` feature,
                // see Cargo.toml) hands out what it has already read only for a non-zero wait.
                if !event::poll(DRAIN).map_err(io)? {
                    break;
                }
            }
        }
    }
}
