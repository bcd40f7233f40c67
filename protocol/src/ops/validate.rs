//! What values each op accepts, checked without touching pixels, one named step per kind of op.
//!
//! The ranges are constants ([`Range`]) that the [`schema`](super::schema) hands the recipe
//! builder too, so the browser's sliders and the server's checks cannot drift apart.

use serde::Serialize;

use super::values::{parse_aspect, Fit, Gravity};
use super::watermark::{Mark, Watermark};
use super::Op;
use crate::limits::Limits;

/// An op field's bad value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The field at fault (`None`: the op as a whole, e.g. JSON of the wrong shape).
    pub field: Option<&'static str>,
    pub message: String,
}

fn bad(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError { field: Some(field), message: message.into() }
}

/// The values a number field accepts, both ends included.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Range {
    pub min: f32,
    pub max: f32,
}

impl Range {
    pub const fn new(min: f32, max: f32) -> Range {
        Range { min, max }
    }

    /// `v` is finite and within the range, or an error naming `field`.
    pub fn check(self, field: &'static str, v: f32) -> Result<(), FieldError> {
        if v.is_finite() && (self.min..=self.max).contains(&v) {
            Ok(())
        } else {
            Err(bad(field, format!("{field} must be between {} and {}, got {v}", self.min, self.max)))
        }
    }
}

/// `rotate.degrees` and `hue.degrees`.
pub const DEGREES: Range = Range::new(-360.0, 360.0);
/// `blur.sigma`.
pub const BLUR_SIGMA: Range = Range::new(0.3, 100.0);
/// `sharpen.sigma`.
pub const SHARPEN_SIGMA: Range = Range::new(0.3, 50.0);
/// `sharpen.threshold`.
pub const SHARPEN_THRESHOLD: Range = Range::new(0.0, 255.0);
/// `brightness.factor`, `contrast.factor` and `saturation.factor`.
pub const FACTOR: Range = Range::new(0.0, 10.0);
/// `gamma.gamma`.
pub const GAMMA: Range = Range::new(0.1, 10.0);
/// `watermark.opacity`.
pub const OPACITY: Range = Range::new(0.0, 1.0);
/// `watermark.scale` (a logo's width as a fraction of the photo's).
pub const LOGO_SCALE: Range = Range::new(0.01, 1.0);
/// Most characters of a watermark text, and of a logo key.
pub const MAX_MARK_CHARS: usize = 200;

impl Op {
    /// Check parameters without touching pixels. The error names the bad field.
    pub fn validate(&self, limits: &Limits) -> Result<(), FieldError> {
        match self {
            Op::Resize { width, height, fit, gravity, .. } => resize(*width, *height, *fit, *gravity, limits),
            Op::Crop { x, y, width, height, aspect, .. } => {
                crop((*x, *y), (*width, *height), aspect.as_deref(), limits)
            }
            Op::Rotate { degrees, .. } => DEGREES.check("degrees", *degrees),
            Op::Blur { sigma } => BLUR_SIGMA.check("sigma", *sigma),
            Op::Sharpen { sigma, threshold } => {
                SHARPEN_SIGMA.check("sigma", *sigma)?;
                SHARPEN_THRESHOLD.check("threshold", *threshold as f32)
            }
            Op::Brightness { factor } | Op::Contrast { factor } | Op::Saturation { factor } => {
                FACTOR.check("factor", *factor)
            }
            Op::Hue { degrees } => DEGREES.check("degrees", *degrees as f32),
            Op::Gamma { gamma } => GAMMA.check("gamma", *gamma),
            Op::Watermark(w) => watermark(w, limits),
            Op::FlipHorizontal | Op::FlipVertical | Op::Grayscale | Op::Invert | Op::Sepia | Op::Flatten { .. } => {
                Ok(())
            }
        }
    }
}

/// A width, height or size in pixels: 1 to the largest output side, when given.
fn dimension(field: &'static str, v: Option<u32>, limits: &Limits) -> Result<(), FieldError> {
    match v {
        Some(v) if v == 0 || v > limits.max_output_dimension => {
            Err(bad(field, format!("{field} must be between 1 and {}, got {v}", limits.max_output_dimension)))
        }
        _ => Ok(()),
    }
}

fn resize(
    width: Option<u32>,
    height: Option<u32>,
    fit: Fit,
    gravity: Gravity,
    limits: &Limits,
) -> Result<(), FieldError> {
    if width.is_none() && height.is_none() {
        return Err(bad("width", "resize needs a width, a height or both"));
    }
    dimension("width", width, limits)?;
    dimension("height", height, limits)?;
    if gravity != Gravity::Centre && fit != Fit::Cover {
        return Err(bad("gravity", "gravity applies to fit: cover only"));
    }
    Ok(())
}

fn crop(
    (x, y): (Option<u32>, Option<u32>),
    (width, height): (Option<u32>, Option<u32>),
    aspect: Option<&str>,
    limits: &Limits,
) -> Result<(), FieldError> {
    match aspect {
        Some(a) => {
            if x.is_some() || y.is_some() || width.is_some() || height.is_some() {
                return Err(bad("aspect", "give either a box (x, y, width, height) or an aspect, not both"));
            }
            parse_aspect(a).map(|_| ()).map_err(|m| bad("aspect", m))
        }
        None => {
            if width.is_none() || height.is_none() {
                return Err(bad(
                    "width",
                    "crop needs width and height (and optionally x, y), or an aspect like \"16:9\"",
                ));
            }
            dimension("width", width, limits)?;
            dimension("height", height, limits)
        }
    }
}

fn watermark(w: &Watermark, limits: &Limits) -> Result<(), FieldError> {
    match &w.mark {
        Mark::Text { text, size, .. } => {
            if text.trim().is_empty() || text.chars().count() > MAX_MARK_CHARS {
                return Err(bad("text", format!("watermark text must be 1-{MAX_MARK_CHARS} characters")));
            }
            dimension("size", *size, limits)?;
        }
        Mark::Logo { image, scale } => {
            if image.is_empty() || image.len() > MAX_MARK_CHARS {
                return Err(bad("image", format!("the logo key must be 1-{MAX_MARK_CHARS} characters")));
            }
            if let Some(s) = scale {
                LOGO_SCALE.check("scale", *s)?;
            }
        }
    }
    OPACITY.check("opacity", w.opacity)?;
    match w.margin {
        Some(m) if m > limits.max_output_dimension => {
            Err(bad("margin", format!("margin must be between 0 and {}, got {m}", limits.max_output_dimension)))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(op: &Op) -> Option<&'static str> {
        op.validate(&Limits::default()).err().map(|e| e.field.expect("validation names a field"))
    }

    #[test]
    fn validation_names_fields() {
        assert_eq!(field(&Op::Rotate { degrees: 90.0, background: None }), None);
        assert_eq!(field(&Op::Rotate { degrees: 45.0, background: None }), None);
        assert_eq!(field(&Op::Rotate { degrees: 400.0, background: None }), Some("degrees"));
        assert_eq!(field(&Op::Blur { sigma: 0.0 }), Some("sigma"));
        assert_eq!(field(&Op::Gamma { gamma: f32::NAN }), Some("gamma"));
        let crop = |x, aspect: Option<&str>| Op::Crop {
            x,
            y: None,
            width: None,
            height: None,
            aspect: aspect.map(str::to_string),
            gravity: Gravity::Centre,
        };
        assert_eq!(field(&crop(None, Some("16:x"))), Some("aspect"));
        assert_eq!(field(&crop(Some(1), None)), Some("width"));
        let wm = |json: &str| field(&serde_json::from_str::<Op>(json).unwrap());
        assert_eq!(wm(r#"{"op":"watermark","text":"hi"}"#), None);
        assert_eq!(wm(r#"{"op":"watermark","image":"logos/a/b.png","scale":0.2,"margin":10}"#), None);
        assert_eq!(wm(r#"{"op":"watermark","image":"logos/a/b.png","scale":2}"#), Some("scale"));
        assert_eq!(wm(r#"{"op":"watermark","image":"logos/a/b.png","opacity":1.5}"#), Some("opacity"));
        assert_eq!(wm(r#"{"op":"watermark","text":"  "}"#), Some("text"));
        assert_eq!(wm(r#"{"op":"watermark","text":"hi","margin":99999}"#), Some("margin"));
    }
}
