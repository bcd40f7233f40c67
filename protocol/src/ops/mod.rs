//! The edit operations a recipe can ask for: their wire format ([`Op`]), their value types
//! ([`values`]), the typed watermark ([`watermark`]), their validation ([`validate`]), the size
//! each turns an image into ([`size`]), and the schema the recipe builder is drawn from
//! ([`schema`]).
//!
//! This is the one definition of the op vocabulary: the engine applies these ops (its `ops`
//! module has the pixels), the web app validates them at the door, and the browser's recipe
//! builder gets its fields, ranges and defaults from [`schema::schema`] (`GET /api/ops`).
//! The serde shape of [`Op`] is the wire format in recipes and job messages
//! (`{"op":"resize","width":400,"fit":"inside"}`), so renaming a field breaks clients.

pub mod schema;
pub mod size;
pub mod validate;
pub mod values;
pub mod watermark;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use validate::FieldError;
pub use values::{parse_aspect, Color, Filter, Fit, Gravity};
pub use watermark::{Mark, MarkKind, Watermark};

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
    /// Overlay a short text or a PNG logo (the key of an uploaded logo) at a gravity position.
    Watermark(Watermark),
    /// Replace transparency with a solid `background`.
    Flatten {
        #[serde(default = "white")]
        background: Color,
    },
}

fn one() -> f32 {
    1.0
}
fn white() -> Color {
    Color::WHITE
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
            Op::Watermark(_) => "watermark",
            Op::Flatten { .. } => "flatten",
        }
    }

    /// All op names, for error messages that list what exists (the schema has one entry for
    /// each, in this order).
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

    /// The key of an extra image this op needs (a watermark logo), if any.
    pub fn resource(&self) -> Option<&str> {
        match self {
            Op::Watermark(Watermark { mark: Mark::Logo { image, .. }, .. }) => Some(image),
            _ => None,
        }
    }

    /// Parse one op from its JSON, naming the field at fault when it can: a watermark of the
    /// wrong shape names `text`, `image`, `size` or `scale`; other errors name no field.
    pub fn from_value(value: &Value) -> Result<Op, FieldError> {
        serde_json::from_value::<Op>(value.clone()).map_err(|e| {
            let wire = (value.get("op").and_then(Value::as_str) == Some("watermark"))
                .then(|| {
                    let mut fields = value.as_object()?.clone();
                    fields.remove("op");
                    serde_json::from_value::<watermark::WatermarkWire>(Value::Object(fields)).ok()
                })
                .flatten();
            match wire.map(Watermark::try_from) {
                Some(Err(m)) => FieldError { field: Some(m.field), message: m.message },
                _ => FieldError { field: None, message: e.to_string() },
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Watermarks as the web app wrote them before the typed [`Mark`]: they parse to the right
    /// kind and are written back byte for byte.
    #[test]
    fn the_typed_watermark_round_trips_the_old_json() {
        let old = [
            r##"{"op":"watermark","text":"© Darkroom","gravity":"southeast","opacity":0.5,"color":"#ffffff"}"##,
            r##"{"op":"watermark","text":"hi","gravity":"north","opacity":0.25,"size":40,"margin":8,"color":"#ff000080"}"##,
            r##"{"op":"watermark","image":"logos/abc/def.png","gravity":"southeast","opacity":0.5,"color":"#ffffff"}"##,
            r##"{"op":"watermark","image":"logos/abc/def.png","gravity":"west","opacity":1.0,"scale":0.2,"margin":0,"color":"#ffffff"}"##,
        ];
        for json in old {
            let op: Op = serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(serde_json::to_string(&op).unwrap(), json);
        }
        let text: Op = serde_json::from_str(old[1]).unwrap();
        let Op::Watermark(w) = &text else { panic!("{text:?}") };
        assert_eq!(w.mark, Mark::Text { text: "hi".into(), size: Some(40), color: Color([255, 0, 0, 128]) });
        assert_eq!((w.gravity, w.opacity, w.margin), (Gravity::North, 0.25, Some(8)));
        let logo: Op = serde_json::from_str(old[3]).unwrap();
        assert_eq!(logo.resource(), Some("logos/abc/def.png"));
        let Op::Watermark(w) = &logo else { panic!("{logo:?}") };
        assert_eq!(w.mark, Mark::Logo { image: "logos/abc/def.png".into(), scale: Some(0.2) });
        // The short forms recipes use get the defaults.
        let short: Op = serde_json::from_str(r#"{"op":"watermark","text":"hi"}"#).unwrap();
        assert_eq!(short, Op::Watermark(Watermark::text("hi")));
        let short: Op = serde_json::from_str(r#"{"op":"watermark","image":"logos/a/b.png"}"#).unwrap();
        assert_eq!(short, Op::Watermark(Watermark::logo("logos/a/b.png")));
    }

    #[test]
    fn a_watermark_of_no_kind_or_both_names_the_field() {
        let field = |json: &str| Op::from_value(&serde_json::from_str(json).unwrap()).unwrap_err().field;
        assert_eq!(field(r#"{"op":"watermark"}"#), Some("text"));
        assert_eq!(field(r#"{"op":"watermark","text":"hi","image":"logos/a/b.png"}"#), Some("image"));
        assert_eq!(field(r#"{"op":"watermark","text":"hi","scale":0.5}"#), Some("scale"));
        assert_eq!(field(r#"{"op":"watermark","image":"logos/a/b.png","size":20}"#), Some("size"));
        assert_eq!(field(r#"{"op":"watermark","text":"hi","font":"x"}"#), None, "unknown fields are refused as before");
        assert_eq!(field(r#"{"op":"blur"}"#), None);
    }

    /// Every number field the schema describes is accepted at both ends of its range and
    /// refused just outside it, by the op's own validation.
    #[test]
    fn every_schema_range_is_what_validation_accepts() {
        let limits = crate::Limits::default();
        let mut checked = 0;
        for op in schema::schema(&limits) {
            for f in op.fields.iter().filter(|f| !f.ui_only) {
                let Some((min, max)) = f.kind.bounds() else { continue };
                let with = |v: f64| {
                    let ui: Vec<(&str, serde_json::Value)> =
                        f.when.iter().map(|w| (w.field, w.one_of[0].clone())).collect();
                    let mut json = op.draft(&ui);
                    json[f.name] = if f.kind.is_integer() { serde_json::json!(v as i64) } else { serde_json::json!(v) };
                    let parsed: Result<Op, _> = serde_json::from_value(json.clone());
                    parsed.map_err(|e| e.to_string()).and_then(|o| o.validate(&limits).map_err(|e| e.message))
                };
                assert_eq!(with(min), Ok(()), "{}.{} at its minimum {min}", op.op, f.name);
                assert_eq!(with(max), Ok(()), "{}.{} at its maximum {max}", op.op, f.name);
                let step = if f.kind.is_integer() { 1.0 } else { 0.001 };
                assert!(with(min - step).is_err(), "{}.{} below {min} is refused", op.op, f.name);
                assert!(with(max + step).is_err(), "{}.{} above {max} is refused", op.op, f.name);
                checked += 1;
            }
        }
        assert!(checked >= 15, "only {checked} ranges checked");
    }
}
