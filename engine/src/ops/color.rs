//! Colour adjustments. Per-channel ones go through a 256-entry lookup table; every op keeps
//! the alpha channel as it is.

use image::{DynamicImage, GenericImageView};

/// 8-bit working copy: luma stays luma, colour stays colour, alpha stays alpha.
fn to_8bit(img: DynamicImage) -> DynamicImage {
    match img {
        DynamicImage::ImageLuma8(_)
        | DynamicImage::ImageLumaA8(_)
        | DynamicImage::ImageRgb8(_)
        | DynamicImage::ImageRgba8(_) => img,
        other if other.color().has_color() && other.color().has_alpha() => DynamicImage::ImageRgba8(other.to_rgba8()),
        other if other.color().has_color() => DynamicImage::ImageRgb8(other.to_rgb8()),
        other if other.color().has_alpha() => DynamicImage::ImageLumaA8(other.to_luma_alpha8()),
        other => DynamicImage::ImageLuma8(other.to_luma8()),
    }
}

/// Apply `lut` to every colour channel (not alpha).
fn map_lut(img: DynamicImage, lut: &[u8; 256]) -> DynamicImage {
    let mut img = to_8bit(img);
    let (channels, alpha) = (img.color().channel_count() as usize, img.color().has_alpha());
    let colour = if alpha { channels - 1 } else { channels };
    let buf: &mut [u8] = match &mut img {
        DynamicImage::ImageLuma8(b) => b,
        DynamicImage::ImageLumaA8(b) => b,
        DynamicImage::ImageRgb8(b) => b,
        DynamicImage::ImageRgba8(b) => b,
        _ => unreachable!("to_8bit"),
    };
    for px in buf.chunks_exact_mut(channels) {
        for c in &mut px[..colour] {
            *c = lut[*c as usize];
        }
    }
    img
}

fn lut(f: impl Fn(f32) -> f32) -> [u8; 256] {
    std::array::from_fn(|i| f(i as f32).round().clamp(0.0, 255.0) as u8)
}

pub fn brightness(img: DynamicImage, factor: f32) -> DynamicImage {
    map_lut(img, &lut(|v| v * factor))
}

pub fn contrast(img: DynamicImage, factor: f32) -> DynamicImage {
    map_lut(img, &lut(|v| (v - 128.0) * factor + 128.0))
}

pub fn gamma(img: DynamicImage, gamma: f32) -> DynamicImage {
    map_lut(img, &lut(|v| 255.0 * (v / 255.0).powf(1.0 / gamma)))
}

pub fn invert(img: DynamicImage) -> DynamicImage {
    map_lut(img, &lut(|v| 255.0 - v))
}

pub fn grayscale(img: DynamicImage) -> DynamicImage {
    if img.color().has_alpha() {
        DynamicImage::ImageLumaA8(img.to_luma_alpha8())
    } else {
        DynamicImage::ImageLuma8(img.to_luma8())
    }
}

/// Apply a 3×3 colour matrix (rows: output r, g, b) to an RGB(A) copy.
fn matrix(img: DynamicImage, m: [[f32; 3]; 3]) -> DynamicImage {
    let (w, h) = img.dimensions();
    if img.color().has_alpha() {
        let mut rgba = img.to_rgba8();
        for p in rgba.pixels_mut() {
            let [r, g, b, _] = p.0.map(f32::from);
            for (i, row) in m.iter().enumerate() {
                p.0[i] = (row[0] * r + row[1] * g + row[2] * b).round().clamp(0.0, 255.0) as u8;
            }
        }
        debug_assert_eq!(rgba.dimensions(), (w, h));
        DynamicImage::ImageRgba8(rgba)
    } else {
        let mut rgb = img.to_rgb8();
        for p in rgb.pixels_mut() {
            let [r, g, b] = p.0.map(f32::from);
            for (i, row) in m.iter().enumerate() {
                p.0[i] = (row[0] * r + row[1] * g + row[2] * b).round().clamp(0.0, 255.0) as u8;
            }
        }
        DynamicImage::ImageRgb8(rgb)
    }
}

pub fn saturation(img: DynamicImage, s: f32) -> DynamicImage {
    if !img.color().has_color() {
        return img;
    }
    // Rec. 709 luma weights: grey keeps the luma, colour scales away from it.
    let (lr, lg, lb) = (0.2126, 0.7152, 0.0722);
    matrix(
        img,
        [
            [lr + (1.0 - lr) * s, lg - lg * s, lb - lb * s],
            [lr - lr * s, lg + (1.0 - lg) * s, lb - lb * s],
            [lr - lr * s, lg - lg * s, lb + (1.0 - lb) * s],
        ],
    )
}

pub fn sepia(img: DynamicImage) -> DynamicImage {
    matrix(img, [[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]])
}
