//! Why an upload or a request is refused: the one error type of the rules every side applies
//! (the [`limits`](crate::limits), header [`probe`](crate::probe), output [`plan`](crate::output::plan)
//! and op sizes).
//!
//! It lives here, not in the engine, because the web app refuses at the door with the same
//! codes and messages the processor reports later; the engine's `EngineError` converts from it
//! variant for variant. Every variant is something a user did or sent, so each message says
//! what happened and what to do about it.

use thiserror::Error;

/// A file or a request the rules refuse.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum Refusal {
    #[error("The file is empty. Choose a photo file and upload it again.")]
    Empty,
    #[error("The file is {bytes} bytes, over the limit of {limit} bytes. Upload a smaller file.")]
    FileTooLarge { bytes: u64, limit: u64 },
    #[error(
        "This file is not an image Darkroom can read. Supported formats: JPEG, PNG, WebP, HEIC, GIF, TIFF and BMP."
    )]
    NotAnImage,
    #[error("The image is {width}×{height} ({} megapixels), over the limit of {} megapixels. Scale it down before uploading.", mp(*width as u64 * *height as u64), mp(*limit))]
    TooManyPixels { width: u32, height: u32, limit: u64 },
    #[error("The image data is damaged or incomplete ({0}). Export the photo again and re-upload it.")]
    Corrupt(String),
    #[error("The requested output would be {width}×{height}, over the limit of {limit} pixels per side. Ask for a smaller size.")]
    OutputTooLarge { width: u32, height: u32, limit: u32 },
    #[error("The requested output would be {width}×{height} ({} megapixels), over the limit of {} megapixels per image. Ask for a smaller size.", mp(*width as u64 * *height as u64), mp(*limit))]
    OutputTooManyPixels { width: u32, height: u32, limit: u64 },
    #[error("{}", job_too_large(*what, *amount, *limit))]
    JobTooLarge { what: JobMeasure, amount: u64, limit: u64 },
    #[error("{0} images are not supported by this server.")]
    UnsupportedFormat(String),
    #[error("The edit cannot be applied: {0}")]
    InvalidOp(String),
}

/// What a job's outputs add up to in [`Refusal::JobTooLarge`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobMeasure {
    /// Planned pixels of all outputs.
    Pixels,
    /// Encoded bytes of all outputs.
    Bytes,
}

fn job_too_large(what: JobMeasure, amount: u64, limit: u64) -> String {
    match what {
        JobMeasure::Bytes => format!(
            "The outputs of this job add up to more than {} MB, over the limit of {} MB per job. Ask for fewer outputs, smaller sizes or a compressed format.",
            amount / 1_000_000,
            limit / 1_000_000
        ),
        JobMeasure::Pixels => format!(
            "The outputs of this job add up to {} megapixels, over the limit of {} megapixels per job. Ask for fewer outputs or smaller sizes.",
            mp(amount),
            mp(limit)
        ),
    }
}

fn mp(pixels: u64) -> String {
    format!("{:.1}", pixels as f64 / 1e6)
}

impl Refusal {
    /// A stable machine-readable code, used in API errors and status messages.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Empty => "empty_file",
            Refusal::FileTooLarge { .. } => "file_too_large",
            Refusal::NotAnImage => "not_an_image",
            Refusal::TooManyPixels { .. } => "too_many_pixels",
            Refusal::Corrupt(_) => "corrupt_image",
            Refusal::OutputTooLarge { .. } | Refusal::OutputTooManyPixels { .. } => "output_too_large",
            Refusal::JobTooLarge { .. } => "job_too_large",
            Refusal::InvalidOp(_) => "invalid_op",
            Refusal::UnsupportedFormat(_) => "unsupported_format",
        }
    }
}
