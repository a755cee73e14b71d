//! Decoding the question's picture (`processor::SourceImage`): clear errors for files that are not
//! usable images, and orientation as transformers' `load_image` applies it (Pillow's
//! `ImageOps.exif_transpose`), checked against pictures written by
//! tests/fixtures/generate_orientation.py. A portrait phone photo stored sideways must be the same
//! way up for the model and for the UI's thumbnail (whose decoded picture terminal graphics draw).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Device;
use common::*;
use proxythinker::loader::Checkpoint;
use proxythinker::processor::image::to_rgb;
use proxythinker::prepare::prepare_prompt;
use proxythinker::processor::{prompt, SourceImage};
use proxythinker::tui::picture::Thumbnail;
use proxythinker::Error;

fn orientation(name: &str) -> PathBuf {
    fixtures().join("orientation").join(name)
}

fn open(path: &Path) -> SourceImage {
    SourceImage::open(path).unwrap_or_else(|e| panic!("{e}"))
}

/// The upright picture's pixels, from a file stored without any orientation.
fn upright() -> image::RgbImage {
    open(&orientation("upright.png")).image.to_rgb8()
}

#[test]
fn open_reports_problems_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.png");
    let err = SourceImage::open(&missing).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("nope.png"));

    let err = SourceImage::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("directory"), "{err}");

    let empty = dir.path().join("empty.jpg");
    std::fs::write(&empty, b"").unwrap();
    let err = SourceImage::open(&empty).unwrap_err().to_string();
    assert!(err.contains("empty"), "{err}");

    let text = dir.path().join("notes.png");
    std::fs::write(&text, b"hello, this is not an image").unwrap();
    let err = SourceImage::open(&text).unwrap_err().to_string();
    assert!(err.contains("not a recognised image format"), "{err}");

    // A PNG signature followed by garbage: recognised, but undecodable.
    let broken = dir.path().join("broken.png");
    std::fs::write(&broken, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDRgarbage").unwrap();
    let err = SourceImage::open(&broken).unwrap_err().to_string();
    assert!(err.contains("PNG") && !err.contains('\n'), "{err}");

    // Bytes in memory are named by their label.
    let err = SourceImage::from_bytes(b"GIF", Path::new("embedded.gif")).unwrap_err().to_string();
    assert!(err.contains("embedded.gif") && !err.contains('\n'), "{err}");
}

#[test]
fn open_keeps_alpha_for_the_processor_to_composite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.png");
    let rgba = image::RgbaImage::from_raw(2, 1, vec![10, 20, 30, 255, 10, 20, 30, 0]).unwrap();
    rgba.save(&path).unwrap();
    let source = open(&path);
    assert_eq!(source.image.color(), image::ColorType::Rgba8);
    assert_eq!(to_rgb(&source.image).as_raw(), &[10, 20, 30, 255, 255, 255]);
    assert_eq!(source.path, path);
    // Clones share the pixels.
    assert!(Arc::ptr_eq(&source.clone().image, &source.image));
}

#[test]
fn every_exif_orientation_is_turned_upright_as_pillow_turns_it() {
    let want = upright();
    for n in 1..=8 {
        let got = open(&orientation(&format!("orientation_{n}.png"))).image.to_rgb8();
        assert_eq!(got.dimensions(), want.dimensions(), "orientation {n}");
        assert_eq!(got.as_raw(), want.as_raw(), "orientation {n}");
    }
}

#[test]
fn xmp_orientation_counts_only_where_exif_has_no_orientation_tag() {
    let want = upright();
    for name in ["xmp_6.png", "xmp_8_element.png", "exif_1_xmp_6.png"] {
        let got = open(&orientation(name)).image.to_rgb8();
        assert_eq!(got.dimensions(), want.dimensions(), "{name}");
        assert_eq!(got.as_raw(), want.as_raw(), "{name}");
    }
}

/// The mean of each channel over the merged block of patches that holds patch `(y, x)`, from the
/// model's `pixel_values` (rows ordered as `preprocess` documents; values normalised).
fn block_means(pixels: &[f32], patch_dim: usize, grid_w: usize, merge: usize, y: usize, x: usize) -> [f32; 3] {
    let first_row = ((y / merge) * (grid_w / merge) + x / merge) * merge * merge;
    let rows = &pixels[first_row * patch_dim..(first_row + merge * merge) * patch_dim];
    let per_channel = patch_dim / 3;
    let mut sums = [0f32; 3];
    for row in rows.chunks_exact(patch_dim) {
        for (c, sum) in sums.iter_mut().enumerate() {
            *sum += row[c * per_channel..(c + 1) * per_channel].iter().sum::<f32>();
        }
    }
    sums.map(|s| s / (per_channel * merge * merge) as f32)
}

#[test]
fn a_portrait_photo_stored_sideways_is_portrait_for_the_thumbnail_and_the_model() {
    // 168x112 landscape pixels with EXIF Orientation 6: a 112x168 portrait scene, red at the top
    // left, green top right, blue bottom left, yellow bottom right.
    let source = open(&orientation("portrait_exif6.jpg"));
    assert_eq!(source.dimensions(), (112, 168));

    let thumbnail = Thumbnail::from_source(&source);
    assert!(thumbnail.width < thumbnail.height, "thumbnail {}x{}", thumbnail.width, thumbnail.height);
    assert!(Arc::ptr_eq(&thumbnail.source.image, &source.image), "the thumbnail keeps the decoded picture");
    let near = |got: [u8; 3], want: [u8; 3]| got.iter().zip(want).all(|(&g, w)| (g as i32 - w as i32).abs() < 40);
    for ((fx, fy), want) in [
        ((0.05, 0.05), [255, 0, 0]),
        ((0.95, 0.05), [0, 255, 0]),
        ((0.05, 0.95), [0, 0, 255]),
        ((0.95, 0.95), [255, 255, 0]),
    ] {
        let got = thumbnail.sample(fx, fy);
        assert!(near(got, want), "thumbnail at ({fx}, {fy}): {got:?}, want {want:?}");
    }

    let checkpoint = Checkpoint::open(&tiny("qwen2_5_vl")).unwrap_or_else(|e| panic!("{e}"));
    let tokenizer = prompt::load_tokenizer(&checkpoint.tokenizer_file).unwrap();
    let prepared = prepare_prompt(&checkpoint, &tokenizer, "Which corner is red?", Some(&source), false, &Device::Cpu)
        .unwrap_or_else(|e| panic!("{e}"));
    let input = &prepared.input.images[0];
    let [t, grid_h, grid_w] = input.grid_thw;
    assert_eq!((t, grid_h, grid_w), (1, 12, 8), "the model sees 168 rows of 112 pixels, portrait");
    let (_, patch_dim) = input.pixel_values.dims2().unwrap();
    let pixels: Vec<f32> = input.pixel_values.flatten_all().unwrap().to_vec1().unwrap();
    let merge = checkpoint.processor.merge_size;
    // Normalised with CLIP's mean and std, a full channel is about +1.9 and an empty one about -1.7.
    let (high, low) = (1.0, -1.0);
    for ((y, x), want) in [
        ((0, 0), [true, false, false]),
        ((0, grid_w - 1), [false, true, false]),
        ((grid_h - 1, 0), [false, false, true]),
        ((grid_h - 1, grid_w - 1), [true, true, false]),
    ] {
        let means = block_means(&pixels, patch_dim, grid_w, merge, y, x);
        let ok = means.iter().zip(want).all(|(&m, on)| if on { m > high } else { m < low });
        assert!(ok, "model's patch ({y}, {x}): channel means {means:?}, want {want:?} (on/off)");
    }
}
