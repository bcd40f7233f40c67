//! Output formats and how pixels are written to them.

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::codecs::webp::WebPEncoder;
use image::{DynamicImage, ImageEncoder, RgbImage};
use serde::{Deserialize, Serialize};

use crate::EngineError;

/// Output formats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Jpeg,
    Png,
    /// Lossless WebP.
    Webp,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Jpeg => "jpeg",
            Format::Png => "png",
            Format::Webp => "webp",
        }
    }
    pub fn extension(self) -> &'static str {
        match self {
            Format::Jpeg => "jpg",
            Format::Png => "png",
            Format::Webp => "webp",
        }
    }
    pub fn mime(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
            Format::Webp => "image/webp",
        }
    }
    pub const NAMES: &'static [&'static str] = &["jpeg", "png", "webp"];
}

/// Default JPEG quality when a recipe gives none.
pub const DEFAULT_QUALITY: u8 = 85;

/// Encode `img` as `format`. JPEG has no alpha: transparent pixels are flattened onto white.
pub fn encode(img: &DynamicImage, format: Format, quality: Option<u8>) -> Result<Vec<u8>, EngineError> {
    let mut out = Vec::with_capacity((img.width() * img.height()) as usize / 4);
    let err = |e: image::ImageError| EngineError::Encode { format: format.name(), detail: e.to_string() };
    match format {
        Format::Jpeg => {
            let q = quality.unwrap_or(DEFAULT_QUALITY).clamp(1, 100);
            let enc = JpegEncoder::new_with_quality(&mut out, q);
            match img {
                DynamicImage::ImageLuma8(g) => g.write_with_encoder(enc).map_err(err)?,
                other if other.color().has_alpha() => flatten_on_white(other).write_with_encoder(enc).map_err(err)?,
                DynamicImage::ImageRgb8(rgb) => rgb.write_with_encoder(enc).map_err(err)?,
                DynamicImage::ImageLuma16(_) => img.to_luma8().write_with_encoder(enc).map_err(err)?,
                other => other.to_rgb8().write_with_encoder(enc).map_err(err)?,
            }
        }
        Format::Png => {
            let enc = PngEncoder::new_with_quality(&mut out, CompressionType::Default, FilterType::Adaptive);
            write(img, enc).map_err(err)?;
        }
        Format::Webp => {
            let enc = WebPEncoder::new_lossless(&mut out);
            match img {
                DynamicImage::ImageRgb8(_) | DynamicImage::ImageRgba8(_) => write(img, enc).map_err(err)?,
                other if other.color().has_alpha() => {
                    write(&DynamicImage::ImageRgba8(other.to_rgba8()), enc).map_err(err)?
                }
                other => write(&DynamicImage::ImageRgb8(other.to_rgb8()), enc).map_err(err)?,
            }
        }
    }
    Ok(out)
}

fn write(img: &DynamicImage, enc: impl ImageEncoder) -> image::ImageResult<()> {
    enc.write_image(img.as_bytes(), img.width(), img.height(), img.color().into())
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
