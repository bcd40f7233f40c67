//! Decoding with limits, then EXIF auto-orientation.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader};

use crate::probe::sniff;
use crate::{EngineError, Limits};

/// Decode `bytes` into pixels. Dimensions are checked from the header before any pixel
/// buffer exists; with `auto_orient` the EXIF orientation is applied so the result is upright.
pub fn decode(bytes: &[u8], limits: &Limits, auto_orient: bool) -> Result<DynamicImage, EngineError> {
    decode_at_least(bytes, limits, auto_orient, None)
}

fn swaps_axes(o: Option<Orientation>) -> bool {
    matches!(
        o,
        Some(Orientation::Rotate90 | Orientation::Rotate270 | Orientation::Rotate90FlipH | Orientation::Rotate270FlipH)
    )
}

/// Width and height as [`decode`] would return them, read from the header only.
pub fn oriented_dimensions(bytes: &[u8], auto_orient: bool) -> Result<(u32, u32), EngineError> {
    if crate::heif::sniff(bytes) {
        return crate::heif::dimensions(bytes);
    }
    let format = sniff(bytes)?;
    let mut decoder = ImageReader::with_format(Cursor::new(bytes), format).into_decoder().map_err(corrupt)?;
    let (w, h) = decoder.dimensions();
    let o = if auto_orient { decoder.orientation().ok() } else { None };
    Ok(if swaps_axes(o) { (h, w) } else { (w, h) })
}

/// [`decode`], allowed to return a smaller image as long as it is at least `need` (upright
/// width, height): JPEGs then decode at 1/2, 1/4 or 1/8 scale in the DCT (shrink-on-load).
pub fn decode_at_least(
    bytes: &[u8],
    limits: &Limits,
    auto_orient: bool,
    need: Option<(u32, u32)>,
) -> Result<DynamicImage, EngineError> {
    decode_keeping_profile(bytes, limits, auto_orient, need, false).map(|(img, _)| img)
}

/// [`decode_at_least`]; with `keep_icc` the pixels stay in the colour space of the original's
/// embedded ICC profile, which is returned with them (`None` when there is none). CMYK
/// originals are converted to sRGB anyway (a CMYK profile cannot describe RGB pixels) and
/// come with no profile.
pub fn decode_keeping_profile(
    bytes: &[u8],
    limits: &Limits,
    auto_orient: bool,
    need: Option<(u32, u32)>,
    keep_icc: bool,
) -> Result<(DynamicImage, Option<Vec<u8>>), EngineError> {
    limits.check_bytes(bytes.len())?;
    if crate::heif::sniff(bytes) {
        // Container rotation/mirroring is applied by libheif; EXIF orientation does not apply.
        // The brand, libheif's size limit, the header's sizes and the decoded size are checked
        // against `limits` in there.
        let img = crate::heif::decode_within(bytes, limits)?;
        let icc = crate::heif::icc_profile(bytes);
        return Ok(match icc {
            Some(profile) if !keep_icc => (crate::color_management::to_srgb(img, &profile), None),
            icc => (img, icc),
        });
    }
    let format = sniff(bytes)?;
    if format == image::ImageFormat::Jpeg {
        check_jpeg_complete(bytes)?;
    }
    let cmyk = format == image::ImageFormat::Jpeg && crate::color_management::jpeg_is_cmyk(bytes);
    let mut decoder = limited_decoder(bytes, format, limits)?;
    let orientation = if auto_orient { decoder.orientation().ok() } else { None };
    let icc = decoder.icc_profile().ok().flatten();
    let turbo = if cmyk || format != image::ImageFormat::Jpeg {
        None
    } else {
        turbo_decode(bytes, limits, need, swaps_axes(orientation))?
    };
    let to_srgb = |img: DynamicImage| match &icc {
        Some(profile) if !keep_icc => crate::color_management::to_srgb(img, profile),
        _ => img,
    };
    let mut img = if cmyk {
        drop(decoder);
        crate::color_management::decode_cmyk_jpeg(bytes, limits.max_alloc())?
    } else if let Some(img) = turbo {
        to_srgb(img)
    } else {
        to_srgb(DynamicImage::from_decoder(decoder).map_err(corrupt)?)
    };
    if let Some(orientation) = orientation {
        img.apply_orientation(orientation);
    }
    let kept = if keep_icc && !cmyk { icc } else { None };
    Ok((img, kept))
}

/// Pixels and the colour profile they are in (when kept).
pub type WithProfile = (DynamicImage, Option<Vec<u8>>);

/// TurboJPEG's header of a JPEG and its embedded colour profile.
#[cfg(libjpeg)]
type HeaderWithProfile = (crate::jpeg::turbo::Header, Option<Vec<u8>>);

/// [`decode_keeping_profile`] for a job whose first edit crops the box `(x, y, w, h)` (upright
/// coordinates, inside the image): a JPEG that needs no EXIF rotation decodes only that box
/// (csrc/jpeg_region.c). `Ok(None)` when this does not apply (another format, CMYK, an EXIF
/// rotation, a build without libjpeg): the caller decodes everything and crops.
pub fn decode_region_keeping_profile(
    bytes: &[u8],
    limits: &Limits,
    auto_orient: bool,
    region: (u32, u32, u32, u32),
    keep_icc: bool,
) -> Result<Option<WithProfile>, EngineError> {
    #[cfg(libjpeg)]
    {
        let Some((head, icc)) = upright_ycc_jpeg(bytes, limits, auto_orient)? else { return Ok(None) };
        let Some(img) = crate::jpeg::turbo::decode_region(bytes, &head, region)? else { return Ok(None) };
        Ok(Some(match icc {
            Some(profile) if !keep_icc => (crate::color_management::to_srgb(img, &profile), None),
            icc => (img, icc),
        }))
    }
    #[cfg(not(libjpeg))]
    {
        let _ = (bytes, limits, auto_orient, region, keep_icc);
        Ok(None)
    }
}

/// The checks [`decode_keeping_profile`] makes, for a JPEG that [`crate::jpeg::planar`] could work on
/// as YCbCr planes: its header, and the profile to embed in the outputs when `keep_icc` (the
/// pixels stay as they are). `Ok(None)` when it cannot: not a baseline/progressive YCbCr or
/// grey JPEG, an EXIF orientation to apply, or a colour profile to convert to sRGB. (Every
/// output's size is held to the limits by [`crate::pipeline::plan`] before this runs, and
/// again where the planar path makes it.)
#[cfg(libjpeg)]
pub(crate) fn jpeg_for_planes(
    bytes: &[u8],
    limits: &Limits,
    auto_orient: bool,
    keep_icc: bool,
) -> Result<Option<HeaderWithProfile>, EngineError> {
    Ok(upright_ycc_jpeg(bytes, limits, auto_orient)?.filter(|(_, icc)| icc.is_none() || keep_icc))
}

/// A complete YCbCr or grey JPEG (not CMYK) within `limits` that needs no EXIF rotation (when
/// `auto_orient`): TurboJPEG's header and the embedded colour profile. `Ok(None)` for anything
/// else, which [`decode_keeping_profile`] handles.
#[cfg(libjpeg)]
fn upright_ycc_jpeg(
    bytes: &[u8],
    limits: &Limits,
    auto_orient: bool,
) -> Result<Option<HeaderWithProfile>, EngineError> {
    limits.check_bytes(bytes.len())?;
    if crate::heif::sniff(bytes) || sniff(bytes)? != image::ImageFormat::Jpeg {
        return Ok(None);
    }
    check_jpeg_complete(bytes)?;
    if crate::color_management::jpeg_is_cmyk(bytes) {
        return Ok(None);
    }
    let mut decoder = limited_decoder(bytes, image::ImageFormat::Jpeg, limits)?;
    if auto_orient && !matches!(decoder.orientation(), Ok(Orientation::NoTransforms)) {
        return Ok(None);
    }
    let icc = decoder.icc_profile().ok().flatten();
    let Some(head) = crate::jpeg::turbo::header_within(bytes, limits)? else { return Ok(None) };
    if head.cmyk || (head.width, head.height) != decoder.dimensions() {
        return Ok(None);
    }
    Ok(Some((head, icc)))
}

/// A decoder whose allocations stay within `limits`, refused before any pixel is decoded when
/// the header's dimensions are over them.
fn limited_decoder<'a>(
    bytes: &'a [u8],
    format: image::ImageFormat,
    limits: &Limits,
) -> Result<impl ImageDecoder + 'a, EngineError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut image_limits = image::Limits::default();
    image_limits.max_alloc = Some(limits.max_alloc());
    reader.limits(image_limits);
    let decoder = reader.into_decoder().map_err(corrupt)?;
    let (width, height) = decoder.dimensions();
    limits.check_dimensions(width, height)?;
    Ok(decoder)
}

fn corrupt(e: image::ImageError) -> EngineError {
    match e {
        image::ImageError::Limits(_) => EngineError::Corrupt(format!("it needs more memory than allowed: {e}")),
        image::ImageError::Unsupported(u) => EngineError::Corrupt(format!("unsupported variant: {u}")),
        other => EngineError::Corrupt(other.to_string()),
    }
}

/// JPEG decoders fill a truncated file with grey and call it a success; a user would rather
/// hear that the upload is incomplete. Walk the header segments to the first scan, then look
/// for the end-of-image marker after it (inside entropy-coded data 0xFF is always stuffed, so
/// FF D9 there can only be the real EOI; an EXIF thumbnail's EOI sits before the scan).
fn check_jpeg_complete(bytes: &[u8]) -> Result<(), EngineError> {
    let truncated = || {
        EngineError::Corrupt(
            "the file ends before the image data does, so it was probably cut off during upload or copy".into(),
        )
    };
    let mut i = 2; // after SOI
    loop {
        while i < bytes.len() && bytes[i] == 0xFF && bytes.get(i + 1) == Some(&0xFF) {
            i += 1; // fill bytes
        }
        if i + 4 > bytes.len() {
            return Err(truncated());
        }
        if bytes[i] != 0xFF {
            return Err(EngineError::Corrupt("the JPEG header is malformed".into()));
        }
        let marker = bytes[i + 1];
        let len = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
        if marker == 0xDA {
            let scan = i + 2 + len;
            let tail = bytes.get(scan..).ok_or_else(truncated)?;
            // From the end: a complete file usually ends with the marker, so this stops at once.
            return if tail.windows(2).rev().any(|w| w == [0xFF, 0xD9]) { Ok(()) } else { Err(truncated()) };
        }
        i += 2 + len;
    }
}

/// TurboJPEG's decode (scaled when `need` allows), its header checked against `limits` before the
/// buffer is allocated: the header libjpeg reads need not be the one the pure-Rust decoder read.
#[cfg(turbojpeg)]
fn turbo_decode(
    bytes: &[u8],
    limits: &Limits,
    need: Option<(u32, u32)>,
    swapped: bool,
) -> Result<Option<DynamicImage>, EngineError> {
    let Some(head) = crate::jpeg::turbo::header_within(bytes, limits)? else { return Ok(None) };
    if head.cmyk {
        return Ok(None);
    }
    let shrink = match need {
        Some((w, h)) => crate::jpeg::turbo::shrink_for(head.width, head.height, if swapped { (h, w) } else { (w, h) }),
        None => 1,
    };
    crate::jpeg::turbo::decode(bytes, &head, shrink).map(Some)
}

#[cfg(not(turbojpeg))]
fn turbo_decode(_: &[u8], _: &Limits, _: Option<(u32, u32)>, _: bool) -> Result<Option<DynamicImage>, EngineError> {
    Ok(None)
}
