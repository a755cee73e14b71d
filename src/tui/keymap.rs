//! The key bindings, as data: one [`Binding`] per action in [`BINDINGS`], with the keys that
//! trigger it, the [`Action`] it stands for, the line the help overlay shows and, for the most
//! used ones, a short hint for the bottom line with a priority. `update` looks a key up here and
//! then matches on the action; the help overlay and the hint line draw from the same table, so a
//! binding cannot be handled without being listed, or listed without being handled.
//!
//! The input line (question, image path, α, search, lookup) is a line editor of its own
//! ([`super::line_edit`]) and is not here.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    AlphaDown,
    AlphaUp,
    AlphaDownFine,
    AlphaUpFine,
    TypeAlpha,
    NextMeasure,
    PreviousToken,
    NextToken,
    LineUp,
    LineDown,
    FirstToken,
    FollowNewest,
    NextVerification,
    PreviousVerification,
    NextPane,
    NextCandidate,
    PreviousCandidate,
    Search,
    NextMatch,
    PreviousMatch,
    NextFlip,
    PreviousFlip,
    NextSpike,
    PreviousSpike,
    LookUp,
    ToggleLatex,
    Force,
    TogglePause,
    Restart,
    EditQuestion,
    OpenImage,
    ExportTrace,
    ClearStatus,
    Help,
    Quit,
}

/// One key: a code and the modifiers it needs (Shift aside, see [`Key::matches`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub modifiers: KeyModifiers,
}

impl Key {
    pub const fn plain(code: KeyCode) -> Key {
        Key { code, modifiers: KeyModifiers::NONE }
    }

    pub const fn char(c: char) -> Key {
        Key::plain(KeyCode::Char(c))
    }

    pub const fn ctrl(c: char) -> Key {
        Key { code: KeyCode::Char(c), modifiers: KeyModifiers::CONTROL }
    }

    /// Whether a key press is this key. Shift is ignored: it is already in the character (`G`,
    /// `?`, `}`), and terminals differ on whether they report it too.
    pub fn matches(&self, ev: &KeyEvent) -> bool {
        ev.code == self.code && ev.modifiers.difference(KeyModifiers::SHIFT) == self.modifiers.difference(KeyModifiers::SHIFT)
    }

    /// The key as the help overlay names it (`Enter`, `space`, `Ctrl-C`, `←`).
    pub fn label(&self) -> String {
        let name = match self.code {
            KeyCode::Char(' ') => "space".to_string(),
            KeyCode::Char(c) if self.modifiers.contains(KeyModifiers::CONTROL) => c.to_uppercase().to_string(),
            KeyCode::Char(c) => c.to_string(),
            KeyCode::Enter => "Enter".into(),
            KeyCode::Tab => "Tab".into(),
            KeyCode::Esc => "Esc".into(),
            KeyCode::Left => "←".into(),
            KeyCode::Right => "→".into(),
            KeyCode::Up => "↑".into(),
            KeyCode::Down => "↓".into(),
            KeyCode::Home => "Home".into(),
            KeyCode::End => "End".into(),
            other => other.to_string(),
        };
        if self.modifiers.contains(KeyModifiers::CONTROL) {
            format!("Ctrl-{name}")
        } else {
            name
        }
    }

    /// The key as the hint line names it: a single glyph where there is one.
    pub fn short_label(&self) -> String {
        match (self.code, self.modifiers) {
            (KeyCode::Enter, KeyModifiers::NONE) => "⏎".into(),
            (KeyCode::Char(' '), KeyModifiers::NONE) => "␣".into(),
            _ => self.label(),
        }
    }
}

/// A binding's place on the hint line: its label and how much it matters when the line is too
/// narrow for every hint (1 is kept longest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hint {
    pub label: &'static str,
    pub priority: u8,
}

/// One action with its keys, its help line and its hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    /// The first key is the one the hint line shows.
    pub keys: &'static [Key],
    pub action: Action,
    pub help: &'static str,
    /// Bindings next to each other with the same hint label share one hint (`[ ] α ±0.1`).
    pub hint: Option<Hint>,
}

impl Binding {
    /// Every key of the binding, as the help overlay lists them (`← / h`).
    pub fn keys_label(&self) -> String {
        self.keys.iter().map(Key::label).collect::<Vec<_>>().join(" / ")
    }
}

const fn hint(label: &'static str, priority: u8) -> Option<Hint> {
    Some(Hint { label, priority })
}

/// Every binding, in the order the help overlay lists them and the hint line shows them.
pub const BINDINGS: &[Binding] = &[
    Binding {
        keys: &[Key::char('[')],
        action: Action::AlphaDown,
        help: "lower α by 0.10 (the engine re-decodes from the first token that changes)",
        hint: hint("α ±0.1", 2),
    },
    Binding { keys: &[Key::char(']')], action: Action::AlphaUp, help: "raise α by 0.10", hint: hint("α ±0.1", 2) },
    Binding { keys: &[Key::char('{')], action: Action::AlphaDownFine, help: "lower α by 0.01", hint: hint("±0.01", 6) },
    Binding { keys: &[Key::char('}')], action: Action::AlphaUpFine, help: "raise α by 0.01", hint: hint("±0.01", 6) },
    Binding {
        keys: &[Key::char('a')],
        action: Action::TypeAlpha,
        help: "type an exact α (Enter sets it, Esc cancels)",
        hint: hint("set α", 6),
    },
    Binding {
        keys: &[Key::char('m')],
        action: Action::NextMeasure,
        help: "next measure for the heatmap and the plot",
        hint: hint("measure", 3),
    },
    Binding {
        keys: &[Key::plain(KeyCode::Left), Key::char('h')],
        action: Action::PreviousToken,
        help: "previous token",
        hint: hint("move", 4),
    },
    Binding { keys: &[Key::plain(KeyCode::Right), Key::char('l')], action: Action::NextToken, help: "next token", hint: hint("move", 4) },
    Binding {
        keys: &[Key::plain(KeyCode::Up), Key::char('k')],
        action: Action::LineUp,
        help: "a line up in the focused pane",
        hint: hint("move", 4),
    },
    Binding {
        keys: &[Key::plain(KeyCode::Down), Key::char('j')],
        action: Action::LineDown,
        help: "a line down in the focused pane",
        hint: hint("move", 4),
    },
    Binding { keys: &[Key::char('g'), Key::plain(KeyCode::Home)], action: Action::FirstToken, help: "first token", hint: None },
    Binding {
        keys: &[Key::char('v')],
        action: Action::NextVerification,
        help: "next self-verification phrase in the focused pane (wait, verify, check, let me, actually, …: verification_phrases in the config file)",
        hint: None,
    },
    Binding { keys: &[Key::char('V')], action: Action::PreviousVerification, help: "previous self-verification phrase", hint: None },
    Binding {
        keys: &[Key::char('G'), Key::plain(KeyCode::End)],
        action: Action::FollowNewest,
        help: "follow the newest token again",
        hint: None,
    },
    Binding {
        keys: &[Key::plain(KeyCode::Tab)],
        action: Action::NextPane,
        help: "focus the next pane (base, RFT-small, guided)",
        hint: hint("pane", 5),
    },
    Binding {
        keys: &[Key::char('c')],
        action: Action::NextCandidate,
        help: "next guided candidate in the inspector",
        hint: hint("candidate", 4),
    },
    Binding {
        keys: &[Key::char('C')],
        action: Action::PreviousCandidate,
        help: "previous guided candidate in the inspector",
        hint: hint("candidate", 4),
    },
    Binding {
        keys: &[Key::char('/')],
        action: Action::Search,
        help: "search the three streams (the focused pane first; a capital letter makes it case-sensitive; Esc clears)",
        hint: hint("search", 5),
    },
    Binding { keys: &[Key::char('n')], action: Action::NextMatch, help: "next match of the search", hint: None },
    Binding { keys: &[Key::char('N')], action: Action::PreviousMatch, help: "previous match of the search", hint: None },
    Binding {
        keys: &[Key::char('f')],
        action: Action::NextFlip,
        help: "next flip: a guided token where guidance changed the base model's choice",
        hint: None,
    },
    Binding { keys: &[Key::char('F')], action: Action::PreviousFlip, help: "previous flip", hint: None },
    Binding {
        keys: &[Key::char('s')],
        action: Action::NextSpike,
        help: "next spike in the focused pane: a token whose measure is above the stream's mean + 2σ",
        hint: None,
    },
    Binding { keys: &[Key::char('S')], action: Action::PreviousSpike, help: "previous spike", hint: None },
    Binding {
        keys: &[Key::char('t')],
        action: Action::LookUp,
        help: "look a token or string up at the selected step: its ids, probability and rank under each model",
        hint: hint("lookup", 6),
    },
    Binding {
        keys: &[Key::char('\\')],
        action: Action::ToggleLatex,
        help: "show LaTeX readably in the panes (\\frac{1}{2} → ½, \\times → ×, ^2 → ²; the inspector keeps the raw tokens)",
        hint: None,
    },
    Binding {
        keys: &[Key::plain(KeyCode::Enter)],
        action: Action::Force,
        help: "force the selected candidate at the selected step (what-if)",
        hint: hint("force", 3),
    },
    Binding { keys: &[Key::char(' ')], action: Action::TogglePause, help: "pause / resume decoding", hint: hint("pause", 3) },
    Binding { keys: &[Key::char('r')], action: Action::Restart, help: "restart from the prompt", hint: hint("restart", 7) },
    Binding {
        keys: &[Key::char('e')],
        action: Action::EditQuestion,
        help: "edit the question (Enter restarts with it, Esc cancels)",
        hint: hint("question", 7),
    },
    Binding {
        keys: &[Key::char('o')],
        action: Action::OpenImage,
        help: "open another image (Enter restarts with it, Esc cancels)",
        hint: hint("image", 7),
    },
    Binding {
        keys: &[Key::char('x')],
        action: Action::ExportTrace,
        help: "export the trace (JSON Lines; the path is shown below)",
        hint: hint("export", 7),
    },
    Binding {
        keys: &[Key::plain(KeyCode::Esc)],
        action: Action::ClearStatus,
        help: "clear the status line, the search's highlights and the lookup",
        hint: None,
    },
    Binding {
        keys: &[Key::char('?')],
        action: Action::Help,
        help: "this help (↑ ↓ scroll it, any other key closes it)",
        hint: hint("help", 1),
    },
    Binding { keys: &[Key::char('q'), Key::ctrl('c')], action: Action::Quit, help: "quit", hint: hint("quit", 1) },
];

/// What the mouse does, for the help overlay (the mouse has no bindings to look up).
pub const MOUSE: &[(&str, &str)] = &[("click", "select a token"), ("wheel", "scroll the pane under the mouse")];

/// The binding a key press triggers, if any.
pub fn binding_for(ev: &KeyEvent) -> Option<&'static Binding> {
    BINDINGS.iter().find(|b| b.keys.iter().any(|k| k.matches(ev)))
}

/// The action a key press asks for, if any.
pub fn action_for(ev: &KeyEvent) -> Option<Action> {
    binding_for(ev).map(|b| b.action)
}

/// One item of the hint line: neighbouring bindings with the same hint merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HintItem {
    /// The first key of each merged binding (`[ ]`, `←→↑↓`).
    pub keys: String,
    pub label: &'static str,
    pub priority: u8,
}

/// The hint line's items, in table order.
pub fn hint_items() -> Vec<HintItem> {
    let mut groups: Vec<(Vec<String>, Hint)> = Vec::new();
    for b in BINDINGS {
        let Some(h) = b.hint else { continue };
        let key = b.keys.first().map(Key::short_label).unwrap_or_default();
        match groups.last_mut() {
            Some((keys, last)) if last.label == h.label => {
                keys.push(key);
                last.priority = last.priority.min(h.priority);
            }
            _ => groups.push((vec![key], h)),
        }
    }
    groups
        .into_iter()
        .map(|(keys, h)| {
            // Arrows read as one word (`←→↑↓`); letters and brackets need a space (`[ ]`, `n p`).
            let glyphs = keys.iter().all(|k| k.chars().count() == 1 && !k.is_ascii());
            HintItem { keys: keys.join(if glyphs { "" } else { " " }), label: h.label, priority: h.priority }
        })
        .collect()
}

/// The hint items that fit in `width` cells, where each takes `cost(item)` cells: the most
/// important first, the least important dropped first; shown in table order.
pub fn hints_that_fit(width: usize, cost: impl Fn(&HintItem) -> usize) -> Vec<HintItem> {
    let items = hint_items();
    let mut order: Vec<usize> = (0..items.len()).collect();
    // Stable: among equal priorities, the earlier item stays longer.
    order.sort_by_key(|&i| items[i].priority);
    let mut used = 0;
    let mut keep = vec![false; items.len()];
    for i in order {
        let c = cost(&items[i]);
        if used + c > width {
            break;
        }
        used += c;
        keep[i] = true;
    }
    items.into_iter().zip(keep).filter_map(|(item, k)| k.then_some(item)).collect()
}
