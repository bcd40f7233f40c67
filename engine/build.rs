//! Link the optional system libraries when present: libheif (HEIC/HEIF input; without it
//! HEIC uploads get a clear "not supported by this build" error) and libturbojpeg (SIMD JPEG
//! with shrink-on-load; without it the pure-Rust codec is used). With libturbojpeg, csrc/ (the
//! JPEG encoder and transcoder, and the region decoder, over the classic libjpeg API) is compiled
//! with the system C compiler when libjpeg's headers are there (libjpeg62-turbo-dev).
fn main() {
    println!("cargo::rustc-check-cfg=cfg(heif)");
    println!("cargo::rustc-check-cfg=cfg(turbojpeg)");
    println!("cargo::rustc-check-cfg=cfg(libjpeg)");
    println!("cargo::rerun-if-env-changed=DARKROOM_NO_TURBOJPEG");
    if std::env::var_os("DARKROOM_NO_TURBOJPEG").is_none() {
        if pkg_config::Config::new().atleast_version("2.0").probe("libturbojpeg").is_ok() {
            println!("cargo::rustc-cfg=turbojpeg");
            build_jpeg_encoder();
        } else {
            println!("cargo::warning=libturbojpeg not found: pure-Rust JPEG codec, no shrink-on-load (apt-get install libturbojpeg0-dev)");
        }
    }
    println!("cargo::rerun-if-env-changed=DARKROOM_NO_HEIF");
    if std::env::var_os("DARKROOM_NO_HEIF").is_some() {
        return;
    }
    if pkg_config::Config::new().atleast_version("1.12").probe("libheif").is_ok() {
        println!("cargo::rustc-cfg=heif");
    } else {
        println!("cargo::warning=libheif not found: HEIC input disabled (apt-get install libheif-dev to enable)");
    }
}

/// Compile csrc/*.c into a static library and link it with libjpeg (libjpeg-turbo's
/// libjpeg.so.62). Uses the system C compiler (`$CC`, else `cc`) directly: no build crate.
fn build_jpeg_encoder() {
    use std::path::PathBuf;
    use std::process::Command;
    println!("cargo::rerun-if-changed=csrc");
    println!("cargo::rerun-if-env-changed=CC");
    println!("cargo::rerun-if-env-changed=DARKROOM_NO_LIBJPEG");
    if std::env::var_os("DARKROOM_NO_LIBJPEG").is_some() {
        return; // TurboJPEG's encoder, as without libjpeg's headers (to compare, or to test that build)
    }
    let Ok(lib) = pkg_config::Config::new().cargo_metadata(false).probe("libjpeg") else {
        println!("cargo::warning=libjpeg headers not found: JPEG output through TurboJPEG, no optimised Huffman (apt-get install libjpeg62-turbo-dev)");
        return;
    };
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let mut objects = Vec::new();
    for name in ["jpeg_encode", "jpeg_transcode", "jpeg_region"] {
        let obj = out.join(format!("{name}.o"));
        let mut cmd = Command::new(&cc);
        cmd.args(["-O2", "-fPIC", "-Wall", "-c"]).arg(format!("csrc/{name}.c")).arg("-o").arg(&obj);
        for dir in &lib.include_paths {
            cmd.arg("-I").arg(dir);
        }
        // libjpeg's headers are there: a failure here is a bug in csrc/, not a missing library.
        let ok = cmd.status().map(|s| s.success()).unwrap_or(false);
        assert!(ok, "could not compile csrc/{name}.c with {cc} (set DARKROOM_NO_LIBJPEG=1 to build without it)");
        objects.push(obj);
    }
    let archived = Command::new("ar")
        .arg("crs")
        .arg(out.join("libdarkroom_jpeg.a"))
        .args(&objects)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !archived {
        println!("cargo::warning=could not archive the JPEG C code with ar: JPEG output through TurboJPEG");
        return;
    }
    println!("cargo::rustc-link-search=native={}", out.display());
    println!("cargo::rustc-link-lib=static=darkroom_jpeg");
    for dir in &lib.link_paths {
        println!("cargo::rustc-link-search=native={}", dir.display());
    }
    println!("cargo::rustc-link-lib=jpeg");
    println!("cargo::rustc-cfg=libjpeg");
}
