//! The Qwen2-VL image processor (`processor::image`) against transformers and Pillow: golden
//! fixtures written by tests/fixtures/generate_processor.py (`smart_resize` cases, Pillow bicubic
//! resizes, whole preprocessing runs, bit-exact), the resampler's own invariants, RGB conversion,
//! and the reading of `preprocessor_config.json`.

use std::path::Path;

use base64::Engine as _;
use image::{DynamicImage, RgbImage};
use proxythinker::processor::image::*;
use proxythinker::{Error, Result};
use serde_json::{json, Value};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/processor");

fn fixture(name: &str) -> Value {
    let path = format!("{FIXTURES}/{name}");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}; run tests/fixtures/generate_processor.py"));
    serde_json::from_str(&text).unwrap()
}

fn b64decode(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64 in a fixture")
}

/// Little-endian f32s, as the fixtures store `pixel_values`.
fn f32s_le(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn fnv1a64(data: &[u8]) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

/// Mirror of `hash32` in generate_processor.py.
fn hash32(seed: u32, x: u32, y: u32, c: u32) -> u32 {
    let mut h = seed
        .wrapping_mul(0x9E3779B1)
        .wrapping_add(x.wrapping_mul(0x85EBCA77))
        .wrapping_add(y.wrapping_mul(0xC2B2AE3D))
        .wrapping_add(c.wrapping_mul(0x27D4EB2F));
    h ^= h >> 15;
    h = h.wrapping_mul(0x2C1B3C6D);
    h ^= h >> 12;
    h = h.wrapping_mul(0x297A2D39);
    h ^= h >> 15;
    h
}

/// Mirror of `synth` in generate_processor.py: row-major, interleaved channels.
fn synth(width: u32, height: u32, channels: u32, seed: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity((width * height * channels) as usize);
    for y in 0..height {
        for x in 0..width {
            for c in 0..channels {
                let n = hash32(seed, x, y, c);
                let v = if c == 3 {
                    match (n >> 8) & 3 {
                        0 => 0,
                        1 => 255,
                        _ => n & 0xff,
                    }
                } else if x < width / 2 {
                    n & 0xff
                } else {
                    let g = match c {
                        0 => x * 255 / (width - 1).max(1),
                        1 => y * 255 / (height - 1).max(1),
                        _ => (x + y) * 255 / (width + height - 2).max(1),
                    } as i64;
                    (g + (n & 31) as i64 - 16).clamp(0, 255) as u32
                };
                out.push(v as u8);
            }
        }
    }
    out
}

fn synth_image(mode: &str, w: u32, h: u32, seed: u32) -> (DynamicImage, Vec<u8>) {
    match mode {
        "RGB" => {
            let raw = synth(w, h, 3, seed);
            (
                DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, raw.clone()).unwrap()),
                raw,
            )
        }
        "RGBA" => {
            let raw = synth(w, h, 4, seed);
            let img = image::RgbaImage::from_raw(w, h, raw.clone()).unwrap();
            (DynamicImage::ImageRgba8(img), raw)
        }
        "L" => {
            let raw = synth(w, h, 1, seed);
            let img = image::GrayImage::from_raw(w, h, raw.clone()).unwrap();
            (DynamicImage::ImageLuma8(img), raw)
        }
        other => panic!("unknown mode {other}"),
    }
}

fn u(v: &Value) -> usize {
    v.as_u64().unwrap() as usize
}

// ---- smart_resize ----

#[test]
fn smart_resize_matches_transformers_table() {
    let table = fixture("smart_resize.json");
    let cases = table["cases"].as_array().unwrap();
    assert!(cases.len() > 300);
    let mut failures = Vec::new();
    for case in cases {
        let got = smart_resize(
            u(&case["h"]),
            u(&case["w"]),
            u(&case["factor"]),
            u(&case["min"]),
            u(&case["max"]),
        );
        let ok = match (&case["out"], &got) {
            (Value::String(s), Err(_)) => s == "error",
            (Value::Array(hw), Ok((h, w))) => u(&hw[0]) == *h && u(&hw[1]) == *w,
            _ => false,
        };
        if !ok {
            failures.push(format!("{case} -> {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn smart_resize_rounds_half_to_even() {
    // 42/28 = 1.5 -> 2, 70/28 = 2.5 -> 2, 98/28 = 3.5 -> 4.
    assert_eq!(smart_resize(42, 560, 28, 1, usize::MAX).unwrap(), (56, 560));
    assert_eq!(smart_resize(70, 560, 28, 1, usize::MAX).unwrap(), (56, 560));
    assert_eq!(
        smart_resize(98, 560, 28, 1, usize::MAX).unwrap(),
        (112, 560)
    );
}

#[test]
fn smart_resize_bounds_and_errors() {
    // Tiny images are scaled up to at least min_pixels (no error in transformers 5.24).
    let (h, w) = smart_resize(1, 1, 28, 3136, 1003520).unwrap();
    assert_eq!((h, w), (56, 56));
    // Large images are scaled down below max_pixels.
    let (h, w) = smart_resize(3024, 4032, 28, 3136, 1003520).unwrap();
    assert!(h * w <= 1003520 && h % 28 == 0 && w % 28 == 0);
    assert!(smart_resize(201, 1, 28, 3136, 1003520).is_err());
    assert!(smart_resize(200, 1, 28, 3136, 1003520).is_ok());
    assert!(smart_resize(0, 10, 28, 3136, 1003520).is_err());
    assert!(smart_resize(10, 10, 0, 3136, 1003520).is_err());
    assert!(smart_resize(10, 10, 28, 0, 1003520).is_err());
    let err = smart_resize(1, 300, 28, 3136, 1003520)
        .unwrap_err()
        .to_string();
    assert!(err.contains("aspect ratio") && !err.contains('\n'), "{err}");
}

// ---- resize ----

/// Max absolute byte difference and number of differing bytes.
fn byte_diff(got: &[u8], want: &[u8]) -> (i32, usize) {
    assert_eq!(got.len(), want.len());
    let max = got
        .iter()
        .zip(want)
        .map(|(&a, &b)| (a as i32 - b as i32).abs())
        .max();
    (
        max.unwrap_or(0),
        got.iter().zip(want).filter(|(a, b)| a != b).count(),
    )
}

#[test]
fn resize_matches_pillow_bit_exactly() {
    let fx = fixture("resize.json");
    let mut report = Vec::new();
    let mut vertical_first_cases = 0;
    for case in fx["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (sw, sh) = (u(&case["src_w"]) as u32, u(&case["src_h"]) as u32);
        let (dw, dh) = (u(&case["dst_w"]) as u32, u(&case["dst_h"]) as u32);
        let raw = synth(sw, sh, 3, u(&case["seed"]) as u32);
        assert_eq!(
            fnv1a64(&raw),
            case["input_fnv1a64"].as_str().unwrap(),
            "{name}: input"
        );
        let src = RgbImage::from_raw(sw, sh, raw).unwrap();

        let want = b64decode(case["output_b64"].as_str().unwrap());
        let got = resize_bicubic(&src, dw, dh);
        assert_eq!((got.width(), got.height()), (dw, dh), "{name}");
        let (max, count) = byte_diff(got.as_raw(), &want);
        if max != 0 {
            report.push(format!(
                "{name} (Pillow 13): {count} bytes differ, max diff {max}"
            ));
        }

        // Pillow <= 12 order: stored only where it differs from Pillow 13's.
        let legacy = match case.get("horizontal_first_output_b64") {
            Some(b) => {
                vertical_first_cases += 1;
                b64decode(b.as_str().unwrap())
            }
            None => want,
        };
        let got = resize_bicubic_with(&src, dw, dh, PassOrder::HorizontalFirst);
        let (max, count) = byte_diff(got.as_raw(), &legacy);
        if max != 0 {
            report.push(format!(
                "{name} (horizontal first): {count} bytes differ, max {max}"
            ));
        }
    }
    assert!(
        vertical_first_cases >= 2,
        "fixture lacks vertical-first cases"
    );
    assert!(report.is_empty(), "{}", report.join("\n"));
}

#[test]
fn pass_order_rule() {
    let v = |iw, ih, ow, oh| PassOrder::Pillow13.vertical_first(iw, ih, ow, oh);
    assert!(v(45, 30, 56, 28)); // width up, height down
    assert!(!v(100, 100, 60, 50)); // 40 columns lost, 50 rows: not more than twice
    assert!(v(101, 103, 76, 51)); // 25 columns, 52 rows
    assert!(!v(101, 103, 75, 51)); // 26 columns, 52 rows: exactly twice is not enough
    assert!(!v(100, 100, 200, 110)); // height up
    assert!(!PassOrder::HorizontalFirst.vertical_first(45, 30, 56, 28));
}

#[test]
fn resize_same_size_is_a_copy_and_constant_stays_constant() {
    let raw = synth(9, 7, 3, 42);
    let img = RgbImage::from_raw(9, 7, raw).unwrap();
    assert_eq!(resize_bicubic(&img, 9, 7), img);
    let flat = RgbImage::from_pixel(33, 17, image::Rgb([200, 7, 255]));
    for (w, h) in [(56, 28), (5, 3), (33, 40), (70, 17), (1, 1)] {
        let out = resize_bicubic(&flat, w, h);
        assert!(out.pixels().all(|p| p.0 == [200, 7, 255]), "{w}x{h}");
    }
    assert_eq!(resize_bicubic(&flat, 0, 5).as_raw().len(), 0);
}

#[test]
fn weights_sum_to_one_in_fixed_point() {
    for (i, o) in [(37, 56), (500, 28), (7, 7), (1, 28), (100, 99)] {
        let aw = AxisWeights::new(i, o);
        for xx in 0..o {
            let (start, k) = aw.window(xx);
            assert!(start + k.len() <= i);
            let s: i64 = k.iter().map(|&w| w as i64).sum();
            assert!(
                (s - (1 << PRECISION_BITS)).abs() <= k.len() as i64,
                "{i}->{o} @{xx}: {s}"
            );
        }
    }
}

// ---- RGB conversion ----

#[test]
fn compositing_over_white_matches_pillow_formula() {
    assert_eq!(over_white(10, 255), 10);
    assert_eq!(over_white(10, 0), 255);
    assert_eq!(over_white(0, 128), 127);
    // Exhaustive check against the exact rounded division by 255.
    for c in 0..=255u32 {
        for a in 0..=255u32 {
            let exact = (c * a + 255 * (255 - a)) as f64 / 255.0;
            let got = over_white(c as u8, a as u8) as f64;
            assert!((got - exact).abs() <= 0.5 + 1e-9, "c={c} a={a}");
        }
    }
}

#[test]
fn to_rgb_handles_pil_modes() {
    let la = image::GrayAlphaImage::from_raw(2, 1, vec![100, 255, 100, 0]).unwrap();
    let rgb = to_rgb(&DynamicImage::ImageLumaA8(la));
    assert_eq!(rgb.as_raw(), &[100, 100, 100, 255, 255, 255]);
    let g16 =
        image::ImageBuffer::<image::Luma<u16>, _>::from_raw(3, 1, vec![7u16, 255, 4000]).unwrap();
    let rgb = to_rgb(&DynamicImage::ImageLuma16(g16));
    assert_eq!(rgb.as_raw(), &[7, 7, 7, 255, 255, 255, 255, 255, 255]);
    let c16 =
        image::ImageBuffer::<image::Rgb<u16>, _>::from_raw(1, 1, vec![0x80ffu16, 0x12ff, 0x00ff])
            .unwrap();
    assert_eq!(
        to_rgb(&DynamicImage::ImageRgb16(c16)).as_raw(),
        &[0x80, 0x12, 0x00]
    );
}

// ---- full processor ----

#[test]
fn preprocess_matches_transformers_pil_processor() {
    let fx = fixture("preprocess.json");
    let mut report = Vec::new();
    for case in fx["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let cfg = ImageProcessorConfig::from_json_str(
            &case["config"].to_string(),
            Path::new("fixture-config.json"),
        )
        .unwrap();
        let (w, h) = (u(&case["w"]) as u32, u(&case["h"]) as u32);
        let (img, raw) = synth_image(
            case["mode"].as_str().unwrap(),
            w,
            h,
            u(&case["seed"]) as u32,
        );
        assert_eq!(
            fnv1a64(&raw),
            case["input_fnv1a64"].as_str().unwrap(),
            "{name}: input"
        );
        let out = preprocess(&img, &cfg).unwrap();
        let grid: Vec<usize> = case["grid_thw"].as_array().unwrap().iter().map(u).collect();
        assert_eq!(out.grid_thw.to_vec(), grid, "{name}");
        let rhw: Vec<usize> = case["resized_hw"]
            .as_array()
            .unwrap()
            .iter()
            .map(u)
            .collect();
        assert_eq!(vec![out.resized.0, out.resized.1], rhw, "{name}");
        let shape: Vec<usize> = case["shape"].as_array().unwrap().iter().map(u).collect();
        assert_eq!(vec![out.num_patches, out.patch_dim], shape, "{name}");
        assert_eq!(out.pixel_values.len(), out.num_patches * out.patch_dim);

        let (idx, want): (Vec<usize>, Vec<f32>) = match case.get("pixel_values_b64") {
            Some(b) => {
                let want = f32s_le(&b64decode(b.as_str().unwrap()));
                ((0..want.len()).collect(), want)
            }
            None => (
                case["sample_index"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(u)
                    .collect(),
                f32s_le(&b64decode(case["sample_values_b64"].as_str().unwrap())),
            ),
        };
        let max_diff = idx
            .iter()
            .zip(&want)
            .map(|(&i, &w)| (out.pixel_values[i] - w).abs())
            .fold(0f32, f32::max);
        let sum: f64 = out.pixel_values.iter().map(|&v| v as f64).sum();
        let want_sum = case["sum"].as_f64().unwrap();
        // Bit-exact: the resize is exact and the float steps use the same precisions.
        if max_diff != 0.0 || (sum - want_sum).abs() > 1e-6 * want_sum.abs().max(1.0) {
            report.push(format!(
                "{name}: max abs diff {max_diff}, sum {sum} vs {want_sum}"
            ));
        }
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
}

#[test]
fn patch_layout_follows_transformers_order() {
    // A 4x8 image, patch 2, merge 2, temporal 2: value encodes (channel, y, x).
    let cfg = ImageProcessorConfig {
        patch_size: 2,
        merge_size: 2,
        temporal_patch_size: 2,
        do_resize: false,
        do_rescale: false,
        do_normalize: false,
        ..Default::default()
    };
    let img = RgbImage::from_fn(8, 4, |x, y| image::Rgb([(y * 8 + x) as u8, 100, 200]));
    let out = preprocess(&DynamicImage::ImageRgb8(img), &cfg).unwrap();
    assert_eq!(out.grid_thw, [1, 2, 4]);
    assert_eq!((out.num_patches, out.patch_dim), (8, 3 * 2 * 2 * 2));
    let row = |r: usize| &out.pixel_values[r * 24..(r + 1) * 24];
    // Row 0: block (0,0), patch (0,0): pixels (y,x) in {0,1}x{0,1}, red twice, then green...
    assert_eq!(&row(0)[..8], &[0., 1., 8., 9., 0., 1., 8., 9.]);
    assert_eq!(&row(0)[8..12], &[100.; 4]);
    // Row 1: same block, patch (0,1) -> x 2..4.
    assert_eq!(&row(1)[..4], &[2., 3., 10., 11.]);
    // Row 2: patch (1,0) -> y 2..4.
    assert_eq!(&row(2)[..4], &[16., 17., 24., 25.]);
    // Row 4: next block to the right -> x 4..6.
    assert_eq!(&row(4)[..4], &[4., 5., 12., 13.]);
}

#[test]
fn preprocess_errors_are_clear() {
    let cfg = ImageProcessorConfig {
        do_resize: false,
        ..Default::default()
    };
    let img = DynamicImage::ImageRgb8(RgbImage::new(30, 28));
    let err = preprocess(&img, &cfg).unwrap_err().to_string();
    assert!(err.contains("multiples") && err.contains("28"), "{err}");
    let cfg = ImageProcessorConfig::default();
    let img = DynamicImage::ImageRgb8(RgbImage::new(1000, 2));
    assert!(preprocess(&img, &cfg)
        .unwrap_err()
        .to_string()
        .contains("aspect ratio"));
}

#[test]
fn to_tensor_has_patch_shape() {
    let img = DynamicImage::ImageRgb8(RgbImage::from_raw(37, 23, synth(37, 23, 3, 1)).unwrap());
    let cfg = ImageProcessorConfig::default();
    let p = preprocess(&img, &cfg).unwrap();
    let t = to_tensor(&p, &candle_core::Device::Cpu).unwrap();
    assert_eq!(t.dims(), &[p.num_patches, 1176]);
    assert_eq!(p.grid_thw, [1, 4, 6]);
    assert_eq!(p.resized, (56, 84));
    let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(v, p.pixel_values);
}

// ---- config ----

fn parse(v: Value) -> Result<ImageProcessorConfig> {
    ImageProcessorConfig::from_json_str(&v.to_string(), Path::new("preprocessor_config.json"))
}

#[test]
#[allow(clippy::excessive_precision)]
fn config_defaults_match_transformers() {
    let c = ImageProcessorConfig::default();
    assert_eq!((c.min_pixels, c.max_pixels), (3136, 1003520));
    assert_eq!(
        (c.patch_size, c.temporal_patch_size, c.merge_size),
        (14, 2, 2)
    );
    assert_eq!(c.image_mean, [0.48145466, 0.4578275, 0.40821073]);
    assert_eq!(c.image_std, [0.26862954, 0.26130258, 0.27577711]);
    assert_eq!(c.rescale_factor, 1.0 / 255.0);
    assert!(c.do_resize && c.do_rescale && c.do_normalize && c.do_convert_rgb);
    assert_eq!(parse(json!({})).unwrap(), c);
}

#[test]
fn config_parses_hub_file_of_qwen25_vl() {
    let c = parse(json!({
        "min_pixels": 3136,
        "max_pixels": 12845056,
        "patch_size": 14,
        "temporal_patch_size": 2,
        "merge_size": 2,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
        "image_processor_type": "Qwen2VLImageProcessor",
        "processor_class": "Qwen2_5_VLProcessor"
    }))
    .unwrap();
    assert_eq!((c.min_pixels, c.max_pixels), (3136, 12845056));
    assert_eq!(c.image_mean, OPENAI_CLIP_MEAN);
}

#[test]
fn config_size_styles_and_precedence() {
    let c = parse(json!({"size": {"shortest_edge": 100, "longest_edge": 5000}})).unwrap();
    assert_eq!((c.min_pixels, c.max_pixels), (100, 5000));
    // Top-level keys win over `size`, as in Qwen2VLImageProcessor.__init__.
    let c = parse(json!({"min_pixels": 7, "size": {"shortest_edge": 100, "longest_edge": 5000}}))
        .unwrap();
    assert_eq!((c.min_pixels, c.max_pixels), (7, 5000));
    let c = parse(json!({"size": {"min_pixels": 9, "max_pixels": 99}})).unwrap();
    assert_eq!((c.min_pixels, c.max_pixels), (9, 99));
    let c = parse(json!({"max_pixels": 4704})).unwrap();
    assert_eq!((c.min_pixels, c.max_pixels), (3136, 4704));
    let c = parse(json!({"min_pixels": null, "size": null, "image_std": 0.5})).unwrap();
    assert_eq!((c.min_pixels, c.image_std), (3136, [0.5; 3]));
    let err = parse(json!({"size": {"shortest_edge": 100}}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("longest_edge"), "{err}");
}

#[test]
fn config_errors_name_the_key() {
    for (v, key) in [
        (json!({"patch_size": "14"}), "`patch_size`"),
        (json!({"patch_size": 14.5}), "`patch_size`"),
        (json!({"min_pixels": -1}), "`min_pixels`"),
        (
            json!({"size": {"longest_edge": "big"}}),
            "`size.longest_edge`",
        ),
        (json!({"image_mean": [0.5, 0.5]}), "`image_mean`"),
        (json!({"do_resize": 1}), "`do_resize`"),
        (json!({"rescale_factor": "1/255"}), "`rescale_factor`"),
        (json!({"size": 224}), "`size`"),
        (json!({"size": []}), "`size` must be an object"),
        (json!({"resample": 2}), "`resample`"),
        (json!({"merge_size": 0}), "`merge_size`"),
    ] {
        let err = parse(v.clone()).unwrap_err().to_string();
        assert!(err.contains(key), "{v}: {err}");
        assert!(err.starts_with("preprocessor_config.json: "), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
    assert!(parse(json!({"resample": 3, "unknown": [1, 2]})).is_ok());
    let err = ImageProcessorConfig::from_json_str("{", Path::new("p.json")).unwrap_err();
    assert!(err.to_string().contains("not valid JSON"), "{err}");
    let err = ImageProcessorConfig::from_json_str("[]", Path::new("p.json")).unwrap_err();
    assert!(err.to_string().contains("object"), "{err}");
}

#[test]
fn config_from_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("preprocessor_config.json");
    let err = ImageProcessorConfig::from_file(&path).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    std::fs::write(&path, r#"{"max_pixels": 12845056}"#).unwrap();
    assert_eq!(
        ImageProcessorConfig::from_file(&path).unwrap().max_pixels,
        12845056
    );
}

// ---- loading: see tests/source_image.rs ----
