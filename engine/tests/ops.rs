//! Every op on real photos: dimensions, and pixels sampled to prove the op did what it says.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use darkroom_engine::decode::decode;
use darkroom_engine::ops::Apply;
use darkroom_engine::pipeline::process_until;
use darkroom_engine::{process, EngineError, Format, Limits, Op, OutputSpec};
use image::{DynamicImage, GenericImageView, Rgb, RgbImage};

fn corpus(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("DARKROOM_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"));
    std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("corpus file {name}: {e}"))
}

fn op(json: &str) -> Op {
    let op: Op = serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"));
    op.validate(&Limits::default()).unwrap_or_else(|e| panic!("{json}: {e:?}"));
    op
}

/// The storm photo at 480×320, upright.
fn storm() -> DynamicImage {
    let img = decode(&corpus("M03_storm_1920x1280_exif.jpg"), &Limits::default(), true).unwrap();
    op(r#"{"op":"resize","width":480}"#).apply(img, &Limits::default()).unwrap()
}

fn apply(img: &DynamicImage, json: &str) -> DynamicImage {
    op(json).apply(img.clone(), &Limits::default()).unwrap()
}

fn mean(img: &DynamicImage) -> [f64; 3] {
    let rgb = img.to_rgb8();
    let n = (rgb.width() * rgb.height()) as f64;
    let mut m = [0f64; 3];
    for p in rgb.pixels() {
        for c in 0..3 {
            m[c] += p[c] as f64 / n;
        }
    }
    m
}

/// Mean absolute difference between horizontal neighbours: a measure of detail.
fn detail(img: &DynamicImage) -> f64 {
    let g = img.to_luma8();
    let mut sum = 0f64;
    for y in 0..g.height() {
        for x in 1..g.width() {
            sum += (g.get_pixel(x, y)[0] as f64 - g.get_pixel(x - 1, y)[0] as f64).abs();
        }
    }
    sum / (g.width() * g.height()) as f64
}

#[test]
fn exif_orientation_turns_the_pixels_clockwise() {
    let bytes = corpus("D01_friends_orient6_3088x2056.jpg");
    let raw = decode(&bytes, &Limits::default(), false).unwrap();
    let upright = decode(&bytes, &Limits::default(), true).unwrap();
    assert_eq!(upright.dimensions(), (2056, 3088));
    // Orientation 6: the stored pixels must be turned 90° clockwise to display upright.
    let expected = raw.rotate90();
    for (x, y) in [(0, 0), (2055, 0), (0, 3087), (1000, 1500), (2055, 3087)] {
        assert_eq!(upright.get_pixel(x, y), expected.get_pixel(x, y), "pixel {x},{y}");
    }
    assert_ne!(upright.get_pixel(0, 0), raw.rotate270().get_pixel(0, 0), "turned the wrong way");
}

#[test]
fn crop_by_box_and_by_aspect() {
    let img = storm();
    let boxed = apply(&img, r#"{"op":"crop","x":10,"y":20,"width":100,"height":50}"#);
    assert_eq!(boxed.dimensions(), (100, 50));
    assert_eq!(boxed.get_pixel(0, 0), img.get_pixel(10, 20));
    let square = apply(&img, r#"{"op":"crop","aspect":"1:1"}"#);
    assert_eq!(square.dimensions(), (320, 320));
    assert_eq!(square.get_pixel(0, 0), img.get_pixel(80, 0), "centred");
    let west = apply(&img, r#"{"op":"crop","aspect":"1:1","gravity":"west"}"#);
    assert_eq!(west.get_pixel(0, 0), img.get_pixel(0, 0));
    let clipped = apply(&img, r#"{"op":"crop","x":400,"y":0,"width":500,"height":500}"#);
    assert_eq!(clipped.dimensions(), (80, 320), "a box past the edge is clipped");
    let outside = op(r#"{"op":"crop","x":900,"y":0,"width":5,"height":5}"#).apply(img, &Limits::default());
    assert!(matches!(outside, Err(EngineError::InvalidOp(_))));
}

#[test]
fn cover_keeps_the_region_gravity_names() {
    let img = storm();
    let north = apply(&img, r#"{"op":"resize","width":100,"height":20,"fit":"cover","gravity":"north"}"#);
    let south = apply(&img, r#"{"op":"resize","width":100,"height":20,"fit":"cover","gravity":"south"}"#);
    assert_eq!(north.dimensions(), (100, 20));
    // The storm photo has a bright sky above dark ground.
    assert!(mean(&north)[0] > mean(&south)[0] + 10.0, "north {:?} south {:?}", mean(&north), mean(&south));
}

#[test]
fn attention_finds_the_detailed_region() {
    // Left half flat, right half a fine checkerboard.
    let img = DynamicImage::ImageRgb8(RgbImage::from_fn(400, 200, |x, y| {
        if x < 200 || (x / 3 + y / 3) % 2 == 0 {
            Rgb([128, 128, 128])
        } else {
            Rgb([255, 255, 255])
        }
    }));
    let crop = apply(&img, r#"{"op":"crop","aspect":"1:1","gravity":"attention"}"#);
    assert_eq!(crop.dimensions(), (200, 200));
    assert!(detail(&crop) > 20.0, "attention kept the flat half (detail {})", detail(&crop));
    let cover = apply(&img, r#"{"op":"resize","width":100,"height":100,"fit":"cover","gravity":"attention"}"#);
    assert!(detail(&cover) > 10.0);
}

#[test]
fn rotate_any_angle_onto_a_background() {
    let img = storm();
    let r = apply(&img, r##"{"op":"rotate","degrees":30,"background":"#ff0000"}"##);
    let (w, h) = r.dimensions();
    assert_eq!((w, h), (576, 518), "the canvas holds the whole rotated photo");
    assert_eq!(r.get_pixel(0, 0).0, [255, 0, 0, 255], "corner is background");
    let (c, o) = (r.get_pixel(w / 2, h / 2), img.get_pixel(240, 160));
    assert!((0..3).all(|i| c[i].abs_diff(o[i]) < 24), "centre stays the centre: {c:?} vs {o:?}");
    let right = apply(&img, r#"{"op":"rotate","degrees":90}"#);
    assert_eq!(right.dimensions(), (320, 480));
    assert_eq!(right.get_pixel(319, 0), img.get_pixel(0, 0), "clockwise: top-left goes top-right");
    let back = apply(&img, r#"{"op":"rotate","degrees":-90}"#);
    assert_eq!(back.get_pixel(0, 479), img.get_pixel(0, 0));
}

#[test]
fn flips_mirror() {
    let img = storm();
    assert_eq!(apply(&img, r#"{"op":"flip_horizontal"}"#).get_pixel(0, 5), img.get_pixel(479, 5));
    assert_eq!(apply(&img, r#"{"op":"flip_vertical"}"#).get_pixel(5, 0), img.get_pixel(5, 319));
}

#[test]
fn filters_change_detail() {
    let img = storm();
    let d = detail(&img);
    assert!(detail(&apply(&img, r#"{"op":"blur","sigma":2}"#)) < d * 0.7);
    assert!(detail(&apply(&img, r#"{"op":"blur","sigma":8}"#)) < d * 0.4);
    assert!(detail(&apply(&img, r#"{"op":"sharpen","sigma":1.5}"#)) > d * 1.1);
}

#[test]
fn colour_adjustments() {
    let img = storm();
    let m = mean(&img);
    let dark = mean(&apply(&img, r#"{"op":"brightness","factor":0.5}"#));
    for c in 0..3 {
        assert!((dark[c] - m[c] / 2.0).abs() < 1.5, "{dark:?} vs {m:?}");
    }
    let flat = apply(&img, r#"{"op":"contrast","factor":0}"#).to_rgb8();
    assert!(flat.pixels().all(|p| p.0 == [128, 128, 128]));
    let grey = apply(&img, r#"{"op":"saturation","factor":0}"#).to_rgb8();
    assert!(grey.pixels().all(|p| p[0].abs_diff(p[1]) <= 1 && p[1].abs_diff(p[2]) <= 1));
    let vivid = apply(&img, r#"{"op":"saturation","factor":2}"#);
    let spread = |i: &DynamicImage| {
        i.to_rgb8().pixels().map(|p| (p[0].max(p[1]).max(p[2]) - p[0].min(p[1]).min(p[2])) as f64).sum::<f64>()
    };
    assert!(spread(&vivid) > spread(&img) * 1.5);
    assert!(mean(&apply(&img, r#"{"op":"gamma","gamma":2.2}"#))[1] > m[1] + 10.0, "gamma above 1 brightens");
    let inv = apply(&img, r#"{"op":"invert"}"#);
    let (a, b) = (img.get_pixel(100, 100), inv.get_pixel(100, 100));
    assert_eq!([255 - a[0], 255 - a[1], 255 - a[2]], [b[0], b[1], b[2]]);
    let hue = apply(&img, r#"{"op":"hue","degrees":180}"#);
    assert_ne!(hue.get_pixel(100, 100), img.get_pixel(100, 100));
    assert_eq!(hue.dimensions(), img.dimensions());
    let sepia = mean(&apply(&img, r#"{"op":"sepia"}"#));
    assert!(sepia[0] > sepia[1] && sepia[1] > sepia[2], "sepia is warm: {sepia:?}");
    let g = apply(&img, r#"{"op":"grayscale"}"#);
    assert_eq!(g.color(), image::ColorType::L8);
}

#[test]
fn watermark_marks_its_corner_only() {
    let img = storm();
    let marked =
        apply(&img, r##"{"op":"watermark","text":"© Darkroom","gravity":"southeast","opacity":1,"color":"#ff00ff"}"##);
    assert_eq!(marked.dimensions(), img.dimensions());
    let changed = |x0: u32, y0: u32| {
        let mut n = 0;
        for y in y0..y0 + 60 {
            for x in x0..x0 + 120 {
                n += (marked.get_pixel(x, y) != img.get_pixel(x, y)) as u32;
            }
        }
        n
    };
    assert!(changed(360, 260) > 100, "text drawn at the south-east");
    assert_eq!(changed(0, 0), 0, "north-west untouched");
}

#[test]
fn alpha_is_kept_resized_premultiplied_and_flattened() {
    let logo = decode(&corpus("A01_emerald-logo_1689x1800_rgba.png"), &Limits::default(), true).unwrap();
    let small = apply(&logo, r#"{"op":"resize","width":200}"#);
    assert!(small.color().has_alpha());
    let rgba = small.to_rgba8();
    // Fully transparent pixels must not carry garbage into visible neighbours: every
    // visible edge pixel of the resized logo keeps a colour from the logo, not black.
    let corner = rgba.get_pixel(0, 0);
    assert_eq!(corner[3], 0, "corner stays transparent");
    let on_red = apply(&small, r##"{"op":"flatten","background":"#ff0000"}"##);
    assert!(!on_red.color().has_alpha());
    assert_eq!(on_red.get_pixel(0, 0).0[..3], [255, 0, 0]);
}

#[test]
fn flat_colours_survive_jpeg() {
    // A regression guard: every JPEG setting must keep a flat white image white.
    let white = DynamicImage::ImageRgb8(RgbImage::from_pixel(188, 200, Rgb([255, 255, 255])));
    for extra in ["", r#","chroma_subsampling":"4:4:4""#, r#","chroma_subsampling":"4:2:2""#, r#","progressive":true"#]
    {
        let spec: OutputSpec = serde_json::from_str(&format!(r#"{{"name":"w","format":"jpeg"{extra}}}"#)).unwrap();
        let bytes =
            darkroom_engine::encode::encode(&white, Format::Jpeg, &darkroom_engine::spec::EncodeOptions::from(&spec))
                .unwrap();
        let back = image::load_from_memory(&bytes).unwrap().to_rgb8();
        let p = back.get_pixel(0, 0);
        assert!(p.0.iter().all(|&c| c >= 250), "{extra}: white came back {p:?}");
    }
}

#[test]
fn encoders_honour_their_options() {
    let bytes = corpus("M03_storm_1920x1280_exif.jpg");
    let spec = |name: &str, format: Format, extra: &str| -> OutputSpec {
        let json =
            format!(r#"{{"name":"{name}","format":"{}","ops":[{{"op":"resize","width":640}}]{extra}}}"#, format.name());
        serde_json::from_str(&json).unwrap()
    };
    let outs = process(
        &bytes,
        &[
            spec("base", Format::Jpeg, ""),
            spec("prog", Format::Jpeg, r#","progressive":true"#),
            spec("full", Format::Jpeg, r#","chroma_subsampling":"4:4:4","quality":95"#),
            spec("png0", Format::Png, r#","compression_level":0"#),
            spec("png6", Format::Png, r#","compression_level":6"#),
            spec("png9", Format::Png, r#","compression_level":9"#),
            spec("lossy", Format::Webp, r#","quality":75"#),
            spec("lossless", Format::Webp, r#","lossless":true"#),
        ],
        &Limits::default(),
    )
    .unwrap();
    let by = |n: &str| outs.iter().find(|o| o.name == n).unwrap();
    let has = |b: &[u8], marker: u8| b.windows(2).any(|w| w == [0xFF, marker]);
    assert!(has(&by("prog").bytes, 0xC2) && !has(&by("base").bytes, 0xC2), "progressive uses SOF2");
    assert!(by("full").bytes.len() > by("base").bytes.len(), "4:4:4 at q95 is larger");
    assert!(by("png9").bytes.len() < by("png6").bytes.len() && by("png6").bytes.len() < by("png0").bytes.len());
    assert!(by("lossy").bytes.len() < by("lossless").bytes.len());
    for o in &outs {
        let img = image::load_from_memory(&o.bytes).unwrap_or_else(|e| panic!("{}: {e}", o.name));
        assert_eq!(img.dimensions(), (640, 427), "{}", o.name);
    }
    // Metadata is stripped: the camera's EXIF does not reach the outputs.
    assert!(bytes.windows(4).any(|w| w == b"Exif"));
    assert!(!by("base").bytes.windows(4).any(|w| w == b"Exif"));
}

#[test]
fn the_time_limit_stops_a_job() {
    let bytes = corpus("S01_rocket_640x427.jpg");
    let specs = [OutputSpec::new("a", vec![op(r#"{"op":"blur","sigma":2}"#)], Format::Png)];
    let past = Instant::now() - Duration::from_secs(1);
    let err = process_until(&bytes, &specs, &Limits::default(), Some((past, 30))).unwrap_err();
    assert_eq!(err, EngineError::TimeLimit(30));
    assert!(
        process_until(&bytes, &specs, &Limits::default(), Some((Instant::now() + Duration::from_secs(60), 60))).is_ok()
    );
}
