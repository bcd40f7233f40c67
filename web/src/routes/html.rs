//! HTML answers that are not a page of their own: the error page, and [`HtmlError`], the error
//! type of the pages and their form posts. A leaf: the pages, the form handlers under
//! [`super::jobs`] and the middlewares that refuse a browser ([`crate::csrf`],
//! [`crate::rate_limit`]) use it, and it uses none of them.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use askama::Template;
use askama_web::WebTemplate;

use crate::error::ApiError;
use crate::jobs::page::PageError;

/// What the HTML pages and form posts refuse, as a page.
#[derive(Debug, thiserror::Error)]
pub enum HtmlError {
    /// What the API would refuse (a job not found, an upload refused, an action that does not
    /// apply): the same status, its message on a page.
    #[error(transparent)]
    Refused(#[from] ApiError),
    /// A gallery page that does not exist (a `?cursor=` this server did not give out).
    #[error("{0}")]
    NoSuchPage(PageError),
}

impl ResponseError for HtmlError {
    fn status_code(&self) -> StatusCode {
        match self {
            HtmlError::Refused(e) => e.status_code(),
            HtmlError::NoSuchPage(_) => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            HtmlError::Refused(e) => {
                if e.status_code().is_server_error() {
                    tracing::error!(error = %e, "page request failed");
                }
                let body = e.body();
                error_response(e.status_code(), "That did not work", body["error"]["message"].as_str().unwrap_or(""))
            }
            HtmlError::NoSuchPage(e) => error_response(self.status_code(), "That page does not exist", &e.to_string()),
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "error.html")]
struct ErrorPage {
    title: String,
    message: String,
}

/// An HTML error page.
pub fn error_response(status: StatusCode, title: &str, message: &str) -> HttpResponse {
    let page = ErrorPage { title: title.into(), message: message.into() };
    HttpResponse::build(status).content_type("text/html; charset=utf-8").body(page.render().unwrap_or_default())
}
