//! The C side of the JPEG codecs, declared once: libturbojpeg's TurboJPEG API (`tj*`, its
//! constants) and our shim over the classic libjpeg API in csrc/ (`dr_jpeg_*`, `struct dr_src`).
//! Nothing here is safe to call directly: [`super::turbo`] wraps every function with the checks
//! that make the call sound, so this is the only file to read against the C headers
//! (turbojpeg.h, csrc/jpeg_*.c) when either changes.

use std::os::raw::{c_char, c_int, c_uchar, c_ulong, c_void};

/// A TurboJPEG instance (`tjhandle`).
pub(super) type Handle = *mut c_void;

pub(super) const TJPF_RGB: c_int = 0;
pub(super) const TJPF_GRAY: c_int = 6;
pub(super) const TJSAMP_444: c_int = 0;
pub(super) const TJSAMP_422: c_int = 1;
pub(super) const TJSAMP_420: c_int = 2;
#[cfg_attr(libjpeg, allow(dead_code))]
pub(super) const TJSAMP_GRAY: c_int = 3;
pub(super) const TJCS_GRAY: c_int = 2;
pub(super) const TJCS_CMYK: c_int = 3;
pub(super) const TJCS_YCCK: c_int = 4;
pub(super) const TJFLAG_ACCURATEDCT: c_int = 4096;
#[cfg_attr(libjpeg, allow(dead_code))]
pub(super) const TJFLAG_PROGRESSIVE: c_int = 16384;

#[link(name = "turbojpeg")]
extern "C" {
    pub(super) fn tjInitDecompress() -> Handle;
    #[cfg_attr(libjpeg, allow(dead_code))]
    pub(super) fn tjInitCompress() -> Handle;
    pub(super) fn tjDestroy(h: Handle) -> c_int;
    pub(super) fn tjDecompressHeader3(
        h: Handle,
        buf: *const c_uchar,
        size: c_ulong,
        w: *mut c_int,
        hh: *mut c_int,
        subsamp: *mut c_int,
        cs: *mut c_int,
    ) -> c_int;
    pub(super) fn tjDecompress2(
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
    pub(super) fn tjCompress2(
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
    pub(super) fn tjFree(buf: *mut c_uchar);
    pub(super) fn tjDecompressToYUVPlanes(
        h: Handle,
        buf: *const c_uchar,
        size: c_ulong,
        planes: *mut *mut c_uchar,
        w: c_int,
        strides: *mut c_int,
        hh: c_int,
        flags: c_int,
    ) -> c_int;
    pub(super) fn tjPlaneWidth(component: c_int, w: c_int, subsamp: c_int) -> c_int;
    pub(super) fn tjPlaneHeight(component: c_int, h: c_int, subsamp: c_int) -> c_int;
    pub(super) fn tjGetErrorStr2(h: Handle) -> *const c_char;
}

/// What csrc/jpeg_encode.c takes (`struct dr_src`): `kind` 0 grey, 1 RGB, 2 YCbCr planes.
#[cfg(libjpeg)]
#[repr(C)]
pub(super) struct DrSrc {
    pub width: c_int,
    pub height: c_int,
    pub kind: c_int,
    pub data: [*const c_uchar; 3],
    pub stride: [c_int; 3],
    pub plane_w: [c_int; 3],
    pub plane_h: [c_int; 3],
}

// csrc/: each returns 0 on success; on failure it writes a NUL-terminated message of at most
// `errlen` bytes into `err`. A JPEG it returns in `out` was malloc'd by it and is freed with
// `dr_jpeg_free`. The transcoder and the region decoder return 1 for "not this layout".
// `subsamp` takes TurboJPEG's codes (0 4:4:4, 1 4:2:2, 2 4:2:0).
#[cfg(libjpeg)]
extern "C" {
    pub(super) fn dr_jpeg_encode(
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
    pub(super) fn dr_jpeg_free(buf: *mut c_uchar);
    pub(super) fn dr_jpeg_transcode(
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
    pub(super) fn dr_jpeg_decode_region(
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
