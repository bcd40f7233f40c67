//! JPEG through libjpeg-turbo, in one folder because it is one C library seen three ways:
//! `ffi` declares its C functions (TurboJPEG's and our csrc/ shim over the libjpeg API),
//! [`turbo`] wraps them safely (decode with shrink-on-load, decode to YCbCr planes, encode,
//! transcode, crop-box decode), and [`planar`] runs whole JPEG-to-JPEG jobs on the planes. The
//! dependencies go one way: planar uses turbo, turbo uses ffi; the rest of the engine calls
//! turbo (decode, encode) and planar (pipeline). Without libturbojpeg at build time only the
//! always-present parts remain ([`turbo::AVAILABLE`] is false) and the pure-Rust codecs are used.

#[cfg(turbojpeg)]
mod ffi;
pub mod planar;
pub mod turbo;
