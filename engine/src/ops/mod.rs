//! The edit operations a recipe can ask for: their wire format, their validation, and the
//! dispatch to the modules that apply them ([`geometry`], [`color`], [`filter`], [`overlay`]).
//!
//! The serde shape of [`Op`] is the wire format in recipes and job messages
//! (`{"op":"resize","width":400,"fit":"inside"}`), so renaming a field breaks clients.

pub mod attention;
pub mod color;
pub mod filter;
pub mod geometry;
pub mod overlay;
mod types;

use image::DynamicImage;
use serde::{Deserialize, Serialize};

pub use types::{Color, Filter, Fit, Gravity};

use crate::{EngineError, Limits};

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
        /// Which part `fit: cover` keeps.
        #[serde(default, skip_serializing_if = "Gravity::is_default")]
        gravity: Gravity,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        enlarge: bool,
        #[serde(default, skip_serializing_if = "Filter::is_default")]
        filter: Filter,
    },
    /// Cut out a box (`x`, `y`, `width`, `height` in pixels) or the largest region of an
    /// `aspect` ratio such as `"16:9"`, placed by `gravity`.
    Crop {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        x: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        y: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        width: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        height: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        aspect: Option<String>,
        #[serde(default, skip_serializing_if = "Gravity::is_default")]
        gravity: Gravity,
    },
    /// Rotate clockwise by any angle; corners the photo no longer covers get `background`
    /// (default black; transparent in formats with alpha when the photo has alpha).
    Rotate {
        degrees: f32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        background: Option<Color>,
    },
    /// Mirror left-right.
    FlipHorizontal,
    /// Mirror top-bottom.
    FlipVertical,
    /// Shades of grey.
    Grayscale,
    /// Gaussian blur with standard deviation `sigma` pixels.
    Blur { sigma: f32 },
    /// Unsharp mask: sharpen details larger than `sigma`; differences below `threshold` (0–255) are left alone.
    Sharpen {
        #[serde(default = "one")]
        sigma: f32,
        #[serde(default)]
        threshold: i32,
    },
    /// Multiply brightness (1 = unchanged, 0.5 = half, 2 = double).
    Brightness { factor: f32 },
    /// Scale contrast around mid-grey (1 = unchanged, 0 = flat grey).
    Contrast { factor: f32 },
    /// Scale saturation (1 = unchanged, 0 = grey, 2 = vivid).
    Saturation { factor: f32 },
    /// Rotate hues by `degrees`.
    Hue { degrees: i32 },
    /// Gamma correction (1 = unchanged, above 1 brightens mid-tones).
    Gamma { gamma: f32 },
    /// Negative.
    Invert,
    /// Warm brown tone.
    Sepia,
    /// Overlay a short `text` or a PNG logo (`image`, the key of an uploaded logo) at a
    /// gravity position.
    Watermark {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        /// Key of a PNG logo (`logos/…`); the caller supplies its bytes (see [`crate::pipeline::process_with`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image: Option<String>,
        #[serde(default = "southeast")]
        gravity: Gravity,
        /// 0 (invisible) to 1 (opaque).
        #[serde(default = "half")]
        opacity: f32,
        /// Text height in pixels (default: 5% of the shorter side). Text only.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<u32>,
        /// Logo width as a fraction of the photo's width (default: the logo's own size). Logo only.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scale: Option<f32>,
        /// Distance from the edges in pixels (default: half the text height; 3% of the
        /// photo's shorter side for a logo).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        margin: Option<u32>,
        /// Text colour (default white). Text only.
        #[serde(default = "white")]
        color: Color,
    },
    /// Replace transparency with a solid `background`.
    Flatten {
        #[serde(default = "white")]
        background: Color,
    },
}

fn one() -> f32 {
    1.0
}
fn half() -> f32 {
    0.5
}
fn southeast() -> Gravity {
    Gravity::Southeast
}
fn white() -> Color {
    Color([255, 255, 255, 255])
}

fn range(field: &'static str, v: f32, lo: f32, hi: f32) -> Result<(), (&'static str, String)> {
    if v.is_finite() && (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err((field, format!("{field} must be between {lo} and {hi}, got {v}")))
    }
}

impl Op {
    /// The op's name as written in recipes.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Resize { .. } => "resize",
            Op::Crop { .. } => "crop",
            Op::Rotate { .. } => "rotate",
            Op::FlipHorizontal => "flip_horizontal",
            Op::FlipVertical => "flip_vertical",
            Op::Grayscale => "grayscale",
            Op::Blur { .. } => "blur",
            Op::Sharpen { .. } => "sharpen",
            Op::Brightness { .. } => "brightness",
            Op::Contrast { .. } => "contrast",
            Op::Saturation { .. } => "saturation",
            Op::Hue { .. } => "hue",
            Op::Gamma { .. } => "gamma",
            Op::Invert => "invert",
            Op::Sepia => "sepia",
            Op::Watermark { .. } => "watermark",
            Op::Flatten { .. } => "flatten",
        }
    }

    /// All op names, for error messages that list what exists.
    pub const NAMES: &'static [&'static str] = &[
        "resize",
        "crop",
        "rotate",
        "flip_horizontal",
        "flip_vertical",
        "grayscale",
        "blur",
        "sharpen",
        "brightness",
        "contrast",
        "saturation",
        "hue",
        "gamma",
        "invert",
        "sepia",
        "watermark",
        "flatten",
    ];

    /// Check parameters without touching pixels. The error names the bad field.
    pub fn validate(&self, limits: &Limits) -> Result<(), (&'static str, String)> {
        let dim = |field: &'static str, v: Option<u32>| -> Result<(), (&'static str, String)> {
            match v {
                Some(v) if v == 0 || v > limits.max_output_dimension => {
                    Err((field, format!("{field} must be between 1 and {}, got {v}", limits.max_output_dimension)))
                }
                _ => Ok(()),
            }
        };
        match self {
            Op::Resize { width, height, fit, gravity, .. } => {
                if width.is_none() && height.is_none() {
                    return Err(("width", "resize needs a width, a height or both".into()));
                }
                dim("width", *width)?;
                dim("height", *height)?;
                if *gravity != Gravity::Centre && *fit != Fit::Cover {
                    return Err(("gravity", "gravity applies to fit: cover only".into()));
                }
                Ok(())
            }
            Op::Crop { x, y, width, height, aspect, .. } => match aspect {
                Some(a) => {
                    if x.is_some() || y.is_some() || width.is_some() || height.is_some() {
                        return Err((
                            "aspect",
                            "give either a box (x, y, width, height) or an aspect, not both".into(),
                        ));
                    }
                    types::parse_aspect(a).map(|_| ()).map_err(|m| ("aspect", m))
                }
                None => {
                    if width.is_none() || height.is_none() {
                        return Err((
                            "width",
                            "crop needs width and height (and optionally x, y), or an aspect like \"16:9\"".into(),
                        ));
                    }
                    dim("width", *width)?;
                    dim("height", *height)
                }
            },
            Op::Rotate { degrees, .. } => range("degrees", *degrees, -360.0, 360.0),
            Op::Blur { sigma } => range("sigma", *sigma, 0.3, 100.0),
            Op::Sharpen { sigma, threshold } => {
                range("sigma", *sigma, 0.3, 50.0)?;
                range("threshold", *threshold as f32, 0.0, 255.0)
            }
            Op::Brightness { factor } | Op::Saturation { factor } => range("factor", *factor, 0.0, 10.0),
            Op::Contrast { factor } => range("factor", *factor, 0.0, 10.0),
            Op::Hue { degrees } => range("degrees", *degrees as f32, -360.0, 360.0),
            Op::Gamma { gamma } => range("gamma", *gamma, 0.1, 10.0),
            Op::Watermark { text, image, opacity, size, scale, margin, .. } => {
                match (text, image) {
                    (Some(_), Some(_)) => {
                        return Err(("image", "a watermark has either `text` or `image`, not both".into()))
                    }
                    (None, None) => {
                        return Err((
                            "text",
                            "a watermark needs `text` or `image` (the key of an uploaded PNG logo)".into(),
                        ))
                    }
                    (Some(text), None) => {
                        if text.trim().is_empty() || text.chars().count() > 200 {
                            return Err(("text", "watermark text must be 1-200 characters".into()));
                        }
                        if scale.is_some() {
                            return Err(("scale", "scale applies to logo watermarks; text uses size".into()));
                        }
                    }
                    (None, Some(key)) => {
                        if key.is_empty() || key.len() > 200 {
                            return Err(("image", "the logo key must be 1-200 characters".into()));
                        }
                        if size.is_some() {
                            return Err(("size", "size applies to text watermarks; a logo uses scale".into()));
                        }
                        if let Some(s) = scale {
                            range("scale", *s, 0.01, 1.0)?;
                        }
                    }
                }
                range("opacity", *opacity, 0.0, 1.0)?;
                dim("size", *size)?;
                match margin {
                    Some(m) if *m > limits.max_output_dimension => Err((
                        "margin",
                        format!("margin must be between 0 and {}, got {m}", limits.max_output_dimension),
                    )),
                    _ => Ok(()),
                }
            }
            Op::FlipHorizontal | Op::FlipVertical | Op::Grayscale | Op::Invert | Op::Sepia | Op::Flatten { .. } => {
                Ok(())
            }
        }
    }

    /// The key of an extra image this op needs (a watermark logo), if any.
    pub fn resource(&self) -> Option<&str> {
        match self {
            Op::Watermark { image: Some(key), .. } => Some(key),
            _ => None,
        }
    }

    /// The size this op turns a `w`×`h` image into, worked out from sizes alone (no pixels),
    /// so a job's every step can be checked against the limits before anything is allocated.
    pub fn output_size(&self, src: (u32, u32)) -> Result<(u32, u32), EngineError> {
        Ok(match self {
            Op::Resize { width, height, fit, enlarge, .. } => {
                geometry::resize_dimensions(src, *width, *height, *fit, *enlarge)
            }
            Op::Crop { x, y, width, height, aspect, .. } => {
                geometry::crop_size(src, *x, *y, *width, *height, aspect.as_deref())?
            }
            Op::Rotate { degrees, .. } => geometry::rotated_size(src, *degrees),
            _ => src,
        })
    }

    /// Apply this op (an op that needs a logo fails: use [`Op::apply_with`]).
    pub fn apply(&self, img: DynamicImage, limits: &Limits) -> Result<DynamicImage, EngineError> {
        self.apply_with(img, limits, &overlay::Logos::default())
    }

    /// Apply this op, taking watermark logos from `logos`.
    pub fn apply_with(
        &self,
        img: DynamicImage,
        limits: &Limits,
        logos: &overlay::Logos,
    ) -> Result<DynamicImage, EngineError> {
        // Every intermediate image is within the limits before it is allocated.
        let (w, h) = self.output_size((img.width(), img.height()))?;
        limits.check_output(w, h)?;
        Ok(match self {
            Op::Resize { width, height, fit, gravity, enlarge, filter } => {
                geometry::resize(img, *width, *height, *fit, *gravity, *enlarge, *filter, limits)?
            }
            Op::Crop { x, y, width, height, aspect, gravity } => {
                geometry::crop(img, *x, *y, *width, *height, aspect.as_deref(), *gravity)?
            }
            Op::Rotate { degrees, background } => geometry::rotate(img, *degrees, *background, limits)?,
            Op::FlipHorizontal => img.fliph(),
            Op::FlipVertical => img.flipv(),
            Op::Grayscale => color::grayscale(img),
            Op::Blur { sigma } => filter::blur(img, *sigma),
            Op::Sharpen { sigma, threshold } => filter::sharpen(img, *sigma, *threshold),
            Op::Brightness { factor } => color::brightness(img, *factor),
            Op::Contrast { factor } => color::contrast(img, *factor),
            Op::Saturation { factor } => color::saturation(img, *factor),
            Op::Hue { degrees } => img.huerotate(*degrees),
            Op::Gamma { gamma } => color::gamma(img, *gamma),
            Op::Invert => color::invert(img),
            Op::Sepia => color::sepia(img),
            Op::Watermark { text: Some(text), gravity, opacity, size, margin, color, .. } => {
                overlay::watermark(img, text, *gravity, *opacity, *size, *margin, *color)
            }
            Op::Watermark { image: Some(key), gravity, opacity, scale, margin, .. } => {
                overlay::logo(img, logos.get(key)?, *gravity, *opacity, *scale, *margin)?
            }
            Op::Watermark { .. } => return Err(EngineError::InvalidOp("a watermark needs text or an image".into())),
            Op::Flatten { background } => overlay::flatten(img, *background),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_fields() {
        let l = Limits::default();
        assert!(Op::Rotate { degrees: 90.0, background: None }.validate(&l).is_ok());
        assert!(Op::Rotate { degrees: 45.0, background: None }.validate(&l).is_ok());
        assert_eq!(Op::Rotate { degrees: 400.0, background: None }.validate(&l).unwrap_err().0, "degrees");
        assert_eq!(Op::Blur { sigma: 0.0 }.validate(&l).unwrap_err().0, "sigma");
        assert_eq!(Op::Gamma { gamma: f32::NAN }.validate(&l).unwrap_err().0, "gamma");
        let crop = Op::Crop {
            x: None,
            y: None,
            width: None,
            height: None,
            aspect: Some("16:x".into()),
            gravity: Gravity::Centre,
        };
        assert_eq!(crop.validate(&l).unwrap_err().0, "aspect");
        let crop = Op::Crop { x: Some(1), y: None, width: None, height: None, aspect: None, gravity: Gravity::Centre };
        assert_eq!(crop.validate(&l).unwrap_err().0, "width");
        let wm = |json: &str| serde_json::from_str::<Op>(json).unwrap().validate(&l).err().map(|e| e.0);
        assert_eq!(wm(r#"{"op":"watermark","text":"hi"}"#), None);
        assert_eq!(wm(r#"{"op":"watermark","image":"logos/a/b.png","scale":0.2,"margin":10}"#), None);
        assert_eq!(wm(r#"{"op":"watermark"}"#), Some("text"));
        assert_eq!(wm(r#"{"op":"watermark","text":"hi","image":"logos/a/b.png"}"#), Some("image"));
        assert_eq!(wm(r#"{"op":"watermark","image":"logos/a/b.png","scale":2}"#), Some("scale"));
        assert_eq!(wm(r#"{"op":"watermark","image":"logos/a/b.png","size":20}"#), Some("size"));
        assert_eq!(wm(r#"{"op":"watermark","text":"hi","scale":0.5}"#), Some("scale"));
        assert_eq!(wm(r#"{"op":"watermark","image":"logos/a/b.png","opacity":1.5}"#), Some("opacity"));
    }

    #[test]
    fn every_name_parses() {
        for name in Op::NAMES {
            let json = match *name {
                "resize" => r#"{"op":"resize","width":10}"#.to_string(),
                "crop" => r#"{"op":"crop","aspect":"1:1"}"#.to_string(),
                "rotate" => r#"{"op":"rotate","degrees":90}"#.to_string(),
                "blur" => r#"{"op":"blur","sigma":2}"#.to_string(),
                "brightness" | "contrast" | "saturation" => format!(r#"{{"op":"{name}","factor":1.2}}"#),
                "hue" => r#"{"op":"hue","degrees":30}"#.to_string(),
                "gamma" => r#"{"op":"gamma","gamma":2.2}"#.to_string(),
                "watermark" => r#"{"op":"watermark","text":"hi"}"#.to_string(),
                other => format!(r#"{{"op":"{other}"}}"#),
            };
            let op: Op = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(op.name(), *name);
        }
    }
}
