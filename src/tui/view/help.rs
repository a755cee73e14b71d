//! The help overlay (`?`): every key, the mouse, and what the measures mean.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Widget, Wrap};

pub struct Help;

/// (keys, what they do), in the order the overlay lists them.
pub const KEYS: [(&str, &str); 19] = [
    ("] / [", "raise / lower α by 0.10 (the guided stream re-decodes from the first change)"),
    ("} / {", "raise / lower α by 0.01"),
    ("m", "next measure for the heatmap and the plot"),
    ("← → / h l", "previous / next token"),
    ("↑ ↓ / k j", "token a line up / down in the focused pane"),
    ("g / G", "first token / follow the newest token"),
    ("Tab", "focus the next pane (base, RFT-small, guided)"),
    ("n / p", "next / previous guided candidate in the inspector"),
    ("Enter", "force the selected candidate at the selected step (what-if)"),
    ("space", "pause / resume decoding"),
    ("r", "restart from the prompt"),
    ("e", "edit the question (Enter restarts with it, Esc cancels)"),
    ("o", "open another image (Enter restarts with it, Esc cancels)"),
    ("x", "export the trace (JSON Lines; the path is shown below)"),
    ("Esc", "clear the status line"),
    ("?", "this help (any key closes it)"),
    ("q / Ctrl-C", "quit"),
    ("click", "select a token"),
    ("wheel", "scroll the pane under the mouse"),
];

const MEASURES: &str = "Guided pane: KL(guided‖base), JS(guided,base), KL(rft‖small), the guided entropy, the rank of the \
chosen token under the base (log scale; 1 = the base's own choice) or whether guidance flipped the base's argmax. \
Base and RFT panes: their own entropy under \"entropy\", their own −log p of the chosen token otherwise.";

impl Widget for Help {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let width = area.width.saturating_sub(8).min(96);
        let height = area.height.saturating_sub(4).min(KEYS.len() as u16 + 7);
        let popup = Rect {
            x: area.x + (area.width - width) / 2,
            y: area.y + (area.height - height) / 2,
            width,
            height,
        };
        Clear.render(popup, buf);
        let mut lines: Vec<Line> = KEYS
            .iter()
            .map(|(k, what)| Line::from(vec![Span::styled(format!("{k:>12}  "), Style::default().fg(Color::Cyan).bold()), Span::raw(*what)]))
            .collect();
        lines.push(Line::from(""));
        lines.push(Line::from(Span::styled(MEASURES, Style::default().fg(Color::Gray))));
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::default().borders(Borders::ALL).title(" keys · any key closes ").border_style(Style::default().fg(Color::Cyan)))
            .render(popup, buf);
    }
}
