//! JPEG in, JPEG out, with no edit but a resize: the work happens on the Y, Cb and Cr planes as
//! the JPEG stores them. Decoding skips chroma upsampling and the YCbCr → RGB conversion,
//! encoding skips RGB → YCbCr and chroma downsampling, and a resize filters 1.5 samples per pixel
//! instead of 3 (luma at full size, chroma at quarter size). A resize is linear, so resizing
//! Y, Cb, Cr gives what resizing R, G, B would, short of rounding; chroma goes straight from the
//! source's subsampling to 4:2:0 instead of through a full-size round trip.
//!
//! An output at the original's size (no op, or a resize that changes nothing) does not even need
//! the planes: it is re-encoded from the DCT coefficients (csrc/jpeg_transcode.c).
//!
//! [`crate::pipeline`] takes this path when every output of a job qualifies (see [`eligible`]) and
//! the input is a YCbCr or grey JPEG with 4:4:4, 4:2:2 or 4:2:0 chroma that needs no EXIF
//! rotation and no colour-profile conversion; anything else goes through the RGB pipeline.

use crate::encode::{Chroma, Format};
use crate::ops::{Gravity, Op};
use crate::pipeline::OutputSpec;

/// One 8-bit plane, rows packed.
#[derive(Clone, Debug)]
pub struct Plane {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

/// A YCbCr image as planes (Y, Cb, Cr; or Y alone for grey), `width` × `height` luma samples.
#[derive(Clone, Debug)]
pub struct Planes {
    pub width: u32,
    pub height: u32,
    pub planes: Vec<Plane>,
}

/// Can this output be made from planes: JPEG with 4:2:0 chroma, and no op but one resize
/// (not `attention`, which needs RGB pixels to find its region)?
pub fn eligible(o: &OutputSpec) -> bool {
    o.format == Format::Jpeg
        && matches!(o.chroma_subsampling, None | Some(Chroma::S420))
        && match o.ops.as_slice() {
            [] => true,
            [Op::Resize { gravity, .. }] => *gravity != Gravity::Attention,
            _ => false,
        }
}

#[cfg(libjpeg)]
pub(crate) use imp::try_process;

#[cfg(libjpeg)]
mod imp {
    use std::borrow::Cow;

    use fast_image_resize::{self as fr, ResizeAlg, ResizeOptions, Resizer};

    use super::{eligible, Plane, Planes};
    use crate::encode::{jpeg_with_icc, Format, OutputEncoding, DEFAULT_QUALITY};
    use crate::ops::geometry::{algorithm, resize_plan};
    use crate::ops::Op;
    use crate::pipeline::{needed_size, Icc, OutputSpec, Rendered};
    use crate::{EngineError, Limits};

    /// Render every output from one planar decode, handing each to `sink` as it is encoded, and
    /// answer true; or false, having rendered nothing, when the job or the input does not
    /// qualify (the caller then runs the RGB pipeline).
    pub(crate) fn try_process(
        input: &[u8],
        outputs: &[OutputSpec],
        limits: &Limits,
        check: &dyn Fn() -> Result<(), EngineError>,
        sink: &mut dyn FnMut(Rendered) -> Result<(), EngineError>,
    ) -> Result<bool, EngineError> {
        let Some(first) = outputs.first() else { return Ok(false) };
        if !outputs.iter().all(|o| eligible(o) && (o.auto_orient, o.icc) == (first.auto_orient, first.icc)) {
            return Ok(false);
        }
        let Some((head, icc)) =
            crate::decode::jpeg_for_planes(input, limits, first.auto_orient, first.icc == Icc::Keep)?
        else {
            return Ok(false);
        };
        let factors = if head.gray {
            (1, 1)
        } else {
            match crate::turbo::chroma_factors(head.subsamp) {
                Some(f) => f,
                None => return Ok(false),
            }
        };
        let full = (head.width, head.height);
        let need = outputs
            .iter()
            .map(|o| needed_size(o, full))
            .try_fold((0, 0), |acc, n| n.map(|n| (acc.0.max(n.0), acc.1.max(n.1))));
        let shrink = need.map_or(1, |n| crate::turbo::shrink_for(head.width, head.height, n));
        check()?;
        if shrink == 1 && outputs.iter().all(|o| untouched(o, full)) {
            // (all or nothing: the layout decides whether any output can be transcoded)
            if let Some(rendered) = transcode(input, outputs, limits, full, icc.as_deref(), head.gray, check)? {
                for r in rendered {
                    sink(r)?;
                }
                return Ok(true);
            }
        }
        let src = crate::turbo::decode_planes(input, &head, shrink)?;
        for o in outputs {
            check()?;
            let (w, h) = output_size(o, full, src.width, src.height);
            limits.check_output(w, h)?;
            let planes = render(&src, factors, full, o)?;
            check()?;
            let q = o.quality.unwrap_or(DEFAULT_QUALITY).clamp(1, 100);
            let view = Planes { width: w, height: h, planes: planes.into_iter().map(Cow::into_owned).collect() };
            let bytes =
                with_profile(crate::turbo::encode_planes(&view, &o.encode_options(), q)?, icc.as_deref(), head.gray)?;
            sink(Rendered { name: o.name.clone(), format: Format::Jpeg, width: w, height: h, bytes })?;
        }
        Ok(true)
    }

    /// Does this output keep every pixel where it is (no op, or a resize that changes nothing)?
    fn untouched(o: &OutputSpec, full: (u32, u32)) -> bool {
        match o.ops.first() {
            Some(Op::Resize { width, height, fit, gravity, enlarge, .. }) => {
                let (size, r) = resize_plan(full, *width, *height, *fit, *gravity, *enlarge, |_, _| (0, 0));
                size == full && r == (0.0, 0.0, full.0 as f64, full.1 as f64)
            }
            _ => true,
        }
    }

    /// Outputs at the original's size straight from its DCT coefficients, no pixels decoded
    /// ([`crate::turbo::transcode`]); `Ok(None)` when the layout needs the planes.
    fn transcode(
        input: &[u8],
        outputs: &[OutputSpec],
        limits: &Limits,
        (w, h): (u32, u32),
        icc: Option<&[u8]>,
        gray: bool,
        check: &dyn Fn() -> Result<(), EngineError>,
    ) -> Result<Option<Vec<Rendered>>, EngineError> {
        // Full size: held to the output limits like every other output (the `pipeline` fuzz
        // target found a 1920-pixel output under a 1024-pixel limit before this check).
        limits.check_output(w, h)?;
        let mut rendered = Vec::with_capacity(outputs.len());
        for o in outputs {
            check()?;
            let q = o.quality.unwrap_or(DEFAULT_QUALITY).clamp(1, 100);
            let Some(mut bytes) = crate::turbo::transcode(input, &o.encode_options(), q)? else { return Ok(None) };
            bytes = with_profile(bytes, icc, gray)?;
            rendered.push(Rendered { name: o.name.clone(), format: Format::Jpeg, width: w, height: h, bytes });
        }
        Ok(Some(rendered))
    }

    /// The kept ICC profile (`"icc": "keep"`), when it fits the output's colour space.
    fn with_profile(bytes: Vec<u8>, icc: Option<&[u8]>, gray: bool) -> Result<Vec<u8>, EngineError> {
        let space: &[u8] = if gray { b"GRAY" } else { b"RGB " };
        match icc.filter(|p| p.get(16..20) == Some(space)) {
            Some(profile) => jpeg_with_icc(bytes, profile)
                .map_err(|detail| EngineError::Encode { format: Format::Jpeg.name(), detail }),
            None => Ok(bytes),
        }
    }

    fn output_size(o: &OutputSpec, full: (u32, u32), dw: u32, dh: u32) -> (u32, u32) {
        match o.ops.first() {
            Some(Op::Resize { width, height, fit, gravity, enlarge, .. }) => {
                resize_plan(full, *width, *height, *fit, *gravity, *enlarge, |_, _| (0, 0)).0
            }
            _ => (dw, dh),
        }
    }

    /// The output's planes (4:2:0, or grey) from the decoded ones (`factors`: the source chroma
    /// subsampling; `full`: the original size, `src` may be shrunk on load).
    fn render<'a>(
        src: &'a Planes,
        (hs, vs): (u32, u32),
        full: (u32, u32),
        o: &OutputSpec,
    ) -> Result<Vec<Cow<'a, Plane>>, EngineError> {
        let (dw, dh) = (src.width, src.height);
        let (w, h) = output_size(o, full, dw, dh);
        let (region, alg) = match o.ops.first() {
            Some(Op::Resize { width, height, fit, gravity, enlarge, filter }) => {
                let (_, r) = resize_plan(full, *width, *height, *fit, *gravity, *enlarge, |_, _| (0, 0));
                // The region in the decoded (possibly shrunk) image's coordinates.
                let (sx, sy) = (dw as f64 / full.0 as f64, dh as f64 / full.1 as f64);
                ((r.0 * sx, r.1 * sy, r.2 * sx, r.3 * sy), algorithm(*filter))
            }
            _ => ((0.0, 0.0, dw as f64, dh as f64), ResizeAlg::Convolution(fr::FilterType::Box)),
        };
        let whole = (w, h) == (dw, dh) && region == (0.0, 0.0, dw as f64, dh as f64);
        let mut out = Vec::with_capacity(src.planes.len());
        out.push(if whole {
            Cow::Borrowed(&src.planes[0])
        } else {
            Cow::Owned(resize(&src.planes[0], region, w, h, alg)?)
        });
        if src.planes.len() == 3 {
            let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
            for plane in &src.planes[1..] {
                if whole && (hs, vs) == (2, 1) {
                    out.push(Cow::Owned(halve_rows_blurred(plane)));
                    continue;
                }
                if whole && (hs, vs) == (2, 2) {
                    out.push(Cow::Owned(round_trip_blur(plane, true, true)));
                } else {
                    // A resize low-passes chroma itself (no round-trip blur), with a triangle
                    // filter (see [`chroma_filter`]); for 4:4:4 → 4:2:0 at the same size the box
                    // filter is the encoder's 2 × 2 mean.
                    // Output chroma sample j covers output luma [2j, 2j + 2): the source region
                    // those cover, in source chroma samples (clamped to the plane at odd sizes).
                    let alg = if whole { ResizeAlg::Convolution(fr::FilterType::Box) } else { chroma_filter(alg) };
                    let left = region.0 / hs as f64;
                    let top = region.1 / vs as f64;
                    let width = (region.2 * (2 * cw) as f64 / w as f64 / hs as f64).min(plane.width as f64 - left);
                    let height = (region.3 * (2 * ch) as f64 / h as f64 / vs as f64).min(plane.height as f64 - top);
                    out.push(Cow::Owned(resize(plane, (left, top, width, height), cw, ch, alg)?));
                }
            }
        }
        Ok(out)
    }

    /// The filter that resizes chroma planes when luma gets `alg`. The RGB pipeline (and
    /// libvips, and Pillow) filter chroma twice more than luma: a triangle upsampling before the
    /// resize and a 2 × 2 mean after it. Lanczos straight onto the output's chroma grid keeps
    /// chroma detail theirs loses: files 0.2-0.3% bigger than sharp's (bench T1/T2) for nothing
    /// a viewer sees. A triangle filter comes closest to their chroma (PSNR against sharp's up
    /// 0.3-0.5 dB on Cb and Cr) and to their bytes. A user's nearest or bilinear choice stays.
    fn chroma_filter(alg: ResizeAlg) -> ResizeAlg {
        match alg {
            ResizeAlg::Convolution(
                fr::FilterType::Lanczos3 | fr::FilterType::CatmullRom | fr::FilterType::Mitchell,
            ) => ResizeAlg::Convolution(fr::FilterType::Bilinear),
            other => other,
        }
    }

    /// The chroma blur of the RGB pipeline, applied in place of it: decoding upsamples
    /// subsampled chroma with a triangle filter (libjpeg's "fancy" upsampling) and encoding
    /// averages 2 × 2 blocks, which comes to a [1 6 1]/8 filter along each subsampled axis.
    /// Without it chroma keeps detail that the RGB path (and libvips, and Pillow) would not,
    /// which costs bytes for nothing a viewer sees.
    /// 4:2:2 chroma to 4:2:0 at the same size, as the RGB pipeline would make it: [1 6 1]/8
    /// across (see [`round_trip_blur`]), then the mean of each pair of rows; in one pass.
    fn halve_rows_blurred(p: &Plane) -> Plane {
        let (w, h) = (p.width as usize, p.height as usize);
        let oh = h.div_ceil(2);
        let mut data = vec![0u8; w * oh];
        let row = |y: usize| &p.data[y * w..(y + 1) * w];
        for (y, out) in data.chunks_exact_mut(w).enumerate() {
            let (a, b) = (row(2 * y), row((2 * y + 1).min(h - 1)));
            if w < 3 {
                for (o, (a, b)) in out.iter_mut().zip(a.iter().zip(b)) {
                    *o = ((*a as u16 + *b as u16 + 1) >> 1) as u8;
                }
                continue;
            }
            // Column sums of the two rows, then [1 6 1] across: (sum + 8) / 16.
            let s = |x: usize| a[x] as u16 + b[x] as u16;
            out[0] = ((7 * s(0) + s(1) + 8) >> 4) as u8;
            for x in 1..w - 1 {
                out[x] = ((s(x - 1) + 6 * s(x) + s(x + 1) + 8) >> 4) as u8;
            }
            out[w - 1] = ((s(w - 2) + 7 * s(w - 1) + 8) >> 4) as u8;
        }
        Plane { width: p.width, height: oh as u32, data }
    }

    fn round_trip_blur(p: &Plane, horizontal: bool, vertical: bool) -> Plane {
        let (w, h) = (p.width as usize, p.height as usize);
        let mut cur: Cow<'_, [u8]> = Cow::Borrowed(&p.data);
        if horizontal && w > 2 {
            let mut out = vec![0u8; w * h];
            for (src, row) in cur.chunks_exact(w).zip(out.chunks_exact_mut(w)) {
                row[0] = ((7 * src[0] as u16 + src[1] as u16 + 4) >> 3) as u8;
                for (o, ((l, m), r)) in row[1..w - 1].iter_mut().zip(src.iter().zip(&src[1..]).zip(&src[2..])) {
                    *o = ((*l as u16 + 6 * *m as u16 + *r as u16 + 4) >> 3) as u8;
                }
                row[w - 1] = ((src[w - 2] as u16 + 7 * src[w - 1] as u16 + 4) >> 3) as u8;
            }
            cur = Cow::Owned(out);
        }
        if vertical && h > 1 {
            let mut out = vec![0u8; w * h];
            for (y, row) in out.chunks_exact_mut(w).enumerate() {
                let line = |y: usize| &cur[y * w..(y + 1) * w];
                let (a, b, c) = (line(y.saturating_sub(1)), line(y), line((y + 1).min(h - 1)));
                for (o, ((a, b), c)) in row.iter_mut().zip(a.iter().zip(b).zip(c)) {
                    *o = ((*a as u16 + 6 * *b as u16 + *c as u16 + 4) >> 3) as u8;
                }
            }
            cur = Cow::Owned(out);
        }
        Plane { width: p.width, height: p.height, data: cur.into_owned() }
    }

    fn resize(p: &Plane, region: (f64, f64, f64, f64), w: u32, h: u32, alg: ResizeAlg) -> Result<Plane, EngineError> {
        let fail = |e: String| EngineError::Corrupt(format!("resize failed: {e}"));
        let src = fr::images::ImageRef::new(p.width, p.height, &p.data, fr::PixelType::U8)
            .map_err(|e| fail(e.to_string()))?;
        let mut dst = fr::images::Image::new(w, h, fr::PixelType::U8);
        let options = ResizeOptions::new().resize_alg(alg).crop(region.0, region.1, region.2, region.3);
        Resizer::new().resize(&src, &mut dst, &options).map_err(|e| fail(e.to_string()))?;
        Ok(Plane { width: w, height: h, data: dst.into_vec() })
    }
}
