//! The contract `darkroom-web` and `darkroom-processor` share.
//!
//! Everything both sides must agree on lives here and only here: the wire format of queue
//! messages ([`message`]), what a recipe may ask for ([`recipe`]), where objects live in the
//! bucket ([`keys`]), the storage and queue seams ([`store`], [`queue`]) with their backends,
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

pub use darkroom_engine as engine;
pub use darkroom_protocol::{keys, lifecycle, message, recipe, trace};
