//! HEIC/HEIF input (iPhone photos) through the system's libheif (C API, stable since 1.0).
//! Only the container is parsed for [`dimensions`]; [`decode`] returns upright RGB(A) pixels
//! (libheif applies the container's rotation and mirroring).

use image::{DynamicImage, RgbImage, RgbaImage};

use crate::EngineError;

/// Is this an ISO-BMFF file with a HEIF brand?
pub fn sniff(bytes: &[u8]) -> bool {
    if bytes.len() < 12 || &bytes[4..8] != b"ftyp" {
        return false;
    }
    const BRANDS: [&[u8; 4]; 8] = [b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"];
    let size = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let ftyp = &bytes[8..size.clamp(12, bytes.len())];
    ftyp.chunks_exact(4).any(|b| BRANDS.iter().any(|brand| b == &brand[..]))
}

#[cfg(heif)]
mod ffi {
    use std::os::raw::{c_char, c_int, c_void};

    #[repr(C)]
    pub struct HeifError {
        pub code: c_int,
        pub subcode: c_int,
        pub message: *const c_char,
    }
    pub enum Context {}
    pub enum Handle {}
    pub enum Image {}

    pub const COLORSPACE_RGB: c_int = 1;
    pub const CHROMA_RGB: c_int = 10;
    pub const CHROMA_RGBA: c_int = 11;
    pub const CHANNEL_INTERLEAVED: c_int = 10;

    #[link(name = "heif")]
    extern "C" {
        pub fn heif_context_alloc() -> *mut Context;
        pub fn heif_context_free(ctx: *mut Context);
        pub fn heif_context_read_from_memory_without_copy(
            ctx: *mut Context,
            mem: *const c_void,
            size: usize,
            options: *const c_void,
        ) -> HeifError;
        pub fn heif_context_get_primary_image_handle(ctx: *mut Context, handle: *mut *mut Handle) -> HeifError;
        pub fn heif_image_handle_release(handle: *const Handle);
        pub fn heif_image_handle_get_width(handle: *const Handle) -> c_int;
        pub fn heif_image_handle_get_height(handle: *const Handle) -> c_int;
        pub fn heif_image_handle_has_alpha_channel(handle: *const Handle) -> c_int;
        pub fn heif_decode_image(
            handle: *const Handle,
            out: *mut *mut Image,
            colorspace: c_int,
            chroma: c_int,
            options: *const c_void,
        ) -> HeifError;
        pub fn heif_image_get_width(img: *const Image, channel: c_int) -> c_int;
        pub fn heif_image_get_height(img: *const Image, channel: c_int) -> c_int;
        pub fn heif_image_get_plane_readonly(img: *const Image, channel: c_int, stride: *mut c_int) -> *const u8;
        pub fn heif_image_release(img: *const Image);
    }
}

#[cfg(heif)]
mod imp {
    use super::ffi;
    use super::*;
    use std::ffi::CStr;

    fn check(e: ffi::HeifError) -> Result<(), EngineError> {
        if e.code == 0 {
            return Ok(());
        }
        let msg = if e.message.is_null() {
            format!("libheif error {}", e.code)
        } else {
            // SAFETY: libheif documents `message` as a valid NUL-terminated string.
            unsafe { CStr::from_ptr(e.message) }.to_string_lossy().into_owned()
        };
        Err(EngineError::Corrupt(format!("HEIF: {msg}")))
    }

    /// The primary image of a parsed container; frees everything on drop.
    struct Primary {
        ctx: *mut ffi::Context,
        handle: *mut ffi::Handle,
    }

    impl Drop for Primary {
        fn drop(&mut self) {
            // SAFETY: both were allocated by libheif and are released exactly once here.
            unsafe {
                if !self.handle.is_null() {
                    ffi::heif_image_handle_release(self.handle);
                }
                ffi::heif_context_free(self.ctx);
            }
        }
    }

    fn open(bytes: &[u8]) -> Result<Primary, EngineError> {
        // SAFETY: `bytes` outlives the context (it is dropped before we return pixels owned
        // by Rust); pointers come from libheif and are checked before use.
        unsafe {
            let ctx = ffi::heif_context_alloc();
            if ctx.is_null() {
                return Err(EngineError::Corrupt("HEIF: out of memory".into()));
            }
            let mut p = Primary { ctx, handle: std::ptr::null_mut() };
            check(ffi::heif_context_read_from_memory_without_copy(
                ctx,
                bytes.as_ptr().cast(),
                bytes.len(),
                std::ptr::null(),
            ))?;
            check(ffi::heif_context_get_primary_image_handle(ctx, &mut p.handle))?;
            Ok(p)
        }
    }

    pub fn dimensions(bytes: &[u8]) -> Result<(u32, u32), EngineError> {
        let p = open(bytes)?;
        // SAFETY: the handle is valid while `p` lives.
        let (w, h) =
            unsafe { (ffi::heif_image_handle_get_width(p.handle), ffi::heif_image_handle_get_height(p.handle)) };
        Ok((w.max(0) as u32, h.max(0) as u32))
    }

    pub fn decode(bytes: &[u8]) -> Result<DynamicImage, EngineError> {
        let p = open(bytes)?;
        // SAFETY: handle valid while `p` lives; the image is released below; the plane is
        // read within its stride × height before release.
        unsafe {
            let alpha = ffi::heif_image_handle_has_alpha_channel(p.handle) != 0;
            let chroma = if alpha { ffi::CHROMA_RGBA } else { ffi::CHROMA_RGB };
            let mut img = std::ptr::null_mut();
            check(ffi::heif_decode_image(p.handle, &mut img, ffi::COLORSPACE_RGB, chroma, std::ptr::null()))?;
            let w = ffi::heif_image_get_width(img, ffi::CHANNEL_INTERLEAVED).max(0) as usize;
            let h = ffi::heif_image_get_height(img, ffi::CHANNEL_INTERLEAVED).max(0) as usize;
            let mut stride = 0;
            let plane = ffi::heif_image_get_plane_readonly(img, ffi::CHANNEL_INTERLEAVED, &mut stride);
            let bpp = if alpha { 4 } else { 3 };
            if plane.is_null() || (stride as usize) < w * bpp {
                ffi::heif_image_release(img);
                return Err(EngineError::Corrupt("HEIF: the decoder returned no pixels".into()));
            }
            let mut pixels = Vec::with_capacity(w * h * bpp);
            for row in 0..h {
                let start = plane.add(row * stride as usize);
                pixels.extend_from_slice(std::slice::from_raw_parts(start, w * bpp));
            }
            ffi::heif_image_release(img);
            let (w, h) = (w as u32, h as u32);
            Ok(if alpha {
                DynamicImage::ImageRgba8(RgbaImage::from_raw(w, h, pixels).expect("sized above"))
            } else {
                DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, pixels).expect("sized above"))
            })
        }
    }
}

#[cfg(not(heif))]
mod imp {
    use super::*;

    fn missing() -> EngineError {
        EngineError::UnsupportedFormat("HEIC/HEIF (this build has no libheif; install libheif-dev and rebuild)".into())
    }
    pub fn dimensions(_: &[u8]) -> Result<(u32, u32), EngineError> {
        Err(missing())
    }
    pub fn decode(_: &[u8]) -> Result<DynamicImage, EngineError> {
        Err(missing())
    }
}

pub use imp::{decode, dimensions};
