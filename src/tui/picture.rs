//! The question's image as the UI shows it: a small RGB thumbnail kept in the app state, drawn
//! with half-block characters (`▀`: the upper pixel is the foreground colour, the lower one the
//! background), which every colour terminal and ratatui's test backend can show.
//!
//! The thumbnail is made once, when the image is opened, so drawing a frame only samples it.

use std::path::Path;

use crate::error::{Error, Result};

/// Thumbnails are at most this many pixels on a side: more than any image pane shows.
const LARGEST: u32 = 160;

/// A downscaled RGB image.
#[derive(Debug, Clone, PartialEq)]
pub struct Thumbnail {
    pub width: u32,
    pub height: u32,
    /// Row-major, `width * height` pixels.
    pub pixels: Vec<[u8; 3]>,
}

impl Thumbnail {
    /// Opens an image file and shrinks it to a thumbnail.
    pub fn open(path: &Path) -> Result<Thumbnail> {
        let img = image::ImageReader::open(path)
            .map_err(|e| Error::image(path, format!("cannot open it ({e}); give the path of a PNG, JPEG, WebP, GIF, BMP or TIFF file")))?
            .with_guessed_format()
            .map_err(|e| Error::image(path, format!("cannot read it ({e})")))?
            .decode()
            .map_err(|e| Error::image(path, format!("not a readable image ({e}); give the path of a PNG, JPEG, WebP, GIF, BMP or TIFF file")))?;
        Ok(Thumbnail::from_image(&img))
    }

    /// Decodes an image held in memory (the embedded demo image).
    pub fn from_bytes(bytes: &[u8]) -> Result<Thumbnail> {
        let img = image::load_from_memory(bytes).map_err(|e| Error::invalid(format!("embedded image: {e}")))?;
        Ok(Thumbnail::from_image(&img))
    }

    fn from_image(img: &image::DynamicImage) -> Thumbnail {
        let small = img.thumbnail(LARGEST, LARGEST).to_rgb8();
        let (width, height) = small.dimensions();
        let pixels = small.pixels().map(|p| p.0).collect();
        Thumbnail { width, height, pixels }
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
