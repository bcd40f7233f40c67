//! The protocol: everything `darkroom-web`, `darkroom-processor` and `darkroom-engine` must agree
//! on, and nothing else.
//!
//! The wire format of queue messages ([`message`]) and the trace context they carry ([`trace`]),
//! a job's states and the one function that changes them ([`lifecycle`]),
//! what a recipe may ask for ([`recipe`]), and where objects live in the bucket ([`keys`]).
//! docs/protocol.md is the prose version of this crate.

pub mod keys;
pub mod lifecycle;
pub mod message;
pub mod recipe;
pub mod trace;
