//! Drawing: every widget here renders from `&App` alone, so a frame is a pure function of the
//! state. `draw` lays the widgets out (see `layout`); the submodules are the widgets.

pub mod footer;
pub mod header;
pub mod help;
pub mod inspector;
pub mod media;
pub mod plot;
pub mod streams;

use ratatui::buffer::Buffer;
use ratatui::layout::{Alignment, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Widget, Wrap};
use ratatui::Frame;

use super::app::{App, Pane};
use super::graphics::Graphics;
use super::layout;

/// Draws the whole UI (pictures with half-blocks).
pub fn draw(frame: &mut Frame, app: &App) {
    draw_with_graphics(frame, app, None);
}

/// Draws the whole UI; the question's picture with terminal graphics when `graphics` is given
/// and can draw it.
pub fn draw_with_graphics(frame: &mut Frame, app: &App, graphics: Option<&mut Graphics>) {
    let screen = frame.area();
    let Some(a) = layout::areas(screen) else {
        frame.render_widget(TooSmall { width: screen.width, height: screen.height }, screen);
        return;
    };
    frame.render_widget(header::Header(app), a.header);
    let graphics = graphics.zip(app.image.as_ref()).map(|(g, thumbnail)| {
        g.prepare(&thumbnail.source);
        g
    });
    frame.render_widget(media::Media(app, graphics.is_some()), a.media);
    if let (Some(g), (Some(picture), _)) = (graphics, media::split(app, a.media)) {
        g.draw(frame, picture);
    }
    for pane in Pane::ALL {
        frame.render_widget(streams::StreamPane { app, pane }, a.panes[pane.index()]);
    }
    frame.render_widget(inspector::Inspector(app), a.inspector);
    frame.render_widget(plot::Plot(app), a.plot);
    frame.render_widget(footer::StatusLine(app), a.status);
    frame.render_widget(footer::KeyHints(app), a.hints);
    if app.help {
        frame.render_widget(help::Help { scroll: app.help_scroll }, screen);
    }
}

/// What a terminal smaller than the layout shows instead.
pub struct TooSmall {
    pub width: u16,
    pub height: u16,
}

impl Widget for TooSmall {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let text = vec![
            Line::from(format!("The terminal is too small: {}×{}.", self.width, self.height)),
            Line::from(format!("proxythinker needs at least {}×{}; enlarge the window (q quits).", layout::MIN_WIDTH, layout::MIN_HEIGHT)),
        ];
        let y = area.y + area.height.saturating_sub(2) / 2;
        let rect = Rect { y, height: area.height.saturating_sub(y - area.y), ..area };
        Paragraph::new(text)
            .alignment(Alignment::Center)
            .wrap(Wrap { trim: true })
            .style(Style::default().fg(Color::Yellow))
            .render(rect, buf);
    }
}

/// The characters of a buffer, one line per row (styles dropped): what snapshot tests compare.
pub fn buffer_text(buf: &Buffer) -> String {
    let area = buf.area;
    let mut out = String::with_capacity((area.width as usize + 1) * area.height as usize);
    for y in area.top()..area.bottom() {
        let mut skip = 0;
        for x in area.left()..area.right() {
            // A wide character covers the next cell, which holds an empty symbol; skip it.
            if skip > 0 {
                skip -= 1;
                continue;
            }
            let symbol = buf[(x, y)].symbol();
            out.push_str(symbol);
            skip = Line::from(symbol).width().saturating_sub(1);
        }
        let trimmed = out.trim_end_matches(' ').len();
        out.truncate(trimmed);
        out.push('\n');
    }
    out
}
