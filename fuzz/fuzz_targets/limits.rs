//! The limits the whole-job fuzz targets (`pipeline`, `heif`) run under: small, so a hostile
//! header cannot make the fuzzer itself run out of memory, and a job that would be refused in
//! production is refused here too, by the same checks. Included with `#[path]` (not a target).

use darkroom_engine::Limits;

pub const LIMITS: Limits = Limits {
    max_input_bytes: 1 << 20,
    max_pixels: 4_000_000,
    max_output_dimension: 1024,
    max_output_pixels: 4_000_000,
    max_job_output_pixels: 16_000_000,
    max_job_output_bytes: 64 << 20,
};
