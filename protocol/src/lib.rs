//! The protocol: everything `darkroom-web`, `darkroom-processor` and `darkroom-engine` must agree
//! on, and nothing else.
//!
//! The wire format of queue messages ([`message`]) and the trace context they carry ([`trace`]),
//! a job's states and the one function that changes them ([`lifecycle`]),
//! what a recipe may ask for ([`recipe`]): its outputs ([`output`]) and their edit operations
//! ([`ops`], with the schema the recipe builder is drawn from), where objects live in the bucket
//! ([`keys`]), and the rules every side applies before a pixel is decoded: the [`limits`], what
//! an upload is and how big ([`probe`]), and why something is refused ([`refusal`]).
//! docs/protocol.md is the prose version of this crate.
//!
//! It links no image C library: the web app depends on it and not on the engine, which
//! implements the pixels behind these types.

pub mod keys;
pub mod lifecycle;
pub mod limits;
pub mod message;
pub mod ops;
pub mod output;
pub mod probe;
pub mod recipe;
pub mod refusal;
mod text;
pub mod trace;

pub use limits::{Limits, LOGO_LIMITS};
pub use ops::{Color, Filter, Fit, Gravity, Op};
pub use output::{plan, resource_keys, Chroma, Format, Icc, OutputSpec};
pub use probe::{probe, InputFormat, Probe};
pub use refusal::Refusal;
