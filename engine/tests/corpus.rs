//! The engine on the shared corpus: real photos come out right, hostile files are refused
//! with the right typed error.

use std::path::PathBuf;

use darkroom_engine::ops::Apply;
use darkroom_engine::{probe, process, EngineError, Format, InputFormat, Limits, Op, OutputSpec};

fn corpus(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("DARKROOM_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"));
    std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("corpus file {name}: {e}"))
}

fn out(name: &str, ops: Vec<Op>, format: Format) -> OutputSpec {
    OutputSpec { quality: Some(85), ..OutputSpec::new(name, ops, format) }
}

fn op(json: &str) -> Op {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

fn fit(w: u32, h: u32) -> Op {
    op(&format!(r#"{{"op":"resize","width":{w},"height":{h},"fit":"inside"}}"#))
}

#[test]
fn probe_reads_headers_of_real_photos() {
    let l = Limits::default();
    let p = probe(&corpus("M03_storm_1920x1280_exif.jpg"), &l).unwrap();
    assert_eq!((p.format, p.width, p.height), (InputFormat::Jpeg, 1920, 1280));
    let p = probe(&corpus("S02_chelsea_451x300.png"), &l).unwrap();
    assert_eq!((p.format, p.width, p.height), (InputFormat::Png, 451, 300));
    let p = probe(&corpus("D04_picosdeeuropa_q80.webp"), &l).unwrap();
    assert_eq!((p.format, p.width, p.height), (InputFormat::Webp, 3264, 2448));
}

#[test]
fn hostile_files_get_typed_errors() {
    let l = Limits::default();
    assert_eq!(probe(&corpus("X02_text_named.jpg"), &l).unwrap_err(), EngineError::NotAnImage);
    assert_eq!(probe(&corpus("X03_empty.jpg"), &l).unwrap_err(), EngineError::Empty);
    let bomb = probe(&corpus("X04_bomb_20000x20000.png"), &l).unwrap_err();
    assert!(matches!(bomb, EngineError::TooManyPixels { width: 20000, height: 20000, .. }), "{bomb:?}");
    assert!(bomb.to_string().contains("400.0 megapixels"), "{bomb}");
    // The processor refuses the bomb too, before decoding.
    let err = process(&corpus("X04_bomb_20000x20000.png"), &[out("a", vec![], Format::Png)], &l).unwrap_err();
    assert_eq!(err.code(), "too_many_pixels");
    // Half a JPEG: the header is fine, the data is not.
    let err =
        process(&corpus("X01_truncated_half.jpg"), &[out("a", vec![fit(400, 400)], Format::Jpeg)], &l).unwrap_err();
    assert_eq!(err.code(), "corrupt_image", "{err}");
}

#[test]
fn limits_are_configurable() {
    let small = Limits { max_input_bytes: 1000, ..Limits::default() };
    assert!(matches!(probe(&corpus("S01_rocket_640x427.jpg"), &small), Err(EngineError::FileTooLarge { .. })));
    let few = Limits { max_pixels: 100_000, ..Limits::default() };
    assert!(matches!(probe(&corpus("S01_rocket_640x427.jpg"), &few), Err(EngineError::TooManyPixels { .. })));
}

#[test]
fn exif_orientation_is_applied() {
    // D01 is stored landscape 3088x2056 with Orientation=6: upright it is a 2056x3088 portrait.
    let r = process(
        &corpus("D01_friends_orient6_3088x2056.jpg"),
        &[out("t", vec![fit(400, 400)], Format::Jpeg)],
        &Limits::default(),
    )
    .unwrap();
    assert_eq!((r[0].width, r[0].height), (266, 400));
    let mut raw = out("raw", vec![fit(400, 400)], Format::Jpeg);
    raw.auto_orient = false;
    let r = process(&corpus("D01_friends_orient6_3088x2056.jpg"), &[raw], &Limits::default()).unwrap();
    assert_eq!((r[0].width, r[0].height), (400, 266));
}

#[test]
fn one_decode_many_outputs() {
    let outputs = [
        out("thumb", vec![fit(400, 400)], Format::Jpeg),
        out("gray", vec![fit(800, 800), Op::Grayscale], Format::Png),
        out("rot", vec![fit(300, 300), op(r#"{"op":"rotate","degrees":90}"#)], Format::Webp),
        out("avatar", vec![op(r#"{"op":"resize","width":128,"height":128,"fit":"cover"}"#)], Format::Jpeg),
    ];
    let r = process(&corpus("M03_storm_1920x1280_exif.jpg"), &outputs, &Limits::default()).unwrap();
    let dims: Vec<_> = r.iter().map(|o| (o.name.as_str(), o.width, o.height)).collect();
    assert_eq!(dims, vec![("thumb", 400, 267), ("gray", 800, 533), ("rot", 200, 300), ("avatar", 128, 128)]);
    for o in &r {
        let img = image::load_from_memory(&o.bytes).unwrap();
        assert_eq!((img.width(), img.height()), (o.width, o.height), "{}", o.name);
    }
    let gray = image::load_from_memory(&r[1].bytes).unwrap();
    assert_eq!(gray.color(), image::ColorType::L8);
    assert_eq!(image::guess_format(&r[2].bytes).unwrap(), image::ImageFormat::WebP);
}

#[test]
fn alpha_png_flattens_onto_white_for_jpeg() {
    let r = process(
        &corpus("A01_emerald-logo_1689x1800_rgba.png"),
        &[out("j", vec![fit(200, 200)], Format::Jpeg), out("p", vec![fit(200, 200)], Format::Png)],
        &Limits::default(),
    )
    .unwrap();
    let jpeg = image::load_from_memory(&r[0].bytes).unwrap().to_rgb8();
    let corner = jpeg.get_pixel(0, 0);
    assert!(corner.0.iter().all(|&c| c > 240), "transparent corner should be white, got {corner:?}");
    let png = image::load_from_memory(&r[1].bytes).unwrap();
    assert!(png.color().has_alpha(), "PNG keeps alpha");
}

#[test]
fn every_real_photo_decodes_upright() {
    let l = Limits::default();
    let photos = [
        ("A01_emerald-logo_1689x1800_rgba.png", 1689, 1800),
        ("D01_friends_orient6_3088x2056.jpg", 2056, 3088),
        ("D02_storm_progressive.jpg", 1920, 1280),
        ("D03_storm_cmyk.jpg", 1920, 1280),
        ("D04_picosdeeuropa_q80.webp", 3264, 2448),
        ("D05_picosdeeuropa_1024x768_16bit.png", 1024, 768),
        ("L01_painting-colors_6000x4000.jpg", 6000, 4000),
        ("L02_kleiber_6028x3391.jpg", 6028, 3391),
        ("L03_seeding_5312x2988_progressive.jpg", 5312, 2988),
        ("M01_picosdeeuropa_3264x2448.jpg", 3264, 2448),
        ("M02_wood_2560x1920_exif.jpg", 2560, 1920),
        ("S01_rocket_640x427.jpg", 640, 427),
        ("S03_camera_512x512_gray.png", 512, 512),
    ];
    for (name, w, h) in photos {
        let img = darkroom_engine::decode::decode(&corpus(name), &l, true).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((img.width(), img.height()), (w, h), "{name}");
    }
}

#[test]
fn heic_photos_decode_like_the_jpeg_they_came_from() {
    let l = Limits::default();
    let heic = corpus("D06_storm_1920x1280.heic");
    let p = probe(&heic, &l).expect("HEIC is supported (scripts/test installs libheif-dev)");
    assert_eq!((p.format, p.width, p.height), (InputFormat::Heic, 1920, 1280));
    let a = darkroom_engine::decode::decode(&heic, &l, true).unwrap().to_rgb8();
    let b = darkroom_engine::decode::decode(&corpus("M03_storm_1920x1280_exif.jpg"), &l, true).unwrap().to_rgb8();
    assert_eq!(a.dimensions(), b.dimensions());
    // Same photo: average colour of each quadrant within a few levels.
    for (qx, qy) in [(0, 0), (960, 0), (0, 640), (960, 640)] {
        let avg = |img: &image::RgbImage| {
            let mut s = [0f64; 3];
            for y in qy..qy + 640 {
                for x in qx..qx + 960 {
                    for (sum, v) in s.iter_mut().zip(img.get_pixel(x, y).0) {
                        *sum += v as f64;
                    }
                }
            }
            s.map(|v| v / (960.0 * 640.0))
        };
        let (ma, mb) = (avg(&a), avg(&b));
        for c in 0..3 {
            assert!((ma[c] - mb[c]).abs() < 6.0, "quadrant {qx},{qy}: {ma:?} vs {mb:?}");
        }
    }
    let r = process(&heic, &[out("t", vec![fit(400, 400)], Format::Jpeg)], &l).unwrap();
    assert_eq!((r[0].width, r[0].height), (400, 267));
}

#[test]
fn cmyk_jpeg_comes_out_as_the_srgb_photo() {
    // D03 is M03 converted to CMYK with a SWOP profile (embedded): converted back through that
    // profile it must look like M03, not like a naive CMYK→RGB (far too dark and blue).
    let l = Limits::default();
    let cmyk = darkroom_engine::decode::decode(&corpus("D03_storm_cmyk.jpg"), &l, true).unwrap().to_rgb8();
    let srgb = darkroom_engine::decode::decode(&corpus("M03_storm_1920x1280_exif.jpg"), &l, true).unwrap().to_rgb8();
    assert_eq!(cmyk.dimensions(), (1920, 1280));
    let mut worst = 0f64;
    for (x0, y0) in [(0, 0), (960, 0), (0, 640), (960, 640), (480, 320)] {
        let avg = |img: &image::RgbImage| {
            let mut s = [0f64; 3];
            for y in (y0..y0 + 640).step_by(4) {
                for x in (x0..x0 + 960).step_by(4) {
                    for (sum, v) in s.iter_mut().zip(img.get_pixel(x, y).0) {
                        *sum += v as f64 / (240.0 * 160.0);
                    }
                }
            }
            s
        };
        let (a, b) = (avg(&cmyk), avg(&srgb));
        for c in 0..3 {
            worst = worst.max((a[c] - b[c]).abs());
        }
    }
    assert!(worst < 12.0, "CMYK photo differs from the sRGB original by {worst:.1} levels");
}

#[test]
fn jpeg_shrink_on_load_decodes_small_and_keeps_exact_sizes() {
    use darkroom_engine::decode::{decode, decode_at_least};
    let l = Limits::default();
    let big = corpus("L02_kleiber_6028x3391.jpg");
    // The DCT scales by 1/8 here: 754×424 still covers 400×225.
    let small = decode_at_least(&big, &l, true, Some((400, 225))).unwrap();
    assert_eq!((small.width(), small.height()), (754, 424), "libjpeg-turbo shrink-on-load (scripts/test installs it)");
    // Upright sizes for an EXIF-rotated photo: need is in upright coordinates.
    let d01 = corpus("D01_friends_orient6_3088x2056.jpg");
    let s = decode_at_least(&d01, &l, true, Some((266, 400))).unwrap();
    assert_eq!((s.width(), s.height()), (514, 772));

    // Outputs have exactly the size a full decode gives, and nearly the same pixels.
    let specs = [
        OutputSpec::new("inside", vec![fit(400, 400)], Format::Png),
        OutputSpec::new("wide", vec![op(r#"{"op":"resize","width":300}"#)], Format::Png),
        OutputSpec::new("cover", vec![op(r#"{"op":"resize","width":256,"height":256,"fit":"cover"}"#)], Format::Png),
    ];
    let fast = process(&big, &specs, &l).unwrap();
    let full = decode(&big, &l, true).unwrap();
    for (spec, out) in specs.iter().zip(&fast) {
        let reference = spec.ops[0].apply(full.clone(), &l).unwrap().to_rgb8();
        let got = image::load_from_memory(&out.bytes).unwrap().to_rgb8();
        assert_eq!(got.dimensions(), reference.dimensions(), "{}", spec.name);
        let mse =
            got.as_raw().iter().zip(reference.as_raw()).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum::<f64>()
                / got.as_raw().len() as f64;
        let psnr = 10.0 * (255.0f64 * 255.0 / mse.max(1e-9)).log10();
        assert!(psnr > 30.0, "{}: PSNR {psnr:.1} dB against a full decode", spec.name);
    }
}

/// A job whose first edit is a crop box decodes only the box (libjpeg's cropped decode): the
/// pixels are the ones a full decode and a crop give, for baseline 4:2:2, progressive 4:2:0
/// and odd offsets, and boxes that stick out of the image or start outside it behave as the
/// crop op says (clamped; refused).
#[test]
fn a_leading_crop_decodes_the_same_pixels_as_a_full_decode() {
    use darkroom_engine::decode::decode;
    let l = Limits::default();
    for (file, boxes) in [
        ("L02_kleiber_6028x3391.jpg", [(1507, 847, 3014, 1696), (1, 3, 17, 9), (6000, 3300, 500, 500)]),
        ("M01_picosdeeuropa_3264x2448.jpg", [(816, 612, 1632, 1224), (13, 7, 100, 31), (3263, 2447, 9, 9)]),
        ("S01_rocket_640x427.jpg", [(0, 0, 640, 427), (5, 5, 1, 1), (639, 0, 1, 427)]),
    ] {
        let bytes = corpus(file);
        let full = decode(&bytes, &l, true).unwrap();
        for (x, y, w, h) in boxes {
            let crop = op(&format!(r#"{{"op":"crop","x":{x},"y":{y},"width":{w},"height":{h}}}"#));
            let want = crop.apply(full.clone(), &l).unwrap().to_rgb8();
            let got = process(&bytes, &[out("c", vec![crop.clone()], Format::Png)], &l).unwrap().remove(0);
            let got = image::load_from_memory(&got.bytes).unwrap().to_rgb8();
            assert_eq!(got.dimensions(), want.dimensions(), "{file} {x},{y} {w}x{h}");
            let worst = got.as_raw().iter().zip(want.as_raw()).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
            let total: u64 = got.as_raw().iter().zip(want.as_raw()).map(|(a, b)| a.abs_diff(*b) as u64).sum();
            let mean = total as f64 / got.as_raw().len() as f64;
            // libjpeg's cropped decode can round a sample differently where the box meets the
            // chroma upsampler's context; anything more would be a different picture.
            assert!(worst <= 2 && mean < 0.05, "{file} {x},{y} {w}x{h}: mean difference {mean:.4}, worst {worst}");
        }
    }
    let outside = op(r#"{"op":"crop","x":640,"y":0,"width":10,"height":10}"#);
    let err = process(&corpus("S01_rocket_640x427.jpg"), &[out("c", vec![outside], Format::Png)], &l).unwrap_err();
    assert!(err.to_string().contains("outside the 640×427 image"), "{err}");
}
