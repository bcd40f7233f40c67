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

// The brands, the `ftyp` reader, the sniff and the side limit are the protocol's (the web app
// probes uploads with the same code); this module adds what libheif needs.
use darkroom_protocol::probe::heif::{brands, listed, AVIF_BRANDS};
pub use darkroom_protocol::probe::heif::{side_limit, sniff, PHOTO_BRANDS};

/// Which codecs a decode accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(heif), allow(dead_code))]
enum Codecs {
    /// Uploads: HEVC photos ([`PHOTO_BRANDS`]).
    Hevc,
    /// Darkroom's own outputs read back (tests, tools): HEVC or AV1.
    HevcOrAv1,
}

/// Refuse an upload that lists none of the [`PHOTO_BRANDS`] (an AVIF, or a HEIF file whose
/// images use another codec: libheif would hand it to whichever plugin it has, code Darkroom
/// does not need to expose).
pub fn check_brand(bytes: &[u8]) -> Result<(), EngineError> {
    check_brand_for(bytes, Codecs::Hevc)
}

fn check_brand_for(bytes: &[u8], codecs: Codecs) -> Result<(), EngineError> {
    // Reading Darkroom's own AVIF back is the one thing uploads may not do; the rest (and every
    // refusal's wording) is the protocol's upload check.
    if codecs == Codecs::HevcOrAv1 {
        if let Some(all) = brands(bytes) {
            if listed(&all.collect::<Vec<_>>(), &AVIF_BRANDS) {
                return Ok(());
            }
        }
    }
    Ok(darkroom_protocol::probe::heif::check_brand(bytes)?)
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
    use std::ffi::CStr;
    use std::marker::PhantomData;
    use std::os::raw::{c_int, c_void};

    use image::{RgbImage, RgbaImage};

    use super::ffi;
    use super::*;

    fn check(e: ffi::HeifError) -> Result<(), EngineError> {
        if e.code == 0 {
            return Ok(());
        }
        let msg = if e.message.is_null() {
            format!("libheif error {}", e.code)
        } else {
            // SAFETY: libheif documents `message` as a valid NUL-terminated string (static, or
            // owned by the context, which outlives this call).
            unsafe { CStr::from_ptr(e.message) }.to_string_lossy().into_owned()
        };
        Err(EngineError::Corrupt(format!("HEIF: {msg}")))
    }

    /// The primary image of a parsed container; frees everything on drop. libheif reads the
    /// file in place (no copy), so this borrows its bytes for as long as it lives.
    struct Primary<'a> {
        ctx: *mut ffi::Context,
        handle: *mut ffi::Handle,
        _bytes: PhantomData<&'a [u8]>,
    }

    impl Drop for Primary<'_> {
        fn drop(&mut self) {
            if !self.handle.is_null() {
                // SAFETY: the handle came from heif_context_get_primary_image_handle and is
                // released once, here, before its context.
                unsafe { ffi::heif_image_handle_release(self.handle) };
            }
            // SAFETY: the context came from heif_context_alloc (never null: `open` refuses
            // that) and is freed once, here, after its handle.
            unsafe { ffi::heif_context_free(self.ctx) };
        }
    }

    /// Parse the container with libheif's own size limit set from `limits` (it refuses, while
    /// reading, any image or grid tile whose `ispe` box declares a side over [`side_limit`]),
    /// after the brand check, and find the primary image.
    fn open<'a>(bytes: &'a [u8], limits: &Limits, codecs: Codecs) -> Result<Primary<'a>, EngineError> {
        check_brand_for(bytes, codecs)?;
        let side = side_limit(limits) as c_int;
        // SAFETY: takes nothing; returns a new context or null.
        let ctx = unsafe { ffi::heif_context_alloc() };
        if ctx.is_null() {
            return Err(EngineError::Corrupt("HEIF: out of memory".into()));
        }
        let mut p = Primary { ctx, handle: std::ptr::null_mut(), _bytes: PhantomData };
        // SAFETY: the context is live (owned by `p`).
        unsafe { ffi::heif_context_set_maximum_image_size_limit(ctx, side) };
        // SAFETY: the context is live; `bytes` is readable for its length and outlives the
        // context, which reads it without a copy (`p` borrows it for its whole life).
        check(unsafe {
            ffi::heif_context_read_from_memory_without_copy(ctx, bytes.as_ptr().cast(), bytes.len(), std::ptr::null())
        })?;
        // SAFETY: the context is live and has read the file; `p.handle` is a valid out-pointer
        // and what libheif puts there is released by `p`.
        check(unsafe { ffi::heif_context_get_primary_image_handle(ctx, &mut p.handle) })?;
        if p.handle.is_null() {
            return Err(EngineError::Corrupt("HEIF: the file has no primary image".into()));
        }
        Ok(p)
    }

    impl Primary<'_> {
        /// The primary image's size as displayed (after the container's crop and rotation).
        fn size(&self) -> (u32, u32) {
            // SAFETY: the handle is valid (not null, checked in `open`) while `self` lives.
            let w = unsafe { ffi::heif_image_handle_get_width(self.handle) };
            // SAFETY: as above.
            let h = unsafe { ffi::heif_image_handle_get_height(self.handle) };
            (w.max(0) as u32, h.max(0) as u32)
        }

        /// Both sizes the header gives checked against `limits`: the coded size (`ispe`, what
        /// the decoder allocates before any crop) and the displayed one.
        fn check(&self, limits: &Limits) -> Result<(u32, u32), EngineError> {
            // SAFETY: the handle is valid (not null, checked in `open`) while `self` lives.
            let iw = unsafe { ffi::heif_image_handle_get_ispe_width(self.handle) };
            // SAFETY: as above.
            let ih = unsafe { ffi::heif_image_handle_get_ispe_height(self.handle) };
            // A grid or overlay may have no ispe of its own (0): its tiles were checked by
            // libheif's side limit and the canvas is the displayed size below.
            if iw > 0 && ih > 0 {
                limits.check_dimensions(iw as u32, ih as u32)?;
            }
            let (w, h) = self.size();
            limits.check_dimensions(w, h)?;
            Ok((w, h))
        }

        fn has_alpha(&self) -> bool {
            // SAFETY: the handle is valid (not null, checked in `open`) while `self` lives.
            unsafe { ffi::heif_image_handle_has_alpha_channel(self.handle) != 0 }
        }

        /// Decode to interleaved 8-bit RGB, or RGBA when `alpha`.
        fn decode(&self, alpha: bool) -> Result<HeifImage, EngineError> {
            let chroma = if alpha { ffi::CHROMA_RGBA } else { ffi::CHROMA_RGB };
            let mut img = HeifImage(std::ptr::null_mut());
            // SAFETY: the handle is valid while `self` lives; `img.0` is a valid out-pointer and
            // what libheif puts there is released by `img`.
            check(unsafe {
                ffi::heif_decode_image(self.handle, &mut img.0, ffi::COLORSPACE_RGB, chroma, std::ptr::null())
            })?;
            if img.0.is_null() {
                return Err(EngineError::Corrupt("HEIF: the decoder returned no image".into()));
            }
            Ok(img)
        }
    }

    /// A decoded image (null until the decoder fills it in), released on drop.
    struct HeifImage(*mut ffi::Image);

    impl Drop for HeifImage {
        fn drop(&mut self) {
            if !self.0.is_null() {
                // SAFETY: libheif made it; released once, here.
                unsafe { ffi::heif_image_release(self.0) };
            }
        }
    }

    impl HeifImage {
        /// The size of its interleaved plane.
        fn size(&self) -> (usize, usize) {
            // SAFETY: the image is live (not null: `Primary::decode` checks) while `self` lives.
            let w = unsafe { ffi::heif_image_get_width(self.0, ffi::CHANNEL_INTERLEAVED) };
            // SAFETY: as above.
            let h = unsafe { ffi::heif_image_get_height(self.0, ffi::CHANNEL_INTERLEAVED) };
            (w.max(0) as usize, h.max(0) as usize)
        }

        /// Its `w` × `h` pixels of `bpp` bytes, rows packed.
        fn pixels(&self, w: usize, h: usize, bpp: usize) -> Result<Vec<u8>, EngineError> {
            let mut stride: c_int = 0;
            // SAFETY: the image is live while `self` lives; `stride` is a valid out-pointer.
            let plane = unsafe { ffi::heif_image_get_plane_readonly(self.0, ffi::CHANNEL_INTERLEAVED, &mut stride) };
            let row = w * bpp;
            if plane.is_null() || stride < 0 || (stride as usize) < row {
                return Err(EngineError::Corrupt("HEIF: the decoder returned no pixels".into()));
            }
            if h == 0 || row == 0 {
                return Ok(Vec::new());
            }
            let stride = stride as usize;
            // SAFETY: the plane has `h` rows of `stride` bytes (libheif's layout for the size
            // `size` reports, checked to be `w` × `h` by the caller), so this many are readable;
            // it lives as long as the image, which outlives the slice (borrowed from `self`).
            let all = unsafe { std::slice::from_raw_parts(plane, stride * (h - 1) + row) };
            let mut pixels = Vec::with_capacity(row * h);
            for line in all.chunks(stride) {
                pixels.extend_from_slice(&line[..row]);
            }
            Ok(pixels)
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
        let alpha = p.has_alpha();
        let img = p.decode(alpha)?;
        let (w, h) = img.size();
        // The codec's own bitstream (an HEVC or AV1 sequence header) says how big the picture
        // is, and nothing in libheif 1.15 holds it to the container's header, which is what the
        // limits were checked on: a mismatch is a lie in the file.
        if (w, h) != (hw as usize, hh as usize) {
            return Err(EngineError::Corrupt(format!(
                "HEIF: the image decodes to {w}×{h} pixels but its header says {hw}×{hh}"
            )));
        }
        let pixels = img.pixels(w, h, if alpha { 4 } else { 3 })?;
        drop(img);
        let (w, h) = (w as u32, h as u32);
        Ok(if alpha {
            DynamicImage::ImageRgba8(RgbaImage::from_raw(w, h, pixels).expect("sized above"))
        } else {
            DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, pixels).expect("sized above"))
        })
    }

    /// Frees what libheif allocated for one encode, whatever path returns.
    struct Encoding {
        ctx: *mut ffi::Context,
        encoder: *mut ffi::Encoder,
        image: *mut ffi::Image,
    }

    impl Drop for Encoding {
        fn drop(&mut self) {
            if !self.image.is_null() {
                // SAFETY: libheif made it (heif_image_create); released once, here.
                unsafe { ffi::heif_image_release(self.image) };
            }
            if !self.encoder.is_null() {
                // SAFETY: libheif made it (heif_context_get_encoder_for_format); released once,
                // here, before its context.
                unsafe { ffi::heif_encoder_release(self.encoder) };
            }
            if !self.ctx.is_null() {
                // SAFETY: libheif made it (heif_context_alloc); freed once, here, last.
                unsafe { ffi::heif_context_free(self.ctx) };
            }
        }
    }

    /// libheif's `write` callback: append what it writes to the `Vec<u8>` in `userdata`.
    ///
    /// # Safety
    /// `userdata` is a `*mut Vec<u8>` that nothing else uses during the call, and `data` points
    /// to `size` readable bytes (libheif's contract for heif_writer).
    unsafe extern "C" fn write_to_vec(
        _ctx: *mut ffi::Context,
        data: *const c_void,
        size: usize,
        userdata: *mut c_void,
    ) -> ffi::HeifError {
        // SAFETY: `userdata` is the `Vec<u8>` `Encoding::write` passes to heif_context_write,
        // which calls this only during that call, while nothing else touches the Vec.
        let out = unsafe { &mut *userdata.cast::<Vec<u8>>() };
        if size > 0 {
            // SAFETY: libheif passes `size` readable bytes at `data`, valid during this call.
            out.extend_from_slice(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), size) });
        }
        ffi::HeifError { code: 0, subcode: 0, message: c"Success".as_ptr() }
    }

    /// A libheif error while encoding, as an AVIF encode error.
    fn encode_check(e: ffi::HeifError) -> Result<(), EngineError> {
        check(e).map_err(|e| match e {
            EngineError::Corrupt(detail) => avif_error(detail),
            other => other,
        })
    }

    fn avif_error(detail: String) -> EngineError {
        EngineError::Encode { format: "avif", detail }
    }

    impl Encoding {
        /// A context with libheif's AV1 encoder set to `quality` and `speed`.
        fn av1(quality: u8, speed: u8) -> Result<Encoding, EngineError> {
            // SAFETY: takes nothing; returns a new context or null (checked below).
            let ctx = unsafe { ffi::heif_context_alloc() };
            let mut e = Encoding { ctx, encoder: std::ptr::null_mut(), image: std::ptr::null_mut() };
            if e.ctx.is_null() {
                return Err(avif_error("out of memory".into()));
            }
            // SAFETY: the context is live; `e.encoder` is a valid out-pointer and what libheif
            // puts there is released by `e`.
            let found =
                unsafe { ffi::heif_context_get_encoder_for_format(e.ctx, ffi::COMPRESSION_AV1, &mut e.encoder) };
            if found.code != 0 || e.encoder.is_null() {
                return Err(avif_error(
                    "this server's libheif has no AV1 encoder (it needs libaom, rav1e or SVT-AV1)".into(),
                ));
            }
            // SAFETY: the encoder is live (not null, above).
            encode_check(unsafe { ffi::heif_encoder_set_lossy_quality(e.encoder, quality.clamp(1, 100) as c_int) })?;
            // libaom's "speed" (cpu-used) is 0–9; other encoders may not know it, which is fine.
            // SAFETY: the encoder is live; the name is a NUL-terminated literal.
            let _ =
                unsafe { ffi::heif_encoder_set_parameter_integer(e.encoder, c"speed".as_ptr(), speed.min(9) as c_int) };
            Ok(e)
        }

        /// Create the image to encode, `w` × `h` interleaved RGB(A), and copy `pixels` (rows of
        /// `w` × `bpp` bytes, packed) into it.
        fn fill(&mut self, w: u32, h: u32, alpha: bool, pixels: &[u8]) -> Result<(), EngineError> {
            let chroma = if alpha { ffi::CHROMA_RGBA } else { ffi::CHROMA_RGB };
            // SAFETY: `self.image` is a valid out-pointer and what libheif puts there is
            // released by `self`.
            encode_check(unsafe {
                ffi::heif_image_create(w as c_int, h as c_int, ffi::COLORSPACE_RGB, chroma, &mut self.image)
            })?;
            // SAFETY: the image is live (created above: libheif returns an error otherwise).
            encode_check(unsafe {
                ffi::heif_image_add_plane(self.image, ffi::CHANNEL_INTERLEAVED, w as c_int, h as c_int, 8)
            })?;
            let mut stride: c_int = 0;
            // SAFETY: the image is live; `stride` is a valid out-pointer.
            let plane = unsafe { ffi::heif_image_get_plane(self.image, ffi::CHANNEL_INTERLEAVED, &mut stride) };
            let row = w as usize * if alpha { 4 } else { 3 };
            if plane.is_null() || stride < 0 || (stride as usize) < row {
                return Err(avif_error("libheif gave no pixel buffer".into()));
            }
            if h == 0 || row == 0 {
                return Ok(());
            }
            let stride = stride as usize;
            // SAFETY: the plane libheif added has `h` rows of `stride` bytes, so this many are
            // writable; nothing else uses it until the encode, after this borrow ends.
            let dst = unsafe { std::slice::from_raw_parts_mut(plane, stride * (h as usize - 1) + row) };
            for (src, line) in pixels.chunks_exact(row).zip(dst.chunks_mut(stride)) {
                line[..row].copy_from_slice(src);
            }
            Ok(())
        }

        /// Embed `profile` as the image's ICC profile.
        fn set_profile(&mut self, profile: &[u8]) -> Result<(), EngineError> {
            // SAFETY: the image is live (made by `fill`); libheif copies `profile`, readable
            // for its length, and the fourcc is a NUL-terminated literal.
            encode_check(unsafe {
                ffi::heif_image_set_raw_color_profile(
                    self.image,
                    c"prof".as_ptr(),
                    profile.as_ptr().cast(),
                    profile.len(),
                )
            })
        }

        /// Encode the image and write the file.
        fn write(&mut self) -> Result<Vec<u8>, EngineError> {
            // SAFETY: context, image and encoder are live; no handle is asked for (null).
            encode_check(unsafe {
                ffi::heif_context_encode_image(
                    self.ctx,
                    self.image,
                    self.encoder,
                    std::ptr::null(),
                    std::ptr::null_mut(),
                )
            })?;
            let mut out: Vec<u8> = Vec::new();
            let mut writer = ffi::Writer { writer_api_version: 1, write: write_to_vec };
            // SAFETY: the context is live; `writer` and `out` outlive the call, and `out` is the
            // `Vec<u8>` write_to_vec expects, used by nothing else until it returns.
            encode_check(unsafe { ffi::heif_context_write(self.ctx, &mut writer, (&mut out as *mut Vec<u8>).cast()) })?;
            Ok(out)
        }
    }

    pub fn encode_avif(img: &DynamicImage, quality: u8, speed: u8, icc: Option<&[u8]>) -> Result<Vec<u8>, EngineError> {
        let (w, h) = (img.width(), img.height());
        if w > 65_536 || h > 65_536 {
            return Err(avif_error("AVIF is limited to 65536 pixels per side".into()));
        }
        let alpha = img.color().has_alpha();
        let pixels = if alpha { img.to_rgba8().into_raw() } else { img.to_rgb8().into_raw() };
        let mut e = Encoding::av1(quality, speed)?;
        e.fill(w, h, alpha, &pixels)?;
        if let Some(profile) = icc {
            e.set_profile(profile)?;
        }
        e.write()
    }

    /// The raw ICC profile of the primary image, if it has one (not an nclx description).
    pub fn icc_profile(bytes: &[u8]) -> Option<Vec<u8>> {
        let p = open(bytes, &Limits::default(), Codecs::HevcOrAv1).ok()?;
        // SAFETY: the handle is valid (not null, checked in `open`) while `p` lives.
        let size = unsafe { ffi::heif_image_handle_get_raw_color_profile_size(p.handle) };
        if size == 0 {
            return None;
        }
        let mut buf = vec![0u8; size];
        // SAFETY: the handle is valid while `p` lives; `buf` has the `size` bytes libheif
        // reported for the profile it copies there.
        let copied = unsafe { ffi::heif_image_handle_get_raw_color_profile(p.handle, buf.as_mut_ptr().cast()) };
        (copied.code == 0).then_some(buf)
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
