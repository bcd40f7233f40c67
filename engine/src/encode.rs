//! How pixels are written to the output formats (the formats themselves and their defaults are
//! the protocol's, re-exported here). Nothing but pixels (and, when asked, the
//! original's ICC profile) is written: EXIF, XMP and other metadata of the input are stripped.

use std::borrow::Cow;

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{DynamicImage, ImageEncoder, RgbImage};
#[cfg(not(turbojpeg))]
use jpeg_encoder::{ColorType as JColor, Encoder as JpegEncoder, SamplingFactor};

pub use crate::spec::EncodeOptions;
use crate::EngineError;

pub use darkroom_protocol::output::{
    Chroma, Format, DEFAULT_AVIF_QUALITY, DEFAULT_AVIF_SPEED, DEFAULT_QUALITY, DEFAULT_WEBP_QUALITY, MAX_AVIF_SPEED,
};

/// Encode `img` as `format`. JPEG has no alpha: transparent pixels are flattened onto white
/// (use the `flatten` op for another colour).
pub fn encode(img: &DynamicImage, format: Format, opts: &EncodeOptions) -> Result<Vec<u8>, EngineError> {
    encode_with_icc(img, format, opts, None)
}

/// [`encode`], embedding `icc` (an ICC profile describing the pixels) when given.
pub fn encode_with_icc(
    img: &DynamicImage,
    format: Format,
    opts: &EncodeOptions,
    icc: Option<&[u8]>,
) -> Result<Vec<u8>, EngineError> {
    let err = |detail: String| EngineError::Encode { format: format.name(), detail };
    match format {
        Format::Jpeg => {
            if img.width() > u16::MAX as u32 || img.height() > u16::MAX as u32 {
                return Err(err("JPEG is limited to 65535 pixels per side".into()));
            }
            let q = opts.quality.unwrap_or(DEFAULT_QUALITY).clamp(1, 100);
            let jpeg = encode_jpeg(&jpeg_pixels(img), opts, q)?;
            match icc {
                Some(profile) => jpeg_with_icc(jpeg, profile).map_err(err),
                None => Ok(jpeg),
            }
        }
        Format::Png => {
            // 0: stored; 1–6: fdeflate's fast deflate with the Paeth filter (measured on a 5 MP
            // photo: 30× faster than zlib level 6 for 25% more bytes, and still half the size of
            // libvips's default PNG); 7–9: zlib levels 7–9 with adaptive filtering, smallest.
            let (compression, filter) = match opts.compression_level.unwrap_or(6).min(9) {
                0 => (CompressionType::Uncompressed, FilterType::NoFilter),
                1..=6 => (CompressionType::Fast, FilterType::Paeth),
                level => (CompressionType::Level(level), FilterType::Adaptive),
            };
            let mut out = Vec::with_capacity((img.width() as usize * img.height() as usize) / 4 + 1024);
            let mut enc = PngEncoder::new_with_quality(&mut out, compression, filter);
            if let Some(profile) = icc {
                enc.set_icc_profile(profile.to_vec()).map_err(|e| err(e.to_string()))?;
            }
            enc.write_image(img.as_bytes(), img.width(), img.height(), img.color().into())
                .map_err(|e| err(e.to_string()))?;
            Ok(out)
        }
        Format::Webp => {
            let (w, h) = (img.width(), img.height());
            if w > 16383 || h > 16383 {
                return Err(err("WebP is limited to 16383 pixels per side".into()));
            }
            let data;
            let alpha = img.color().has_alpha();
            let encoder = if alpha {
                data = img.to_rgba8().into_raw();
                webp::Encoder::from_rgba(&data, w, h)
            } else {
                data = img.to_rgb8().into_raw();
                webp::Encoder::from_rgb(&data, w, h)
            };
            let mem = if opts.lossless {
                encoder.encode_lossless()
            } else {
                encoder.encode(opts.quality.unwrap_or(DEFAULT_WEBP_QUALITY).clamp(1, 100) as f32)
            };
            match icc {
                Some(profile) => webp_with_icc(&mem, profile, w, h, alpha).map_err(err),
                None => Ok(mem.to_vec()),
            }
        }
        Format::Avif => crate::heif::encode_avif(
            img,
            opts.quality.unwrap_or(DEFAULT_AVIF_QUALITY).clamp(1, 100),
            opts.speed.unwrap_or(DEFAULT_AVIF_SPEED).min(MAX_AVIF_SPEED),
            icc,
        ),
    }
}

/// Insert `icc` into a JPEG as APP2 `ICC_PROFILE` segments (split into 65519-byte chunks, as
/// the ICC specification says), right after SOI and the JFIF APP0 segment if there is one.
pub fn jpeg_with_icc(jpeg: Vec<u8>, icc: &[u8]) -> Result<Vec<u8>, String> {
    const CHUNK: usize = 65_535 - 2 - 14;
    let chunks: Vec<&[u8]> = icc.chunks(CHUNK).collect();
    if chunks.is_empty() || chunks.len() > 255 {
        return Err(format!("an ICC profile of {} bytes cannot be embedded in a JPEG", icc.len()));
    }
    if jpeg.len() < 4 || jpeg[..2] != [0xFF, 0xD8] {
        return Err("the JPEG encoder wrote no SOI marker".into());
    }
    let mut at = 2;
    if jpeg[2..4] == [0xFF, 0xE0] && jpeg.len() >= 6 {
        at = (4 + u16::from_be_bytes([jpeg[4], jpeg[5]]) as usize).min(jpeg.len());
    }
    let mut out = Vec::with_capacity(jpeg.len() + icc.len() + chunks.len() * 18);
    out.extend_from_slice(&jpeg[..at]);
    for (i, chunk) in chunks.iter().enumerate() {
        out.extend_from_slice(&[0xFF, 0xE2]);
        out.extend_from_slice(&((chunk.len() + 16) as u16).to_be_bytes());
        out.extend_from_slice(b"ICC_PROFILE\0");
        out.extend_from_slice(&[(i + 1) as u8, chunks.len() as u8]);
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&jpeg[at..]);
    Ok(out)
}

/// Add an `ICCP` chunk to a WebP file: a simple file (one `VP8 `/`VP8L` chunk) becomes an
/// extended one (`VP8X` header with the ICC flag, then `ICCP`, then the image chunk); an
/// extended file gets the flag and the chunk after its `VP8X`.
pub fn webp_with_icc(webp: &[u8], icc: &[u8], width: u32, height: u32, alpha: bool) -> Result<Vec<u8>, String> {
    if webp.len() < 20 || &webp[..4] != b"RIFF" || &webp[8..12] != b"WEBP" {
        return Err("the WebP encoder wrote no RIFF header".into());
    }
    let mut chunks: Vec<([u8; 4], Vec<u8>)> = Vec::new();
    let mut i = 12;
    while i + 8 <= webp.len() {
        let fourcc: [u8; 4] = webp[i..i + 4].try_into().expect("4 bytes");
        let len = u32::from_le_bytes(webp[i + 4..i + 8].try_into().expect("4 bytes")) as usize;
        let body = webp.get(i + 8..i + 8 + len).ok_or("the WebP encoder wrote a truncated chunk")?;
        chunks.push((fourcc, body.to_vec()));
        i += 8 + len + (len & 1);
    }
    const ICC_FLAG: u8 = 0x20;
    const ALPHA_FLAG: u8 = 0x10;
    match chunks.first().map(|c| &c.0) {
        Some(b"VP8X") => {
            chunks[0].1[0] |= ICC_FLAG;
            chunks.insert(1, (*b"ICCP", icc.to_vec()));
        }
        Some(b"VP8 ") | Some(b"VP8L") => {
            let mut vp8x = vec![ICC_FLAG | if alpha && &chunks[0].0 == b"VP8L" { ALPHA_FLAG } else { 0 }, 0, 0, 0];
            vp8x.extend_from_slice(&(width - 1).to_le_bytes()[..3]);
            vp8x.extend_from_slice(&(height - 1).to_le_bytes()[..3]);
            chunks.insert(0, (*b"VP8X", vp8x));
            chunks.insert(1, (*b"ICCP", icc.to_vec()));
        }
        _ => return Err("the WebP encoder wrote an unexpected first chunk".into()),
    }
    let mut body = Vec::with_capacity(webp.len() + icc.len() + 32);
    body.extend_from_slice(b"WEBP");
    for (fourcc, data) in &chunks {
        body.extend_from_slice(fourcc);
        body.extend_from_slice(&(data.len() as u32).to_le_bytes());
        body.extend_from_slice(data);
        if data.len() % 2 == 1 {
            body.push(0);
        }
    }
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// The pixels a JPEG can hold: 8-bit grey or RGB, transparency flattened onto white.
fn jpeg_pixels(img: &DynamicImage) -> Cow<'_, DynamicImage> {
    match img {
        DynamicImage::ImageLuma8(_) | DynamicImage::ImageRgb8(_) => Cow::Borrowed(img),
        other if other.color().has_alpha() => Cow::Owned(DynamicImage::ImageRgb8(flatten_on_white(other))),
        other if !other.color().has_color() => Cow::Owned(DynamicImage::ImageLuma8(other.to_luma8())),
        other => Cow::Owned(DynamicImage::ImageRgb8(other.to_rgb8())),
    }
}

/// libjpeg-turbo when built in.
#[cfg(turbojpeg)]
fn encode_jpeg(img: &DynamicImage, opts: &EncodeOptions, quality: u8) -> Result<Vec<u8>, EngineError> {
    crate::jpeg::turbo::encode(img, opts, quality)
}

/// The pure-Rust encoder otherwise.
#[cfg(not(turbojpeg))]
fn encode_jpeg(img: &DynamicImage, opts: &EncodeOptions, quality: u8) -> Result<Vec<u8>, EngineError> {
    let mut out = Vec::new();
    let mut enc = JpegEncoder::new(&mut out, quality);
    enc.set_progressive(opts.progressive);
    // Optimised Huffman tables are off on purpose: with 4:2:0 they produced JPEGs whose flat
    // areas decode with wrong chroma (white came back green) in zune-jpeg.
    enc.set_optimized_huffman_tables(false);
    enc.set_sampling_factor(match opts.chroma.unwrap_or(Chroma::S420) {
        Chroma::S420 => SamplingFactor::R_4_2_0,
        Chroma::S422 => SamplingFactor::R_4_2_2,
        Chroma::S444 => SamplingFactor::R_4_4_4,
    });
    let (w, h) = (img.width() as u16, img.height() as u16);
    let (data, color) = match img {
        DynamicImage::ImageLuma8(g) => (g.as_raw(), JColor::Luma),
        DynamicImage::ImageRgb8(rgb) => (rgb.as_raw(), JColor::Rgb),
        _ => unreachable!("jpeg_pixels gives grey or RGB"),
    };
    enc.encode(data, w, h, color).map_err(|e| EngineError::Encode { format: "jpeg", detail: e.to_string() })?;
    Ok(out)
}

fn flatten_on_white(img: &DynamicImage) -> RgbImage {
    let rgba = img.to_rgba8();
    let mut rgb = RgbImage::new(rgba.width(), rgba.height());
    for (dst, src) in rgb.pixels_mut().zip(rgba.pixels()) {
        let a = src[3] as u32;
        for c in 0..3 {
            dst[c] = ((src[c] as u32 * a + 255 * (255 - a) + 127) / 255) as u8;
        }
    }
    rgb
}
