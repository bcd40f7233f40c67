//! Overlays: text watermarks and flattening transparency onto a background.

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use image::{DynamicImage, Rgba, RgbaImage};

use super::types::{Color, Gravity};

static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans-Bold.ttf");

/// Draw `text` at `gravity` with `opacity`, `size` pixels tall (default 5% of the shorter side).
pub fn watermark(
    img: DynamicImage,
    text: &str,
    gravity: Gravity,
    opacity: f32,
    size: Option<u32>,
    color: Color,
) -> DynamicImage {
    let had_alpha = img.color().has_alpha();
    let mut canvas = img.to_rgba8();
    let (w, h) = canvas.dimensions();
    let font = FontRef::try_from_slice(FONT).expect("bundled font parses");
    let px = size.map(|s| s as f32).unwrap_or((w.min(h) as f32 * 0.05).max(12.0));
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
    let margin = (px * 0.5) as u32;
    let (bx, by) = gravity.place(w, h, text_w + 2 * margin, text_h + 2 * margin);
    let (ox, oy) = ((bx + margin) as f32, (by + margin) as f32);
    for g in glyphs {
        let Some(outline) = font.outline_glyph(g) else { continue };
        let bounds = outline.px_bounds();
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
