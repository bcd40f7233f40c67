//! Recipes: what a user asks Darkroom to make from a photo, and their validation.
//!
//! A recipe is either a named preset (`{"preset":"thumbnail"}`) or a list of outputs
//! (`{"outputs":[{"name":"web","ops":[…],"format":"jpeg","quality":85}]}`). Validation
//! happens before anything is stored or queued, and every error names the field at fault.

use crate::limits::Limits;
use crate::ops::{Filter, Fit, Gravity, Op};
use crate::output::{Format, Icc, OutputSpec, COMPRESSION_LEVEL, DEFAULT_QUALITY, MAX_AVIF_SPEED, QUALITY};
use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

/// Most outputs one job may ask for.
pub const MAX_OUTPUTS: usize = 10;
/// Most ops one output may apply.
pub const MAX_OPS: usize = 20;

/// A recipe that cannot be used, naming the field at fault.
#[derive(Debug, Error, Clone, PartialEq, Eq, Serialize)]
#[error("{field}: {message}")]
pub struct RecipeError {
    /// Path of the bad field, like `outputs[0].ops[1].op`.
    pub field: String,
    /// Stable code (`unknown_op`, `invalid_value`, …).
    pub code: &'static str,
    pub message: String,
}

fn err(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> RecipeError {
    RecipeError { field: field.into(), code, message: message.into() }
}

/// A built-in recipe users pick with one click.
#[derive(Clone, Debug, Serialize)]
pub struct Preset {
    pub id: &'static str,
    pub label: &'static str,
    pub description: &'static str,
}

pub const PRESETS: &[Preset] = &[
    Preset { id: "thumbnail", label: "Thumbnail 400", description: "Fits within 400×400, JPEG quality 80" },
    Preset { id: "web", label: "Web 1600", description: "Fits within 1600×1600, JPEG quality 85" },
    Preset { id: "grayscale", label: "Grayscale", description: "Black and white, fits within 1600×1600, JPEG" },
    Preset { id: "avatar", label: "Square avatar 256", description: "256×256 centre crop, JPEG quality 85" },
    Preset { id: "png", label: "PNG full size", description: "Upright, full size, lossless PNG" },
    Preset { id: "webp", label: "WebP 1600", description: "Fits within 1600×1600, WebP quality 80 (small files)" },
    Preset {
        id: "social",
        label: "Social card 1200×630",
        description: "Link-preview size, cropped to the most detailed part",
    },
    Preset { id: "sepia", label: "Sepia", description: "Warm old-photo tone, fits within 1600×1600, JPEG" },
];

fn fit_box(size: u32, fit: Fit) -> Op {
    sized(size, size, fit, Gravity::Centre)
}

fn sized(width: u32, height: u32, fit: Fit, gravity: Gravity) -> Op {
    Op::Resize { width: Some(width), height: Some(height), fit, gravity, enlarge: false, filter: Filter::Lanczos3 }
}

/// The outputs a preset stands for.
pub fn preset_outputs(id: &str) -> Option<Vec<OutputSpec>> {
    let out = |name: &str, ops: Vec<Op>, format: Format, quality: Option<u8>| OutputSpec {
        quality,
        ..OutputSpec::new(name, ops, format)
    };
    Some(vec![match id {
        "thumbnail" => out("thumbnail", vec![fit_box(400, Fit::Inside)], Format::Jpeg, Some(80)),
        "web" => out("web", vec![fit_box(1600, Fit::Inside)], Format::Jpeg, Some(DEFAULT_QUALITY)),
        "grayscale" => {
            out("grayscale", vec![fit_box(1600, Fit::Inside), Op::Grayscale], Format::Jpeg, Some(DEFAULT_QUALITY))
        }
        "avatar" => out("avatar", vec![fit_box(256, Fit::Cover)], Format::Jpeg, Some(DEFAULT_QUALITY)),
        "png" => out("png", vec![], Format::Png, None),
        "webp" => out("webp", vec![fit_box(1600, Fit::Inside)], Format::Webp, Some(80)),
        "social" => {
            out("social", vec![sized(1200, 630, Fit::Cover, Gravity::Attention)], Format::Jpeg, Some(DEFAULT_QUALITY))
        }
        "sepia" => out("sepia", vec![fit_box(1600, Fit::Inside), Op::Sepia], Format::Jpeg, Some(DEFAULT_QUALITY)),
        _ => return None,
    }])
}

/// Parse and validate a recipe from its JSON text.
pub fn parse(text: &str, limits: &Limits) -> Result<Vec<OutputSpec>, RecipeError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| err("recipe", "invalid_json", format!("the recipe is not valid JSON: {e}")))?;
    parse_value(&value, limits)
}

/// Parse and validate a recipe already decoded as JSON.
pub fn parse_value(value: &Value, limits: &Limits) -> Result<Vec<OutputSpec>, RecipeError> {
    let obj = value.as_object().ok_or_else(|| {
        err("recipe", "invalid_recipe", "the recipe must be a JSON object with `preset` or `outputs`")
    })?;
    for key in obj.keys() {
        if key != "preset" && key != "outputs" {
            return Err(err(
                key.as_str(),
                "unknown_field",
                format!("unknown field `{key}`; a recipe has `preset` or `outputs`"),
            ));
        }
    }
    let outputs = match (obj.get("preset"), obj.get("outputs")) {
        (Some(_), Some(_)) => {
            return Err(err("preset", "invalid_recipe", "give either `preset` or `outputs`, not both"))
        }
        (None, None) => return Err(err("recipe", "missing_field", "the recipe needs `preset` or `outputs`")),
        (Some(p), None) => {
            let id = p.as_str().ok_or_else(|| err("preset", "invalid_value", "`preset` must be a string"))?;
            preset_outputs(id).ok_or_else(|| {
                let known: Vec<_> = PRESETS.iter().map(|p| p.id).collect();
                err("preset", "unknown_preset", format!("unknown preset `{id}`; choose one of {}", known.join(", ")))
            })?
        }
        (None, Some(list)) => {
            let list = list.as_array().ok_or_else(|| err("outputs", "invalid_value", "`outputs` must be a list"))?;
            list.iter().enumerate().map(|(i, o)| parse_output(i, o)).collect::<Result<Vec<_>, _>>()?
        }
    };
    validate_outputs(&outputs, limits)?;
    Ok(outputs)
}

fn parse_output(i: usize, value: &Value) -> Result<OutputSpec, RecipeError> {
    let at = format!("outputs[{i}]");
    let obj = value.as_object().ok_or_else(|| err(&at, "invalid_value", "each output must be an object"))?;
    const FIELDS: &[&str] = &[
        "name",
        "ops",
        "format",
        "quality",
        "progressive",
        "chroma_subsampling",
        "compression_level",
        "lossless",
        "speed",
        "auto_orient",
        "icc",
    ];
    if let Some(k) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(err(
            format!("{at}.{k}"),
            "unknown_field",
            format!("unknown field `{k}`; an output has {}", FIELDS.join(", ")),
        ));
    }
    if let Some(f) = obj.get("format") {
        let ok = f.as_str().is_some_and(|f| Format::NAMES.contains(&f));
        if !ok {
            return Err(err(
                format!("{at}.format"),
                "unknown_format",
                format!("unknown format {f}; choose one of {}", Format::NAMES.join(", ")),
            ));
        }
    }
    if let Some(icc) = obj.get("icc") {
        if !icc.as_str().is_some_and(|v| Icc::NAMES.contains(&v)) {
            return Err(err(
                format!("{at}.icc"),
                "invalid_value",
                format!(
                    "icc is \"srgb\" (convert to sRGB, the default) or \"keep\" (keep the original's colour profile), got {icc}"
                ),
            ));
        }
    }
    if let Some(ops) = obj.get("ops") {
        let ops = ops.as_array().ok_or_else(|| err(format!("{at}.ops"), "invalid_value", "`ops` must be a list"))?;
        for (j, op) in ops.iter().enumerate() {
            let name = op.get("op").and_then(Value::as_str);
            match name {
                None => return Err(err(format!("{at}.ops[{j}].op"), "missing_field", "each op needs an `op` name")),
                Some(n) if !Op::NAMES.contains(&n) => {
                    return Err(err(
                        format!("{at}.ops[{j}].op"),
                        "unknown_op",
                        format!("unknown op `{n}`; available ops: {}", Op::NAMES.join(", ")),
                    ))
                }
                Some(_) => {}
            }
            Op::from_value(op).map_err(|e| {
                let field = match e.field {
                    Some(f) => format!("{at}.ops[{j}].{f}"),
                    None => format!("{at}.ops[{j}]"),
                };
                err(field, "invalid_value", e.message)
            })?;
        }
    }
    serde_json::from_value::<OutputSpec>(value.clone()).map_err(|e| err(&at, "invalid_value", e.to_string()))
}

/// Rules every list of outputs obeys, whoever built it (the API, a preset, an outside tool).
pub fn validate_outputs(outputs: &[OutputSpec], limits: &Limits) -> Result<(), RecipeError> {
    if outputs.is_empty() {
        return Err(err("outputs", "invalid_value", "ask for at least one output"));
    }
    if outputs.len() > MAX_OUTPUTS {
        return Err(err(
            "outputs",
            "too_many_outputs",
            format!("at most {MAX_OUTPUTS} outputs per job, got {}", outputs.len()),
        ));
    }
    for (i, o) in outputs.iter().enumerate() {
        let at = format!("outputs[{i}]");
        let name_ok = !o.name.is_empty()
            && o.name.len() <= 40
            && o.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(err(
                format!("{at}.name"),
                "invalid_name",
                "output names are 1-40 characters of a-z, 0-9, '-' and '_'",
            ));
        }
        if outputs[..i].iter().any(|p| p.name == o.name) {
            return Err(err(format!("{at}.name"), "duplicate_name", format!("two outputs are named `{}`", o.name)));
        }
        if o.ops.len() > MAX_OPS {
            return Err(err(
                format!("{at}.ops"),
                "too_many_ops",
                format!("at most {MAX_OPS} ops per output, got {}", o.ops.len()),
            ));
        }
        if let Some(q) = o.quality {
            if !QUALITY.contains(&q) {
                let (lo, hi) = (QUALITY.start(), QUALITY.end());
                return Err(err(
                    format!("{at}.quality"),
                    "invalid_value",
                    format!("quality must be {lo}-{hi}, got {q}"),
                ));
            }
        }
        if let Some(c) = o.compression_level {
            if !COMPRESSION_LEVEL.contains(&c) {
                let (lo, hi) = (COMPRESSION_LEVEL.start(), COMPRESSION_LEVEL.end());
                return Err(err(
                    format!("{at}.compression_level"),
                    "invalid_value",
                    format!("compression_level must be {lo}-{hi}, got {c}"),
                ));
            }
        }
        if let Some(s) = o.speed {
            if s > MAX_AVIF_SPEED {
                return Err(err(
                    format!("{at}.speed"),
                    "invalid_value",
                    format!("speed must be 0-{} (0 slowest and smallest, default 6), got {s}", MAX_AVIF_SPEED),
                ));
            }
        }
        for (j, op) in o.ops.iter().enumerate() {
            op.validate(limits).map_err(|e| {
                let field = e.field.map_or(format!("{at}.ops[{j}]"), |f| format!("{at}.ops[{j}].{f}"));
                err(field, "invalid_value", e.message)
            })?;
            if let Some(key) = op.resource() {
                if !crate::keys::is_logo_key(key) {
                    return Err(err(
                        format!("{at}.ops[{j}].image"),
                        "invalid_logo",
                        "image must be the key of an uploaded logo, like logos/<owner>/<id>.png (POST /api/logos answers with it)",
                    ));
                }
            }
        }
    }
    certain_sizes(outputs, limits)
}

/// Refuse what is certain to exceed the size limits whatever photo comes: an op whose result
/// size does not depend on the photo (a `fill` or `cover` resize to both sides with
/// `enlarge`), and what fixed-size ops after it make of that. The rest is checked once the
/// photo's size is known (at upload and again by the processor, `engine::plan`).
fn certain_sizes(outputs: &[OutputSpec], limits: &Limits) -> Result<(), RecipeError> {
    let mut total: u64 = 0;
    for (i, o) in outputs.iter().enumerate() {
        let mut size: Option<(u32, u32)> = None;
        for (j, op) in o.ops.iter().enumerate() {
            size = match (op, size) {
                (Op::Resize { width: Some(w), height: Some(h), fit: Fit::Fill | Fit::Cover, enlarge: true, .. }, _) => {
                    Some((*w, *h))
                }
                (Op::Resize { .. } | Op::Crop { .. }, _) => None,
                (op, Some(known)) => op.output_size(known).ok(),
                (_, None) => None,
            };
            if let Some((w, h)) = size {
                limits
                    .check_output(w, h)
                    .map_err(|e| err(format!("outputs[{i}].ops[{j}]"), e.code(), e.to_string()))?;
            }
        }
        if let Some((w, h)) = size {
            total += w as u64 * h as u64;
            limits.check_job_total(total, 0).map_err(|e| err("outputs", e.code(), e.to_string()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Vec<OutputSpec>, RecipeError> {
        parse(text, &Limits::default())
    }

    #[test]
    fn sizes_certain_to_exceed_the_limits_are_refused() {
        // Issue 12's amplification: ten 16384×16384 outputs (268 MP each) of whatever photo.
        let one = r#"{"name":"x0","ops":[{"op":"resize","width":16384,"height":16384,"fit":"fill","enlarge":true}],"format":"png","compression_level":0}"#;
        let e = p(&format!(r#"{{"outputs":[{one}]}}"#)).unwrap_err();
        assert_eq!((e.field.as_str(), e.code), ("outputs[0].ops[0]", "output_too_large"), "{e:?}");
        assert!(e.message.contains("268.4 megapixels"), "{}", e.message);
        // Each within the per-image limit, together over the job's.
        let outs: Vec<String> = (0..4)
            .map(|i| format!(r#"{{"name":"b{i}","ops":[{{"op":"resize","width":10000,"height":9000,"fit":"cover","enlarge":true}}]}}"#))
            .collect();
        let e = p(&format!(r#"{{"outputs":[{}]}}"#, outs.join(","))).unwrap_err();
        assert_eq!((e.field.as_str(), e.code), ("outputs", "job_too_large"), "{e:?}");
        // A fixed size turned by 45° grows its canvas past the limit.
        let e = p(r#"{"outputs":[{"name":"r","ops":[{"op":"resize","width":9000,"height":9000,"fit":"fill","enlarge":true},{"op":"rotate","degrees":45}]}]}"#).unwrap_err();
        assert_eq!(e.field, "outputs[0].ops[1]", "{e:?}");
        // Without enlarge the size depends on the photo: left to the upload check.
        assert!(p(r#"{"outputs":[{"name":"x","ops":[{"op":"resize","width":16384,"height":16384,"fit":"fill"}]}]}"#)
            .is_ok());
    }

    #[test]
    fn presets_expand() {
        for preset in PRESETS {
            let outs = p(&format!("{{\"preset\":\"{}\"}}", preset.id)).unwrap();
            assert_eq!(outs.len(), 1);
            assert_eq!(outs[0].name, preset.id);
        }
    }

    #[test]
    fn issue_example_parses() {
        let outs = p(r#"{"outputs":[{"name":"web","ops":[{"op":"resize","width":1600,"height":1600,"fit":"inside"},{"op":"grayscale"}],"format":"jpeg","quality":85}]}"#).unwrap();
        assert_eq!(outs[0].ops.len(), 2);
        assert_eq!(outs[0].format, Format::Jpeg);
        assert_eq!(outs[0].quality, Some(85));
        assert!(outs[0].auto_orient);
    }

    #[test]
    fn errors_name_the_field() {
        let e = p(r#"{"outputs":[{"name":"a","ops":[{"op":"grayscale"},{"op":"explode"}]}]}"#).unwrap_err();
        assert_eq!((e.field.as_str(), e.code), ("outputs[0].ops[1].op", "unknown_op"));
        assert!(e.message.contains("explode") && e.message.contains("resize"), "{}", e.message);

        let e = p(r#"{"outputs":[{"name":"a","ops":[{"op":"resize"}]}]}"#).unwrap_err();
        assert_eq!(e.field, "outputs[0].ops[0].width");

        let e = p(r#"{"outputs":[{"name":"a","ops":[{"op":"resize","width":0}]}]}"#).unwrap_err();
        assert_eq!(e.field, "outputs[0].ops[0].width");

        let e = p(r#"{"outputs":[{"name":"a","ops":[{"op":"rotate","degrees":400}]}]}"#).unwrap_err();
        assert_eq!(e.field, "outputs[0].ops[0].degrees");

        let e = p(r#"{"outputs":[{"name":"a","ops":[{"op":"blur","sigma":"big"}]}]}"#).unwrap_err();
        assert_eq!(e.field, "outputs[0].ops[0]");

        let e = p(r##"{"outputs":[{"name":"a","ops":[{"op":"flatten","background":"#12"}]}]}"##).unwrap_err();
        assert!(e.message.contains("#rrggbb"), "{}", e.message);

        let e = p(r#"{"outputs":[{"name":"a","compression_level":12,"format":"png"}]}"#).unwrap_err();
        assert_eq!(e.field, "outputs[0].compression_level");

        let e = p(r#"{"outputs":[{"name":"a","format":"bmp"}]}"#).unwrap_err();
        assert_eq!((e.field.as_str(), e.code), ("outputs[0].format", "unknown_format"));

        let e = p(r#"{"outputs":[{"name":"a","format":"avif","speed":10}]}"#).unwrap_err();
        assert_eq!(e.field, "outputs[0].speed");
        let ok = p(r#"{"outputs":[{"name":"a","format":"avif","quality":50,"speed":9}]}"#).unwrap();
        assert_eq!((ok[0].format, ok[0].speed), (Format::Avif, Some(9)));

        let e = p(r#"{"outputs":[{"name":"a","icc":"adobe"}]}"#).unwrap_err();
        assert_eq!((e.field.as_str(), e.code), ("outputs[0].icc", "invalid_value"));
        assert!(e.message.contains("keep"), "{}", e.message);
        assert_eq!(p(r#"{"outputs":[{"name":"a","icc":"keep"}]}"#).unwrap()[0].icc, Icc::Keep);
        assert_eq!(p(r#"{"outputs":[{"name":"a"}]}"#).unwrap()[0].icc, Icc::Srgb);

        let ok = p(
            r#"{"outputs":[{"name":"a","ops":[{"op":"watermark","image":"logos/abc123/0190-def.png","scale":0.2}]}]}"#,
        );
        assert_eq!(ok.unwrap()[0].ops[0].resource(), Some("logos/abc123/0190-def.png"));
        for bad in [
            "originals/x",
            "logos/../originals/x.png",
            "logos/a/b/c.png",
            "logos/a/b.jpg",
            "logos//b.png",
            "logos/a/.png",
            "/logos/a/b.png",
            "logos/a b/c.png",
        ] {
            let e = p(&format!(
                r#"{{"outputs":[{{"name":"a","ops":[{{"op":"grayscale"}},{{"op":"watermark","image":"{bad}"}}]}}]}}"#
            ))
            .unwrap_err();
            assert_eq!((e.field.as_str(), e.code), ("outputs[0].ops[1].image", "invalid_logo"), "{bad}");
        }

        let e = p(r#"{"outputs":[{"name":"a","quality":0}]}"#).unwrap_err();
        assert_eq!(e.field, "outputs[0].quality");

        let e = p(r#"{"outputs":[{"name":"a"},{"name":"a"}]}"#).unwrap_err();
        assert_eq!((e.field.as_str(), e.code), ("outputs[1].name", "duplicate_name"));

        let e = p(r#"{"outputs":[{"name":"Bad Name"}]}"#).unwrap_err();
        assert_eq!(e.field, "outputs[0].name");

        let e = p(r#"{"preset":"huge"}"#).unwrap_err();
        assert_eq!((e.field.as_str(), e.code), ("preset", "unknown_preset"));

        let e = p(r#"{"outputs":[{"name":"a","ops":[{"op":"resize","width":10,"colour":"red"}]}]}"#).unwrap_err();
        assert_eq!(e.field, "outputs[0].ops[0]");
        assert!(e.message.contains("colour"), "{}", e.message);
    }

    #[test]
    fn shape_errors() {
        assert_eq!(p("{}").unwrap_err().code, "missing_field");
        assert_eq!(p("not json").unwrap_err().code, "invalid_json");
        assert_eq!(p("[]").unwrap_err().code, "invalid_recipe");
        assert_eq!(p(r#"{"outputs":[]}"#).unwrap_err().field, "outputs");
        assert_eq!(p(r#"{"preset":"web","outputs":[]}"#).unwrap_err().field, "preset");
        assert_eq!(p(r#"{"presett":"web"}"#).unwrap_err().code, "unknown_field");
        let many: Vec<String> = (0..11).map(|i| format!("{{\"name\":\"o{i}\"}}")).collect();
        assert_eq!(p(&format!("{{\"outputs\":[{}]}}", many.join(","))).unwrap_err().code, "too_many_outputs");
        let ops = vec!["{\"op\":\"grayscale\"}"; MAX_OPS + 1].join(",");
        assert_eq!(
            p(&format!("{{\"outputs\":[{{\"name\":\"a\",\"ops\":[{ops}]}}]}}")).unwrap_err().code,
            "too_many_ops"
        );
    }

    /// The output settings `GET /api/ops` serves are exactly what validation accepts.
    #[test]
    fn the_served_output_settings_are_what_validation_accepts() {
        use crate::output::OutputSettings;
        let n = OutputSettings::CURRENT;
        let check = |field: &str, v: i64, format: &str| {
            let json = format!(r#"{{"outputs":[{{"name":"a","format":"{format}","{field}":{v}}}]}}"#);
            parse(&json, &Limits::default()).is_ok()
        };
        for (field, s, format) in [
            ("quality", n.quality, "jpeg"),
            ("speed", n.speed, "avif"),
            ("compression_level", n.compression_level, "png"),
        ] {
            assert!(check(field, s.min.into(), format) && check(field, s.max.into(), format), "{field} {s:?}");
            assert!(check(field, s.default.into(), format), "{field} default");
            assert!(!check(field, i64::from(s.max) + 1, format), "{field} above {}", s.max);
            if s.min > 0 {
                assert!(!check(field, i64::from(s.min) - 1, format), "{field} below {}", s.min);
            }
        }
    }
}
