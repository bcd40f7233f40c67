//! Overlays: text and PNG logo watermarks, and flattening transparency onto a background.

use std::collections::HashMap;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use image::{DynamicImage, Rgba, RgbaImage};

pub use darkroom_protocol::limits::LOGO_LIMITS;

use super::{Color, Filter, Gravity};
use crate::EngineError;

/// Decoded watermark logos by key, each decoded once per job.
#[derive(Default)]
pub struct Logos(HashMap<String, RgbaImage>);

impl Logos {
    /// Decode the logo `key` from its PNG bytes, within [`LOGO_LIMITS`].
    pub fn insert(&mut self, key: &str, bytes: &[u8]) -> Result<(), EngineError> {
        let bad = |why: String| EngineError::InvalidOp(format!("the watermark logo {key} cannot be used: {why}"));
        let probe = crate::probe(bytes, &LOGO_LIMITS).map_err(|e| bad(e.to_string()))?;
        if probe.format != crate::InputFormat::Png {
            return Err(bad("watermark logos must be PNG files".into()));
        }
        let img = crate::decode::decode(bytes, &LOGO_LIMITS, false).map_err(|e| bad(e.to_string()))?;
        self.0.insert(key.to_string(), img.to_rgba8());
        Ok(())
    }

    pub fn get(&self, key: &str) -> Result<&RgbaImage, EngineError> {
        self.0.get(key).ok_or_else(|| EngineError::InvalidOp(format!("the watermark logo {key} was not provided")))
    }
}

static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans-Bold.ttf");

/// Draw `text` at `gravity` with `opacity`, `size` pixels tall (default 5% of the shorter side).
pub fn watermark(
    img: DynamicImage,
    text: &str,
    gravity: Gravity,
    opacity: f32,
    size: Option<u32>,
    margin: Option<u32>,
    color: Color,
) -> DynamicImage {
    let had_alpha = img.color().has_alpha();
    let mut canvas = img.to_rgba8();
    let (w, h) = canvas.dimensions();
    let font = FontRef::try_from_slice(FONT).expect("bundled font parses");
    // Text taller than the image cannot be seen whole: the size is bounded by the image, so
    // the cost of drawing is too (a hostile `size` of 16384 on a small photo draws nothing
    // bigger than the photo).
    let px = size.map(|s| s.min(h.max(1)) as f32).unwrap_or((w.min(h) as f32 * 0.05).max(12.0));
    let scaled = font.as_scaled(PxScale::from(px));
    // Lay the glyphs out on one line.
    let mut caret = 0.0f32;
    let mut glyphs = Vec::new();
    let mut prev = None;
    for ch in text.chars().filter(|c| !c.is_control()) {
        let id = scaled.glyph_id(ch);
        if let Some(p) = prev {
            caret += scaled.kern(p, id);
        }
        glyphs.push(id.with_scale_and_position(px, ab_glyph::point(caret, scaled.ascent())));
        caret += scaled.h_advance(id);
        prev = Some(id);
    }
    let text_w = caret.ceil() as u32;
    let text_h = (scaled.ascent() - scaled.descent()).ceil() as u32;
    let margin = margin.unwrap_or((px * 0.5) as u32);
    let (bx, by) = gravity.place(w, h, text_w + 2 * margin, text_h + 2 * margin);
    let (ox, oy) = ((bx + margin) as f32, (by + margin) as f32);
    for g in glyphs {
        let Some(outline) = font.outline_glyph(g) else { continue };
        let bounds = outline.px_bounds();
        // Glyphs wholly off the canvas (a long text runs off the right edge) are not drawn:
        // drawing visits every pixel of a glyph's box even where nothing lands.
        if ox + bounds.min.x >= w as f32 || oy + bounds.min.y >= h as f32 || ox + bounds.max.x < 0.0 {
            continue;
        }
        outline.draw(|gx, gy, coverage| {
            let x = (ox + bounds.min.x + gx as f32) as i64;
            let y = (oy + bounds.min.y + gy as f32) as i64;
            if x < 0 || y < 0 || x >= w as i64 || y >= h as i64 {
                return;
            }
            let a = coverage.clamp(0.0, 1.0) * opacity * color.0[3] as f32 / 255.0;
            let p = canvas.get_pixel_mut(x as u32, y as u32);
            for c in 0..3 {
                p.0[c] = (p.0[c] as f32 * (1.0 - a) + color.0[c] as f32 * a).round() as u8;
            }
            p.0[3] = (p.0[3] as f32 + (255.0 - p.0[3] as f32) * a).round() as u8;
        });
    }
    let out = DynamicImage::ImageRgba8(canvas);
    if had_alpha {
        out
    } else {
        DynamicImage::ImageRgb8(out.to_rgb8())
    }
}

/// Composite `logo` at `gravity`, its alpha multiplied by `opacity`. With `scale` the logo is
/// `scale` × the photo's width wide; without, its own size; either way shrunk to fit inside
/// the margins (default 3% of the shorter side).
pub fn logo(
    img: DynamicImage,
    logo: &RgbaImage,
    gravity: Gravity,
    opacity: f32,
    scale: Option<f32>,
    margin: Option<u32>,
) -> Result<DynamicImage, EngineError> {
    let had_alpha = img.color().has_alpha();
    let (w, h) = (img.width(), img.height());
    let margin = margin.unwrap_or((w.min(h) as f32 * 0.03).round() as u32);
    let (room_w, room_h) = (w.saturating_sub(2 * margin).max(1) as f64, h.saturating_sub(2 * margin).max(1) as f64);
    let (lw, lh) = (logo.width() as f64, logo.height() as f64);
    let mut s = scale.map(|s| s as f64 * w as f64 / lw).unwrap_or(1.0);
    s = s.min(room_w / lw).min(room_h / lh);
    let (tw, th) = (((lw * s).round() as u32).max(1), ((lh * s).round() as u32).max(1));
    let mark = if (tw, th) == logo.dimensions() {
        logo.clone()
    } else {
        let src = DynamicImage::ImageRgba8(logo.clone());
        super::geometry::resample(&src, (0.0, 0.0, lw, lh), tw, th, Filter::Lanczos3)?.to_rgba8()
    };
    let mut canvas = img.to_rgba8();
    let (bx, by) = gravity.place(w, h, tw + 2 * margin, th + 2 * margin);
    let (ox, oy) = (bx + margin, by + margin);
    for (x, y, src) in mark.enumerate_pixels() {
        let (cx, cy) = (ox + x, oy + y);
        if cx >= w || cy >= h {
            continue;
        }
        let a = src.0[3] as f32 / 255.0 * opacity;
        if a <= 0.0 {
            continue;
        }
        let p = canvas.get_pixel_mut(cx, cy);
        for c in 0..3 {
            p.0[c] = (p.0[c] as f32 * (1.0 - a) + src.0[c] as f32 * a).round() as u8;
        }
        p.0[3] = (p.0[3] as f32 + (255.0 - p.0[3] as f32) * a).round() as u8;
    }
    let out = DynamicImage::ImageRgba8(canvas);
    Ok(if had_alpha { out } else { DynamicImage::ImageRgb8(out.to_rgb8()) })
}

/// Composite onto `background`; the result has no alpha (unless the background has).
pub fn flatten(img: DynamicImage, background: Color) -> DynamicImage {
    if !img.color().has_alpha() {
        return img;
    }
    let src = img.to_rgba8();
    let mut out = RgbaImage::from_pixel(src.width(), src.height(), Rgba(background.0));
    for (o, s) in out.pixels_mut().zip(src.pixels()) {
        let a = s.0[3] as u32;
        for c in 0..3 {
            o.0[c] = ((s.0[c] as u32 * a + o.0[c] as u32 * (255 - a) + 127) / 255) as u8;
        }
        o.0[3] = (a + o.0[3] as u32 * (255 - a) / 255) as u8;
    }
    if background.0[3] == 255 {
        DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(out).to_rgb8())
    } else {
        DynamicImage::ImageRgba8(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `size` beyond the photo is bounded by it: 200 characters asked at 16384 px on a
    /// 64×40 photo are drawn 40 px tall (visible at the top left), not laid out 16384 px tall
    /// far off the canvas at the cost of rasterising glyphs bigger than the photo.
    #[test]
    fn text_size_is_bounded_by_the_photo() {
        let img = DynamicImage::ImageRgb8(image::RgbImage::new(64, 40));
        let text = "W".repeat(200);
        let out = watermark(img, &text, Gravity::Northwest, 1.0, Some(16384), Some(0), Color([255, 255, 255, 255]));
        assert_eq!((out.width(), out.height()), (64, 40));
        let lit = out.to_rgb8().pixels().filter(|p| p.0[0] > 128).count();
        assert!(lit > 64 * 40 / 10, "the text is drawn at the photo's height: {lit} pixels lit");
    }
}
