//! Header sniffing: what an upload is and how big it will be, without decoding it.
//!
//! The web app calls this to refuse non-images and decompression bombs at upload time; the
//! engine's decoder calls it again so the processor never trusts a file it did not check
//! itself. Pure Rust (the `image` crate's header readers and our own HEIF box reader,
//! [`heif`]), so the web app links no image C library.

pub mod heif;

use std::io::Cursor;

use image::{ImageFormat, ImageReader};
use serde::{Deserialize, Serialize};

use crate::limits::Limits;
use crate::refusal::Refusal;

/// Input formats the engine decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    Jpeg,
    Png,
    Webp,
    Gif,
    Tiff,
    Bmp,
    Heic,
}

impl InputFormat {
    pub fn mime(self) -> &'static str {
        match self {
            InputFormat::Jpeg => "image/jpeg",
            InputFormat::Png => "image/png",
            InputFormat::Webp => "image/webp",
            InputFormat::Gif => "image/gif",
            InputFormat::Tiff => "image/tiff",
            InputFormat::Bmp => "image/bmp",
            InputFormat::Heic => "image/heic",
        }
    }

    /// The input format an `image` crate format is, if Darkroom takes it.
    pub fn from_image(format: ImageFormat) -> Option<Self> {
        Some(match format {
            ImageFormat::Jpeg => InputFormat::Jpeg,
            ImageFormat::Png => InputFormat::Png,
            ImageFormat::WebP => InputFormat::Webp,
            ImageFormat::Gif => InputFormat::Gif,
            ImageFormat::Tiff => InputFormat::Tiff,
            ImageFormat::Bmp => InputFormat::Bmp,
            _ => return None,
        })
    }
}

/// What the header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    pub format: InputFormat,
    pub width: u32,
    pub height: u32,
}

/// Identify `bytes` by content (never by file name) and check them against `limits`.
pub fn probe(bytes: &[u8], limits: &Limits) -> Result<Probe, Refusal> {
    limits.check_bytes(bytes.len())?;
    if heif::sniff(bytes) {
        let (width, height) = heif::dimensions_within(bytes, limits)?;
        return Ok(Probe { format: InputFormat::Heic, width, height });
    }
    let format = sniff(bytes)?;
    let reader = ImageReader::with_format(Cursor::new(bytes), format);
    let (width, height) =
        reader.into_dimensions().map_err(|e| Refusal::Corrupt(format!("cannot read the header: {e}")))?;
    limits.check_dimensions(width, height)?;
    let format = InputFormat::from_image(format).ok_or(Refusal::NotAnImage)?;
    Ok(Probe { format, width, height })
}

/// The `image` crate's format of `bytes`, when it is one Darkroom takes (HEIF is [`heif::sniff`]'s).
pub fn sniff(bytes: &[u8]) -> Result<ImageFormat, Refusal> {
    let format = image::guess_format(bytes).map_err(|_| Refusal::NotAnImage)?;
    InputFormat::from_image(format).ok_or(Refusal::NotAnImage)?;
    Ok(format)
}

/// Decode a PNG to its last row within `limits` and throw the pixels away: a damaged or cut
/// short file is refused here (a watermark logo at upload) rather than failing jobs later.
/// The header is checked against the limits before any pixel buffer exists.
pub fn check_png_decodes(bytes: &[u8], limits: &Limits) -> Result<(), Refusal> {
    let corrupt = |e: image::ImageError| match e {
        image::ImageError::Limits(_) => Refusal::Corrupt(format!("it needs more memory than allowed: {e}")),
        image::ImageError::Unsupported(u) => Refusal::Corrupt(format!("unsupported variant: {u}")),
        other => Refusal::Corrupt(other.to_string()),
    };
    let mut reader = ImageReader::with_format(Cursor::new(bytes), ImageFormat::Png);
    let mut image_limits = image::Limits::default();
    image_limits.max_alloc = Some(limits.max_alloc());
    reader.limits(image_limits);
    let decoder = reader.into_decoder().map_err(corrupt)?;
    let (width, height) = image::ImageDecoder::dimensions(&decoder);
    limits.check_dimensions(width, height)?;
    image::DynamicImage::from_decoder(decoder).map(drop).map_err(corrupt)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::limits::LOGO_LIMITS;

    /// A file of the shared corpus (`DARKROOM_CORPUS`, or `../shared/corpus` beside the repository).
    pub(crate) fn corpus(name: &str) -> Vec<u8> {
        let dir = std::env::var_os("DARKROOM_CORPUS")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"));
        std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("corpus file {name}: {e}"))
    }

    #[test]
    fn probes_the_corpus_by_content() {
        let l = Limits::default();
        let p = probe(&corpus("S01_rocket_640x427.jpg"), &l).unwrap();
        assert_eq!((p.format, p.width, p.height), (InputFormat::Jpeg, 640, 427));
        let p = probe(&corpus("D06_storm_1920x1280.heic"), &l).unwrap();
        assert_eq!((p.format, p.width, p.height), (InputFormat::Heic, 1920, 1280));
        assert_eq!(probe(&corpus("X02_text_named.jpg"), &l), Err(Refusal::NotAnImage));
        assert_eq!(probe(&corpus("X03_empty.jpg"), &l), Err(Refusal::Empty));
        assert!(matches!(probe(&corpus("X04_bomb_20000x20000.png"), &l), Err(Refusal::TooManyPixels { .. })));
    }

    #[test]
    fn a_png_is_decoded_to_its_end() {
        let logo = corpus("A01_emerald-logo_1689x1800_rgba.png");
        assert_eq!(check_png_decodes(&logo, &LOGO_LIMITS), Ok(()));
        let cut = &logo[..logo.len() / 2];
        assert!(probe(cut, &LOGO_LIMITS).is_ok(), "the header alone is fine");
        assert!(matches!(check_png_decodes(cut, &LOGO_LIMITS), Err(Refusal::Corrupt(_))));
        let bomb = corpus("X04_bomb_20000x20000.png");
        assert!(matches!(check_png_decodes(&bomb, &LOGO_LIMITS), Err(Refusal::TooManyPixels { .. })));
    }
}
