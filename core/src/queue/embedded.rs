//! `JobQueue` on SQLite: the embedded default. One database file (`{data_dir}/queues.sqlite3`,
//! WAL mode) shared by the web process and any number of processor processes, with the SQS
//! semantics Darkroom relies on: at-least-once delivery, visibility timeout and
//! change-visibility, receive counts, redrive to a dead-letter queue after max receives,
//! batches of up to 10, long polls that return as soon as a message arrives, approximate
//! counts, a message size limit.
//!
//! Crash safety: every operation is one SQLite transaction; a message is only gone once a
//! delete with its current receipt commits. kill -9 of any process at any moment loses no
//! message: what it had received simply becomes visible again after its visibility timeout.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::doorbell::{Doorbell, FALLBACK_POLL};
use super::{check_send, JobQueue, QueueCounts, QueueError, Received, MAX_BATCH};
use crate::misconfig::{Misconfiguration, Problem, Resource};

/// Longest a long poll waits (as SQS).
pub const MAX_WAIT: Duration = Duration::from_secs(20);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS queues (
    name TEXT PRIMARY KEY,
    visibility_ms INTEGER NOT NULL,
    dead_letter TEXT,
    max_receives INTEGER
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    message_id TEXT NOT NULL,
    body TEXT NOT NULL,
    sent_at INTEGER NOT NULL,
    visible_at INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt TEXT
);
CREATE INDEX IF NOT EXISTS messages_by_visibility ON messages(queue, visible_at, id);
";

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn db_err(e: rusqlite::Error) -> QueueError {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) =>
        {
            QueueError::Unavailable("the embedded queue database is locked by another process".into())
        }
        rusqlite::Error::SqliteFailure(f, ref text)
            if matches!(
                f.code,
                rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::PermissionDenied
            ) =>
        {
            // The folder is filled in by `in_dir` where it is known.
            QueueError::Misconfigured(Misconfiguration::new(
                Resource::DataDir(PathBuf::new()),
                Problem::ReadOnly,
                format!("embedded queue database: {}", text.clone().unwrap_or_else(|| f.to_string())),
            ))
        }
        other => QueueError::Unavailable(format!("embedded queue database: {other}")),
    }
}

/// Name the data folder in a configuration error [`db_err`] made without it.
fn in_dir(dir: &Path) -> impl Fn(QueueError) -> QueueError + '_ {
    move |e| match e {
        QueueError::Misconfigured(mut m) if m.resource == Resource::DataDir(PathBuf::new()) => {
            m.resource = Resource::DataDir(dir.to_path_buf());
            QueueError::Misconfigured(m)
        }
        other => other,
    }
}

/// Queue names are file names too (doorbells): SQS's rules, 1–80 of A-Z a-z 0-9 - _.
pub fn check_name(name: &str) -> Result<(), QueueError> {
    let ok = !name.is_empty()
        && name.len() <= 80
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(QueueError::Rejected(format!(
            "invalid queue name `{name}`: use 1-80 characters of A-Z, a-z, 0-9, '-' and '_'"
        )))
    }
}

/// The shared database and doorbells of one data folder.
pub struct EmbeddedDb {
    conn: Mutex<Connection>,
    doorbell: Doorbell,
    safety_poll: Duration,
    /// The data folder (named in configuration errors).
    dir: PathBuf,
}

/// How often a long poll looks again even without a doorbell ring (a safety net only).
pub const SAFETY_POLL: Duration = Duration::from_secs(2);

/// How a queue is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueSettings {
    pub visibility: Duration,
    /// Dead-letter queue and the receive count after which messages move there.
    pub redrive: Option<(String, u32)>,
}

impl EmbeddedDb {
    /// Open (or create) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Arc<Self>, QueueError> {
        Self::open_with(dir, SAFETY_POLL)
    }

    /// [`open`](Self::open) with another safety-net period (tests use a long one to prove
    /// that wake-ups come from the doorbell).
    pub fn open_with(dir: &Path, safety_poll: Duration) -> Result<Arc<Self>, QueueError> {
        Self::try_open(dir, safety_poll).map_err(in_dir(dir))
    }

    fn try_open(dir: &Path, safety_poll: Duration) -> Result<Arc<Self>, QueueError> {
        let folder = |what: &str, e: std::io::Error| {
            if matches!(e.kind(), std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem) {
                QueueError::Misconfigured(Misconfiguration::new(
                    Resource::DataDir(dir.to_path_buf()),
                    Problem::ReadOnly,
                    format!("cannot create {what}: {e}"),
                ))
            } else {
                QueueError::Unavailable(format!("cannot create {what} in {}: {e}", dir.display()))
            }
        };
        std::fs::create_dir_all(dir).map_err(|e| folder("the folder", e))?;
        let conn = Connection::open(dir.join("queues.sqlite3")).map_err(db_err)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(db_err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(db_err)?;
        // NORMAL in WAL mode survives any process crash (kill -9); only a power loss can drop
        // the last commits.
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(db_err)?;
        conn.execute_batch(SCHEMA).map_err(db_err)?;
        let doorbell = Doorbell::open(&dir.join("doorbells")).map_err(|e| folder("doorbells", e))?;
        Ok(Arc::new(EmbeddedDb { conn: Mutex::new(conn), doorbell, safety_poll, dir: dir.to_path_buf() }))
    }

    /// Create the queue if missing and apply `settings`.
    pub fn ensure(self: &Arc<Self>, name: &str, settings: &QueueSettings) -> Result<EmbeddedQueue, QueueError> {
        check_name(name)?;
        if let Some((dlq, _)) = &settings.redrive {
            check_name(dlq)?;
        }
        let conn = self.conn.lock().unwrap();
        conn.execute(
            "INSERT INTO queues (name, visibility_ms, dead_letter, max_receives) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(name) DO UPDATE SET visibility_ms = ?2, dead_letter = ?3, max_receives = ?4",
            params![
                name,
                settings.visibility.as_millis() as i64,
                settings.redrive.as_ref().map(|r| r.0.clone()),
                settings.redrive.as_ref().map(|r| r.1 as i64)
            ],
        )
        .map_err(db_err)
        .map_err(in_dir(&self.dir))?;
        Ok(EmbeddedQueue { db: self.clone(), name: name.to_string() })
    }

    /// The existing queue `name` (`Missing` if it is not in the database).
    pub fn open_existing(self: &Arc<Self>, name: &str) -> Result<EmbeddedQueue, QueueError> {
        check_name(name)?;
        let conn = self.conn.lock().unwrap();
        let found = conn
            .query_row("SELECT 1 FROM queues WHERE name = ?1", [name], |_| Ok(()))
            .optional()
            .map_err(db_err)
            .map_err(in_dir(&self.dir))?;
        match found {
            Some(()) => Ok(EmbeddedQueue { db: self.clone(), name: name.to_string() }),
            None => Err(QueueError::no_such_queue(name, "not in the embedded queue database")),
        }
    }

    /// Remove the queue `name` and its messages (a missing queue is fine).
    pub fn remove(&self, name: &str) -> Result<(), QueueError> {
        check_name(name)?;
        self.with_tx(|tx| {
            exec(tx, "DELETE FROM messages WHERE queue = ?1", [name]).map_err(db_err)?;
            exec(tx, "DELETE FROM queues WHERE name = ?1", [name]).map_err(db_err)?;
            Ok(())
        })?;
        self.doorbell.forget(name);
        Ok(())
    }

    /// Does a file watcher deliver cross-process wake-ups here?
    pub fn wakes_across_processes(&self) -> bool {
        self.doorbell.is_watching()
    }

    fn with_tx<T>(&self, f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, QueueError>) -> Result<T, QueueError> {
        let mut conn = self.conn.lock().unwrap();
        (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_err)?;
            let out = f(&tx)?;
            tx.commit().map_err(db_err)?;
            Ok(out)
        })()
        .map_err(in_dir(&self.dir))
    }
}

#[derive(Clone)]
pub struct EmbeddedQueue {
    db: Arc<EmbeddedDb>,
    name: String,
}

struct Polled {
    messages: Vec<Received>,
    /// When the next hidden message becomes visible again (ms since the epoch).
    next_visible: Option<i64>,
    /// Dead-letter queue that received messages in this poll.
    redriven_to: Option<String>,
}

/// Run a statement from the connection's statement cache: every queue operation uses the same
/// few statements, and SQLite parsing them again each time was a visible part of the web app's
/// CPU per upload (issue 14's profile).
fn exec(tx: &rusqlite::Transaction<'_>, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
    tx.prepare_cached(sql)?.execute(params)
}

/// [`exec`] for a statement that returns one row.
fn row<T>(
    tx: &rusqlite::Transaction<'_>,
    sql: &str,
    params: impl rusqlite::Params,
    f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    tx.prepare_cached(sql)?.query_row(params, f)
}

fn parse_receipt(receipt: &str) -> Result<(i64, &str), QueueError> {
    receipt.split_once(':').and_then(|(id, token)| Some((id.parse().ok()?, token))).ok_or_else(|| {
        QueueError::Rejected("ReceiptHandleIsInvalid: the receipt handle is not one this queue issued".into())
    })
}

impl EmbeddedQueue {
    fn settings(tx: &rusqlite::Transaction<'_>, name: &str) -> Result<(i64, Option<String>, Option<i64>), QueueError> {
        row(tx, "SELECT visibility_ms, dead_letter, max_receives FROM queues WHERE name = ?1", [name], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()
        .map_err(db_err)?
        .ok_or_else(|| QueueError::no_such_queue(name, "not in the embedded queue database"))
    }

    fn poll(&self, max: usize) -> Result<Polled, QueueError> {
        self.db.with_tx(|tx| {
            let (visibility_ms, dead_letter, max_receives) = Self::settings(tx, &self.name)?;
            let now = now_ms();
            let mut messages = Vec::new();
            let mut redriven_to = None;
            'scan: loop {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT id, message_id, body, receive_count FROM messages
                         WHERE queue = ?1 AND visible_at <= ?2 ORDER BY visible_at, id LIMIT ?3",
                    )
                    .map_err(db_err)?;
                let rows: Vec<(i64, String, String, i64)> = stmt
                    .query_map(params![self.name, now, (max - messages.len()) as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                    .map_err(db_err)?
                    .collect::<Result<_, _>>()
                    .map_err(db_err)?;
                if rows.is_empty() {
                    break;
                }
                for (id, message_id, body, count) in rows {
                    if let (Some(dlq), Some(limit)) = (&dead_letter, max_receives) {
                        if count >= limit {
                            // Received max times already: move it, as SQS's redrive does.
                            exec(tx, "UPDATE messages SET queue = ?1, visible_at = ?2, receipt = NULL WHERE id = ?3", params![dlq, now, id])
                                .map_err(db_err)?;
                            redriven_to = Some(dlq.clone());
                            continue;
                        }
                    }
                    let receipt = format!("{id}:{:016x}", rand::random::<u64>());
                    exec(tx,
                        "UPDATE messages SET receive_count = receive_count + 1, receipt = ?1, visible_at = ?2 WHERE id = ?3",
                        params![receipt, now + visibility_ms, id],
                    )
                    .map_err(db_err)?;
                    messages.push(Received { message_id, body, receipt, receive_count: (count + 1) as u32 });
                    if messages.len() >= max {
                        break 'scan;
                    }
                }
            }
            let next_visible = if messages.is_empty() {
                row(tx, "SELECT MIN(visible_at) FROM messages WHERE queue = ?1 AND visible_at > ?2", params![self.name, now], |r| r.get(0))
                    .map_err(db_err)?
            } else {
                None
            };
            Ok(Polled { messages, next_visible, redriven_to })
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&EmbeddedQueue) -> Result<T, QueueError> + Send + 'static,
    ) -> Result<T, QueueError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&this))
            .await
            .map_err(|e| QueueError::Unavailable(format!("queue task failed: {e}")))?
    }
}

#[async_trait]
impl JobQueue for EmbeddedQueue {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, body: &str) -> Result<String, QueueError> {
        Ok(self.send_batch(&[body]).await?.remove(0))
    }

    async fn send_batch(&self, bodies: &[&str]) -> Result<Vec<String>, QueueError> {
        check_send(bodies)?;
        let bodies: Vec<String> = bodies.iter().map(|b| b.to_string()).collect();
        let ids = self
            .blocking(move |q| {
                q.db.with_tx(|tx| {
                    Self::settings(tx, &q.name)?;
                    let now = now_ms();
                    let mut ids = Vec::with_capacity(bodies.len());
                    for body in &bodies {
                        let id = uuid::Uuid::new_v4().to_string();
                        exec(tx,
                            "INSERT INTO messages (queue, message_id, body, sent_at, visible_at) VALUES (?1, ?2, ?3, ?4, ?4)",
                            params![q.name, id, body, now],
                        )
                        .map_err(db_err)?;
                        ids.push(id);
                    }
                    Ok(ids)
                })
            })
            .await?;
        self.db.doorbell.ring(&self.name);
        Ok(ids)
    }

    async fn receive(&self, max: u32, wait: Duration) -> Result<Vec<Received>, QueueError> {
        if max == 0 || max as usize > MAX_BATCH {
            return Err(QueueError::BatchSize(max as usize));
        }
        let deadline = Instant::now() + wait.min(MAX_WAIT);
        let bell = self.db.doorbell.bell(&self.name);
        let watching = self.db.doorbell.is_watching();
        loop {
            // Register for a wake-up before looking, so a message sent in between is not missed.
            let notified = bell.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let polled = self.blocking(move |q| q.poll(max as usize)).await?;
            if let Some(dlq) = &polled.redriven_to {
                self.db.doorbell.ring(dlq);
            }
            let now = Instant::now();
            if !polled.messages.is_empty() || now >= deadline {
                return Ok(polled.messages);
            }
            let mut until = deadline;
            if let Some(at) = polled.next_visible {
                let in_ms = (at - now_ms()).max(0) as u64;
                until = until.min(now + Duration::from_millis(in_ms));
            }
            // A safety net only: wake-ups come from the doorbell.
            until = until.min(now + if watching { self.db.safety_poll } else { FALLBACK_POLL });
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(until.into()) => {}
            }
        }
    }

    async fn delete(&self, receipt: &str) -> Result<(), QueueError> {
        self.delete_batch(&[receipt]).await
    }

    async fn delete_batch(&self, receipts: &[&str]) -> Result<(), QueueError> {
        if receipts.is_empty() || receipts.len() > MAX_BATCH {
            return Err(QueueError::BatchSize(receipts.len()));
        }
        let parsed: Vec<(i64, String)> =
            receipts.iter().map(|r| parse_receipt(r).map(|(id, _)| (id, r.to_string()))).collect::<Result<_, _>>()?;
        self.blocking(move |q| {
            q.db.with_tx(|tx| {
                for (id, receipt) in &parsed {
                    // A stale receipt (the message was received again since) deletes nothing,
                    // and a second delete finds nothing: both succeed, as in SQS.
                    exec(
                        tx,
                        "DELETE FROM messages WHERE id = ?1 AND queue = ?2 AND receipt = ?3",
                        params![id, q.name, receipt],
                    )
                    .map_err(db_err)?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn change_visibility(&self, receipt: &str, timeout: Duration) -> Result<(), QueueError> {
        let (id, _) = parse_receipt(receipt)?;
        let receipt = receipt.to_string();
        let timeout_ms = timeout.min(Duration::from_secs(43_200)).as_millis() as i64;
        let changed = self
            .blocking(move |q| {
                q.db.with_tx(|tx| {
                    exec(
                        tx,
                        "UPDATE messages SET visible_at = ?1 WHERE id = ?2 AND queue = ?3 AND receipt = ?4",
                        params![now_ms() + timeout_ms, id, q.name, receipt],
                    )
                    .map_err(db_err)
                })
            })
            .await?;
        if changed == 0 {
            return Err(QueueError::StaleReceipt);
        }
        if timeout_ms == 0 {
            self.db.doorbell.ring(&self.name);
        }
        Ok(())
    }

    async fn counts(&self) -> Result<QueueCounts, QueueError> {
        self.blocking(|q| {
            q.db.with_tx(|tx| {
                let now = now_ms();
                let (visible, in_flight): (i64, i64) = row(tx,
                        "SELECT COALESCE(SUM(visible_at <= ?2), 0), COALESCE(SUM(visible_at > ?2), 0) FROM messages WHERE queue = ?1",
                        params![q.name, now],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .map_err(db_err)?;
                Ok(QueueCounts { visible: visible as u64, in_flight: in_flight as u64 })
            })
        })
        .await
    }
}
