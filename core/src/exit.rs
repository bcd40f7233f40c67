//! What a binary does with the error that stopped it: a configuration error (found anywhere in
//! the error's chain, through the store, queue and connection errors that carry one) is one line
//! and exit status 78; anything else is the usual report and status 1.
//!
//! Its own module, above the store, queue and configuration it looks through, so that
//! [`misconfig`](crate::misconfig) — the error type those modules build — depends on none of them.

use crate::misconfig::{Misconfiguration, EXIT_CONFIGURATION};

/// The first configuration error in `error`'s chain, looking through the store, queue and
/// connection errors that carry one.
pub fn find<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Misconfiguration> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(m) = e.downcast_ref::<Misconfiguration>() {
            return Some(m);
        }
        if let Some(crate::store::StoreError::Misconfigured(m)) = e.downcast_ref() {
            return Some(m);
        }
        if let Some(crate::queue::QueueError::Misconfigured(m)) = e.downcast_ref() {
            return Some(m);
        }
        if let Some(m) = e.downcast_ref::<crate::config::ConnectError>().and_then(|c| c.misconfiguration()) {
            return Some(m);
        }
        next = e.source();
    }
    None
}

/// What a binary prints and returns when `run` ended with `error`: a configuration error is
/// one line (`Error: configuration error: …`) and exit status 78, without the debug dump or
/// the backtrace anyhow would add under RUST_BACKTRACE; anything else as before (`{:?}`, 1).
pub fn report_exit(error: &anyhow::Error) -> std::process::ExitCode {
    match find(error.as_ref()) {
        Some(m) => {
            eprintln!("Error: {m}");
            std::process::ExitCode::from(EXIT_CONFIGURATION)
        }
        None => {
            eprintln!("Error: {error:?}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::misconfig::{Problem, Resource};

    #[test]
    fn is_found_through_store_and_queue_errors() {
        let m = Misconfiguration::new(Resource::Queue("q".into()), Problem::AccessDenied, "AccessDenied");
        let e = anyhow::Error::new(crate::queue::QueueError::Misconfigured(m.clone())).context("while starting");
        assert_eq!(find(e.as_ref()), Some(&m));
        let other = anyhow::anyhow!("something else");
        assert_eq!(find(other.as_ref()), None);
    }
}
