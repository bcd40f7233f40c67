//! What one output of a job is: its ops, its format and how to encode it ([`OutputSpec`]), and
//! what a list of outputs will cost before any pixel exists ([`plan`], [`resource_keys`]).
//!
//! The encoders themselves live in the engine; the formats, their names and defaults live
//! here, because recipes, job messages, object keys and the web app's door all speak of them.

use serde::{Deserialize, Serialize};

use crate::limits::Limits;
use crate::ops::Op;
use crate::refusal::Refusal;

/// Output formats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Jpeg,
    Png,
    /// WebP, lossy (quality) or lossless.
    Webp,
    /// AVIF (AV1 in HEIF), through libheif; lossy (quality, speed).
    Avif,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Jpeg => "jpeg",
            Format::Png => "png",
            Format::Webp => "webp",
            Format::Avif => "avif",
        }
    }
    pub fn extension(self) -> &'static str {
        match self {
            Format::Jpeg => "jpg",
            Format::Png => "png",
            Format::Webp => "webp",
            Format::Avif => "avif",
        }
    }
    pub fn mime(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
            Format::Webp => "image/webp",
            Format::Avif => "image/avif",
        }
    }
    pub const NAMES: &'static [&'static str] = &["jpeg", "png", "webp", "avif"];
}

/// JPEG chroma subsampling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Chroma {
    #[serde(rename = "4:2:0")]
    S420,
    #[serde(rename = "4:2:2")]
    S422,
    #[serde(rename = "4:4:4")]
    S444,
}

/// Default JPEG quality when a recipe gives none.
pub const DEFAULT_QUALITY: u8 = 85;
/// Default lossy WebP quality.
pub const DEFAULT_WEBP_QUALITY: u8 = 80;
/// Default AVIF quality: at 1600 px on corpus photos, within 1.5 dB PSNR of JPEG 85 at 6–62% of
/// its bytes (docs/protocol.md has the figures).
pub const DEFAULT_AVIF_QUALITY: u8 = 60;
/// Default AVIF speed (libaom cpu-used): about 5× faster than 4 for 2–12% more bytes.
pub const DEFAULT_AVIF_SPEED: u8 = 6;
/// Fastest (largest) AVIF speed.
pub const MAX_AVIF_SPEED: u8 = 9;
/// Accepted JPEG / lossy WebP / AVIF quality.
pub const QUALITY: std::ops::RangeInclusive<u8> = 1..=100;
/// Accepted PNG compression effort.
pub const COMPRESSION_LEVEL: std::ops::RangeInclusive<u8> = 0..=9;
/// PNG compression effort when a recipe gives none.
pub const DEFAULT_COMPRESSION_LEVEL: u8 = 6;

/// A number setting of an output as the recipe builder shows it: what is accepted and the default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Setting {
    pub min: u8,
    pub max: u8,
    pub default: u8,
}

/// The number settings of an output (`GET /api/ops` serves them beside the ops), from the same
/// constants recipe validation ([`crate::recipe`]) checks, so the builder copies no range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct OutputSettings {
    pub quality: Setting,
    /// The engine's default quality per lossy format (a format it has none for takes `quality`'s).
    pub default_quality: DefaultQuality,
    pub speed: Setting,
    pub compression_level: Setting,
}

/// The engine's default quality for each lossy format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DefaultQuality {
    pub jpeg: u8,
    pub webp: u8,
    pub avif: u8,
}

impl OutputSettings {
    pub const CURRENT: OutputSettings = OutputSettings {
        quality: Setting { min: *QUALITY.start(), max: *QUALITY.end(), default: DEFAULT_QUALITY },
        default_quality: DefaultQuality {
            jpeg: DEFAULT_QUALITY,
            webp: DEFAULT_WEBP_QUALITY,
            avif: DEFAULT_AVIF_QUALITY,
        },
        speed: Setting { min: 0, max: MAX_AVIF_SPEED, default: DEFAULT_AVIF_SPEED },
        compression_level: Setting {
            min: *COMPRESSION_LEVEL.start(),
            max: *COMPRESSION_LEVEL.end(),
            default: DEFAULT_COMPRESSION_LEVEL,
        },
    };
}
/// AVIF's slowest speeds (0–2) take minutes a megapixel; they are for small outputs only.
pub const MIN_SLOW_AVIF_SPEED: u8 = 3;
/// Largest output, in pixels, the slowest AVIF speeds may encode.
pub const SLOW_AVIF_PIXELS: u64 = 16_000_000;

/// One output a job asks for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Name of the output, unique within the job (`thumbnail`, `web`, …).
    pub name: String,
    /// Edits applied in order.
    #[serde(default)]
    pub ops: Vec<Op>,
    /// Output format.
    #[serde(default)]
    pub format: Format,
    /// JPEG / lossy WebP quality 1–100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<u8>,
    /// Progressive JPEG.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub progressive: bool,
    /// JPEG chroma subsampling: "4:2:0" (default), "4:2:2", "4:4:4".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chroma_subsampling: Option<Chroma>,
    /// PNG effort 0–9 (default 6): 0 stored, 1–6 fast deflate, 7–9 zlib 7–9.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression_level: Option<u8>,
    /// Lossless WebP.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lossless: bool,
    /// AVIF encoder speed 0–9 (default 6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<u8>,
    /// Apply the EXIF orientation before the ops (default true).
    #[serde(default = "yes", skip_serializing_if = "Clone::clone")]
    pub auto_orient: bool,
    /// Colour profile: convert to sRGB and embed nothing (default), or keep the original's.
    #[serde(default, skip_serializing_if = "Icc::is_default")]
    pub icc: Icc,
}

/// What an output does with the original's colour profile.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Icc {
    /// Convert the pixels to sRGB and embed no profile (what browsers assume).
    #[default]
    Srgb,
    /// Leave the pixels in the original's colour space and embed its ICC profile. CMYK
    /// originals are converted to sRGB all the same, and outputs whose pixels the profile
    /// cannot describe (an RGB profile on a grayscale result) carry none.
    Keep,
}

impl Icc {
    pub fn is_default(&self) -> bool {
        *self == Icc::Srgb
    }
    pub const NAMES: &'static [&'static str] = &["srgb", "keep"];
}

fn yes() -> bool {
    true
}

impl OutputSpec {
    /// An output with default encoding settings.
    pub fn new(name: &str, ops: Vec<Op>, format: Format) -> Self {
        OutputSpec {
            name: name.into(),
            ops,
            format,
            quality: None,
            progressive: false,
            chroma_subsampling: None,
            compression_level: None,
            lossless: false,
            speed: None,
            auto_orient: true,
            icc: Icc::Srgb,
        }
    }
}

/// Every resource key the outputs refer to (watermark logos), sorted, without duplicates.
pub fn resource_keys(outputs: &[OutputSpec]) -> Vec<String> {
    let mut keys: Vec<String> =
        outputs.iter().flat_map(|o| o.ops.iter().filter_map(Op::resource)).map(str::to_string).collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The size of every output of a job, worked out from sizes alone before anything is decoded:
/// `source(output)` gives the upright size the output starts from. Every step of every output
/// is checked against the per-image limits, and the outputs together against the job's.
pub fn plan<E: From<Refusal>>(
    outputs: &[OutputSpec],
    limits: &Limits,
    mut source: impl FnMut(&OutputSpec) -> Result<(u32, u32), E>,
) -> Result<Vec<(u32, u32)>, E> {
    let mut total: u64 = 0;
    let mut sizes = Vec::with_capacity(outputs.len());
    for o in outputs {
        let mut size = source(o)?;
        limits.check_dimensions(size.0, size.1)?;
        for op in &o.ops {
            size = op.output_size(size)?;
            limits.check_output(size.0, size.1)?;
        }
        slow_avif_fits(o, size)?;
        total += size.0 as u64 * size.1 as u64;
        limits.check_job_total(total, 0)?;
        sizes.push(size);
    }
    Ok(sizes)
}

/// The slowest AVIF speeds only for outputs of at most [`SLOW_AVIF_PIXELS`].
fn slow_avif_fits(o: &OutputSpec, (w, h): (u32, u32)) -> Result<(), Refusal> {
    let speed = o.speed.unwrap_or(DEFAULT_AVIF_SPEED);
    if o.format == Format::Avif && speed < MIN_SLOW_AVIF_SPEED && w as u64 * h as u64 > SLOW_AVIF_PIXELS {
        return Err(Refusal::InvalidOp(format!(
            "AVIF speed {speed} is allowed for outputs up to {} megapixels; `{}` would be {w}×{h}. Use speed {MIN_SLOW_AVIF_SPEED} or more, or a smaller size.",
            SLOW_AVIF_PIXELS / 1_000_000,
            o.name,
        )));
    }
    Ok(())
}

#[cfg(test)]
mod plan_tests {
    use super::*;

    fn spec(json: &str) -> OutputSpec {
        serde_json::from_str(json).unwrap()
    }

    fn plan_of(outs: &[OutputSpec], size: (u32, u32)) -> Result<Vec<(u32, u32)>, Refusal> {
        plan(outs, &Limits::default(), |_| Ok(size))
    }

    #[test]
    fn plans_sizes_through_every_op() {
        let outs = [
            spec(r#"{"name":"a","ops":[{"op":"resize","width":400,"height":400},{"op":"rotate","degrees":90}]}"#),
            spec(r#"{"name":"b","ops":[{"op":"crop","aspect":"1:1"},{"op":"resize","width":100}]}"#),
        ];
        assert_eq!(plan_of(&outs, (1920, 1280)).unwrap(), vec![(267, 400), (100, 100)]);
    }

    #[test]
    fn the_slowest_avif_speeds_are_for_small_outputs() {
        let slow = spec(r#"{"name":"a","format":"avif","speed":0}"#);
        let err = plan_of(std::slice::from_ref(&slow), (6000, 4000)).unwrap_err();
        assert!(matches!(err, Refusal::InvalidOp(ref m) if m.contains("speed 3 or more")), "{err:?}");
        assert!(plan_of(&[slow], (1920, 1280)).is_ok());
        assert!(plan_of(&[spec(r#"{"name":"a","format":"avif","speed":3}"#)], (6000, 4000)).is_ok());
    }

    #[test]
    fn the_source_is_checked_against_the_input_limit() {
        let err = plan_of(&[spec(r#"{"name":"a"}"#)], (20000, 20000)).unwrap_err();
        assert!(matches!(err, Refusal::TooManyPixels { .. }), "{err:?}");
    }

    #[test]
    fn resource_keys_are_the_logos_once_each() {
        let outs = [
            spec(r#"{"name":"a","ops":[{"op":"watermark","image":"logos/o/2.png"},{"op":"watermark","text":"x"}]}"#),
            spec(
                r#"{"name":"b","ops":[{"op":"watermark","image":"logos/o/1.png"},{"op":"watermark","image":"logos/o/2.png"}]}"#,
            ),
        ];
        assert_eq!(resource_keys(&outs), ["logos/o/1.png", "logos/o/2.png"]);
    }
}
