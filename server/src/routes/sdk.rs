//! SDK delivery (event ingestion, also in this scope, lives in `events`): the config document (strong ETag, 304, gzip) and a server-sent-events stream of
//! new revisions (keep-alives, `Last-Event-ID` resume, bounded per-client buffering).

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::stream;
use tokio::sync::broadcast::error::RecvError;

use super::authenticate;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::publish::Published;
use crate::state::{AppState, Environment};
use crate::store::{ApiKey, KeyKind};

/// How often an idle stream sends a keep-alive comment.
#[derive(Debug, Clone, Copy)]
pub struct KeepAlive(pub Duration);

/// Mounts the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/sdk/v1")
            .wrap(super::sdk_cors())
            .route("/config", web::get().to(config))
            .route("/stream", web::get().to(stream_updates))
            .route("/events", web::post().to(super::events::ingest))
            .route(
                "/profiles/{user_key}",
                web::get().to(super::profiles::sdk_profile),
            ),
    );
}

/// The environment a server-side SDK key reads. Client keys may not see rules.
fn sdk_environment(
    req: &HttpRequest,
    state: &AppState,
) -> Result<(ApiKey, Arc<Environment>), ApiError> {
    let key = authenticate(req, state)?;
    let env_key = match (key.kind, &key.environment) {
        (KeyKind::Sdk, Some(env)) => env.clone(),
        (KeyKind::Client, _) => {
            return Err(ApiError::Forbidden(
                "client-side keys cannot download rules (they may hold user keys and business logic); evaluate through OFREP instead".into(),
            ))
        }
        _ => {
            return Err(ApiError::Forbidden(
                "the SDK config needs an SDK key; admin keys read configs at /api/v1/environments/{env}/config".into(),
            ))
        }
    };
    let env = state.environment(&env_key)?;
    Ok((key, env))
}

fn accepts_gzip(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(header::ACCEPT_ENCODING)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|enc| {
            let mut parts = enc.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| p.trim().replace(' ', "") == "q=0");
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

/// `GET /sdk/v1/config`: pre-serialized bytes; `304` when `If-None-Match` matches.
async fn config(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let (_, env) = sdk_environment(&req, &state)?;
    let current = env.current();
    let not_modified = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| current.matches(v));
    let mut res = if not_modified {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::ETAG, current.etag.clone()))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::VARY, "Accept-Encoding"))
        .insert_header(("X-Tailor-Revision", current.revision.to_string()));
    if not_modified {
        return Ok(res.finish());
    }
    res.content_type("application/json");
    if accepts_gzip(&req) {
        res.insert_header((header::CONTENT_ENCODING, "gzip"));
        Ok(res.body(current.gzip.clone()))
    } else {
        Ok(res.body(current.json.clone()))
    }
}

/// Decrements the SSE gauge when a stream is dropped (client gone or server stopping).
struct StreamGuard(Metrics);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.sse_clients.dec();
    }
}

struct StreamState {
    env: Arc<Environment>,
    state: web::Data<AppState>,
    /// Digest of the key that opened the stream: a revoked key's stream ends.
    key_digest: String,
    updates: tokio::sync::broadcast::Receiver<Arc<Published>>,
    last_sent: Option<u64>,
    pending: Option<Bytes>,
    keepalive: tokio::time::Interval,
    _guard: StreamGuard,
}

/// `GET /sdk/v1/stream`: `event: config` with the whole document each time the revision changes.
///
/// The first event is the current config unless `Last-Event-ID` already names its revision. A
/// slow client's backlog is bounded by the broadcast buffer; if it falls further behind it skips
/// straight to the newest revision (each event is a whole config, so nothing is lost).
async fn stream_updates(
    req: HttpRequest,
    state: web::Data<AppState>,
    keepalive: web::Data<KeepAlive>,
) -> Result<HttpResponse, ApiError> {
    let (key, env) = sdk_environment(&req, &state)?;
    // Subscribe before reading the current revision so none can slip in between.
    let updates = env.subscribe();
    let current = env.current();
    let last_event_id = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let mut first = Vec::from(&b"retry: 1000\n\n"[..]);
    let last_sent = if last_event_id == Some(current.revision) {
        Some(current.revision)
    } else {
        first.extend_from_slice(&current.sse_frame);
        Some(current.revision)
    };
    state.metrics.sse_clients.inc();
    let mut interval = tokio::time::interval(keepalive.0);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.reset();
    let st = StreamState {
        env,
        state: state.clone(),
        key_digest: key.digest,
        updates,
        last_sent,
        pending: Some(Bytes::from(first)),
        keepalive: interval,
        _guard: StreamGuard(state.metrics.clone()),
    };
    let body = stream::unfold(st, |mut st| async move {
        if let Some(first) = st.pending.take() {
            return Some((Ok::<_, actix_web::Error>(first), st));
        }
        loop {
            let next = tokio::select! {
                update = st.updates.recv() => match update {
                    Ok(p) => Some(p),
                    Err(RecvError::Lagged(_)) => Some(st.env.current()),
                    Err(RecvError::Closed) => return None,
                },
                _ = st.keepalive.tick() => None,
            };
            if !st.state.key_is_active(&st.key_digest) {
                return None;
            }
            match next {
                Some(p) if st.last_sent.is_none_or(|r| p.revision > r) => {
                    st.last_sent = Some(p.revision);
                    st.keepalive.reset();
                    return Some((Ok(p.sse_frame.clone()), st));
                }
                Some(_) => continue,
                None => return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), st)),
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}
