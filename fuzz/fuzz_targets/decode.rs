//! Decoding with limits never panics and never allocates past the limits, whatever the bytes.
#![no_main]

use darkroom_engine::{probe, process, Format, Limits, Op, OutputSpec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Small limits so a hostile header cannot make the fuzzer itself run out of memory.
    let limits = Limits {
    max_input_bytes: 1 << 20,
    max_pixels: 4_000_000,
    max_output_dimension: 2048,
    max_output_pixels: 4_000_000,
    max_job_output_pixels: 16_000_000,
    max_job_output_bytes: 64 << 20,
};
    // The same bytes as a watermark logo: decoded within the logo limits, or refused.
    let _ = darkroom_engine::ops::overlay::Logos::default().insert("logos/fuzz/logo.png", data);
    if probe(data, &limits).is_err() {
        return;
    }
    let resize = Op::Resize {
        width: Some(64),
        height: Some(64),
        fit: Default::default(),
        gravity: Default::default(),
        enlarge: false,
        filter: Default::default(),
    };
    let _ = process(data, &[OutputSpec::new("t", vec![resize], Format::Png)], &limits);
    // A JPEG re-encoded at full size takes the DCT-coefficient path (engine/csrc/jpeg_transcode.c):
    // hostile coefficients, tables and sampling factors go through it here.
    let _ = process(data, &[OutputSpec::new("j", vec![], Format::Jpeg)], &limits);
});
