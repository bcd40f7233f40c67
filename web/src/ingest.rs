//! Ingest: an upload becomes an original in the store, a job record and a job message.
//!
//! Files are checked by content (never by name) and against the limits from their header
//! before anything is stored; a recipe is validated before any file is stored, so a bad
//! request leaves nothing behind.
//!
//! No upload can exhaust the web app ([`crate::upload_limits`]): a request first takes one of
//! `DARKROOM_MAX_CONCURRENT_UPLOADS` slots (`503` with `Retry-After` when none is free) and its
//! body must arrive within `DARKROOM_UPLOAD_TIMEOUT` (`408`). File parts stream to temporary
//! files ([`crate::spool`]) and from there to the store, so memory holds a small buffer per
//! upload whatever the file's size; the `recipe` and `preset` parts are read into memory only up
//! to `DARKROOM_MAX_RECIPE_BYTES` (`413 recipe_too_large` as soon as one is longer), so parsing
//! one on the async thread is quick; part headers are bounded by [`crate::multipart_guard`].
//! The header probe (which runs libheif for HEIC) runs on a blocking thread.

use chrono::Utc;
use darkroom_protocol::keys;
use darkroom_protocol::lifecycle::{JobRecord, JobState, TimelineEntry};
use darkroom_protocol::message::JobMessage;
use darkroom_protocol::recipe;
use darkroom_protocol::trace::TraceParent;
use darkroom_protocol::{Limits, OutputSpec, Probe, Refusal};
use tokio::sync::OwnedSemaphorePermit;

use crate::error::ApiError;
use crate::multipart_guard::{Parts, Small};
use crate::spool::{self, SpoolWriter, Spooled, TempFile};
use crate::AppState;

/// Most files in one upload request.
pub const MAX_FILES: usize = 50;

/// A parsed multipart upload; its spooled files are removed when it is dropped.
#[derive(Default)]
pub struct Upload {
    pub files: Vec<(String, Spooled)>,
    pub recipe: Option<String>,
    /// Form posts (no JavaScript) send a preset name instead of a JSON recipe.
    pub preset: Option<String>,
    /// The upload slot, held until the files are stored and the jobs queued.
    slot: Option<OwnedSemaphorePermit>,
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

/// Read an upload request (`file` parts, one `recipe` part or a `preset` field) in one of the
/// upload slots and within the upload timeout.
pub async fn receive(state: &AppState, parts: Parts) -> Result<Upload, ApiError> {
    let limits = &state.uploads;
    let slot = limits.enter()?;
    let read = read_multipart(parts, state.limits.max_input_bytes, limits);
    // On the deadline the read is dropped, and with it every file spooled so far.
    let mut upload = tokio::time::timeout(limits.timeout, read).await.map_err(|_| {
        tracing::warn!(seconds = limits.timeout.as_secs(), "upload cut off: the body did not arrive in time");
        ApiError::UploadTimeout { seconds: limits.timeout.as_secs() }
    })??;
    upload.slot = Some(slot);
    Ok(upload)
}

pub(crate) fn spool_error(e: std::io::Error) -> ApiError {
    ApiError::Spool(format!("spooling an upload: {e}"))
}

/// Read the multipart body: file parts to disk (each up to `max_file_bytes`), the recipe and
/// preset parts into memory (up to the recipe limit).
async fn read_multipart(
    mut parts: Parts,
    max_file_bytes: u64,
    limits: &crate::upload_limits::UploadLimits,
) -> Result<Upload, ApiError> {
    let mut upload = Upload::default();
    let total_limit = max_file_bytes.saturating_mul(4).max(200 * 1024 * 1024);
    let mut total: u64 = 0;
    while let Some(mut field) = parts.next_part().await? {
        let name = field.name().unwrap_or_default().to_string();
        let filename = field.content_disposition().and_then(|cd| cd.get_filename()).map(sanitize_filename);
        match name.as_str() {
            "file" | "files" | "file[]" => {
                if upload.files.len() >= MAX_FILES {
                    return Err(ApiError::BadUpload(format!("at most {MAX_FILES} files per request")));
                }
                // Past the per-file limit the writer keeps nothing and only counts, so the
                // file-too-large refusal names the real size and the other files of
                // the request are still taken.
                let mut writer = SpoolWriter::create(&limits.spool_dir, max_file_bytes).await.map_err(spool_error)?;
                while let Some(chunk) = parts.next_chunk(&mut field).await? {
                    total += chunk.len() as u64;
                    if total > total_limit {
                        return Err(ApiError::UploadTooLarge { limit: total_limit });
                    }
                    writer.write(chunk).await.map_err(spool_error)?;
                }
                // A form with an empty file picker still sends an empty, nameless part.
                let filename = filename.unwrap_or_default();
                if filename.is_empty() && writer.is_empty() {
                    continue;
                }
                let filename =
                    if filename.is_empty() { format!("upload-{}", upload.files.len() + 1) } else { filename };
                upload.files.push((filename, writer.finish().await.map_err(spool_error)?));
            }
            "recipe" => {
                upload.recipe = Some(read_text(&mut parts, &mut field, "recipe", limits.max_recipe_bytes).await?)
            }
            "preset" => {
                upload.preset = Some(read_text(&mut parts, &mut field, "preset", limits.max_recipe_bytes).await?)
            }
            other => {
                return Err(ApiError::BadUpload(format!(
                    "unexpected form field `{other}`; send `file` parts and one `recipe` part"
                )))
            }
        }
    }
    Ok(upload)
}

/// A small text part, refused (`413`) as soon as it passes `limit`, before the rest is read.
async fn read_text(
    parts: &mut Parts,
    field: &mut actix_multipart::Field,
    name: &'static str,
    limit: u64,
) -> Result<String, ApiError> {
    match parts.read_small(field, limit).await? {
        Small::Whole(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Small::TooLarge { .. } => Err(ApiError::RecipeTooLarge { field: name, limit }),
    }
}

fn sanitize_filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    base.chars().filter(|c| !c.is_control()).take(200).collect::<String>().trim().to_string()
}

/// Would the outputs of this photo stay within the size limits? Planned from the header's size
/// in both orientations (the header's size is before EXIF orientation): refused only when
/// certain, i.e. when both exceed them. The processor plans again with the exact orientation.
fn fits(probe: &Probe, outputs: &[OutputSpec], limits: &Limits) -> Result<(), Refusal> {
    let (w, h) = (probe.width, probe.height);
    darkroom_protocol::plan(outputs, limits, |_| Ok((w, h)))
        .or_else(|e| darkroom_protocol::plan::<Refusal>(outputs, limits, |_| Ok((h, w))).map_err(|_| e))
        .map(|_| ())
}

/// The outcome of a submission: the queued jobs and the files refused.
pub struct Submitted {
    pub jobs: Vec<JobRecord>,
    pub rejected: Vec<(String, Refusal)>,
}

/// Validate, store and queue. Fails as a whole only when nothing could be queued.
/// A watermark logo must be one this browser uploaded (its key holds the owner) and still be
/// in the store, so a job is never queued to fail on a logo it cannot use.
async fn check_logos(state: &AppState, owner: &str, outputs: &[OutputSpec]) -> Result<(), ApiError> {
    let mine = keys::logos_of(owner);
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

/// Each job message carries `trace` (the upload request's span of its trace), so the job can
/// be followed by its trace id from this request to the processor and back.
pub async fn submit(state: &AppState, owner: &str, upload: Upload, trace: &TraceParent) -> Result<Submitted, ApiError> {
    // The text is at most DARKROOM_MAX_RECIPE_BYTES (64 KiB by default): parsing and
    // validating it here takes well under a millisecond, so it stays on the async thread.
    let text = upload.recipe_text().ok_or(ApiError::MissingRecipe)?;
    let outputs = recipe::parse(&text, &state.limits).map_err(ApiError::Recipe)?;
    check_logos(state, owner, &outputs).await?;
    // The slot stays taken (and the files on disk) until this returns.
    let Upload { files, slot: _slot, .. } = upload;
    if files.is_empty() {
        return Err(ApiError::MissingFile);
    }
    let mut accepted = Vec::new();
    let mut rejected = Vec::new();
    for (filename, spooled) in files {
        let Some(file) = spooled.file else {
            let error = Refusal::FileTooLarge { bytes: spooled.len, limit: state.limits.max_input_bytes };
            rejected.push((filename, error));
            continue;
        };
        match probe(&file, &state.limits).await?.and_then(|p| fits(&p, &outputs, &state.limits).map(|()| p)) {
            Ok(probe) => accepted.push((filename, file, spooled.len, probe)),
            Err(error) => rejected.push((filename, error)),
        }
    }
    if accepted.is_empty() {
        let (filename, error) = rejected.swap_remove(0);
        return Err(ApiError::File { filename, error });
    }
    let mut jobs = Vec::with_capacity(accepted.len());
    for (filename, file, bytes, probe) in accepted {
        jobs.push(queue_one(state, owner, filename, &file, bytes, probe, &outputs, trace).await?);
    }
    Ok(Submitted { jobs, rejected })
}

/// Probe a spooled file on a blocking thread (libheif parses HEIC containers there).
pub(crate) async fn probe(file: &TempFile, limits: &Limits) -> Result<Result<Probe, Refusal>, ApiError> {
    let (path, limits) = (file.path().to_path_buf(), *limits);
    tokio::task::spawn_blocking(move || spool::probe(&path, &limits))
        .await
        .map_err(|e| ApiError::Spool(format!("the probe task failed: {e}")))?
        .map_err(spool_error)
}

#[allow(clippy::too_many_arguments)]
async fn queue_one(
    state: &AppState,
    owner: &str,
    filename: String,
    file: &TempFile,
    bytes: u64,
    probe: Probe,
    outputs: &[OutputSpec],
    trace: &TraceParent,
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
        original_bytes: bytes,
        requested: outputs.to_vec(),
        outputs: vec![],
        preview: None,
        error: None,
        timeline: vec![TimelineEntry::queued(now)],
    };
    state.backend.store.put_file(&original_key, file.path(), probe.format.mime()).await?;
    state.book.create(&record).await?;
    let message = JobMessage {
        job_id: id.clone(),
        original_key,
        outputs: outputs.to_vec(),
        submitted_at: now,
        traceparent: Some(*trace),
    };
    state.backend.jobs.send(&message.to_json()).await?;
    crate::metrics::get().job_submitted();
    tracing::info!(job_id = %id, filename = %record.filename, width = probe.width, height = probe.height, "job queued");
    Ok(record)
}
