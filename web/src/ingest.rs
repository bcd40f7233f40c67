//! Ingest: an upload becomes an original in the store, a job record and a job message.
//!
//! Files are checked by content (never by name) and against the limits from their header
//! before anything is stored; a recipe is validated before any file is stored, so a bad
//! request leaves nothing behind.

use actix_multipart::Multipart;
use bytes::{Bytes, BytesMut};
use chrono::Utc;
use darkroom_core::engine::{self, EngineError, OutputSpec};
use darkroom_core::keys;
use darkroom_core::message::{JobMessage, JobState};
use darkroom_core::recipe;
use futures_util::TryStreamExt;

use crate::error::ApiError;
use crate::jobs::{JobRecord, TimelineEntry};
use crate::AppState;

/// Most files in one upload request.
pub const MAX_FILES: usize = 50;

/// A parsed multipart upload.
#[derive(Default)]
pub struct Upload {
    pub files: Vec<(String, Bytes)>,
    pub recipe: Option<String>,
    /// Form posts (no JavaScript) send a preset name instead of a JSON recipe.
    pub preset: Option<String>,
}

impl Upload {
    /// The recipe JSON text, from the `recipe` part or the `preset` form field.
    fn recipe_text(&self) -> Option<String> {
        match (&self.recipe, &self.preset) {
            (Some(r), _) if !r.trim().is_empty() => Some(r.clone()),
            (_, Some(p)) if !p.trim().is_empty() => Some(serde_json::json!({ "preset": p.trim() }).to_string()),
            _ => None,
        }
    }
}

/// Read the multipart body: `file` parts (any number), one `recipe` part, or a `preset` field.
pub async fn read_multipart(mut payload: Multipart, max_file_bytes: u64) -> Result<Upload, ApiError> {
    let mut upload = Upload::default();
    let total_limit = max_file_bytes.saturating_mul(4).max(200 * 1024 * 1024);
    let mut total: u64 = 0;
    while let Some(mut field) = payload.try_next().await.map_err(|e| ApiError::BadUpload(e.to_string()))? {
        let name = field.name().unwrap_or_default().to_string();
        let filename = field.content_disposition().and_then(|cd| cd.get_filename()).map(sanitize_filename);
        let mut buf = BytesMut::new();
        while let Some(chunk) = field.try_next().await.map_err(|e| ApiError::BadUpload(e.to_string()))? {
            total += chunk.len() as u64;
            if total > total_limit {
                return Err(ApiError::UploadTooLarge { limit: total_limit });
            }
            // Stop buffering past the per-file limit; what is kept is still over it, so the
            // engine reports the real problem (file too large).
            if (buf.len() as u64) <= max_file_bytes {
                buf.extend_from_slice(&chunk);
            }
        }
        match name.as_str() {
            "file" | "files" | "file[]" => {
                if upload.files.len() >= MAX_FILES {
                    return Err(ApiError::BadUpload(format!("at most {MAX_FILES} files per request")));
                }
                // A form with an empty file picker still sends an empty, nameless part.
                let filename = filename.unwrap_or_default();
                if filename.is_empty() && buf.is_empty() {
                    continue;
                }
                let filename =
                    if filename.is_empty() { format!("upload-{}", upload.files.len() + 1) } else { filename };
                upload.files.push((filename, buf.freeze()));
            }
            "recipe" => upload.recipe = Some(String::from_utf8_lossy(&buf).into_owned()),
            "preset" => upload.preset = Some(String::from_utf8_lossy(&buf).into_owned()),
            other => {
                return Err(ApiError::BadUpload(format!(
                    "unexpected form field `{other}`; send `file` parts and one `recipe` part"
                )))
            }
        }
    }
    Ok(upload)
}

fn sanitize_filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    base.chars().filter(|c| !c.is_control()).take(200).collect::<String>().trim().to_string()
}

/// Would the outputs of this photo stay within the size limits? Planned from the header's size
/// in both orientations (the header's size is before EXIF orientation): refused only when
/// certain, i.e. when both exceed them. The processor plans again with the exact orientation.
fn fits(probe: &engine::Probe, outputs: &[OutputSpec], limits: &engine::Limits) -> Result<(), EngineError> {
    let (w, h) = (probe.width, probe.height);
    engine::plan(outputs, limits, |_| Ok((w, h)))
        .or_else(|e| engine::plan(outputs, limits, |_| Ok((h, w))).map_err(|_| e))
        .map(|_| ())
}

/// The outcome of a submission: the queued jobs and the files refused.
pub struct Submitted {
    pub jobs: Vec<JobRecord>,
    pub rejected: Vec<(String, EngineError)>,
}

/// Validate, store and queue. Fails as a whole only when nothing could be queued.
/// A watermark logo must be one this browser uploaded (its key holds the owner) and still be
/// in the store, so a job is never queued to fail on a logo it cannot use.
async fn check_logos(state: &AppState, owner: &str, outputs: &[OutputSpec]) -> Result<(), ApiError> {
    let mine = format!("logos/{owner}/");
    for (i, out) in outputs.iter().enumerate() {
        for (j, key) in out.ops.iter().enumerate().filter_map(|(j, op)| op.resource().map(|k| (j, k))) {
            let refuse = |code, message: &str| {
                ApiError::Recipe(recipe::RecipeError {
                    field: format!("outputs[{i}].ops[{j}].image"),
                    code,
                    message: message.to_string(),
                })
            };
            if !key.starts_with(&mine) {
                return Err(refuse(
                    "invalid_logo",
                    "this logo was uploaded from another browser; upload it again here (POST /api/logos)",
                ));
            }
            match state.backend.store.head(key).await {
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Err(refuse(
                        "logo_missing",
                        "this logo is no longer stored; upload it again (POST /api/logos)",
                    ))
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

pub async fn submit(state: &AppState, owner: &str, upload: Upload) -> Result<Submitted, ApiError> {
    let text = upload.recipe_text().ok_or(ApiError::MissingRecipe)?;
    let outputs = recipe::parse(&text, &state.limits).map_err(ApiError::Recipe)?;
    check_logos(state, owner, &outputs).await?;
    if upload.files.is_empty() {
        return Err(ApiError::MissingFile);
    }
    let mut accepted = Vec::new();
    let mut rejected = Vec::new();
    for (filename, bytes) in upload.files {
        match engine::probe(&bytes, &state.limits).and_then(|p| fits(&p, &outputs, &state.limits).map(|()| p)) {
            Ok(probe) => accepted.push((filename, bytes, probe)),
            Err(error) => rejected.push((filename, error)),
        }
    }
    if accepted.is_empty() {
        let (filename, error) = rejected.swap_remove(0);
        return Err(ApiError::File { filename, error });
    }
    let mut jobs = Vec::with_capacity(accepted.len());
    for (filename, bytes, probe) in accepted {
        jobs.push(queue_one(state, owner, filename, bytes, probe, &outputs).await?);
    }
    Ok(Submitted { jobs, rejected })
}

async fn queue_one(
    state: &AppState,
    owner: &str,
    filename: String,
    bytes: Bytes,
    probe: engine::Probe,
    outputs: &[OutputSpec],
) -> Result<JobRecord, ApiError> {
    let id = uuid::Uuid::now_v7().to_string();
    let original_key = keys::original(&id);
    let now = Utc::now();
    let record = JobRecord {
        id: id.clone(),
        owner: owner.to_string(),
        filename,
        state: JobState::Queued,
        created_at: now,
        updated_at: now,
        attempts: 0,
        worker: None,
        original_key: original_key.clone(),
        original_type: probe.format.mime().to_string(),
        original_width: probe.width,
        original_height: probe.height,
        original_bytes: bytes.len() as u64,
        requested: outputs.to_vec(),
        outputs: vec![],
        error: None,
        timeline: vec![TimelineEntry { at: now, state: JobState::Queued, worker: None, attempt: 0, note: None }],
    };
    state.backend.store.put(&original_key, bytes, probe.format.mime()).await?;
    state.book.create(&record).await?;
    let message = JobMessage { job_id: id.clone(), original_key, outputs: outputs.to_vec(), submitted_at: now };
    state.backend.jobs.send(&message.to_json()).await?;
    tracing::info!(job_id = %id, filename = %record.filename, width = probe.width, height = probe.height, "job queued");
    Ok(record)
}
