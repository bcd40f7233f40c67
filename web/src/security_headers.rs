//! Security headers on every response: a Content-Security-Policy with no `unsafe-inline` (the
//! one inline script and the one inline style attribute are allowed by their SHA-256 hashes),
//! `X-Content-Type-Options: nosniff` (an uploaded "photo" is never sniffed into HTML), no
//! framing, and a referrer policy that keeps job URLs on this site.
//!
//! A template that adds an inline script or style must add its hash here; the unit test below
//! recomputes the hashes from the templates, so a change to either one fails it.

use actix_web::middleware::DefaultHeaders;

/// `<script>` in templates/base.html: `document.documentElement.classList.add("js");`
const BASE_SCRIPT_SHA256: &str = "WZRJfWvsnNCPcxzZwvyhovnZGqhZaC+8gPGPRbx6wTk=";
/// `style="--pos:50%"` on the before/after slider in templates/job.html.
const SLIDER_STYLE_SHA256: &str = "i/CUvnFsx8MiYl5p6tAfQZar4RbY9TjokfKxDSAWC2I=";

pub fn content_security_policy() -> String {
    content_security_policy_with(None)
}

/// The policy, with images also allowed from `image_origin` (the store's origin when downloads
/// redirect to presigned URLs: an `<img>` of an original follows the redirect there, and CSP
/// checks the redirect's target too).
pub fn content_security_policy_with(image_origin: Option<&str>) -> String {
    let extra = image_origin.map(|o| format!(" {o}")).unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self' 'sha256-{BASE_SCRIPT_SHA256}'; \
         style-src 'self' 'unsafe-hashes' 'sha256-{SLIDER_STYLE_SHA256}'; \
         img-src 'self' data: blob:{extra}; connect-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

/// The origin (`scheme://host[:port]`) of `url`, if it has one a CSP source can name.
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    let ok = matches!(scheme, "http" | "https")
        && !host.is_empty()
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    ok.then(|| format!("{scheme}://{host}"))
}

/// The middleware that adds them (to responses that do not set their own).
pub fn headers() -> DefaultHeaders {
    headers_with(None)
}

/// [`headers`], with images also allowed from `image_origin`.
pub fn headers_with(image_origin: Option<&str>) -> DefaultHeaders {
    DefaultHeaders::new()
        .add(("Content-Security-Policy", content_security_policy_with(image_origin)))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Referrer-Policy", "same-origin"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use sha2::Digest;

    fn hash(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(s.as_bytes()))
    }

    fn template(name: &str) -> String {
        std::fs::read_to_string(format!("{}/../templates/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn every_inline_script_and_style_in_the_templates_is_allowed_by_its_hash() {
        let csp = content_security_policy();
        assert!(!csp.contains("'unsafe-inline'"));
        let mut scripts = 0;
        let mut styles = 0;
        for entry in std::fs::read_dir(format!("{}/../templates", env!("CARGO_MANIFEST_DIR"))).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let text = template(&name);
            for part in text.split("<script>").skip(1) {
                let body = part.split("</script>").next().unwrap();
                assert!(csp.contains(&hash(body)), "{name}: inline script {body:?} has no hash in the CSP");
                scripts += 1;
            }
            for part in text.split("style=\"").skip(1) {
                let body = part.split('"').next().unwrap();
                assert!(csp.contains(&hash(body)), "{name}: style attribute {body:?} has no hash in the CSP");
                styles += 1;
            }
        }
        assert_eq!((scripts, styles), (1, 1), "the templates' inline scripts and styles");
    }

    #[test]
    fn presigned_downloads_add_the_stores_origin_to_img_src() {
        let url = "https://photos.s3.eu-west-1.amazonaws.com/originals/x?X-Amz-Signature=abc";
        let origin = origin_of(url).unwrap();
        assert_eq!(origin, "https://photos.s3.eu-west-1.amazonaws.com");
        assert_eq!(origin_of("http://127.0.0.1:5000/b/k").unwrap(), "http://127.0.0.1:5000");
        assert_eq!(origin_of("javascript:alert(1)"), None);
        assert_eq!(origin_of("https://a b/"), None);
        let csp = content_security_policy_with(Some(&origin));
        assert!(csp.contains("img-src 'self' data: blob: https://photos.s3.eu-west-1.amazonaws.com;"), "{csp}");
        assert!(!content_security_policy().contains("amazonaws"));
    }
}
