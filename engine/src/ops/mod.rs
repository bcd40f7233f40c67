//! The edit operations' pixels: [`Apply`] dispatches each [`Op`] to the module that
//! implements it ([`geometry`], [`color`], [`filter`], [`overlay`]).
//!
//! What an op is (its wire format, its validation, the size it makes) is defined in
//! `darkroom-protocol`'s `ops`; the names are re-exported here so engine code and its callers
//! keep one path.

pub mod attention;
pub mod color;
pub mod filter;
pub mod geometry;
pub mod overlay;

use image::DynamicImage;

pub use darkroom_protocol::ops::{parse_aspect, Color, Filter, Fit, Gravity, Mark, Op, Watermark};

use crate::{EngineError, Limits};

/// Apply an op to pixels.
pub trait Apply {
    /// Apply this op (an op that needs a logo fails: use [`Apply::apply_with`]).
    fn apply(&self, img: DynamicImage, limits: &Limits) -> Result<DynamicImage, EngineError>;

    /// Apply this op, taking watermark logos from `logos`.
    fn apply_with(
        &self,
        img: DynamicImage,
        limits: &Limits,
        logos: &overlay::Logos,
    ) -> Result<DynamicImage, EngineError>;
}

impl Apply for Op {
    fn apply(&self, img: DynamicImage, limits: &Limits) -> Result<DynamicImage, EngineError> {
        self.apply_with(img, limits, &overlay::Logos::default())
    }

    fn apply_with(
        &self,
        img: DynamicImage,
        limits: &Limits,
        logos: &overlay::Logos,
    ) -> Result<DynamicImage, EngineError> {
        // Every intermediate image is within the limits before it is allocated.
        let (w, h) = self.output_size((img.width(), img.height()))?;
        limits.check_output(w, h)?;
        Ok(match self {
            Op::Resize { width, height, fit, gravity, enlarge, filter } => {
                geometry::resize(img, *width, *height, *fit, *gravity, *enlarge, *filter, limits)?
            }
            Op::Crop { x, y, width, height, aspect, gravity } => {
                geometry::crop(img, *x, *y, *width, *height, aspect.as_deref(), *gravity)?
            }
            Op::Rotate { degrees, background } => geometry::rotate(img, *degrees, *background, limits)?,
            Op::FlipHorizontal => img.fliph(),
            Op::FlipVertical => img.flipv(),
            Op::Grayscale => color::grayscale(img),
            Op::Blur { sigma } => filter::blur(img, *sigma),
            Op::Sharpen { sigma, threshold } => filter::sharpen(img, *sigma, *threshold),
            Op::Brightness { factor } => color::brightness(img, *factor),
            Op::Contrast { factor } => color::contrast(img, *factor),
            Op::Saturation { factor } => color::saturation(img, *factor),
            Op::Hue { degrees } => img.huerotate(*degrees),
            Op::Gamma { gamma } => color::gamma(img, *gamma),
            Op::Invert => color::invert(img),
            Op::Sepia => color::sepia(img),
            Op::Watermark(w) => match &w.mark {
                Mark::Text { text, size, color } => {
                    overlay::watermark(img, text, w.gravity, w.opacity, *size, w.margin, *color)
                }
                Mark::Logo { image, scale } => {
                    overlay::logo(img, logos.get(image)?, w.gravity, w.opacity, *scale, w.margin)?
                }
            },
            Op::Flatten { background } => overlay::flatten(img, *background),
        })
    }
}
