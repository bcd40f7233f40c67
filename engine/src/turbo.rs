//! libjpeg-turbo (the system's libturbojpeg, when present at build time): SIMD JPEG decode
//! with shrink-on-load (the DCT decodes at 1/2, 1/4 or 1/8 scale when an output needs no
//! more) and SIMD JPEG encode. Without the library the pure-Rust decoder/encoder are used.

#[cfg(turbojpeg)]
mod imp {
    use std::os::raw::{c_char, c_int, c_uchar, c_ulong, c_void};

    use image::{DynamicImage, GrayImage, RgbImage};

    use crate::encode::{Chroma, EncodeOptions};
    use crate::EngineError;

    type Handle = *mut c_void;
    const TJPF_RGB: c_int = 0;
    const TJPF_GRAY: c_int = 6;
    const TJSAMP_444: c_int = 0;
    const TJSAMP_422: c_int = 1;
    const TJSAMP_420: c_int = 2;
    const TJSAMP_GRAY: c_int = 3;
    const TJCS_GRAY: c_int = 2;
    const TJCS_CMYK: c_int = 3;
    const TJCS_YCCK: c_int = 4;
    const TJFLAG_ACCURATEDCT: c_int = 4096;
    const TJFLAG_PROGRESSIVE: c_int = 16384;

    #[link(name = "turbojpeg")]
    extern "C" {
        fn tjInitDecompress() -> Handle;
        fn tjInitCompress() -> Handle;
        fn tjDestroy(h: Handle) -> c_int;
        fn tjDecompressHeader3(
            h: Handle,
            buf: *const c_uchar,
            size: c_ulong,
            w: *mut c_int,
            hh: *mut c_int,
            subsamp: *mut c_int,
            cs: *mut c_int,
        ) -> c_int;
        fn tjDecompress2(
            h: Handle,
            buf: *const c_uchar,
            size: c_ulong,
            dst: *mut c_uchar,
            w: c_int,
            pitch: c_int,
            hh: c_int,
            pf: c_int,
            flags: c_int,
        ) -> c_int;
        fn tjCompress2(
            h: Handle,
            src: *const c_uchar,
            w: c_int,
            pitch: c_int,
            hh: c_int,
            pf: c_int,
            out: *mut *mut c_uchar,
            size: *mut c_ulong,
            subsamp: c_int,
            quality: c_int,
            flags: c_int,
        ) -> c_int;
        fn tjFree(buf: *mut c_uchar);
        fn tjGetErrorStr2(h: Handle) -> *const c_char;
    }

    struct Tj(Handle);
    impl Drop for Tj {
        fn drop(&mut self) {
            // SAFETY: created by tjInit*, destroyed once.
            unsafe { tjDestroy(self.0) };
        }
    }
    impl Tj {
        fn error(&self) -> String {
            // SAFETY: libturbojpeg returns a static or handle-owned NUL-terminated string.
            unsafe { std::ffi::CStr::from_ptr(tjGetErrorStr2(self.0)) }.to_string_lossy().into_owned()
        }
    }

    /// What the header says: size and whether the colour space is one we decode here.
    pub struct Header {
        pub width: u32,
        pub height: u32,
        pub gray: bool,
        pub cmyk: bool,
    }

    pub fn header(bytes: &[u8]) -> Option<Header> {
        // SAFETY: the handle is checked; out-pointers are valid locals.
        unsafe {
            let tj = Tj(tjInitDecompress());
            if tj.0.is_null() {
                return None;
            }
            let (mut w, mut h, mut ss, mut cs) = (0, 0, 0, 0);
            if tjDecompressHeader3(tj.0, bytes.as_ptr(), bytes.len() as c_ulong, &mut w, &mut h, &mut ss, &mut cs) != 0
            {
                return None;
            }
            Some(Header {
                width: w as u32,
                height: h as u32,
                gray: cs == TJCS_GRAY,
                cmyk: cs == TJCS_CMYK || cs == TJCS_YCCK,
            })
        }
    }

    /// The DCT scale denominator (1, 2, 4 or 8) that still gives at least `need` pixels.
    pub fn shrink_for(width: u32, height: u32, need: (u32, u32)) -> u32 {
        [8u32, 4, 2].into_iter().find(|d| width.div_ceil(*d) >= need.0 && height.div_ceil(*d) >= need.1).unwrap_or(1)
    }

    /// Decode at 1/`shrink` scale.
    pub fn decode(bytes: &[u8], head: &Header, shrink: u32) -> Result<DynamicImage, EngineError> {
        let (w, h) = (head.width.div_ceil(shrink), head.height.div_ceil(shrink));
        let (pf, channels) = if head.gray { (TJPF_GRAY, 1) } else { (TJPF_RGB, 3) };
        let mut buf = vec![0u8; w as usize * h as usize * channels];
        // SAFETY: `buf` holds exactly w × h × channels bytes; pitch 0 means tightly packed.
        unsafe {
            let tj = Tj(tjInitDecompress());
            if tj.0.is_null() {
                return Err(EngineError::Corrupt("cannot start the JPEG decoder".into()));
            }
            let rc = tjDecompress2(
                tj.0,
                bytes.as_ptr(),
                bytes.len() as c_ulong,
                buf.as_mut_ptr(),
                w as c_int,
                0,
                h as c_int,
                pf,
                TJFLAG_ACCURATEDCT,
            );
            if rc != 0 {
                return Err(EngineError::Corrupt(tj.error()));
            }
        }
        Ok(if head.gray {
            DynamicImage::ImageLuma8(GrayImage::from_raw(w, h, buf).expect("sized above"))
        } else {
            DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, buf).expect("sized above"))
        })
    }

    /// Encode 8-bit RGB or grey pixels.
    pub fn encode(img: &DynamicImage, opts: &EncodeOptions, quality: u8) -> Result<Vec<u8>, EngineError> {
        let (data, pf, subsamp) = match img {
            DynamicImage::ImageLuma8(g) => (g.as_raw().as_slice(), TJPF_GRAY, TJSAMP_GRAY),
            DynamicImage::ImageRgb8(rgb) => (
                rgb.as_raw().as_slice(),
                TJPF_RGB,
                match opts.chroma.unwrap_or(Chroma::S420) {
                    Chroma::S420 => TJSAMP_420,
                    Chroma::S422 => TJSAMP_422,
                    Chroma::S444 => TJSAMP_444,
                },
            ),
            _ => return Err(EngineError::Encode { format: "jpeg", detail: "expected 8-bit RGB or grey".into() }),
        };
        let flags = if opts.progressive { TJFLAG_PROGRESSIVE } else { 0 };
        // SAFETY: `data` is w × h × channels bytes; libturbojpeg allocates `out`, freed below.
        unsafe {
            let tj = Tj(tjInitCompress());
            let mut out: *mut c_uchar = std::ptr::null_mut();
            let mut size: c_ulong = 0;
            let rc = tjCompress2(
                tj.0,
                data.as_ptr(),
                img.width() as c_int,
                0,
                img.height() as c_int,
                pf,
                &mut out,
                &mut size,
                subsamp,
                quality as c_int,
                flags,
            );
            if rc != 0 {
                if !out.is_null() {
                    tjFree(out);
                }
                return Err(EngineError::Encode { format: "jpeg", detail: tj.error() });
            }
            let bytes = std::slice::from_raw_parts(out, size as usize).to_vec();
            tjFree(out);
            Ok(bytes)
        }
    }
}

#[cfg(turbojpeg)]
pub use imp::*;

/// Is libjpeg-turbo built in?
pub const AVAILABLE: bool = cfg!(turbojpeg);
