//! The help overlay (`?`): every binding of the keymap with its keys, the mouse, a legend of the
//! glyphs the panes draw tokens with, and what the measures mean. One column, long lines wrapped
//! (nothing is cut); when it is taller than the terminal, ↑ / ↓ (k / j) scroll it and its
//! bottom border says which lines are shown.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Widget};

use crate::tui::keymap::{BINDINGS, MOUSE};

/// The overlay, scrolled down by `scroll` lines (clamped to its length).
pub struct Help {
    pub scroll: usize,
}

const MEASURES: &str = "Guided pane: KL(guided‖base), JS(guided,base), KL(rft‖small), the guided entropy, the rank of the \
chosen token under the base (log scale; 1 = the base's own choice) or whether guidance flipped the base's argmax. \
Base and RFT panes: their own entropy under \"entropy\", their own −log p of the chosen token otherwise.";

/// What the panes draw in place of what cannot be shown, and how they mark tokens.
pub const GLYPHS: &[(&str, &str)] = &[
    ("↵", "a line break (the line ends after it)"),
    ("→", "a tab"),
    ("·", "another control character (escape, backspace, …)"),
    ("∅", "an empty token"),
    ("�", "part of a character split over several tokens"),
    ("…", "a token too long for a pane (the inspector shows it whole)"),
    ("underline", "a forced token (Enter)"),
    ("dim", "a kept token re-measured at a new α"),
    ("white", "the selected step"),
];

/// Every row of the overlay: (keys, what they do), in the keymap's order, then the mouse.
pub fn rows() -> Vec<(String, &'static str)> {
    BINDINGS.iter().map(|b| (b.keys_label(), b.help)).chain(MOUSE.iter().map(|(k, what)| (k.to_string(), *what))).collect()
}

fn cells(s: &str) -> usize {
    Span::raw(s).width()
}

/// Words of `text` in lines of at most `width` cells (a word longer than that is split).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = vec![String::new()];
    for word in text.split(' ') {
        let last = lines.last_mut().expect("one line");
        let sep = usize::from(!last.is_empty());
        if cells(last) + sep + cells(word) <= width {
            if sep == 1 {
                last.push(' ');
            }
            last.push_str(word);
            continue;
        }
        let mut rest = word.to_string();
        loop {
            let mut head = String::new();
            for c in rest.chars() {
                if cells(&head) + cells(c.encode_utf8(&mut [0; 4])) > width {
                    break;
                }
                head.push(c);
            }
            let taken = head.len();
            lines.push(head);
            rest = rest[taken..].to_string();
            if rest.is_empty() || taken == 0 {
                break;
            }
        }
    }
    if lines.first().is_some_and(String::is_empty) {
        lines.remove(0);
    }
    lines
}

/// `(keys, text)` rows as lines: the keys right-aligned in a column, the text wrapped beside.
fn table(rows: &[(String, &str)], key_width: usize, width: usize) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    let text_width = width.saturating_sub(key_width + 3).max(8);
    for (keys, what) in rows {
        for (i, part) in wrap(what, text_width).into_iter().enumerate() {
            let key = if i == 0 { keys.as_str() } else { "" };
            out.push(Line::from(vec![
                Span::styled(format!(" {key:>key_width$}  "), Style::default().fg(Color::Cyan).bold()),
                Span::raw(part),
            ]));
        }
    }
    out
}

/// The whole overlay's text at `width` cells inside its border.
pub fn lines(width: usize) -> Vec<Line<'static>> {
    let rows = rows();
    let key_width = rows.iter().map(|(k, _)| cells(k)).max().unwrap_or(0);
    let heading = |s: &str| Line::from(Span::styled(s.to_string(), Style::default().fg(Color::Yellow).bold()));
    let mut out = table(&rows, key_width, width);
    out.push(Line::default());
    out.push(heading(" Token glyphs"));
    let glyphs: Vec<(String, &str)> = GLYPHS.iter().map(|(g, what)| (g.to_string(), *what)).collect();
    out.extend(table(&glyphs, key_width, width));
    out.push(Line::default());
    out.push(heading(" Measures"));
    for part in wrap(MEASURES, width.saturating_sub(1)) {
        out.push(Line::from(Span::styled(format!(" {part}"), Style::default().fg(Color::Gray))));
    }
    out
}

/// Where the overlay goes on a screen of `area`.
pub fn popup(area: Rect) -> Rect {
    let width = area.width.saturating_sub(4).min(100);
    let inner_width = width.saturating_sub(2) as usize;
    let height = (lines(inner_width).len() + 2).min(area.height.saturating_sub(2) as usize) as u16;
    Rect { x: area.x + (area.width - width) / 2, y: area.y + (area.height - height) / 2, width, height }
}

/// How far the overlay can scroll on a screen of `screen` cells (0 when it fits).
pub fn max_scroll(screen: (u16, u16)) -> usize {
    let p = popup(Rect::new(0, 0, screen.0, screen.1));
    lines(p.width.saturating_sub(2) as usize).len().saturating_sub(p.height.saturating_sub(2) as usize)
}

impl Widget for Help {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let popup = popup(area);
        let all = lines(popup.width.saturating_sub(2) as usize);
        let shown = popup.height.saturating_sub(2) as usize;
        let scroll = self.scroll.min(all.len().saturating_sub(shown));
        let scrolls = all.len() > shown;
        let title = if scrolls { " keys · ↑↓ scroll · any other key closes " } else { " keys · any key closes " };
        let mut block = Block::default().borders(Borders::ALL).title(title).border_style(Style::default().fg(Color::Cyan));
        if scrolls {
            let last = (scroll + shown).min(all.len());
            block = block.title_bottom(Line::from(format!(" lines {}–{last} of {} ", scroll + 1, all.len())).right_aligned());
        }
        Clear.render(popup, buf);
        let inner = block.inner(popup);
        block.render(popup, buf);
        for (row, line) in all.iter().skip(scroll).take(shown).enumerate() {
            buf.set_line(inner.x, inner.y + row as u16, line, inner.width);
        }
    }
}
