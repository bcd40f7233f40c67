//! Cross-site request forgery defence: a state-changing request (POST, PUT, PATCH, DELETE, on
//! pages and API alike: uploads, deletes, retries, logos, ops forms) that a browser says comes
//! from another site is refused with 403 before any handler runs. SameSite=Lax cookies alone
//! leave sibling subdomains ("same-site") and older browsers open.
//!
//! The rule, from what browsers send and pages cannot forge:
//! - `Sec-Fetch-Site`, when present, must be `same-origin` (or `none`: the user's own
//!   navigation). `same-site` and `cross-site` are refused.
//! - `Origin`, when present, must be this site: its `scheme://host[:port]` equals
//!   `DARKROOM_PUBLIC_ORIGIN` (for a proxy that changes the Host header), or its host and port
//!   equal the request's host (`Host`, or the `X-Forwarded-Host`/`Forwarded` host a proxy
//!   sets: a page of another site cannot add those headers without a CORS preflight, which this
//!   app never grants). `Origin: null` (sandboxed frames, privacy redirects) is refused.
//! - A request with neither header is let through: every current browser sends `Origin` on a
//!   cross-origin POST (and `Sec-Fetch-Site` on every request), so such a request is not a
//!   browser acting for a page of another site; it is curl, a script or an API client, which
//!   could send whatever it likes anyway and holds no victim's cookie.
//!
//! Safe methods (GET, HEAD, OPTIONS) are never checked: they change nothing.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use serde_json::json;

/// Where this site is reachable, as browsers see it.
#[derive(Clone, Debug, Default)]
pub struct SiteOrigin {
    /// `DARKROOM_PUBLIC_ORIGIN`, normalised (`https://photos.example.com`).
    public: Option<String>,
}

/// A `DARKROOM_PUBLIC_ORIGIN` that is not `http(s)://host[:port]`.
#[derive(Debug, thiserror::Error)]
#[error(
    "DARKROOM_PUBLIC_ORIGIN {0:?} is not an origin: give the scheme, host and port (if not the default) \
     browsers use to reach the site, without a path, e.g. https://photos.example.com"
)]
pub struct BadOrigin(pub String);

impl SiteOrigin {
    pub fn new(public: Option<&str>) -> Result<Self, BadOrigin> {
        let public = match public.map(str::trim).filter(|p| !p.is_empty()) {
            None => None,
            Some(p) => Some(normalise(p.trim_end_matches('/')).ok_or_else(|| BadOrigin(p.to_string()))?),
        };
        Ok(SiteOrigin { public })
    }

    /// Whether the configured public origin is served over HTTPS.
    pub fn is_https(&self) -> bool {
        self.public.as_deref().is_some_and(|p| p.starts_with("https://"))
    }

    /// Why a request must be refused, or `None` if it may go on.
    pub fn refuse(&self, method: &Method, headers: &header::HeaderMap, host: &str) -> Option<Refusal> {
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE) {
            return None;
        }
        let text =
            |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("(not text)").trim().to_ascii_lowercase());
        if let Some(site) = text("sec-fetch-site") {
            if site != "same-origin" && site != "none" {
                return Some(Refusal::FetchSite(site));
            }
        }
        let origin = text("origin")?;
        let ok = match normalise(&origin) {
            None => false,
            Some(o) => {
                self.public.as_deref() == Some(o.as_str())
                    || authority(&o) == strip_default_port(&host.to_ascii_lowercase(), scheme(&o))
            }
        };
        (!ok).then_some(Refusal::Origin(origin))
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `Sec-Fetch-Site` said another site (its value).
    FetchSite(String),
    /// `Origin` named another site (its value).
    Origin(String),
}

impl Refusal {
    fn message(&self) -> String {
        let from = match self {
            Refusal::FetchSite(s) => format!("your browser says it came from a {s} page"),
            Refusal::Origin(o) => format!("it came from a page of {}", o.chars().take(100).collect::<String>()),
        };
        format!(
            "This request was refused because {from}, and changes can only be made from this site's own pages. \
             Open the site itself and try again."
        )
    }
}

/// `scheme://host[:port]` lower-cased, with the scheme's default port left out; `None` if it is
/// not an http(s) origin.
fn normalise(origin: &str) -> Option<String> {
    let origin = origin.to_ascii_lowercase();
    let (scheme, rest) = origin.split_once("://")?;
    if !matches!(scheme, "http" | "https") || rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
        return None;
    }
    Some(format!("{scheme}://{}", strip_default_port(rest, scheme)))
}

fn scheme(origin: &str) -> &str {
    origin.split_once("://").map_or("", |(s, _)| s)
}

fn authority(origin: &str) -> &str {
    origin.split_once("://").map_or("", |(_, a)| a)
}

fn strip_default_port<'a>(host: &'a str, scheme: &str) -> &'a str {
    let default = if scheme == "https" { ":443" } else { ":80" };
    host.strip_suffix(default).unwrap_or(host)
}

/// Refuse state-changing requests from other sites: 403, JSON under `/api/`, a page elsewhere.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let site = req.app_data::<web::Data<SiteOrigin>>().expect("SiteOrigin is registered");
    let host = req.connection_info().host().to_string();
    let Some(refusal) = site.refuse(req.method(), req.headers(), &host) else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    tracing::warn!(
        method = %req.method(),
        path = %req.path(),
        refusal = ?refusal,
        "cross-site request refused (behind a proxy that rewrites Host? set DARKROOM_PUBLIC_ORIGIN)"
    );
    let message = refusal.message();
    let res = if req.path().starts_with("/api/") {
        HttpResponse::Forbidden().json(json!({ "error": { "code": "cross_site_request", "message": message } }))
    } else {
        crate::routes::html::error_response(StatusCode::FORBIDDEN, "Refused: request from another site", &message)
    };
    Ok(req.into_response(res).map_into_right_body())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(HeaderName::from_static(k), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    /// `refuse` with the `host` pair as the request's host.
    fn check(site: &SiteOrigin, method: &Method, pairs: &[(&'static str, &str)]) -> Option<Refusal> {
        let host = pairs.iter().find(|(k, _)| *k == "host").map_or("", |(_, v)| *v);
        site.refuse(method, &headers(pairs), host)
    }

    #[test]
    fn same_origin_and_header_less_requests_pass_others_are_refused() {
        let site = SiteOrigin::new(None).unwrap();
        let post = Method::POST;
        let host = ("host", "127.0.0.1:8080");
        let same = ("origin", "http://127.0.0.1:8080");
        assert_eq!(check(&site, &post, &[host]), None, "curl: neither header");
        assert_eq!(check(&site, &post, &[host, same]), None);
        assert_eq!(check(&site, &post, &[host, ("origin", "HTTP://127.0.0.1:8080")]), None);
        assert_eq!(check(&site, &post, &[host, same, ("sec-fetch-site", "same-origin")]), None);
        assert_eq!(check(&site, &Method::GET, &[host, ("origin", "https://evil.example")]), None);
        for bad in ["https://evil.example", "null", "http://127.0.0.1:8081", "http://127.0.0.1:8080.evil.example"] {
            let refusal = check(&site, &Method::DELETE, &[host, ("origin", bad)]);
            assert_eq!(refusal, Some(Refusal::Origin(bad.to_string())), "{bad}");
        }
        for s in ["cross-site", "same-site"] {
            let refusal = check(&site, &post, &[host, ("sec-fetch-site", s)]);
            assert_eq!(refusal, Some(Refusal::FetchSite(s.into())));
        }
        let both = check(&site, &post, &[host, same, ("sec-fetch-site", "cross-site")]);
        assert!(both.is_some(), "either header can refuse");
    }

    #[test]
    fn the_public_origin_is_accepted_behind_a_proxy() {
        let site = SiteOrigin::new(Some("https://Photos.example.com/")).unwrap();
        assert!(site.is_https());
        let h = [("host", "web:8080"), ("origin", "https://photos.example.com")];
        assert_eq!(check(&site, &Method::POST, &h), None);
        let h = [("host", "photos.example.com"), ("origin", "https://photos.example.com:443")];
        assert_eq!(check(&site, &Method::POST, &h), None, "default ports are the same origin");
        let h = [("host", "web:8080"), ("origin", "http://photos.example.com")];
        assert!(check(&site, &Method::POST, &h).is_some(), "another scheme is another origin");
        assert!(SiteOrigin::new(Some("photos.example.com")).is_err());
        assert!(SiteOrigin::new(Some("https://photos.example.com/app")).is_err());
        assert!(!SiteOrigin::new(Some("http://localhost:8080")).unwrap().is_https());
    }
}
