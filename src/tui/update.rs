//! How the UI reacts: `update(&mut App, Msg) -> Vec<Effect>` turns a key, a mouse event, a
//! resize or an engine event into a new state and a list of things for the terminal loop to do
//! (send a command to the engine, restart with new inputs, open an image, export, quit).
//! It does no I/O, so every key binding is tested without a terminal.

use std::path::PathBuf;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent, MouseEventKind};

use crate::engine::{Command, Event, Record};
use crate::processor::SourceImage;

use super::app::{App, Input, InputPurpose, Pane, RunState};
use super::layout;
use super::picture::Thumbnail;

/// Something that happened.
#[derive(Debug, Clone)]
pub enum Msg {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Resize(u16, u16),
    Engine(Event),
    /// The image asked for with `o` was read.
    ImageOpened { path: PathBuf, thumbnail: Thumbnail },
    /// An effect succeeded; say so on the status line.
    Done(String),
    /// An effect failed; say why on the status line.
    Failed(String),
}

/// Something for the terminal loop to do.
#[derive(Debug, Clone)]
pub enum Effect {
    SendCommand(Command),
    /// Start decoding again from the prompt with these inputs (the streams are already cleared);
    /// the image is the thumbnail's decoded picture, not decoded again.
    Restart { question: String, image: Option<SourceImage> },
    /// Read this image; answer with `Msg::ImageOpened` or `Msg::Failed`.
    OpenImage(PathBuf),
    /// Write the records to a trace file; answer with `Msg::Done` or `Msg::Failed`.
    ExportTrace,
    Quit,
}

/// Lines the mouse wheel scrolls per notch.
const WHEEL_LINES: usize = 3;

pub fn update(app: &mut App, msg: Msg) -> Vec<Effect> {
    match msg {
        Msg::Key(key) => {
            // Terminals that report releases would otherwise act twice per key.
            if key.kind == KeyEventKind::Release {
                return Vec::new();
            }
            if app.input.is_some() {
                return input_key(app, key);
            }
            key_press(app, key)
        }
        Msg::Mouse(m) => {
            mouse(app, m);
            Vec::new()
        }
        Msg::Resize(w, h) => {
            app.screen = (w, h);
            Vec::new()
        }
        Msg::Engine(ev) => {
            engine_event(app, ev);
            Vec::new()
        }
        Msg::ImageOpened { path, thumbnail } => {
            app.image = Some(thumbnail);
            app.info.image_path = Some(path.clone());
            app.set_status(format!("image {}: restarting", path.display()));
            restart(app)
        }
        Msg::Done(text) => {
            app.set_status(text);
            Vec::new()
        }
        Msg::Failed(text) => {
            app.set_error(text);
            Vec::new()
        }
    }
}

/// Rounds α to hundredths, so that ten steps of 0.01 land exactly where one step of 0.10 does.
fn round_alpha(a: f32) -> f32 {
    (a * 100.0).round() / 100.0
}

/// Refuses, on the status line, what a replay cannot do (it has no models).
fn needs_models(app: &mut App, what: &str) -> bool {
    if app.is_replay() {
        app.set_error(format!("{what} needs the models; a replayed trace has none (run `proxythinker` with --base/--rft/--small)"));
        return false;
    }
    true
}

fn key_press(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if app.help {
        // Any key closes the help; q still quits.
        app.help = false;
        return match key.code {
            KeyCode::Char('q') => vec![Effect::Quit],
            _ => Vec::new(),
        };
    }
    match key.code {
        KeyCode::Char('c') if ctrl => vec![Effect::Quit],
        KeyCode::Char('q') => vec![Effect::Quit],
        KeyCode::Char(']') => change_alpha(app, 0.10),
        KeyCode::Char('[') => change_alpha(app, -0.10),
        KeyCode::Char('}') => change_alpha(app, 0.01),
        KeyCode::Char('{') => change_alpha(app, -0.01),
        KeyCode::Char('m') => {
            app.measure = app.measure.next();
            Vec::new()
        }
        KeyCode::Left | KeyCode::Char('h') => {
            move_cursor_by(app, -1);
            Vec::new()
        }
        KeyCode::Right | KeyCode::Char('l') => {
            move_cursor_by(app, 1);
            Vec::new()
        }
        KeyCode::Up | KeyCode::Char('k') => {
            move_cursor_line(app, -1);
            Vec::new()
        }
        KeyCode::Down | KeyCode::Char('j') => {
            move_cursor_line(app, 1);
            Vec::new()
        }
        KeyCode::Home | KeyCode::Char('g') => {
            set_cursor(app, 0);
            Vec::new()
        }
        KeyCode::End | KeyCode::Char('G') => {
            // Back to following the newest token.
            app.follow = true;
            app.scroll = [None; 3];
            app.cursor = app.len(app.focus).saturating_sub(1);
            app.candidate = 0;
            Vec::new()
        }
        KeyCode::Tab => {
            app.focus = app.focus.next();
            app.clamp_cursor();
            Vec::new()
        }
        KeyCode::Char('n') => {
            let n = app.selected_guided().map_or(0, |r| r.guided.top.len());
            app.candidate = (app.candidate + 1).min(n.saturating_sub(1));
            Vec::new()
        }
        KeyCode::Char('p') => {
            app.candidate = app.candidate.saturating_sub(1);
            Vec::new()
        }
        KeyCode::Enter => force_candidate(app),
        KeyCode::Char(' ') => toggle_pause(app),
        KeyCode::Char('r') => {
            if !needs_models(app, "restarting") {
                return Vec::new();
            }
            app.set_status("restarting");
            restart(app)
        }
        KeyCode::Char('e') => {
            if needs_models(app, "editing the question") {
                app.input = Some(Input { purpose: InputPurpose::Question, text: app.info.question.clone() });
            }
            Vec::new()
        }
        KeyCode::Char('o') => {
            if needs_models(app, "opening an image") {
                let text = app.info.image_path.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
                app.input = Some(Input { purpose: InputPurpose::ImagePath, text });
            }
            Vec::new()
        }
        KeyCode::Char('x') => vec![Effect::ExportTrace],
        KeyCode::Char('?') => {
            app.help = true;
            Vec::new()
        }
        KeyCode::Esc => {
            app.status = None;
            Vec::new()
        }
        _ => Vec::new(),
    }
}

fn change_alpha(app: &mut App, by: f32) -> Vec<Effect> {
    if !needs_models(app, "changing α") {
        return Vec::new();
    }
    app.alpha = round_alpha(app.alpha + by);
    vec![Effect::SendCommand(Command::SetAlpha(app.alpha))]
}

fn toggle_pause(app: &mut App) -> Vec<Effect> {
    if !needs_models(app, "pausing") {
        return Vec::new();
    }
    match app.run {
        RunState::Paused => {
            app.run = RunState::Running;
            app.set_status("resumed");
            vec![Effect::SendCommand(Command::Resume)]
        }
        RunState::Running | RunState::Loading => {
            app.run = RunState::Paused;
            app.set_status("paused (space resumes)");
            vec![Effect::SendCommand(Command::Pause)]
        }
        RunState::Finished | RunState::Replay => Vec::new(),
    }
}

fn force_candidate(app: &mut App) -> Vec<Effect> {
    if !needs_models(app, "forcing a token") {
        return Vec::new();
    }
    let step = app.cursor;
    let Some(record) = app.guided.get(step) else {
        app.set_error(format!("no guided token at step {step} yet: move the cursor onto the guided stream"));
        return Vec::new();
    };
    let Some(c) = record.guided.top.get(app.candidate) else {
        app.set_error("no candidate selected (n / p choose one)");
        return Vec::new();
    };
    let token = c.token;
    app.set_status(format!("forcing {:?} (id {token}) at step {step}", c.text));
    // The guided stream will be rewritten from there: keep the cursor where the user put it.
    app.follow = false;
    vec![Effect::SendCommand(Command::Force { step, token })]
}

/// Clears the streams and asks for a fresh session with the current question and image.
fn restart(app: &mut App) -> Vec<Effect> {
    app.clear_streams();
    app.run = RunState::Loading;
    vec![Effect::Restart { question: app.info.question.clone(), image: app.image.as_ref().map(|t| t.source.clone()) }]
}

fn input_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    let Some(input) = app.input.as_mut() else { return Vec::new() };
    match key.code {
        KeyCode::Esc => {
            app.input = None;
            app.set_status("cancelled");
            Vec::new()
        }
        KeyCode::Backspace => {
            input.text.pop();
            Vec::new()
        }
        KeyCode::Char('u') if key.modifiers.contains(KeyModifiers::CONTROL) => {
            input.text.clear();
            Vec::new()
        }
        KeyCode::Char(c) => {
            input.text.push(c);
            Vec::new()
        }
        KeyCode::Enter => {
            let Input { purpose, text } = app.input.take().unwrap_or(Input { purpose: InputPurpose::Question, text: String::new() });
            let text = text.trim().to_string();
            match purpose {
                InputPurpose::Question => {
                    if text.is_empty() {
                        app.set_error("the question is empty: press e and type one (the session keeps the old one)");
                        return Vec::new();
                    }
                    app.info.question = text;
                    app.set_status("new question: restarting");
                    restart(app)
                }
                InputPurpose::ImagePath => {
                    if text.is_empty() {
                        app.set_error("no image path given: press o and type one (the session keeps the old image)");
                        return Vec::new();
                    }
                    vec![Effect::OpenImage(PathBuf::from(text))]
                }
            }
        }
        _ => Vec::new(),
    }
}

fn engine_event(app: &mut App, ev: Event) {
    match ev {
        Event::Record(Record::Base(r)) => app.push_base(r),
        Event::Record(Record::Rft(r)) => app.push_rft(r),
        Event::Record(Record::Guided(r)) => {
            if app.run == RunState::Loading {
                app.run = RunState::Running;
                // "loading…" and "restarting" are over; an error stays until the user clears it.
                if app.status.as_ref().is_some_and(|s| !s.error) {
                    app.status = None;
                }
            }
            app.push_guided(r);
        }
        Event::GuidedReset { kept } => {
            app.reset_guided(kept);
            if app.run == RunState::Finished {
                app.run = RunState::Running;
            }
        }
        Event::Progress { step, tokens_per_second } => {
            app.step = step;
            app.tokens_per_second = tokens_per_second;
            if app.run == RunState::Loading {
                app.run = RunState::Running;
            }
        }
        Event::Finished => {
            app.run = RunState::Finished;
        }
        Event::Error(e) => app.set_error(e),
    }
}

/// Puts the cursor on step `i` of the focused pane and scrolls every pane to show it.
fn set_cursor(app: &mut App, i: usize) {
    app.follow = false;
    app.cursor = i;
    app.candidate = 0;
    app.clamp_cursor();
    reveal_cursor(app);
}

fn move_cursor_by(app: &mut App, by: isize) {
    let len = app.len(app.focus);
    if len == 0 {
        return;
    }
    let i = app.cursor.min(len - 1).saturating_add_signed(by).min(len - 1);
    set_cursor(app, i);
}

/// Moves the cursor one wrapped line up or down in the focused pane, keeping its column.
fn move_cursor_line(app: &mut App, by: isize) {
    let pane = app.focus;
    let cells = &app.cells[pane.index()];
    if cells.is_empty() {
        return;
    }
    let Some(lines) = layout::pane_lines(app, pane) else {
        // No layout (too small, or no size yet): a line is as good as a token.
        move_cursor_by(app, by);
        return;
    };
    let i = app.cursor.min(cells.len() - 1);
    let line = layout::line_of(&lines.starts, i);
    let x = layout::column_of(cells, &lines.starts, i);
    let Some(target) = line.checked_add_signed(by).filter(|l| *l < lines.starts.len()) else {
        return;
    };
    if let Some(j) = layout::token_at(cells, &lines.starts, target, x) {
        set_cursor(app, j);
    }
}

/// Scrolls each pane, when needed, so that the cursor's token is visible.
fn reveal_cursor(app: &mut App) {
    for pane in Pane::ALL {
        if app.cursor >= app.len(pane) {
            continue;
        }
        let Some(lines) = layout::pane_lines(app, pane) else { return };
        let height = lines.area.height as usize;
        let line = layout::line_of(&lines.starts, app.cursor);
        let mut top = lines.top;
        if line < top {
            top = line;
        } else if height > 0 && line >= top + height {
            top = line + 1 - height;
        }
        app.scroll[pane.index()] = Some(top);
    }
}

fn mouse(app: &mut App, m: MouseEvent) {
    match m.kind {
        MouseEventKind::Down(_) => {
            if let Some((pane, token)) = layout::hit(app, m.column, m.row) {
                app.focus = pane;
                if let Some(i) = token {
                    set_cursor(app, i);
                }
            }
        }
        MouseEventKind::ScrollUp | MouseEventKind::ScrollDown => {
            let Some((pane, _)) = layout::hit(app, m.column, m.row) else { return };
            let Some(lines) = layout::pane_lines(app, pane) else { return };
            let height = lines.area.height as usize;
            let last_top = lines.starts.len().saturating_sub(height);
            let top = if m.kind == MouseEventKind::ScrollUp {
                lines.top.saturating_sub(WHEEL_LINES)
            } else {
                lines.top + WHEEL_LINES
            };
            // Scrolling to the bottom goes back to showing the newest lines as they come.
            app.scroll[pane.index()] = if top >= last_top { None } else { Some(top) };
        }
        _ => {}
    }
}
