//! The native decoders (TurboJPEG, libheif) are held to the engine's limits by our own checks
//! before they allocate: a JPEG header over the limits is refused before TurboJPEG's buffer
//! exists, and a HEIF file gets libheif's size limit, its header sizes checked, its decoded size
//! checked against the header, and a brand check. A counting global allocator measures the peak
//! of live Rust heap during a call (libjpeg's and libheif's own mallocs are not counted; the
//! buffers they decode into are ours); every test takes one lock so no other test allocates
//! while one measures.

use std::path::PathBuf;
use std::sync::Mutex;

use darkroom_engine::encode::{encode, EncodeOptions};
use darkroom_engine::{probe, process, EngineError, Format, Limits, OutputSpec};
use image::{DynamicImage, RgbImage};

#[path = "common/counting.rs"]
mod counting;
use counting::{peak_during, MIB};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn corpus(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("DARKROOM_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"));
    std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("corpus file {name}: {e}"))
}

/// A real, complete 16×16 baseline JPEG whose frame header (SOF0) is made to declare
/// `width` × `height`: everything a decoder reads before the pixels is valid.
fn jpeg_declaring(width: u16, height: u16) -> Vec<u8> {
    let img = DynamicImage::ImageRgb8(RgbImage::from_fn(16, 16, |x, y| image::Rgb([x as u8 * 16, y as u8 * 16, 90])));
    let mut jpeg = encode(&img, Format::Jpeg, &EncodeOptions::default()).unwrap();
    let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0] || w == [0xFF, 0xC2]).expect("a frame header");
    // FF C0, length (2), precision (1), height (2), width (2).
    jpeg[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    jpeg
}

/// The D06 HEIC (1920×1280) with every `find` four-byte code in its header boxes replaced by
/// `with` (the same length, so every box stays valid).
fn heic_with(find: &[u8; 4], with: &[u8; 4]) -> Vec<u8> {
    let mut heic = corpus("D06_storm_1920x1280.heic");
    let header_end = heic.windows(4).position(|w| w == b"mdat").expect("an mdat box");
    let mut i = 0;
    while let Some(at) = heic[i..header_end].windows(4).position(|w| w == find) {
        heic[i + at..i + at + 4].copy_from_slice(with);
        i += at + 4;
    }
    assert!(i > 0, "{find:?} is in D06's header");
    heic
}

/// D06 with its `ispe` box (the image's coded size) saying `width` × `height`.
fn heic_declaring(width: u32, height: u32) -> Vec<u8> {
    let mut heic = corpus("D06_storm_1920x1280.heic");
    let at = heic.windows(4).position(|w| w == b"ispe").expect("an ispe box") + 8; // after version/flags
    assert_eq!(&heic[at..at + 8], &[0, 0, 0x07, 0x80, 0, 0, 0x05, 0x00], "D06 says 1920×1280");
    heic[at..at + 4].copy_from_slice(&width.to_be_bytes());
    heic[at + 4..at + 8].copy_from_slice(&height.to_be_bytes());
    heic
}

#[test]
fn turbojpeg_header_over_the_limits_is_refused_before_its_buffer_is_allocated() {
    let _one = lock();
    let limits = Limits::default();
    // Under libjpeg's own maximum (65500 per side), so TurboJPEG reads this header happily:
    // 60000 × 60000 is 3.6 gigapixels, 10.8 GB as RGB.
    let huge = jpeg_declaring(60_000, 60_000);
    let (head, peak) = peak_during(|| darkroom_engine::jpeg::turbo::header_within(&huge, &limits));
    let err = head.map(|_| ()).expect_err("a 3.6 GP header is refused");
    assert!(matches!(err, EngineError::TooManyPixels { width: 60_000, height: 60_000, .. }), "{err:?}");
    assert!(peak < MIB, "checking the header allocated {peak} bytes");
    // A smaller limit is applied the same way (the pixels of 2000 × 2000 are over 1 MP).
    let small = Limits { max_pixels: 1_000_000, ..limits };
    let err = darkroom_engine::jpeg::turbo::header_within(&jpeg_declaring(2000, 2000), &small).map(|_| ()).unwrap_err();
    assert!(matches!(err, EngineError::TooManyPixels { width: 2000, height: 2000, limit: 1_000_000 }), "{err:?}");
    // What is within the limits passes with the header's facts.
    let ok = darkroom_engine::jpeg::turbo::header_within(&jpeg_declaring(16, 16), &small).unwrap().expect("readable");
    assert_eq!((ok.width, ok.height, ok.gray, ok.cmyk), (16, 16, false, false));

    // Through every entry point (upload probe, decode, a job on the planar path and on the RGB
    // path), 65535 × 65535 (the most a JPEG can declare) gets TooManyPixels, never an attempt.
    let max = jpeg_declaring(65_535, 65_535);
    let jobs = [OutputSpec::new("planar", vec![], Format::Jpeg), OutputSpec::new("rgb", vec![], Format::Png)];
    let (probed, probe_peak) = peak_during(|| probe(&max, &limits));
    let (decoded, decode_peak) = peak_during(|| darkroom_engine::decode::decode(&max, &limits, true));
    for (what, result, peak) in
        [("probe", probed.map(|_| ()), probe_peak), ("decode", decoded.map(|_| ()), decode_peak)]
    {
        let err = result.unwrap_err();
        assert!(matches!(err, EngineError::TooManyPixels { width: 65_535, height: 65_535, .. }), "{what}: {err:?}");
        assert!(peak < MIB, "{what} allocated {peak} bytes for a header it refuses");
    }
    for job in jobs {
        let (result, peak) = peak_during(|| process(&max, std::slice::from_ref(&job), &limits));
        let err = result.map(|_| ()).unwrap_err();
        assert_eq!(err.code(), "too_many_pixels", "{}: {err}", job.name);
        assert!(peak < MIB, "{}: {peak} bytes allocated for a header it refuses", job.name);
    }
}

#[test]
fn jpeg_declaring_no_pixels_is_refused_as_damaged() {
    let _one = lock();
    for (w, h) in [(0, 16), (16, 0)] {
        let err = process(&jpeg_declaring(w, h), &[OutputSpec::new("t", vec![], Format::Jpeg)], &Limits::default())
            .map(|_| ())
            .unwrap_err();
        assert_eq!(err.code(), "corrupt_image", "{w}×{h}: {err}");
        let err = probe(&jpeg_declaring(w, h), &Limits::default()).unwrap_err();
        assert_eq!(err.code(), "corrupt_image", "{w}×{h}: {err}");
    }
}

#[test]
fn heif_with_a_foreign_brand_is_refused_with_a_clear_error() {
    let _one = lock();
    let limits = Limits::default();
    // The real photo is accepted…
    assert_eq!(probe(&corpus("D06_storm_1920x1280.heic"), &limits).unwrap().width, 1920);
    // …but the same file calling itself JPEG-in-HEIF ('jpeg' for 'heic', beside 'mif1' and
    // 'miaf', which only say "HEIF") never reaches libheif's decoders.
    let foreign = heic_with(b"heic", b"jpeg");
    assert!(darkroom_engine::heif::sniff(&foreign), "still recognised as HEIF");
    let probed = probe(&foreign, &limits).unwrap_err();
    let decoded = darkroom_engine::decode::decode(&foreign, &limits, true).unwrap_err();
    for err in [probed, decoded] {
        assert!(matches!(err, EngineError::UnsupportedFormat(_)), "{err:?}");
        assert_eq!(err.code(), "unsupported_format");
        let message = err.to_string();
        assert!(message.contains("'jpeg'") && message.contains("HEIC"), "says which brand and what is read: {message}");
    }
    // An ISO-BMFF file with no HEIF brand at all (a video) is not an image.
    let mut video = corpus("D06_storm_1920x1280.heic");
    video[8..28].copy_from_slice(b"isom\0\0\0\0isomiso2mp41");
    assert_eq!(probe(&video, &limits).unwrap_err(), EngineError::NotAnImage);
    // An AVIF upload is refused by name (libheif 1.15 gives AV1 to dav1d unbounded), while
    // Darkroom's own AVIF outputs still read back through heif::decode.
    let img = DynamicImage::ImageRgb8(RgbImage::from_fn(32, 24, |x, y| image::Rgb([x as u8 * 8, y as u8 * 10, 40])));
    let fast = EncodeOptions { speed: Some(9), ..Default::default() };
    let avif = encode(&img, Format::Avif, &fast).unwrap();
    for err in [
        probe(&avif, &limits).unwrap_err(),
        process(&avif, &[OutputSpec::new("t", vec![], Format::Png)], &limits).map(|_| ()).unwrap_err(),
    ] {
        assert!(matches!(&err, EngineError::UnsupportedFormat(m) if m.starts_with("AVIF")), "{err:?}");
    }
    let back = darkroom_engine::heif::decode(&avif).unwrap();
    assert_eq!((back.width(), back.height()), (32, 24));
}

#[test]
fn heif_header_sizes_are_held_to_the_limits_and_to_what_decodes() {
    let _one = lock();
    let limits = Limits::default();
    // Over the pixel limit by its ispe box (400 MP; each side within libheif's side limit):
    // refused from the header, before libde265 decodes anything.
    let bomb = heic_declaring(20_000, 20_000);
    let (probed, peak) = peak_during(|| probe(&bomb, &limits));
    let err = probed.unwrap_err();
    assert!(matches!(err, EngineError::TooManyPixels { width: 20_000, height: 20_000, .. }), "{err:?}");
    assert!(peak < MIB, "probing allocated {peak} bytes");
    let err = process(&bomb, &[OutputSpec::new("t", vec![], Format::Png)], &limits).map(|_| ()).unwrap_err();
    assert_eq!(err.code(), "too_many_pixels", "{err}");

    // A side over libheif's limit (65536) is refused by libheif itself while it reads the file.
    assert_eq!(darkroom_engine::heif::side_limit(&limits), 65_536);
    let err = probe(&heic_declaring(100_000, 2), &limits).unwrap_err();
    assert_eq!(err.code(), "corrupt_image", "{err}");
    assert!(err.to_string().contains("maximum image size"), "{err}");
    // A smaller pixel limit lowers it: 3000 px per side under a 3000-pixel limit.
    let tiny = Limits { max_pixels: 3_000, ..limits };
    assert_eq!(darkroom_engine::heif::side_limit(&tiny), 3_000);
    let err = darkroom_engine::heif::dimensions_within(&heic_declaring(3_001, 1), &tiny).unwrap_err();
    assert!(err.to_string().contains("maximum image size"), "{err}");

    // The HEVC stream is 1920×1280; a header claiming 1920×1000 is a lie found after decoding
    // (the limits were checked on the header's numbers).
    let lie = heic_declaring(1920, 1000);
    let err = darkroom_engine::decode::decode(&lie, &limits, true).unwrap_err();
    assert_eq!(err.code(), "corrupt_image", "{err}");
    assert!(err.to_string().contains("1920×1280") && err.to_string().contains("1920×1000"), "{err}");
    // The real file decodes to what its header says.
    let img = darkroom_engine::heif::decode_within(&corpus("D06_storm_1920x1280.heic"), &limits).unwrap();
    assert_eq!((img.width(), img.height()), (1920, 1280));
    // And a smaller pixel limit refuses the real file from its header.
    let small = Limits { max_pixels: 2_000_000, ..limits };
    let err = darkroom_engine::heif::decode_within(&corpus("D06_storm_1920x1280.heic"), &small).unwrap_err();
    assert!(matches!(err, EngineError::TooManyPixels { width: 1920, height: 1280, limit: 2_000_000 }), "{err:?}");
}

#[test]
fn a_full_size_jpeg_output_is_held_to_the_output_limit() {
    let _one = lock();
    // Found by the `pipeline` fuzz target on M03 (1920×1280) under a 1024-pixel output limit:
    // the planar path re-encoded it at full size from its DCT coefficients, past the limit.
    let jpeg = jpeg_declaring(16, 16);
    let limits = Limits { max_output_dimension: 8, ..Limits::default() };
    for format in [Format::Jpeg, Format::Png] {
        let err = process(&jpeg, &[OutputSpec::new("full", vec![], format)], &limits).map(|_| ()).unwrap_err();
        assert!(matches!(err, EngineError::OutputTooLarge { width: 16, height: 16, limit: 8 }), "{format:?}: {err:?}");
    }
    // Within the limit the planar path still takes it (same size out).
    let ok = process(&jpeg, &[OutputSpec::new("full", vec![], Format::Jpeg)], &Limits::default()).unwrap();
    assert_eq!((ok[0].width, ok[0].height), (16, 16));
}

/// Found by the `heif` fuzz target: a 12-byte `ftyp` (shorter than the minor version) made the
/// brand reader panic, and every upload is sniffed for HEIF first.
#[test]
fn a_truncated_ftyp_box_is_not_an_image_not_a_panic() {
    let bytes = b"\x00\xff\xfe\x1cftypavF\xcc";
    assert!(!darkroom_engine::heif::sniff(bytes));
    let err = probe(bytes, &Limits::default()).unwrap_err();
    assert_eq!(err.code(), "not_an_image", "{err:?}");
}
