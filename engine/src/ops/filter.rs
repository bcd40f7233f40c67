//! Neighbourhood filters.

use image::{DynamicImage, ImageBuffer, Pixel, Primitive};

/// Gaussian blur. Small radii use the exact separable kernel; larger ones the box
/// approximation (three passes), which is indistinguishable there and much faster.
pub fn blur(img: DynamicImage, sigma: f32) -> DynamicImage {
    if sigma <= 3.0 {
        img.blur(sigma)
    } else {
        img.fast_blur(sigma)
    }
}

/// Unsharp mask: add back the difference from a blur where it exceeds `threshold`. The blur is
/// [`blur`]'s, so a large `sigma` costs what a small one does (the `image` crate's own
/// `unsharpen` convolves a kernel 6σ wide: σ = 50 on a 100 MP photo took minutes).
pub fn sharpen(img: DynamicImage, sigma: f32, threshold: i32) -> DynamicImage {
    if sigma <= 3.0 {
        return img.unsharpen(sigma, threshold);
    }
    let blurred = blur(img.clone(), sigma);
    match (img, blurred) {
        (DynamicImage::ImageLuma8(a), DynamicImage::ImageLuma8(b)) => unsharp(a, b, threshold).into(),
        (DynamicImage::ImageLumaA8(a), DynamicImage::ImageLumaA8(b)) => unsharp(a, b, threshold).into(),
        (DynamicImage::ImageRgb8(a), DynamicImage::ImageRgb8(b)) => unsharp(a, b, threshold).into(),
        (DynamicImage::ImageRgba8(a), DynamicImage::ImageRgba8(b)) => unsharp(a, b, threshold).into(),
        (DynamicImage::ImageLuma16(a), DynamicImage::ImageLuma16(b)) => unsharp(a, b, threshold).into(),
        (DynamicImage::ImageLumaA16(a), DynamicImage::ImageLumaA16(b)) => unsharp(a, b, threshold).into(),
        (DynamicImage::ImageRgb16(a), DynamicImage::ImageRgb16(b)) => unsharp(a, b, threshold).into(),
        (DynamicImage::ImageRgba16(a), DynamicImage::ImageRgba16(b)) => unsharp(a, b, threshold).into(),
        // Float images: sharpen in 16-bit.
        (a, _) => {
            let a = DynamicImage::ImageRgba16(a.to_rgba16());
            sharpen(a, sigma, threshold)
        }
    }
}

/// `image`'s unsharpen rule, per channel: where |original − blurred| > threshold, push the
/// original away from the blur by that difference.
fn unsharp<P, S>(
    orig: ImageBuffer<P, Vec<S>>,
    mut blurred: ImageBuffer<P, Vec<S>>,
    threshold: i32,
) -> ImageBuffer<P, Vec<S>>
where
    P: Pixel<Subpixel = S>,
    S: Primitive + Into<i32> + TryFrom<i32>,
{
    let max: i32 = S::DEFAULT_MAX_VALUE.into();
    for (o, b) in orig.pixels().zip(blurred.pixels_mut()) {
        *b = o.map2(b, |c, d| {
            let (ic, id): (i32, i32) = (c.into(), d.into());
            let diff = ic - id;
            if diff.abs() > threshold {
                S::try_from((ic + diff).clamp(0, max)).unwrap_or(c)
            } else {
                c
            }
        });
    }
    blurred
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Above σ = 3 the sharpen takes the box-blur path; it must look like the exact one.
    #[test]
    fn fast_sharpen_matches_the_exact_one() {
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_fn(96, 64, |x, y| {
            image::Rgb([(x * 7 % 256) as u8, (y * 11 % 256) as u8, ((x ^ y) * 5 % 256) as u8])
        }));
        let exact = img.unsharpen(4.0, 2).to_rgb8();
        let fast = sharpen(img, 4.0, 2).to_rgb8();
        let diff: u64 = exact.as_raw().iter().zip(fast.as_raw()).map(|(a, b)| a.abs_diff(*b) as u64).sum();
        let mean = diff as f64 / exact.as_raw().len() as f64;
        assert!(mean < 6.0, "mean difference {mean:.2} of 255");
    }
}
