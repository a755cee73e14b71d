//! The header: the three models (and whether they are the synthetic demo ones or a replayed
//! trace), device, dtype, α (the value asked for, with `…`, until the engine confirms it),
//! sampling, decoding rate, step and run state.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use crate::guidance::Sampling;

use crate::tui::app::{App, Mode, RunState};

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
        let (run, run_colour) = run_label(app.run);
        let sep = || Span::styled(" · ", dim);
        let second = vec![
            Span::raw(" "),
            Span::raw(info.device.as_str()),
            sep(),
            Span::raw(info.dtype.as_str()),
            sep(),
            Span::styled(app.header_alpha_label(), Style::default().fg(Color::Cyan).bold()),
            sep(),
            Span::raw(sampling_label(&info.sampling)),
            sep(),
            Span::raw(format!("{:.1} tok/s", app.tokens_per_second)),
            sep(),
            Span::raw(format!("step {}/{}", app.step, info.max_new_tokens)),
            sep(),
            Span::styled(run, Style::default().fg(run_colour)),
        ];
        Paragraph::new(vec![Line::from(first), Line::from(second)]).render(area, buf);
    }
}
