//! Where things live in the bucket. Deterministic, so a redelivered job overwrites its own
//! outputs instead of duplicating them.
//!
//! ```text
//! originals/{job_id}            the uploaded bytes, as uploaded
//! outputs/{job_id}/{name}.{ext} one object per output
//! outputs/{job_id}/manifest.json what a finished attempt stored (written after the outputs)
//! outputs/{job_id}/preview.small.jpg the gallery card's preview (made for every job)
//! jobs/{job_id}.json            the web app's record of the job (state, timeline)
//! owners/{owner}/{job_id}       index: which jobs belong to which browser
//! logos/{owner}/{id}.png        watermark logos uploaded by that browser (POST /api/logos)
//! cancelled/{job_id}            marker: its owner cancelled the job; a worker that receives it skips it
//! idempotency/{owner}/{sha256(key)}.json what the first POST /api/jobs with that Idempotency-Key answered
//! system/...                    the web app's own settings (e.g. its cookie key)
//! system/scaling/{supervisor}.json what a one-machine supervisor decided (the ops page shows it)
//! system/retention/lease.json   which web app replica runs the retention sweep, until when
//! system/ops-revoked/...        ops sessions signed out before they expired
//! system/readyz, system/presign-probe  keys nobody writes: the readiness check and the
//!                               presigned-download probe ask the store about them
//! ```
//!
//! Every key (and every prefix that is listed) is made here, nowhere else: a reader finds the
//! bucket's whole layout in this file.

use crate::output::Format;

pub fn original(job_id: &str) -> String {
    format!("originals/{job_id}")
}

pub fn output(job_id: &str, name: &str, format: Format) -> String {
    format!("outputs/{job_id}/{name}.{}", format.extension())
}

/// The list of outputs a worker stored for a job, written after the outputs themselves: a
/// redelivered job that finds it re-announces `done` instead of rendering again. `.json` is
/// never an output format's extension, so it cannot collide with an output.
/// Everything stored for a job next to its outputs (outputs, manifest, preview): what goes
/// when the job is deleted or expires.
pub fn outputs_of(job_id: &str) -> String {
    format!("outputs/{job_id}/")
}

pub fn output_manifest(job_id: &str) -> String {
    format!("outputs/{job_id}/manifest.json")
}

/// The name the processor gives a job's preview among the outputs it asks the engine for. A
/// dot is never in a recipe's output names (a-z, 0-9, `-`, `_`), so it cannot collide.
pub const PREVIEW_NAME: &str = "preview.small";

/// A preview fits in this many pixels each way.
pub const PREVIEW_SIZE: u32 = 320;

/// The small preview of a job that the gallery's cards show (`GET /api/jobs/{id}/preview`):
/// next to the outputs, so whatever deletes or expires a job's outputs takes it too.
pub fn preview(job_id: &str) -> String {
    output(job_id, PREVIEW_NAME, Format::Jpeg)
}

/// Where the job records are: list it for every job.
pub const JOBS_PREFIX: &str = "jobs/";

pub fn job_record(job_id: &str) -> String {
    format!("{JOBS_PREFIX}{job_id}.json")
}

/// The job id of a key [`job_record`] made; `None` for any other key.
pub fn job_id_of_record(key: &str) -> Option<&str> {
    key.strip_prefix(JOBS_PREFIX)?.strip_suffix(".json")
}

pub fn owner_prefix(owner: &str) -> String {
    format!("owners/{owner}/")
}

pub fn owner_index(owner: &str, job_id: &str) -> String {
    format!("owners/{owner}/{job_id}")
}

/// The marker the web app writes when a queued job is cancelled (the web app cannot delete a
/// queue message it did not receive); a worker checks it before rendering.
pub fn cancel_marker(job_id: &str) -> String {
    format!("cancelled/{job_id}")
}

/// The record of an `Idempotency-Key` of `owner`: `key_hash` is the hex SHA-256 of the key, so
/// any visible ASCII a client sends becomes a safe object key.
pub fn idempotency(owner: &str, key_hash: &str) -> String {
    format!("{IDEMPOTENCY_PREFIX}{owner}/{key_hash}.json")
}

/// Where every owner's `Idempotency-Key` records are (the retention sweep lists it).
pub const IDEMPOTENCY_PREFIX: &str = "idempotency/";

pub const COOKIE_KEY: &str = "system/cookie-key";

/// Ops sessions signed out before they expired, one object each under this prefix.
pub const OPS_REVOKED_PREFIX: &str = "system/ops-revoked/";

/// A key nobody writes: the readiness check (`GET /readyz`) asks the store about it.
pub const READINESS: &str = "system/readyz";

/// A key nobody reads: presigning a URL for it tells the web app the store's origin.
pub const PRESIGN_PROBE: &str = "system/presign-probe";

/// The retention sweeper's lease (`DARKROOM_RETENTION`): one web app replica sweeps per round.
pub const RETENTION_LEASE: &str = "system/retention/lease.json";

/// Where web app replicas list themselves (`core/src/fanout`: one `{replica}.json` each).
pub const REPLICAS_PREFIX: &str = "system/replicas/";

/// A replica's entry in the list.
pub fn replica(replica: &str) -> String {
    format!("{REPLICAS_PREFIX}{replica}.json")
}

/// Where supervisors (`darkroom-processor supervise`) report their scaling decisions.
pub const SCALING_PREFIX: &str = "system/scaling/";

/// The report of one supervisor (`darkroom_core::scaling::ScalingReport`).
pub fn scaling_report(supervisor: &str) -> String {
    format!("{SCALING_PREFIX}{supervisor}.json")
}

/// Job ids are generated by Darkroom (UUIDs) but may come from outside tools through the
/// queue: accept only characters that are safe in keys and URLs.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Where every owner's logos are (the retention sweep lists it).
pub const LOGOS_PREFIX: &str = "logos/";

/// A watermark logo uploaded by `owner` (POST /api/logos): `logos/{owner}/{id}.png`.
pub fn logo(owner: &str, id: &str) -> String {
    format!("{LOGOS_PREFIX}{owner}/{id}.png")
}

/// The prefix of `owner`'s logos: list it for them; a recipe may name only keys under it.
pub fn logos_of(owner: &str) -> String {
    format!("{LOGOS_PREFIX}{owner}/")
}

/// The id of a logo key ([`logo`] made it); `None` for any other key.
pub fn logo_id(key: &str) -> Option<&str> {
    let (_owner, file) = key.strip_prefix(LOGOS_PREFIX)?.split_once('/')?;
    file.strip_suffix(".png").filter(|id| is_valid_id(id))
}

/// Is `key` the shape [`logo`] makes? Recipes may refer to no other object, so a job can never
/// read originals, outputs or system objects as a "logo".
pub fn is_logo_key(key: &str) -> bool {
    let Some((owner, file)) = key.strip_prefix(LOGOS_PREFIX).and_then(|rest| rest.split_once('/')) else {
        return false;
    };
    file.strip_suffix(".png").is_some_and(is_valid_id) && is_valid_id(owner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_hold_the_keys_made_under_them() {
        assert!(logo("o1", "l1").starts_with(&logos_of("o1")));
        assert!(!logo("o10", "l1").starts_with(&logos_of("o1")));
        assert!(output("j1", "web", Format::Jpeg).starts_with(&outputs_of("j1")));
        assert!(output_manifest("j1").starts_with(&outputs_of("j1")));
        assert!(!output("j10", "web", Format::Jpeg).starts_with(&outputs_of("j1")));
        assert!(idempotency("o1", "ab").starts_with(IDEMPOTENCY_PREFIX));
    }

    #[test]
    fn ids_come_back_out_of_the_keys_that_hold_them() {
        assert_eq!(job_id_of_record(&job_record("j-1")), Some("j-1"));
        assert_eq!(job_id_of_record("jobs/j-1.txt"), None);
        assert_eq!(job_id_of_record("owners/o/j-1"), None);
        assert_eq!(logo_id(&logo("o1", "l-1")), Some("l-1"));
        assert_eq!(logo_id("logos/o1/../x.png"), None);
        assert_eq!(logo_id("outputs/o1/l1.png"), None);
    }
}
