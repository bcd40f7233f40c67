//! Link the optional system libraries when present: libheif (HEIC/HEIF input; without it
//! HEIC uploads get a clear "not supported by this build" error) and libturbojpeg (SIMD JPEG
//! with shrink-on-load; without it the pure-Rust codec is used). With libturbojpeg, csrc/ (the
//! JPEG encoder and transcoder, and the region decoder, over the classic libjpeg API) is compiled
//! with the system C compiler when libjpeg's headers are there (libjpeg62-turbo-dev).
//!
//! What was found is remembered by cargo, so the script also tells cargo to run it again when
//! a library appears or disappears: it watches every folder pkg-config searches (installing or
//! removing a `-dev` package adds or removes a `.pc` file there, which changes the folder) and
//! the environment variables that steer pkg-config. Without that, a build made before
//! `apt-get install libheif-dev` kept "no libheif" until `cargo clean`.
//!
//! Under AddressSanitizer (the fuzz targets: cargo-fuzz passes `-Zsanitizer=address` to rustc)
//! csrc/ is compiled with `-fsanitize=address` too, so a heap error in our C code (an overflow,
//! a use after free, a double free such as `dr_dest` once had) stops the fuzzer with a report
//! instead of passing silently. The system libraries (libjpeg-turbo, libheif and its codecs)
//! stay uninstrumented: ASan sees their heap through its malloc, not their reads and writes.
fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    watch_pkg_config_dirs();
    println!("cargo::rustc-check-cfg=cfg(heif)");
    println!("cargo::rustc-check-cfg=cfg(turbojpeg)");
    println!("cargo::rustc-check-cfg=cfg(libjpeg)");
    // Set by the Dockerfile: an image must never silently lose a fast path because its builder
    // lacked a header, so there a missing library stops the build instead of warning.
    println!("cargo::rerun-if-env-changed=DARKROOM_REQUIRE_SYSTEM_LIBS");
    let require = std::env::var_os("DARKROOM_REQUIRE_SYSTEM_LIBS").is_some_and(|v| v != "0");
    let missing = |what: &str| {
        if require {
            panic!("DARKROOM_REQUIRE_SYSTEM_LIBS is set and {what} was not found by pkg-config");
        }
    };
    println!("cargo::rerun-if-env-changed=DARKROOM_NO_TURBOJPEG");
    if std::env::var_os("DARKROOM_NO_TURBOJPEG").is_none() {
        if pkg_config::Config::new().atleast_version("2.0").probe("libturbojpeg").is_ok() {
            println!("cargo::rustc-cfg=turbojpeg");
            if !build_jpeg_encoder() {
                missing("libjpeg's headers (libjpeg62-turbo-dev)");
            }
        } else {
            missing("libturbojpeg (libturbojpeg0-dev)");
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
        missing("libheif (libheif-dev)");
        println!("cargo::warning=libheif not found: HEIC input disabled (apt-get install libheif-dev to enable)");
    }
}

/// Ask cargo to rerun this script when any folder pkg-config looks in changes. Only folders
/// that exist are named: cargo reruns on every build for a path that is missing.
fn watch_pkg_config_dirs() {
    for var in ["PKG_CONFIG_PATH", "PKG_CONFIG_LIBDIR", "PKG_CONFIG_SYSROOT_DIR", "PKG_CONFIG"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    let mut dirs: Vec<std::path::PathBuf> = Vec::new();
    for var in ["PKG_CONFIG_PATH", "PKG_CONFIG_LIBDIR"] {
        if let Some(v) = std::env::var_os(var) {
            dirs.extend(std::env::split_paths(&v));
        }
    }
    let pkg_config = std::env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into());
    match std::process::Command::new(&pkg_config).args(["--variable", "pc_path", "pkg-config"]).output() {
        Ok(out) if out.status.success() => {
            dirs.extend(std::env::split_paths(String::from_utf8_lossy(&out.stdout).trim()));
        }
        _ => {
            // No pkg-config yet: watch where Debian's would look, and /usr/bin (flat; it
            // changes when pkg-config is installed), so installing it reruns this script.
            println!("cargo::warning=pkg-config not found: optional libraries (libheif, libjpeg-turbo) not probed (apt-get install pkg-config)");
            for d in ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib", "/usr/share"] {
                dirs.push(std::path::Path::new(d).join("pkgconfig"));
            }
            dirs.push("/usr/bin".into());
        }
    }
    dirs.sort();
    dirs.dedup();
    for d in dirs.iter().filter(|d| d.is_dir()) {
        // A folder: cargo compares the newest modification time in it (the folder's own
        // included, which changes when a file is added or removed).
        println!("cargo::rerun-if-changed={}", d.display());
    }
}

/// Is rustc building this crate with AddressSanitizer? Cargo gives build scripts the target's
/// cfg (`CARGO_CFG_SANITIZE=address` under `-Zsanitizer=address`) and the flags themselves
/// (`CARGO_ENCODED_RUSTFLAGS`, separated by 0x1f); either one is enough.
fn address_sanitizer() -> bool {
    println!("cargo::rerun-if-env-changed=CARGO_CFG_SANITIZE");
    println!("cargo::rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    let cfg = std::env::var("CARGO_CFG_SANITIZE").unwrap_or_default();
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let asan = cfg.split(',').any(|s| s == "address")
        || flags.split('\x1f').any(|f| f == "-Zsanitizer=address" || f == "sanitizer=address");
    if asan {
        println!("cargo::warning=AddressSanitizer build: csrc/ compiled with -fsanitize=address (CARGO_CFG_SANITIZE={cfg:?})");
    }
    asan
}

/// Compile csrc/*.c into a static library and link it with libjpeg (libjpeg-turbo's
/// libjpeg.so.62). Uses the system C compiler (`$CC`, else `cc`) directly: no build crate.
/// Returns whether it did.
fn build_jpeg_encoder() -> bool {
    use std::path::PathBuf;
    use std::process::Command;
    println!("cargo::rerun-if-changed=csrc");
    println!("cargo::rerun-if-env-changed=CC");
    println!("cargo::rerun-if-env-changed=DARKROOM_NO_LIBJPEG");
    if std::env::var_os("DARKROOM_NO_LIBJPEG").is_some() {
        return true; // TurboJPEG's encoder, as without libjpeg's headers (to compare, or to test that build)
    }
    let Ok(lib) = pkg_config::Config::new().cargo_metadata(false).probe("libjpeg") else {
        println!("cargo::warning=libjpeg headers not found: JPEG output through TurboJPEG, no optimised Huffman (apt-get install libjpeg62-turbo-dev)");
        return false;
    };
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let asan = address_sanitizer();
    let mut objects = Vec::new();
    for name in ["jpeg_encode", "jpeg_transcode", "jpeg_region"] {
        let obj = out.join(format!("{name}.o"));
        let mut cmd = Command::new(&cc);
        cmd.args(["-O2", "-fPIC", "-Wall", "-c"]).arg(format!("csrc/{name}.c")).arg("-o").arg(&obj);
        if asan {
            // The ASan runtime comes with rustc's (linked into the fuzz target); the C compiler
            // only instruments. Frame pointers give the reports whole stacks.
            cmd.args(["-fsanitize=address", "-fno-omit-frame-pointer", "-g"]);
        }
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
        return false;
    }
    println!("cargo::rustc-link-search=native={}", out.display());
    println!("cargo::rustc-link-lib=static=darkroom_jpeg");
    for dir in &lib.link_paths {
        println!("cargo::rustc-link-search=native={}", dir.display());
    }
    println!("cargo::rustc-link-lib=jpeg");
    println!("cargo::rustc-cfg=libjpeg");
    true
}
