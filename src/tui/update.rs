//! How the UI reacts: `update(&mut App, Msg) -> Vec<Effect>` turns a key, a mouse event, a
//! resize or an engine event into a new state and a list of things for the terminal loop to do
//! (send a command to the engine, restart with new inputs, open an image, export, quit).
//! Keys are looked up in [`keymap`] and dispatched on their action. α is the engine's: a key
//! only asks for a value, which is in force once the engine's reset says so. It does no I/O, so
//! every key binding is tested without a terminal.

use std::path::PathBuf;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent, MouseEventKind};

use crate::engine::{Command, Event, Record};
use crate::processor::SourceImage;

use super::app::{alpha_text, App, Input, InputPurpose, Pane, RunState, TokenCell};
use super::keymap::{self, Action};
use super::layout;
use super::picture::Thumbnail;

/// Something that happened.
#[derive(Debug, Clone)]
pub enum Msg {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Resize(u16, u16),
    /// Text pasted in one piece (the terminal's bracketed paste).
    Paste(String),
    Engine(Event),
    /// The image asked for with `o` was read.
    ImageOpened { path: PathBuf, thumbnail: Thumbnail },
    /// An effect succeeded; say so on the status line.
    Done(String),
    /// An effect failed; say why on the status line.
    Failed(String),
    /// The engine's thread has ended, or no longer takes commands.
    EngineStopped,
    /// Time passes while the app is busy: the spinner turns.
    Tick,
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
            let before = app.cursor;
            let mut effects = key_press(app, key);
            focus_moved(app, before, &mut effects);
            effects
        }
        Msg::Mouse(m) => {
            let before = app.cursor;
            mouse(app, m);
            let mut effects = Vec::new();
            focus_moved(app, before, &mut effects);
            effects
        }
        Msg::Resize(w, h) => {
            app.screen = (w, h);
            Vec::new()
        }
        Msg::Paste(text) => {
            match app.input.as_mut() {
                // One line: line breaks and other control characters become spaces.
                Some(input) => input.text.extend(text.chars().map(|c| if c.is_control() { ' ' } else { c })),
                None => app.set_status("pasted text ignored: press e (question) or o (image) first"),
            }
            Vec::new()
        }
        Msg::Engine(ev) => {
            engine_event(app, ev);
            export_when_fresh(app)
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
        Msg::Tick => {
            app.ticks = app.ticks.wrapping_add(1);
            Vec::new()
        }
        Msg::EngineStopped => {
            // Nothing will confirm the α asked for; keep the engine's own error when it sent one.
            app.pending_alpha = None;
            if app.status.as_ref().is_none_or(|s| !s.error) {
                app.set_error("the engine has stopped: press r to restart (details in the log)");
            }
            // Nothing will re-measure the stale records either: a waiting export is written now,
            // with them marked stale.
            if std::mem::take(&mut app.pending_export) {
                return vec![Effect::ExportTrace];
            }
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

/// A key outside the input line: looked up in the keymap, then acted on.
fn key_press(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    let action = keymap::action_for(&key);
    if app.help {
        // ↑ / ↓ scroll the help; any other key closes it; the quit keys still quit.
        match action {
            Some(Action::LineDown) => app.help_scroll = (app.help_scroll + 1).min(super::view::help::max_scroll(app.screen)),
            Some(Action::LineUp) => app.help_scroll = app.help_scroll.saturating_sub(1),
            Some(Action::Quit) => return vec![Effect::Quit],
            _ => app.help = false,
        }
        return Vec::new();
    }
    let Some(action) = action else { return Vec::new() };
    match action {
        Action::Quit => return vec![Effect::Quit],
        Action::AlphaUp => return change_alpha(app, 0.10),
        Action::AlphaDown => return change_alpha(app, -0.10),
        Action::AlphaUpFine => return change_alpha(app, 0.01),
        Action::AlphaDownFine => return change_alpha(app, -0.01),
        Action::TypeAlpha => {
            if needs_models(app, "changing α") {
                app.input = Some(Input { purpose: InputPurpose::Alpha, text: String::new() });
            }
        }
        Action::Force => return force_candidate(app),
        Action::TogglePause => return toggle_pause(app),
        Action::Restart => {
            if needs_models(app, "restarting") {
                app.set_status("restarting");
                return restart(app);
            }
        }
        Action::ExportTrace => return export_trace(app),
        Action::NextMeasure => app.measure = app.measure.next(),
        Action::PreviousToken => move_cursor_by(app, -1),
        Action::NextToken => move_cursor_by(app, 1),
        Action::LineUp => move_cursor_line(app, -1),
        Action::LineDown => move_cursor_line(app, 1),
        Action::FirstToken => set_cursor(app, 0),
        Action::NextVerification => jump_to_verification(app, true),
        Action::PreviousVerification => jump_to_verification(app, false),
        Action::FollowNewest => {
            app.follow = true;
            app.scroll = [None; 3];
            app.cursor = app.len(app.focus).saturating_sub(1);
            app.candidate = 0;
        }
        Action::NextPane => {
            app.focus = app.focus.next();
            app.clamp_cursor();
        }
        Action::NextCandidate => {
            let n = app.selected_guided().map_or(0, |r| r.guided.top.len());
            app.candidate = (app.candidate + 1).min(n.saturating_sub(1));
        }
        Action::PreviousCandidate => app.candidate = app.candidate.saturating_sub(1),
        Action::EditQuestion => {
            if needs_models(app, "editing the question") {
                app.input = Some(Input { purpose: InputPurpose::Question, text: app.info.question.clone() });
            }
        }
        Action::OpenImage => {
            if needs_models(app, "opening an image") {
                let text = app.info.image_path.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
                app.input = Some(Input { purpose: InputPurpose::ImagePath, text });
            }
        }
        Action::Help => {
            app.help = true;
            app.help_scroll = 0;
        }
        Action::ClearStatus => app.status = None,
    }
    Vec::new()
}

/// Asks the engine for α moved by `by` from the last value asked for (or the one in force): the
/// header shows it as pending until the engine's reset confirms it.
fn change_alpha(app: &mut App, by: f32) -> Vec<Effect> {
    if !needs_models(app, "changing α") {
        return Vec::new();
    }
    let alpha = round_alpha(app.pending_alpha.unwrap_or(app.alpha) + by);
    ask_alpha(app, alpha)
}

/// Asks the engine for exactly `alpha`, shown pending until its reset confirms it.
fn ask_alpha(app: &mut App, alpha: f32) -> Vec<Effect> {
    app.pending_alpha = Some(alpha);
    app.set_status(format!("α={} asked for: deciding which guided tokens stay", alpha_text(alpha)));
    let mut effects = vec![Effect::SendCommand(Command::SetAlpha(alpha))];
    // The engine re-measures from where the stream changed unless told where the user looks.
    if !app.follow {
        effects.push(Effect::SendCommand(Command::Focus(app.cursor)));
    }
    effects
}

/// Tells the engine where the user now looks when the cursor moved while records are stale, so
/// that those nearest the cursor are re-measured first.
fn focus_moved(app: &App, before: usize, effects: &mut Vec<Effect>) {
    if app.cursor != before && app.stale_count() > 0 {
        effects.push(Effect::SendCommand(Command::Focus(app.cursor)));
    }
}

/// `x`: exports at once, unless guided records are still being re-measured after an α change;
/// then the export waits for them (see [`export_when_fresh`]), so that a trace never mixes
/// measures of two α values without saying so.
fn export_trace(app: &mut App) -> Vec<Effect> {
    let stale = app.stale_count();
    if stale == 0 || app.is_replay() {
        return vec![Effect::ExportTrace];
    }
    app.pending_export = true;
    app.set_status(format!("export waits for {stale} guided records being re-measured at α = {:.2}", app.alpha));
    Vec::new()
}

/// The waiting export, once the last stale record is fresh.
fn export_when_fresh(app: &mut App) -> Vec<Effect> {
    if app.pending_export && app.stale_count() == 0 {
        app.pending_export = false;
        return vec![Effect::ExportTrace];
    }
    Vec::new()
}

/// The α typed on the input line, or why it is not one (α stays `current`).
fn parse_alpha(text: &str, current: f32) -> Result<f32, String> {
    match text.trim().parse::<f32>() {
        Ok(a) if a.is_finite() => Ok(a),
        _ => Err(format!("α {text:?} is not a finite number: press a and type one such as 0.75 (α stays {current:.2})")),
    }
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
    let text = TokenCell::printable(&c.text);
    app.set_status(format!("forcing {text:?} (id {token}) at step {step}"));
    app.pending_force = Some((step, text, token));
    // The guided stream will be rewritten from there: keep the cursor where the user put it.
    app.follow = false;
    vec![Effect::SendCommand(Command::Force { step, token })]
}

/// Clears the streams and asks for a fresh session with the current question and image (at the
/// α the engine last confirmed).
fn restart(app: &mut App) -> Vec<Effect> {
    app.clear_streams();
    // The records an export was waiting for are gone.
    app.pending_export = false;
    app.run = RunState::Loading;
    app.redecoding = None;
    app.pending_force = None;
    // The α asked for went to the engine being replaced; the new one starts at the α in force.
    app.pending_alpha = None;
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
        // Ctrl-C quits here too (it is no `c`); other control chords type nothing.
        KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => vec![Effect::Quit],
        KeyCode::Char(_) if key.modifiers.contains(KeyModifiers::CONTROL) => Vec::new(),
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
                InputPurpose::Alpha => match parse_alpha(&text, app.alpha) {
                    Ok(alpha) => ask_alpha(app, alpha),
                    Err(why) => {
                        app.set_error(why);
                        Vec::new()
                    }
                },
            }
        }
        _ => Vec::new(),
    }
}

fn engine_event(app: &mut App, ev: Event) {
    match ev {
        Event::Prefilled { opens_in_think } => {
            // The guided stream continues the base model's prompt.
            app.set_think_at_start([opens_in_think.base, opens_in_think.rft, opens_in_think.base]);
        }
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
        Event::GuidedReset { alpha, changed_from, kept } => {
            let before = app.guided.len();
            app.alpha = alpha;
            // Quick presses send several values; only the last one asked for ends the wait.
            if app.pending_alpha == Some(alpha) {
                app.pending_alpha = None;
            }
            let report = reset_report(alpha, changed_from, kept.len(), before);
            // A forced token's reset says it was the forcing (the engine answers a Force at its step).
            match app.pending_force.take() {
                Some((step, text, token)) if changed_from == Some(step) => {
                    app.set_status(format!("forced {text:?} (id {token}) at step {step}: {}", report.split_once(": ").map_or(report.as_str(), |r| r.1)))
                }
                _ => app.set_status(report),
            }
            app.reset_guided(kept);
            if let Some(step) = changed_from {
                app.redecoding = Some((step, before.max(step + 1)));
            }
            // Tokens to decode again: a finished session runs until the engine says `Finished`
            // once more. With every token kept it stays finished.
            if changed_from.is_some() && app.run == RunState::Finished {
                app.run = RunState::Running;
            }
        }
        Event::Refreshed(records) => app.refresh_guided(records),
        Event::Progress { step, tokens_per_second } => {
            app.step = step;
            app.tokens_per_second = tokens_per_second;
            if app.run == RunState::Loading {
                app.run = RunState::Running;
            }
        }
        Event::Finished => {
            app.run = RunState::Finished;
            app.redecoding = None;
        }
        Event::Error(e) => {
            // A refused α (or a failed step): the engine keeps the α in force, and so does the header.
            app.pending_alpha = None;
            app.set_error(e);
        }
        Event::Paused => {
            // The step's error stays on the status line; the header must not say running.
            if matches!(app.run, RunState::Running | RunState::Loading) {
                app.run = RunState::Paused;
            }
        }
    }
}

/// What a reset did, for the status line: `α=0.60: 18 of 2,493 guided tokens kept, re-decoding
/// from step 18` or `α=0.60: all 47 guided tokens kept`.
fn reset_report(alpha: f32, changed_from: Option<usize>, kept: usize, before: usize) -> String {
    let alpha = format!("α={}", alpha_text(alpha));
    match changed_from {
        Some(step) => format!(
            "{alpha}: {} of {} guided tokens kept, re-decoding from step {}",
            grouped(kept),
            grouped(before.max(kept)),
            grouped(step)
        ),
        None if kept == 0 => format!("{alpha} in force (no guided token yet)"),
        None if kept == 1 => format!("{alpha}: the one guided token kept"),
        None => format!("{alpha}: all {} guided tokens kept", grouped(kept)),
    }
}

/// A count with thousands separated by commas (`2,493`).
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Puts the cursor on step `i` of the focused pane and scrolls every pane to show it.
fn set_cursor(app: &mut App, i: usize) {
    app.follow = false;
    app.cursor = i;
    app.candidate = 0;
    app.clamp_cursor();
    reveal_cursor(app);
}

/// Moves the cursor to the next (or previous) self-verification phrase of the focused pane.
fn jump_to_verification(app: &mut App, forward: bool) {
    let starts = app.verify_starts(app.focus);
    let at = app.cursor;
    let target = if forward { starts.iter().copied().find(|&i| i > at) } else { starts.iter().rev().copied().find(|&i| i < at) };
    match target {
        Some(i) => {
            let n = starts.iter().position(|&s| s == i).map_or(0, |p| p + 1);
            set_cursor(app, i);
            app.set_status(format!("self-verification {n} of {} in the {} stream", starts.len(), app.focus.title()));
        }
        None if starts.is_empty() => app.set_status(format!("no self-verification phrase in the {} stream yet", app.focus.title())),
        None => app.set_status(format!("no self-verification phrase {} this one", if forward { "after" } else { "before" })),
    }
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
