//! `GET /api/openapi.json`: the machine-readable description of the HTTP API (issue 16), so
//! clients can generate code and check what they send.
//!
//! The document is one hand-written JSON file in the repository, `web/openapi.json`, compiled
//! into the binary. Hand-written rather than generated from the Rust types because most of the
//! API is not typed in Rust (the handlers build their JSON with `json!`, errors come from
//! several middlewares, downloads and SSE are byte streams) and a generator would describe the
//! types, not what goes over the wire. What keeps it true is the e2e test
//! (`e2e/tests/hostile/clients.rs`, `the_openapi_document_describes_every_real_response`): it
//! drives every documented operation through HTTP on both backends, validates each response's
//! status and JSON body against the document's schema, and fails when a `/api` route the web
//! app serves is missing from the document.

use actix_web::http::header;
use actix_web::HttpResponse;

/// The document, as served.
pub const DOCUMENT: &str = include_str!("../../openapi.json");

/// `GET /api/openapi.json`.
pub async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(DOCUMENT)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_is_openapi_3_1_json() {
        let doc: serde_json::Value = serde_json::from_str(super::DOCUMENT).expect("web/openapi.json is JSON");
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
        assert!(doc["paths"]["/api/jobs"]["post"].is_object());
    }
}
