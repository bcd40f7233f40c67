//! Data that expires (issue 16): with `DARKROOM_RETENTION` set, a sweeper in the web app
//! deletes what nobody should keep forever, so the bucket does not grow without end and the
//! gallery never shows a job whose photo is gone:
//!
//! - whole expired jobs: a job that is final (done, failed or cancelled) and whose record last
//!   changed (`updated_at`: when it finished, or was cancelled) before now − retention goes
//!   with every key of it: original, outputs (the preview and the manifest included), owner
//!   index entry, cancel marker and record ([`JobBook::delete_expired`]). A job still queued,
//!   processing or retrying is never swept, however old. `updated_at` rather than
//!   `created_at`: a job that waited long in the queue still gives its owner the whole
//!   retention to download what it made;
//! - unused logos: a logo older than the retention (by its store time) that no job still in the
//!   store names in its recipe;
//! - expired `Idempotency-Key` records ([`crate::idempotency::is_expired_record`]).
//!
//! Several replicas may run it at once: a round starts only for the replica that holds the
//! lease ([`LEASE_KEY`]), taken and renewed by the store's conditional write
//! ([`ObjectStore::put_if`]) and valid for two intervals (the holder renews it every round),
//! so one replica sweeps per round and another takes over within two intervals after the
//! holder dies. Every delete tolerates a key that is
//! already gone (the owner deleting the same job, a lease that ran out mid-round), and each
//! deleted job is announced as a change notice ([`ChangeNotice::JobDeleted`], like a delete by
//! its owner) so the other replicas drop it from their caches.
//!
//! It paces itself: a round every `DARKROOM_RETENTION_INTERVAL` seconds, at most
//! `DARKROOM_RETENTION_BATCH` jobs, logos and records removed per round; each round logs one
//! line (`retention sweep: N jobs, M logos, K keys removed in T ms`) and counts on `/metrics`
//! (`darkroom_web_retention_removed_total`, `darkroom_web_retention_rounds_total`). A round
//! reads every job record once (to find expired jobs and the logos recipes still name): one
//! store GET per job per round, which is why the default interval is an hour.
//!
//! [`ChangeNotice::JobDeleted`]: darkroom_core::fanout::ChangeNotice::JobDeleted

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use darkroom_core::store::{ObjectStore, StoreError};
use darkroom_protocol::keys;
use darkroom_protocol::lifecycle::JobRecord;
use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::jobs::manage::ManageError;
use crate::jobs::JobBook;
use crate::metrics::{self, Round, Swept};

/// Store requests a round keeps in flight at once (record reads, job deletes): S3 answers each
/// in tens of milliseconds, so one at a time would make a round of a thousand jobs take minutes.
const CONCURRENCY: usize = 8;

/// The lease object: who sweeps now, and until when.
pub const LEASE_KEY: &str = keys::RETENTION_LEASE;

/// How long data is kept: `DARKROOM_RETENTION` (`30d`, `12h`, `90m`, `45s`; `off`: forever).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention(pub Option<Duration>);

/// Why a `DARKROOM_RETENTION` value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not a retention: write a whole number and a unit (s, m, h or d), e.g. 30d, 12h or 90m, or `off` to keep everything")]
pub struct BadRetention(String);

/// Parse a retention: `off` (or `0`), or a positive whole number with a unit `s`, `m`, `h`, `d`.
pub fn parse_retention(text: &str) -> Result<Retention, BadRetention> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("off") || t == "0" {
        return Ok(Retention(None));
    }
    let bad = || BadRetention(text.to_string());
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = t.split_at(split);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    match n.checked_mul(unit_secs) {
        Some(secs) if secs > 0 && secs <= 100 * 365 * 86_400 => Ok(Retention(Some(Duration::from_secs(secs)))),
        _ => Err(bad()),
    }
}

#[derive(clap::Args, Clone, Debug)]
pub struct RetentionArgs {
    /// How long finished jobs, unused logos and idempotency records are kept before the
    /// sweeper deletes them: a number and a unit (`30d`, `12h`, `90m`, `45s`), or `off` (keep
    /// everything until its owner deletes it).
    #[arg(long, env = "DARKROOM_RETENTION", default_value = "off", value_parser = parse_retention_arg)]
    pub retention: Retention,
    /// Seconds between two retention rounds (one replica sweeps per round).
    #[arg(long, env = "DARKROOM_RETENTION_INTERVAL", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub retention_interval: u64,
    /// Most jobs, logos and idempotency records one retention round deletes (the rest wait for
    /// the next round).
    #[arg(long, env = "DARKROOM_RETENTION_BATCH", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub retention_batch: u64,
}

fn parse_retention_arg(text: &str) -> Result<Retention, String> {
    parse_retention(text).map_err(|e| e.to_string())
}

/// Add what a round removed to the counters.
fn count(report: &Report) {
    let m = metrics::get();
    m.retention_removed(Swept::jobs, report.jobs);
    m.retention_removed(Swept::logos, report.logos);
    m.retention_removed(Swept::idempotency_records, report.idempotency_records);
    m.retention_removed(Swept::keys, report.keys);
}

/// Who holds the sweep, until when.
#[derive(Debug, Serialize, Deserialize)]
struct Lease {
    holder: String,
    until: DateTime<Utc>,
}

/// What one round removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub jobs: u64,
    pub logos: u64,
    pub idempotency_records: u64,
    pub keys: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Job(#[from] ManageError),
}

/// The sweeper of one replica.
pub struct Sweeper {
    store: Arc<dyn ObjectStore>,
    book: Arc<JobBook>,
    retention: Duration,
    interval: Duration,
    batch: u64,
    holder: String,
}

impl Sweeper {
    /// The sweeper `args` ask for, `None` when retention is off. `holder` names this replica
    /// in the lease.
    pub fn new(
        args: &RetentionArgs,
        store: Arc<dyn ObjectStore>,
        book: Arc<JobBook>,
        holder: String,
    ) -> Option<Sweeper> {
        Some(Sweeper {
            store,
            book,
            retention: args.retention.0?,
            interval: Duration::from_secs(args.retention_interval),
            batch: args.retention_batch,
            holder,
        })
    }

    /// A round every interval (the first at once) until `shutdown`.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(
            retention_s = self.retention.as_secs(),
            interval_s = self.interval.as_secs(),
            batch = self.batch,
            "retention sweeper on"
        );
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let started = Instant::now();
            match self.round().await {
                Ok(Some(r)) => {
                    metrics::get().retention_round(Round::swept);
                    tracing::info!(
                        jobs = r.jobs,
                        logos = r.logos,
                        idempotency_records = r.idempotency_records,
                        keys = r.keys,
                        "retention sweep: {} jobs, {} logos, {} keys removed in {} ms",
                        r.jobs,
                        r.logos,
                        r.keys,
                        started.elapsed().as_millis()
                    );
                }
                Ok(None) => {
                    metrics::get().retention_round(Round::skipped);
                    tracing::debug!("retention sweep: another replica holds the lease; skipped");
                }
                Err(e) => {
                    metrics::get().retention_round(Round::failed);
                    tracing::warn!(error = %e, "retention sweep stopped; what is left goes in the next round");
                }
            }
        }
    }

    /// Take (or renew) the lease for two intervals. `false` when another replica holds it.
    async fn take_lease(&self, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let seen = match self.store.get_versioned(LEASE_KEY).await {
            Ok((bytes, version)) => {
                if let Ok(lease) = serde_json::from_slice::<Lease>(&bytes) {
                    if lease.holder != self.holder && lease.until > now {
                        return Ok(false);
                    }
                }
                Some(version)
            }
            Err(StoreError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        // Two intervals: the holder renews it every interval (it keeps the lease), and a
        // replica that dies leaves it to the others after at most two.
        let until = now + chrono::Duration::from_std(self.interval * 2).expect("at most two days");
        let lease = Lease { holder: self.holder.clone(), until };
        let body = Bytes::from(serde_json::to_vec(&lease).expect("leases serialize"));
        match self.store.put_if(LEASE_KEY, body, "application/json", seen.as_ref()).await {
            Ok(_) => Ok(true),
            // Another replica took it between the read and the write.
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// One round: `None` when another replica holds the lease, else what was removed.
    pub async fn round(&self) -> Result<Option<Report>, SweepError> {
        let now = Utc::now();
        if !self.take_lease(now).await? {
            return Ok(None);
        }
        let cutoff = now - chrono::Duration::from_std(self.retention).unwrap_or(chrono::Duration::MAX);
        let mut report = Report::default();
        let mut budget = self.batch;

        // Jobs: read every record; the expired ones go, the others' logos stay.
        let mut seen: HashSet<String> = HashSet::new();
        let mut named: HashSet<String> = HashSet::new();
        let mut expired = Vec::new();
        let records: Vec<_> = stream::iter(self.job_ids().await?)
            .map(|id| async move { self.read(&id).await.map(|rec| (id, rec)) })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for read in records {
            let (id, rec) = read?;
            let Some(rec) = rec else { continue };
            seen.insert(id);
            if rec.is_expired(cutoff) && (expired.len() as u64) < budget {
                expired.push(rec);
            } else {
                named.extend(darkroom_protocol::resource_keys(&rec.requested));
            }
        }
        let deletes: Vec<_> = stream::iter(expired)
            .map(|rec| async move {
                // Read again and checked again inside: put back on the queue meanwhile, it stays.
                self.book.delete_expired(&rec.id, cutoff).await.map(|n| (rec, n))
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut failed = None;
        for deleted in deletes {
            match deleted {
                Ok((_, Some(n))) => {
                    report.jobs += 1;
                    report.keys += n as u64;
                    budget -= 1;
                }
                Ok((rec, None)) => named.extend(darkroom_protocol::resource_keys(&rec.requested)),
                Err(e) => failed = Some(e),
            }
        }
        if let Some(e) = failed {
            // What did go is counted; the rest (and the logos) wait for the next round.
            count(&report);
            return Err(e.into());
        }

        // Logos: older than the retention and named by no job left.
        let old_logos = if budget > 0 { self.old_unused_logos(cutoff, &named).await? } else { Vec::new() };
        if !old_logos.is_empty() {
            // Jobs queued since the listing above may name one of them: look once more.
            for id in self.job_ids().await? {
                if seen.contains(&id) {
                    continue;
                }
                if let Some(rec) = self.read(&id).await? {
                    named.extend(darkroom_protocol::resource_keys(&rec.requested));
                }
            }
            for key in old_logos.into_iter().filter(|k| !named.contains(k)).take(budget as usize) {
                self.store.delete(&key).await?;
                tracing::debug!(%key, "unused logo past the retention deleted");
                report.logos += 1;
                report.keys += 1;
                budget -= 1;
            }
        }

        // Idempotency-Key records past their time.
        let removed = self.expired_idempotency_records(now, budget).await?;
        report.idempotency_records += removed;
        report.keys += removed;

        count(&report);
        Ok(Some(report))
    }

    /// Delete up to `budget` `Idempotency-Key` records past their time; how many went.
    async fn expired_idempotency_records(&self, now: DateTime<Utc>, budget: u64) -> Result<u64, SweepError> {
        let mut removed = 0;
        if budget == 0 {
            return Ok(0);
        }
        for key in self.store.list(keys::IDEMPOTENCY_PREFIX).await? {
            if removed == budget {
                break;
            }
            let bytes = match self.store.get(&key).await {
                Ok(b) => b,
                Err(StoreError::NotFound(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            if crate::idempotency::is_expired_record(&bytes, now) {
                self.store.delete(&key).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The ids of every job record in the store.
    async fn job_ids(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .store
            .list(keys::JOBS_PREFIX)
            .await?
            .into_iter()
            .filter_map(|k| keys::job_id_of_record(&k).map(str::to_string))
            .filter(|id| keys::is_valid_id(id))
            .collect())
    }

    /// The record as stored (not cached); `None` when gone or unreadable (an unreadable record
    /// is left alone: only its owner or an operator can tell what it was).
    async fn read(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        match self.store.get(&keys::job_record(id)).await {
            Ok(bytes) => match serde_json::from_slice::<JobRecord>(&bytes) {
                Ok(rec) => Ok(Some(rec)),
                Err(e) => {
                    tracing::warn!(job_id = id, error = %e, "retention: unreadable job record left alone");
                    Ok(None)
                }
            },
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Logos stored before `cutoff` that `named` does not hold.
    async fn old_unused_logos(
        &self,
        cutoff: DateTime<Utc>,
        named: &HashSet<String>,
    ) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for key in self.store.list(keys::LOGOS_PREFIX).await? {
            if !keys::is_logo_key(&key) || named.contains(&key) {
                continue;
            }
            let Some(meta) = self.store.stat(&key).await? else { continue };
            // No time known: not provably old, kept.
            if meta.last_modified.is_some_and(|t| t < cutoff) {
                out.push(key);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use darkroom_protocol::lifecycle::JobState;

    #[test]
    fn retentions_parse_with_a_unit_or_off() {
        let secs = |s: u64| Ok(Retention(Some(Duration::from_secs(s))));
        assert_eq!(parse_retention("30d"), secs(30 * 86_400));
        assert_eq!(parse_retention("12h"), secs(12 * 3600));
        assert_eq!(parse_retention("90m"), secs(90 * 60));
        assert_eq!(parse_retention("2s"), secs(2));
        assert_eq!(parse_retention(" 7d "), secs(7 * 86_400));
        assert_eq!(parse_retention("off"), Ok(Retention(None)));
        assert_eq!(parse_retention("OFF"), Ok(Retention(None)));
        assert_eq!(parse_retention("0"), Ok(Retention(None)));
        for bad in ["", "30", "d", "30x", "1.5d", "-3d", "0d", "30 d", "3dd", "99999999999999999999d", "40000d"] {
            let e = parse_retention(bad).unwrap_err();
            assert!(e.to_string().contains("e.g. 30d"), "{bad}: {e}");
        }
    }

    fn record(state: JobState, updated_at: DateTime<Utc>) -> JobRecord {
        JobRecord {
            state,
            created_at: updated_at - chrono::Duration::hours(1),
            updated_at,
            attempts: 1,
            original_key: keys::original("j"),
            ..crate::jobs::tests::record()
        }
    }

    #[test]
    fn only_final_jobs_last_changed_before_the_cutoff_expire() {
        let cutoff = Utc::now() - chrono::Duration::days(30);
        let old = cutoff - chrono::Duration::seconds(1);
        let fresh = cutoff + chrono::Duration::seconds(1);
        for state in [JobState::Done, JobState::Failed, JobState::Cancelled] {
            assert!(record(state, old).is_expired(cutoff), "{state:?}");
            assert!(!record(state, fresh).is_expired(cutoff), "{state:?} changed after the cutoff");
        }
        for state in [JobState::Queued, JobState::Processing, JobState::Retrying] {
            assert!(!record(state, old - chrono::Duration::days(365)).is_expired(cutoff), "{state:?} is never swept");
        }
        // Created long ago but finished recently: kept (the clock runs from the last change).
        let mut late = record(JobState::Done, fresh);
        late.created_at = old - chrono::Duration::days(10);
        assert!(!late.is_expired(cutoff));
        assert!(!record(JobState::Done, cutoff).is_expired(cutoff), "exactly at the cutoff: kept");
    }
}
