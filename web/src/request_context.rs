//! Every HTTP request's id and trace context, and its access log line.
//!
//! The [`middleware`] gives each request an id (the client's `X-Request-Id` when it is sane:
//! 1 to [`MAX_REQUEST_ID`] printable ASCII characters without spaces; otherwise a new one),
//! echoes it in the `X-Request-Id` response header and adds it as `request_id` to JSON error
//! bodies (`{"error":{"code":…,"message":…,"request_id":…}}`). It also continues the client's
//! W3C `traceparent` ([`darkroom_protocol::trace`]) or starts a new trace. Both go on a `request`
//! span around the whole request, so every log line the request causes carries `request_id`
//! and `trace_id`, the access line (`GET /api/jobs 202 12ms`, written when the body has been
//! sent, as actix's `Logger` did) included. Handlers read them with the [`RequestContext`]
//! extractor; an upload puts the trace context into each job message.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse};
use bytes::Bytes;
use darkroom_protocol::trace::{self, TraceParent};
use std::future::{ready, Ready};
use tracing::{Instrument, Span};

/// The request id header, on requests and responses.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Longest client request id taken as it is.
pub const MAX_REQUEST_ID: usize = 64;

/// What the middleware decided about a request.
#[derive(Clone, Debug)]
pub struct RequestContext {
    pub request_id: String,
    /// This request's span of its trace: what the web app passes on (in job messages).
    pub trace: TraceParent,
}

impl RequestContext {
    fn new_for(req: &HttpRequest) -> RequestContext {
        let request_id = req
            .headers()
            .get(&REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .filter(|id| is_sane(id))
            .map(str::to_owned)
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        RequestContext { request_id, trace: TraceParent::continue_or_start(incoming_trace(req).as_ref()) }
    }
}

/// A client's request id is used when it is short printable ASCII (no spaces or controls,
/// which would garble log lines and headers).
pub fn is_sane(id: &str) -> bool {
    (1..=MAX_REQUEST_ID).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// The request's `traceparent`, if it has exactly one and it is valid (the specification
/// treats several as invalid); an invalid one is said at debug level and ignored.
fn incoming_trace(req: &HttpRequest) -> Option<TraceParent> {
    let mut values = req.headers().get_all(trace::HEADER);
    let (first, more) = (values.next()?, values.next().is_some());
    let parsed = first.to_str().map_err(|_| trace::TraceParentError::NotHex).and_then(TraceParent::parse);
    match (parsed, more) {
        (Ok(tp), false) => Some(tp),
        (Ok(_), true) => {
            tracing::debug!("several traceparent headers; starting a new trace");
            None
        }
        (Err(e), _) => {
            tracing::debug!(error = %e, "ignoring an invalid traceparent header; starting a new trace");
            None
        }
    }
}

impl FromRequest for RequestContext {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    /// The middleware's decision (a fresh one where the middleware is not installed, as in
    /// some unit tests).
    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let found = req.extensions().get::<RequestContext>().cloned();
        ready(Ok(found.unwrap_or_else(|| RequestContext::new_for(req))))
    }
}

/// Give the request its id and trace context, run it inside its span, echo the id, and write
/// the access line when the response body is done.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<Logged>, actix_web::Error> {
    let started = Instant::now();
    let ctx = RequestContext::new_for(req.request());
    let span = tracing::info_span!("request", request_id = %ctx.request_id, trace_id = %ctx.trace.trace_id());
    let (method, path) = (req.method().clone(), req.path().to_owned());
    let request_id = ctx.request_id.clone();
    req.extensions_mut().insert(ctx);
    let res = match next.call(req).instrument(span.clone()).await {
        Ok(res) => res.map_into_boxed_body(),
        // Only a failing middleware inside gets here (handlers' errors are responses by now);
        // actix makes its response later, without the id header.
        Err(e) => {
            let status = e.as_response_error().status_code().as_u16();
            AccessLine { span, method, path, status, started }.write();
            return Err(e);
        }
    };
    let (http_req, mut response) = res.into_parts();
    let id = HeaderValue::from_str(&request_id).expect("a sane request id is a valid header value");
    response.headers_mut().insert(REQUEST_ID, id);
    let status = response.status().as_u16();
    if status >= 400 {
        response = with_request_id(response, &request_id);
    }
    let line = AccessLine { span, method, path, status, started };
    Ok(ServiceResponse::new(http_req, response.map_body(|_, body| Logged { body, line: Some(line) })))
}

/// Add `request_id` to a JSON error body (`{"error":{…}}`) that is already whole in memory
/// (every error body of this app is); any other body is left as it is.
fn with_request_id(response: HttpResponse<BoxBody>, request_id: &str) -> HttpResponse<BoxBody> {
    let json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return response;
    }
    let (response, body) = response.into_parts();
    let bytes = match body.try_into_bytes() {
        Ok(bytes) => bytes,
        Err(body) => return response.set_body(body),
    };
    let body = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(mut value) if value["error"].is_object() && value["error"].get("request_id").is_none() => {
            value["error"]["request_id"] = request_id.into();
            Bytes::from(serde_json::to_vec(&value).expect("a JSON value serializes"))
        }
        _ => bytes,
    };
    response.set_body(BoxBody::new(body))
}

/// The access log line of one request, written inside its span.
struct AccessLine {
    span: Span,
    method: Method,
    path: String,
    status: u16,
    started: Instant,
}

impl AccessLine {
    fn write(self) {
        let elapsed_ms = self.started.elapsed().as_millis() as u64;
        let (method, path, status) = (self.method.as_str(), self.path.as_str(), self.status);
        self.span.in_scope(|| {
            tracing::info!(target: "darkroom_web::http", method, path, status, elapsed_ms,
                "{method} {path} {status} {elapsed_ms}ms")
        });
    }
}

/// A response body that writes its request's access line once it is sent (or dropped).
pub struct Logged {
    body: BoxBody,
    line: Option<AccessLine>,
}

impl Drop for Logged {
    fn drop(&mut self) {
        if let Some(line) = self.line.take() {
            line.write();
        }
    }
}

impl MessageBody for Logged {
    type Error = <BoxBody as MessageBody>::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }

    fn try_into_bytes(mut self) -> Result<Bytes, Self> {
        match std::mem::replace(&mut self.body, BoxBody::new(())).try_into_bytes() {
            Ok(bytes) => Ok(bytes),
            Err(body) => {
                self.body = body;
                Err(self)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{test as actix_test, web, App};

    #[test]
    fn only_short_printable_request_ids_are_taken() {
        assert!(is_sane("abc-123_XYZ.~:"));
        assert!(is_sane(&"a".repeat(MAX_REQUEST_ID)));
        assert!(!is_sane(""));
        assert!(!is_sane(&"a".repeat(MAX_REQUEST_ID + 1)));
        assert!(!is_sane("has space"));
        assert!(!is_sane("tab\there"));
        assert!(!is_sane("é"));
    }

    async fn handler(ctx: RequestContext) -> HttpResponse {
        HttpResponse::Ok().body(ctx.trace.to_string())
    }

    async fn failing() -> Result<HttpResponse, crate::error::ApiError> {
        Err(crate::error::ApiError::NotFound)
    }

    #[actix_web::test]
    async fn the_id_is_echoed_the_trace_continued_and_error_bodies_name_the_id() {
        let app = actix_test::init_service(
            App::new()
                .wrap(actix_web::middleware::from_fn(middleware))
                .route("/ok", web::get().to(handler))
                .route("/missing", web::get().to(failing)),
        )
        .await;
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let req = actix_test::TestRequest::get()
            .uri("/ok")
            .insert_header(("x-request-id", "client-id-1"))
            .insert_header(("traceparent", incoming))
            .to_request();
        let res = actix_test::call_service(&app, req).await;
        assert_eq!(res.headers().get("x-request-id").unwrap(), "client-id-1");
        let body = String::from_utf8(actix_test::read_body(res).await.to_vec()).unwrap();
        let passed_on = TraceParent::parse(&body).unwrap();
        assert_eq!(passed_on.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(passed_on.parent_id(), "00f067aa0ba902b7", "the web app's own span id is passed on");

        // A garbled id and traceparent: a new id, a new trace.
        let req = actix_test::TestRequest::get()
            .uri("/missing")
            .insert_header(("x-request-id", "two words"))
            .insert_header(("traceparent", "00-zz"))
            .to_request();
        let res = actix_test::call_service(&app, req).await;
        assert_eq!(res.status(), 404);
        let id = res.headers().get("x-request-id").unwrap().to_str().unwrap().to_string();
        assert_eq!(id.len(), 32, "{id}");
        let body: serde_json::Value = actix_test::read_body_json(res).await;
        assert_eq!(body["error"]["code"], "not_found");
        assert_eq!(body["error"]["request_id"], id.as_str());
    }
}
