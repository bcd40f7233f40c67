//! The runtime `darkroom-web` and `darkroom-processor` share.
//!
//! The wire format itself (messages, recipes, ops, keys, limits) is `darkroom-protocol`'s; this
//! crate has what both binaries run: the storage and queue seams ([`store`], [`queue`]) with their backends,
//! the typed configuration both binaries read from the environment ([`config`]), and the
//! scaling report a supervisor writes and the ops page reads ([`scaling`]).

#[cfg(feature = "backends")]
pub mod aws;
#[cfg(feature = "backends")]
pub mod config;
#[cfg(feature = "backends")]
pub mod exit;
pub mod fanout;
pub mod misconfig;
pub mod queue;
pub mod scaling;
pub mod store;
pub mod telemetry;
pub mod worker_id;
