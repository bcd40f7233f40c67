//! The engine's one error type. Every variant is something a user did or sent, so each
//! message says what happened and what to do about it.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum EngineError {
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
    #[error("{}", job_too_large(what, *amount, *limit))]
    JobTooLarge { what: &'static str, amount: u64, limit: u64 },
    #[error("Could not encode the output as {format}: {detail}")]
    Encode { format: &'static str, detail: String },
    #[error("{0} images are not supported by this server.")]
    UnsupportedFormat(String),
    #[error("The edit cannot be applied: {0}")]
    InvalidOp(String),
    #[error("Processing took longer than the limit of {0} seconds. Ask for fewer outputs or smaller sizes.")]
    TimeLimit(u64),
}

fn job_too_large(what: &str, amount: u64, limit: u64) -> String {
    if what == "bytes" {
        format!(
            "The outputs of this job add up to more than {} MB, over the limit of {} MB per job. Ask for fewer outputs, smaller sizes or a compressed format.",
            amount / 1_000_000,
            limit / 1_000_000
        )
    } else {
        format!(
            "The outputs of this job add up to {} megapixels, over the limit of {} megapixels per job. Ask for fewer outputs or smaller sizes.",
            mp(amount),
            mp(limit)
        )
    }
}

fn mp(pixels: u64) -> String {
    format!("{:.1}", pixels as f64 / 1e6)
}

impl EngineError {
    /// A stable machine-readable code, used in API errors and status messages.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Empty => "empty_file",
            EngineError::FileTooLarge { .. } => "file_too_large",
            EngineError::NotAnImage => "not_an_image",
            EngineError::TooManyPixels { .. } => "too_many_pixels",
            EngineError::Corrupt(_) => "corrupt_image",
            EngineError::OutputTooLarge { .. } | EngineError::OutputTooManyPixels { .. } => "output_too_large",
            EngineError::JobTooLarge { .. } => "job_too_large",
            EngineError::Encode { .. } => "encode_failed",
            EngineError::InvalidOp(_) => "invalid_op",
            EngineError::UnsupportedFormat(_) => "unsupported_format",
            EngineError::TimeLimit(_) => "time_limit",
        }
    }
}
