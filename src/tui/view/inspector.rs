//! The inspector: everything recorded about the token under the cursor in the focused pane.
//!
//! For the guided stream: the token with its forced and flip markers, a one-line verdict of what
//! guidance did, the divergences, and the **why table**: the chosen token and its strongest
//! alternatives (text and id), each with its logit and probability under base, RFT and small,
//! the guidance shift α·(rft − small) and its guided probability; below it the plausible tokens
//! guidance promoted and suppressed most. Beside it, when the inspector is wide enough, the
//! guided top-k with the candidate selected for forcing (c / C, Enter forces it; on a narrow
//! inspector the selection is named on the first line). For the base and RFT streams: their own
//! token, −log p and entropy, what the other streams chose at that step, and their top-k.
//! While a token lookup (`t`) is open, the inspector shows its answer instead: the string's
//! tokens with their probability and rank under base, RFT, small and the guided mix.
//!
//! Numbers are never cut: the table drops its logits, then labels shorten, before a value would.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Widget};

use crate::engine::why::signed;
use crate::engine::{Candidate, GuidedRecord, Lookup, Match, Score, StreamRecord, Why, WhyRow};
use crate::tui::app::{App, LookupAnswer, LookupState, Pane, TokenCell};

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

fn cells(s: &str) -> usize {
    Span::raw(s).width()
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

/// A token as the inspector quotes it: printable, in quotes.
fn quoted(text: &str) -> String {
    format!("{:?}", TokenCell::new(text).text)
}

/// A probability in four cells: `.412`, `1.00`, `NaN`.
fn prob(p: f32) -> String {
    if p.is_nan() {
        return " NaN".into();
    }
    let s = format!("{p:.3}");
    match s.strip_prefix('0') {
        Some(rest) => rest.to_string(),
        None => format!("{p:.2}"),
    }
}

/// One column of candidates: `text [id] bar prob` per row.
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
        buf.set_stringn(area.x, area.y, &self.title, area.width as usize, Style::default().bold().fg(Color::Cyan));
        let w = area.width as usize;
        let prob_w = 5;
        // Ids tell apart tokens whose text looks the same (several `�`); shown when there is room.
        let id_w = self.top.iter().map(|c| c.token.to_string().len()).max().unwrap_or(0) + 1;
        let text_w = (w / 3).clamp(3, 10);
        let show_ids = w >= text_w + id_w + prob_w + 4;
        let bar_w = w.saturating_sub(text_w + prob_w + 1 + if show_ids { id_w } else { 0 });
        for (k, c) in self.top.iter().enumerate().take(area.height as usize - 1) {
            let mut style = Style::default();
            if c.token == self.chosen {
                style = style.fg(Color::Green).add_modifier(Modifier::BOLD);
            }
            if self.selected == Some(k) {
                style = Style::default().fg(Color::Black).bg(Color::Cyan);
            }
            let id = if show_ids { format!("{:>id_w$}", c.token) } else { String::new() };
            let line = format!("{}{id} {}{:>prob_w$}", fit(&c.text, text_w), bar(c.prob, bar_w), prob(c.prob));
            buf.set_stringn(area.x, area.y + 1 + k as u16, line, w, style);
        }
    }
}

/// The divergence line, with labels short enough for `width` (the values are never cut).
fn divergences(r: &GuidedRecord, width: usize) -> String {
    let v = |x: f32| format!("{x:.3}");
    let (kl_gb, kl_rs, js) = (v(r.kl_guided_base), v(r.kl_rft_small), v(r.js_guided_base));
    let long = format!("KL(guided‖base) {kl_gb}  KL(rft‖small) {kl_rs}  JS(guided,base) {js}  base rank {}", r.base_rank);
    if cells(&long) <= width {
        return long;
    }
    let short = format!("KL(g‖b) {kl_gb} KL(r‖s) {kl_rs} JS {js} rank {}", r.base_rank);
    if cells(&short) <= width {
        return short;
    }
    format!("KL {kl_gb} {kl_rs} JS {js}")
}

/// The why table's cells, one row per token: the chosen one, then the alternatives.
struct WhyTable<'a> {
    why: &'a Why,
    /// How many alternatives to list.
    alternatives: usize,
}

impl WhyTable<'_> {
    /// The table's lines at `width` cells: with logits when they fit, probabilities only when not.
    fn lines(&self, width: usize) -> Vec<Line<'static>> {
        let mut rows: Vec<&WhyRow> = self.why.chosen().into_iter().collect();
        rows.extend(self.why.alternatives(self.alternatives));
        for logits in [true, false] {
            if let Some(lines) = self.layout(&rows, logits, width) {
                return lines;
            }
        }
        // Narrower than the shortest form: the chosen token's probabilities alone.
        self.layout(&rows[..1.min(rows.len())], false, usize::MAX).unwrap_or_default()
    }

    fn layout(&self, rows: &[&WhyRow], logits: bool, width: usize) -> Option<Vec<Line<'static>>> {
        let model = |l: f32, p: f32| if logits { format!("{l:.2} {}", prob(p)) } else { prob(p) };
        let names = if logits { ["base ℓ p", "rft ℓ p", "small ℓ p"] } else { ["base", "rft", "small"] };
        let header: Vec<String> = ["token", "id", names[0], names[1], names[2], "α·(r−s)", "guided"].map(str::to_string).into();
        let body: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    String::new(),
                    r.token.to_string(),
                    model(r.logits.base, r.probs.base),
                    model(r.logits.rft, r.probs.rft),
                    model(r.logits.small, r.probs.small),
                    signed(r.shift),
                    prob(r.guided_prob),
                ]
            })
            .collect();
        // Every column but the token's as wide as its widest cell; the token gets the rest.
        let widths: Vec<usize> = (1..header.len()).map(|c| body.iter().map(|r| cells(&r[c])).chain([cells(&header[c])]).max().unwrap_or(0)).collect();
        let numbers: usize = widths.iter().map(|w| w + 1).sum();
        let token_w = width.checked_sub(numbers + 2)?.min(12);
        if token_w < 4 {
            return None;
        }
        let dim = Style::default().fg(Color::DarkGray);
        let mut head = vec![Span::styled(format!("  {:<token_w$}", "token"), dim)];
        for (c, w) in widths.iter().enumerate() {
            head.push(Span::styled(format!(" {:>w$}", header[c + 1]), dim));
        }
        let mut lines = vec![Line::from(head)];
        for (k, (r, cells_)) in rows.iter().zip(&body).enumerate() {
            let style = if k == 0 { Style::default().fg(Color::Green).add_modifier(Modifier::BOLD) } else { Style::default() };
            let mut spans = vec![Span::styled(format!("{} {}", if k == 0 { '▶' } else { ' ' }, fit(&r.text, token_w)), style)];
            for (c, w) in widths.iter().enumerate() {
                let cell = &cells_[c + 1];
                let s = if c == 4 { shift_style(r.shift).patch(style) } else { style };
                spans.push(Span::styled(format!(" {cell:>w$}"), s));
            }
            lines.push(Line::from(spans));
        }
        Some(lines)
    }
}

fn shift_style(shift: f32) -> Style {
    if shift > 0.0 {
        Style::default().fg(Color::Green)
    } else if shift < 0.0 {
        Style::default().fg(Color::Red)
    } else {
        Style::default()
    }
}

/// `▲ promoted "x" +2.10  "y" +1.30`: as many whole items as fit in `width`.
fn extremes_line(label: &str, rows: &[&WhyRow], width: usize) -> Line<'static> {
    let mut spans = vec![Span::styled(label.to_string(), Style::default().fg(Color::DarkGray))];
    let mut used = cells(label);
    if rows.is_empty() {
        spans.push(Span::styled(" none", Style::default().fg(Color::DarkGray)));
    }
    for r in rows {
        let item = format!(" {} {}", quoted(&r.text), signed(r.shift));
        if used + cells(&item) > width {
            break;
        }
        used += cells(&item);
        spans.push(Span::styled(item, shift_style(r.shift)));
    }
    Line::from(spans)
}

fn alone(name: &str, r: Option<&StreamRecord>) -> Vec<Span<'static>> {
    match r {
        Some(r) => vec![
            Span::styled(format!("{name} alone "), Style::default().fg(Color::DarkGray)),
            Span::raw(format!("{} id {}", quoted(&r.text), r.token)),
        ],
        None => vec![Span::styled(format!("{name} alone —"), Style::default().fg(Color::DarkGray))],
    }
}

impl Inspector<'_> {
    fn guided(&self, r: &GuidedRecord, inner: Rect, buf: &mut Buffer) {
        let app = self.0;
        // The guided top-k (what c / C select and Enter forces) beside the table when it fits.
        let (left, column) = if inner.width >= 100 {
            let [l, c] = Layout::horizontal([Constraint::Min(60), Constraint::Length(34)]).spacing(1).areas(inner);
            (l, Some(c))
        } else {
            (inner, None)
        };
        let w = left.width as usize;
        let mut head = vec![
            Span::raw("guided "),
            Span::styled(quoted(&r.text), Style::default().bold()),
            Span::raw(format!(" id {}", r.token)),
        ];
        if r.forced {
            head.push(Span::styled(" FORCED ", Style::default().fg(Color::Black).bg(Color::Yellow)));
        }
        if r.flipped {
            head.push(Span::raw(" "));
            head.push(Span::styled(" ⚑ FLIP ", Style::default().fg(Color::Black).bg(Color::Red)));
        }
        if r.stale {
            // A replay has no engine: its stale records stay as the export wrote them.
            let note = if app.is_replay() { " (stale: measured at an earlier α)" } else { " (re-measuring at the new α)" };
            head.push(Span::styled(note, Style::default().fg(Color::Yellow)));
        }
        if column.is_none() {
            if let Some(c) = r.guided.top.get(app.candidate) {
                head.push(Span::styled(format!("  ⏎ forces {} (c/C)", quoted(&c.text)), Style::default().fg(Color::DarkGray)));
            }
        }
        let mut lines = vec![Line::from(head)];
        match &r.why {
            Some(why) => {
                lines.push(Line::from(Span::styled(why.verdict_in(r.base_rank, r.forced, w), Style::default().fg(Color::Yellow))));
                lines.push(Line::from(divergences(r, w)));
                // Head, verdict, divergences, the table's header and chosen row, promoted, suppressed.
                let alternatives = (left.height as usize).saturating_sub(7);
                lines.extend(WhyTable { why, alternatives }.lines(w));
                let (promoted, suppressed) = (why.promoted(3), why.suppressed(3));
                lines.push(extremes_line("▲ promoted  ", &promoted, w));
                lines.push(extremes_line("▼ suppressed", &suppressed, w));
            }
            None => {
                lines.push(Line::from(divergences(r, w)));
                lines.push(Line::from(Span::styled(
                    "no why table: the trace was written before format version 3",
                    Style::default().fg(Color::DarkGray),
                )));
                let mut alone_line = alone("base", app.base.get(r.step));
                alone_line.push(Span::raw("  │  "));
                alone_line.extend(alone("rft", app.rft.get(r.step)));
                lines.push(Line::from(alone_line));
            }
        }
        Paragraph::new(lines).render(left, buf);
        if let Some(area) = column {
            let title = format!("guided {} · ⏎ forces", app.alpha_label());
            Column { title, top: &r.guided.top, chosen: r.token, selected: Some(app.candidate) }.render(area, buf);
        }
    }

    fn own(&self, pane: Pane, r: &StreamRecord, inner: Rect, buf: &mut Buffer) {
        let app = self.0;
        let name = if pane == Pane::Base { "base" } else { "rft" };
        let head = Line::from(vec![
            Span::raw(format!("{name} ")),
            Span::styled(quoted(&r.text), Style::default().bold()),
            Span::raw(format!(" id {}  −log p {:.2}  H {:.2}", r.token, -r.logprob, r.entropy)),
        ]);
        let mut others = Vec::new();
        if let Some(g) = app.guided.get(r.step) {
            others.push(Span::styled("guided ", Style::default().fg(Color::DarkGray)));
            others.push(Span::raw(format!("{} id {}", quoted(&g.text), g.token)));
            others.push(Span::raw("  │  "));
        }
        let other = if pane == Pane::Base { ("rft", app.rft.get(r.step)) } else { ("base", app.base.get(r.step)) };
        others.extend(alone(other.0, other.1));
        Paragraph::new(vec![head, Line::from(others)]).render(Rect { height: 2, ..inner }, buf);
        let table = Rect { y: inner.y + 2, height: inner.height - 2, ..inner };
        let width = table.width.min(60);
        let title = format!("top {} of {name} alone (on its own prefix)", r.top.len());
        Column { title, top: &r.top, chosen: r.token, selected: None }.render(Rect { width, ..table }, buf);
    }
}

/// A score as `.561 #1` (`.561` when the rank is not known, `—` when nothing is).
fn score(s: Option<Score>) -> String {
    match s {
        Some(Score { prob: p, rank: Some(r) }) => format!("{} #{r}", prob(p)),
        Some(Score { prob: p, rank: None }) => prob(p),
        None => "—".into(),
    }
}

/// The lookup's lines at `width` cells.
fn lookup_lines(l: &LookupState, width: usize) -> Vec<Line<'static>> {
    let dim = Style::default().fg(Color::DarkGray);
    let found = match &l.answer {
        LookupAnswer::Pending => return vec![Line::from(Span::styled("asking the engine…", dim))],
        LookupAnswer::Failed(why) => return vec![Line::from(Span::styled(why.clone(), Style::default().fg(Color::Red)))],
        LookupAnswer::Done(found) => found,
    };
    let Lookup { encoding, rows, exact, .. } = found.as_ref();
    let mut lines = Vec::new();
    let source = if *exact {
        "base and guided over the whole vocabulary; rft and small where the record holds them"
    } else {
        "from the trace's record: the tokens it names, figures where it holds them"
    };
    let encoded = if encoding.is_empty() {
        String::new()
    } else {
        format!("encodes as {} · ", encoding.iter().map(u32::to_string).collect::<Vec<_>>().join(" "))
    };
    lines.push(Line::from(Span::styled(format!("{encoded}{source}"), dim)));
    if rows.is_empty() {
        lines.push(Line::from(Span::styled(
            format!("no token here is spelled {:?} (nor with a leading space)", TokenCell::new(&l.query).text),
            dim,
        )));
        return lines;
    }
    let how = |m: Match| match m {
        Match::Exact => "exact",
        Match::Spaced => "spaced",
        Match::Piece => "piece",
    };
    let header = ["id", "how", "base", "rft", "small", "guided"].map(str::to_string);
    let body: Vec<[String; 6]> = rows
        .iter()
        .map(|r| [r.token.to_string(), how(r.how).to_string(), score(r.base), score(r.rft), score(r.small), score(r.guided)])
        .collect();
    let widths: Vec<usize> = (0..6).map(|c| body.iter().map(|r| cells(&r[c])).chain([cells(&header[c])]).max().unwrap_or(0)).collect();
    let numbers: usize = widths.iter().map(|w| w + 1).sum();
    let token_w = width.saturating_sub(numbers + 1).clamp(4, 14);
    let mut head = format!(" {:<token_w$}", "token");
    for (c, w) in widths.iter().enumerate() {
        head.push_str(&format!(" {:>w$}", header[c]));
    }
    lines.push(Line::from(Span::styled(head, dim)));
    for (r, cells_) in rows.iter().zip(&body) {
        let mut line = format!(" {}", fit(&r.text, token_w));
        for (c, w) in widths.iter().enumerate() {
            line.push_str(&format!(" {:>w$}", cells_[c]));
        }
        lines.push(Line::from(line));
    }
    lines
}

impl Inspector<'_> {
    fn lookup(&self, l: &LookupState, area: Rect, buf: &mut Buffer) {
        Paragraph::new(lookup_lines(l, area.width as usize)).render(area, buf);
    }
}

impl Widget for Inspector<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let app = self.0;
        if let Some(l) = &app.lookup {
            let block = Block::default()
                .borders(Borders::ALL)
                .border_style(Style::default().fg(Color::DarkGray))
                .title(format!(" look up {:?} at guided step {} · Esc closes ", TokenCell::new(&l.query).text, l.step));
            let inner = block.inner(area);
            block.render(area, buf);
            self.lookup(l, inner, buf);
            return;
        }
        let step = app.cursor;
        let pane = app.focus;
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(Style::default().fg(Color::DarkGray))
            .title(format!(" inspector · {} · step {step} ", pane.title()));
        let inner = block.inner(area);
        block.render(area, buf);
        if inner.height < 4 {
            return;
        }
        let (len, name) = (app.len(pane), pane.title());
        let found = match pane {
            Pane::Guided => app.guided.get(step).map(|r| self.guided(r, inner, buf)),
            Pane::Base => app.base.get(step).map(|r| self.own(pane, r, inner, buf)),
            Pane::Rft => app.rft.get(step).map(|r| self.own(pane, r, inner, buf)),
        };
        if found.is_none() {
            let text = if len == 0 {
                format!("no {name} token yet")
            } else {
                format!("no {name} token at step {step} (the {name} stream has {len})")
            };
            buf.set_string(inner.x, inner.y, text, Style::default().fg(Color::DarkGray));
        }
    }
}
