//! The question's picture, decoded once: the model's image processor, the UI's thumbnail and its
//! terminal graphics all read the same [`SourceImage`], so they cannot disagree about it.
//!
//! Decoding follows transformers' `load_image`: the format is recognised from the content (PNG,
//! JPEG, BMP, GIF, WebP or TIFF), and the picture is turned the way it is meant to be seen as
//! Pillow's `ImageOps.exif_transpose` turns it: by the EXIF Orientation tag, or, where EXIF has
//! no such tag, by the XMP packet's `tiff:Orientation`. A portrait phone photo stored as landscape
//! pixels is therefore portrait for the model and on screen alike. Alpha is kept;
//! [`super::image::preprocess`] composites it onto white.
//!
//! Only regular files are read (a device such as `/dev/zero` or a FIFO is refused before it is
//! opened, so it can neither fill memory nor block), at most
//! [`IMAGE_FILE_BYTES`](crate::limits::IMAGE_FILE_BYTES) of them, and a picture whose header
//! declares more than [`IMAGE_PIXELS`](crate::limits::IMAGE_PIXELS) pixels is refused before its
//! pixels are decoded (the decoder's own allocation limit is set from the same figure).

use std::fmt;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader};

use crate::error::{Error, Result};

/// A decoded picture, upright, and where it came from. Cloning shares the pixels.
#[derive(Clone)]
pub struct SourceImage {
    /// The file it was read from (for an embedded or generated picture, a label for messages).
    pub path: PathBuf,
    pub image: Arc<DynamicImage>,
}

impl SourceImage {
    /// Reads and decodes an image file. A missing path, a directory, an empty file, a file that
    /// is not an image and one that does not decode are each refused with one line saying so.
    pub fn open(path: &Path) -> Result<SourceImage> {
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound {
                what: "image",
                path: path.to_path_buf(),
                hint: "check the path and the current directory".into(),
            },
            _ => Error::Io { path: path.to_path_buf(), source: e },
        })?;
        if meta.is_dir() {
            return Err(Error::image(path, "is a directory, not an image file; name a file inside it"));
        }
        if !meta.is_file() {
            return Err(Error::image(path, "is not a regular file (a device, FIFO or socket); save the picture to a file and name that"));
        }
        let limit = crate::limits::IMAGE_FILE_BYTES;
        let too_big = |size: u64| {
            Error::image(
                path,
                format!("file is {size} bytes, over the limit of {} bytes; downscale it, or raise {}", limit.get(), limit.var),
            )
        };
        if meta.len() > limit.get() {
            return Err(too_big(meta.len()));
        }
        // Bounded even if the file grows after the check.
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        let file = std::fs::File::open(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
        std::io::Read::read_to_end(&mut std::io::Read::take(file, limit.get() + 1), &mut bytes)
            .map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
        if bytes.len() as u64 > limit.get() {
            return Err(too_big(bytes.len() as u64));
        }
        SourceImage::from_bytes(&bytes, path)
    }

    /// Decodes an image file held in memory (an embedded picture); `label` names it in errors.
    pub fn from_bytes(bytes: &[u8], label: &Path) -> Result<SourceImage> {
        if bytes.is_empty() {
            return Err(Error::image(label, "file is empty (0 bytes); re-export or re-download it"));
        }
        let reader = ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| Error::Io { path: label.to_path_buf(), source: e })?;
        let Some(format) = reader.format() else {
            return Err(Error::image(
                label,
                "not a recognised image format (supported: PNG, JPEG, BMP, GIF, WebP, TIFF); convert it to PNG or JPEG",
            ));
        };
        let name = format!("{format:?}").to_uppercase();
        // The JPEG decoder fills a cut-off file with grey and says nothing (Pillow refuses it):
        // a whole JPEG has its end-of-image marker after its last scan.
        if format == image::ImageFormat::Jpeg && !jpeg_is_whole(bytes) {
            return Err(Error::image(label, "the JPEG is truncated (no end-of-image marker after its last scan); download or export it again"));
        }
        let decode_err = |e: image::ImageError| decode_error(label, &name, e);
        let mut decoder = reader.into_decoder().map_err(decode_err)?;
        // The header's size is checked before any pixel is decoded: a small file may declare a
        // huge picture.
        let pixels = crate::limits::IMAGE_PIXELS;
        let (w, h) = decoder.dimensions();
        if u64::from(w) * u64::from(h) > pixels.get() {
            return Err(Error::image(
                label,
                format!(
                    "{name} declares {w}x{h} pixels, over the limit of {} pixels; downscale it, or raise {}",
                    pixels.get(),
                    pixels.var
                ),
            ));
        }
        let mut limits = image::Limits::default();
        // 16-bit RGBA is 8 bytes a pixel; the decoder's own buffers may need as much again.
        limits.max_alloc = Some(pixels.get().saturating_mul(16));
        decoder.set_limits(limits).map_err(decode_err)?;
        let orientation = upright(&mut decoder);
        let mut image = DynamicImage::from_decoder(decoder).map_err(decode_err)?;
        image.apply_orientation(orientation);
        if image.width() == 0 || image.height() == 0 {
            return Err(Error::image(
                label,
                format!(
                    "image is {}x{} pixels, which has nothing to process; use a non-empty image",
                    image.width(),
                    image.height()
                ),
            ));
        }
        Ok(SourceImage::from_image(label, image))
    }

    /// Wraps a picture made in memory, taken as upright.
    pub fn from_image(label: impl Into<PathBuf>, image: DynamicImage) -> SourceImage {
        SourceImage { path: label.into(), image: Arc::new(image) }
    }

    /// `(width, height)` in pixels, upright.
    pub fn dimensions(&self) -> (u32, u32) {
        (self.image.width(), self.image.height())
    }
}

/// Pixels are not printed: a photo would fill the screen.
impl fmt::Debug for SourceImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (w, h) = self.dimensions();
        f.debug_struct("SourceImage")
            .field("path", &self.path)
            .field("size", &format_args!("{w}x{h}"))
            .field("color", &self.image.color())
            .finish()
    }
}

/// Same path and same pixels (shared pixels compare without reading them).
impl PartialEq for SourceImage {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path && (Arc::ptr_eq(&self.image, &other.image) || self.image == other.image)
    }
}

/// The transform that makes the decoded pixels upright, as Pillow's `exif_transpose` chooses it:
/// EXIF's Orientation tag (IFD0's, for a TIFF) when there is one, and only where EXIF has no such
/// tag, XMP's `tiff:Orientation`. Metadata that cannot be read leaves the pixels as stored, as
/// it does in Pillow.
fn upright(decoder: &mut impl ImageDecoder) -> Orientation {
    let tagged = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    if tagged != Orientation::NoTransforms {
        return tagged;
    }
    // An explicit Orientation 1 in EXIF wins over XMP.
    if let Ok(Some(exif)) = decoder.exif_metadata() {
        if Orientation::from_exif_chunk(&exif).is_some() {
            return Orientation::NoTransforms;
        }
    }
    match decoder.xmp_metadata() {
        Ok(Some(xmp)) => xmp_orientation(&xmp).unwrap_or(Orientation::NoTransforms),
        _ => Orientation::NoTransforms,
    }
}

/// The first `tiff:Orientation="N"` or `<tiff:Orientation>N` in an XMP packet, read as Pillow
/// reads it (the pattern `tiff:Orientation(="|>)([0-9])`).
fn xmp_orientation(xmp: &[u8]) -> Option<Orientation> {
    const KEY: &[u8] = b"tiff:Orientation";
    let digit = (0..xmp.len()).find_map(|at| {
        let rest = xmp[at..].strip_prefix(KEY)?;
        let value = rest.strip_prefix(b"=\"").or_else(|| rest.strip_prefix(b">"))?;
        value.first().filter(|d| d.is_ascii_digit()).copied()
    })?;
    Orientation::from_exif(digit - b'0')
}

/// Whether a JPEG's end-of-image marker (`FF D9`) comes after its last start-of-scan (`FF DA`).
fn jpeg_is_whole(bytes: &[u8]) -> bool {
    let last = |marker: u8| bytes.windows(2).rposition(|w| w == [0xFF, marker]);
    match (last(0xDA), last(0xD9)) {
        (Some(scan), Some(end)) => end > scan,
        (None, Some(_)) => true,
        _ => false,
    }
}

fn decode_error(path: &Path, format: &str, e: image::ImageError) -> Error {
    let msg = match e {
        image::ImageError::Unsupported(u) => {
            format!("this {format} variant is not supported ({u}); convert the image to 8-bit PNG or JPEG")
        }
        image::ImageError::Limits(l) => format!("image is too large to decode ({l}); downscale it first"),
        other => format!("cannot decode as {format} ({other}); the file may be truncated or corrupt, re-export it"),
    };
    Error::image(path, msg.replace('\n', " "))
}
