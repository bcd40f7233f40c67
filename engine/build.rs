//! Link the optional system libraries when present: libheif (HEIC/HEIF input; without it
//! HEIC uploads get a clear "not supported by this build" error) and libturbojpeg (SIMD JPEG
//! with shrink-on-load; without it the pure-Rust codec is used).
fn main() {
    println!("cargo::rustc-check-cfg=cfg(heif)");
    println!("cargo::rustc-check-cfg=cfg(turbojpeg)");
    println!("cargo::rerun-if-env-changed=DARKROOM_NO_TURBOJPEG");
    if std::env::var_os("DARKROOM_NO_TURBOJPEG").is_none() {
        if pkg_config::Config::new().atleast_version("2.0").probe("libturbojpeg").is_ok() {
            println!("cargo::rustc-cfg=turbojpeg");
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
