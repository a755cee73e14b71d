//! The input line's editor (question `e`, image path `o`, α `a`, search `/`, lookup `t`): a
//! cursor, word moves and deletes, history per input, and path completion for `o`.
//!
//! The editing itself (cursor moves, word moves and deletes, kill and yank) is `tui-input`'s
//! [`tui_input::Input`], driven through its crossterm key mapping. What is the project's own sits
//! on top: a prefilled value that starts selected, history per input, path completion, and the
//! Alt chords most terminals send as ALT (the crate's mapping reads them as META only).
//!
//! A prefilled value (the question, the image path) starts *selected*, as in a dialog box: the
//! first typed character or paste replaces it, Backspace or Delete clears it, and any movement
//! (←, →, Home, End) keeps it and puts the cursor there, so that it can be edited. Keys:
//! ← → (Ctrl-B / Ctrl-F) a character, Ctrl-← / Ctrl-→ (Alt-B / Alt-F) a word, Home / Ctrl-A and
//! End / Ctrl-E the ends; Backspace (Ctrl-H) and Delete a character, Ctrl-W or Alt-Backspace the
//! word before the cursor, Ctrl-Delete (Alt-D) the word after it, Ctrl-U the whole line, Ctrl-K
//! everything after the cursor, Ctrl-Y puts back what the last delete took; ↑ / ↓ earlier and
//! later entries of the same input (this session's, newest last); Tab completes a path (image
//! input only).
//!
//! Completion never lists a directory on the UI thread: Tab asks for a listing
//! ([`super::update::Effect::CompletePath`]), a thread lists at most [`LISTING_LIMIT`] entries and
//! answers with [`Completion`]; an answer for text that has changed since is dropped.

use std::path::Path;

use ratatui::crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use tui_input::backend::crossterm::to_input_request;
use tui_input::{Input, InputRequest};

/// Entries a completion reads from one directory at most: a huge directory answers with what
/// it has so far, and says so.
pub const LISTING_LIMIT: usize = 2000;

/// The editable text and its cursor.
#[derive(Debug, Clone, Default)]
pub struct Editor {
    input: Input,
    /// The text is a prefilled value, still selected (see the module docs).
    pub selected: bool,
    /// The history entry shown (index into the input's history), while browsing it.
    pub browsing: Option<usize>,
    /// What was typed before browsing the history started (↓ past the newest brings it back).
    pub draft: String,
}

impl PartialEq for Editor {
    fn eq(&self, other: &Editor) -> bool {
        (self.text(), self.input.cursor(), self.selected, self.browsing, &self.draft)
            == (other.text(), other.input.cursor(), other.selected, other.browsing, &other.draft)
    }
}

/// What a key did to the editor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// The text or cursor changed (or nothing happened).
    Changed,
    /// Tab: complete the path typed so far.
    Complete,
    /// Not an editing key (Enter, Esc, Ctrl-C are the caller's).
    NotMine,
}

impl Editor {
    /// An empty editor.
    pub fn empty() -> Editor {
        Editor::default()
    }

    /// An editor holding `text`, not selected, the cursor at its end.
    pub fn with_text(text: String) -> Editor {
        Editor { input: Input::new(text), ..Editor::default() }
    }

    /// An editor holding a prefilled value, selected, the cursor at its end.
    pub fn prefilled(text: String) -> Editor {
        let selected = !text.is_empty();
        Editor { selected, ..Editor::with_text(text) }
    }

    /// What has been typed.
    pub fn text(&self) -> &str {
        self.input.value()
    }

    /// The cursor, in characters from the start.
    pub fn cursor(&self) -> usize {
        self.input.cursor()
    }

    /// Ends a selection, the text kept and the cursor at its end (before a completion).
    pub fn keep(&mut self) {
        self.selected = false;
        self.input.handle(InputRequest::GoToEnd);
    }

    fn take_selection(&mut self) {
        if self.selected {
            self.input.reset();
            self.selected = false;
        }
    }

    /// Inserts text at the cursor (a typed character or a paste; replaces a selected prefill).
    pub fn insert(&mut self, s: &str) {
        self.take_selection();
        for c in s.chars() {
            self.input.handle(InputRequest::InsertChar(c));
        }
        self.browsing = None;
    }

    /// Applies an editing key; `history` is this input's earlier entries, oldest first.
    pub fn key(&mut self, key: &KeyEvent, history: &[String]) -> Edit {
        match key.code {
            KeyCode::Up => {
                self.history_back(history);
                return Edit::Changed;
            }
            KeyCode::Down => {
                self.history_forward(history);
                return Edit::Changed;
            }
            KeyCode::Tab => return Edit::Complete,
            KeyCode::Enter | KeyCode::Esc => return Edit::NotMine,
            _ => {}
        }
        let Some(request) = request_for(key) else {
            // Other control or Alt chords type nothing.
            let chord = key.modifiers.intersects(KeyModifiers::CONTROL | KeyModifiers::ALT | KeyModifiers::META);
            return if chord && matches!(key.code, KeyCode::Char(_)) { Edit::Changed } else { Edit::NotMine };
        };
        match request {
            InputRequest::InsertChar(c) => {
                self.insert(c.encode_utf8(&mut [0; 4]));
                return Edit::Changed;
            }
            // Movement keeps a selected prefill (and ends the selection); deletes take it.
            InputRequest::GoToPrevChar
            | InputRequest::GoToNextChar
            | InputRequest::GoToPrevWord
            | InputRequest::GoToNextWord
            | InputRequest::GoToStart
            | InputRequest::GoToEnd
            | InputRequest::SetCursor(_) => self.selected = false,
            InputRequest::Yank => self.take_selection(),
            _ if self.selected => {
                self.take_selection();
                return Edit::Changed;
            }
            _ => {}
        }
        if self.input.handle(request).is_some_and(|c| c.value) {
            self.browsing = None;
        }
        Edit::Changed
    }

    fn show(&mut self, text: String) {
        self.input = Input::new(text);
        self.selected = false;
    }

    fn history_back(&mut self, history: &[String]) {
        let at = match self.browsing {
            Some(0) => return,
            Some(i) => i - 1,
            None if history.is_empty() => return,
            None => {
                self.draft = if self.selected { String::new() } else { self.text().to_string() };
                history.len() - 1
            }
        };
        self.browsing = Some(at);
        self.show(history[at].clone());
    }

    fn history_forward(&mut self, history: &[String]) {
        let Some(i) = self.browsing else { return };
        if i + 1 < history.len() {
            self.browsing = Some(i + 1);
            self.show(history[i + 1].clone());
        } else {
            self.browsing = None;
            let draft = std::mem::take(&mut self.draft);
            self.show(draft);
        }
    }

    /// The text before the cursor and after it, as the status line draws them.
    pub fn split(&self) -> (&str, &str) {
        let text = self.text();
        let at = text.char_indices().nth(self.cursor()).map_or(text.len(), |(i, _)| i);
        text.split_at(at)
    }
}

/// The request `tui-input` makes of a key, with the Alt chords it reads as META only.
fn request_for(key: &KeyEvent) -> Option<InputRequest> {
    let alt = key.modifiers == KeyModifiers::ALT;
    match key.code {
        KeyCode::Char('b') if alt => Some(InputRequest::GoToPrevWord),
        KeyCode::Char('f') if alt => Some(InputRequest::GoToNextWord),
        KeyCode::Char('d') if alt => Some(InputRequest::DeleteNextWord),
        KeyCode::Left if alt => Some(InputRequest::GoToPrevWord),
        KeyCode::Right if alt => Some(InputRequest::GoToNextWord),
        _ => to_input_request(&Event::Key(KeyEvent { kind: KeyEventKind::Press, ..*key })),
    }
}

/// Adds an entry to an input's history (not twice in a row, not empty).
pub fn remember(history: &mut Vec<String>, entry: &str) {
    let entry = entry.trim();
    if !entry.is_empty() && history.last().is_none_or(|last| last != entry) {
        history.push(entry.to_string());
    }
}

/// A completion's answer for the text `typed`.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub typed: String,
    /// The names in the directory that start with what was typed after the last `/`
    /// (directories end with `/`), sorted.
    pub candidates: Vec<String>,
    /// The directory had more entries than [`LISTING_LIMIT`]: the list is partial.
    pub truncated: bool,
    /// The directory could not be read: why.
    pub error: Option<String>,
}

/// Splits a typed path into the directory to list (as typed) and the start of a name.
pub fn split_path(typed: &str) -> (&str, &str) {
    match typed.rfind('/') {
        Some(i) => (&typed[..=i], &typed[i + 1..]),
        None => ("", typed),
    }
}

/// Lists `dir` (the typed directory with `~` expanded; empty: the current directory) for names
/// starting with `start`, reading at most [`LISTING_LIMIT`] entries. Blocking: run it off the
/// UI thread.
pub fn list_candidates(typed: &str, dir: &Path) -> Completion {
    let (_, start) = split_path(typed);
    let mut candidates = Vec::new();
    let mut truncated = false;
    let read = if dir.as_os_str().is_empty() { std::fs::read_dir(".") } else { std::fs::read_dir(dir) };
    let entries = match read {
        Ok(e) => e,
        Err(e) => {
            return Completion { typed: typed.to_string(), candidates, truncated, error: Some(format!("cannot list {}: {e}", dir.display())) }
        }
    };
    for (n, entry) in entries.enumerate() {
        if n >= LISTING_LIMIT {
            truncated = true;
            break;
        }
        let Ok(entry) = entry else { continue };
        let name = entry.file_name().to_string_lossy().into_owned();
        // Hidden files only when asked for with a dot.
        if !name.starts_with(start) || (name.starts_with('.') && !start.starts_with('.')) {
            continue;
        }
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir()) || entry.path().is_dir();
        candidates.push(if is_dir { format!("{name}/") } else { name });
    }
    candidates.sort();
    Completion { typed: typed.to_string(), candidates, truncated, error: None }
}

/// The longest common prefix of the candidates (on char boundaries).
pub fn common_prefix(candidates: &[String]) -> String {
    let Some(first) = candidates.first() else { return String::new() };
    let mut end = first.len();
    for c in &candidates[1..] {
        end = end.min(first.char_indices().zip(c.chars()).take_while(|((_, a), b)| a == b).last().map_or(0, |((i, a), _)| i + a.len_utf8()));
    }
    first[..end].to_string()
}
