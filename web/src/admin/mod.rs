//! The admin page (`/ops`) and what it shows, under one name so nothing in the web app is
//! mistaken for the engine's ops or the processor's worker:
//! - [`page`]: the page itself, its sign-in (admin token, signed session cookies, limits on
//!   wrong tokens) and the redrive of dead-lettered jobs;
//! - [`registry`]: the workers and recent job activity the page lists, kept in memory from the
//!   job book's changes and the workers' presence messages.
//!
//! The URLs (`/ops`, `/ops/login`, `/ops/logout`, `/ops/redrive`), the template
//! (`templates/ops.html`) and the settings (`DARKROOM_ADMIN_TOKEN`, `DARKROOM_OPS_*`) keep the
//! name operators know.

pub mod page;
pub mod registry;
pub mod status;

pub use page::{routes, AdminState};
pub use registry::Registry;
