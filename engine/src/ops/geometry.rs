//! Geometry: resize (SIMD convolution through fast_image_resize, crop folded into the
//! resample for `cover`), crop, rotate by any angle. The sizes these make are the protocol's
//! arithmetic (`darkroom_protocol::ops::size`), re-exported here, so a plan and the pixels agree.

use fast_image_resize::{self as fr, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, Rgba, RgbaImage};

use darkroom_protocol::ops::size::crop_box;
pub use darkroom_protocol::ops::size::{crop_size, resize_dimensions, rotated_size};

use super::attention;
use super::{Color, Filter, Fit, Gravity};
use crate::{EngineError, Limits};

pub(crate) fn algorithm(filter: Filter) -> ResizeAlg {
    match filter {
        Filter::Nearest => ResizeAlg::Nearest,
        Filter::Bilinear => ResizeAlg::Convolution(fr::FilterType::Bilinear),
        Filter::Mitchell => ResizeAlg::Convolution(fr::FilterType::Mitchell),
        Filter::Catmullrom => ResizeAlg::Convolution(fr::FilterType::CatmullRom),
        Filter::Lanczos3 => ResizeAlg::Convolution(fr::FilterType::Lanczos3),
    }
}

/// Resample the region (`left`, `top`, `cw`, `ch`) of `img` to `w`×`h`. Alpha is
/// premultiplied during the resample, so transparent pixels do not bleed their colour.
pub fn resample(
    img: &DynamicImage,
    crop: (f64, f64, f64, f64),
    w: u32,
    h: u32,
    filter: Filter,
) -> Result<DynamicImage, EngineError> {
    let img = match img {
        // fast_image_resize has no 32-bit float path worth having here: work in 16-bit.
        DynamicImage::ImageRgb32F(_) => DynamicImage::ImageRgb16(img.to_rgb16()),
        DynamicImage::ImageRgba32F(_) => DynamicImage::ImageRgba16(img.to_rgba16()),
        _ => img.clone(),
    };
    let mut dst = DynamicImage::new(w, h, img.color());
    let options = ResizeOptions::new().resize_alg(algorithm(filter)).crop(crop.0, crop.1, crop.2, crop.3);
    Resizer::new().resize(&img, &mut dst, &options).map_err(|e| EngineError::Corrupt(format!("resize failed: {e}")))?;
    Ok(dst)
}

#[allow(clippy::too_many_arguments)]
pub fn resize(
    img: DynamicImage,
    width: Option<u32>,
    height: Option<u32>,
    fit: Fit,
    gravity: Gravity,
    enlarge: bool,
    filter: Filter,
    limits: &Limits,
) -> Result<DynamicImage, EngineError> {
    let (sw, sh) = (img.width(), img.height());
    let ((w, h), region) =
        resize_plan((sw, sh), width, height, fit, gravity, enlarge, |cw, ch| attention::best_region(&img, cw, ch));
    limits.check_output(w, h)?;
    if (w, h) == (sw, sh) && region.2 as u32 == sw && region.3 as u32 == sh {
        return Ok(img);
    }
    resample(&img, region, w, h, filter)
}

/// Output size of a resize of a `src`-sized image and the source region (left, top, width,
/// height) it samples: the whole image, except for `cover`, which takes the largest region with
/// the target's shape placed by gravity (`attention` asks `attention(width, height)` where).
pub fn resize_plan(
    src: (u32, u32),
    width: Option<u32>,
    height: Option<u32>,
    fit: Fit,
    gravity: Gravity,
    enlarge: bool,
    attention: impl FnOnce(u32, u32) -> (u32, u32),
) -> ((u32, u32), (f64, f64, f64, f64)) {
    let (sw, sh) = src;
    let (w, h) = resize_dimensions(src, width, height, fit, enlarge);
    let mut region = (0.0, 0.0, sw as f64, sh as f64);
    if fit == Fit::Cover && width.is_some() && height.is_some() {
        let target = w as f64 / h as f64;
        let (cw, ch) = if sw as f64 / sh as f64 > target {
            (sh as f64 * target, sh as f64)
        } else {
            (sw as f64, sw as f64 / target)
        };
        let (cwi, chi) = (cw.round() as u32, ch.round() as u32);
        let (x, y) = match gravity {
            Gravity::Attention => attention(cwi, chi),
            g => g.place(sw, sh, cwi, chi),
        };
        region = (x as f64, y as f64, cw, ch);
    }
    ((w, h), region)
}

pub fn crop(
    img: DynamicImage,
    x: Option<u32>,
    y: Option<u32>,
    width: Option<u32>,
    height: Option<u32>,
    aspect: Option<&str>,
    gravity: Gravity,
) -> Result<DynamicImage, EngineError> {
    let (sw, sh) = (img.width(), img.height());
    let (x, y, w, h) = crop_box((sw, sh), x, y, width, height, aspect, |w, h| match gravity {
        Gravity::Attention => attention::best_region(&img, w, h),
        g => g.place(sw, sh, w, h),
    })?;
    Ok(img.crop_imm(x, y, w, h))
}

/// Rotate clockwise by `degrees`. Right angles are exact; other angles resample bilinearly
/// onto a canvas that holds the whole rotated photo.
pub fn rotate(
    img: DynamicImage,
    degrees: f32,
    background: Option<Color>,
    limits: &Limits,
) -> Result<DynamicImage, EngineError> {
    let d = degrees.rem_euclid(360.0);
    let right = (d / 90.0).round();
    if (d - right * 90.0).abs() < 1e-3 {
        return Ok(match right as i32 % 4 {
            1 => img.rotate90(),
            2 => img.rotate180(),
            3 => img.rotate270(),
            _ => img,
        });
    }
    let had_alpha = img.color().has_alpha();
    let bg = background.unwrap_or(if had_alpha { Color([0, 0, 0, 0]) } else { Color([0, 0, 0, 255]) });
    let (w, h) = rotated_size((img.width(), img.height()), degrees);
    limits.check_output(w, h)?;
    let src = img.to_rgba8();
    let (sw, sh) = (src.width() as f64, src.height() as f64);
    let (sin, cos) = (d as f64).to_radians().sin_cos();
    let mut out = RgbaImage::from_pixel(w, h, Rgba(bg.0));
    let (cx, cy) = (w as f64 / 2.0, h as f64 / 2.0);
    let (scx, scy) = (sw / 2.0, sh / 2.0);
    for (ox, oy, px) in out.enumerate_pixels_mut() {
        // Inverse rotation of the pixel centre back into the source.
        let (dx, dy) = (ox as f64 + 0.5 - cx, oy as f64 + 0.5 - cy);
        let sx = dx * cos + dy * sin + scx - 0.5;
        let sy = -dx * sin + dy * cos + scy - 0.5;
        if sx < -0.5 || sy < -0.5 || sx > sw - 0.5 || sy > sh - 0.5 {
            continue;
        }
        let (x0, y0) = (sx.floor(), sy.floor());
        let (fx, fy) = (sx - x0, sy - y0);
        let at = |x: f64, y: f64| -> [f64; 4] {
            let (x, y) = (x.clamp(0.0, sw - 1.0) as u32, y.clamp(0.0, sh - 1.0) as u32);
            let p = src.get_pixel(x, y).0;
            let a = p[3] as f64 / 255.0;
            [p[0] as f64 * a, p[1] as f64 * a, p[2] as f64 * a, p[3] as f64]
        };
        let (p00, p10, p01, p11) = (at(x0, y0), at(x0 + 1.0, y0), at(x0, y0 + 1.0), at(x0 + 1.0, y0 + 1.0));
        let mut c = [0f64; 4];
        for i in 0..4 {
            c[i] = (p00[i] * (1.0 - fx) + p10[i] * fx) * (1.0 - fy) + (p01[i] * (1.0 - fx) + p11[i] * fx) * fy;
        }
        let a = c[3] / 255.0;
        if a > 0.0 {
            let under = bg.0;
            let ba = under[3] as f64 / 255.0;
            let out_a = a + ba * (1.0 - a);
            for i in 0..3 {
                let v = (c[i] + under[i] as f64 * ba * (1.0 - a)) / out_a.max(1e-9);
                px.0[i] = v.round().clamp(0.0, 255.0) as u8;
            }
            px.0[3] = (out_a * 255.0).round() as u8;
        }
    }
    let out = DynamicImage::ImageRgba8(out);
    Ok(if !had_alpha && bg.0[3] == 255 { DynamicImage::ImageRgb8(out.to_rgb8()) } else { out })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_keeps_aspect_and_never_enlarges() {
        assert_eq!(resize_dimensions((1920, 1280), Some(400), Some(400), Fit::Inside, false), (400, 267));
        assert_eq!(resize_dimensions((640, 427), Some(1600), Some(1600), Fit::Inside, false), (640, 427));
        assert_eq!(resize_dimensions((640, 427), Some(1280), None, Fit::Inside, true), (1280, 854));
    }

    #[test]
    fn cover_and_fill_give_the_box() {
        assert_eq!(resize_dimensions((1920, 1280), Some(256), Some(256), Fit::Cover, false), (256, 256));
        assert_eq!(resize_dimensions((1920, 1280), Some(300), Some(100), Fit::Fill, false), (300, 100));
        assert_eq!(resize_dimensions((1920, 1280), Some(500), Some(500), Fit::Outside, false), (750, 500));
    }
}
