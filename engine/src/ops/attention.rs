//! `gravity: attention`: where the detail is. A crop keeps the window with the most edge
//! energy (sum of luma gradients), found on a small preview with an integral image.

use image::imageops::FilterType;
use image::DynamicImage;

/// Top-left corner of the `w`×`h` window of `img` with the most detail.
pub fn best_region(img: &DynamicImage, w: u32, h: u32) -> (u32, u32) {
    let (sw, sh) = (img.width(), img.height());
    if w >= sw && h >= sh {
        return (0, 0);
    }
    // Work on a preview about 256 px on its long side.
    let scale = (256.0 / sw.max(sh) as f64).min(1.0);
    let (pw, ph) = (((sw as f64 * scale).round() as u32).max(2), ((sh as f64 * scale).round() as u32).max(2));
    let luma = img.resize_exact(pw, ph, FilterType::Triangle).to_luma8();
    // Integral image of gradient magnitude.
    let (pwu, phu) = (pw as usize, ph as usize);
    let mut integral = vec![0u64; (pwu + 1) * (phu + 1)];
    for y in 0..phu {
        let mut row = 0u64;
        for x in 0..pwu {
            let p = luma.get_pixel(x as u32, y as u32)[0] as i32;
            let right = luma.get_pixel((x as u32 + 1).min(pw - 1), y as u32)[0] as i32;
            let down = luma.get_pixel(x as u32, (y as u32 + 1).min(ph - 1))[0] as i32;
            row += ((right - p).abs() + (down - p).abs()) as u64;
            integral[(y + 1) * (pwu + 1) + x + 1] = integral[y * (pwu + 1) + x + 1] + row;
        }
    }
    let sum = |x: usize, y: usize, ww: usize, hh: usize| {
        let s = |xx: usize, yy: usize| integral[yy * (pwu + 1) + xx];
        s(x + ww, y + hh) + s(x, y) - s(x + ww, y) - s(x, y + hh)
    };
    let ww = ((w as f64 * scale).round() as usize).clamp(1, pwu);
    let wh = ((h as f64 * scale).round() as usize).clamp(1, phu);
    let mut best = (0usize, 0usize, 0u64);
    for y in 0..=(phu - wh) {
        for x in 0..=(pwu - ww) {
            let e = sum(x, y, ww, wh);
            if e > best.2 {
                best = (x, y, e);
            }
        }
    }
    let x = ((best.0 as f64 / scale).round() as u32).min(sw - w.min(sw));
    let y = ((best.1 as f64 / scale).round() as u32).min(sh - h.min(sh));
    (x, y)
}
