//! HTTP routes, grouped by area; [`configure`] mounts them all, the dashboard's included (used by
//! `main` and tests).

pub mod admin;
pub mod environments;
pub mod events;
pub mod ofrep;
pub mod ops;
pub mod profiles;
pub mod results;
pub mod sdk;

use actix_web::http::header::{self, HeaderMap};
use actix_web::{web, HttpRequest};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tailor_core::nesting;

use crate::client_address::client_address;
use crate::error::{ApiError, InternalError};
use crate::keys::{self, Actor};
use crate::state::AppState;
use crate::store::{ApiKey, KeyKind};

/// Mounts every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    ops::configure(cfg);
    sdk::configure(cfg);
    ofrep::configure(cfg);
    environments::configure(cfg);
    results::configure(cfg);
    admin::configure(cfg);
    profiles::configure(cfg);
    crate::dashboard::configure(cfg);
}

/// CORS for the endpoints browsers and edge SDKs call (SDK delivery, OFREP). They authenticate
/// with a header key, never cookies, so any origin may call them; the admin API gets no CORS.
pub fn sdk_cors() -> actix_cors::Cors {
    actix_cors::Cors::default()
        .allow_any_origin()
        .allowed_methods(["GET", "POST", "OPTIONS"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_NONE_MATCH,
            header::HeaderName::from_static("last-event-id"),
            header::HeaderName::from_static("x-api-key"),
        ])
        .expose_headers([
            header::ETAG,
            header::HeaderName::from_static("x-tailor-revision"),
        ])
        .max_age(3600)
}

/// Requires an admin key; returns it and the actor for the audit log.
///
/// Failed authentications count against the caller's address like failed dashboard sign-ins
/// (`dashboard::throttle`): past the limit, the address gets `429` with `Retry-After`, whatever
/// key it sends, until the window is over. Only the admin API is throttled: an SDK whose key was
/// revoked must keep getting its 401, which it takes as final, not a 429 it would retry.
pub fn require_admin(req: &HttpRequest, state: &AppState) -> Result<(ApiKey, Actor), ApiError> {
    let address = client_address(req, &state.trusted_proxies);
    if let Some(retry_after) = state.auth_throttle.wait(address) {
        tracing::warn!(%address, "admin API authentication throttled");
        return Err(ApiError::TooManyRequests {
            message: "too many failed authentications from your address".into(),
            retry_after,
        });
    }
    let key = match authenticate(req, state) {
        Err(ApiError::Unauthenticated) => {
            state.auth_throttle.failed(address);
            return Err(ApiError::Unauthenticated);
        }
        other => other?,
    };
    if key.kind != KeyKind::Admin {
        return Err(ApiError::Forbidden(
            "this endpoint needs an admin key; SDK and client keys cannot use the admin API".into(),
        ));
    }
    let actor = Actor::from_key(&key, req);
    Ok((key, actor))
}

/// One URL path segment, percent-encoded (keys may hold `/`, spaces, `?`, non-ASCII …): for
/// `Location` headers and the dashboard's links.
pub fn path_segment(key: &str) -> String {
    key.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Requires any valid key.
pub fn authenticate(req: &HttpRequest, state: &AppState) -> Result<ApiKey, ApiError> {
    if !state.is_ready() {
        return Err(ApiError::Unavailable("the store is not loaded yet".into()));
    }
    let secret = keys::presented_secret(req).ok_or(ApiError::Unauthenticated)?;
    state.authenticate(secret).ok_or(ApiError::Unauthenticated)
}

/// Largest YAML body accepted. libyaml's parsing time grows with the square of the nesting
/// depth of flow collections (`[[[…]]]`), so YAML gets a tighter limit than JSON, its nesting is
/// checked first ([`tailor_core::nesting`]), and it is parsed on the blocking pool, never on an
/// async worker that other requests share.
pub const MAX_YAML_BYTES: usize = 256 * 1024;

/// Parses a JSON body (or YAML when `Content-Type` says so); errors name the offending field.
pub async fn parse_body<T: DeserializeOwned + Send + 'static>(
    req: &HttpRequest,
    body: &[u8],
) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::BadRequest(
            "request body is empty; send JSON".into(),
        ));
    }
    if is_yaml(req.headers(), body) {
        if body.len() > MAX_YAML_BYTES {
            return Err(ApiError::BadRequest(format!(
                "YAML bodies are limited to {MAX_YAML_BYTES} bytes (got {}); send larger configs as JSON",
                body.len()
            )));
        }
        let text = String::from_utf8(body.to_vec())
            .map_err(|_| ApiError::BadRequest("request body is not UTF-8".into()))?;
        nesting::check_yaml(&text)
            .map_err(|e| ApiError::BadRequest(format!("invalid YAML body: {e}")))?;
        return web::block(move || {
            let de = serde_yaml_ng::Deserializer::from_str(&text);
            serde_path_to_error::deserialize(de).map_err(|e| {
                ApiError::BadRequest(format!(
                    "invalid YAML body at `{}`: {}",
                    e.path(),
                    e.inner()
                ))
            })
        })
        .await
        .map_err(|_| ApiError::Unavailable("the server is shutting down".into()))?;
    }
    nesting::check_json(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        ApiError::BadRequest(format!(
            "invalid JSON body at `{}`: {}",
            e.path(),
            e.inner()
        ))
    })
}

/// Whether a body is YAML: `Content-Type` says so, or names neither JSON nor YAML (`curl
/// --data-binary @config.yaml` sends `application/x-www-form-urlencoded`) and the body does not
/// start like JSON (`{` or `[`).
fn is_yaml(headers: &HeaderMap, body: &[u8]) -> bool {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type.contains("yaml") {
        return true;
    }
    if content_type.contains("json") {
        return false;
    }
    !matches!(
        body.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{' | b'[')
    )
}

/// A strong ETag for a JSON-serializable resource: a hash of its content. A value that cannot
/// be serialized is an error, not the hash of nothing (which every such value would share).
pub fn content_etag<T: Serialize>(value: &T) -> Result<String, ApiError> {
    let bytes =
        serde_json::to_vec(value).map_err(InternalError::serialize("a resource for its ETag"))?;
    let hash = Sha256::digest(&bytes);
    Ok(format!("\"{}\"", hex::encode(&hash[..8])))
}

/// Checks `If-Match` against the current ETag. `required`: a missing header is an error (428).
pub fn check_if_match(req: &HttpRequest, current: &str, required: bool) -> Result<(), ApiError> {
    check_if_match_value(
        req.headers()
            .get(header::IF_MATCH)
            .and_then(|v| v.to_str().ok()),
        current,
        required,
    )
}

/// [`check_if_match`] on a header value already read (or a form field standing in for it).
pub fn check_if_match_value(
    if_match: Option<&str>,
    current: &str,
    required: bool,
) -> Result<(), ApiError> {
    match if_match {
        None if required => Err(ApiError::PreconditionRequired(format!(
            "send `If-Match: {current}` (the ETag you read) so concurrent edits cannot overwrite each other, or `If-Match: *` to overwrite deliberately"
        ))),
        None => Ok(()),
        Some(v) if v.trim() == "*" || v.split(',').any(|t| t.trim() == current) => Ok(()),
        Some(v) => Err(ApiError::PreconditionFailed(format!(
            "If-Match {v} does not match the current version {current}: someone else changed it; reload and retry"
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {

    #[test]
    fn yaml_is_read_when_the_content_type_says_so_or_names_neither_format() {
        let headers = |ct: Option<&str>| {
            let mut h = HeaderMap::new();
            if let Some(ct) = ct {
                h.insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_str(ct).unwrap(),
                );
            }
            h
        };
        let yaml = b"flags: []\n";
        assert!(is_yaml(&headers(Some("application/yaml")), b"{}"));
        assert!(!is_yaml(&headers(Some("application/json")), yaml));
        assert!(is_yaml(
            &headers(Some("application/x-www-form-urlencoded")),
            yaml
        ));
        assert!(is_yaml(&headers(None), yaml));
        assert!(!is_yaml(&headers(None), b"  {\"flags\": []}"));
        assert!(!is_yaml(&headers(Some("text/plain")), b"[1]"));
    }
    use super::*;
    use crate::error::Unserializable;

    #[test]
    fn an_etag_hashes_the_content_and_refuses_what_cannot_be_serialized() {
        assert_eq!(content_etag(&"a").unwrap(), content_etag(&"a").unwrap());
        assert_ne!(content_etag(&"a").unwrap(), content_etag(&"b").unwrap());
        let result = content_etag(&Unserializable);
        assert!(
            matches!(
                result,
                Err(ApiError::Internal(InternalError::Serialize { .. }))
            ),
            "{result:?}"
        );
    }
}
