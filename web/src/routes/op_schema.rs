//! `GET /api/ops`: the edit operations a recipe may use, as data (fields, kinds, ranges,
//! defaults, labels), so the browser's recipe builder draws its forms from the one definition
//! the server validates with (`darkroom_protocol::ops::schema`) instead of a copy in JavaScript.
//!
//! Sizes follow this server's limits (`DARKROOM_MAX_OUTPUT_DIMENSION`). The document is a few
//! kilobytes built from constants, so it is built per request rather than kept in the state.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use darkroom_protocol::ops::schema::{schema, OpSchema};
use darkroom_protocol::output::OutputSettings;
use darkroom_protocol::Limits;
use serde::Serialize;

use crate::AppState;

/// What `GET /api/ops` answers: `{"ops": [{"op", "label", "fields": [...]}, ...], "output":
/// {"quality": {"min", "max", "default"}, "speed": ..., "compression_level": ...}}`.
#[derive(Serialize)]
struct Document {
    ops: Vec<OpSchema>,
    output: OutputSettings,
}

/// The document, as served. Written straight to text (not through `serde_json::Value`), so
/// ranges such as 0.1 stay 0.1 rather than the nearest f64 of an f32.
pub fn document(limits: &Limits) -> String {
    serde_json::to_string(&Document { ops: schema(limits), output: OutputSettings::CURRENT })
        .expect("the op schema serialises")
}

/// `GET /api/ops`: the op schema the recipe builder is drawn from.
pub async fn ops(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(document(&state.limits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_every_op_with_this_servers_sizes() {
        let limits = Limits { max_output_dimension: 3000, ..Limits::default() };
        let doc: serde_json::Value = serde_json::from_str(&document(&limits)).unwrap();
        let ops = doc["ops"].as_array().unwrap();
        assert_eq!(ops.len(), darkroom_protocol::Op::NAMES.len());
        let resize = ops.iter().find(|o| o["op"] == "resize").unwrap();
        assert_eq!(resize["fields"][0]["name"], "width");
        assert_eq!(resize["fields"][0]["max"], 3000);
        let gamma = ops.iter().find(|o| o["op"] == "gamma").unwrap();
        assert_eq!(gamma["fields"][0]["min"], 0.1, "{gamma}");
    }
}
