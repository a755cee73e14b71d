//! The input line's editor (question `e`, image path `o`, α `a`, search `/`, lookup `t`): a
//! cursor, word moves and deletes, history per input, and path completion for `o`.
//!
//! Hand-written rather than taken from `tui-input`: that crate gives cursor moves and deletes,
//! but neither history nor completion, and a prefilled value that the first typed character
//! replaces; all three would have been built on top of it, and its crossterm backend is tied to
//! a crossterm version of its own. What is here is a few string operations on char boundaries.
//!
//! A prefilled value (the question, the image path) starts *selected*, as in a dialog box: the
//! first typed character or paste replaces it, Backspace or Delete clears it, and any movement
//! (←, →, Home, End) keeps it and puts the cursor there, so that it can be edited. Keys:
//! ← → (Ctrl-B / Ctrl-F) a character, Ctrl-← / Ctrl-→ (Alt-B / Alt-F) a word, Home / Ctrl-A and
//! End / Ctrl-E the ends; Backspace and Delete (Ctrl-D) a character, Ctrl-W the word before the
//! cursor (up to a space), Alt-Backspace the word before the cursor (up to a space or
//! punctuation such as `/`), Ctrl-U everything before the cursor, Ctrl-K everything after; ↑ / ↓
//! earlier and later entries of the same input (this session's, newest last); Tab completes a
//! path (image input only).
//!
//! Completion never lists a directory on the UI thread: Tab asks for a listing
//! ([`super::update::Effect::CompletePath`]), a thread lists at most [`LISTING_LIMIT`] entries and
//! answers with [`Completion`]; an answer for text that has changed since is dropped.

use std::path::Path;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Entries a completion reads from one directory at most: a huge directory answers with what
/// it has so far, and says so.
pub const LISTING_LIMIT: usize = 2000;

/// The editable text and its cursor.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Editor {
    pub text: String,
    /// Byte offset of the cursor, on a char boundary.
    pub cursor: usize,
    /// The text is a prefilled value, still selected (see the module docs).
    pub selected: bool,
    /// The history entry shown (index into the input's history), while browsing it.
    pub browsing: Option<usize>,
    /// What was typed before browsing the history started (↓ past the newest brings it back).
    pub draft: String,
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

fn is_word_char(c: char, stop_at_punctuation: bool) -> bool {
    !(c.is_whitespace() || (stop_at_punctuation && !c.is_alphanumeric() && c != '_'))
}

impl Editor {
    /// An empty editor.
    pub fn empty() -> Editor {
        Editor::default()
    }

    /// An editor holding a prefilled value, selected, the cursor at its end.
    pub fn prefilled(text: String) -> Editor {
        let selected = !text.is_empty();
        Editor { cursor: text.len(), text, selected, ..Editor::default() }
    }

    fn take_selection(&mut self) {
        if self.selected {
            self.text.clear();
            self.cursor = 0;
            self.selected = false;
        }
    }

    /// Inserts text at the cursor (a typed character or a paste; replaces a selected prefill).
    pub fn insert(&mut self, s: &str) {
        self.take_selection();
        self.text.insert_str(self.cursor, s);
        self.cursor += s.len();
        self.browsing = None;
    }

    fn prev_boundary(&self, at: usize) -> usize {
        self.text[..at].char_indices().next_back().map_or(0, |(i, _)| i)
    }

    fn next_boundary(&self, at: usize) -> usize {
        self.text[at..].chars().next().map_or(at, |c| at + c.len_utf8())
    }

    /// The start of the word before `at`: spaces skipped, then word characters.
    fn word_start(&self, at: usize, punctuation: bool) -> usize {
        let before = &self.text[..at];
        let mut i = at;
        let mut chars = before.char_indices().rev().peekable();
        while let Some(&(j, c)) = chars.peek() {
            if is_word_char(c, punctuation) {
                break;
            }
            i = j;
            chars.next();
        }
        // A run of separators with no word before it (`a //`) is deleted as the word.
        let mut any = false;
        for (j, c) in chars {
            if !is_word_char(c, punctuation) {
                break;
            }
            i = j;
            any = true;
        }
        if !any && punctuation && i == at {
            return self.prev_boundary(at);
        }
        i
    }

    /// The end of the word after `at`.
    fn word_end(&self, at: usize) -> usize {
        let mut i = at;
        let mut seen = false;
        for (j, c) in self.text[at..].char_indices() {
            let word = is_word_char(c, false);
            if seen && !word {
                return at + j;
            }
            seen |= word;
            i = at + j + c.len_utf8();
        }
        i
    }

    fn delete(&mut self, from: usize, to: usize) {
        self.text.replace_range(from..to, "");
        self.cursor = from;
        self.browsing = None;
    }

    /// Applies an editing key; `history` is this input's earlier entries, oldest first.
    pub fn key(&mut self, key: &KeyEvent, history: &[String]) -> Edit {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        // Movement keeps a selected prefill (and ends the selection); deletes take it.
        let moving = matches!(key.code, KeyCode::Left | KeyCode::Right | KeyCode::Home | KeyCode::End)
            || (ctrl && matches!(key.code, KeyCode::Char('a' | 'e' | 'b' | 'f')))
            || (alt && matches!(key.code, KeyCode::Char('b' | 'f')));
        if moving {
            self.selected = false;
        }
        let deleting = matches!(key.code, KeyCode::Backspace | KeyCode::Delete) || (ctrl && matches!(key.code, KeyCode::Char('w' | 'u' | 'k' | 'd' | 'h')));
        if deleting && self.selected {
            self.take_selection();
            return Edit::Changed;
        }
        match key.code {
            KeyCode::Left if ctrl || alt => self.cursor = self.word_start(self.cursor, false),
            KeyCode::Right if ctrl || alt => self.cursor = self.word_end(self.cursor),
            KeyCode::Char('b') if alt => self.cursor = self.word_start(self.cursor, false),
            KeyCode::Char('f') if alt => self.cursor = self.word_end(self.cursor),
            KeyCode::Left | KeyCode::Char('b') if key.code == KeyCode::Left || ctrl => self.cursor = self.prev_boundary(self.cursor),
            KeyCode::Right | KeyCode::Char('f') if key.code == KeyCode::Right || ctrl => self.cursor = self.next_boundary(self.cursor),
            KeyCode::Home => self.cursor = 0,
            KeyCode::Char('a') if ctrl => self.cursor = 0,
            KeyCode::End => self.cursor = self.text.len(),
            KeyCode::Char('e') if ctrl => self.cursor = self.text.len(),
            KeyCode::Backspace if alt => self.delete(self.word_start(self.cursor, true), self.cursor),
            KeyCode::Backspace => self.delete(self.prev_boundary(self.cursor), self.cursor),
            KeyCode::Char('h') if ctrl => self.delete(self.prev_boundary(self.cursor), self.cursor),
            KeyCode::Delete => self.delete(self.cursor, self.next_boundary(self.cursor)),
            KeyCode::Char('d') if ctrl => self.delete(self.cursor, self.next_boundary(self.cursor)),
            KeyCode::Char('w') if ctrl => self.delete(self.word_start(self.cursor, false), self.cursor),
            KeyCode::Char('u') if ctrl => self.delete(0, self.cursor),
            KeyCode::Char('k') if ctrl => {
                let end = self.text.len();
                self.delete(self.cursor, end)
            }
            KeyCode::Up => self.history_back(history),
            KeyCode::Down => self.history_forward(history),
            KeyCode::Tab => return Edit::Complete,
            // Other control or Alt chords type nothing.
            KeyCode::Char(_) if ctrl || alt => {}
            KeyCode::Char(c) => self.insert(c.encode_utf8(&mut [0; 4])),
            _ => return Edit::NotMine,
        }
        Edit::Changed
    }

    fn show(&mut self, text: String) {
        self.cursor = text.len();
        self.text = text;
        self.selected = false;
    }

    fn history_back(&mut self, history: &[String]) {
        let at = match self.browsing {
            Some(0) => return,
            Some(i) => i - 1,
            None if history.is_empty() => return,
            None => {
                self.draft = if self.selected { String::new() } else { self.text.clone() };
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
        self.text.split_at(self.cursor)
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
