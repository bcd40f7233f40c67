//! One decode, many outputs: the engine's entry point for a job.

use std::time::Instant;

pub use darkroom_protocol::output::{plan, resource_keys, Icc, OutputSpec, MIN_SLOW_AVIF_SPEED, SLOW_AVIF_PIXELS};

use crate::decode::{decode_keeping_profile, decode_region_keeping_profile, oriented_dimensions};
use crate::encode::encode_with_icc;
use crate::ops::overlay::Logos;
use crate::ops::Apply;
use crate::shrink::{exact_resize, needed_by_all};
use crate::spec::EncodeOptions;
pub use crate::spec::{Rendered, Resources};
use crate::{EngineError, Limits, Op};

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
