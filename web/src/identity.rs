//! Anonymous identities: each browser (or curl cookie jar) gets an owner id in a signed,
//! HttpOnly cookie; a job is visible only to the owner that created it.
//!
//! The cookie is `darkroom_id` over plain HTTP and `__Host-darkroom_id` (Secure, Path=/, no
//! Domain) when the app is served over HTTPS (`DARKROOM_COOKIE_SECURE`, or a
//! `DARKROOM_PUBLIC_ORIGIN` starting with `https://`): the prefix makes browsers refuse that
//! cookie from a sibling subdomain or a plain-HTTP page, so nobody can plant their identity in
//! another browser. In that mode an old `darkroom_id` cookie is not trusted (it could have been
//! planted that way): the browser gets a fresh identity and the old cookie is removed.
//!
//! The signing key: `DARKROOM_COOKIE_SECRET` if set; on the embedded backend otherwise a random
//! key kept at `system/cookie-key` in the data folder (private to the machine), written only if
//! absent, so replicas that start at once on one folder share one key. On the aws
//! backend the secret is required: the bucket is read by processors and outside submitters,
//! and anyone holding the key can forge every identity. [`CookieSettings::derive`] gives other
//! parts of the app (the ops sessions) keys of their own from it.
//!
//! A request without a valid cookie gets a fresh id, marked [`Fresh`]. Minting one costs
//! nothing persistent: no store write, no state in memory; something is kept only once the
//! identity does something (a job, a logo, an open event stream). Rate limits count a fresh
//! identity by its address only ([`crate::rate_limit`]), so dropping cookies escapes nothing.

use actix_web::body::MessageBody;
use actix_web::cookie::{time::Duration as CookieDuration, Cookie, CookieJar, Key, SameSite};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use bytes::Bytes;
use darkroom_core::config::BackendKind;
use darkroom_core::store::{ObjectStore, StoreError};
use darkroom_protocol::keys;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::future::{ready, Ready};

/// The identity cookie over plain HTTP (and the name every earlier version used).
pub const COOKIE: &str = "darkroom_id";
/// The identity cookie when cookies are Secure (served over HTTPS).
pub const SECURE_COOKIE: &str = "__Host-darkroom_id";
/// Shortest `DARKROOM_COOKIE_SECRET` accepted.
pub const MIN_SECRET_LEN: usize = 32;

/// Why the cookie signing key could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum CookieKeyError {
    #[error(
        "DARKROOM_COOKIE_SECRET is not set. On the aws backend the web app does not keep its cookie signing \
         key in the bucket, because processors and outside job submitters can read the bucket and the key \
         forges every browser's identity. Set DARKROOM_COOKIE_SECRET (or --cookie-secret) to a random secret of \
         at least {MIN_SECRET_LEN} characters from your secret store, the same one for every web app replica; \
         generate one with `openssl rand -hex 32`."
    )]
    MissingSecret,
    #[error(
        "DARKROOM_COOKIE_SECRET is {0} characters long; it must be at least {MIN_SECRET_LEN}. Generate one with \
         `openssl rand -hex 32`."
    )]
    ShortSecret(usize),
    #[error("cannot read or store the cookie signing key (system/cookie-key): {0}")]
    Store(#[from] StoreError),
}

/// Check the secret against the backend before connecting: the aws backend needs one.
pub fn check_secret(kind: BackendKind, secret: Option<&str>) -> Result<(), CookieKeyError> {
    match secret {
        Some(s) if s.len() < MIN_SECRET_LEN => Err(CookieKeyError::ShortSecret(s.len())),
        None if kind == BackendKind::Aws => Err(CookieKeyError::MissingSecret),
        _ => Ok(()),
    }
}

/// The caller's owner id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner(pub String);

/// Request extension: the [`Owner`] was minted for this request (it came without a valid cookie).
#[derive(Clone, Copy, Debug)]
pub struct Fresh;

pub struct CookieSettings {
    key: Key,
    secure: bool,
}

impl CookieSettings {
    /// Use `secret` if given; otherwise (embedded backend only) a random key kept in the store
    /// so identities survive restarts of the web app.
    pub async fn load(
        store: &dyn ObjectStore,
        kind: BackendKind,
        secret: Option<&str>,
        secure: bool,
    ) -> Result<Self, CookieKeyError> {
        check_secret(kind, secret)?;
        let key = match secret {
            Some(s) => Key::derive_from(s.as_bytes()),
            None => match store.get(keys::COOKIE_KEY).await {
                Ok(bytes) if bytes.len() == 64 => Key::from(&bytes),
                Ok(_) => {
                    let key = Key::generate();
                    store
                        .put(keys::COOKIE_KEY, Bytes::copy_from_slice(key.master()), "application/octet-stream")
                        .await?;
                    key
                }
                Err(StoreError::NotFound(_)) => {
                    // Only if absent: two replicas starting at once on one data folder must end
                    // up with the same key, or each would refuse the other's cookies.
                    let key = Key::generate();
                    let body = Bytes::copy_from_slice(key.master());
                    match store.put_if(keys::COOKIE_KEY, body, "application/octet-stream", None).await {
                        Ok(_) => key,
                        Err(StoreError::Conflict(_)) => match store.get(keys::COOKIE_KEY).await? {
                            bytes if bytes.len() == 64 => Key::from(&bytes),
                            _ => return Err(StoreError::Rejected("system/cookie-key is not 64 bytes".into()).into()),
                        },
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) => return Err(e.into()),
            },
        };
        Ok(CookieSettings { key, secure })
    }

    /// Settings with a given key (tests).
    pub fn with_key(key: Key, secure: bool) -> Self {
        CookieSettings { key, secure }
    }

    /// Whether cookies are marked Secure (and carry the `__Host-` prefix).
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// The identity cookie's name in this mode.
    pub fn name(&self) -> &'static str {
        if self.secure {
            SECURE_COOKIE
        } else {
            COOKIE
        }
    }

    /// A 32-byte key for `purpose`, derived from the cookie key (HMAC-SHA256 of the purpose
    /// under the master key): as stable as the cookie key, useless for signing identities.
    pub fn derive(&self, purpose: &[u8]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.key.master()).expect("HMAC takes any key length");
        mac.update(b"darkroom derived key v1\0");
        mac.update(purpose);
        mac.finalize().into_bytes().into()
    }

    fn verify(&self, cookie: &Cookie<'_>) -> Option<String> {
        let mut jar = CookieJar::new();
        jar.add_original(cookie.clone().into_owned());
        let value = jar.signed(&self.key).get(cookie.name())?.value().to_string();
        keys::is_valid_id(&value).then_some(value)
    }

    fn issue(&self, owner: &str) -> Cookie<'static> {
        let mut jar = CookieJar::new();
        jar.signed_mut(&self.key).add(
            Cookie::build(self.name(), owner.to_string())
                .path("/")
                .http_only(true)
                .same_site(SameSite::Lax)
                .secure(self.secure)
                .max_age(CookieDuration::days(365))
                .finish(),
        );
        jar.get(self.name()).expect("just added").clone()
    }
}

/// Attach an [`Owner`] to every request, issuing a new signed cookie to newcomers.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = req.app_data::<web::Data<crate::AppState>>().expect("AppState is registered").clone();
    let cookies = &state.cookies;
    let known = req.cookie(cookies.name()).and_then(|c| cookies.verify(&c));
    // Secure mode: a plain `darkroom_id` could have been planted over HTTP or by a sibling
    // subdomain; it is not trusted, only removed.
    let legacy = cookies.secure && req.cookie(COOKIE).is_some();
    let fresh = known.is_none();
    let owner = known.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    req.extensions_mut().insert(Owner(owner.clone()));
    if fresh {
        req.extensions_mut().insert(Fresh);
    }
    let mut res = next.call(req).await?;
    if fresh {
        let cookie = cookies.issue(&owner);
        res.response_mut().add_cookie(&cookie)?;
    }
    if legacy {
        let mut gone = Cookie::build(COOKIE, "").path("/").finish();
        gone.make_removal();
        res.response_mut().add_cookie(&gone)?;
    }
    Ok(res)
}

impl FromRequest for Owner {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<Owner>()
                .cloned()
                .ok_or_else(|| actix_web::error::ErrorInternalServerError("identity middleware missing")),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_aws_backend_needs_a_secret_and_says_how_to_make_one() {
        let e = check_secret(BackendKind::Aws, None).unwrap_err().to_string();
        assert!(e.contains("DARKROOM_COOKIE_SECRET") && e.contains("openssl rand -hex 32"), "{e}");
        assert!(check_secret(BackendKind::Embedded, None).is_ok());
        assert!(check_secret(BackendKind::Aws, Some(&"x".repeat(32))).is_ok());
        assert!(matches!(check_secret(BackendKind::Embedded, Some("short")), Err(CookieKeyError::ShortSecret(5))));
    }

    #[test]
    fn secure_mode_uses_a_host_prefixed_secure_cookie() {
        let key = Key::generate();
        let plain = CookieSettings::with_key(key.clone(), false).issue("0123456789abcdef0123456789abcdef");
        assert_eq!(plain.name(), COOKIE);
        assert_eq!(plain.secure(), Some(false));
        let secure = CookieSettings::with_key(key, true).issue("0123456789abcdef0123456789abcdef");
        assert_eq!(secure.name(), SECURE_COOKIE);
        assert_eq!((secure.secure(), secure.path(), secure.domain()), (Some(true), Some("/"), None));
        assert_eq!(secure.http_only(), Some(true));
    }

    #[test]
    fn a_cookie_signed_with_another_key_or_altered_is_no_identity() {
        let ours = CookieSettings::with_key(Key::generate(), false);
        let theirs = CookieSettings::with_key(Key::generate(), false);
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(ours.verify(&ours.issue(id)).as_deref(), Some(id));
        assert_eq!(ours.verify(&theirs.issue(id)), None, "foreign key");
        let mut tampered = ours.issue(id);
        let v = tampered.value().replace(id, "fedcba9876543210fedcba9876543210");
        tampered.set_value(v);
        assert_eq!(ours.verify(&tampered), None, "altered value");
    }

    #[test]
    fn derived_keys_differ_by_purpose_and_from_the_master() {
        let s = CookieSettings::with_key(Key::generate(), false);
        assert_eq!(s.derive(b"ops"), s.derive(b"ops"));
        assert_ne!(s.derive(b"ops"), s.derive(b"other"));
        assert_ne!(&s.derive(b"ops")[..], &s.key.master()[..32]);
    }
}
