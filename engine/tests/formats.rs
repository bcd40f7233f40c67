//! Output formats and inputs beyond the corpus: AVIF output, keeping the ICC profile, PNG logo
//! watermarks, and GIF/TIFF/BMP inputs generated from corpus photos.

use std::path::PathBuf;

use darkroom_engine::{process, Limits, OutputSpec};
use image::RgbImage;

fn corpus(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("DARKROOM_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"));
    std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("corpus file {name}: {e}"))
}

fn spec(json: &str) -> OutputSpec {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

/// Mean absolute difference per channel over every pixel of two same-size RGB images.
fn mean_diff(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let sum: u64 = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| x.abs_diff(*y) as u64).sum();
    sum as f64 / a.as_raw().len() as f64
}

/// Largest difference of one pixel's channels.
fn pixel_diff(a: &RgbImage, b: &RgbImage, x: u32, y: u32) -> u8 {
    let (p, q) = (a.get_pixel(x, y), b.get_pixel(x, y));
    (0..3).map(|c| p[c].abs_diff(q[c])).max().unwrap()
}

#[cfg(heif)]
#[test]
fn avif_output_decodes_back_with_libheif() {
    let bytes = corpus("M03_storm_1920x1280_exif.jpg");
    let outs = process(
        &bytes,
        &[
            spec(r#"{"name":"ref","ops":[{"op":"resize","width":640}],"format":"png"}"#),
            spec(r#"{"name":"avif","ops":[{"op":"resize","width":640}],"format":"avif"}"#),
            spec(r#"{"name":"small","ops":[{"op":"resize","width":640}],"format":"avif","quality":20,"speed":9}"#),
        ],
        &Limits::default(),
    )
    .unwrap();
    let by = |n: &str| outs.iter().find(|o| o.name == n).unwrap();
    let avif = by("avif");
    assert_eq!((avif.format, avif.width, avif.height), (darkroom_engine::Format::Avif, 640, 427));
    let avif_format = darkroom_engine::Format::Avif;
    assert_eq!((avif_format.mime(), avif_format.extension()), ("image/avif", "avif"));
    assert_eq!(&avif.bytes[4..12], b"ftypavif", "an AVIF file type box");

    let reference = image::load_from_memory(&by("ref").bytes).unwrap().to_rgb8();
    let back = darkroom_engine::heif::decode(&avif.bytes).unwrap();
    assert_eq!((back.width(), back.height()), (640, 427));
    let back = back.to_rgb8();
    // Lossy, but the same picture: small mean error, and sampled pixels (sky, dark ground)
    // keep their colour.
    let diff = mean_diff(&reference, &back);
    assert!(diff < 6.0, "mean difference {diff:.2} from the lossless output");
    for (x, y) in [(320, 40), (100, 380), (600, 200)] {
        let d = pixel_diff(&reference, &back, x, y);
        assert!(d < 40, "pixel ({x},{y}): {:?} vs {:?}", reference.get_pixel(x, y), back.get_pixel(x, y));
    }
    // Quality and speed are honoured: quality 20 is much smaller.
    assert!(by("small").bytes.len() * 2 < avif.bytes.len(), "{} vs {}", by("small").bytes.len(), avif.bytes.len());
    // Transparency survives: the logo's alpha comes back close to the lossless output's.
    let logo = corpus("A01_emerald-logo_1689x1800_rgba.png");
    let outs = process(
        &logo,
        &[
            spec(r#"{"name":"a","ops":[{"op":"resize","width":200}],"format":"avif"}"#),
            spec(r#"{"name":"p","ops":[{"op":"resize","width":200}],"format":"png"}"#),
        ],
        &Limits::default(),
    )
    .unwrap();
    let alpha = darkroom_engine::heif::decode(&outs[0].bytes).unwrap();
    assert!(alpha.color().has_alpha());
    let (a, p) = (alpha.to_rgba8(), image::load_from_memory(&outs[1].bytes).unwrap().to_rgba8());
    assert_eq!(a.dimensions(), p.dimensions());
    assert_eq!(a.get_pixel(0, 0)[3], 0, "transparent corner");
    let alpha_diff: f64 =
        a.pixels().zip(p.pixels()).map(|(x, y)| x[3].abs_diff(y[3]) as f64).sum::<f64>() / a.len() as f64 * 4.0;
    let visible = p.pixels().filter(|px| px[3] > 100).count();
    assert!(visible > 1000, "the reference has visible pixels ({visible})");
    assert!(alpha_diff < 4.0, "mean alpha difference {alpha_diff:.2}");
}

#[cfg(not(heif))]
#[test]
fn avif_output_without_libheif_is_a_clear_error() {
    let bytes = corpus("S01_rocket_640x427.jpg");
    let err = process(&bytes, &[spec(r#"{"name":"a","format":"avif"}"#)], &Limits::default()).unwrap_err();
    assert_eq!(err.code(), "encode_failed");
    assert!(err.to_string().contains("needs libheif"), "{err}");
}

/// The ICC profile an image file carries, read by the image crate (JPEG, PNG, WebP) or libheif.
fn embedded_icc(bytes: &[u8]) -> Option<Vec<u8>> {
    use image::ImageDecoder;
    let format = image::guess_format(bytes).ok();
    let cursor = std::io::Cursor::new(bytes);
    match format {
        Some(image::ImageFormat::Jpeg) => image::codecs::jpeg::JpegDecoder::new(cursor).unwrap().icc_profile().unwrap(),
        Some(image::ImageFormat::Png) => image::codecs::png::PngDecoder::new(cursor).unwrap().icc_profile().unwrap(),
        Some(image::ImageFormat::WebP) => image::codecs::webp::WebPDecoder::new(cursor).unwrap().icc_profile().unwrap(),
        _ => darkroom_engine::heif::icc_profile(bytes),
    }
}

/// Pixels as stored, with no colour conversion.
fn raw_rgb(bytes: &[u8]) -> RgbImage {
    if image::guess_format(bytes).is_ok_and(|f| f != image::ImageFormat::Avif) {
        image::load_from_memory(bytes).unwrap().to_rgb8()
    } else {
        darkroom_engine::heif::decode(bytes).unwrap().to_rgb8()
    }
}

#[test]
fn icc_keep_embeds_the_original_profile_without_converting() {
    // S01 is tagged Adobe RGB (1998): its saturated colours differ from sRGB's.
    let bytes = corpus("S01_rocket_640x427.jpg");
    let original_icc = embedded_icc(&bytes).expect("S01 has a profile");
    assert!(String::from_utf8_lossy(&original_icc).contains("Adobe RGB"));
    let raw = raw_rgb(&bytes);

    let mut specs = vec![spec(r#"{"name":"srgb","format":"png"}"#)];
    let formats: &[&str] = if cfg!(heif) { &["png", "jpeg", "webp", "avif"] } else { &["png", "jpeg", "webp"] };
    for f in formats {
        specs.push(spec(&format!(r#"{{"name":"keep-{f}","format":"{f}","icc":"keep","quality":95}}"#)));
    }
    specs.push(spec(r#"{"name":"keep-lossless","format":"webp","lossless":true,"icc":"keep"}"#));
    specs.push(spec(r#"{"name":"keep-gray","format":"jpeg","icc":"keep","ops":[{"op":"grayscale"}]}"#));
    let outs = process(&bytes, &specs, &Limits::default()).unwrap();
    let by = |n: &str| outs.iter().find(|o| o.name == n).unwrap();

    // Default: converted to sRGB, no profile.
    assert_eq!(embedded_icc(&by("srgb").bytes), None);
    let converted = raw_rgb(&by("srgb").bytes);
    let conversion = mean_diff(&raw, &converted);
    assert!(conversion > 1.5, "Adobe RGB -> sRGB changes pixels (mean {conversion:.2})");

    for name in formats.iter().map(|f| format!("keep-{f}")).chain(["keep-lossless".to_string()]) {
        let out = by(&name);
        assert_eq!(embedded_icc(&out.bytes).as_deref(), Some(&original_icc[..]), "{name} carries the profile");
        let pixels = raw_rgb(&out.bytes);
        assert_eq!(pixels.dimensions(), (640, 427), "{name}");
        let kept = mean_diff(&raw, &pixels);
        // Pixels stay as they were (up to the lossy codec): much closer to the original's
        // values than to the converted ones.
        assert!(
            kept < conversion / 2.0 && kept < 3.0,
            "{name}: {kept:.2} from the original, conversion {conversion:.2}"
        );
    }
    // PNG is lossless: exactly the stored pixels (the engine decodes JPEG with libjpeg-turbo or
    // zune-jpeg, the image crate with zune-jpeg: allow off-by-one rounding).
    assert!(mean_diff(&raw, &raw_rgb(&by("keep-png").bytes)) < 0.5);
    // Greyscale pixels cannot carry an RGB profile: none is embedded.
    assert_eq!(embedded_icc(&by("keep-gray").bytes), None);
    // The WebP files are valid for libwebp too (the container was rewritten by hand).
    for name in ["keep-webp", "keep-lossless"] {
        let img = webp::Decoder::new(&by(name).bytes).decode().unwrap_or_else(|| panic!("libwebp reads {name}"));
        assert_eq!((img.width(), img.height()), (640, 427));
    }
}

#[test]
fn icc_keep_on_cmyk_still_converts_to_srgb() {
    // D03 is CMYK with a SWOP profile: its pixels cannot stay CMYK in an RGB output.
    let bytes = corpus("D03_storm_cmyk.jpg");
    let outs = process(
        &bytes,
        &[
            spec(r#"{"name":"srgb","format":"png","ops":[{"op":"resize","width":480}]}"#),
            spec(r#"{"name":"keep","format":"png","icc":"keep","ops":[{"op":"resize","width":480}]}"#),
        ],
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(embedded_icc(&outs[1].bytes), None);
    assert_eq!(raw_rgb(&outs[0].bytes), raw_rgb(&outs[1].bytes), "same sRGB pixels either way");
}

/// A 200×100 PNG logo: left half opaque red, right half fully transparent (blue underneath,
/// which must never show).
fn half_red_logo() -> Vec<u8> {
    let img = image::RgbaImage::from_fn(200, 100, |x, _| {
        if x < 100 {
            image::Rgba([255, 0, 0, 255])
        } else {
            image::Rgba([0, 0, 255, 0])
        }
    });
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    out
}

#[test]
fn png_logo_watermark_is_composited_with_alpha_and_opacity() {
    let photo = corpus("M03_storm_1920x1280_exif.jpg");
    let key = "logos/owner1/logo-1.png";
    let resources = darkroom_engine::Resources::from([(key.to_string(), half_red_logo())]);
    let wm = |name: &str, extra: &str| {
        spec(&format!(
            r#"{{"name":"{name}","format":"png","ops":[{{"op":"resize","width":800}},{{"op":"watermark","image":"{key}","margin":10{extra}}}]}}"#
        ))
    };
    let specs = [
        spec(r#"{"name":"plain","format":"png","ops":[{"op":"resize","width":800}]}"#),
        wm("full", r#","opacity":1,"scale":0.25"#),
        wm("half", r#","opacity":0.5,"scale":0.25"#),
        wm("big", r#","opacity":1,"scale":0.5"#),
        wm("natural", r#","opacity":1,"gravity":"northwest""#),
    ];
    assert_eq!(darkroom_engine::resource_keys(&specs), vec![key.to_string()]);
    let outs = darkroom_engine::process_with(&photo, &specs, &Limits::default(), &resources, None).unwrap();
    let px = |name: &str| raw_rgb(&outs.iter().find(|o| o.name == name).unwrap().bytes);
    let (plain, full, half, big) = (px("plain"), px("full"), px("half"), px("big"));
    assert_eq!(plain.dimensions(), (800, 533));
    // scale 0.25 of 800 px: the logo is 200×100 at x 590..790, y 423..523.
    assert_eq!(full.get_pixel(600, 430).0, [255, 0, 0], "opaque half of the logo");
    assert_eq!(full.get_pixel(689, 522).0, [255, 0, 0], "its bottom-right red pixel");
    assert_eq!(full.get_pixel(700, 470), plain.get_pixel(700, 470), "transparent half shows the photo");
    assert_eq!(full.get_pixel(589, 470), plain.get_pixel(589, 470), "left of the margin box");
    assert_eq!(full.get_pixel(600, 524), plain.get_pixel(600, 524), "inside the bottom margin");
    assert_eq!(full.get_pixel(100, 100), plain.get_pixel(100, 100), "elsewhere untouched");
    // Half opacity: halfway between the photo and red.
    let (p, h) = (plain.get_pixel(600, 430).0, half.get_pixel(600, 430).0);
    let expect = [(p[0] as f32 + 255.0) / 2.0, p[1] as f32 / 2.0, p[2] as f32 / 2.0];
    for c in 0..3 {
        assert!((h[c] as f32 - expect[c]).abs() <= 1.0, "half opacity: {h:?} vs {expect:?}");
    }
    // scale 0.5: a 400×200 logo at x 390..790, y 323..523, resampled without fringes.
    assert_eq!(big.get_pixel(400, 330).0, [255, 0, 0]);
    assert_eq!(big.get_pixel(570, 420).0, [255, 0, 0]);
    assert_eq!(big.get_pixel(700, 420), plain.get_pixel(700, 420));
    // No scale: the logo's own 200×100 pixels, at the top left inside the margin.
    let natural = px("natural");
    assert_eq!(natural.get_pixel(10, 10).0, [255, 0, 0]);
    assert_eq!(natural.get_pixel(9, 10), plain.get_pixel(9, 10));
    assert_eq!(natural.get_pixel(109, 109).0, [255, 0, 0]);
    assert_eq!(natural.get_pixel(110, 50), plain.get_pixel(110, 50));
}

#[test]
fn logo_watermark_refusals_are_typed() {
    let photo = corpus("S01_rocket_640x427.jpg");
    let key = "logos/o/l.png";
    let specs = [spec(&format!(r#"{{"name":"a","ops":[{{"op":"watermark","image":"{key}"}}]}}"#))];
    let run = |bytes: Option<Vec<u8>>| {
        let resources: darkroom_engine::Resources = bytes.map(|b| (key.to_string(), b)).into_iter().collect();
        darkroom_engine::process_with(&photo, &specs, &Limits::default(), &resources, None).unwrap_err()
    };
    let missing = run(None);
    assert_eq!(missing.code(), "invalid_op");
    assert!(missing.to_string().contains("was not provided"), "{missing}");
    let jpeg = run(Some(photo.clone()));
    assert_eq!(jpeg.code(), "invalid_op");
    assert!(jpeg.to_string().contains("must be PNG"), "{jpeg}");
    // A decompression bomb as a logo is refused from its header, by the logo limits.
    let bomb = run(Some(corpus("X04_bomb_20000x20000.png")));
    assert!(bomb.to_string().contains("megapixels"), "{bomb}");
    let text = run(Some(b"not a png".to_vec()));
    assert!(text.to_string().contains(key), "{text}");
    // Without resources (plain `process`) a logo watermark is refused, not ignored.
    assert_eq!(process(&photo, &specs, &Limits::default()).unwrap_err().code(), "invalid_op");
}

#[test]
fn logo_on_a_transparent_photo_keeps_its_alpha() {
    let photo = corpus("A01_emerald-logo_1689x1800_rgba.png");
    let key = "logos/o/l.png";
    let resources = darkroom_engine::Resources::from([(key.to_string(), half_red_logo())]);
    let specs = [spec(&format!(
        r#"{{"name":"a","format":"png","ops":[{{"op":"resize","width":400}},{{"op":"watermark","image":"{key}","gravity":"northwest","margin":0,"opacity":1}}]}}"#
    ))];
    let out = darkroom_engine::process_with(&photo, &specs, &Limits::default(), &resources, None).unwrap();
    let img = image::load_from_memory(&out[0].bytes).unwrap();
    assert!(img.color().has_alpha());
    let rgba = img.to_rgba8();
    assert_eq!(rgba.get_pixel(5, 5).0, [255, 0, 0, 255], "the logo is opaque over a transparent corner");
    assert_eq!(rgba.get_pixel(150, 5)[3], 0, "the logo's transparent half leaves the corner transparent");
}

fn encode_as(img: &image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), format).unwrap();
    out
}

/// Render `bytes` as a lossless PNG without ops and return its pixels and what probe said.
fn render_png(bytes: &[u8]) -> (darkroom_engine::InputFormat, image::DynamicImage) {
    let p = darkroom_engine::probe(bytes, &Limits::default()).unwrap();
    let out = process(bytes, &[spec(r#"{"name":"p","format":"png"}"#)], &Limits::default()).unwrap();
    assert_eq!((out[0].width, out[0].height), (p.width, p.height));
    (p.format, image::load_from_memory(&out[0].bytes).unwrap())
}

#[test]
fn tiff_and_bmp_inputs_decode_exactly() {
    use darkroom_engine::InputFormat;
    // The corpus has no TIFF or BMP: make them from a photo (its pixels as stored).
    let photo = image::load_from_memory(&corpus("S01_rocket_640x427.jpg")).unwrap();
    let rgb = photo.to_rgb8();
    let rgba = image::DynamicImage::ImageRgba8(image::RgbaImage::from_fn(320, 200, |x, y| {
        let p = rgb.get_pixel(x, y);
        image::Rgba([p[0], p[1], p[2], if x < 160 { 255 } else { 64 }])
    }));
    let cases = [
        ("tiff rgb", encode_as(&photo, image::ImageFormat::Tiff), InputFormat::Tiff),
        ("tiff rgba", encode_as(&rgba, image::ImageFormat::Tiff), InputFormat::Tiff),
        (
            "tiff 16-bit",
            encode_as(&image::DynamicImage::ImageRgb16(photo.to_rgb16()), image::ImageFormat::Tiff),
            InputFormat::Tiff,
        ),
        ("bmp rgb", encode_as(&photo, image::ImageFormat::Bmp), InputFormat::Bmp),
        ("bmp rgba", encode_as(&rgba, image::ImageFormat::Bmp), InputFormat::Bmp),
    ];
    for (what, bytes, format) in cases {
        let (probed, out) = render_png(&bytes);
        assert_eq!(probed, format, "{what}");
        if what.ends_with("rgba") {
            assert_eq!((out.width(), out.height()), (320, 200), "{what}");
            let out = out.to_rgba8();
            assert!(out.pixels().any(|p| p[3] == 64), "{what}: transparency kept");
            for (x, y) in [(10, 10), (300, 150), (159, 0), (160, 199)] {
                let want = rgba.as_rgba8().unwrap().get_pixel(x, y);
                assert_eq!(out.get_pixel(x, y), want, "{what} ({x},{y})");
            }
        } else {
            assert_eq!((out.width(), out.height()), (640, 427), "{what}");
            assert_eq!(out.to_rgb8(), rgb, "{what}: exactly the stored pixels");
        }
    }
}

#[test]
fn animated_gif_gives_its_first_frame() {
    use image::codecs::gif::GifEncoder;
    use image::{Delay, Frame};
    // Frame 1: a photo (quantised to 256 colours by the GIF encoder); frame 2: solid green.
    let photo = image::load_from_memory(&corpus("S01_rocket_640x427.jpg")).unwrap().resize_exact(
        320,
        213,
        image::imageops::FilterType::Triangle,
    );
    let first = photo.to_rgba8();
    let green = image::RgbaImage::from_pixel(320, 213, image::Rgba([0, 255, 0, 255]));
    let mut gif = Vec::new();
    {
        let mut enc = GifEncoder::new_with_speed(&mut gif, 10);
        enc.set_repeat(image::codecs::gif::Repeat::Infinite).unwrap();
        let delay = Delay::from_numer_denom_ms(100, 1);
        enc.encode_frames([Frame::from_parts(first.clone(), 0, 0, delay), Frame::from_parts(green, 0, 0, delay)])
            .unwrap();
    }
    // It really is animated: two frames.
    let frames = image::codecs::gif::GifDecoder::new(std::io::Cursor::new(&gif)).unwrap();
    assert_eq!(image::AnimationDecoder::into_frames(frames).count(), 2);
    let (format, out) = render_png(&gif);
    assert_eq!(format, darkroom_engine::InputFormat::Gif);
    assert_eq!((out.width(), out.height()), (320, 213));
    let out = out.to_rgb8();
    let reference = image::DynamicImage::ImageRgba8(first).to_rgb8();
    // The first frame, up to palette quantisation; never the green second frame.
    let diff = mean_diff(&reference, &out);
    assert!(diff < 8.0, "mean difference {diff:.2} from the first frame");
    let greens = out.pixels().filter(|p| p[1] > 200 && p[0] < 60 && p[2] < 60).count();
    assert!(greens < 100, "{greens} pure green pixels: the second frame leaked in");
    for (x, y) in [(20, 20), (160, 100), (300, 200)] {
        assert!(
            pixel_diff(&reference, &out, x, y) < 48,
            "({x},{y}): {:?} vs {:?}",
            reference.get_pixel(x, y),
            out.get_pixel(x, y)
        );
    }
    // A transformed output works on it like on any photo.
    let outs = process(
        &gif,
        &[spec(r#"{"name":"t","ops":[{"op":"resize","width":100}],"format":"jpeg"}"#)],
        &Limits::default(),
    )
    .unwrap();
    assert_eq!((outs[0].width, outs[0].height), (100, 67));
}

/// JPEG to JPEG with no edit but a resize runs on the YCbCr planes (no RGB): it must give the
/// picture the RGB pipeline gives (which an identity brightness op forces), for 4:2:2, 4:2:0
/// progressive and 4:4:4 inputs, shrunk on load or not, inside or cover (with gravity), and
/// for a full-size re-encode.
#[test]
fn jpeg_resize_on_planes_matches_the_rgb_pipeline() {
    let jobs = [
        r#"{"op":"resize","width":640,"height":640,"fit":"inside"}"#,
        r#"{"op":"resize","width":300,"height":300,"fit":"cover","gravity":"north"}"#,
        r#"{"op":"resize","width":1001}"#,
        "",
    ];
    // A grey JPEG too (one plane), made from the grey PNG of the corpus.
    let grey =
        process(&corpus("S03_camera_512x512_gray.png"), &[spec(r#"{"name":"g","format":"jpeg"}"#)], &Limits::default())
            .unwrap()
            .remove(0)
            .bytes;
    assert!(image::load_from_memory(&grey).unwrap().as_luma8().is_some(), "a grey JPEG");
    for file in ["M03_storm_1920x1280_exif.jpg", "M01_picosdeeuropa_3264x2448.jpg", "S01_rocket_640x427.jpg", "grey"] {
        let bytes = if file == "grey" { grey.clone() } else { corpus(file) };
        for op in jobs {
            let sep = if op.is_empty() { "" } else { "," };
            let planar = spec(&format!(r#"{{"name":"p","ops":[{op}],"format":"jpeg","quality":90}}"#));
            let rgb = spec(&format!(
                r#"{{"name":"r","ops":[{op}{sep}{{"op":"brightness","factor":1}}],"format":"jpeg","quality":90}}"#
            ));
            let p = &process(&bytes, &[planar], &Limits::default()).unwrap()[0];
            let r = &process(&bytes, &[rgb], &Limits::default()).unwrap()[0];
            assert_eq!((p.width, p.height), (r.width, r.height), "{file} {op}");
            let (pi, ri) = (image::load_from_memory(&p.bytes).unwrap(), image::load_from_memory(&r.bytes).unwrap());
            assert_eq!((pi.width(), pi.height()), (p.width, p.height), "{file} {op}");
            let d = mean_diff(&pi.to_rgb8(), &ri.to_rgb8());
            assert!(d < 1.5, "{file} {op}: mean difference {d:.2} between the planar and the RGB pipeline");
            let ratio = p.bytes.len() as f64 / r.bytes.len() as f64;
            if op.is_empty() {
                // Full size: re-encoded from the DCT coefficients, no pixel round trip. As close
                // to the original as the RGB pipeline's output, and no bigger.
                let original = image::load_from_memory(&bytes).unwrap().to_rgb8();
                let (pp, rp) = (psnr(&pi.to_rgb8(), &original), psnr(&ri.to_rgb8(), &original));
                assert!(pp > rp - 0.5, "{file}: {pp:.2} dB from the original vs the RGB pipeline's {rp:.2}");
                assert!(ratio < 1.02, "{file}: {} vs {} bytes", p.bytes.len(), r.bytes.len());
            } else {
                // Same size class: the planar path keeps neither more nor much less detail.
                assert!((0.9..1.1).contains(&ratio), "{file} {op}: {} vs {} bytes", p.bytes.len(), r.bytes.len());
            }
        }
    }
}

fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    let mse = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum::<f64>()
        / a.as_raw().len() as f64;
    10.0 * (255.0f64 * 255.0 / mse.max(1e-9)).log10()
}

/// The sampling factors (h, v) of each component in a JPEG's frame header, and whether it is
/// progressive.
fn jpeg_frame(bytes: &[u8]) -> (Vec<(u8, u8)>, bool) {
    let mut i = 2;
    while i + 4 <= bytes.len() && bytes[i] == 0xFF {
        let (marker, len) = (bytes[i + 1], u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize);
        if matches!(marker, 0xC0..=0xC2) {
            let n = bytes[i + 9] as usize;
            let f = (0..n).map(|k| (bytes[i + 11 + 3 * k] >> 4, bytes[i + 11 + 3 * k] & 15)).collect();
            return (f, marker == 0xC2);
        }
        i += 2 + len;
    }
    panic!("no frame header")
}

/// A JPEG re-encoded at its own size goes from DCT coefficients to DCT coefficients
/// (requantised; chroma filtered and, from 4:2:2, halved vertically in the DCT domain): what
/// the pipeline writes is what the transcoder writes, 4:2:0 whatever the input's layout, and
/// at the same quality a grey JPEG comes back with every pixel as it was (no generation loss),
/// which no pixel round trip gives.
#[test]
fn full_size_jpeg_reencodes_work_on_dct_coefficients() {
    use darkroom_engine::encode::EncodeOptions;
    use darkroom_engine::jpeg::turbo;
    for (file, layout) in [("M03_storm_1920x1280_exif.jpg", (2, 1)), ("M01_picosdeeuropa_3264x2448.jpg", (2, 2))] {
        let bytes = corpus(file);
        assert_eq!(jpeg_frame(&bytes).0[0], layout, "{file}: the input layout this case is about");
        for progressive in [false, true] {
            let opts = EncodeOptions { progressive, ..EncodeOptions::default() };
            let direct = turbo::transcode(&bytes, &opts, 85).unwrap().unwrap_or_else(|| {
                panic!("{file}: not transcoded (built without libjpeg? scripts/test-deps installs it)")
            });
            let piped = &process(
                &bytes,
                &[spec(&format!(r#"{{"name":"t","format":"jpeg","quality":85,"progressive":{progressive}}}"#))],
                &Limits::default(),
            )
            .unwrap()[0];
            assert!(piped.bytes == direct, "{file}: the pipeline re-encodes through the transcoder");
            let (factors, is_progressive) = jpeg_frame(&direct);
            assert_eq!(factors, [(2, 2), (1, 1), (1, 1)], "{file}: 4:2:0 out");
            assert_eq!(is_progressive, progressive, "{file}");
            let (out, original) = (
                image::load_from_memory(&direct).unwrap().to_rgb8(),
                image::load_from_memory(&bytes).unwrap().to_rgb8(),
            );
            assert_eq!(out.dimensions(), original.dimensions());
            let p = psnr(&out, &original);
            assert!(p > 38.0, "{file}: {p:.1} dB from the original at q85");
        }
    }
    // Grey at its own quality: every coefficient stays, and so does every pixel.
    let grey = process(
        &corpus("S03_camera_512x512_gray.png"),
        &[spec(r#"{"name":"g","format":"jpeg","quality":80}"#)],
        &Limits::default(),
    )
    .unwrap()
    .remove(0)
    .bytes;
    let again = process(&grey, &[spec(r#"{"name":"g","format":"jpeg","quality":80}"#)], &Limits::default())
        .unwrap()
        .remove(0)
        .bytes;
    let (before, after) = (image::load_from_memory(&grey).unwrap(), image::load_from_memory(&again).unwrap());
    assert!(before.as_bytes() == after.as_bytes(), "re-encoding a grey JPEG at its own quality changes no pixel");
    // A layout the transcoder leaves to the planes (4:4:4) is not taken.
    let s444 = process(
        &encode_as(&image::load_from_memory(&corpus("S01_rocket_640x427.jpg")).unwrap(), image::ImageFormat::Png),
        &[spec(r#"{"name":"j","format":"jpeg","chroma_subsampling":"4:4:4"}"#)],
        &Limits::default(),
    )
    .unwrap()
    .remove(0)
    .bytes;
    assert!(turbo::transcode(&s444, &EncodeOptions::default(), 85).unwrap().is_none());
}

/// The planar path at tiny and odd sizes (1 × 1, chroma planes of one sample, odd widths and
/// heights): the right size out, and the colour of a flat image kept.
#[test]
fn jpeg_on_planes_handles_tiny_and_odd_sizes() {
    for (w, h) in [(1, 1), (2, 1), (1, 3), (3, 2), (17, 9), (33, 65)] {
        let png = encode_as(
            &image::DynamicImage::ImageRgb8(RgbImage::from_pixel(w, h, image::Rgb([200, 60, 30]))),
            image::ImageFormat::Png,
        );
        for chroma in ["4:2:0", "4:2:2", "4:4:4"] {
            let jpeg = process(
                &png,
                &[spec(&format!(r#"{{"name":"j","format":"jpeg","quality":95,"chroma_subsampling":"{chroma}"}}"#))],
                &Limits::default(),
            )
            .unwrap()
            .remove(0)
            .bytes;
            for op in ["", r#"{"op":"resize","width":5,"height":5,"fit":"fill","enlarge":true}"#] {
                let out = process(
                    &jpeg,
                    &[spec(&format!(r#"{{"name":"o","ops":[{op}],"format":"jpeg"}}"#))],
                    &Limits::default(),
                )
                .unwrap_or_else(|e| panic!("{w}x{h} {chroma} {op}: {e}"))
                .remove(0);
                let img = image::load_from_memory(&out.bytes).unwrap().to_rgb8();
                let want = if op.is_empty() { (w, h) } else { (5, 5) };
                assert_eq!(img.dimensions(), want, "{w}x{h} {chroma} {op}");
                let p = img.get_pixel(0, 0);
                let d = [200, 60, 30].iter().zip(p.0).map(|(a, b)| (*a - b as i32).abs()).max().unwrap();
                assert!(d <= 12, "{w}x{h} {chroma} {op}: {:?}", p.0);
            }
        }
    }
}
