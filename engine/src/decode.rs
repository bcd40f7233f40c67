//! Decoding with limits, then EXIF auto-orientation.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader};

use crate::probe::sniff;
use crate::{EngineError, Limits};

/// Decode `bytes` into pixels. Dimensions are checked from the header before any pixel
/// buffer exists; with `auto_orient` the EXIF orientation is applied so the result is upright.
pub fn decode(bytes: &[u8], limits: &Limits, auto_orient: bool) -> Result<DynamicImage, EngineError> {
    limits.check_bytes(bytes.len())?;
    let format = sniff(bytes)?;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut image_limits = image::Limits::default();
    image_limits.max_alloc = Some(limits.max_alloc());
    reader.limits(image_limits);
    let mut decoder = reader.into_decoder().map_err(corrupt)?;
    let (width, height) = decoder.dimensions();
    limits.check_dimensions(width, height)?;
    let orientation = if auto_orient { decoder.orientation().ok() } else { None };
    let mut img = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    if let Some(orientation) = orientation {
        img.apply_orientation(orientation);
    }
    Ok(img)
}

fn corrupt(e: image::ImageError) -> EngineError {
    match e {
        image::ImageError::Limits(_) => EngineError::Corrupt(format!("it needs more memory than allowed: {e}")),
        image::ImageError::Unsupported(u) => EngineError::Corrupt(format!("unsupported variant: {u}")),
        other => EngineError::Corrupt(other.to_string()),
    }
}
