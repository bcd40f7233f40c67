//! HEIC/HEIF input (iPhone photos) and AVIF output through the system's libheif (C API,
//! stable since 1.0). Only the container is parsed for [`dimensions`]; [`decode`] returns
//! upright RGB(A) pixels (libheif applies the container's rotation and mirroring);
//! [`encode_avif`] writes AV1 through whichever AV1 encoder libheif was built with (Debian's
//! 1.15 links libaom).
//!
//! libheif parses hostile uploads, so it is held to the engine's [`Limits`] by our own checks
//! (libheif 1.15 has no pixel or memory limit of its own, only a per-side one): uploads must
//! carry an HEVC brand ([`PHOTO_BRANDS`]; AVIF and other codecs are refused before libheif
//! decodes), libheif gets [`side_limit`], the header's coded (`ispe`) and displayed sizes are
//! checked against the pixel limit before decoding, and a decoded size other than the header's
//! is refused as corrupt (the codec's bitstream, not the header, decides what it decodes).

use image::DynamicImage;

use crate::{EngineError, Limits};

/// Brands that say a HEIF file's images are HEVC, the photos uploads may be: `heic`/`heix`
/// images, `heim`/`heis` multi-layer and scalable images, and `hevc`/`hevx` sequences (whose
/// primary image is still a photo), as phones and cameras write them. A file must list one as
/// its major or a compatible brand.
pub const PHOTO_BRANDS: [&[u8; 4]; 6] = [b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"];

/// AV1 brands: Darkroom writes AVIF and reads its own outputs back ([`decode`]), but does not
/// take AVIF uploads. libheif 1.15 hands AV1 to dav1d without a frame size limit (a small file
/// can make it allocate gigabytes before any size check of ours; libheif issues 1798 and 1799)
/// and its dav1d plugin leaks on malformed streams (libheif issue 1753, which our `heif` fuzz
/// target found again), and AVIF is not an input format Darkroom promises.
const AVIF_BRANDS: [&[u8; 4]; 2] = [b"avif", b"avis"];

/// Brands of the HEIF structure only (any codec inside): they make a file HEIF, but alone they
/// are not enough to be decoded (JPEG, VVC, uncompressed… images are refused with a clear error).
const STRUCTURAL_BRANDS: [&[u8; 4]; 3] = [b"mif1", b"msf1", b"miaf"];

/// Which codecs a decode accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(heif), allow(dead_code))]
enum Codecs {
    /// Uploads: HEVC photos ([`PHOTO_BRANDS`]).
    Hevc,
    /// Darkroom's own outputs read back (tests, tools): HEVC or AV1.
    HevcOrAv1,
}

/// The major brand and the compatible brands of an ISO-BMFF file's `ftyp` box, or `None` when
/// the file does not start with one.
fn brands(bytes: &[u8]) -> Option<impl Iterator<Item = &[u8]>> {
    if bytes.len() < 12 || &bytes[4..8] != b"ftyp" {
        return None;
    }
    let size = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let major = &bytes[8..12];
    // After the major brand: a 4-byte minor version, then the compatible brands.
    // (`size` and the file may both be shorter than that: no compatible brands then.)
    let end = size.min(bytes.len());
    let compatible = if end > 16 { &bytes[16..end] } else { &[][..] };
    Some(std::iter::once(major).chain(compatible.chunks_exact(4)))
}

fn listed(all: &[&[u8]], set: &[&[u8; 4]]) -> bool {
    all.iter().any(|b| set.iter().any(|brand| *b == &brand[..]))
}

/// Is this an ISO-BMFF file with a HEIF brand (HEVC, AV1 or structural)? Such files go to the
/// HEIF path, which refuses those without a [`PHOTO_BRANDS`] one ([`check_brand`]) with a clear
/// error instead of "not an image".
pub fn sniff(bytes: &[u8]) -> bool {
    brands(bytes).is_some_and(|mut all| {
        all.any(|b| {
            PHOTO_BRANDS.iter().chain(AVIF_BRANDS.iter()).chain(STRUCTURAL_BRANDS.iter()).any(|brand| b == &brand[..])
        })
    })
}

/// Refuse an upload that lists none of the [`PHOTO_BRANDS`] (an AVIF, or a HEIF file whose
/// images use another codec: libheif would hand it to whichever plugin it has, code Darkroom
/// does not need to expose).
pub fn check_brand(bytes: &[u8]) -> Result<(), EngineError> {
    check_brand_for(bytes, Codecs::Hevc)
}

fn check_brand_for(bytes: &[u8], codecs: Codecs) -> Result<(), EngineError> {
    let Some(all) = brands(bytes) else { return Err(EngineError::NotAnImage) };
    let all: Vec<&[u8]> = all.collect();
    if listed(&all, &PHOTO_BRANDS) || (codecs == Codecs::HevcOrAv1 && listed(&all, &AVIF_BRANDS)) {
        return Ok(());
    }
    if listed(&all, &AVIF_BRANDS) {
        return Err(EngineError::UnsupportedFormat(
            "AVIF (export the photo as JPEG, PNG, WebP or HEIC and upload that)".into(),
        ));
    }
    let printable = |b: &[u8]| -> String {
        b.iter().map(|&c| if c.is_ascii_graphic() || c == b' ' { c as char } else { '?' }).collect()
    };
    let names: Vec<String> = all.iter().take(8).map(|b| format!("'{}'", printable(b))).collect();
    Err(EngineError::UnsupportedFormat(format!(
        "HEIF ({} brands; Darkroom reads HEIC photos, brands heic, heix, heim, heis, hevc or hevx: export the photo as HEIC, JPEG or PNG)",
        names.join(", ")
    )))
}

/// The widest or tallest image (and grid tile) libheif may read from a file, whatever the pixel
/// limit: 65536, the most AVIF allows and more than any HEVC grid a camera writes. A smaller
/// pixel limit lowers it: no side of an image within the limit can be longer than the limit.
pub fn side_limit(limits: &Limits) -> u32 {
    limits.max_pixels.clamp(1, 65_536) as u32
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
        pub fn heif_context_set_maximum_image_size_limit(ctx: *mut Context, maximum_width: c_int);
        pub fn heif_image_handle_get_ispe_width(handle: *const Handle) -> c_int;
        pub fn heif_image_handle_get_ispe_height(handle: *const Handle) -> c_int;
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

        // Encoding (AVIF).
        pub fn heif_context_get_encoder_for_format(
            ctx: *mut Context,
            format: c_int,
            encoder: *mut *mut Encoder,
        ) -> HeifError;
        pub fn heif_encoder_release(encoder: *mut Encoder);
        pub fn heif_encoder_set_lossy_quality(encoder: *mut Encoder, quality: c_int) -> HeifError;
        pub fn heif_encoder_set_parameter_integer(
            encoder: *mut Encoder,
            name: *const c_char,
            value: c_int,
        ) -> HeifError;
        pub fn heif_image_create(
            width: c_int,
            height: c_int,
            colorspace: c_int,
            chroma: c_int,
            out: *mut *mut Image,
        ) -> HeifError;
        pub fn heif_image_add_plane(
            img: *mut Image,
            channel: c_int,
            width: c_int,
            height: c_int,
            bit_depth: c_int,
        ) -> HeifError;
        pub fn heif_image_get_plane(img: *mut Image, channel: c_int, stride: *mut c_int) -> *mut u8;
        pub fn heif_image_set_raw_color_profile(
            img: *mut Image,
            fourcc: *const c_char,
            data: *const c_void,
            size: usize,
        ) -> HeifError;
        pub fn heif_context_encode_image(
            ctx: *mut Context,
            img: *const Image,
            encoder: *mut Encoder,
            options: *const c_void,
            out_handle: *mut *mut Handle,
        ) -> HeifError;
        pub fn heif_context_write(ctx: *mut Context, writer: *mut Writer, userdata: *mut c_void) -> HeifError;
        pub fn heif_image_handle_get_raw_color_profile_size(handle: *const Handle) -> usize;
        pub fn heif_image_handle_get_raw_color_profile(handle: *const Handle, out: *mut c_void) -> HeifError;
    }

    pub enum Encoder {}
    pub const COMPRESSION_AV1: c_int = 4;

    #[repr(C)]
    pub struct Writer {
        pub writer_api_version: c_int,
        pub write: unsafe extern "C" fn(
            ctx: *mut Context,
            data: *const c_void,
            size: usize,
            userdata: *mut c_void,
        ) -> HeifError,
    }
}

#[cfg(heif)]
mod imp {
    use super::ffi;
    use super::*;
    use image::{RgbImage, RgbaImage};
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

    /// Parse the container with libheif's own size limit set from `limits` (it refuses, while
    /// reading, any image or grid tile whose `ispe` box declares a side over [`side_limit`]),
    /// after the brand check, and find the primary image.
    fn open(bytes: &[u8], limits: &Limits, codecs: Codecs) -> Result<Primary, EngineError> {
        check_brand_for(bytes, codecs)?;
        let side = side_limit(limits) as std::os::raw::c_int;
        // SAFETY: `bytes` outlives the context (it is dropped before we return pixels owned
        // by Rust); pointers come from libheif and are checked before use.
        unsafe {
            let ctx = ffi::heif_context_alloc();
            if ctx.is_null() {
                return Err(EngineError::Corrupt("HEIF: out of memory".into()));
            }
            let mut p = Primary { ctx, handle: std::ptr::null_mut() };
            ffi::heif_context_set_maximum_image_size_limit(ctx, side);
            check(ffi::heif_context_read_from_memory_without_copy(
                ctx,
                bytes.as_ptr().cast(),
                bytes.len(),
                std::ptr::null(),
            ))?;
            check(ffi::heif_context_get_primary_image_handle(ctx, &mut p.handle))?;
            if p.handle.is_null() {
                return Err(EngineError::Corrupt("HEIF: the file has no primary image".into()));
            }
            Ok(p)
        }
    }

    impl Primary {
        /// The primary image's size as displayed (after the container's crop and rotation).
        fn size(&self) -> (u32, u32) {
            // SAFETY: the handle is valid while `self` lives.
            let (w, h) = unsafe {
                (ffi::heif_image_handle_get_width(self.handle), ffi::heif_image_handle_get_height(self.handle))
            };
            (w.max(0) as u32, h.max(0) as u32)
        }

        /// Both sizes the header gives checked against `limits`: the coded size (`ispe`, what
        /// the decoder allocates before any crop) and the displayed one.
        fn check(&self, limits: &Limits) -> Result<(u32, u32), EngineError> {
            // SAFETY: the handle is valid while `self` lives.
            let (iw, ih) = unsafe {
                (
                    ffi::heif_image_handle_get_ispe_width(self.handle),
                    ffi::heif_image_handle_get_ispe_height(self.handle),
                )
            };
            // A grid or overlay may have no ispe of its own (0): its tiles were checked by
            // libheif's side limit and the canvas is the displayed size below.
            if iw > 0 && ih > 0 {
                limits.check_dimensions(iw as u32, ih as u32)?;
            }
            let (w, h) = self.size();
            limits.check_dimensions(w, h)?;
            Ok((w, h))
        }
    }

    pub fn dimensions_within(bytes: &[u8], limits: &Limits) -> Result<(u32, u32), EngineError> {
        open(bytes, limits, Codecs::Hevc)?.check(limits)
    }

    pub fn decode_within(bytes: &[u8], limits: &Limits) -> Result<DynamicImage, EngineError> {
        decode_for(bytes, limits, Codecs::Hevc)
    }

    pub fn decode(bytes: &[u8]) -> Result<DynamicImage, EngineError> {
        decode_for(bytes, &Limits::default(), Codecs::HevcOrAv1)
    }

    fn decode_for(bytes: &[u8], limits: &Limits, codecs: Codecs) -> Result<DynamicImage, EngineError> {
        let p = open(bytes, limits, codecs)?;
        let (hw, hh) = p.check(limits)?;
        // SAFETY: handle valid while `p` lives; the image is released below; the plane is
        // read within its stride × height before release.
        unsafe {
            let alpha = ffi::heif_image_handle_has_alpha_channel(p.handle) != 0;
            let chroma = if alpha { ffi::CHROMA_RGBA } else { ffi::CHROMA_RGB };
            let mut img = std::ptr::null_mut();
            check(ffi::heif_decode_image(p.handle, &mut img, ffi::COLORSPACE_RGB, chroma, std::ptr::null()))?;
            if img.is_null() {
                return Err(EngineError::Corrupt("HEIF: the decoder returned no image".into()));
            }
            let w = ffi::heif_image_get_width(img, ffi::CHANNEL_INTERLEAVED).max(0) as usize;
            let h = ffi::heif_image_get_height(img, ffi::CHANNEL_INTERLEAVED).max(0) as usize;
            // The codec's own bitstream (an HEVC or AV1 sequence header) says how big the
            // picture is, and nothing in libheif 1.15 holds it to the container's header, which
            // is what the limits were checked on: a mismatch is a lie in the file.
            if (w, h) != (hw as usize, hh as usize) {
                ffi::heif_image_release(img);
                return Err(EngineError::Corrupt(format!(
                    "HEIF: the image decodes to {w}×{h} pixels but its header says {hw}×{hh}"
                )));
            }
            let mut stride = 0;
            let plane = ffi::heif_image_get_plane_readonly(img, ffi::CHANNEL_INTERLEAVED, &mut stride);
            let bpp = if alpha { 4 } else { 3 };
            if plane.is_null() || stride < 0 || (stride as usize) < w * bpp {
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

    /// Frees what libheif allocated for one encode, whatever path returns.
    struct Encoding {
        ctx: *mut ffi::Context,
        encoder: *mut ffi::Encoder,
        image: *mut ffi::Image,
    }

    impl Drop for Encoding {
        fn drop(&mut self) {
            // SAFETY: each pointer is null or was allocated by libheif and is released once here.
            unsafe {
                if !self.image.is_null() {
                    ffi::heif_image_release(self.image);
                }
                if !self.encoder.is_null() {
                    ffi::heif_encoder_release(self.encoder);
                }
                if !self.ctx.is_null() {
                    ffi::heif_context_free(self.ctx);
                }
            }
        }
    }

    unsafe extern "C" fn write_to_vec(
        _ctx: *mut ffi::Context,
        data: *const std::os::raw::c_void,
        size: usize,
        userdata: *mut std::os::raw::c_void,
    ) -> ffi::HeifError {
        // SAFETY: `userdata` is the `Vec<u8>` passed to heif_context_write below and `data`
        // points to `size` bytes for the duration of this call.
        let out = &mut *(userdata as *mut Vec<u8>);
        out.extend_from_slice(std::slice::from_raw_parts(data as *const u8, size));
        ffi::HeifError { code: 0, subcode: 0, message: c"Success".as_ptr() }
    }

    pub fn encode_avif(img: &DynamicImage, quality: u8, speed: u8, icc: Option<&[u8]>) -> Result<Vec<u8>, EngineError> {
        let fail = |detail: String| EngineError::Encode { format: "avif", detail };
        let check = |e: ffi::HeifError| {
            self::check(e).map_err(|e| match e {
                EngineError::Corrupt(m) => fail(m),
                other => other,
            })
        };
        let (w, h) = (img.width(), img.height());
        if w > 65_536 || h > 65_536 {
            return Err(fail("AVIF is limited to 65536 pixels per side".into()));
        }
        let alpha = img.color().has_alpha();
        let pixels = if alpha { img.to_rgba8().into_raw() } else { img.to_rgb8().into_raw() };
        let bpp = if alpha { 4 } else { 3 };
        // SAFETY: every pointer comes from libheif, is checked before use and freed by
        // `Encoding`; the plane is written within its stride × height.
        unsafe {
            let mut e =
                Encoding { ctx: ffi::heif_context_alloc(), encoder: std::ptr::null_mut(), image: std::ptr::null_mut() };
            if e.ctx.is_null() {
                return Err(fail("out of memory".into()));
            }
            if ffi::heif_context_get_encoder_for_format(e.ctx, ffi::COMPRESSION_AV1, &mut e.encoder).code != 0
                || e.encoder.is_null()
            {
                return Err(fail(
                    "this server's libheif has no AV1 encoder (it needs libaom, rav1e or SVT-AV1)".into(),
                ));
            }
            check(ffi::heif_encoder_set_lossy_quality(e.encoder, quality.clamp(1, 100) as i32))?;
            // libaom's "speed" (cpu-used) is 0–9; other encoders may not know it, which is fine.
            let _ = ffi::heif_encoder_set_parameter_integer(e.encoder, c"speed".as_ptr(), speed.min(9) as i32);
            let chroma = if alpha { ffi::CHROMA_RGBA } else { ffi::CHROMA_RGB };
            check(ffi::heif_image_create(w as i32, h as i32, ffi::COLORSPACE_RGB, chroma, &mut e.image))?;
            check(ffi::heif_image_add_plane(e.image, ffi::CHANNEL_INTERLEAVED, w as i32, h as i32, 8))?;
            let mut stride = 0;
            let plane = ffi::heif_image_get_plane(e.image, ffi::CHANNEL_INTERLEAVED, &mut stride);
            let row = w as usize * bpp;
            if plane.is_null() || (stride as usize) < row {
                return Err(fail("libheif gave no pixel buffer".into()));
            }
            for (y, src) in pixels.chunks_exact(row).enumerate() {
                std::ptr::copy_nonoverlapping(src.as_ptr(), plane.add(y * stride as usize), row);
            }
            if let Some(profile) = icc {
                check(ffi::heif_image_set_raw_color_profile(
                    e.image,
                    c"prof".as_ptr(),
                    profile.as_ptr().cast(),
                    profile.len(),
                ))?;
            }
            check(ffi::heif_context_encode_image(e.ctx, e.image, e.encoder, std::ptr::null(), std::ptr::null_mut()))?;
            let mut out: Vec<u8> = Vec::new();
            let mut writer = ffi::Writer { writer_api_version: 1, write: write_to_vec };
            check(ffi::heif_context_write(e.ctx, &mut writer, (&mut out as *mut Vec<u8>).cast()))?;
            Ok(out)
        }
    }

    /// The raw ICC profile of the primary image, if it has one (not an nclx description).
    pub fn icc_profile(bytes: &[u8]) -> Option<Vec<u8>> {
        let p = open(bytes, &Limits::default(), Codecs::HevcOrAv1).ok()?;
        // SAFETY: the handle is valid while `p` lives; the buffer has the size libheif reports.
        unsafe {
            let size = ffi::heif_image_handle_get_raw_color_profile_size(p.handle);
            if size == 0 {
                return None;
            }
            let mut buf = vec![0u8; size];
            (ffi::heif_image_handle_get_raw_color_profile(p.handle, buf.as_mut_ptr().cast()).code == 0).then_some(buf)
        }
    }
}

#[cfg(not(heif))]
mod imp {
    use super::*;

    fn missing() -> EngineError {
        EngineError::UnsupportedFormat("HEIC/HEIF (this build has no libheif; install libheif-dev and rebuild)".into())
    }
    pub fn dimensions_within(bytes: &[u8], _: &Limits) -> Result<(u32, u32), EngineError> {
        check_brand(bytes)?;
        Err(missing())
    }
    pub fn decode_within(bytes: &[u8], _: &Limits) -> Result<DynamicImage, EngineError> {
        check_brand(bytes)?;
        Err(missing())
    }
    pub fn decode(_: &[u8]) -> Result<DynamicImage, EngineError> {
        Err(missing())
    }
    pub fn encode_avif(_: &DynamicImage, _: u8, _: u8, _: Option<&[u8]>) -> Result<Vec<u8>, EngineError> {
        Err(EngineError::Encode {
            format: "avif",
            detail: "AVIF output needs libheif, and this server was built without it (install libheif-dev and rebuild)"
                .into(),
        })
    }
    pub fn icc_profile(_: &[u8]) -> Option<Vec<u8>> {
        None
    }
}

/// Can this build write AVIF? (libheif present; whether it has an AV1 encoder is only known
/// when encoding.)
pub const AVIF_OUTPUT: bool = cfg!(heif);

/// [`decode`]: the primary image of a HEIC upload or of Darkroom's own AVIF output, within the
/// default [`Limits`] (for reading outputs back: tests, tools). [`decode_within`]: an upload, HEIC
/// only, within `limits`. Both check the brand, give libheif a side limit ([`side_limit`]),
/// check the header's coded and displayed sizes against the limits before decoding, and refuse a
/// decoded size other than the header's as corrupt. [`dimensions_within`]: the displayed size of
/// an upload, checked the same way, without decoding. [`icc_profile`]: the raw ICC profile, if any.
pub use imp::{decode, decode_within, dimensions_within, encode_avif, icc_profile};

/// The displayed size of the primary image, checked against the default [`Limits`]
/// (see [`dimensions_within`]).
pub fn dimensions(bytes: &[u8]) -> Result<(u32, u32), EngineError> {
    dimensions_within(bytes, &Limits::default())
}
