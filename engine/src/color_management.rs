//! Colour management: every output is sRGB. CMYK JPEGs (print workflows, corpus D03) are
//! converted through their embedded ICC profile with Little CMS; RGB photos with another
//! embedded profile (Adobe RGB, Display P3, …) are converted to sRGB the same way.

use image::{DynamicImage, RgbImage};
use lcms2::{Intent, PixelFormat, Profile, Transform};
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use crate::EngineError;

/// Is this JPEG CMYK or YCCK (four components)?
pub fn jpeg_is_cmyk(bytes: &[u8]) -> bool {
    let mut d = JpegDecoder::new(std::io::Cursor::new(bytes));
    d.decode_headers().is_ok() && matches!(d.input_colorspace(), Some(ColorSpace::CMYK | ColorSpace::YCCK))
}

/// Decode a CMYK/YCCK JPEG to sRGB through its embedded profile (a naive conversion if it
/// has none, which is what every viewer does then).
pub fn decode_cmyk_jpeg(bytes: &[u8], max_alloc: u64) -> Result<DynamicImage, EngineError> {
    let mut probe = JpegDecoder::new(std::io::Cursor::new(bytes));
    probe.decode_headers().map_err(|e| EngineError::Corrupt(format!("{e:?}")))?;
    let ycck = probe.input_colorspace() == Some(ColorSpace::YCCK);
    // zune-jpeg hands YCCK over as stored; the YCC → CMY step is done below (as libjpeg does).
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(if ycck { ColorSpace::YCCK } else { ColorSpace::CMYK })
        .set_max_width(65_535)
        .set_max_height(65_535);
    let mut d = JpegDecoder::new_with_options(std::io::Cursor::new(bytes), options);
    d.decode_headers().map_err(|e| EngineError::Corrupt(format!("{e:?}")))?;
    let (w, h) = d.dimensions().ok_or_else(|| EngineError::Corrupt("no dimensions".into()))?;
    if (w as u64) * (h as u64) * 7 > max_alloc {
        return Err(EngineError::Corrupt("it needs more memory than allowed".into()));
    }
    let icc = d.icc_profile();
    let mut cmyk = d.decode().map_err(|e| EngineError::Corrupt(format!("{e:?}")))?;
    if ycck {
        for px in cmyk.chunks_exact_mut(4) {
            let (y, cb, cr) = (px[0] as f32, px[1] as f32 - 128.0, px[2] as f32 - 128.0);
            let r = y + 1.402 * cr;
            let g = y - 0.344_136 * cb - 0.714_136 * cr;
            let b = y + 1.772 * cb;
            px[0] = (255.0 - r).round().clamp(0.0, 255.0) as u8;
            px[1] = (255.0 - g).round().clamp(0.0, 255.0) as u8;
            px[2] = (255.0 - b).round().clamp(0.0, 255.0) as u8;
        }
    }
    let mut rgb = vec![0u8; w * h * 3];
    let profile = icc.as_deref().and_then(|p| Profile::new_icc(p).ok());
    match profile {
        Some(src) => {
            // Adobe CMYK JPEGs store inverted ink values; zune-jpeg hands them over as stored.
            let t = Transform::<[u8; 4], [u8; 3]>::new(
                &src,
                PixelFormat::CMYK_8_REV,
                &Profile::new_srgb(),
                PixelFormat::RGB_8,
                Intent::Perceptual,
            )
            .map_err(|e| EngineError::Corrupt(format!("its colour profile is unusable: {e}")))?;
            let (src_px, _) = cmyk.as_chunks::<4>();
            let (dst_px, _) = rgb.as_chunks_mut::<3>();
            t.transform_pixels(src_px, dst_px);
        }
        None => {
            for (o, c) in rgb.chunks_exact_mut(3).zip(cmyk.chunks_exact(4)) {
                let k = c[3] as u32;
                for i in 0..3 {
                    o[i] = (c[i] as u32 * k / 255) as u8;
                }
            }
        }
    }
    Ok(DynamicImage::ImageRgb8(RgbImage::from_raw(w as u32, h as u32, rgb).expect("sized above")))
}

/// Convert an 8-bit RGB(A) image from `icc` to sRGB; leaves it alone when the profile is
/// sRGB already, unreadable, or the image is not 8-bit RGB.
pub fn to_srgb(img: DynamicImage, icc: &[u8]) -> DynamicImage {
    let Ok(src) = Profile::new_icc(icc) else { return img };
    if is_srgb(&src) {
        return img;
    }
    match img {
        DynamicImage::ImageRgb8(mut buf) => {
            if let Ok(t) = Transform::<[u8; 3], [u8; 3]>::new(
                &src,
                PixelFormat::RGB_8,
                &Profile::new_srgb(),
                PixelFormat::RGB_8,
                Intent::Perceptual,
            ) {
                let (px, _) = buf.as_mut().as_chunks_mut::<3>();
                t.transform_in_place(px);
            }
            DynamicImage::ImageRgb8(buf)
        }
        DynamicImage::ImageRgba8(mut buf) => {
            if let Ok(t) = Transform::<[u8; 4], [u8; 4]>::new(
                &src,
                PixelFormat::RGBA_8,
                &Profile::new_srgb(),
                PixelFormat::RGBA_8,
                Intent::Perceptual,
            ) {
                let (px, _) = buf.as_mut().as_chunks_mut::<4>();
                t.transform_in_place(px);
            }
            DynamicImage::ImageRgba8(buf)
        }
        other => other,
    }
}

/// Can `icc` describe `img`'s pixels? An RGB profile fits colour pixels, a grey one grey
/// pixels; anything else (CMYK, Lab, a damaged header) does not.
pub fn profile_fits(icc: &[u8], img: &DynamicImage) -> bool {
    let space = icc.get(16..20);
    if img.color().has_color() {
        space == Some(b"RGB ")
    } else {
        space == Some(b"GRAY")
    }
}

fn is_srgb(p: &Profile) -> bool {
    p.info(lcms2::InfoType::Description, lcms2::Locale::none())
        .map(|d| d.to_ascii_lowercase().contains("srgb"))
        .unwrap_or(false)
}
