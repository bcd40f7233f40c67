//! The size each op turns an image into, from sizes alone (no pixels): what lets the web app
//! refuse an upload whose recipe would make too big an image, and the engine check every step
//! of a job before it allocates anything. The engine's geometry uses the same functions to cut
//! and resample, so a plan and the pixels cannot disagree.

use super::values::{parse_aspect, Fit};
use super::Op;
use crate::refusal::Refusal;

impl Op {
    /// The size this op turns a `w`×`h` image into, worked out from sizes alone (no pixels),
    /// so a job's every step can be checked against the limits before anything is allocated.
    pub fn output_size(&self, src: (u32, u32)) -> Result<(u32, u32), Refusal> {
        Ok(match self {
            Op::Resize { width, height, fit, enlarge, .. } => resize_dimensions(src, *width, *height, *fit, *enlarge),
            Op::Crop { x, y, width, height, aspect, .. } => crop_size(src, *x, *y, *width, *height, aspect.as_deref())?,
            Op::Rotate { degrees, .. } => rotated_size(src, *degrees),
            _ => src,
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
    let (w, h) = match (width.map(f64::from), height.map(f64::from), fit) {
        (Some(bw), Some(bh), Fit::Fill | Fit::Cover) => (bw, bh),
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

/// The box a crop cuts from a `src`-sized image: `(x, y, width, height)`, with `x`, `y` placed
/// by `place(width, height)` for an aspect crop.
pub fn crop_box(
    (sw, sh): (u32, u32),
    x: Option<u32>,
    y: Option<u32>,
    width: Option<u32>,
    height: Option<u32>,
    aspect: Option<&str>,
    place: impl FnOnce(u32, u32) -> (u32, u32),
) -> Result<(u32, u32, u32, u32), Refusal> {
    Ok(match aspect {
        Some(a) => {
            let ratio = parse_aspect(a).map_err(Refusal::InvalidOp)?;
            let (w, h) = if sw as f64 / sh as f64 > ratio {
                (((sh as f64) * ratio).round() as u32, sh)
            } else {
                (sw, ((sw as f64) / ratio).round() as u32)
            };
            let (w, h) = (w.clamp(1, sw), h.clamp(1, sh));
            let (x, y) = place(w, h);
            (x, y, w, h)
        }
        None => {
            let (x, y) = (x.unwrap_or(0), y.unwrap_or(0));
            let (w, h) = (width.unwrap_or(sw), height.unwrap_or(sh));
            if x >= sw || y >= sh {
                return Err(Refusal::InvalidOp(format!("the crop box starts at {x},{y}, outside the {sw}×{sh} image")));
            }
            (x, y, w.min(sw - x), h.min(sh - y))
        }
    })
}

/// Size of what a crop cuts from a `src`-sized image.
pub fn crop_size(
    src: (u32, u32),
    x: Option<u32>,
    y: Option<u32>,
    width: Option<u32>,
    height: Option<u32>,
    aspect: Option<&str>,
) -> Result<(u32, u32), Refusal> {
    crop_box(src, x, y, width, height, aspect, |_, _| (0, 0)).map(|(_, _, w, h)| (w, h))
}

/// Size of the canvas a rotation makes from a `src`-sized image: swapped for quarter turns,
/// the rotated photo's bounding box for other angles.
pub fn rotated_size((sw, sh): (u32, u32), degrees: f32) -> (u32, u32) {
    let d = degrees.rem_euclid(360.0);
    let right = (d / 90.0).round();
    if (d - right * 90.0).abs() < 1e-3 {
        return if right as i32 % 2 == 1 { (sh, sw) } else { (sw, sh) };
    }
    let (sin, cos) = (d as f64).to_radians().sin_cos();
    let (sw, sh) = (sw as f64, sh as f64);
    ((sw * cos.abs() + sh * sin.abs()).ceil() as u32, (sw * sin.abs() + sh * cos.abs()).ceil() as u32)
}
