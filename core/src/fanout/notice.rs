//! The change notice: what one web app replica tells the others after it changed a job
//! record (or took in a worker's presence), so every replica's cache, event streams and ops
//! page follow changes made anywhere. Small by design (a claim check): it names the job and
//! its owner, and a replica that cares reads the record from the store, which stays the one
//! source of truth. A lost notice costs latency, never correctness (see `docs/scaling.md`).
//!
//! JSON, tagged by `kind` (documented in `docs/protocol.md`):
//! `{"kind":"job","job_id":…,"owner":…,"state":"done","updated_at":…,"from":"<replica>"}`,
//! `{"kind":"job_deleted","job_id":…,"owner":…,"from":…}`,
//! `{"kind":"presence","presence":{…a worker's presence…},"from":…}`,
//! `{"kind":"joined","from":…}` (a new replica: read the list of replicas again now).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use darkroom_protocol::lifecycle::JobState;
use darkroom_protocol::message::PresenceMessage;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChangeNotice {
    /// A job record was created or changed: its new state and the record's `updated_at`.
    Job { job_id: String, owner: String, state: JobState, updated_at: DateTime<Utc>, from: String },
    /// A job and its objects were deleted.
    JobDeleted { job_id: String, owner: String, from: String },
    /// A worker's presence, as the replica that consumed it from the reply queue read it.
    Presence { presence: PresenceMessage, from: String },
    /// A replica has just joined (its inbox is ready): send it notices from now on.
    Joined { from: String },
}

impl ChangeNotice {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("notices serialize")
    }

    pub fn from_json(body: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(body)
    }

    /// The replica that sent it.
    pub fn from(&self) -> &str {
        match self {
            ChangeNotice::Job { from, .. }
            | ChangeNotice::JobDeleted { from, .. }
            | ChangeNotice::Presence { from, .. }
            | ChangeNotice::Joined { from } => from,
        }
    }
}
