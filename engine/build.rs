//! Link libheif (HEIC/HEIF input) when the system has it. Without it the engine still
//! builds, and HEIC uploads get a clear "not supported by this build" error.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(heif)");
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
