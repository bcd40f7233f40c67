//! libjpeg-turbo (the system's libturbojpeg, when present at build time): SIMD JPEG decode
//! with shrink-on-load (the DCT decodes at 1/2, 1/4 or 1/8 scale when an output needs no
//! more), to RGB/grey or to the YCbCr planes as stored ([`Planes`], worked on by
//! [`super::planar`]). With libjpeg's headers at build time, csrc/ adds, over the classic libjpeg
//! API of the same library: the JPEG encoder (jpeg_encode.c: optimised Huffman tables, accurate
//! DCT, raw planes in), the transcoder (jpeg_transcode.c: a full-size re-encode from the DCT
//! coefficients) and the region decoder (jpeg_region.c: only a crop box); without them JPEG is
//! encoded through TurboJPEG. Without libturbojpeg the pure-Rust decoder/encoder are used.
//!
//! These are the safe wrappers over [`super::ffi`]: each `unsafe` block holds one C call (or
//! one raw-memory step) and says why it is sound; buffers the C side allocates are owned by a
//! guard that frees them on every path.

/// One 8-bit plane, rows packed.
#[derive(Clone, Debug)]
pub struct Plane {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

/// A YCbCr image as planes (Y, Cb, Cr; or Y alone for grey), `width` × `height` luma samples.
#[derive(Clone, Debug)]
pub struct Planes {
    pub width: u32,
    pub height: u32,
    pub planes: Vec<Plane>,
}

#[cfg(turbojpeg)]
mod imp {
    use std::ffi::CStr;
    #[cfg(libjpeg)]
    use std::os::raw::c_char;
    use std::os::raw::{c_int, c_uchar, c_ulong};

    use image::{DynamicImage, GrayImage, RgbImage};

    use super::{Plane, Planes};
    use crate::jpeg::ffi::{
        self, TJCS_CMYK, TJCS_GRAY, TJCS_YCCK, TJFLAG_ACCURATEDCT, TJPF_GRAY, TJPF_RGB, TJSAMP_420, TJSAMP_422,
        TJSAMP_444,
    };
    #[cfg(not(libjpeg))]
    use crate::jpeg::ffi::{TJFLAG_PROGRESSIVE, TJSAMP_GRAY};
    use crate::spec::EncodeOptions;
    #[cfg(not(libjpeg))]
    use crate::Chroma;
    use crate::{EngineError, Limits};

    /// A TurboJPEG instance, destroyed on drop. Never null: the constructors refuse that.
    struct Tj(ffi::Handle);

    impl Drop for Tj {
        fn drop(&mut self) {
            // SAFETY: the handle came from tjInit* (not null, see the constructors) and is
            // destroyed once, here.
            unsafe { ffi::tjDestroy(self.0) };
        }
    }

    impl Tj {
        /// A decompression handle; `None` when TurboJPEG cannot make one (out of memory).
        fn decompressor() -> Option<Tj> {
            // SAFETY: tjInitDecompress takes nothing and returns a new handle or null.
            let handle = unsafe { ffi::tjInitDecompress() };
            (!handle.is_null()).then_some(Tj(handle))
        }

        /// [`Tj::decompressor`], or the error a decode reports when there is none.
        fn decompressor_for_decode() -> Result<Tj, EngineError> {
            Tj::decompressor().ok_or_else(|| EngineError::Corrupt("cannot start the JPEG decoder".into()))
        }

        /// A compression handle; `None` when TurboJPEG cannot make one (out of memory).
        #[cfg(not(libjpeg))]
        fn compressor() -> Option<Tj> {
            // SAFETY: tjInitCompress takes nothing and returns a new handle or null.
            let handle = unsafe { ffi::tjInitCompress() };
            (!handle.is_null()).then_some(Tj(handle))
        }

        /// The message of the last error on this handle.
        fn error(&self) -> String {
            // SAFETY: the handle is live; TurboJPEG returns a pointer to a NUL-terminated string
            // that it owns (static or in the handle).
            let message = unsafe { ffi::tjGetErrorStr2(self.0) };
            if message.is_null() {
                return "libjpeg-turbo failed without saying why".into();
            }
            // SAFETY: not null, NUL-terminated (above) and read before the handle is used again.
            unsafe { CStr::from_ptr(message) }.to_string_lossy().into_owned()
        }

        /// The header's width, height, subsampling (TJSAMP_*) and colour space (TJCS_*), or
        /// `None` when TurboJPEG cannot read it.
        fn header(&self, bytes: &[u8]) -> Option<(c_int, c_int, c_int, c_int)> {
            let (mut w, mut h, mut subsamp, mut space) = (0, 0, 0, 0);
            // SAFETY: the handle is live, `bytes` is readable for its length and the four
            // out-pointers are locals that outlive the call.
            let rc = unsafe {
                ffi::tjDecompressHeader3(
                    self.0,
                    bytes.as_ptr(),
                    bytes.len() as c_ulong,
                    &mut w,
                    &mut h,
                    &mut subsamp,
                    &mut space,
                )
            };
            (rc == 0).then_some((w, h, subsamp, space))
        }
    }

    /// What the header says: size and whether the colour space is one we decode here. Only
    /// [`header_within`] makes one, after checking the size against the limits, so every buffer
    /// sized from it is bounded.
    pub struct Header {
        pub width: u32,
        pub height: u32,
        pub gray: bool,
        pub cmyk: bool,
        /// TurboJPEG's subsampling code (TJSAMP_*).
        pub subsamp: i32,
        /// Most bytes a decode of this header may allocate for its pixels (the limits' allocation
        /// budget).
        budget: u64,
    }

    impl Header {
        /// Refuse a pixel buffer of `bytes` bytes over the budget, before it is allocated.
        fn allocation(&self, bytes: u64) -> Result<usize, EngineError> {
            if bytes > self.budget {
                return Err(EngineError::TooManyPixels {
                    width: self.width,
                    height: self.height,
                    limit: self.budget / if self.gray { 1 } else { 3 },
                });
            }
            usize::try_from(bytes).map_err(|_| EngineError::Corrupt("the JPEG is too large for this machine".into()))
        }
    }

    /// TurboJPEG's reading of a JPEG's header, checked against `limits` before anything is
    /// allocated from it: no side may be 0, the pixels must be within `max_pixels` and the
    /// decoded RGB (or grey) bytes within the limits' allocation budget. `Ok(None)` when
    /// TurboJPEG cannot read the header (the pure-Rust decoder then reports the damage, within
    /// the same limits). libjpeg itself refuses sides over 65500 (JPEG_MAX_DIMENSION).
    pub fn header_within(bytes: &[u8], limits: &Limits) -> Result<Option<Header>, EngineError> {
        let Some(tj) = Tj::decompressor() else { return Ok(None) };
        let Some((w, h, ss, cs)) = tj.header(bytes) else { return Ok(None) };
        if w <= 0 || h <= 0 {
            return Err(EngineError::Corrupt(format!("the JPEG header says the image is {w}×{h} pixels")));
        }
        let (width, height) = (w as u32, h as u32);
        limits.check_dimensions(width, height)?;
        let head = Header {
            width,
            height,
            gray: cs == TJCS_GRAY,
            cmyk: cs == TJCS_CMYK || cs == TJCS_YCCK,
            subsamp: ss,
            budget: limits.max_alloc(),
        };
        let channels = if head.gray { 1 } else { 3 };
        head.allocation(width as u64 * height as u64 * channels)?;
        Ok(Some(head))
    }

    /// The DCT scale denominator (1, 2, 4 or 8) that still gives at least `need` pixels.
    pub fn shrink_for(width: u32, height: u32, need: (u32, u32)) -> u32 {
        [8u32, 4, 2].into_iter().find(|d| width.div_ceil(*d) >= need.0 && height.div_ceil(*d) >= need.1).unwrap_or(1)
    }

    /// Decode at 1/`shrink` scale.
    pub fn decode(bytes: &[u8], head: &Header, shrink: u32) -> Result<DynamicImage, EngineError> {
        let (w, h) = (head.width.div_ceil(shrink), head.height.div_ceil(shrink));
        let (pf, channels) = if head.gray { (TJPF_GRAY, 1) } else { (TJPF_RGB, 3) };
        let len = head.allocation(w as u64 * h as u64 * channels)?;
        let mut buf = vec![0u8; len];
        let tj = Tj::decompressor_for_decode()?;
        // SAFETY: the handle is live, `bytes` is readable for its length, and `buf` holds
        // exactly w × h × channels bytes, what TurboJPEG writes for that size and pixel format
        // (pitch 0: rows tightly packed).
        let rc = unsafe {
            ffi::tjDecompress2(
                tj.0,
                bytes.as_ptr(),
                bytes.len() as c_ulong,
                buf.as_mut_ptr(),
                w as c_int,
                0,
                h as c_int,
                pf,
                TJFLAG_ACCURATEDCT,
            )
        };
        if rc != 0 {
            return Err(EngineError::Corrupt(tj.error()));
        }
        Ok(if head.gray {
            DynamicImage::ImageLuma8(GrayImage::from_raw(w, h, buf).expect("sized above"))
        } else {
            DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, buf).expect("sized above"))
        })
    }

    /// Luma/chroma subsampling factors (horizontal, vertical) of the chroma planes that
    /// [`decode_planes`] returns, or `None` for layouts it does not handle (4:4:0, 4:1:1, grey).
    #[cfg_attr(not(libjpeg), allow(dead_code))]
    pub fn chroma_factors(subsamp: i32) -> Option<(u32, u32)> {
        match subsamp {
            TJSAMP_444 => Some((1, 1)),
            TJSAMP_422 => Some((2, 1)),
            TJSAMP_420 => Some((2, 2)),
            _ => None,
        }
    }

    /// The size TurboJPEG gives plane `component` of a `w` × `h` image with `subsamp`.
    fn plane_size(component: c_int, w: u32, h: u32, subsamp: c_int) -> (u32, u32) {
        // SAFETY: a pure function of its arguments (it returns -1 for invalid ones).
        let pw = unsafe { ffi::tjPlaneWidth(component, w as c_int, subsamp) };
        // SAFETY: as above.
        let ph = unsafe { ffi::tjPlaneHeight(component, h as c_int, subsamp) };
        (pw.max(1) as u32, ph.max(1) as u32)
    }

    /// Decode at 1/`shrink` scale into Y, Cb, Cr planes as stored (no colour conversion, no
    /// chroma upsampling); a grey JPEG gives one plane.
    #[cfg_attr(not(libjpeg), allow(dead_code))]
    pub fn decode_planes(bytes: &[u8], head: &Header, shrink: u32) -> Result<Planes, EngineError> {
        let (w, h) = (head.width.div_ceil(shrink), head.height.div_ceil(shrink));
        let n = if head.gray { 1 } else { 3 };
        let sizes: Vec<(u32, u32)> = (0..n).map(|c| plane_size(c, w, h, head.subsamp)).collect();
        head.allocation(sizes.iter().map(|&(pw, ph)| pw as u64 * ph as u64).sum())?;
        let mut planes: Vec<Plane> = sizes
            .into_iter()
            // Not zeroed: the decoder writes every byte (set_len below, after it succeeded).
            .map(|(pw, ph)| Plane { width: pw, height: ph, data: Vec::with_capacity(pw as usize * ph as usize) })
            .collect();
        let mut ptrs: Vec<*mut c_uchar> = planes.iter_mut().map(|p| p.data.as_mut_ptr()).collect();
        let mut strides: Vec<c_int> = planes.iter().map(|p| p.width as c_int).collect();
        ptrs.resize(3, std::ptr::null_mut());
        strides.resize(3, 0);
        let tj = Tj::decompressor_for_decode()?;
        // SAFETY: the handle is live, `bytes` is readable for its length, each plane's buffer
        // has room for exactly tjPlaneWidth × tjPlaneHeight bytes with that width as its stride
        // (what TurboJPEG writes at this size and subsampling); a grey image only uses the first
        // pointer, and the unused ones are null as TurboJPEG expects.
        let rc = unsafe {
            ffi::tjDecompressToYUVPlanes(
                tj.0,
                bytes.as_ptr(),
                bytes.len() as c_ulong,
                ptrs.as_mut_ptr(),
                w as c_int,
                strides.as_mut_ptr(),
                h as c_int,
                TJFLAG_ACCURATEDCT,
            )
        };
        if rc != 0 {
            return Err(EngineError::Corrupt(tj.error()));
        }
        for p in &mut planes {
            let len = p.width as usize * p.height as usize;
            assert!(len <= p.data.capacity());
            // SAFETY: within the capacity (asserted), and the decoder succeeded, so it wrote
            // every one of these bytes.
            unsafe { p.data.set_len(len) };
        }
        Ok(Planes { width: w, height: h, planes })
    }

    /// The error text a C function wrote into `err` (up to its NUL).
    #[cfg_attr(not(libjpeg), allow(dead_code))]
    fn c_message(err: &[u8]) -> String {
        match CStr::from_bytes_until_nul(err) {
            Ok(message) => message.to_string_lossy().into_owned(),
            Err(_) => String::from_utf8_lossy(err).into_owned(),
        }
    }

    /// Encode 8-bit RGB or grey pixels (TurboJPEG: builds without libjpeg's headers).
    #[cfg(not(libjpeg))]
    pub fn encode(img: &DynamicImage, opts: &EncodeOptions, quality: u8) -> Result<Vec<u8>, EngineError> {
        let fail = |detail: String| EngineError::Encode { format: "jpeg", detail };
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
            _ => return Err(fail("expected 8-bit RGB or grey".into())),
        };
        let channels = if pf == TJPF_GRAY { 1 } else { 3 };
        assert!(data.len() >= img.width() as usize * img.height() as usize * channels);
        let flags = if opts.progressive { TJFLAG_PROGRESSIVE } else { 0 };
        let tj = Tj::compressor().ok_or_else(|| fail("cannot start the JPEG encoder".into()))?;
        let mut out = TjBuffer { ptr: std::ptr::null_mut(), size: 0 };
        // SAFETY: the handle is live; `data` holds width × height × channels bytes for `pf`
        // (asserted); TurboJPEG allocates `out.ptr` with its size in `out.size`, and `out`
        // frees it with tjFree on every path.
        let rc = unsafe {
            ffi::tjCompress2(
                tj.0,
                data.as_ptr(),
                img.width() as c_int,
                0,
                img.height() as c_int,
                pf,
                &mut out.ptr,
                &mut out.size,
                subsamp,
                quality as c_int,
                flags,
            )
        };
        if rc != 0 {
            return Err(fail(tj.error()));
        }
        Ok(out.to_vec())
    }

    /// A JPEG TurboJPEG allocated, freed with tjFree on drop.
    #[cfg(not(libjpeg))]
    struct TjBuffer {
        ptr: *mut c_uchar,
        size: c_ulong,
    }

    #[cfg(not(libjpeg))]
    impl TjBuffer {
        fn to_vec(&self) -> Vec<u8> {
            if self.ptr.is_null() {
                return Vec::new();
            }
            // SAFETY: TurboJPEG set `ptr` to a buffer of `size` bytes, alive until drop.
            unsafe { std::slice::from_raw_parts(self.ptr, self.size as usize) }.to_vec()
        }
    }

    #[cfg(not(libjpeg))]
    impl Drop for TjBuffer {
        fn drop(&mut self) {
            if !self.ptr.is_null() {
                // SAFETY: TurboJPEG allocated it; freed once, here, with its own free.
                unsafe { ffi::tjFree(self.ptr) };
            }
        }
    }

    /// A JPEG that csrc/ malloc'd, freed on drop with csrc/'s own free.
    #[cfg(libjpeg)]
    struct CJpeg {
        ptr: *mut c_uchar,
        size: c_ulong,
    }

    #[cfg(libjpeg)]
    impl CJpeg {
        fn new() -> CJpeg {
            CJpeg { ptr: std::ptr::null_mut(), size: 0 }
        }

        fn to_vec(&self) -> Vec<u8> {
            if self.ptr.is_null() {
                return Vec::new();
            }
            // SAFETY: csrc/ set `ptr` to a buffer of `size` bytes it allocated, alive until drop.
            unsafe { std::slice::from_raw_parts(self.ptr, self.size as usize) }.to_vec()
        }
    }

    #[cfg(libjpeg)]
    impl Drop for CJpeg {
        fn drop(&mut self) {
            if !self.ptr.is_null() {
                // SAFETY: csrc/ allocated it; freed once, here, with csrc/'s free.
                unsafe { ffi::dr_jpeg_free(self.ptr) };
            }
        }
    }

    /// Decode only the rectangle (x, y, w, h) of a YCbCr, RGB or grey JPEG (csrc/jpeg_region.c),
    /// at full scale: RGB, or grey for a grey JPEG. `Ok(None)`: not inside the image, or a colour
    /// space decoded elsewhere.
    #[cfg(libjpeg)]
    pub fn decode_region(
        bytes: &[u8],
        head: &Header,
        (x, y, w, h): (u32, u32, u32, u32),
    ) -> Result<Option<DynamicImage>, EngineError> {
        let channels = if head.gray { 1 } else { 3 };
        let len = head.allocation(w as u64 * h as u64 * channels)?;
        let mut buf = vec![0u8; len];
        let mut err = [0u8; 256];
        // SAFETY: `bytes` is readable for its length; `buf` holds w × h × channels bytes, what
        // the decoder writes (it checks the JPEG has `channels` components and the box is
        // inside it, else returns 1); `err` has room for `err.len()` bytes.
        let rc = unsafe {
            ffi::dr_jpeg_decode_region(
                bytes.as_ptr(),
                bytes.len() as c_ulong,
                x,
                y,
                w,
                h,
                channels as c_int,
                buf.as_mut_ptr(),
                err.as_mut_ptr().cast::<c_char>(),
                err.len() as c_int,
            )
        };
        match rc {
            0 => Ok(Some(if head.gray {
                DynamicImage::ImageLuma8(GrayImage::from_raw(w, h, buf).expect("sized above"))
            } else {
                DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, buf).expect("sized above"))
            })),
            1 => Ok(None),
            _ => Err(EngineError::Corrupt(c_message(&err))),
        }
    }

    /// Re-encode a JPEG at its own size from its DCT coefficients (csrc/jpeg_transcode.c):
    /// 4:2:0 output from 4:2:0 or 4:2:2 YCbCr, grey from grey, with the chroma
    /// filtering the pixel round trip would apply. `Ok(None)`: another layout, decode the pixels.
    #[cfg(libjpeg)]
    pub fn transcode(bytes: &[u8], opts: &EncodeOptions, quality: u8) -> Result<Option<Vec<u8>>, EngineError> {
        let mut out = CJpeg::new();
        let mut err = [0u8; 256];
        // SAFETY: `bytes` is readable for its length; the transcoder mallocs `out.ptr` with its
        // size in `out.size` (freed by `out` on every path); `err` has room for `err.len()` bytes.
        let rc = unsafe {
            ffi::dr_jpeg_transcode(
                bytes.as_ptr(),
                bytes.len() as c_ulong,
                quality as c_int,
                opts.progressive as c_int,
                OPTIMIZE_HUFFMAN as c_int,
                &mut out.ptr,
                &mut out.size,
                err.as_mut_ptr().cast::<c_char>(),
                err.len() as c_int,
            )
        };
        match rc {
            0 if !out.ptr.is_null() => Ok(Some(out.to_vec())),
            1 => Ok(None),
            _ => Err(EngineError::Corrupt(c_message(&err))),
        }
    }

    /// Optimised Huffman tables: what sharp does by default. With csrc/jpeg_encode.c's fast
    /// statistics pass they cost about half an encode more instead of one and a half, and save
    /// 1-15% of the bytes (corpus, q80-85).
    #[cfg(libjpeg)]
    const OPTIMIZE_HUFFMAN: bool = true;

    /// Run csrc/jpeg_encode.c on `src`. The callers check that `src` describes the buffers it
    /// points into (sizes and strides).
    #[cfg(libjpeg)]
    fn run_encoder(
        src: &ffi::DrSrc,
        opts: &EncodeOptions,
        quality: u8,
        subsamp: c_int,
    ) -> Result<Vec<u8>, EngineError> {
        let mut out = CJpeg::new();
        let mut err = [0u8; 256];
        // SAFETY: `src` points into buffers that outlive the call and match its sizes (checked
        // by the callers); the encoder mallocs `out.ptr` with its size in `out.size` (freed by
        // `out` on every path); `err` has room for `err.len()` bytes.
        let rc = unsafe {
            ffi::dr_jpeg_encode(
                src,
                quality as c_int,
                subsamp,
                opts.progressive as c_int,
                OPTIMIZE_HUFFMAN as c_int,
                &mut out.ptr,
                &mut out.size,
                err.as_mut_ptr().cast::<c_char>(),
                err.len() as c_int,
            )
        };
        match rc {
            0 if !out.ptr.is_null() => Ok(out.to_vec()),
            _ => Err(EngineError::Encode { format: "jpeg", detail: c_message(&err) }),
        }
    }

    /// Encode 8-bit RGB or grey pixels.
    #[cfg(libjpeg)]
    pub fn encode(img: &DynamicImage, opts: &EncodeOptions, quality: u8) -> Result<Vec<u8>, EngineError> {
        use crate::Chroma;
        let (data, kind, channels) = match img {
            DynamicImage::ImageLuma8(g) => (g.as_raw().as_slice(), 0, 1),
            DynamicImage::ImageRgb8(rgb) => (rgb.as_raw().as_slice(), 1, 3),
            _ => return Err(EngineError::Encode { format: "jpeg", detail: "expected 8-bit RGB or grey".into() }),
        };
        let subsamp = match opts.chroma.unwrap_or(Chroma::S420) {
            Chroma::S444 => 0,
            Chroma::S422 => 1,
            Chroma::S420 => 2,
        };
        let (w, h) = (img.width() as c_int, img.height() as c_int);
        assert!(data.len() >= w as usize * h as usize * channels);
        let src = ffi::DrSrc {
            width: w,
            height: h,
            kind,
            data: [data.as_ptr(), std::ptr::null(), std::ptr::null()],
            stride: [w * channels as c_int, 0, 0],
            plane_w: [0; 3],
            plane_h: [0; 3],
        };
        run_encoder(&src, opts, quality, subsamp)
    }

    /// Encode Y, Cb, Cr planes laid out as 4:2:0 (chroma ⌈w/2⌉ × ⌈h/2⌉ samples), or one grey
    /// plane: no colour conversion, no chroma downsampling. A plane may be larger than that
    /// (TurboJPEG pads luma to whole chroma samples): the extra columns and rows are ignored.
    #[cfg(libjpeg)]
    pub fn encode_planes(p: &Planes, opts: &EncodeOptions, quality: u8) -> Result<Vec<u8>, EngineError> {
        let (w, h) = (p.width, p.height);
        let grey = p.planes.len() == 1;
        assert!(grey || p.planes.len() == 3);
        let size = |c: usize| if c == 0 { (w, h) } else { (w.div_ceil(2), h.div_ceil(2)) };
        for (c, plane) in p.planes.iter().enumerate() {
            let (pw, ph) = size(c);
            assert!(plane.width >= pw && plane.height >= ph, "4:2:0 planes");
            assert!(plane.data.len() >= plane.width as usize * plane.height as usize);
        }
        let at = |c: usize| p.planes.get(c);
        let src = ffi::DrSrc {
            width: w as c_int,
            height: h as c_int,
            kind: if grey { 0 } else { 2 },
            data: std::array::from_fn(|c| at(c).map_or(std::ptr::null(), |q| q.data.as_ptr())),
            stride: std::array::from_fn(|c| at(c).map_or(0, |q| q.width as c_int)),
            plane_w: std::array::from_fn(|c| at(c).map_or(0, |_| size(c).0 as c_int)),
            plane_h: std::array::from_fn(|c| at(c).map_or(0, |_| size(c).1 as c_int)),
        };
        run_encoder(&src, opts, quality, 2)
    }
}

#[cfg(turbojpeg)]
pub use imp::*;

/// Without libjpeg's API (csrc/ not built) nothing is transcoded: the caller
/// decodes the pixels.
#[cfg(not(libjpeg))]
pub fn transcode(
    _bytes: &[u8],
    _opts: &crate::spec::EncodeOptions,
    _quality: u8,
) -> Result<Option<Vec<u8>>, crate::EngineError> {
    Ok(None)
}

/// Is libjpeg-turbo built in?
pub const AVAILABLE: bool = cfg!(turbojpeg);
