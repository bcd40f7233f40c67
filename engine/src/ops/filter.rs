//! Neighbourhood filters.

use image::DynamicImage;

/// Gaussian blur. Small radii use the exact separable kernel; larger ones the box
/// approximation (three passes), which is indistinguishable there and much faster.
pub fn blur(img: DynamicImage, sigma: f32) -> DynamicImage {
    if sigma <= 3.0 {
        img.blur(sigma)
    } else {
        img.fast_blur(sigma)
    }
}
