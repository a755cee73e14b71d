//! The question's image as the UI shows it: a small RGB thumbnail kept in the app state, drawn
//! with half-block characters (`▀`: the upper pixel is the foreground colour, the lower one the
//! background), which every colour terminal and ratatui's test backend can show.
//!
//! The thumbnail is made once, when the image is opened, so drawing a frame only samples it. It
//! keeps the decoded [`SourceImage`] it was made from: terminal graphics draw that, and a restart
//! prepares the model's input from it, so the picture is decoded once and seen the same way up
//! everywhere.

use std::path::Path;

use crate::error::Result;
use crate::processor::SourceImage;

/// Thumbnails are at most this many pixels on a side: more than any image pane shows.
const LARGEST: u32 = 160;

/// A downscaled RGB image and the picture it shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Thumbnail {
    pub width: u32,
    pub height: u32,
    /// Row-major, `width * height` pixels.
    pub pixels: Vec<[u8; 3]>,
    /// The full picture, upright, shared (not copied) with whoever else needs it.
    pub source: SourceImage,
}

impl Thumbnail {
    /// Opens an image file (see [`SourceImage::open`]) and shrinks it to a thumbnail.
    pub fn open(path: &Path) -> Result<Thumbnail> {
        Ok(Thumbnail::from_source(&SourceImage::open(path)?))
    }

    /// Shrinks a decoded picture to a thumbnail that keeps it.
    pub fn from_source(source: &SourceImage) -> Thumbnail {
        let small = source.image.thumbnail(LARGEST, LARGEST).to_rgb8();
        let (width, height) = small.dimensions();
        let pixels = small.pixels().map(|p| p.0).collect();
        Thumbnail { width, height, pixels, source: source.clone() }
    }

    /// The pixel nearest to (x, y) given in [0, 1) of the width and height.
    pub fn sample(&self, fx: f32, fy: f32) -> [u8; 3] {
        if self.width == 0 || self.height == 0 {
            return [0, 0, 0];
        }
        let x = ((fx * self.width as f32) as u32).min(self.width - 1);
        let y = ((fy * self.height as f32) as u32).min(self.height - 1);
        self.pixels[(y * self.width + x) as usize]
    }

    /// The largest (columns, rows) of cells that show the image at its aspect ratio inside
    /// `cols × rows` cells, a cell being one pixel wide and two pixels tall (half-blocks).
    pub fn fit(&self, cols: u16, rows: u16) -> (u16, u16) {
        if self.width == 0 || self.height == 0 || cols == 0 || rows == 0 {
            return (0, 0);
        }
        let aspect = self.width as f32 / self.height as f32;
        // Pixel height available is 2 per row; terminal cells are about twice as tall as wide,
        // so a half-block pixel is roughly square.
        let mut w = cols as f32;
        let mut h = w / aspect / 2.0;
        if h > rows as f32 {
            h = rows as f32;
            w = h * 2.0 * aspect;
        }
        ((w.round() as u16).clamp(1, cols), (h.round() as u16).clamp(1, rows))
    }
}
