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

use super::app::{alpha_text, App, Input, InputPurpose, LookupAnswer, LookupState, Pane, RunState, TokenCell};
use super::line_edit::{self, Completion, Edit, Editor};
use super::search::{self, Search};
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
    /// The listing asked for with Tab on the image path.
    Completed(Completion),
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
    /// List the directory of this typed path (off the UI thread, bounded); answer with
    /// `Msg::Completed`.
    CompletePath(String),
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
                Some(input) => input.editor.insert(&text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>()),
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
        Msg::Completed(c) => {
            completed(app, c);
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
                app.input = Some(Input::new(InputPurpose::Alpha, Editor::empty()));
            }
        }
        Action::Search => app.input = Some(Input::new(InputPurpose::Search, Editor::empty())),
        Action::NextMatch => walk_matches(app, true),
        Action::PreviousMatch => walk_matches(app, false),
        Action::NextFlip => jump_to_flip(app, true),
        Action::PreviousFlip => jump_to_flip(app, false),
        Action::NextSpike => jump_to_spike(app, true),
        Action::PreviousSpike => jump_to_spike(app, false),
        Action::LookUp => {
            if app.guided.is_empty() {
                app.set_error("nothing to look up at yet: the guided stream has no token");
            } else {
                app.input = Some(Input::new(InputPurpose::Lookup, Editor::empty()));
            }
        }
        Action::ToggleLatex => {
            app.set_latex(!app.latex);
            app.set_status(if app.latex { "LaTeX shown readably in the panes (\\ shows it raw; the inspector keeps the raw tokens)" } else { "LaTeX shown raw" });
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
                app.input = Some(Input::new(InputPurpose::Question, Editor::prefilled(app.info.question.clone())));
            }
        }
        Action::OpenImage => {
            if needs_models(app, "opening an image") {
                let text = app.info.image_path.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
                app.input = Some(Input::new(InputPurpose::ImagePath, Editor::prefilled(text)));
            }
        }
        Action::Help => {
            app.help = true;
            app.help_scroll = 0;
        }
        Action::ClearStatus => {
            app.status = None;
            app.search = None;
            app.lookup = None;
        }
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
        app.set_error("no candidate selected (c / C choose one)");
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
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    match key.code {
        KeyCode::Esc => {
            app.input = None;
            app.set_status("cancelled");
            return Vec::new();
        }
        // Ctrl-C quits here too (it is no `c`).
        KeyCode::Char('c') if ctrl => return vec![Effect::Quit],
        KeyCode::Enter => return confirm_input(app),
        _ => {}
    }
    let history = &app.history[input.purpose.index()];
    match input.editor.key(&key, history) {
        Edit::Complete if input.purpose == InputPurpose::ImagePath => {
            input.editor.keep();
            vec![Effect::CompletePath(input.editor.text().to_string())]
        }
        _ => Vec::new(),
    }
}

/// A directory listing for Tab: completes the common prefix of the names, or lists them on the
/// status line when that adds nothing. An answer for text changed since is dropped.
fn completed(app: &mut App, c: Completion) {
    let Some(input) = app.input.as_mut().filter(|i| i.purpose == InputPurpose::ImagePath && i.editor.text() == c.typed) else { return };
    if let Some(e) = c.error {
        app.set_error(e);
        return;
    }
    let (dir, start) = line_edit::split_path(&c.typed);
    let common = line_edit::common_prefix(&c.candidates);
    let partial = if c.truncated { format!(" (the first {} entries read)", line_edit::LISTING_LIMIT) } else { String::new() };
    if c.candidates.is_empty() {
        app.set_error(format!("nothing in {} starts with {start:?}{partial}", if dir.is_empty() { "." } else { dir }));
        return;
    }
    if common.len() > start.len() {
        let text = format!("{dir}{common}");
        input.editor = Editor::with_text(text);
    }
    if c.candidates.len() > 1 && common.len() <= start.len() {
        const SHOWN: usize = 12;
        let more = c.candidates.len().saturating_sub(SHOWN);
        let mut list = c.candidates.iter().take(SHOWN).map(|n| TokenCell::printable(n)).collect::<Vec<_>>().join("  ");
        if more > 0 {
            list.push_str(&format!("  … {more} more"));
        }
        app.set_status(format!("{} matches{partial}: {list}", c.candidates.len()));
    } else if c.candidates.len() > 1 {
        app.set_status(format!("{} matches{partial}: Tab again lists them", c.candidates.len()));
    } else {
        app.status = None;
    }
}

/// Enter on the input line.
fn confirm_input(app: &mut App) -> Vec<Effect> {
    let Some(Input { purpose, editor }) = app.input.take() else { return Vec::new() };
    let text = editor.text().trim().to_string();
    line_edit::remember(&mut app.history[purpose.index()], &text);
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
        InputPurpose::Search => {
            if editor.text().is_empty() {
                app.search = None;
                app.set_status("search cleared");
                return Vec::new();
            }
            // Spaces count (a leading space finds whole words mid-sentence).
            let query = editor.text().to_string();
            app.search = Some(Search { hits: search::find(app, app.focus, &query), from: app.focus, query, current: None });
            walk_matches(app, true);
            Vec::new()
        }
        InputPurpose::Lookup => look_up(app, editor.text().to_string()),
    }
}

/// `t` confirmed: asks the engine (live), or reads the record (a replay has no engine).
fn look_up(app: &mut App, query: String) -> Vec<Effect> {
    if query.is_empty() {
        app.lookup = None;
        return Vec::new();
    }
    // The guided step under the cursor: all four distributions are of the guided prefix there.
    let step = app.cursor.min(app.guided.len().saturating_sub(1));
    let Some(record) = app.guided.get(step) else {
        app.set_error("nothing to look up at yet: the guided stream has no token");
        return Vec::new();
    };
    if app.is_replay() {
        let found = crate::engine::Lookup::from_record(&query, record);
        app.lookup = Some(LookupState { query, step, answer: LookupAnswer::Done(Box::new(found)) });
        return Vec::new();
    }
    app.lookup = Some(LookupState { query: query.clone(), step, answer: LookupAnswer::Pending });
    vec![Effect::SendCommand(Command::Lookup { step, text: query })]
}

/// `n` / `N`: the next (previous) match of the search, its matches found again first (the
/// streams grow and change with α).
fn walk_matches(app: &mut App, forward: bool) {
    let Some((query, from, current)) = app.search.as_ref().map(|s| (s.query.clone(), s.from, s.current)) else {
        app.set_status("no search: press / and type what to find");
        return;
    };
    let hits = search::find(app, from, &query);
    let shown = TokenCell::printable(&query);
    // The selected match stays selected when the streams changed around it.
    let current = current.and_then(|c| app.search.as_ref().and_then(|s| s.hits.get(c).copied())).and_then(|h| hits.iter().position(|x| *x == h));
    let Some(k) = search::step(&hits, current, app.focus, app.cursor, forward) else {
        app.search = Some(Search { query, from, hits, current: None });
        app.set_error(format!("no match of {shown:?} in the three streams"));
        return;
    };
    let hit = hits[k];
    let total = hits.len();
    app.search = Some(Search { query, from, hits, current: Some(k) });
    app.focus = hit.pane;
    set_cursor(app, hit.first);
    app.set_status(format!("match {}/{total} of {shown:?}: {} stream, step {}", k + 1, hit.pane.title(), hit.first));
}

/// `f` / `F`: the next (previous) flip of the guided stream (the guided pane takes the focus).
fn jump_to_flip(app: &mut App, forward: bool) {
    let flips = search::flips(app);
    // From another pane the flip at the cursor's own step counts too: it is not yet looked at.
    let (at, here) = (app.cursor, app.focus != Pane::Guided);
    let target = if forward {
        flips.iter().copied().find(|&f| f > at || (here && f == at))
    } else {
        flips.iter().rev().copied().find(|&f| f < at || (here && f == at))
    };
    match target {
        Some(i) => {
            let n = flips.iter().position(|&f| f == i).map_or(0, |p| p + 1);
            app.focus = Pane::Guided;
            set_cursor(app, i);
            let r = &app.guided[i];
            let base = r.base.top.first().map(|c| TokenCell::printable(&c.text)).unwrap_or_default();
            app.set_status(format!("flip {n}/{}: step {i}, guidance chose {:?} where the base model would have chosen {base:?}", flips.len(), TokenCell::printable(&r.text)));
        }
        None if flips.is_empty() => app.set_status("no flip in the guided stream: guidance has not changed any base choice"),
        None => app.set_status(format!("no flip {} this one ({} in all)", if forward { "after" } else { "before" }, flips.len())),
    }
}

/// `s` / `S`: the next (previous) spike of the selected measure in the focused pane.
fn jump_to_spike(app: &mut App, forward: bool) {
    let pane = app.focus;
    let measure = app.measure;
    let (threshold, spikes) = search::spikes(app, pane, measure);
    let what = if pane == Pane::Guided { measure.name() } else { measure.pane_caption() };
    match search::next_of(&spikes, app.cursor, forward) {
        Some(i) => {
            let n = spikes.iter().position(|&s| s == i).map_or(0, |p| p + 1);
            let value = search::values(app, pane, measure)[i];
            set_cursor(app, i);
            app.set_status(format!("spike {n}/{} of {what} in the {} stream: step {i}, {value:.3} (above mean + 2σ = {threshold:.3})", spikes.len(), pane.title()));
        }
        None if spikes.is_empty() => app.set_status(format!("no spike of {what} in the {} stream (none above mean + 2σ)", pane.title())),
        None => app.set_status(format!("no spike {} this one ({} in all)", if forward { "after" } else { "before" }, spikes.len())),
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
        Event::Lookup(found) => {
            // Only the lookup still on screen takes its answer (a later `t` replaced an earlier one).
            if let Some(l) = app.lookup.as_mut().filter(|l| l.step == found.step && l.query == found.query) {
                l.answer = LookupAnswer::Done(found);
            }
        }
        Event::LookupFailed(why) => {
            if let Some(l) = app.lookup.as_mut().filter(|l| l.answer == LookupAnswer::Pending) {
                l.answer = LookupAnswer::Failed(why.clone());
            }
            app.set_error(why);
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
    let cells = app.shown_cells(pane);
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
