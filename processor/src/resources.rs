//! Objects a job's recipe refers to besides the original (watermark logos): fetched from the
//! store before the image work starts, so the engine itself never does I/O.

use darkroom_core::store::{ObjectStore, StoreError};
use darkroom_engine::{self as engine, OutputSpec, Resources};

use crate::failure::Failure;

/// Fetch every object `outputs` refer to. A missing logo fails the job for good (it was never
/// uploaded, or was deleted); a store that cannot be reached is worth another attempt.
pub async fn fetch(store: &dyn ObjectStore, outputs: &[OutputSpec]) -> Result<Resources, Failure> {
    let mut resources = Resources::new();
    for key in engine::resource_keys(outputs) {
        match store.get(&key).await {
            Ok(bytes) => {
                resources.insert(key, bytes.to_vec());
            }
            Err(StoreError::NotFound(_)) => return Err(Failure::logo_missing(&key)),
            // No access to `logos/`: this processor is misconfigured (crate::misconfig).
            Err(StoreError::Misconfigured(m)) => return Err(Failure::Configuration(m)),
            Err(other) => return Err(Failure::Transient(format!("could not fetch the logo {key}: {other}"))),
        }
    }
    Ok(resources)
}
