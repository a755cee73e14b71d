//! The bottom two lines: the status line (messages, errors, or the input line while one is
//! open) and the key hints, drawn from the keymap.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use crate::tui::app::{App, InputPurpose};
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
            };
            // Show the end of a long input: that is where the typing happens.
            let room = (area.width as usize).saturating_sub(prompt.len() + 40);
            let chars: Vec<char> = input.text.chars().collect();
            let shown: String = chars[chars.len().saturating_sub(room)..].iter().collect();
            Line::from(vec![
                Span::styled(prompt, Style::default().fg(Color::Cyan).bold()),
                Span::raw(shown),
                Span::styled("▏", Style::default().add_modifier(Modifier::SLOW_BLINK)),
                Span::styled("   Enter confirms · Esc cancels", Style::default().fg(Color::DarkGray)),
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
