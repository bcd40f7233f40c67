//! Hostile corpus files (X*) get their typed error while the engine's memory stays bounded.
//! A counting global allocator records the peak of live heap bytes during each call; this
//! binary has one test so nothing else allocates meanwhile.

use std::path::PathBuf;

use darkroom_engine::refusal::JobMeasure;
use darkroom_engine::{probe, process, process_each, EngineError, Format, Limits, OutputSpec, Resources};

#[path = "common/counting.rs"]
mod counting;
use counting::{peak_during, MIB};

fn corpus(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("DARKROOM_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"));
    std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("corpus file {name}: {e}"))
}

#[test]
fn hostile_files_get_typed_errors_in_bounded_memory() {
    let limits = Limits::default();
    let outputs = [
        OutputSpec::new("full", vec![], Format::Png),
        serde_json::from_str(r#"{"name":"thumb","ops":[{"op":"resize","width":400,"height":400}],"format":"jpeg"}"#)
            .unwrap(),
    ];
    // Every X* file of the corpus, with the error it must get. A new hostile file must be
    // added here, so the test fails until someone says what it should give.
    let expected = [
        ("X01_truncated_half.jpg", "corrupt_image"),
        ("X02_text_named.jpg", "not_an_image"),
        ("X03_empty.jpg", "empty_file"),
        ("X04_bomb_20000x20000.png", "too_many_pixels"),
    ];
    let dir = std::env::var_os("DARKROOM_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"));
    let mut hostile: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('X'))
        .collect();
    hostile.sort();
    assert_eq!(hostile, expected.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>(), "hostile corpus files");

    // For scale: what a legitimate photo of the same size as X01 (1920×1280) costs.
    let (ok, photo_peak) = peak_during(|| process(&corpus("M03_storm_1920x1280_exif.jpg"), &outputs, &limits));
    ok.unwrap();
    eprintln!("M03 (1920x1280, the photo X01 is half of): peak {:.1} MiB", photo_peak as f64 / MIB as f64);

    for (name, code) in expected {
        let bytes = corpus(name);
        let (probed, probe_peak) = peak_during(|| probe(&bytes, &limits));
        let (processed, process_peak) = peak_during(|| process(&bytes, &outputs, &limits));
        let process_err = processed.map(|_| ()).unwrap_err();
        eprintln!(
            "{name}: {code}; peak {:.2} MiB probing, {:.2} MiB processing",
            probe_peak as f64 / MIB as f64,
            process_peak as f64 / MIB as f64
        );
        // The upload check refuses X01 only when decoding (its header is fine); the rest at once.
        match probed {
            Ok(p) => assert!(name == "X01_truncated_half.jpg", "{name}: probe accepted it as {p:?}"),
            Err(e) => assert_eq!(e.code(), code, "{name}: probe says {e}"),
        }
        assert_eq!(process_err.code(), code, "{name}: process says {process_err}");
        // Bound: refusing costs about what reading a header does (measured: under 0.4 MiB).
        // 4 MiB is below one 1920×1280 RGB buffer (7 MiB), so X01 cannot have been decoded
        // (its truncation is found by walking the JPEG markers), and 300× below the 1.2 GB the
        // X04 bomb would take as RGB; a real photo of X01's size costs far more (printed above).
        assert!(probe_peak < 4 * MIB, "{name}: probing peaked at {probe_peak} bytes");
        assert!(process_peak < 4 * MIB, "{name}: processing peaked at {process_peak} bytes");
        assert!(process_peak * 4 < photo_peak, "{name}: {process_peak} bytes vs a real photo's {photo_peak}");
    }
    // The bomb's refusal carries its size, so the user knows why.
    let bomb = process(&corpus("X04_bomb_20000x20000.png"), &outputs, &limits).unwrap_err();
    assert!(matches!(bomb, EngineError::TooManyPixels { width: 20000, height: 20000, .. }), "{bomb:?}");

    // (Here, not in a test of its own: this binary runs one test at a time by having one.)
    // A job that starts by cropping a quarter of a 20 MP JPEG decodes only that quarter: its
    // peak stays under half of the whole photo's RGB (61 MB), which a full decode allocates.
    let l02 = corpus("L02_kleiber_6028x3391.jpg");
    let crop: OutputSpec = serde_json::from_str(
        r#"{"name":"c","ops":[{"op":"crop","x":1507,"y":847,"width":3014,"height":1696}],"format":"jpeg"}"#,
    )
    .unwrap();
    let (cropped, crop_peak) = peak_during(|| process(&l02, &[crop], &limits));
    let cropped = cropped.unwrap().remove(0);
    assert_eq!((cropped.width, cropped.height), (3014, 1696));
    let whole_rgb = 6028 * 3391 * 3;
    eprintln!(
        "L02 crop job: peak {:.1} MiB (whole photo as RGB: {:.1} MiB)",
        crop_peak as f64 / MIB as f64,
        whole_rgb as f64 / MIB as f64
    );
    assert!(crop_peak < whole_rgb / 2, "a crop job peaked at {crop_peak} bytes: it decoded the whole photo");

    amplification_is_refused_from_sizes_alone();
    outputs_leave_one_at_a_time();
}

/// Issue 12: a 1×1 PNG asking for ten 16384×16384 outputs (268 MP each, about 1 TB of stored
/// PNG in all) is refused before any of them is allocated, with the output's size in the error.
fn amplification_is_refused_from_sizes_alone() {
    let mut tiny = Vec::new();
    image::DynamicImage::new_rgb8(1, 1)
        .write_to(&mut std::io::Cursor::new(&mut tiny), image::ImageFormat::Png)
        .unwrap();
    let huge: OutputSpec = serde_json::from_str(
        r#"{"name":"x","ops":[{"op":"resize","width":16384,"height":16384,"fit":"fill","enlarge":true}],"format":"png","compression_level":0}"#,
    )
    .unwrap();
    let outputs: Vec<OutputSpec> = (0..10).map(|i| OutputSpec { name: format!("x{i}"), ..huge.clone() }).collect();
    let limits = Limits::default();
    let (result, peak) = peak_during(|| process(&tiny, &outputs, &limits));
    let err = result.unwrap_err();
    eprintln!("amplification (10 × 16384² from 1×1): {err}; peak {:.2} MiB", peak as f64 / MIB as f64);
    assert!(matches!(err, EngineError::OutputTooManyPixels { width: 16384, height: 16384, .. }), "{err:?}");
    assert_eq!(err.code(), "output_too_large");
    assert!(peak < MIB, "refusing the amplification peaked at {peak} bytes");

    // Each output within the per-image limit, together over the job's: refused before decoding.
    let big: OutputSpec = serde_json::from_str(
        r#"{"name":"x","ops":[{"op":"resize","width":10000,"height":9000,"fit":"fill","enlarge":true}],"format":"png"}"#,
    )
    .unwrap();
    let outputs: Vec<OutputSpec> = (0..4).map(|i| OutputSpec { name: format!("b{i}"), ..big.clone() }).collect();
    let (result, peak) = peak_during(|| process(&tiny, &outputs, &limits));
    let err = result.unwrap_err();
    assert!(matches!(err, EngineError::JobTooLarge { what: JobMeasure::Pixels, .. }), "{err:?}");
    assert!(peak < MIB, "refusing the job peaked at {peak} bytes");

    // A rotation's canvas is an intermediate image too: a 45° turn of a wide strip is refused
    // from its size.
    let strip = Limits { max_output_pixels: 100_000, ..Limits::default() };
    let mut wide = Vec::new();
    image::DynamicImage::new_rgb8(1000, 10)
        .write_to(&mut std::io::Cursor::new(&mut wide), image::ImageFormat::Png)
        .unwrap();
    let turn: OutputSpec =
        serde_json::from_str(r#"{"name":"t","ops":[{"op":"rotate","degrees":45}],"format":"png"}"#).unwrap();
    let err = process(&wide, &[turn], &strip).unwrap_err();
    assert!(matches!(err, EngineError::OutputTooManyPixels { .. }), "{err:?}");

    // Encoded bytes count too, as the outputs come.
    let stored: OutputSpec = serde_json::from_str(r#"{"name":"s","format":"png","compression_level":0}"#).unwrap();
    let few_bytes = Limits { max_job_output_bytes: 8_000_000, ..Limits::default() };
    let m03 = corpus("M03_storm_1920x1280_exif.jpg");
    let outputs = [stored.clone(), OutputSpec { name: "s2".into(), ..stored }];
    let err = process(&m03, &outputs, &few_bytes).unwrap_err();
    assert!(matches!(err, EngineError::JobTooLarge { what: JobMeasure::Bytes, .. }), "{err:?}");
    assert_eq!(err.code(), "job_too_large");
}

/// Outputs go to the caller as each is encoded: a job of ten full-size stored PNGs holds one
/// at a time when the caller stores (here: drops) each, not all ten.
fn outputs_leave_one_at_a_time() {
    let m03 = corpus("M03_storm_1920x1280_exif.jpg");
    let stored: OutputSpec = serde_json::from_str(r#"{"name":"s","format":"png","compression_level":0}"#).unwrap();
    let outputs: Vec<OutputSpec> = (0..10).map(|i| OutputSpec { name: format!("s{i}"), ..stored.clone() }).collect();
    let limits = Limits::default();
    let (all, peak_all) = peak_during(|| process(&m03, &outputs, &limits));
    let one = all.unwrap()[0].bytes.len();
    let mut seen = 0;
    let (streamed, peak_each) = peak_during(|| {
        process_each(&m03, &outputs, &limits, &Resources::new(), None, &mut |r| {
            seen += 1;
            drop(r);
            Ok(())
        })
    });
    streamed.unwrap();
    assert_eq!(seen, 10);
    eprintln!(
        "ten stored PNGs of M03 ({:.1} MiB each): peak {:.1} MiB kept, {:.1} MiB handed on one by one",
        one as f64 / MIB as f64,
        peak_all as f64 / MIB as f64,
        peak_each as f64 / MIB as f64
    );
    assert!(peak_all > 10 * one, "collecting keeps every output");
    // Measured: 39 MiB (the decode, its copy for the output, one PNG growing) against 159 MiB.
    assert!(peak_each * 3 < peak_all, "handing outputs on one by one still peaked at {peak_each} bytes");
}
