//! Where limits are enforced: the numbers that keep a hostile upload from taking a worker down.
//!
//! Every check here runs on header information only, before pixels are allocated, so the web
//! app applies them at the door and the engine again before it decodes.

use crate::refusal::{JobMeasure, Refusal};

/// Limits applied to every input and output. Defaults suit photos from phones and cameras.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Largest accepted input file, in bytes.
    pub max_input_bytes: u64,
    /// Largest accepted input, in pixels (width × height), checked from the header.
    pub max_pixels: u64,
    /// Largest width or height an output may have.
    pub max_output_dimension: u32,
    /// Most pixels of any image a job makes: every intermediate step and every output. A
    /// resize, rotate or crop is planned (from sizes alone) and refused before it allocates.
    pub max_output_pixels: u64,
    /// Most pixels of all of a job's outputs together.
    pub max_job_output_pixels: u64,
    /// Most encoded bytes of all of a job's outputs together (a stored PNG of a big image is
    /// 4 bytes a pixel).
    pub max_job_output_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_input_bytes: 50 * 1024 * 1024,
            max_pixels: 100_000_000,
            max_output_dimension: 16_384,
            max_output_pixels: 100_000_000,
            max_job_output_pixels: 300_000_000,
            max_job_output_bytes: 1024 * 1024 * 1024,
        }
    }
}

impl Limits {
    pub fn check_bytes(&self, len: usize) -> Result<(), Refusal> {
        if len == 0 {
            return Err(Refusal::Empty);
        }
        if len as u64 > self.max_input_bytes {
            return Err(Refusal::FileTooLarge { bytes: len as u64, limit: self.max_input_bytes });
        }
        Ok(())
    }

    pub fn check_dimensions(&self, width: u32, height: u32) -> Result<(), Refusal> {
        let pixels = width as u64 * height as u64;
        if width == 0 || height == 0 {
            return Err(Refusal::Corrupt("the header says the image has no pixels".into()));
        }
        if pixels > self.max_pixels {
            return Err(Refusal::TooManyPixels { width, height, limit: self.max_pixels });
        }
        Ok(())
    }

    /// An image a job is about to make (an intermediate step or an output): checked from
    /// its size before its pixels are allocated.
    pub fn check_output(&self, width: u32, height: u32) -> Result<(), Refusal> {
        let biggest = width.max(height);
        if biggest > self.max_output_dimension {
            return Err(Refusal::OutputTooLarge { width, height, limit: self.max_output_dimension });
        }
        if width as u64 * height as u64 > self.max_output_pixels {
            return Err(Refusal::OutputTooManyPixels { width, height, limit: self.max_output_pixels });
        }
        Ok(())
    }

    /// All of a job's outputs together, in pixels (planned) or encoded bytes (as they come).
    pub fn check_job_total(&self, pixels: u64, bytes: u64) -> Result<(), Refusal> {
        if pixels > self.max_job_output_pixels {
            return Err(Refusal::JobTooLarge {
                what: JobMeasure::Pixels,
                amount: pixels,
                limit: self.max_job_output_pixels,
            });
        }
        if bytes > self.max_job_output_bytes {
            return Err(Refusal::JobTooLarge {
                what: JobMeasure::Bytes,
                amount: bytes,
                limit: self.max_job_output_bytes,
            });
        }
        Ok(())
    }

    /// Bytes the decoder may allocate: the pixel limit at 16-bit RGBA, plus slack.
    pub fn max_alloc(&self) -> u64 {
        self.max_pixels.saturating_mul(8).saturating_add(64 * 1024 * 1024)
    }
}

/// Limits for a watermark logo: small, so a logo cannot cost more than a fraction of a job.
/// 2048×2048 RGBA is 16 MiB decoded.
pub const LOGO_LIMITS: Limits = Limits {
    max_input_bytes: 2 * 1024 * 1024,
    max_pixels: 2048 * 2048,
    max_output_dimension: 2048,
    max_output_pixels: 2048 * 2048,
    max_job_output_pixels: 2048 * 2048,
    max_job_output_bytes: 64 * 1024 * 1024,
};
