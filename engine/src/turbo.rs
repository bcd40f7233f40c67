//! libjpeg-turbo (the system's libturbojpeg, when present at build time): SIMD JPEG decode
//! with shrink-on-load (the DCT decodes at 1/2, 1/4 or 1/8 scale when an output needs no
//! more), to RGB/grey or to the YCbCr planes as stored ([`crate::planar`]). With libjpeg's
//! headers at build time, csrc/ adds, over the classic libjpeg API of the same library: the JPEG
//! encoder (jpeg_encode.c: optimised Huffman tables, accurate DCT, raw planes in), the
//! transcoder (jpeg_transcode.c: a full-size re-encode from the DCT coefficients) and the region
//! decoder (jpeg_region.c: only a crop box); without them JPEG is encoded through TurboJPEG.
//! Without libturbojpeg the pure-Rust decoder/encoder are used.

#[cfg(turbojpeg)]
mod imp {
    use std::os::raw::{c_char, c_int, c_uchar, c_ulong, c_void};

    use image::{DynamicImage, GrayImage, RgbImage};

    #[cfg(not(libjpeg))]
    use crate::encode::Chroma;
    use crate::encode::EncodeOptions;
    pub use crate::planar::{Plane, Planes};
    use crate::EngineError;

    type Handle = *mut c_void;
    const TJPF_RGB: c_int = 0;
    const TJPF_GRAY: c_int = 6;
    #[cfg_attr(libjpeg, allow(dead_code))]
    const TJSAMP_444: c_int = 0;
    #[cfg_attr(libjpeg, allow(dead_code))]
    const TJSAMP_422: c_int = 1;
    #[cfg_attr(libjpeg, allow(dead_code))]
    const TJSAMP_420: c_int = 2;
    #[cfg_attr(libjpeg, allow(dead_code))]
    const TJSAMP_GRAY: c_int = 3;
    const TJCS_GRAY: c_int = 2;
    const TJCS_CMYK: c_int = 3;
    const TJCS_YCCK: c_int = 4;
    const TJFLAG_ACCURATEDCT: c_int = 4096;
    #[cfg_attr(libjpeg, allow(dead_code))]
    const TJFLAG_PROGRESSIVE: c_int = 16384;

    #[link(name = "turbojpeg")]
    extern "C" {
        fn tjInitDecompress() -> Handle;
        #[cfg_attr(libjpeg, allow(dead_code))]
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
        #[cfg_attr(libjpeg, allow(dead_code))]
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
        #[cfg_attr(libjpeg, allow(dead_code))]
        fn tjFree(buf: *mut c_uchar);
        fn tjDecompressToYUVPlanes(
            h: Handle,
            buf: *const c_uchar,
            size: c_ulong,
            planes: *mut *mut c_uchar,
            w: c_int,
            strides: *mut c_int,
            hh: c_int,
            flags: c_int,
        ) -> c_int;
        fn tjPlaneWidth(component: c_int, w: c_int, subsamp: c_int) -> c_int;
        fn tjPlaneHeight(component: c_int, h: c_int, subsamp: c_int) -> c_int;
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
        /// A decompression handle, or the error a decode reports when there is none.
        fn decompressor() -> Result<Tj, EngineError> {
            // SAFETY: tjInitDecompress has no preconditions; a null handle is refused here.
            let tj = Tj(unsafe { tjInitDecompress() });
            if tj.0.is_null() {
                return Err(EngineError::Corrupt("cannot start the JPEG decoder".into()));
            }
            Ok(tj)
        }

        fn error(&self) -> String {
            // SAFETY: libturbojpeg returns a static or handle-owned NUL-terminated string.
            unsafe { std::ffi::CStr::from_ptr(tjGetErrorStr2(self.0)) }.to_string_lossy().into_owned()
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
    pub fn header_within(bytes: &[u8], limits: &crate::Limits) -> Result<Option<Header>, EngineError> {
        // SAFETY: the handle is checked; out-pointers are valid locals.
        let (w, h, ss, cs) = unsafe {
            let tj = Tj(tjInitDecompress());
            if tj.0.is_null() {
                return Ok(None);
            }
            let (mut w, mut h, mut ss, mut cs) = (0, 0, 0, 0);
            if tjDecompressHeader3(tj.0, bytes.as_ptr(), bytes.len() as c_ulong, &mut w, &mut h, &mut ss, &mut cs) != 0
            {
                return Ok(None);
            }
            (w, h, ss, cs)
        };
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
        // SAFETY: `buf` holds exactly w × h × channels bytes; pitch 0 means tightly packed.
        unsafe {
            let tj = Tj::decompressor()?;
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

    /// Decode at 1/`shrink` scale into Y, Cb, Cr planes as stored (no colour conversion, no
    /// chroma upsampling); a grey JPEG gives one plane.
    #[cfg_attr(not(libjpeg), allow(dead_code))]
    pub fn decode_planes(bytes: &[u8], head: &Header, shrink: u32) -> Result<Planes, EngineError> {
        let (w, h) = (head.width.div_ceil(shrink), head.height.div_ceil(shrink));
        let n = if head.gray { 1 } else { 3 };
        let sizes: Vec<(u32, u32)> = (0..n)
            .map(|c| {
                // SAFETY: pure functions of their arguments.
                let (pw, ph) =
                    unsafe { (tjPlaneWidth(c, w as c_int, head.subsamp), tjPlaneHeight(c, h as c_int, head.subsamp)) };
                (pw.max(1) as u32, ph.max(1) as u32)
            })
            .collect();
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
        // SAFETY: each plane holds exactly tjPlaneWidth × tjPlaneHeight bytes, its stride is that
        // width; grey images only use the first pointer.
        unsafe {
            let tj = Tj::decompressor()?;
            let rc = tjDecompressToYUVPlanes(
                tj.0,
                bytes.as_ptr(),
                bytes.len() as c_ulong,
                ptrs.as_mut_ptr(),
                w as c_int,
                strides.as_mut_ptr(),
                h as c_int,
                TJFLAG_ACCURATEDCT,
            );
            if rc != 0 {
                return Err(EngineError::Corrupt(tj.error()));
            }
            for p in &mut planes {
                // SAFETY: the capacity is width × height and the decoder wrote all of it.
                p.data.set_len(p.width as usize * p.height as usize);
            }
        }
        Ok(Planes { width: w, height: h, planes })
    }

    /// Encode 8-bit RGB or grey pixels (TurboJPEG: builds without libjpeg's headers).
    #[cfg(not(libjpeg))]
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

    /// What csrc/jpeg_encode.c takes (`struct dr_src`).
    #[cfg(libjpeg)]
    #[repr(C)]
    struct DrSrc {
        width: c_int,
        height: c_int,
        kind: c_int,
        data: [*const c_uchar; 3],
        stride: [c_int; 3],
        plane_w: [c_int; 3],
        plane_h: [c_int; 3],
    }

    #[cfg(libjpeg)]
    extern "C" {
        fn dr_jpeg_encode(
            src: *const DrSrc,
            quality: c_int,
            subsamp: c_int,
            progressive: c_int,
            optimize: c_int,
            out: *mut *mut c_uchar,
            out_size: *mut c_ulong,
            err: *mut c_char,
            errlen: c_int,
        ) -> c_int;
        fn dr_jpeg_free(buf: *mut c_uchar);
        fn dr_jpeg_transcode(
            input: *const c_uchar,
            input_size: c_ulong,
            quality: c_int,
            progressive: c_int,
            optimize: c_int,
            out: *mut *mut c_uchar,
            out_size: *mut c_ulong,
            err: *mut c_char,
            errlen: c_int,
        ) -> c_int;
    }

    #[cfg(libjpeg)]
    extern "C" {
        fn dr_jpeg_decode_region(
            input: *const c_uchar,
            input_size: c_ulong,
            x: u32,
            y: u32,
            w: u32,
            h: u32,
            channels: c_int,
            dst: *mut c_uchar,
            err: *mut c_char,
            errlen: c_int,
        ) -> c_int;
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
        let mut err = [0 as c_char; 256];
        // SAFETY: `buf` holds w × h × channels bytes; the decoder checks the JPEG has `channels`.
        let rc = unsafe {
            dr_jpeg_decode_region(
                bytes.as_ptr(),
                bytes.len() as c_ulong,
                x,
                y,
                w,
                h,
                channels as c_int,
                buf.as_mut_ptr(),
                err.as_mut_ptr(),
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
            // SAFETY: the decoder wrote a NUL-terminated message into `err`.
            _ => Err(EngineError::Corrupt(
                unsafe { std::ffi::CStr::from_ptr(err.as_ptr()) }.to_string_lossy().into_owned(),
            )),
        }
    }

    /// Re-encode a JPEG at its own size from its DCT coefficients (csrc/jpeg_transcode.c):
    /// 4:2:0 output from 4:2:0 or 4:2:2 YCbCr, grey from grey, with the chroma
    /// filtering the pixel round trip would apply. `Ok(None)`: another layout, decode the pixels.
    #[cfg(libjpeg)]
    pub fn transcode(bytes: &[u8], opts: &EncodeOptions, quality: u8) -> Result<Option<Vec<u8>>, EngineError> {
        let mut out: *mut c_uchar = std::ptr::null_mut();
        let mut size: c_ulong = 0;
        let mut err = [0 as c_char; 256];
        // SAFETY: `bytes` outlives the call; the transcoder mallocs `out`, freed below.
        unsafe {
            let rc = dr_jpeg_transcode(
                bytes.as_ptr(),
                bytes.len() as c_ulong,
                quality as c_int,
                opts.progressive as c_int,
                OPTIMIZE_HUFFMAN as c_int,
                &mut out,
                &mut size,
                err.as_mut_ptr(),
                err.len() as c_int,
            );
            if rc == 1 {
                return Ok(None);
            }
            c_output(rc, out, size, &err).map(Some).map_err(EngineError::Corrupt)
        }
    }

    /// What a csrc/ function that mallocs a JPEG left: the bytes (freed here) when `rc` is 0,
    /// else libjpeg's message from `err`.
    ///
    /// # Safety
    /// `out` is null or a buffer of `size` bytes from the csrc/ function; `err` holds a
    /// NUL-terminated message when `rc` is not 0.
    #[cfg(libjpeg)]
    unsafe fn c_output(rc: c_int, out: *mut c_uchar, size: c_ulong, err: &[c_char]) -> Result<Vec<u8>, String> {
        let bytes = (rc == 0 && !out.is_null()).then(|| std::slice::from_raw_parts(out, size as usize).to_vec());
        if !out.is_null() {
            dr_jpeg_free(out);
        }
        bytes.ok_or_else(|| std::ffi::CStr::from_ptr(err.as_ptr()).to_string_lossy().into_owned())
    }

    /// Optimised Huffman tables: what sharp does by default. With csrc/jpeg_encode.c's fast
    /// statistics pass they cost about half an encode more instead of one and a half, and save
    /// 1-15% of the bytes (corpus, q80-85).
    #[cfg(libjpeg)]
    const OPTIMIZE_HUFFMAN: bool = true;

    #[cfg(libjpeg)]
    fn run_encoder(src: &DrSrc, opts: &EncodeOptions, quality: u8, subsamp: c_int) -> Result<Vec<u8>, EngineError> {
        let mut out: *mut c_uchar = std::ptr::null_mut();
        let mut size: c_ulong = 0;
        let mut err = [0 as c_char; 256];
        // SAFETY: `src` points into buffers that outlive the call and match its sizes (checked by
        // the callers); the encoder mallocs `out`, freed below with its own free.
        unsafe {
            let rc = dr_jpeg_encode(
                src,
                quality as c_int,
                subsamp,
                opts.progressive as c_int,
                OPTIMIZE_HUFFMAN as c_int,
                &mut out,
                &mut size,
                err.as_mut_ptr(),
                err.len() as c_int,
            );
            c_output(rc, out, size, &err).map_err(|detail| EngineError::Encode { format: "jpeg", detail })
        }
    }

    /// Encode 8-bit RGB or grey pixels.
    #[cfg(libjpeg)]
    pub fn encode(img: &DynamicImage, opts: &EncodeOptions, quality: u8) -> Result<Vec<u8>, EngineError> {
        use crate::encode::Chroma;
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
        let src = DrSrc {
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
        let src = DrSrc {
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
    _opts: &crate::encode::EncodeOptions,
    _quality: u8,
) -> Result<Option<Vec<u8>>, crate::EngineError> {
    Ok(None)
}

/// Is libjpeg-turbo built in?
pub const AVAILABLE: bool = cfg!(turbojpeg);
