//! Shrink-on-load: how small a decode may be and still give every output sharing it the same
//! pixels as a full-size decode would. A JPEG decodes at 1/2, 1/4 or 1/8 scale in the DCT when
//! every output starts with a downscaling resize; both the RGB pipeline and the planar JPEG path
//! ask here how much they need, and the first resize is then given the exact size it would have
//! made from the full image ([`exact_resize`]).

use crate::ops::geometry::resize_dimensions;
use crate::{Fit, Op, OutputSpec};

/// Smallest upright source size output `o` can be made from without losing quality, or
/// `None` if it needs the full image (its first op is not a downscaling resize).
pub fn needed_size(o: &OutputSpec, full: (u32, u32)) -> Option<(u32, u32)> {
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

/// The smallest size every one of `outputs` can be made from ([`needed_size`] of each, the
/// largest side of them), or `None` when one of them needs the full image.
pub fn needed_by_all<'a>(outputs: impl IntoIterator<Item = &'a OutputSpec>, full: (u32, u32)) -> Option<(u32, u32)> {
    outputs
        .into_iter()
        .map(|o| needed_size(o, full))
        .try_fold((0, 0), |acc, n| n.map(|n| (acc.0.max(n.0), acc.1.max(n.1))))
}

/// The first op of a shrunk-on-load output, with the target size computed from the full image.
pub fn exact_resize(op: &Op, full: (u32, u32)) -> Op {
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
