//! One decode, many outputs: the engine's entry point for a job. What a job asks for
//! ([`OutputSpec`]) and what it will cost ([`plan`], [`resource_keys`]) are the protocol's,
//! re-exported here.

use std::collections::HashMap;
use std::time::Instant;

pub use darkroom_protocol::output::{plan, resource_keys, Icc, OutputSpec, MIN_SLOW_AVIF_SPEED, SLOW_AVIF_PIXELS};

use crate::decode::{decode_keeping_profile, decode_region_keeping_profile, oriented_dimensions};
use crate::encode::{encode_with_icc, Format, OutputEncoding};
use crate::ops::geometry::resize_dimensions;
use crate::ops::overlay::Logos;
use crate::ops::{Apply, Fit};
use crate::{EngineError, Limits, Op};

/// One encoded output.
#[derive(Clone, Debug)]
pub struct Rendered {
    pub name: String,
    pub format: Format,
    pub width: u32,
    pub height: u32,
    pub bytes: Vec<u8>,
}

/// Extra images a recipe refers to by key (watermark logos), fetched by the caller: key → bytes.
pub type Resources = HashMap<String, Vec<u8>>;

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
    let mut logos = Logos::default();
    for key in resource_keys(outputs) {
        let bytes = resources
            .get(&key)
            .ok_or_else(|| EngineError::InvalidOp(format!("the watermark logo {key} was not provided")))?;
        logos.insert(&key, bytes)?;
    }
    // JPEG to JPEG with at most a resize: on the YCbCr planes, no RGB at all.
    #[cfg(libjpeg)]
    if crate::planar::try_process(input, outputs, limits, &check, &mut sink)? {
        return Ok(());
    }
    // Outputs that agree on orientation and colour profile share one decode.
    let key = |o: &OutputSpec| (o.auto_orient, o.icc);
    let mut slots: Vec<((bool, Icc), Option<Decoded>)> = Vec::new();
    for (i, spec) in outputs.iter().enumerate() {
        let k = key(spec);
        let slot = match slots.iter().position(|(sk, _)| *sk == k) {
            Some(at) => &mut slots[at].1,
            None => {
                // As small as every output sharing the decode allows.
                let full = oriented_dimensions(input, spec.auto_orient)?;
                let need = outputs
                    .iter()
                    .filter(|o| key(o) == k)
                    .map(|o| needed_size(o, full))
                    .try_fold((0, 0), |acc, n| n.map(|n| (acc.0.max(n.0), acc.1.max(n.1))));
                let keep = spec.icc == Icc::Keep;
                // A lone output that starts with a crop box: decode only the box.
                let alone = outputs.iter().filter(|o| key(o) == k).count() == 1;
                let region = if alone { crop_box(spec, full) } else { None };
                let cropped = match region {
                    Some(r) => decode_region_keeping_profile(input, limits, spec.auto_orient, r, keep)?,
                    None => None,
                };
                let decoded = match cropped {
                    Some((img, icc)) => Decoded { full: (img.width(), img.height()), img, icc, skip: 1 },
                    None => {
                        let (img, icc) = decode_keeping_profile(input, limits, spec.auto_orient, need, keep)?;
                        Decoded { img, icc, full, skip: 0 }
                    }
                };
                slots.push((k, Some(decoded)));
                &mut slots.last_mut().expect("just pushed").1
            }
        };
        // The last output that needs this decode takes it; earlier ones work on a copy.
        let last_user = outputs.iter().rposition(|o| key(o) == k) == Some(i);
        let Decoded { mut img, icc, full, skip } =
            if last_user { slot.take().expect("decoded above") } else { slot.clone().expect("decoded above") };
        let mut ops = spec.ops.iter().skip(skip);
        if (img.width(), img.height()) != full {
            // Shrunk on load: the first op is a resize; give it the exact size it would have
            // produced from the full image.
            if let Some(first) = ops.next() {
                check()?;
                img = exact_resize(first, full).apply_with(img, limits, &logos)?;
            }
        }
        for op in ops {
            check()?;
            img = op.apply_with(img, limits, &logos)?;
        }
        check()?;
        limits.check_output(img.width(), img.height())?;
        let icc = icc.filter(|p| crate::color_management::profile_fits(p, &img));
        let bytes = encode_with_icc(&img, spec.format, &spec.encode_options(), icc.as_deref())?;
        sink(Rendered {
            name: spec.name.clone(),
            format: spec.format,
            width: img.width(),
            height: img.height(),
            bytes,
        })?;
    }
    Ok(())
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

/// Smallest upright source size output `o` can be made from without losing quality, or
/// `None` if it needs the full image (its first op is not a downscaling resize).
pub(crate) fn needed_size(o: &OutputSpec, full: (u32, u32)) -> Option<(u32, u32)> {
    let Some(Op::Resize { width, height, fit, enlarge: false, .. }) = o.ops.first() else { return None };
    let (fw, fh) = (full.0 as f64, full.1 as f64);
    let need = match (*width, *height, *fit) {
        (Some(w), Some(h), Fit::Fill) => (w, h),
        (w, h, fit) => {
            let sx = w.map(|w| w as f64 / fw);
            let sy = h.map(|h| h as f64 / fh);
            let s = match (sx, sy, fit) {
                (Some(x), Some(y), Fit::Inside) => x.min(y),
                (Some(x), Some(y), _) => x.max(y),
                (Some(x), None, _) | (None, Some(x), _) => x,
                (None, None, _) => return None,
            };
            if s >= 1.0 {
                return None;
            }
            ((fw * s).ceil() as u32, (fh * s).ceil() as u32)
        }
    };
    (need.0 < full.0 || need.1 < full.1).then_some(need)
}

/// The first op of a shrunk-on-load output, with the target size computed from the full image.
fn exact_resize(op: &Op, full: (u32, u32)) -> Op {
    match op {
        Op::Resize { width, height, fit, gravity, enlarge, filter }
            if *fit != Fit::Cover || width.is_none() || height.is_none() =>
        {
            let (w, h) = resize_dimensions(full, *width, *height, *fit, *enlarge);
            Op::Resize {
                width: Some(w),
                height: Some(h),
                fit: Fit::Fill,
                gravity: *gravity,
                enlarge: true,
                filter: *filter,
            }
        }
        other => other.clone(),
    }
}
