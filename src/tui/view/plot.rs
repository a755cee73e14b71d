//! The plot: the selected measure along the focused stream, as a sparkline whose bars take the
//! heatmap's colours. When the stream is longer than the plot is wide, each bar shows the largest
//! value of its run of tokens, so a spike is never averaged away. `▲` marks the selected step.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::widgets::{Block, Borders, Sparkline, SparklineBar, Widget};

use crate::tui::app::{App, Pane};
use crate::tui::measure::heat;

pub struct Plot<'a>(pub &'a App);

/// How many tokens each column stands for when `n` tokens go into `width` columns.
pub fn bucket(n: usize, width: usize) -> usize {
    if width == 0 {
        return n.max(1);
    }
    n.div_ceil(width).max(1)
}

impl Widget for Plot<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let app = self.0;
        let pane = app.focus;
        let what = match pane {
            Pane::Guided => app.measure.name(),
            _ => app.measure.pane_caption(),
        };
        let n = app.len(pane);
        let width = area.width.saturating_sub(2) as usize;
        let per = bucket(n, width);
        let title = if per > 1 {
            format!(" {what} along {} · {per} tokens/bar ", pane.title())
        } else {
            format!(" {what} along {} ", pane.title())
        };
        let block = Block::default().borders(Borders::ALL).border_style(Style::default().fg(Color::DarkGray)).title(title);
        let inner = block.inner(area);
        block.render(area, buf);
        if inner.height < 2 || inner.width == 0 || n == 0 {
            return;
        }
        let cursor_col = app.cursor / per;
        let bars: Vec<SparklineBar> = (0..n.div_ceil(per))
            .map(|c| {
                // f32::max would drop a NaN level; a NaN in the run colours its bar (magenta) instead.
                let level = (c * per..((c + 1) * per).min(n))
                    .map(|i| app.level(pane, i))
                    .fold(0.0f32, |m, l| if m.is_nan() || l.is_nan() { f32::NAN } else { m.max(l) });
                let colour = if c == cursor_col { Color::White } else { heat(0.25 + 0.75 * level) };
                // Even a zero gets a sliver, so every token has a visible bar.
                SparklineBar::from(((level * 1000.0) as u64).max(40)).style(Style::default().fg(colour))
            })
            .collect();
        let chart = Rect { height: inner.height - 1, ..inner };
        Sparkline::default().data(bars).max(1000).render(chart, buf);
        if cursor_col < width {
            buf.set_string(inner.x + cursor_col as u16, inner.y + inner.height - 1, "▲", Style::default().fg(Color::White));
        }
    }
}
