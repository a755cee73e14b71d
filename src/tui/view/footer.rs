//! The bottom two lines: the status line (messages, errors, or the input line while one is
//! open) and the key hints, drawn from the keymap.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use crate::tui::app::{App, InputPurpose, TokenCell};
use crate::tui::keymap;

pub struct StatusLine<'a>(pub &'a App);

impl Widget for StatusLine<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let app = self.0;
        let line = if let Some(input) = &app.input {
            let prompt = match input.purpose {
                InputPurpose::Question => "question> ",
                InputPurpose::ImagePath => "image path> ",
                InputPurpose::Alpha => "α> ",
                InputPurpose::Search => "search /",
                InputPurpose::Lookup => "look up> ",
            };
            let help = match input.purpose {
                InputPurpose::ImagePath => "   Enter opens · Tab completes · ↑↓ history · Esc cancels",
                _ if input.editor.selected => "   typing replaces · ← → edit · Enter confirms · Esc cancels",
                _ => "   Enter confirms · ↑↓ history · Esc cancels",
            };
            let width = |s: &str| Span::raw(s).width();
            let room = (area.width as usize).saturating_sub(width(prompt) + width(help) + 1).max(8);
            // The text around the cursor, made printable, as much as fits: the cursor stays visible.
            let (before, after) = input.editor.split();
            let before: Vec<char> = TokenCell::printable(before).chars().collect();
            let after: Vec<char> = TokenCell::printable(after).chars().collect();
            let keep_after = after.len().min(room / 3);
            let keep_before = before.len().min(room.saturating_sub(keep_after + 1));
            let shown_before: String = before[before.len() - keep_before..].iter().collect();
            let (at, rest) = match after.split_first() {
                Some((c, rest)) => (c.to_string(), rest[..rest.len().min(keep_after.saturating_sub(1))].iter().collect::<String>()),
                None => (" ".to_string(), String::new()),
            };
            // A prefilled value still selected (the first typed character replaces it).
            let text_style = if input.editor.selected { Style::default().bg(Color::DarkGray).fg(Color::White) } else { Style::default() };
            Line::from(vec![
                Span::styled(prompt, Style::default().fg(Color::Cyan).bold()),
                Span::styled(shown_before, text_style),
                Span::styled(at, Style::default().add_modifier(Modifier::REVERSED)),
                Span::styled(rest, text_style),
                Span::styled(help, Style::default().fg(Color::DarkGray)),
            ])
        } else {
            match &app.status {
                Some(s) if s.error => Line::from(Span::styled(format!(" error: {}", s.text), Style::default().fg(Color::Red).bold())),
                Some(s) => Line::from(Span::raw(format!(" {}", s.text))),
                None => Line::from(Span::styled(" ? shows every key", Style::default().fg(Color::DarkGray))),
            }
        };
        buf.set_line(area.x, area.y, &line, area.width);
    }
}

/// The hint line: the keymap's hints, the least important dropped first when the line is narrow.
pub struct KeyHints<'a>(pub &'a App);

/// The gap after each hint.
const GAP: &str = "  ";

impl Widget for KeyHints<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let _ = self.0;
        let width = |s: &str| Span::raw(s).width();
        // One leading space, then "keys label" and a gap per hint (the last gap may overhang).
        let room = (area.width as usize).saturating_sub(1) + GAP.len();
        let shown = keymap::hints_that_fit(room, |h| width(&h.keys) + 1 + width(h.label) + GAP.len());
        let mut spans = vec![Span::raw(" ")];
        for h in shown {
            spans.push(Span::styled(h.keys, Style::default().fg(Color::Black).bg(Color::Gray)));
            spans.push(Span::styled(format!(" {}{GAP}", h.label), Style::default().fg(Color::DarkGray)));
        }
        buf.set_line(area.x, area.y, &Line::from(spans), area.width);
    }
}
