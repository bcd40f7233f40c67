//! One decode, many outputs: the engine's entry point for a job.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::decode::{decode_keeping_profile, decode_region_keeping_profile, oriented_dimensions};
use crate::encode::{encode_with_icc, DEFAULT_AVIF_SPEED};
use crate::ops::overlay::Logos;
use crate::shrink::{exact_resize, needed_by_all};
use crate::spec::EncodeOptions;
pub use crate::spec::{Rendered, Resources};
use crate::{Chroma, EngineError, Format, Limits, Op};

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

    pub fn encode_options(&self) -> EncodeOptions {
        EncodeOptions {
            quality: self.quality,
            progressive: self.progressive,
            chroma: self.chroma_subsampling,
            compression_level: self.compression_level,
            lossless: self.lossless,
            speed: self.speed,
        }
    }
}

/// Every resource key the outputs refer to, sorted, without duplicates.
pub fn resource_keys(outputs: &[OutputSpec]) -> Vec<String> {
    let mut keys: Vec<String> =
        outputs.iter().flat_map(|o| o.ops.iter().filter_map(Op::resource)).map(str::to_string).collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Decode `input` once and render every output, giving up with [`EngineError::TimeLimit`]
/// once `deadline` has passed (checked between steps).
pub fn process_until(
    input: &[u8],
    outputs: &[OutputSpec],
    limits: &Limits,
    deadline: Option<(Instant, u64)>,
) -> Result<Vec<Rendered>, EngineError> {
    process_with(input, outputs, limits, &Resources::new(), deadline)
}

/// [`process_until`] for recipes that use watermark logos: `resources` holds the bytes of
/// every key [`resource_keys`] lists (each logo is decoded once, within
/// [`LOGO_LIMITS`](crate::ops::overlay::LOGO_LIMITS), before the photo is).
pub fn process_with(
    input: &[u8],
    outputs: &[OutputSpec],
    limits: &Limits,
    resources: &Resources,
    deadline: Option<(Instant, u64)>,
) -> Result<Vec<Rendered>, EngineError> {
    let mut rendered = Vec::with_capacity(outputs.len());
    process_each(input, outputs, limits, resources, deadline, &mut |r| {
        rendered.push(r);
        Ok(())
    })?;
    Ok(rendered)
}

/// The size of every output of a job, worked out from sizes alone before anything is decoded:
/// `source(output)` gives the upright size the output starts from. Every step of every output
/// is checked against the per-image limits, and the outputs together against the job's.
pub fn plan(
    outputs: &[OutputSpec],
    limits: &Limits,
    mut source: impl FnMut(&OutputSpec) -> Result<(u32, u32), EngineError>,
) -> Result<Vec<(u32, u32)>, EngineError> {
    let mut total: u64 = 0;
    let mut sizes = Vec::with_capacity(outputs.len());
    for o in outputs {
        let mut size = source(o)?;
        limits.check_dimensions(size.0, size.1)?;
        for op in &o.ops {
            size = op.output_size(size)?;
            limits.check_output(size.0, size.1)?;
        }
        let pixels = size.0 as u64 * size.1 as u64;
        if o.format == Format::Avif
            && o.speed.unwrap_or(DEFAULT_AVIF_SPEED) < MIN_SLOW_AVIF_SPEED
            && pixels > SLOW_AVIF_PIXELS
        {
            return Err(EngineError::InvalidOp(format!(
                "AVIF speed {} is allowed for outputs up to {} megapixels; `{}` would be {}×{}. Use speed {MIN_SLOW_AVIF_SPEED} or more, or a smaller size.",
                o.speed.unwrap_or(DEFAULT_AVIF_SPEED),
                SLOW_AVIF_PIXELS / 1_000_000,
                o.name,
                size.0,
                size.1
            )));
        }
        total += pixels;
        limits.check_job_total(total, 0)?;
        sizes.push(size);
    }
    Ok(sizes)
}

/// AVIF's slowest speeds (0–2) take minutes a megapixel; they are for small outputs only.
pub const MIN_SLOW_AVIF_SPEED: u8 = 3;
/// Largest output, in pixels, the slowest AVIF speeds may encode.
pub const SLOW_AVIF_PIXELS: u64 = 16_000_000;

/// The engine's entry point: plan the job (refusing what would exceed the limits before
/// anything is decoded), decode `input` once, and hand each output to `sink` as soon as it is
/// encoded, so the caller can store it and the engine holds one encoded output at a time.
/// The outputs' encoded bytes together may not exceed [`Limits::max_job_output_bytes`].
pub fn process_each(
    input: &[u8],
    outputs: &[OutputSpec],
    limits: &Limits,
    resources: &Resources,
    deadline: Option<(Instant, u64)>,
    sink: &mut dyn FnMut(Rendered) -> Result<(), EngineError>,
) -> Result<(), EngineError> {
    let check = || match deadline {
        Some((at, secs)) if Instant::now() > at => Err(EngineError::TimeLimit(secs)),
        _ => Ok(()),
    };
    // Empty or oversized files are refused as such before anything reads a header.
    limits.check_bytes(input.len())?;
    plan(outputs, limits, |o| oriented_dimensions(input, o.auto_orient))?;
    let mut bytes_out: u64 = 0;
    let mut sink = |r: Rendered| {
        bytes_out += r.bytes.len() as u64;
        limits.check_job_total(0, bytes_out)?;
        sink(r)
    };
    let logos = load_logos(outputs, resources)?;
    // JPEG to JPEG with at most a resize: on the YCbCr planes, no RGB at all.
    #[cfg(libjpeg)]
    if crate::jpeg::planar::try_process(input, outputs, limits, &check, &mut sink)? {
        return Ok(());
    }
    render_rgb(input, outputs, limits, &logos, &check, &mut sink)
}

/// Every watermark logo the outputs use, decoded once (within
/// [`LOGO_LIMITS`](crate::ops::overlay::LOGO_LIMITS)) before the photo is.
fn load_logos(outputs: &[OutputSpec], resources: &Resources) -> Result<Logos, EngineError> {
    let mut logos = Logos::default();
    for key in resource_keys(outputs) {
        let bytes = resources
            .get(&key)
            .ok_or_else(|| EngineError::InvalidOp(format!("the watermark logo {key} was not provided")))?;
        logos.insert(&key, bytes)?;
    }
    Ok(logos)
}

/// Outputs that agree on this share one decode: orientation and what happens to the profile.
fn decode_key(o: &OutputSpec) -> (bool, Icc) {
    (o.auto_orient, o.icc)
}

/// The RGB pipeline: one decode per [`decode_key`], each output edited and encoded in turn.
fn render_rgb(
    input: &[u8],
    outputs: &[OutputSpec],
    limits: &Limits,
    logos: &Logos,
    check: &dyn Fn() -> Result<(), EngineError>,
    sink: &mut dyn FnMut(Rendered) -> Result<(), EngineError>,
) -> Result<(), EngineError> {
    let mut slots: Vec<((bool, Icc), Option<Decoded>)> = Vec::new();
    for (i, spec) in outputs.iter().enumerate() {
        let k = decode_key(spec);
        let at = match slots.iter().position(|(sk, _)| *sk == k) {
            Some(at) => at,
            None => {
                slots.push((k, Some(shared_decode(input, outputs, limits, spec)?)));
                slots.len() - 1
            }
        };
        let slot = &mut slots[at].1;
        // The last output that needs this decode takes it; earlier ones work on a copy.
        let last_user = outputs.iter().rposition(|o| decode_key(o) == k) == Some(i);
        let decoded = if last_user { slot.take() } else { slot.clone() }.expect("decoded above");
        sink(render(spec, decoded, limits, logos, check)?)?;
    }
    Ok(())
}

/// The decode `spec` shares with every output of the same [`decode_key`]: as small as all of
/// them allow (shrink-on-load), or only the crop box when `spec` is alone and starts with one.
fn shared_decode(
    input: &[u8],
    outputs: &[OutputSpec],
    limits: &Limits,
    spec: &OutputSpec,
) -> Result<Decoded, EngineError> {
    let k = decode_key(spec);
    let full = oriented_dimensions(input, spec.auto_orient)?;
    let need = needed_by_all(outputs.iter().filter(|o| decode_key(o) == k), full);
    let keep = spec.icc == Icc::Keep;
    // A lone output that starts with a crop box: decode only the box.
    let alone = outputs.iter().filter(|o| decode_key(o) == k).count() == 1;
    let region = if alone { crop_box(spec, full) } else { None };
    let cropped = match region {
        Some(r) => decode_region_keeping_profile(input, limits, spec.auto_orient, r, keep)?,
        None => None,
    };
    Ok(match cropped {
        Some((img, icc)) => Decoded { full: (img.width(), img.height()), img, icc, skip: 1 },
        None => {
            let (img, icc) = decode_keeping_profile(input, limits, spec.auto_orient, need, keep)?;
            Decoded { img, icc, full, skip: 0 }
        }
    })
}

/// One output from its decode: the ops the decode did not already do, the limits, the profile
/// (when it fits the result) and the encoder.
fn render(
    spec: &OutputSpec,
    Decoded { mut img, icc, full, skip }: Decoded,
    limits: &Limits,
    logos: &Logos,
    check: &dyn Fn() -> Result<(), EngineError>,
) -> Result<Rendered, EngineError> {
    let mut ops = spec.ops.iter().skip(skip);
    if (img.width(), img.height()) != full {
        // Shrunk on load: the first op is a resize; give it the exact size it would have
        // produced from the full image.
        if let Some(first) = ops.next() {
            check()?;
            img = exact_resize(first, full).apply_with(img, limits, logos)?;
        }
    }
    for op in ops {
        check()?;
        img = op.apply_with(img, limits, logos)?;
    }
    check()?;
    limits.check_output(img.width(), img.height())?;
    let icc = icc.filter(|p| crate::color_management::profile_fits(p, &img));
    let bytes = encode_with_icc(&img, spec.format, &EncodeOptions::from(spec), icc.as_deref())?;
    Ok(Rendered { name: spec.name.clone(), format: spec.format, width: img.width(), height: img.height(), bytes })
}

/// One decode shared by outputs: upright (or not) pixels, the profile they are in (when kept),
/// the full upright size (the pixels may be smaller: shrink-on-load), and how many of the
/// output's ops the decode already did (1: it decoded only the first op's crop box).
#[derive(Clone)]
struct Decoded {
    img: image::DynamicImage,
    icc: Option<Vec<u8>>,
    full: (u32, u32),
    skip: usize,
}

/// The box an output's first op crops, when it is a plain box (no aspect ratio) that starts
/// inside the image, clamped to it as the crop op clamps it.
fn crop_box(o: &OutputSpec, (sw, sh): (u32, u32)) -> Option<(u32, u32, u32, u32)> {
    let Some(Op::Crop { x, y, width, height, aspect: None, .. }) = o.ops.first() else { return None };
    let (x, y) = (x.unwrap_or(0), y.unwrap_or(0));
    if x >= sw || y >= sh {
        return None; // the crop op explains the error
    }
    let (w, h) = (width.unwrap_or(sw).min(sw - x), height.unwrap_or(sh).min(sh - y));
    (w > 0 && h > 0).then_some((x, y, w, h))
}

/// [`process_until`] without a time limit.
pub fn process(input: &[u8], outputs: &[OutputSpec], limits: &Limits) -> Result<Vec<Rendered>, EngineError> {
    process_until(input, outputs, limits, None)
}

#[cfg(test)]
mod plan_tests {
    use super::*;

    fn spec(json: &str) -> OutputSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn plans_sizes_through_every_op() {
        let l = Limits::default();
        let outs = [
            spec(r#"{"name":"a","ops":[{"op":"resize","width":400,"height":400},{"op":"rotate","degrees":90}]}"#),
            spec(r#"{"name":"b","ops":[{"op":"crop","aspect":"1:1"},{"op":"resize","width":100}]}"#),
        ];
        assert_eq!(plan(&outs, &l, |_| Ok((1920, 1280))).unwrap(), vec![(267, 400), (100, 100)]);
    }

    #[test]
    fn the_slowest_avif_speeds_are_for_small_outputs() {
        let l = Limits::default();
        let slow = spec(r#"{"name":"a","format":"avif","speed":0}"#);
        let err = plan(std::slice::from_ref(&slow), &l, |_| Ok((6000, 4000))).unwrap_err();
        assert!(matches!(err, EngineError::InvalidOp(ref m) if m.contains("speed 3 or more")), "{err:?}");
        assert!(plan(&[slow], &l, |_| Ok((1920, 1280))).is_ok());
        assert!(plan(&[spec(r#"{"name":"a","format":"avif","speed":3}"#)], &l, |_| Ok((6000, 4000))).is_ok());
    }

    #[test]
    fn the_source_is_checked_against_the_input_limit() {
        let l = Limits::default();
        let err = plan(&[spec(r#"{"name":"a"}"#)], &l, |_| Ok((20000, 20000))).unwrap_err();
        assert!(matches!(err, EngineError::TooManyPixels { .. }), "{err:?}");
    }
}
