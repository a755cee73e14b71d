//! The inspector: everything recorded about the selected step. The guided token with its forced
//! and flip markers, the divergences, what the base and RFT streams chose alone at that step,
//! and the top candidates of base, RFT, small and the guided mix with their probabilities as
//! bars. The selected guided candidate (n / p) is the one Enter forces.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Widget};

use crate::engine::{Candidate, StreamRecord};
use crate::tui::app::{App, TokenCell};

pub struct Inspector<'a>(pub &'a App);

/// A probability as a bar of `width` cells (eighths of a cell for the remainder).
pub fn bar(p: f32, width: usize) -> String {
    const EIGHTHS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
    let p = if p.is_finite() { p.clamp(0.0, 1.0) } else { 0.0 };
    let eighths = (p * (width * 8) as f32).round() as usize;
    let mut s: String = std::iter::repeat_n('█', eighths / 8).collect();
    if !eighths.is_multiple_of(8) {
        s.push(EIGHTHS[eighths % 8]);
    }
    let used = s.chars().count();
    s.extend(std::iter::repeat_n(' ', width.saturating_sub(used)));
    s
}

fn fit(text: &str, width: usize) -> String {
    let shown = TokenCell::new(text).text;
    let mut out = String::new();
    let mut w = 0;
    for c in shown.chars() {
        let cw = Span::raw(c.to_string()).width();
        if w + cw > width {
            break;
        }
        out.push(c);
        w += cw;
    }
    out.extend(std::iter::repeat_n(' ', width.saturating_sub(w)));
    out
}

/// One column of candidates: `text bar prob` per row.
struct Column<'a> {
    title: String,
    top: &'a [Candidate],
    chosen: u32,
    /// The row highlighted as the inspector's selection.
    selected: Option<usize>,
}

impl Widget for Column<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.height == 0 || area.width < 6 {
            return;
        }
        buf.set_string(area.x, area.y, fit(&self.title, area.width as usize), Style::default().bold().fg(Color::Cyan));
        let w = area.width as usize;
        let text_w = (w / 3).clamp(3, 10);
        let prob_w = 4;
        let bar_w = w.saturating_sub(text_w + prob_w + 2);
        for (k, c) in self.top.iter().enumerate().take(area.height as usize - 1) {
            let mut style = Style::default();
            if c.token == self.chosen {
                style = style.fg(Color::Green).add_modifier(Modifier::BOLD);
            }
            if self.selected == Some(k) {
                style = Style::default().fg(Color::Black).bg(Color::Cyan);
            }
            let prob = format!("{:.2}", c.prob);
            let prob = prob.strip_prefix('0').unwrap_or(&prob).to_string();
            let line = format!("{} {}{:>prob_w$}", fit(&c.text, text_w), bar(c.prob, bar_w + 1), prob);
            buf.set_stringn(area.x, area.y + 1 + k as u16, line, w, style);
        }
    }
}

fn alone(name: &str, r: Option<&StreamRecord>) -> Vec<Span<'static>> {
    match r {
        Some(r) => vec![
            Span::styled(format!("{name} alone "), Style::default().fg(Color::DarkGray)),
            Span::raw(format!("{:?}", TokenCell::new(&r.text).text)),
            Span::raw(format!(" −log p {:.2} H {:.2}", -r.logprob, r.entropy)),
        ],
        None => vec![Span::styled(format!("{name} alone —"), Style::default().fg(Color::DarkGray))],
    }
}

impl Widget for Inspector<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let app = self.0;
        let step = app.cursor;
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(Style::default().fg(Color::DarkGray))
            .title(format!(" inspector · step {step} "));
        let inner = block.inner(area);
        block.render(area, buf);
        if inner.height < 4 {
            return;
        }
        let Some(r) = app.guided.get(step) else {
            let text = if app.guided.is_empty() {
                "no guided token yet".to_string()
            } else {
                format!("no guided token at step {step} (the guided stream has {})", app.guided.len())
            };
            buf.set_string(inner.x, inner.y, text, Style::default().fg(Color::DarkGray));
            return;
        };
        let mut head = vec![
            Span::raw("guided "),
            Span::styled(format!("{:?}", TokenCell::new(&r.text).text), Style::default().bold()),
            Span::raw(format!(" id {}", r.token)),
        ];
        if r.forced {
            head.push(Span::styled(" FORCED ", Style::default().fg(Color::Black).bg(Color::Yellow)));
        }
        if r.flipped {
            head.push(Span::raw(" "));
            head.push(Span::styled(" ⚑ FLIP ", Style::default().fg(Color::Black).bg(Color::Red)));
            head.push(Span::raw(" guidance changed the base's argmax"));
        }
        let divergences = Line::from(format!(
            "KL(guided‖base) {:.3}  KL(rft‖small) {:.3}  JS(guided,base) {:.3}  base rank {}",
            r.kl_guided_base, r.kl_rft_small, r.js_guided_base, r.base_rank
        ));
        let mut alone_line = alone("base", app.base.get(step));
        alone_line.push(Span::raw("  │  "));
        alone_line.extend(alone("rft", app.rft.get(step)));
        Paragraph::new(vec![Line::from(head), divergences, Line::from(alone_line)])
            .render(Rect { height: 3, ..inner }, buf);
        let table = Rect { y: inner.y + 3, height: inner.height - 3, ..inner };
        let cols: [Rect; 4] = Layout::horizontal([Constraint::Ratio(1, 4); 4]).spacing(1).areas(table);
        let columns = [
            Column { title: "base".into(), top: &r.base.top, chosen: r.token, selected: None },
            Column { title: "rft".into(), top: &r.rft.top, chosen: r.token, selected: None },
            Column { title: "small".into(), top: &r.small.top, chosen: r.token, selected: None },
            Column { title: format!("guided {}", app.alpha_label()), top: &r.guided.top, chosen: r.token, selected: Some(app.candidate) },
        ];
        for (col, area) in columns.into_iter().zip(cols) {
            col.render(area, buf);
        }
    }
}
