//! JSON views of a job: what the HTTP API answers and what the live streams send, built in one
//! place from a [`JobRecord`] so the two can never disagree. A leaf module: the routes and the
//! SSE stream both use it, and it uses neither.

use chrono::{DateTime, Utc};
use darkroom_protocol::lifecycle::{JobError, JobState};
use darkroom_protocol::message::OutputInfo;
use serde::Serialize;
use serde_json::json;

use darkroom_protocol::lifecycle::{JobRecord, TimelineEntry};

#[derive(Serialize)]
pub struct OutputView {
    pub name: String,
    pub url: String,
    pub format: &'static str,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
}

#[derive(Serialize)]
pub struct OriginalView {
    pub url: String,
    pub content_type: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
}

/// A job as the API shows it.
#[derive(Serialize)]
pub struct JobView {
    pub id: String,
    pub state: JobState,
    pub filename: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub attempts: u32,
    pub worker: Option<String>,
    pub outputs: Vec<OutputView>,
    /// The small image a gallery card shows (`/api/jobs/{id}/preview`), once there is one.
    pub preview_url: Option<String>,
    pub error: Option<JobError>,
    pub original: OriginalView,
    pub timeline: Vec<TimelineEntry>,
    pub links: serde_json::Value,
}

impl From<&JobRecord> for JobView {
    fn from(r: &JobRecord) -> Self {
        let base = format!("/api/jobs/{}", r.id);
        JobView {
            id: r.id.clone(),
            state: r.state,
            filename: r.filename.clone(),
            created_at: r.created_at,
            updated_at: r.updated_at,
            attempts: r.attempts,
            worker: r.worker.clone(),
            outputs: r.outputs.iter().map(|o| output_view(&base, o)).collect(),
            preview_url: card_image(r).map(|_| format!("{base}/preview")),
            error: r.error.clone(),
            original: OriginalView {
                url: format!("{base}/original"),
                content_type: r.original_type.clone(),
                width: r.original_width,
                height: r.original_height,
                bytes: r.original_bytes,
            },
            timeline: r.timeline.clone(),
            links: json!({ "self": base, "events": format!("{base}/events"), "page": format!("/jobs/{}", r.id) }),
        }
    }
}

fn output_view(base: &str, o: &OutputInfo) -> OutputView {
    OutputView {
        name: o.name.clone(),
        url: format!("{base}/outputs/{}", o.name),
        format: o.format.name(),
        width: o.width,
        height: o.height,
        bytes: o.bytes,
    }
}

/// The short form of a job the `202` answer to an upload lists: id, state, file name, links.
pub fn submitted(r: &JobRecord) -> serde_json::Value {
    let v = JobView::from(r);
    json!({ "id": v.id, "state": v.state, "filename": v.filename, "links": v.links })
}

/// What a job's gallery card shows: its preview, else its smallest output (jobs done before
/// previews existed); `None` while it has neither.
pub fn card_image(rec: &JobRecord) -> Option<&OutputInfo> {
    rec.preview
        .as_ref()
        .or_else(|| rec.outputs.iter().min_by_key(|o| (u64::from(o.width) * u64::from(o.height), o.bytes)))
}
