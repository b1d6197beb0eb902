//! Per-user routes: a user's profile for server-side SDKs, user lookups, large list uploads and
//! segment sizes for admins (`crate::profiles` computes them).

use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde_json::json;
use tailor_core::User;

use super::{authenticate, require_admin};
use crate::error::ApiError;
use crate::profiles;
use crate::state::AppState;
use crate::store::KeyKind;

/// Largest list upload accepted (a CRM export of a few million keys).
pub const MAX_LIST_BYTES: usize = 256 * 1024 * 1024;
/// Longest user key accepted in a list upload, in bytes.
pub const MAX_LIST_KEY_BYTES: usize = 1_024;

/// Mounts the admin routes (the SDK route is mounted in the SDK scope by `sdk::configure`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/api/v1/environments/{env}/users/{user_key}",
        web::get().to(lookup),
    )
    .route(
        "/api/v1/environments/{env}/segment-sizes",
        web::get().to(segment_sizes),
    )
    .route(
        "/api/v1/environments/{env}/segments/{key}/members",
        web::put().to(upload_list),
    );
}

/// `GET /sdk/v1/profiles/{user_key}`: the user's traits and list memberships, for server-side
/// SDKs. Client-side keys are refused: they are public, and a profile is one user's data.
pub async fn sdk_profile(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let key = authenticate(&req, &state)?;
    let environment = match (key.kind, key.environment) {
        (KeyKind::Sdk, Some(env)) => env,
        (KeyKind::Client, _) => {
            return Err(ApiError::Forbidden(
                "client-side keys cannot read profiles (they are public, and a profile is one \
                 user's data); evaluate through OFREP, which reads the profile on the server"
                    .into(),
            ))
        }
        _ => {
            return Err(ApiError::Forbidden(
                "profiles are read with an SDK key; admin keys look users up at \
                 /api/v1/environments/{env}/users/{user_key}"
                    .into(),
            ))
        }
    };
    let env = state.environment(&environment)?;
    let current = env.current();
    let profile = profiles::profile(&state, &env.key, &current.snapshot, &path).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("X-Tailor-Revision", current.revision.to_string()))
        .json(profile))
}

/// `GET /api/v1/environments/{env}/users/{user_key}`: traits, segments and every flag's
/// answer for a user (with no attributes: what the server knows from events and lists).
async fn lookup(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state)?;
    let (environment, user_key) = path.into_inner();
    let env = state.environment(&environment)?;
    let current = env.current();
    let report =
        profiles::lookup(&state, &env.key, &current.snapshot, &User::new(user_key)).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("X-Tailor-Revision", current.revision.to_string()))
        .json(report))
}

/// `GET /api/v1/environments/{env}/segment-sizes`: how many known users each segment holds.
async fn segment_sizes(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state)?;
    let env = state.environment(&path)?;
    let current = env.current();
    let sizes = profiles::segment_sizes(&state, &env.key, &current.snapshot).await?;
    Ok(HttpResponse::Ok().json(sizes))
}

/// `PUT /api/v1/environments/{env}/segments/{key}/members`: replaces a large list segment's
/// keys with the body: one key per line, or (`Content-Type: text/csv`) CSV whose first column
/// is the key. A first line `key`, `user_key`, `id`, `user_id` or `userid` is a header.
async fn upload_list(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (_, actor) = require_admin(&req, &state)?;
    let (environment, segment) = path.into_inner();
    let env = state.environment(&environment)?;
    let current = env.current();
    let Some(defined) = current
        .snapshot
        .document()
        .segments
        .iter()
        .find(|s| s.key == segment)
    else {
        return Err(ApiError::NotFound(format!(
            "segment `{segment}` does not exist in environment `{environment}`; create it with \
             `list: true` first"
        )));
    };
    if !defined.list {
        return Err(ApiError::BadRequest(format!(
            "segment `{segment}` is not a large list segment: set `list: true` on it to upload \
             its members (small lists belong in `include`)"
        )));
    }
    // Read here, not by the `Bytes` extractor: its limit (256 KiB) suits configs, not lists.
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("reading the upload: {e}")))?;
        if body.len() + chunk.len() > MAX_LIST_BYTES {
            return Err(ApiError::BadRequest(format!(
                "list uploads are limited to {MAX_LIST_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    let csv = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/csv"));
    let keys = web::block(move || parse_list(&body, csv))
        .await
        .map_err(|e| ApiError::BadRequest(format!("reading the upload failed: {e}")))??;
    let received = keys.len();
    let stored = state.store.put_list(&env.key, &segment, keys).await?;
    tracing::info!(
        environment = env.key,
        segment,
        members = stored,
        actor = actor.0,
        "list segment uploaded"
    );
    Ok(HttpResponse::Ok().json(json!({
        "segment": segment,
        "received": received,
        "members": stored,
    })))
}

/// Reads an upload: keys one per line (a whole line is the key), or with `csv` the first
/// column of each line (quotes around it removed).
pub fn parse_list(body: &[u8], csv: bool) -> Result<Vec<String>, ApiError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        ApiError::BadRequest(format!(
            "the upload is not UTF-8 (byte {}); send one key per line or CSV",
            e.valid_up_to()
        ))
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let first = match csv {
            true => line.split(',').next().unwrap_or("").trim(),
            false => line.trim(),
        };
        let key = match csv {
            true => first
                .strip_prefix('"')
                .and_then(|k| k.strip_suffix('"'))
                .unwrap_or(first),
            false => first,
        };
        if key.is_empty() {
            continue;
        }
        if i == 0
            && ["key", "user_key", "id", "user_id", "userid"]
                .iter()
                .any(|h| key.eq_ignore_ascii_case(h))
        {
            continue;
        }
        if key.len() > MAX_LIST_KEY_BYTES || key.chars().any(char::is_control) {
            return Err(ApiError::BadRequest(format!(
                "line {}: not a user key (at most {MAX_LIST_KEY_BYTES} bytes, no control \
                 characters)",
                i + 1
            )));
        }
        keys.push(key.to_string());
    }
    Ok(keys)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::parse_list;

    #[test]
    fn lines_and_csv_with_or_without_a_header() {
        assert_eq!(parse_list(b"a\nb\r\n\nc", false).unwrap(), ["a", "b", "c"]);
        assert_eq!(
            parse_list(b"user_key,email\n\"u1\",x@y\nu2,z@w\n", true).unwrap(),
            ["u1", "u2"]
        );
        // Plain lines keep commas: the whole line is the key.
        assert_eq!(parse_list(b"a,b\n", false).unwrap(), ["a,b"]);
        assert_eq!(
            parse_list("\u{feff}key\nk1".as_bytes(), false).unwrap(),
            ["k1"]
        );
        let err = parse_list(b"ok\nbad\x01key", false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(parse_list(&[0xff, 0xfe], false)
            .unwrap_err()
            .to_string()
            .contains("UTF-8"));
    }
}
