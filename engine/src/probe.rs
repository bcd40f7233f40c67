//! Header sniffing: what an upload is and how big it will be, without decoding it.
//!
//! The web app calls this to refuse non-images and decompression bombs at upload time; the
//! decoder calls it again so the processor never trusts a file it did not check itself.

use std::io::Cursor;

use image::{ImageFormat, ImageReader};
use serde::{Deserialize, Serialize};

use crate::{EngineError, Limits};

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

    pub(crate) fn from_image(format: ImageFormat) -> Option<Self> {
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
pub fn probe(bytes: &[u8], limits: &Limits) -> Result<Probe, EngineError> {
    limits.check_bytes(bytes.len())?;
    if crate::heif::sniff(bytes) {
        let (width, height) = crate::heif::dimensions_within(bytes, limits)?;
        return Ok(Probe { format: InputFormat::Heic, width, height });
    }
    let format = sniff(bytes)?;
    let reader = ImageReader::with_format(Cursor::new(bytes), format);
    let (width, height) =
        reader.into_dimensions().map_err(|e| EngineError::Corrupt(format!("cannot read the header: {e}")))?;
    limits.check_dimensions(width, height)?;
    let format = InputFormat::from_image(format).ok_or(EngineError::NotAnImage)?;
    Ok(Probe { format, width, height })
}

pub(crate) fn sniff(bytes: &[u8]) -> Result<ImageFormat, EngineError> {
    let format = image::guess_format(bytes).map_err(|_| EngineError::NotAnImage)?;
    InputFormat::from_image(format).ok_or(EngineError::NotAnImage)?;
    Ok(format)
}
