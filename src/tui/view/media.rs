//! The question and its image. The image is drawn with half-blocks (`▀`, upper pixel in the
//! foreground colour, lower pixel in the background), which work in every colour terminal,
//! unless the terminal speaks a graphics protocol (`tui::graphics` then draws it in the same place).

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget, Wrap};

use crate::tui::app::App;
use crate::tui::picture::Thumbnail;

/// The question and its picture; the flag says the picture is drawn by terminal graphics (see
/// `tui::graphics`), so only its place is kept here.
pub struct Media<'a>(pub &'a App, pub bool);

/// A thumbnail drawn into `area` at its aspect ratio, from the top-left corner.
pub struct HalfBlockImage<'a>(pub &'a Thumbnail);

impl Widget for HalfBlockImage<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let img = self.0;
        let (cols, rows) = img.fit(area.width, area.height);
        for row in 0..rows {
            for col in 0..cols {
                let fx = (col as f32 + 0.5) / cols as f32;
                let top = img.sample(fx, (2 * row) as f32 / (2 * rows) as f32 + 0.25 / rows as f32);
                let bottom = img.sample(fx, (2 * row + 1) as f32 / (2 * rows) as f32 + 0.25 / rows as f32);
                let cell = &mut buf[(area.x + col, area.y + row)];
                cell.set_symbol("▀");
                cell.set_fg(Color::Rgb(top[0], top[1], top[2]));
                cell.set_bg(Color::Rgb(bottom[0], bottom[1], bottom[2]));
            }
        }
    }
}

/// Where the picture goes in the media area (up to a third of the width, at its aspect ratio),
/// and where the text goes; no picture on a one- or two-line area.
pub fn split(app: &App, area: Rect) -> (Option<Rect>, Rect) {
    match (&app.image, area.height >= 3) {
        (Some(img), true) => {
            let (cols, _) = img.fit(area.width / 3, area.height);
            let picture = Rect { width: cols, ..area };
            (Some(picture), Rect { x: area.x + cols + 1, width: area.width.saturating_sub(cols + 1), ..area })
        }
        _ => (None, area),
    }
}

impl Widget for Media<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let Media(app, picture_drawn_elsewhere) = self;
        let (picture, text_area) = split(app, area);
        if let (Some(img), Some(rect), false) = (&app.image, picture, picture_drawn_elsewhere) {
            HalfBlockImage(img).render(rect, buf);
        }
        let image = match &app.info.image_path {
            Some(p) => p.display().to_string(),
            None => "no image".to_string(),
        };
        let lines = vec![
            Line::from(vec![Span::styled("Question ", Style::default().fg(Color::Cyan).bold()), Span::raw(app.info.question.as_str())]),
            Line::from(Span::styled(format!("image: {image}"), Style::default().fg(Color::DarkGray))),
        ];
        Paragraph::new(lines).wrap(Wrap { trim: false }).render(text_area, buf);
    }
}
