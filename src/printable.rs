//! Model text made safe for a terminal: every front end that shows decoded tokens (the UI's
//! panes and inspector, `run`'s plain output) escapes them here, one way. A line break stays a
//! line break (the UI marks it `↵`), a carriage return is dropped, a tab is `→` and any other
//! control character (escape sequences, backspace, bell, C1 controls) is `·`, so model text can
//! never move the cursor, recolour or retitle the terminal.

/// What one character of model text becomes on screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// Printed as it is.
    Char(char),
    /// A line break.
    Newline,
    /// Nothing (a carriage return: the line break that follows it is kept).
    Dropped,
}

/// How `c` is shown; see the module docs.
pub fn shown(c: char) -> Shown {
    match c {
        '\n' => Shown::Newline,
        '\r' => Shown::Dropped,
        '\t' => Shown::Char('→'),
        c if c.is_control() => Shown::Char('·'),
        c => Shown::Char(c),
    }
}

/// Multi-line text for a terminal: line breaks kept, every other control character escaped as
/// [`shown`] says (what `run` prints).
pub fn terminal_text(raw: &str) -> String {
    raw.chars()
        .filter_map(|c| match shown(c) {
            Shown::Char(c) => Some(c),
            Shown::Newline => Some('\n'),
            Shown::Dropped => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_line_breaks_kept() {
        assert_eq!(terminal_text("a\x1b[31mred\x07\r\nb\tc\u{8}\u{9b}"), "a·[31mred·\nb→c··");
        assert_eq!(terminal_text("plain – ünïcode ½"), "plain – ünïcode ½");
    }
}
