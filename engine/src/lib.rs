//! Darkroom's image engine: turn the bytes of an uploaded photo into edited outputs.
//!
//! Pure by design: no files, no network, no async. The processor hands it bytes and a list
//! of outputs and gets encoded bytes back, so it can be benchmarked, fuzzed and tested alone
//! and builds fast in release.
//!
//! The pipeline follows the module names: [`probe`] reads the header and enforces [`limits`]
//! before anything is allocated, [`decode`] decodes and auto-orients, [`ops`] edits, [`encode`]
//! writes the output format, and [`pipeline`] runs one decode for many outputs.

pub mod capabilities;
pub mod color_management;
pub mod decode;
pub mod encode;
pub mod error;
pub mod heif;
pub mod jpeg;
pub mod limits;
pub mod memory;
pub mod ops;
pub mod pipeline;
pub mod probe;
mod shrink;
pub mod spec;

pub use capabilities::{capabilities, Capabilities};
pub use encode::{Chroma, Format};
pub use error::EngineError;
pub use limits::Limits;
pub use ops::{Color, Filter, Fit, Gravity, Op};
pub use pipeline::{plan, process, process_each, process_with, resource_keys, Icc, OutputSpec, Rendered, Resources};
pub use probe::{probe, InputFormat, Probe};
