//! The API's error type: every failure a client of the jobs API can see, with its HTTP status
//! and a JSON body `{"error":{"code":…,"message":…,"field":…}}` that says what happened and what
//! to do ([`crate::request_context`] adds the request's `request_id` on the way out).
//!
//! One error type per handler group: this one for the jobs API (and the upload machinery it
//! shares with the logos), [`crate::routes::logos::LogoError`] for the logos,
//! [`crate::routes::html::HtmlError`] for the HTML pages and form posts. Each implements
//! actix's [`ResponseError`], so a handler returns `Result<_, ItsError>` and uses `?`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use darkroom_core::queue::QueueError;
use darkroom_core::store::StoreError;
use darkroom_protocol::recipe::RecipeError;
use darkroom_protocol::Refusal;
use serde_json::json;

use crate::jobs::page::PageError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid recipe: {0}")]
    Recipe(RecipeError),
    #[error("the request has no `recipe` part; send a JSON recipe such as {{\"preset\":\"thumbnail\"}}")]
    MissingRecipe,
    #[error("the request has no `file` part; attach one or more photos")]
    MissingFile,
    #[error("the upload could not be read: {0}")]
    BadUpload(String),
    #[error("the upload is larger than {limit} bytes in total; send fewer or smaller files")]
    UploadTooLarge { limit: u64 },
    #[error("{filename}: {error}")]
    File { filename: String, error: Refusal },
    #[error(
        "the `{field}` part is larger than {limit} bytes; a recipe is a small JSON document (see docs/protocol.md)"
    )]
    RecipeTooLarge { field: &'static str, limit: u64 },
    #[error("a part's headers (or the text between parts) are larger than {limit} bytes; send ordinary form parts")]
    PartHeadersTooLarge { limit: u64 },
    #[error("the server is busy with other uploads; try again in {retry_after} seconds")]
    Busy { retry_after: u64 },
    #[error("the upload took longer than {seconds} seconds to arrive; try again on a faster connection or send fewer files per request")]
    UploadTimeout { seconds: u64 },
    /// Spooling the upload to disk failed (disk full, …): the detail goes to the log.
    #[error("the server could not keep the upload for a moment; try again")]
    Spool(String),
    #[error("no such job")]
    NotFound,
    /// `POST /api/jobs/{id}/cancel` on a job a worker has started, or a finished one.
    #[error("the job is {0} and can no longer be cancelled; only a queued job (or one waiting to be tried again) can")]
    NotCancellable(&'static str),
    /// `DELETE /api/jobs/{id}` while the job is queued or processing.
    #[error("the job is still {0}; wait until it is done or failed")]
    NotFinished(&'static str),
    /// `POST /api/jobs/{id}/retry` on a job that did not fail.
    #[error("only a failed job can be retried; this one is {0}")]
    NotFailed(&'static str),
    /// `GET /api/jobs/{id}/outputs.zip` before the job has outputs.
    #[error("the job is {0} and has no outputs yet")]
    NoOutputs(&'static str),
    /// `GET /api/jobs/{id}/preview` before the job has a preview.
    #[error("this job has no preview: it is {0}; a preview exists once the job is done")]
    NoPreview(&'static str),
    /// A page of `GET /api/jobs` asked with a bad `cursor`, `limit` or `state`.
    #[error("{0}")]
    BadPage(PageError),
    #[error("the Idempotency-Key header {0}; send 1 to 255 visible ASCII characters (e.g. a UUID)")]
    BadIdempotencyKey(&'static str),
    #[error("this Idempotency-Key was already used with a different request (other files or another recipe); use a new key for a new request")]
    IdempotencyKeyReused,
    #[error("a request with this Idempotency-Key is still being handled; try again in {retry_after} seconds to get its answer")]
    IdempotencyKeyInUse { retry_after: u64 },
    /// The detail (endpoint, bucket, SDK message) goes to the log, never to the client.
    #[error("storage is unavailable right now; try again in a moment")]
    Store(#[from] StoreError),
    #[error("the job queue is unavailable right now; try again in a moment")]
    Queue(#[from] QueueError),
}

impl ApiError {
    pub fn code(&self) -> &str {
        match self {
            ApiError::Recipe(e) => e.code,
            ApiError::MissingRecipe => "missing_recipe",
            ApiError::MissingFile => "missing_file",
            ApiError::BadUpload(_) => "bad_upload",
            ApiError::UploadTooLarge { .. } => "upload_too_large",
            ApiError::File { error, .. } => error.code(),
            ApiError::RecipeTooLarge { .. } => "recipe_too_large",
            ApiError::PartHeadersTooLarge { .. } => "part_headers_too_large",
            ApiError::Busy { .. } => "uploads_busy",
            ApiError::UploadTimeout { .. } => "upload_timeout",
            ApiError::Spool(_) => "upload_storage_unavailable",
            ApiError::NotFound => "not_found",
            ApiError::NotCancellable(_) => "not_cancellable",
            ApiError::NotFinished(_) => "not_finished",
            ApiError::NotFailed(_) => "not_failed",
            ApiError::NoOutputs(_) => "no_outputs",
            ApiError::NoPreview(_) => "no_preview",
            ApiError::BadPage(e) => e.code(),
            ApiError::BadIdempotencyKey(_) => "invalid_idempotency_key",
            ApiError::IdempotencyKeyReused => "idempotency_key_reused",
            ApiError::IdempotencyKeyInUse { .. } => "idempotency_key_in_use",
            ApiError::Store(_) => "storage_unavailable",
            ApiError::Queue(_) => "queue_unavailable",
        }
    }

    pub fn body(&self) -> serde_json::Value {
        let mut err = json!({ "code": self.code(), "message": self.to_string() });
        match self {
            ApiError::Recipe(e) => {
                err["field"] = json!(e.field);
                err["message"] = json!(format!("{}: {}", e.field, e.message));
            }
            ApiError::MissingRecipe => err["field"] = json!("recipe"),
            ApiError::MissingFile => err["field"] = json!("file"),
            ApiError::RecipeTooLarge { field, limit } => {
                err["field"] = json!(field);
                err["limit"] = json!(limit);
            }
            ApiError::File { filename, error } => {
                err["field"] = json!("file");
                err["filename"] = json!(filename);
                err["message"] = json!(error.to_string());
            }
            ApiError::BadPage(e) => err["field"] = json!(e.code().trim_start_matches("invalid_")),
            _ => {}
        }
        json!({ "error": err })
    }
}

/// HTTP status for a refusal of an uploaded file.
pub fn file_status(e: &Refusal) -> StatusCode {
    match e {
        Refusal::NotAnImage => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Refusal::FileTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        Refusal::Empty => StatusCode::BAD_REQUEST,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

impl From<PageError> for ApiError {
    fn from(e: PageError) -> Self {
        match e {
            PageError::Store(e) => ApiError::Store(e),
            other => ApiError::BadPage(other),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Recipe(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::MissingRecipe | ApiError::MissingFile | ApiError::BadUpload(_) => StatusCode::BAD_REQUEST,
            ApiError::UploadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::File { error, .. } => file_status(error),
            ApiError::RecipeTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::PartHeadersTooLarge { .. } => StatusCode::BAD_REQUEST,
            ApiError::Busy { .. } | ApiError::Spool(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::UploadTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::NotCancellable(_)
            | ApiError::NotFinished(_)
            | ApiError::NotFailed(_)
            | ApiError::NoOutputs(_)
            | ApiError::IdempotencyKeyInUse { .. } => StatusCode::CONFLICT,
            ApiError::NoPreview(_) => StatusCode::NOT_FOUND,
            ApiError::BadPage(_) => StatusCode::BAD_REQUEST,
            ApiError::BadIdempotencyKey(_) => StatusCode::BAD_REQUEST,
            ApiError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Store(StoreError::NotFound(_)) => StatusCode::NOT_FOUND,
            ApiError::Store(_) | ApiError::Queue(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if self.status_code().is_server_error() {
            let detail = match self {
                ApiError::Store(e) => e.to_string(),
                ApiError::Queue(e) => e.to_string(),
                ApiError::Spool(e) => e.clone(),
                other => other.to_string(),
            };
            match self {
                // Expected under load, and the client is told when to come back.
                ApiError::Busy { .. } => tracing::warn!("upload refused: every upload slot is taken"),
                _ => tracing::error!(error = %self, %detail, "request failed"),
            }
        }
        let mut response = HttpResponse::build(self.status_code());
        if let ApiError::Busy { retry_after } | ApiError::IdempotencyKeyInUse { retry_after } = self {
            response.insert_header((actix_web::http::header::RETRY_AFTER, retry_after.to_string()));
        }
        response.json(self.body())
    }
}
