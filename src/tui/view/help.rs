//! The help overlay (`?`): every binding of the keymap with its keys, the mouse, and what the
//! measures mean. One column when the bindings fit the terminal's height, two otherwise (each
//! line then cut with `…`), so that no binding is left out on a small terminal.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Widget, Wrap};

use crate::tui::keymap::{BINDINGS, MOUSE};

pub struct Help;

const MEASURES: &str = "Guided pane: KL(guided‖base), JS(guided,base), KL(rft‖small), the guided entropy, the rank of the \
chosen token under the base (log scale; 1 = the base's own choice) or whether guidance flipped the base's argmax. \
Base and RFT panes: their own entropy under \"entropy\", their own −log p of the chosen token otherwise.";

/// Every row of the overlay: (keys, what they do), in the keymap's order, then the mouse.
pub fn rows() -> Vec<(String, &'static str)> {
    BINDINGS.iter().map(|b| (b.keys_label(), b.help)).chain(MOUSE.iter().map(|(k, what)| (k.to_string(), *what))).collect()
}

fn cells(s: &str) -> usize {
    Span::raw(s).width()
}

/// `text` cut to `room` cells, with `…` when something was cut.
fn fit(text: &str, room: usize) -> String {
    if cells(text) <= room {
        return text.to_string();
    }
    let mut out = String::new();
    for c in text.chars() {
        if cells(&out) + cells(c.encode_utf8(&mut [0; 4])) + 1 > room {
            break;
        }
        out.push(c);
    }
    out.push('…');
    out
}

impl Widget for Help {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let rows = rows();
        let key_width = rows.iter().map(|(k, _)| cells(k)).max().unwrap_or(0);
        let most_height = area.height.saturating_sub(2) as usize;
        let one_column_width = area.width.saturating_sub(8).min(96);
        let inner_width = one_column_width.saturating_sub(2).max(1) as usize;
        // A line per row, a blank one, the measures wrapped (a line more for word breaks), borders.
        let measures_lines = cells(MEASURES).div_ceil(inner_width) + 1;
        let everything = rows.len() + 1 + measures_lines + 2;
        let columns = if rows.len() + 2 <= most_height { 1 } else { 2 };
        let width = if columns == 1 { one_column_width } else { area.width.saturating_sub(4) };
        let per_column = rows.len().div_ceil(columns);
        let height = if columns == 1 { everything.min(most_height) } else { most_height } as u16;
        let popup = Rect {
            x: area.x + (area.width - width) / 2,
            y: area.y + (area.height - height) / 2,
            width,
            height,
        };
        Clear.render(popup, buf);
        let block = Block::default().borders(Borders::ALL).title(" keys · any key closes ").border_style(Style::default().fg(Color::Cyan));
        let inner = block.inner(popup);
        block.render(popup, buf);
        let column_width = inner.width as usize / columns;
        for (i, (keys, what)) in rows.iter().enumerate() {
            let (column, row) = (i / per_column, i % per_column);
            if row >= inner.height as usize {
                continue;
            }
            // A space between columns.
            let room = column_width.saturating_sub(usize::from(column + 1 < columns));
            let line = Line::from(vec![
                Span::styled(format!(" {keys:>key_width$}  "), Style::default().fg(Color::Cyan).bold()),
                Span::raw(fit(what, room.saturating_sub(key_width + 3))),
            ]);
            buf.set_line(inner.x + (column * column_width) as u16, inner.y + row as u16, &line, room as u16);
        }
        let below = (per_column + 1) as u16;
        if inner.height > below {
            let rest = Rect { y: inner.y + below, height: inner.height - below, ..inner };
            Paragraph::new(Line::from(Span::styled(MEASURES, Style::default().fg(Color::Gray)))).wrap(Wrap { trim: false }).render(rest, buf);
        }
    }
}
