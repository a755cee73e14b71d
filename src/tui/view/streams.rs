//! A stream pane: the tokens of one stream, wrapped, each on a background coloured by the
//! selected measure (the heatmap), the selected step marked. Only the visible lines are built,
//! so a pane costs the same with ten tokens or ten thousand (wrapping is integer arithmetic on
//! widths computed when each token arrived).

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders, Widget};

use crate::tui::app::{App, Pane, FORCED_MARK};
use crate::tui::layout;
use crate::tui::search;
use crate::tui::measure::{heat, ink, Measure};

pub struct StreamPane<'a> {
    pub app: &'a App,
    pub pane: Pane,
}

/// The colour scale as a line: bottom value, a ramp of `steps` cells, top value.
pub fn legend(bottom: &str, top: &str, steps: usize) -> Line<'static> {
    let mut spans = vec![Span::raw(format!(" {bottom} "))];
    for i in 0..steps {
        spans.push(Span::styled(" ", Style::default().bg(heat(i as f32 / (steps.max(2) - 1) as f32))));
    }
    spans.push(Span::raw(format!(" {top} ")));
    Line::from(spans)
}

impl StreamPane<'_> {
    /// ` guided · eos · 3 ✓ · KL(guided‖base) `: the name, how the stream ended and its final
    /// answer once it has, then the measure; the measure goes first, then the answer is cut with
    /// `…`, when `room` is short.
    fn title(&self, room: usize) -> String {
        // The LaTeX rendering is on: said in every title, as the raw tokens are not what shows.
        let name = if self.app.latex { format!("{} · TeX", self.pane.title()) } else { self.pane.title().to_string() };
        let name = name.as_str();
        let end = self.app.ending(self.pane).map(|e| format!(" · {} · {}", e.stop_label(), e.answer_label()));
        let end = end.unwrap_or_default();
        let full = format!(" {name}{end} · {} ", self.caption());
        let cells = |s: &str| Span::raw(s).width();
        if cells(&full) <= room {
            return full;
        }
        let short = format!(" {name}{end} ");
        if cells(&short) <= room {
            return short;
        }
        // Narrow panes: the short name and stop label, so the answer still shows.
        let compact = match self.app.ending(self.pane) {
            Some(e) => {
                let name = match (self.pane, self.app.latex) {
                    (Pane::Rft, false) => "rft",
                    (Pane::Rft, true) => "rft·TeX",
                    _ => name,
                };
                format!(" {name} · {} · {} ", e.stop_short(), e.answer_label())
            }
            None => short,
        };
        if cells(&compact) <= room {
            return compact;
        }
        let short = compact;
        let mut cut = String::new();
        for c in short.chars() {
            if cells(&cut) + cells(c.encode_utf8(&mut [0; 4])) + 2 > room {
                break;
            }
            cut.push(c);
        }
        cut.push_str("… ");
        cut
    }

    fn caption(&self) -> String {
        match self.pane {
            Pane::Guided => self.app.measure.name().to_string(),
            _ => self.app.measure.pane_caption().to_string(),
        }
    }

    fn scale_top(&self) -> String {
        let m = self.app.measure;
        match self.pane {
            Pane::Guided => match m {
                Measure::BaseRank => format!("{:.0}+", m.scale_top()),
                Measure::Flipped => "yes".into(),
                _ => format!("{:.2}+", m.scale_top()),
            },
            _ => match m {
                Measure::Entropy => format!("{:.2}+", m.scale_top()),
                _ => "8.00+".into(),
            },
        }
    }
}

impl Widget for StreamPane<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let app = self.app;
        let focused = app.focus == self.pane;
        let border = if focused { Style::default().fg(Color::Cyan) } else { Style::default().fg(Color::DarkGray) };
        let title = self.title(area.width.saturating_sub(2) as usize);
        // Narrow panes (80-column terminals) get a shorter count and ramp, so both still fit.
        let wide = area.width >= 40;
        let mut count = if wide { format!(" {} tokens ", app.len(self.pane)) } else { format!(" {} ", app.len(self.pane)) };
        let think = app.think_count(self.pane);
        if think > 0 {
            count.push_str(&format!("· think {think} "));
        }
        let checks = app.verify_count(self.pane);
        if checks > 0 {
            count.push_str(&format!("· verify {checks} "));
        }
        let stale = if self.pane == Pane::Guided { app.stale_count() } else { 0 };
        if stale > 0 {
            // After a change of α the kept records' measures (the heat) are the old α's until the
            // engine has re-measured them: dimmed until then.
            // A replayed export has no engine: its stale records stay as they were written.
            let what = if app.is_replay() { "stale" } else { "re-measuring" };
            count.push_str(&format!("· {stale} {what} "));
        }
        let bottom_scale = legend("0", &self.scale_top(), if wide { 8 } else { 4 });
        let block = Block::default()
            .borders(Borders::ALL)
            .border_type(if focused { BorderType::Thick } else { BorderType::Plain })
            .border_style(border)
            .title(Line::from(title).style(if focused { Style::default().fg(Color::Cyan) } else { Style::default() }))
            .title_bottom(Line::from(count))
            .title_bottom(bottom_scale.right_aligned());
        let inner = block.inner(area);
        block.render(area, buf);
        if inner.width == 0 || inner.height == 0 {
            return;
        }
        let cells = app.shown_cells(self.pane);
        if cells.is_empty() {
            let note = if app.is_replay() { "(no tokens in the trace)" } else { "(waiting for tokens)" };
            buf.set_string(inner.x, inner.y, note, Style::default().fg(Color::DarkGray));
            return;
        }
        let lines = layout::pane_lines_in(app, self.pane, inner);
        // The cell that shows the cursor's token (under the LaTeX rendering, the construct's).
        let cursor = app.shown_owner(self.pane, app.cursor);
        let current = app.search.as_ref().and_then(|s| s.current.and_then(|c| s.hits.get(c))).filter(|h| h.pane == self.pane);
        for row in 0..inner.height as usize {
            let line = lines.top + row;
            if line >= lines.starts.len() {
                break;
            }
            let mut spans = Vec::new();
            for i in layout::line_range(&lines.starts, line, cells.len()) {
                let level = app.level(self.pane, i);
                let mut style = Style::default().bg(heat(level)).fg(ink(level));
                if cells[i].verify {
                    // Where the reasoner checks or corrects itself: what the user hunts for.
                    style = style.fg(Color::Yellow).add_modifier(Modifier::BOLD);
                }
                if cells[i].think {
                    // The reasoning before the answer: set apart, the heat still readable.
                    style = style.add_modifier(Modifier::DIM | Modifier::ITALIC);
                }
                if cells[i].forced {
                    style = style.fg(FORCED_COLOUR).add_modifier(Modifier::UNDERLINED | Modifier::BOLD);
                }
                if self.pane == Pane::Guided && app.guided.get(i).is_some_and(|r| r.stale) {
                    style = style.add_modifier(Modifier::DIM);
                }
                if app.search.as_ref().is_some_and(|s| search::is_hit(s, self.pane, i)) {
                    // A search match: a hue the heat scale never takes; the selected one brighter.
                    let selected = current.is_some_and(|h| (h.first..=h.last).contains(&i));
                    style = style.bg(if selected { Color::LightCyan } else { Color::Cyan }).fg(Color::Black);
                }
                if i == cursor {
                    style = Style::default().bg(Color::White).fg(Color::Black).add_modifier(Modifier::BOLD);
                }
                if cells[i].forced {
                    spans.push(Span::styled(FORCED_MARK, style.fg(if i == cursor { Color::Black } else { FORCED_COLOUR }).remove_modifier(Modifier::UNDERLINED)));
                }
                if !cells[i].text.is_empty() {
                    spans.push(Span::styled(cells[i].text.as_str(), style));
                }
            }
            buf.set_line(inner.x, inner.y + row as u16, &Line::from(spans), inner.width);
        }
    }
}

/// The colour of a forced token and of its [`FORCED_MARK`].
pub const FORCED_COLOUR: Color = Color::LightGreen;
