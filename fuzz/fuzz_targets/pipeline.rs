//! The whole pipeline on hostile bytes, so every native path runs on them under AddressSanitizer:
//! TurboJPEG's decoder (scaled, to pixels and to YCbCr planes), our C code in engine/csrc (the
//! encoder from pixels and from planes, the DCT-coefficient transcoder, the region decoder) and
//! the PNG, WebP (libwebp) and colour-management (lcms2) paths. The `decode` target stops at the
//! first output; this one asks for the mix a real job asks for.
#![no_main]

use darkroom_engine::{process, OutputSpec};
use darkroom_protocol::recipe;
use libfuzzer_sys::fuzz_target;

#[path = "limits.rs"]
mod limits;
use limits::LIMITS;

/// Recipes in the JSON users send (parsed by the web app's own parser, so the fuzzer follows
/// the API rather than the engine's internal types), one job each:
const JOBS: &[&str] = &[
    // JPEG in, JPEG out with a resize: YCbCr planes (tjDecompressToYUVPlanes, shrink-on-load),
    // resized, then csrc/jpeg_encode.c from planes.
    r#"{"outputs":[{"name":"p","ops":[{"op":"resize","width":48,"height":48}],"format":"jpeg","quality":80}]}"#,
    // JPEG at its own size: csrc/jpeg_transcode.c from the DCT coefficients; progressive output.
    r#"{"outputs":[{"name":"t","format":"jpeg","progressive":true}]}"#,
    // A crop box first, alone: csrc/jpeg_region.c decodes only the box.
    r#"{"outputs":[{"name":"r","ops":[{"op":"crop","x":3,"y":5,"width":40,"height":24}],"format":"jpeg","chroma_subsampling":"4:4:4"}]}"#,
    // Several outputs from one decode: the RGB path (tjDecompress2, scaled), csrc/jpeg_encode.c
    // from RGB and grey pixels, PNG, lossy and lossless WebP, kept colour profiles.
    r#"{"outputs":[
        {"name":"a","ops":[{"op":"resize","width":40,"height":30,"fit":"cover"}],"format":"jpeg","chroma_subsampling":"4:2:2","progressive":true},
        {"name":"b","ops":[{"op":"resize","width":32},{"op":"grayscale"}],"format":"jpeg","quality":60},
        {"name":"c","ops":[{"op":"resize","width":24,"height":24}],"format":"png","compression_level":1},
        {"name":"d","ops":[{"op":"resize","width":24,"height":24}],"format":"webp","quality":50},
        {"name":"e","ops":[{"op":"resize","width":16,"height":16}],"format":"webp","lossless":true,"icc":"keep"},
        {"name":"f","ops":[{"op":"resize","width":20,"height":20}],"format":"jpeg","auto_orient":false,"icc":"keep"}
    ]}"#,
];

fn jobs() -> &'static [Vec<OutputSpec>] {
    static JOBS_PARSED: std::sync::OnceLock<Vec<Vec<OutputSpec>>> = std::sync::OnceLock::new();
    JOBS_PARSED.get_or_init(|| {
        JOBS.iter().map(|j| recipe::parse(j, &darkroom_engine::Limits::default()).expect("the fuzz recipes are valid")).collect()
    })
}

fuzz_target!(|data: &[u8]| {
    if darkroom_engine::probe(data, &LIMITS).is_err() {
        return;
    }
    for outputs in jobs() {
        if let Ok(rendered) = process(data, outputs, &LIMITS) {
            for r in rendered {
                assert!(r.width <= LIMITS.max_output_dimension && r.height <= LIMITS.max_output_dimension);
                assert!(!r.bytes.is_empty(), "an output with no bytes");
            }
        }
    }
});
