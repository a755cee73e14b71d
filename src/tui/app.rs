//! The state of the terminal UI, as plain data: what the session is (models, device, sampling,
//! question, image), the three streams of records, the token cursor, the selected measure, α
//! (the engine's, and the one asked for while the engine has not answered), the status line and
//! the input line. Nothing here touches a terminal or a model, so the whole
//! UI can be built from synthetic records in tests; `update` changes it, `view` draws it.

use std::path::PathBuf;

use ratatui::text::Span;

use crate::engine::{GuidedRecord, Lookup, Stop, StreamRecord};
use crate::eval::grade;
use crate::guidance::Sampling;
use crate::printable::{self, Shown};

use super::latex;
use super::line_edit::Editor;
use super::measure::Measure;
use super::search::Search;
use super::picture::Thumbnail;

/// The three stream panes, left to right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Base,
    Rft,
    Guided,
}

impl Pane {
    pub const ALL: [Pane; 3] = [Pane::Base, Pane::Rft, Pane::Guided];

    pub fn index(self) -> usize {
        match self {
            Pane::Base => 0,
            Pane::Rft => 1,
            Pane::Guided => 2,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Pane::Base => "base",
            Pane::Rft => "RFT-small",
            Pane::Guided => "guided",
        }
    }

    pub fn next(self) -> Pane {
        Pane::ALL[(self.index() + 1) % 3]
    }
}

/// Where the records come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Models given on the command line.
    Live,
    /// The built-in synthetic checkpoints.
    Demo,
    /// A trace file read back; no models are loaded.
    Replay(PathBuf),
}

/// What the session is, for the header and for exported traces.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub mode: Mode,
    pub base: String,
    pub rft: String,
    pub small: String,
    pub device: String,
    pub dtype: String,
    pub sampling: Sampling,
    pub max_new_tokens: usize,
    pub question: String,
    pub image_path: Option<PathBuf>,
}

/// Where decoding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Waiting for the models and the prefill.
    Loading,
    Running,
    Paused,
    Finished,
    /// A replayed trace: nothing is decoding.
    Replay,
}

/// A message on the status line.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub text: String,
    pub error: bool,
}

/// What the input line is asking for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputPurpose {
    Question,
    ImagePath,
    /// An exact α (`a`).
    Alpha,
    /// Text to find in the streams (`/`).
    Search,
    /// A token or string to look up at the selected step (`t`).
    Lookup,
}

impl InputPurpose {
    /// Each input keeps its own history.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The input line, while one is open.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    pub purpose: InputPurpose,
    pub editor: Editor,
}

impl Input {
    pub fn new(purpose: InputPurpose, editor: Editor) -> Input {
        Input { purpose, editor }
    }

    /// What has been typed.
    pub fn text(&self) -> &str {
        self.editor.text()
    }
}

/// A token lookup (`t`) and where its answer stands.
#[derive(Debug, Clone, PartialEq)]
pub enum LookupAnswer {
    /// Asked of the engine, not answered yet.
    Pending,
    Done(Box<Lookup>),
    Failed(String),
}

/// The lookup the inspector shows, until Esc.
#[derive(Debug, Clone, PartialEq)]
pub struct LookupState {
    pub query: String,
    pub step: usize,
    pub answer: LookupAnswer,
}

/// A token as a pane lays it out: its text made printable, its width in cells, and whether the
/// token ends a line (it held a line break). Computed once per record, so that wrapping thousands
/// of tokens per frame is integer arithmetic.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenCell {
    pub text: String,
    pub width: u16,
    pub newline: bool,
    /// The token is inside a think segment (`<think>` … `</think>`, the tags included).
    pub think: bool,
    /// A think segment is open after the token.
    pub think_open: bool,
    /// The token is part of a self-verification phrase ([`crate::markers`]).
    pub verify: bool,
    /// A self-verification phrase ends at this token (each phrase is counted here once).
    pub verify_end: bool,
    /// Think-segment tokens and self-verification phrases up to and including this token: the
    /// pane titles read the last cell's, so a frame costs the same however long the stream is
    /// (and a truncated stream's counts are right without recounting).
    pub thinks_through: usize,
    pub verifies_through: usize,
    /// A forced guided token (Enter): drawn after a [`FORCED_MARK`], counted in `width`.
    pub forced: bool,
}

/// The glyph before a forced token (besides its colour and underline).
pub const FORCED_MARK: &str = "▸";

impl TokenCell {
    /// Text of any length made printable as a token is (`↵`, `→`, `·`), not clipped.
    pub fn printable(raw: &str) -> String {
        raw.chars()
            .filter_map(|c| match printable::shown(c) {
                Shown::Newline => Some('↵'),
                Shown::Dropped => None,
                Shown::Char(c) => Some(c),
            })
            .collect()
    }

    /// Makes a token's text printable ([`printable`]): line breaks become `↵` (and end the line),
    /// tabs `→`, other control characters `·`; an empty token is shown as `∅` so that it can be selected.
    pub fn new(raw: &str) -> TokenCell {
        let mut text = String::with_capacity(raw.len());
        let mut newline = false;
        for c in raw.chars() {
            match printable::shown(c) {
                Shown::Newline => {
                    text.push('↵');
                    newline = true;
                }
                Shown::Dropped => {}
                Shown::Char(c) => text.push(c),
            }
        }
        if text.is_empty() {
            text.push('∅');
        }
        // A token wider than any pane would never fit on a line; clip it (the inspector shows it whole).
        const WIDEST: usize = 24;
        if text.chars().count() > WIDEST {
            text = text.chars().take(WIDEST - 1).chain(std::iter::once('…')).collect();
        }
        let width = Span::raw(text.as_str()).width().max(1) as u16;
        TokenCell { text, width, newline, think: false, think_open: false, verify: false, verify_end: false, thinks_through: 0, verifies_through: 0, forced: false }
    }
}

/// The whole UI state.
#[derive(Debug, Clone)]
pub struct App {
    pub info: SessionInfo,
    pub image: Option<Thumbnail>,
    /// The α in force: the engine's, as its last reset confirmed (or the session started with).
    pub alpha: f32,
    /// The α asked for with a key and not yet confirmed by the engine; further keys start from
    /// it. The header shows it with an ellipsis.
    pub pending_alpha: Option<f32>,
    /// `x` was pressed while guided records were stale: the export is written once they are
    /// fresh (or the engine stops).
    pub pending_export: bool,
    /// Per pane (base, rft, guided), whether its stream starts inside a think segment: its
    /// model's prompt opened one.
    pub think_at_start: [bool; 3],
    /// The self-verification phrases highlighted in the panes (lowercase; the config file's
    /// `verification_phrases`, or [`crate::markers::DEFAULT_PHRASES`]).
    pub phrases: Vec<String>,
    pub base: Vec<StreamRecord>,
    pub rft: Vec<StreamRecord>,
    pub guided: Vec<GuidedRecord>,
    /// Per pane, the printable form of every token (same order as the records).
    pub cells: [Vec<TokenCell>; 3],
    pub step: usize,
    pub tokens_per_second: f64,
    pub run: RunState,
    /// The selected step (the same step is marked in all three panes).
    pub cursor: usize,
    /// The cursor follows the newest guided token until the user moves it.
    pub follow: bool,
    /// The pane that arrows and clicks act on.
    pub focus: Pane,
    /// The guided candidate selected in the inspector (what Enter forces).
    pub candidate: usize,
    pub measure: Measure,
    pub status: Option<Status>,
    pub input: Option<Input>,
    pub help: bool,
    /// The first line of the help overlay shown (↑ / ↓ scroll it).
    pub help_scroll: usize,
    /// Per pane, the first visible wrapped line; `None` shows the newest lines.
    pub scroll: [Option<usize>; 3],
    /// The terminal's size, for mouse hit-testing.
    pub screen: (u16, u16),
    /// The correct answer (`--answer`): final answers are marked ✓ / ✗ against it.
    pub truth: Option<String>,
    /// Set by a reset that cut the guided stream (a change of α or a forced token): the step it
    /// re-decodes from and the length the stream had, until it is that long again or the engine
    /// says it has finished. The header says "re-decoding from step K" meanwhile.
    pub redecoding: Option<(usize, usize)>,
    /// The token asked for with Enter and not yet confirmed: (step, its text, its id), so that
    /// the engine's reset can be reported as the forcing it was.
    pub pending_force: Option<(usize, String, u32)>,
    /// Frames drawn while busy, for the spinner.
    pub ticks: u64,
    /// Per input (see [`InputPurpose::index`]), the entries confirmed this session, oldest first.
    pub history: [Vec<String>; 5],
    /// The search in force (`/`): its matches are highlighted, `n` / `N` walk them.
    pub search: Option<Search>,
    /// The token lookup the inspector shows (`t`).
    pub lookup: Option<LookupState>,
    /// The panes show LaTeX readably (`\`); the inspector keeps the raw tokens.
    pub latex: bool,
    /// Per pane, the tokens as the LaTeX rendering shows them (kept up to date while `latex`).
    pub pretty: [Vec<TokenCell>; 3],
    /// Per pane and token, the token whose cell shows it under the LaTeX rendering.
    pub pretty_owner: [Vec<usize>; 3],
}

/// How many tokens back a new token renders LaTeX again at most (see [`App::render_latex_tail`]).
pub const LATEX_TAIL: usize = 256;

/// The spinner's frames, one per tick.
pub const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// How a stream ended and what it answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Ending {
    pub stop: Stop,
    /// The first `\boxed{}` (the grader's extraction), else the last non-empty line; printable.
    pub answer: Option<String>,
    /// Against `--answer`, when given.
    pub correct: Option<bool>,
}

impl Ending {
    /// The stop reason as a pane title names it.
    pub fn stop_label(&self) -> String {
        match &self.stop {
            Stop::Eos => "eos".into(),
            Stop::StopString(s) => format!("stop {:?}", TokenCell::new(s).text),
            Stop::MaxNewTokens => "max tokens".into(),
            Stop::Error(_) => "error".into(),
        }
    }

    /// The stop reason in a word: `eos`, `stop`, `max`, `error`.
    pub fn stop_short(&self) -> &'static str {
        match &self.stop {
            Stop::Eos => "eos",
            Stop::StopString(_) => "stop",
            Stop::MaxNewTokens => "max",
            Stop::Error(_) => "error",
        }
    }

    /// `3 ✓`, `4 ✗`, `3`, or `—` without an answer.
    pub fn answer_label(&self) -> String {
        let mark = match self.correct {
            Some(true) => " ✓",
            Some(false) => " ✗",
            None => "",
        };
        format!("{}{mark}", self.answer.as_deref().unwrap_or("—"))
    }
}

impl App {
    pub fn new(info: SessionInfo, alpha: f32) -> App {
        let run = if matches!(info.mode, Mode::Replay(_)) { RunState::Replay } else { RunState::Loading };
        App {
            info,
            image: None,
            alpha,
            pending_alpha: None,
            pending_export: false,
            think_at_start: [false; 3],
            phrases: crate::markers::DEFAULT_PHRASES.iter().map(|p| p.to_string()).collect(),
            base: Vec::new(),
            rft: Vec::new(),
            guided: Vec::new(),
            cells: [Vec::new(), Vec::new(), Vec::new()],
            step: 0,
            tokens_per_second: 0.0,
            run,
            cursor: 0,
            follow: true,
            focus: Pane::Guided,
            candidate: 0,
            measure: Measure::KlGuidedBase,
            status: None,
            input: None,
            help: false,
            help_scroll: 0,
            scroll: [None; 3],
            screen: (0, 0),
            truth: None,
            redecoding: None,
            pending_force: None,
            ticks: 0,
            history: Default::default(),
            search: None,
            lookup: None,
            latex: false,
            pretty: Default::default(),
            pretty_owner: Default::default(),
        }
    }

    pub fn is_replay(&self) -> bool {
        matches!(self.info.mode, Mode::Replay(_))
    }

    /// How many tokens a pane holds.
    pub fn len(&self, pane: Pane) -> usize {
        self.cells[pane.index()].len()
    }

    pub fn push_base(&mut self, r: StreamRecord) {
        let text = r.text.clone();
        self.base.push(r);
        self.push_cell(0, &text, false);
    }

    pub fn push_rft(&mut self, r: StreamRecord) {
        let text = r.text.clone();
        self.rft.push(r);
        self.push_cell(1, &text, false);
    }

    /// Lays out one more token of pane `pane`, inside or outside a think segment as the tokens
    /// before it (and the pane's prompt) leave it.
    fn push_cell(&mut self, pane: usize, raw: &str, forced: bool) {
        let open_before = self.cells[pane].last().map_or(self.think_at_start[pane], |c| c.think_open);
        let (think, think_open) = crate::think::step(open_before, raw);
        let cells = &mut self.cells[pane];
        let (thinks, verifies) = cells.last().map_or((0, 0), |c| (c.thinks_through, c.verifies_through));
        // A stream that closes a segment it was never seen to open (a trace from before the
        // prompt said so, a template that opened it unseen) was thinking from its first token.
        let thinks = if raw.contains(crate::think::CLOSE) && !open_before && !raw.contains(crate::think::OPEN) && thinks == 0 {
            for (i, c) in cells.iter_mut().enumerate() {
                c.think = true;
                c.think_open = true;
                c.thinks_through = i + 1;
            }
            cells.len()
        } else {
            thinks
        };
        let cell = TokenCell::new(raw);
        let width = cell.width + u16::from(forced);
        cells.push(TokenCell { think, think_open, thinks_through: thinks + usize::from(think), verifies_through: verifies, forced, width, ..cell });
        self.mark_verification(pane);
        if self.latex {
            self.render_latex_tail(pane);
        }
    }

    /// The raw texts of pane `pane`'s tokens.
    pub fn raw_texts(&self, pane: Pane) -> Vec<&str> {
        match pane {
            Pane::Base => self.base.iter().map(|r| r.text.as_str()).collect(),
            Pane::Rft => self.rft.iter().map(|r| r.text.as_str()).collect(),
            Pane::Guided => self.guided.iter().map(|r| r.text.as_str()).collect(),
        }
    }

    /// The cells a pane shows: the LaTeX rendering's while it is on, else the raw tokens'.
    pub fn shown_cells(&self, pane: Pane) -> &[TokenCell] {
        let i = pane.index();
        if self.latex && self.pretty[i].len() == self.cells[i].len() {
            &self.pretty[i]
        } else {
            &self.cells[i]
        }
    }

    /// The token whose cell shows token `i` of `pane` (itself unless LaTeX swallowed it).
    pub fn shown_owner(&self, pane: Pane, i: usize) -> usize {
        if self.latex {
            self.pretty_owner[pane.index()].get(i).copied().unwrap_or(i)
        } else {
            i
        }
    }

    /// Turns the LaTeX rendering on or off (rendering every pane when it comes on).
    pub fn set_latex(&mut self, on: bool) {
        self.latex = on;
        for pane in 0..3 {
            self.pretty[pane].clear();
            self.pretty_owner[pane].clear();
            if on {
                self.render_latex_from(pane, 0);
            }
        }
    }

    /// Renders the tail of pane `pane` again after a token arrived: from the last line break
    /// (constructs do not span lines), at most [`LATEX_TAIL`] tokens back, so a token costs the
    /// same however long the stream is.
    fn render_latex_tail(&mut self, pane: usize) {
        let n = self.cells[pane].len();
        let floor = n.saturating_sub(LATEX_TAIL).min(self.pretty[pane].len());
        let from = (floor..n.saturating_sub(1)).rev().find(|&i| self.cells[pane][i].newline).map_or(floor, |i| i + 1);
        self.render_latex_from(pane, from);
    }

    fn render_latex_from(&mut self, pane: usize, from: usize) {
        let p = Pane::ALL[pane];
        let mut texts = self.raw_texts(p);
        // While a pane is laid out again its records are ahead of its cells.
        texts.truncate(self.cells[pane].len());
        let from = from.min(texts.len()).min(self.pretty[pane].len());
        let rendered = latex::render(&texts[from..], from);
        let cells: Vec<TokenCell> = rendered
            .texts
            .iter()
            .zip(&self.cells[pane][from..])
            .map(|(text, raw)| {
                let shown = if text.is_empty() { TokenCell { text: String::new(), width: 0, ..TokenCell::new("") } } else { TokenCell::new(text) };
                // The flags (think, verification, line break) are the raw token's.
                TokenCell { text: shown.text, width: shown.width + u16::from(raw.forced), ..raw.clone() }
            })
            .collect();
        self.pretty[pane].truncate(from);
        self.pretty[pane].extend(cells);
        self.pretty_owner[pane].truncate(from);
        self.pretty_owner[pane].extend(rendered.owners);
    }

    /// Marks the self-verification phrase that the newest token of `pane` completes, if any.
    fn mark_verification(&mut self, pane: usize) {
        // A phrase spans a few tokens at most: the last eight hold any of the defaults.
        const WINDOW: usize = 8;
        let cells = &mut self.cells[pane];
        let first = cells.len().saturating_sub(WINDOW);
        let mut window = String::new();
        let mut starts = Vec::with_capacity(WINDOW);
        for c in &cells[first..] {
            starts.push(window.len());
            window.push_str(&c.text);
        }
        let new_from = starts.last().copied().unwrap_or(0);
        let Some((start, end)) = crate::markers::match_ending_in(&window, new_from, &self.phrases) else { return };
        for (i, &s) in starts.iter().enumerate() {
            let e = s + cells[first + i].text.len();
            if s < end && e > start {
                cells[first + i].verify = true;
            }
        }
        if let Some(last) = cells.last_mut() {
            last.verify_end = true;
            last.verifies_through += 1;
        }
    }

    /// Self-verification phrases in pane `pane`.
    pub fn verify_count(&self, pane: Pane) -> usize {
        self.cells[pane.index()].last().map_or(0, |c| c.verifies_through)
    }

    /// The first token of each self-verification phrase in pane `pane`, in order.
    pub fn verify_starts(&self, pane: Pane) -> Vec<usize> {
        let cells = &self.cells[pane.index()];
        (0..cells.len()).filter(|&i| cells[i].verify && (i == 0 || !cells[i - 1].verify || cells[i - 1].verify_end)).collect()
    }

    /// Sets which panes start inside a think segment (base, rft, guided) and lays their tokens
    /// out again.
    pub fn set_think_at_start(&mut self, opens: [bool; 3]) {
        self.think_at_start = opens;
        for pane in 0..3 {
            let texts: Vec<String> = match pane {
                0 => self.base.iter().map(|r| r.text.clone()).collect(),
                1 => self.rft.iter().map(|r| r.text.clone()).collect(),
                _ => self.guided.iter().map(|r| r.text.clone()).collect(),
            };
            self.cells[pane].clear();
            let forced: Vec<bool> = if pane == 2 { self.guided.iter().map(|r| r.forced).collect() } else { vec![false; texts.len()] };
            for (t, f) in texts.iter().zip(forced) {
                self.push_cell(pane, t, f);
            }
        }
    }

    /// Tokens inside think segments in pane `pane`.
    pub fn think_count(&self, pane: Pane) -> usize {
        self.cells[pane.index()].last().map_or(0, |c| c.thinks_through)
    }

    /// Adds a guided token; a record for an earlier step replaces the stream from there.
    pub fn push_guided(&mut self, r: GuidedRecord) {
        if r.step < self.guided.len() {
            self.guided.truncate(r.step);
            self.cells[2].truncate(r.step);
        }
        let (text, forced) = (r.text.clone(), r.forced);
        self.guided.push(r);
        self.push_cell(2, &text, forced);
        if self.redecoding.is_some_and(|(_, until)| self.guided.len() >= until) {
            self.redecoding = None;
        }
        if self.follow {
            self.cursor = self.guided.len() - 1;
        }
    }

    /// Replaces the guided stream with `kept` (after a change of α or a forced token).
    pub fn reset_guided(&mut self, kept: Vec<GuidedRecord>) {
        self.cells[2].clear();
        let cells: Vec<(String, bool)> = kept.iter().map(|r| (r.text.clone(), r.forced)).collect();
        self.guided = kept;
        for (text, forced) in &cells {
            self.push_cell(2, text, *forced);
        }
        if self.follow {
            self.cursor = self.guided.len().saturating_sub(1);
        }
        self.clamp_cursor();
    }

    /// Replaces kept records by their re-measured versions (a record past the stream's end, cut
    /// by a later change, is dropped).
    pub fn refresh_guided(&mut self, records: Vec<GuidedRecord>) {
        for r in records {
            if let Some(slot) = self.guided.get_mut(r.step) {
                if slot.token == r.token {
                    *slot = r;
                }
            }
        }
    }

    /// Guided records measured at an earlier α, not yet re-measured.
    pub fn stale_count(&self) -> usize {
        self.guided.iter().filter(|r| r.stale).count()
    }

    /// Empties every stream (a restart).
    pub fn clear_streams(&mut self) {
        self.base.clear();
        self.rft.clear();
        self.guided.clear();
        for c in &mut self.cells {
            c.clear();
        }
        self.cursor = 0;
        self.follow = true;
        self.candidate = 0;
        self.scroll = [None; 3];
        self.step = 0;
        self.tokens_per_second = 0.0;
    }

    /// Keeps the cursor on a token of the focused pane (or at 0 when it is empty) and the
    /// inspector candidate inside the top-k list.
    pub fn clamp_cursor(&mut self) {
        let longest = Pane::ALL.iter().map(|p| self.len(*p)).max().unwrap_or(0);
        self.cursor = self.cursor.min(longest.saturating_sub(1));
        let candidates = self.guided.get(self.cursor).map_or(0, |r| r.guided.top.len());
        self.candidate = self.candidate.min(candidates.saturating_sub(1));
    }

    pub fn set_status(&mut self, text: impl Into<String>) {
        self.status = Some(Status { text: text.into(), error: false });
    }

    pub fn set_error(&mut self, text: impl Into<String>) {
        self.status = Some(Status { text: text.into(), error: true });
    }

    /// How a pane's stream ended, once it has: the stop its last token carries, the final answer
    /// of its text, and whether that answer is right when `--answer` was given.
    pub fn ending(&self, pane: Pane) -> Option<Ending> {
        let (stop, texts): (Option<&Stop>, Vec<&str>) = match pane {
            Pane::Base => (self.base.last().and_then(|r| r.stop.as_ref()), self.base.iter().map(|r| r.text.as_str()).collect()),
            Pane::Rft => (self.rft.last().and_then(|r| r.stop.as_ref()), self.rft.iter().map(|r| r.text.as_str()).collect()),
            Pane::Guided => (self.guided.last().and_then(|r| r.stop.as_ref()), self.guided.iter().map(|r| r.text.as_str()).collect()),
        };
        let stop = stop?.clone();
        let text = texts.concat();
        let boxed = grade::extract_answer(&text);
        let last_line = || text.lines().rev().map(str::trim).find(|l| !l.is_empty()).map(str::to_string);
        let answer = boxed.clone().or_else(last_line);
        let correct = self.truth.as_deref().map(|truth| match &boxed {
            Some(_) => grade::grade(truth, &[], &text).correct,
            None => answer.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(truth) || grade::equivalent(Some(truth), a)),
        });
        let answer = answer.map(|a| TokenCell::printable(&a));
        Some(Ending { stop, answer, correct })
    }

    /// Whether something is under way that the user waits for: loading, decoding, re-decoding
    /// after a reset, or re-measuring kept records (the header's spinner turns meanwhile).
    pub fn busy(&self) -> bool {
        matches!(self.run, RunState::Loading | RunState::Running) || (!self.is_replay() && self.guided.iter().any(|r| r.stale))
    }

    /// The spinner's frame now.
    pub fn spinner(&self) -> char {
        SPINNER[(self.ticks % SPINNER.len() as u64) as usize]
    }

    /// The guided record under the cursor.
    pub fn selected_guided(&self) -> Option<&GuidedRecord> {
        self.guided.get(self.cursor)
    }

    /// The heat level in [0, 1] of token `i` of `pane` under the selected measure.
    pub fn level(&self, pane: Pane, i: usize) -> f32 {
        match pane {
            Pane::Base => self.base.get(i).map_or(0.0, |r| self.measure.stream_level(r)),
            Pane::Rft => self.rft.get(i).map_or(0.0, |r| self.measure.stream_level(r)),
            Pane::Guided => self.guided.get(i).map_or(0.0, |r| self.measure.guided_level(r)),
        }
    }

    /// The α in force, as every part of the UI prints it.
    pub fn alpha_label(&self) -> String {
        format!("α={}", alpha_text(self.alpha))
    }

    /// α as the header shows it: the value asked for with an ellipsis (`α=0.60…`) until the
    /// engine confirms it, then the α in force.
    pub fn header_alpha_label(&self) -> String {
        match self.pending_alpha {
            Some(a) => format!("α={}…", alpha_text(a)),
            None => self.alpha_label(),
        }
    }
}

/// α as the UI prints it: two decimals (`0.50`), or every digit it has when it is not on a
/// hundredth (`0.735`, typed with `a`), so the value shown is the value in force.
pub fn alpha_text(a: f32) -> String {
    let short = format!("{a:.2}");
    if short.parse::<f32>().is_ok_and(|s| s == a) {
        short
    } else {
        format!("{a}")
    }
}
