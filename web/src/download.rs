//! Downloads of originals and outputs: the bytes stream from the store to the client (never
//! held whole in memory), with the HTTP that lets browsers and download managers avoid
//! fetching them again — a strong `ETag` and `If-None-Match` → `304`, single `Range`
//! requests → `206` (`416` outside the object), `Accept-Ranges: bytes`, a cache policy —
//! and a `Content-Disposition` whose name survives in any script (`filename*`, RFC 6266/5987).
//!
//! With `DARKROOM_DOWNLOAD_REDIRECT=presigned` on the aws backend the web app answers `307`
//! to a short-lived presigned S3 URL instead, so the bytes go from S3 to the browser without
//! passing through it; the caller has checked ownership before.
//!
//! Cache policy: a job's original and its outputs never change at their URL once the job lists
//! them (job ids are unique; outputs are written before the job is `done`), so they are
//! `private` (only the owner's browser may keep them: never a shared cache), `immutable` (no
//! revalidation while fresh) for `DARKROOM_DOWNLOAD_MAX_AGE` seconds (a day by default: it
//! bounds how long a deleted photo lingers in the owner's cache); after that the `ETag` makes
//! the check a `304`.

use std::time::Duration;

use actix_web::body::SizedStream;
use actix_web::http::{header, Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse};
use darkroom_core::config::Backend;
use darkroom_core::store::{ByteRange, ObjectMeta, ResponseHeaders, Served, StoreError};
use serde_json::json;

use crate::error::ApiError;
use crate::AppState;

/// How a download is answered.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedirectMode {
    /// The web app streams the bytes from the store.
    Proxy,
    /// On the aws backend, `307` to a presigned GetObject URL (the embedded backend proxies).
    Presigned,
}

/// Settings of downloads (flattened into the web app's command line).
#[derive(clap::Args, Clone, Debug)]
pub struct DownloadArgs {
    /// `proxy`: the web app streams originals and outputs from the store; `presigned`: on the
    /// aws backend it answers 307 to a short-lived presigned S3 URL instead (after checking
    /// ownership), so the bytes bypass the web app. The embedded backend always proxies.
    #[arg(long, env = "DARKROOM_DOWNLOAD_REDIRECT", value_enum, default_value_t = RedirectMode::Proxy)]
    pub download_redirect: RedirectMode,
    /// Seconds a presigned download URL stays valid (anyone holding it may fetch the file
    /// until then).
    #[arg(long, env = "DARKROOM_DOWNLOAD_REDIRECT_TTL", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub download_redirect_ttl: u64,
    /// Seconds a browser may reuse a downloaded original or output without asking again
    /// (`Cache-Control: private, max-age=…, immutable`); 0: it asks every time (a 304 when unchanged).
    #[arg(long, env = "DARKROOM_DOWNLOAD_MAX_AGE", default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(0..=31_536_000))]
    pub download_max_age: u64,
}

/// The download settings in force.
#[derive(Clone, Debug)]
pub struct Downloads {
    pub redirect: RedirectMode,
    pub redirect_ttl: Duration,
    pub cache_control: String,
}

impl Downloads {
    pub fn new(args: &DownloadArgs) -> Downloads {
        let cache_control = match args.download_max_age {
            0 => "private, no-cache".to_string(),
            s => format!("private, max-age={s}, immutable"),
        };
        Downloads {
            redirect: args.download_redirect,
            redirect_ttl: Duration::from_secs(args.download_redirect_ttl),
            cache_control,
        }
    }
}

/// The store's origin when downloads redirect to presigned URLs there (the page's images then
/// load from it, and the Content-Security-Policy must allow that), found by presigning a URL
/// for a key nobody reads; `None` when downloads are proxied.
pub async fn redirect_origin(args: &DownloadArgs, backend: &Backend) -> anyhow::Result<Option<String>> {
    if args.download_redirect != RedirectMode::Presigned {
        return Ok(None);
    }
    let probe = backend
        .store
        .presigned_get(darkroom_protocol::keys::PRESIGN_PROBE, Duration::from_secs(60), &ResponseHeaders::default())
        .await
        .map_err(|e| anyhow::anyhow!("DARKROOM_DOWNLOAD_REDIRECT=presigned: cannot presign a URL: {e}"))?;
    let Some(url) = probe else {
        tracing::warn!(
            "DARKROOM_DOWNLOAD_REDIRECT=presigned has no effect on the embedded backend (a folder cannot presign \
             URLs): the web app serves downloads itself"
        );
        return Ok(None);
    };
    let origin = crate::security_headers::origin_of(&url)
        .ok_or_else(|| anyhow::anyhow!("DARKROOM_DOWNLOAD_REDIRECT=presigned: the store's URL {url} has no origin"))?;
    tracing::info!(%origin, ttl_s = args.download_redirect_ttl, "downloads redirect to presigned URLs");
    Ok(Some(origin))
}

/// One file to download.
pub struct Download<'a> {
    pub key: &'a str,
    pub content_type: &'a str,
    /// The name the browser should save it as (any script).
    pub filename: &'a str,
    /// `attachment` (save) rather than `inline` (show).
    pub attachment: bool,
}

/// `photo.jpg` → `photo`: the start of the names a job's downloads are saved under.
pub fn stem(filename: &str) -> &str {
    filename.rsplit_once('.').map(|(s, _)| s).filter(|s| !s.is_empty()).unwrap_or(filename)
}

/// A name safe in any file system and archive: no folders, no control characters.
pub fn file_name(name: &str) -> String {
    let cleaned: String =
        name.chars().map(|c| if c.is_control() || matches!(c, '/' | '\\' | ':') { '_' } else { c }).collect();
    let trimmed = cleaned.trim_start_matches('.').trim();
    if trimmed.is_empty() {
        "download".to_string()
    } else {
        trimmed.to_string()
    }
}

/// `Content-Disposition` for `filename`: an ASCII `filename="…"` for old clients (other
/// characters become `_`) and `filename*=UTF-8''…` with the name itself, percent-encoded
/// (RFC 6266 §4.3, RFC 5987): every current browser prefers the second.
pub fn content_disposition(attachment: bool, filename: &str) -> String {
    let kind = if attachment { "attachment" } else { "inline" };
    let name = file_name(filename);
    let ascii: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || ".-_".contains(c) { c } else { '_' }).collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        // RFC 5987 attr-char: these go as they are, everything else percent-encoded.
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// The one range of a `Range` header, `None` if there is none or it is not one byte range this
/// server honours (several ranges, another unit, bad syntax): RFC 9110 lets a server ignore
/// those and send the whole object with `200`.
pub fn parse_range(value: &str) -> Option<ByteRange> {
    let spec = value.trim().strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let num = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
    };
    match (first.trim().is_empty(), last.trim().is_empty()) {
        (true, false) => Some(ByteRange::Suffix(num(last)?)),
        (false, true) => Some(ByteRange::From(num(first)?)),
        (false, false) => {
            let (first, last) = (num(first)?, num(last)?);
            (first <= last).then_some(ByteRange::Span { first, last })
        }
        (true, true) => None,
    }
}

/// Whether an `If-None-Match` value matches `etag` (weak comparison, RFC 9110 §13.1.2).
pub fn none_match(value: &str, etag: &str) -> bool {
    let opaque = |t: &str| t.trim().trim_start_matches("W/").to_string();
    value.trim() == "*" || value.split(',').any(|t| opaque(t) == opaque(etag))
}

/// Whether an `If-Range` value lets the range apply: the same strong `ETag` (a date is not
/// trusted here: the whole object is sent).
fn if_range_holds(value: &str, etag: &str) -> bool {
    let v = value.trim();
    !v.starts_with("W/") && v == etag
}

fn header(req: &HttpRequest, name: header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Headers every answer about the object carries (`200`, `206`, `304`, `416`).
fn validators(res: &mut actix_web::HttpResponseBuilder, meta: &ObjectMeta, cache_control: &str) {
    res.insert_header((header::ETAG, meta.etag.clone()))
        .insert_header((header::CACHE_CONTROL, cache_control.to_string()))
        .insert_header((header::ACCEPT_RANGES, "bytes"));
    if let Some(t) = meta.last_modified {
        res.insert_header((header::LAST_MODIFIED, t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()));
    }
}

/// Answer a GET (or HEAD) of `d` (its owner already checked): a redirect, `304`, `206`, `416`
/// or `200`, streaming the bytes.
pub async fn respond(req: &HttpRequest, state: &AppState, d: Download<'_>) -> Result<HttpResponse, ApiError> {
    let settings = &state.downloads;
    let store = &state.backend.store;
    let disposition = content_disposition(d.attachment, d.filename);

    if settings.redirect == RedirectMode::Presigned {
        let headers = ResponseHeaders {
            content_type: Some(d.content_type.to_string()),
            content_disposition: Some(disposition.clone()),
            cache_control: Some(settings.cache_control.clone()),
        };
        if let Some(url) = store.presigned_get(d.key, settings.redirect_ttl, &headers).await? {
            return Ok(HttpResponse::TemporaryRedirect()
                .insert_header((header::LOCATION, url))
                // The URL expires: neither it nor this answer may be reused.
                .insert_header((header::CACHE_CONTROL, "private, no-store"))
                .finish());
        }
    }

    // A browser revalidating its copy, or a HEAD request: a metadata-sized question to the
    // store, no body read.
    let inm = header(req, header::IF_NONE_MATCH);
    let head = req.method() == Method::HEAD;
    if inm.is_some() || head {
        let meta = store.stat(d.key).await?.ok_or(ApiError::NotFound)?;
        if inm.is_some_and(|v| none_match(v, &meta.etag)) {
            let mut res = HttpResponse::NotModified();
            validators(&mut res, &meta, &settings.cache_control);
            return Ok(res.finish());
        }
        if head {
            // What a GET without a range would answer, without the body (ranges are for GETs).
            let mut res = HttpResponse::Ok();
            validators(&mut res, &meta, &settings.cache_control);
            res.content_type(d.content_type).insert_header((header::CONTENT_DISPOSITION, disposition));
            let none = futures_util::stream::empty::<Result<bytes::Bytes, StoreError>>();
            return Ok(res.body(SizedStream::new(meta.size, none)));
        }
    }

    let range = header(req, header::RANGE).and_then(parse_range);
    let mut object = store.get_stream(d.key, range).await?;
    if range.is_some() {
        if let Some(if_range) = header(req, header::IF_RANGE) {
            if !if_range_holds(if_range, &object.meta.etag) {
                // The client's partial copy is of other bytes: the whole object instead.
                object = store.get_stream(d.key, None).await?;
            }
        }
    }
    let meta = object.meta.clone();
    let (status, length) = match object.served {
        Served::Whole => (StatusCode::OK, meta.size),
        Served::Part { first, last } => (StatusCode::PARTIAL_CONTENT, last - first + 1),
        Served::Unsatisfiable => {
            let mut res = HttpResponse::RangeNotSatisfiable();
            validators(&mut res, &meta, &settings.cache_control);
            return Ok(res.insert_header((header::CONTENT_RANGE, format!("bytes */{}", meta.size))).json(json!({
                "error": {
                    "code": "range_not_satisfiable",
                    "message": format!(
                        "the range asked for lies outside the file, which is {} bytes long; ask for bytes 0-{} or drop the Range header",
                        meta.size,
                        meta.size.saturating_sub(1)
                    ),
                }
            })));
        }
    };
    let mut res = HttpResponse::build(status);
    validators(&mut res, &meta, &settings.cache_control);
    res.content_type(d.content_type).insert_header((header::CONTENT_DISPOSITION, disposition));
    if let Served::Part { first, last } = object.served {
        res.insert_header((header::CONTENT_RANGE, format!("bytes {first}-{last}/{}", meta.size)));
    }
    let key = d.key.to_string();
    let body = futures_util::StreamExt::map(object.body, move |chunk| {
        chunk.map_err(|e: StoreError| {
            // Headers are gone already: the client sees the connection cut short of Content-Length.
            tracing::warn!(error = %e, %key, "download cut short");
            e
        })
    });
    Ok(res.body(SizedStream::new(length, body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_ascii_names_survive_in_filename_star() {
        let d = content_disposition(false, "façade 東京.jpg");
        assert_eq!(d, "inline; filename=\"fa_ade___.jpg\"; filename*=UTF-8''fa%C3%A7ade%20%E6%9D%B1%E4%BA%AC.jpg");
        let a = content_disposition(true, "../../etc/pass\"wd\r\n.jpg");
        assert!(a.starts_with("attachment; filename=\"_.._etc_pass_wd__.jpg\""), "{a}");
        assert!(!a.contains('/') && !a.contains('\r') && !a.contains("\"wd"), "{a}");
    }

    #[test]
    fn ranges_parse_as_rfc_9110_says() {
        use ByteRange::*;
        assert_eq!(parse_range("bytes=0-99"), Some(Span { first: 0, last: 99 }));
        assert_eq!(parse_range("bytes=100-"), Some(From(100)));
        assert_eq!(parse_range("bytes=-5"), Some(Suffix(5)));
        assert_eq!(parse_range(" bytes= 3 - 4 "), Some(Span { first: 3, last: 4 }));
        for ignored in ["bytes=0-1,5-6", "items=0-1", "bytes=-", "bytes=5-1", "bytes=a-b", "bytes=+1-2", "0-1"] {
            assert_eq!(parse_range(ignored), None, "{ignored}");
        }
    }

    #[test]
    fn if_none_match_compares_weakly() {
        assert!(none_match("\"abc\"", "\"abc\""));
        assert!(none_match("W/\"abc\"", "\"abc\""));
        assert!(none_match("\"x\", \"abc\"", "\"abc\""));
        assert!(none_match("*", "\"abc\""));
        assert!(!none_match("\"abd\"", "\"abc\""));
        assert!(if_range_holds("\"abc\"", "\"abc\""));
        assert!(!if_range_holds("W/\"abc\"", "\"abc\""));
    }
}
