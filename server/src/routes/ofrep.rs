//! OFREP (OpenFeature Remote Evaluation Protocol): single and bulk evaluation per
//! `shared/spec/ofrep/openapi.yaml`, so any OpenFeature client can evaluate remotely.
//!
//! Reasons come from [`OpenFeatureReason`], the mapping the SDK's OpenFeature provider uses too:
//! flag off → `DISABLED`; override or fixed-variant rule → `TARGETING_MATCH`; split or holdout →
//! `SPLIT`; no rule matched → `STATIC` when the flag has no rules or overrides, `DEFAULT`
//! otherwise (OpenFeature's reason; the OFREP schema's enum omits it). Tailor's own reason is in
//! `metadata.tailorReason`.

use std::collections::BTreeMap;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tailor_core::{
    assign, AttributeRef, AttributeValue, OpenFeatureReason, Reason, Snapshot, User,
};

use super::authenticate;
use crate::error::{ApiError, InternalError};
use crate::state::AppState;
use crate::store::KeyKind;

/// Mounts the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/ofrep/v1")
            .wrap(super::sdk_cors())
            .route("/evaluate/flags/{key}", web::post().to(evaluate_one))
            .route("/evaluate/flags", web::post().to(evaluate_all)),
    );
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Failure<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    error_code: &'static str,
    error_details: String,
}

fn failure(
    status: StatusCode,
    key: Option<&str>,
    code: &'static str,
    details: String,
) -> HttpResponse {
    HttpResponse::build(status).json(Failure {
        key,
        error_code: code,
        error_details: details,
    })
}

/// Reads `{"context": {...}}` into a user; `Err` is an OFREP error code and details.
fn parse_context(body: &[u8]) -> Result<User, (&'static str, String)> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        (
            "PARSE_ERROR",
            format!("request body is not valid JSON: {e}"),
        )
    })?;
    let Some(context) = value.get("context") else {
        return Err((
            "INVALID_CONTEXT",
            "request body needs a `context` object".into(),
        ));
    };
    let Some(context) = context.as_object() else {
        return Err(("INVALID_CONTEXT", "`context` must be an object".into()));
    };
    let key = match context.get("targetingKey") {
        Some(Value::String(k)) if !k.is_empty() => k.clone(),
        Some(Value::String(_)) | None => {
            return Err((
                "TARGETING_KEY_MISSING",
                "context is missing the `targetingKey` property".into(),
            ))
        }
        Some(other) => {
            return Err((
                "INVALID_CONTEXT",
                format!("`targetingKey` must be a string, got {other}"),
            ))
        }
    };
    let mut user = User::new(key);
    for (name, v) in context {
        if name == "targetingKey" {
            continue;
        }
        let attr = match v {
            Value::String(s) => AttributeValue::String(s.clone()),
            Value::Number(n) => AttributeValue::Number(n.as_f64().unwrap_or(f64::NAN)),
            Value::Bool(b) => AttributeValue::Bool(*b),
            Value::Array(items) => AttributeValue::List(
                items
                    .iter()
                    .map(|i| {
                        i.as_str().map(str::to_string).ok_or_else(|| {
                            (
                                "INVALID_CONTEXT",
                                format!("context attribute `{name}`: lists may hold only strings"),
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Value::Null => continue,
            Value::Object(_) => {
                return Err((
                    "INVALID_CONTEXT",
                    format!("context attribute `{name}`: nested objects are not supported"),
                ))
            }
        };
        user.set(name.clone(), attr);
    }
    Ok(user)
}

fn reason_kind(reason: Reason) -> String {
    serde_json::to_value(reason)
        .ok()
        .and_then(|v| v.get("kind").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default()
}

/// The evaluation object for a known flag.
fn evaluation(snapshot: &Snapshot, user: &User, key: &str) -> Option<Value> {
    let flag = snapshot.document().flag(key)?;
    let a = assign(snapshot, user, key);
    let mut metadata = Map::new();
    metadata.insert("tailorReason".into(), reason_kind(a.reason).into());
    metadata.insert("revision".into(), snapshot.revision().into());
    if let Some(e) = a.experiment {
        metadata.insert("experiment".into(), e.into());
    }
    if let Some(s) = a.segment {
        metadata.insert("segment".into(), s.into());
    }
    if let Some(d) = &flag.description {
        metadata.insert("description".into(), d.clone().into());
    }
    let mut out = Map::new();
    out.insert("key".into(), key.into());
    out.insert("value".into(), a.value().clone());
    out.insert(
        "reason".into(),
        OpenFeatureReason::of(snapshot, &a).as_str().into(),
    );
    if let Some(v) = a.variant_key() {
        out.insert("variant".into(), v.into());
    }
    out.insert("metadata".into(), Value::Object(metadata));
    Some(Value::Object(out))
}

/// The environment an OFREP caller evaluates: SDK and client keys only.
fn caller_environment(req: &HttpRequest, state: &AppState) -> Result<String, ApiError> {
    let key = authenticate(req, state)?;
    match (key.kind, key.environment) {
        (KeyKind::Sdk | KeyKind::Client, Some(env)) => Ok(env),
        _ => Err(ApiError::Forbidden(
            "OFREP evaluates one environment: use an SDK or client key".into(),
        )),
    }
}

async fn evaluate_one(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let env = state.environment(&caller_environment(&req, &state)?)?;
    let key = path.into_inner();
    let user = match parse_context(&body) {
        Ok(u) => u,
        Err((code, details)) => {
            return Ok(failure(StatusCode::BAD_REQUEST, Some(&key), code, details))
        }
    };
    let current = env.current();
    match evaluation(&current.snapshot, &user, &key) {
        Some(v) => Ok(HttpResponse::Ok().json(v)),
        None => Ok(failure(
            StatusCode::NOT_FOUND,
            Some(&key),
            "FLAG_NOT_FOUND",
            format!("flag `{key}` was not found"),
        )),
    }
}

/// ETag of a bulk result: it depends on both the config revision and the context (attributes
/// that cannot be serialized are an error, not a hash of nothing shared by every such context).
fn bulk_etag(config_etag: &str, user: &User) -> Result<String, ApiError> {
    let attrs: BTreeMap<&str, AttributeRef<'_>> = user.attributes().collect();
    let attrs = serde_json::to_vec(&attrs).map_err(InternalError::serialize(
        "the evaluation context for its ETag",
    ))?;
    let mut h = Sha256::new();
    h.update(config_etag.as_bytes());
    h.update(user.key().as_bytes());
    h.update(attrs);
    Ok(format!("\"{}\"", hex::encode(&h.finalize()[..12])))
}

async fn evaluate_all(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let env = state.environment(&caller_environment(&req, &state)?)?;
    let user = match parse_context(&body) {
        Ok(u) => u,
        Err((code, details)) => return Ok(failure(StatusCode::BAD_REQUEST, None, code, details)),
    };
    let current = env.current();
    let etag = bulk_etag(&current.etag, &user)?;
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if matches {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .finish());
    }
    let snapshot = &current.snapshot;
    let flags: Vec<Value> = snapshot
        .flag_keys()
        .filter_map(|k| evaluation(snapshot, &user, k))
        .collect();
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, etag))
        .json(serde_json::json!({
            "flags": flags,
            "metadata": {"environment": current.snapshot.environment(), "revision": current.revision},
        })))
}
