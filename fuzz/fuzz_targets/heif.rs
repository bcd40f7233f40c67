//! HEIC through libheif (and libde265 behind it) on hostile bytes: the brand check (AVIF and
//! other codecs are refused before libheif decodes), the size limits given to libheif, the
//! header-against-decoded dimension check, the colour profile, and a small AVIF encode (libaom)
//! of what decoded. libheif itself is not
//! instrumented (a system library), but what it hands back is used by our code under ASan, and a
//! crash or runaway allocation inside it still stops the fuzzer. The web app's pure-Rust
//! header reader (`darkroom_protocol::probe::heif`) reads every input first: it must never
//! panic, whatever the boxes say.
#![no_main]

use darkroom_engine::{heif, process, Format, Op, OutputSpec};
use libfuzzer_sys::fuzz_target;

#[path = "limits.rs"]
mod limits;
use limits::LIMITS;

fuzz_target!(|data: &[u8]| {
    if !heif::sniff(data) {
        return;
    }
    let _ = darkroom_protocol::probe(data, &LIMITS);
    let _ = heif::icc_profile(data);
    let Ok(img) = heif::decode_within(data, &LIMITS) else { return };
    assert!(img.width() as u64 * img.height() as u64 <= LIMITS.max_pixels, "decoded past the limit");
    // What decoded also goes through the pipeline, as an upload would: probe, decode, resize,
    // and an AVIF encode (fastest speed, tiny) so libheif's encoder sees odd sizes too.
    let small = Op::Resize {
        width: Some(16),
        height: Some(16),
        fit: Default::default(),
        gravity: Default::default(),
        enlarge: false,
        filter: Default::default(),
    };
    let mut avif = OutputSpec::new("a", vec![small.clone()], Format::Avif);
    avif.speed = Some(9);
    let _ = process(data, &[avif, OutputSpec::new("p", vec![small], Format::Png)], &LIMITS);
});
