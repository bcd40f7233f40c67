//! Darkroom's image engine: turn the bytes of an uploaded photo into edited outputs.
//!
//! Pure by design: no files, no network, no async. The processor hands it bytes and a list
//! of outputs and gets encoded bytes back, so it can be benchmarked, fuzzed and tested alone
//! and builds fast in release.
//!
//! The pipeline follows the module names: [`probe`] reads the header and enforces [`limits`]
//! before anything is allocated, [`decode`] decodes and auto-orients, [`ops`] edits, [`encode`]
//! writes the output format, and [`pipeline`] runs one decode for many outputs.
//!
//! What the engine is asked to do is defined in `darkroom-protocol` (the ops, the output specs,
//! the limits, the header probe, the refusals): this crate re-exports those types under their
//! old paths and keeps the pixels.

pub mod capabilities;
pub mod color_management;
pub mod decode;
pub mod encode;
pub mod error;
pub mod heif;
pub mod jpeg;
pub mod memory;
pub mod ops;
pub mod pipeline;
mod shrink;
pub mod spec;

pub use darkroom_protocol::{limits, refusal};

/// Header sniffing, from the protocol crate (the web app probes uploads with the same code).
pub mod probe {
    pub use darkroom_protocol::probe::*;
}

pub use capabilities::{capabilities, Capabilities};
// The wire types, straight from the protocol crate (re-exported under the engine's old paths).
pub use darkroom_protocol::{
    plan, resource_keys, Chroma, Color, Filter, Fit, Format, Gravity, Icc, InputFormat, Limits, Op, OutputSpec, Probe,
    Refusal,
};
pub use error::EngineError;
pub use pipeline::{process, process_each, process_with};
pub use spec::{Rendered, Resources};

/// Identify `bytes` by content and check them against `limits` (the protocol's
/// [`probe`](darkroom_protocol::probe::probe), with the engine's error type).
pub fn probe(bytes: &[u8], limits: &Limits) -> Result<Probe, EngineError> {
    Ok(darkroom_protocol::probe(bytes, limits)?)
}
