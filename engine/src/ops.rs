//! The edit operations a recipe can ask for, and how each is applied to pixels.
//!
//! The serde shape of [`Op`] is the wire format in recipes and job messages
//! (`{"op":"resize","width":400,"fit":"inside"}`), so renaming a field breaks clients.

use image::imageops::FilterType;
use image::DynamicImage;
use serde::{Deserialize, Serialize};

use crate::{EngineError, Limits};

/// How a resize fits the image into the requested box.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fit {
    /// Keep the aspect ratio, fit within the box (the default).
    #[default]
    Inside,
    /// Keep the aspect ratio, cover the box, crop the overflow around the centre.
    Cover,
    /// Stretch to exactly the box.
    Fill,
    /// Keep the aspect ratio, at least as large as the box.
    Outside,
}

/// One edit step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// Resize to `width` and/or `height`. Never enlarges unless `enlarge` is true.
    Resize {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        width: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        height: Option<u32>,
        #[serde(default)]
        fit: Fit,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        enlarge: bool,
    },
    /// Rotate clockwise by 90, 180 or 270 degrees.
    Rotate { degrees: i32 },
    /// Mirror left-right.
    FlipHorizontal,
    /// Mirror top-bottom.
    FlipVertical,
    /// Convert to shades of grey.
    Grayscale,
}

impl Op {
    /// The op's name as written in recipes.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Resize { .. } => "resize",
            Op::Rotate { .. } => "rotate",
            Op::FlipHorizontal => "flip_horizontal",
            Op::FlipVertical => "flip_vertical",
            Op::Grayscale => "grayscale",
        }
    }

    /// All op names, for error messages that list what exists.
    pub const NAMES: &'static [&'static str] = &["resize", "rotate", "flip_horizontal", "flip_vertical", "grayscale"];

    /// Check parameters without touching pixels. The message names the bad field.
    pub fn validate(&self, limits: &Limits) -> Result<(), (&'static str, String)> {
        match *self {
            Op::Resize { width, height, .. } => {
                if width.is_none() && height.is_none() {
                    return Err(("width", "resize needs a width, a height or both".into()));
                }
                for (field, v) in [("width", width), ("height", height)] {
                    if let Some(v) = v {
                        if v == 0 || v > limits.max_output_dimension {
                            return Err((
                                field,
                                format!("{field} must be between 1 and {}, got {v}", limits.max_output_dimension),
                            ));
                        }
                    }
                }
                Ok(())
            }
            Op::Rotate { degrees } => match degrees.rem_euclid(360) {
                0 | 90 | 180 | 270 if degrees % 90 == 0 => Ok(()),
                _ => Err(("degrees", format!("rotate supports 90, 180 and 270 degrees, got {degrees}"))),
            },
            Op::FlipHorizontal | Op::FlipVertical | Op::Grayscale => Ok(()),
        }
    }

    /// Apply this op.
    pub fn apply(&self, img: DynamicImage, limits: &Limits) -> Result<DynamicImage, EngineError> {
        Ok(match *self {
            Op::Resize { width, height, fit, enlarge } => resize(img, width, height, fit, enlarge, limits)?,
            Op::Rotate { degrees } => match degrees.rem_euclid(360) {
                90 => img.rotate90(),
                180 => img.rotate180(),
                270 => img.rotate270(),
                _ => img,
            },
            Op::FlipHorizontal => img.fliph(),
            Op::FlipVertical => img.flipv(),
            Op::Grayscale => {
                if img.color().has_alpha() {
                    DynamicImage::ImageLumaA8(img.to_luma_alpha8())
                } else {
                    DynamicImage::ImageLuma8(img.to_luma8())
                }
            }
        })
    }
}

/// Target size of a resize, from the source size and the box.
pub fn resize_dimensions(
    src: (u32, u32),
    width: Option<u32>,
    height: Option<u32>,
    fit: Fit,
    enlarge: bool,
) -> (u32, u32) {
    let (sw, sh) = (src.0 as f64, src.1 as f64);
    let bw = width.map(f64::from);
    let bh = height.map(f64::from);
    let (w, h) = match (bw, bh, fit) {
        (Some(bw), Some(bh), Fit::Fill) => (bw, bh),
        (Some(bw), Some(bh), Fit::Cover) => (bw, bh),
        (Some(bw), Some(bh), Fit::Inside) => {
            let s = (bw / sw).min(bh / sh);
            (sw * s, sh * s)
        }
        (Some(bw), Some(bh), Fit::Outside) => {
            let s = (bw / sw).max(bh / sh);
            (sw * s, sh * s)
        }
        (Some(bw), None, _) => (bw, sh * bw / sw),
        (None, Some(bh), _) => (sw * bh / sh, bh),
        (None, None, _) => (sw, sh),
    };
    let (mut w, mut h) = (w.round().max(1.0) as u32, h.round().max(1.0) as u32);
    if !enlarge && (w > src.0 || h > src.1) {
        if matches!(fit, Fit::Fill | Fit::Cover) && width.is_some() && height.is_some() {
            // Keep the requested shape but never scale up: shrink the box to fit the source.
            let s = (src.0 as f64 / w as f64).min(src.1 as f64 / h as f64);
            w = ((w as f64 * s).round() as u32).max(1);
            h = ((h as f64 * s).round() as u32).max(1);
        } else {
            return src;
        }
    }
    (w, h)
}

fn resize(
    img: DynamicImage,
    width: Option<u32>,
    height: Option<u32>,
    fit: Fit,
    enlarge: bool,
    limits: &Limits,
) -> Result<DynamicImage, EngineError> {
    let (w, h) = resize_dimensions((img.width(), img.height()), width, height, fit, enlarge);
    limits.check_output(w, h)?;
    if (w, h) == (img.width(), img.height()) {
        return Ok(img);
    }
    let filter = FilterType::Lanczos3;
    Ok(match fit {
        Fit::Cover if width.is_some() && height.is_some() => img.resize_to_fill(w, h, filter),
        Fit::Fill if width.is_some() && height.is_some() => img.resize_exact(w, h, filter),
        _ => img.resize_exact(w, h, filter),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_keeps_aspect_and_never_enlarges() {
        assert_eq!(resize_dimensions((1920, 1280), Some(400), Some(400), Fit::Inside, false), (400, 267));
        assert_eq!(resize_dimensions((640, 427), Some(1600), Some(1600), Fit::Inside, false), (640, 427));
        assert_eq!(resize_dimensions((640, 427), Some(1280), None, Fit::Inside, true), (1280, 854));
    }

    #[test]
    fn cover_and_fill_give_the_box() {
        assert_eq!(resize_dimensions((1920, 1280), Some(256), Some(256), Fit::Cover, false), (256, 256));
        assert_eq!(resize_dimensions((1920, 1280), Some(300), Some(100), Fit::Fill, false), (300, 100));
        assert_eq!(resize_dimensions((1920, 1280), Some(500), Some(500), Fit::Outside, false), (750, 500));
    }

    #[test]
    fn rotate_rejects_odd_angles() {
        let l = Limits::default();
        assert!(Op::Rotate { degrees: 90 }.validate(&l).is_ok());
        assert!(Op::Rotate { degrees: -90 }.validate(&l).is_ok());
        assert!(Op::Rotate { degrees: 45 }.validate(&l).is_err());
    }
}
