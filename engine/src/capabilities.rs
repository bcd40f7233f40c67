//! What this build of the engine can do. The system libraries are optional at build time
//! (engine/build.rs), so a binary built where one was missing quietly lacks a format or a fast
//! path; this says which, for start-up logs, `darkroom-processor --engine-info` and the
//! container test that checks an image has everything.

use serde::Serialize;

/// The optional parts compiled into this build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// HEIC/HEIF input through libheif.
    pub heif_input: bool,
    /// AVIF output through libheif (its AV1 encoder is checked when a job asks for it).
    pub avif_output: bool,
    /// libjpeg-turbo's TurboJPEG API: SIMD JPEG decode with shrink-on-load.
    pub turbojpeg: bool,
    /// The C encoder and transcoder over libjpeg (csrc/): optimised Huffman tables, full-size
    /// re-encode from DCT coefficients, crop-box decode.
    pub libjpeg: bool,
}

impl Capabilities {
    /// Every optional part is there.
    pub fn complete(&self) -> bool {
        self.heif_input && self.avif_output && self.turbojpeg && self.libjpeg
    }

    /// What is missing, as the Debian packages that bring it.
    pub fn missing(&self) -> Vec<&'static str> {
        let mut m = Vec::new();
        if !self.heif_input || !self.avif_output {
            m.push("libheif-dev");
        }
        if !self.turbojpeg {
            m.push("libturbojpeg0-dev");
        }
        if !self.libjpeg {
            m.push("libjpeg62-turbo-dev");
        }
        m
    }
}

/// This build's capabilities.
pub fn capabilities() -> Capabilities {
    Capabilities { heif_input: cfg!(heif), avif_output: cfg!(heif), turbojpeg: cfg!(turbojpeg), libjpeg: cfg!(libjpeg) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_names_the_package_for_each_absent_part() {
        let none = Capabilities { heif_input: false, avif_output: false, turbojpeg: false, libjpeg: false };
        assert!(!none.complete());
        assert_eq!(none.missing(), ["libheif-dev", "libturbojpeg0-dev", "libjpeg62-turbo-dev"]);
        let all = Capabilities { heif_input: true, avif_output: true, turbojpeg: true, libjpeg: true };
        assert!(all.complete());
        assert!(all.missing().is_empty());
    }
}
