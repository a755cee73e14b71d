//! The header: the three models (and whether they are the synthetic demo ones or a replayed
//! trace), device, dtype, α (the value asked for, with `…`, until the engine confirms it),
//! sampling, decoding rate, step and run state; then the final answers of the streams that have
//! ended (✓ / ✗ against `--answer`) and which of them agree.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use crate::guidance::Sampling;

use crate::eval::grade;
use crate::tui::app::{App, Mode, Pane, RunState};

pub struct Header<'a>(pub &'a App);

/// How the sampling settings are printed.
pub fn sampling_label(s: &Sampling) -> String {
    match s {
        Sampling::Greedy => "greedy".into(),
        Sampling::Sample { temperature, top_k, top_p, seed } => {
            format!("T={temperature:.2} top-k={top_k} top-p={top_p:.2} seed={seed}")
        }
    }
}

fn run_label(run: RunState) -> (&'static str, Color) {
    match run {
        RunState::Loading => ("loading", Color::Yellow),
        RunState::Running => ("running", Color::Green),
        RunState::Paused => ("paused", Color::Yellow),
        RunState::Finished => ("finished", Color::Cyan),
        RunState::Replay => ("replay", Color::Cyan),
    }
}

impl Widget for Header<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let app = self.0;
        let info = &app.info;
        let dim = Style::default().fg(Color::DarkGray);
        // The mode badge comes first so that it is never cut off by long model names.
        let mut first = vec![Span::styled(
            " proxythinker ",
            Style::default().add_modifier(Modifier::BOLD).fg(Color::Black).bg(Color::Cyan),
        )];
        match &info.mode {
            Mode::Live => {}
            Mode::Demo => {
                first.push(Span::raw(" "));
                first.push(Span::styled(" DEMO — tiny models trained on a synthetic counting task ", Style::default().fg(Color::Black).bg(Color::Yellow)));
            }
            Mode::Replay(path) => {
                first.push(Span::raw(" "));
                first.push(Span::styled(
                    format!(" REPLAY {} — no models loaded ", path.display()),
                    Style::default().fg(Color::Black).bg(Color::Magenta),
                ));
            }
        }
        first.extend([
            Span::raw("  base "),
            Span::styled(info.base.as_str(), Style::default().bold()),
            Span::raw("  rft "),
            Span::styled(info.rft.as_str(), Style::default().bold()),
            Span::raw("  small "),
            Span::styled(info.small.as_str(), Style::default().bold()),
        ]);
        let (mut run, run_colour) = run_label(app.run);
        let mut run_text = run.to_string();
        if app.run == RunState::Running {
            if let Some((step, _)) = app.redecoding {
                run = "re-decoding";
                run_text = format!("{run} from step {step}");
            }
        }
        if app.busy() {
            run_text = format!("{} {run_text}", app.spinner());
        }
        let stale = app.stale_count();
        // A replay has no engine: its stale records (an export written early) stay stale.
        if stale > 0 && !app.is_replay() {
            run_text.push_str(&format!(" · re-measuring {stale}"));
        }
        // Each part with how long it is kept on a narrow terminal (1 longest): the state, the
        // step and α are never dropped, and no part is ever cut.
        let parts: Vec<(Span, u8)> = vec![
            (Span::raw(info.device.clone()), 5),
            (Span::raw(info.dtype.clone()), 6),
            (Span::styled(app.header_alpha_label(), Style::default().fg(Color::Cyan).bold()), 1),
            (Span::raw(sampling_label(&info.sampling)), 4),
            (Span::raw(format!("{:.1} tok/s", app.tokens_per_second)), 3),
            (Span::raw(format!("step {}/{}", app.step, info.max_new_tokens)), 2),
            (Span::styled(run_text, Style::default().fg(run_colour)), 1),
        ];
        let second = fitting(parts, area.width as usize, dim);
        Paragraph::new(vec![Line::from(first), Line::from(second), answers(app)]).render(area, buf);
    }
}

/// Whether two final answers say the same (equal ignoring case, or equivalent to the grader).
fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b) || grade::equivalent(Some(a), b)
}

/// ` answers  base 3 ✓ · rft 3 ✓ · guided 4 ✗ — base = rft`.
fn answers(app: &App) -> Line<'static> {
    let dim = Style::default().fg(Color::DarkGray);
    let endings = Pane::ALL.map(|p| app.ending(p));
    if endings.iter().all(Option::is_none) {
        return Line::from(Span::styled(" answers appear as the streams end", dim));
    }
    let mut spans = vec![Span::styled(" answers ", dim)];
    for (k, (pane, e)) in Pane::ALL.iter().zip(&endings).enumerate() {
        let name = if *pane == Pane::Rft { "rft" } else { pane.title() };
        spans.push(Span::styled(format!("{} {name} ", if k == 0 { "" } else { " ·" }), dim));
        let (label, colour) = match e {
            Some(e) => (e.answer_label(), match e.correct {
                Some(true) => Color::Green,
                Some(false) => Color::Red,
                None => Color::Reset,
            }),
            None => ("…".to_string(), Color::DarkGray),
        };
        spans.push(Span::styled(label, Style::default().fg(colour).bold()));
    }
    let given: Vec<(&str, &str)> = Pane::ALL
        .iter()
        .zip(&endings)
        .filter_map(|(p, e)| Some((if *p == Pane::Rft { "rft" } else { p.title() }, e.as_ref()?.answer.as_deref()?)))
        .collect();
    let agreement = match given.as_slice() {
        [(_, a), (_, b), (_, c)] if same(a, b) && same(b, c) => "all three agree".to_string(),
        [_, _, _] => {
            let pairs = [(0, 1), (0, 2), (1, 2)];
            match pairs.iter().find(|(i, j)| same(given[*i].1, given[*j].1)) {
                Some((i, j)) => format!("{} = {}", given[*i].0, given[*j].0),
                None => "all three differ".into(),
            }
        }
        _ => String::new(),
    };
    if !agreement.is_empty() {
        spans.push(Span::styled(" — ", dim));
        spans.push(Span::styled(agreement, Style::default().fg(Color::Cyan)));
    }
    Line::from(spans)
}

/// ` a · b · c`: the parts that fit in `width`, dropping the least kept first (highest number).
fn fitting(parts: Vec<(Span<'static>, u8)>, width: usize, dim: Style) -> Vec<Span<'static>> {
    let mut keep: Vec<bool> = vec![true; parts.len()];
    let total = |keep: &[bool]| -> usize {
        1 + parts.iter().zip(keep).filter(|(_, k)| **k).map(|((s, _), _)| s.width() + 3).sum::<usize>() - 3
    };
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(parts[i].1));
    for i in order {
        if total(&keep) <= width || parts[i].1 <= 2 {
            break;
        }
        keep[i] = false;
    }
    let mut spans = vec![Span::raw(" ")];
    for ((span, _), k) in parts.into_iter().zip(keep) {
        if !k {
            continue;
        }
        if spans.len() > 1 {
            spans.push(Span::styled(" · ", dim));
        }
        spans.push(span);
    }
    spans
}
