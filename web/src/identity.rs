//! Anonymous identities: each browser (or curl cookie jar) gets an owner id in a signed,
//! HttpOnly cookie; a job is visible only to the owner that created it.
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
use darkroom_core::keys;
use darkroom_core::store::{ObjectStore, StoreError};
use std::future::{ready, Ready};

pub const COOKIE: &str = "darkroom_id";

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
    /// Use `secret` if given; otherwise a random key kept in the store so identities survive
    /// restarts of the web app.
    pub async fn load(store: &dyn ObjectStore, secret: Option<&str>, secure: bool) -> anyhow::Result<Self> {
        let key = match secret {
            Some(s) if s.len() >= 32 => Key::derive_from(s.as_bytes()),
            Some(_) => anyhow::bail!("DARKROOM_COOKIE_SECRET must be at least 32 characters long"),
            None => match store.get(keys::COOKIE_KEY).await {
                Ok(bytes) if bytes.len() == 64 => Key::from(&bytes),
                Ok(_) | Err(StoreError::NotFound(_)) => {
                    let key = Key::generate();
                    store
                        .put(keys::COOKIE_KEY, Bytes::copy_from_slice(key.master()), "application/octet-stream")
                        .await?;
                    key
                }
                Err(e) => return Err(e.into()),
            },
        };
        Ok(CookieSettings { key, secure })
    }

    fn verify(&self, cookie: &Cookie<'_>) -> Option<String> {
        let mut jar = CookieJar::new();
        jar.add_original(cookie.clone().into_owned());
        let value = jar.signed(&self.key).get(COOKIE)?.value().to_string();
        keys::is_valid_id(&value).then_some(value)
    }

    fn issue(&self, owner: &str) -> Cookie<'static> {
        let mut jar = CookieJar::new();
        jar.signed_mut(&self.key).add(
            Cookie::build(COOKIE, owner.to_string())
                .path("/")
                .http_only(true)
                .same_site(SameSite::Lax)
                .secure(self.secure)
                .max_age(CookieDuration::days(365))
                .finish(),
        );
        jar.get(COOKIE).expect("just added").clone()
    }
}

/// Attach an [`Owner`] to every request, issuing a new signed cookie to newcomers.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = req.app_data::<web::Data<crate::AppState>>().expect("AppState is registered").clone();
    let known = req.cookie(COOKIE).and_then(|c| state.cookies.verify(&c));
    let fresh = known.is_none();
    let owner = known.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    req.extensions_mut().insert(Owner(owner.clone()));
    if fresh {
        req.extensions_mut().insert(Fresh);
    }
    let mut res = next.call(req).await?;
    if fresh {
        let cookie = state.cookies.issue(&owner);
        res.response_mut().add_cookie(&cookie)?;
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
