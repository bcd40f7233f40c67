//! `GET /static/{file}`: the page script and style sheet, compiled into the binary so a
//! deployment is one file.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

const ASSETS: &[(&str, &str, &str)] = &[
    ("app.js", "text/javascript; charset=utf-8", include_str!("../../../static/app.js")),
    ("style.css", "text/css; charset=utf-8", include_str!("../../../static/style.css")),
];

/// `GET /static/{file}`.
pub async fn asset(file: web::Path<String>) -> HttpResponse {
    match ASSETS.iter().find(|(name, _, _)| *name == file.as_str()) {
        Some((_, mime, body)) => HttpResponse::Ok()
            .content_type(*mime)
            .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
            .body(*body),
        None => HttpResponse::NotFound().body("no such asset"),
    }
}
