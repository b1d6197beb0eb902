//! Event ingestion: `POST /sdk/v1/events` with a batch of exposures and conversions.
//!
//! Each event is validated on its own: bad ones are rejected with their index and reason, good
//! ones are kept. An exposure must name a flag, variant, rule, experiment and segment that the
//! environment's configs define (`collector::vocabulary`), so a public client key cannot invent
//! arms or segment rows. The response is sent only after the accepted events are durably stored; an
//! event id seen before is acknowledged again but stored once.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::sync::Arc;

use tailor_core::events::{Event, Exposure, MAX_BATCH_EVENTS};

use super::authenticate;
use crate::collector::vocabulary::Vocabulary;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{unix_now_ms as now_ms, EncodedEvent, KeyKind};

#[derive(Deserialize)]
struct RawBatch<'a> {
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

#[derive(Debug, Serialize)]
struct Rejected {
    index: usize,
    reason: String,
}

#[derive(Debug, Serialize)]
struct IngestResponse {
    accepted: usize,
    duplicates: usize,
    rejected: Vec<Rejected>,
}

/// Unix milliseconds of 2000-01-01; earlier timestamps are surely a unit mistake (seconds).
const EARLIEST_MS: i64 = 946_684_800_000;
/// Largest JSON text of one event. Its fields' own limits add up to under 2 KiB; this bounds
/// what unknown extra fields, which are stored as received, can add.
const MAX_EVENT_JSON_BYTES: usize = 8 * 1024;
/// Furthest into the future an event may be stamped; later is surely a unit mistake.
const MAX_FUTURE_MS: i64 = 24 * 3600 * 1000;
/// Clock skew taken as sent. An event stamped further ahead than this (and at most
/// [`MAX_FUTURE_MS`]) comes from a clock that runs ahead: it is stored at the time it was
/// received instead, with the time it claimed kept as `client_timestamp`. Otherwise a device
/// whose clock runs an hour ahead would place a user's first exposure after conversions that
/// really followed it, and those conversions would not count.
const SKEW_TAKEN_AS_SENT_MS: i64 = 5 * 60 * 1000;

fn check_text(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("{field}: must not be empty"));
    }
    if value.len() > max {
        return Err(format!("{field}: longer than {max} bytes"));
    }
    Ok(())
}

/// Checks one event's fields beyond their JSON shape.
fn validate(event: &Event, now_ms: i64) -> Result<(), String> {
    check_text("id", event.id(), 128)?;
    let (user, ts) = match event {
        Event::Exposure(e) => {
            check_text("flag", &e.flag, 256)?;
            check_text("variant", &e.variant, 256)?;
            check_text("experiment", &e.experiment, 256)?;
            (&e.user_key, e.timestamp)
        }
        Event::Conversion(c) => {
            check_text("event", &c.event, 256)?;
            if let Some(v) = c.value {
                if !v.is_finite() {
                    return Err("value: must be a finite number".into());
                }
            }
            (&c.user_key, c.timestamp)
        }
    };
    check_text("user_key", user, 512)?;
    if ts < EARLIEST_MS {
        return Err(format!(
            "timestamp: {ts} is before 2000-01-01; timestamps are Unix milliseconds"
        ));
    }
    if ts > now_ms + MAX_FUTURE_MS {
        return Err(format!("timestamp: {ts} is more than a day in the future"));
    }
    Ok(())
}

/// The event re-stamped with the time it was received (`now_ms`); its JSON keeps every field it
/// was sent with, plus the claimed time as `client_timestamp`.
fn stamped_when_received(
    mut event: Event,
    json: &str,
    now_ms: i64,
) -> Result<EncodedEvent<'static>, String> {
    let mut object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(json).map_err(|e| format!("event: {e}"))?;
    object.insert("client_timestamp".into(), event.timestamp().into());
    object.insert("timestamp".into(), now_ms.into());
    event.set_timestamp(now_ms);
    let json = serde_json::to_string(&object).map_err(|e| format!("event: {e}"))?;
    Ok(EncodedEvent {
        event,
        json: std::borrow::Cow::Owned(json),
    })
}

/// Checks an exposure against what the environment's configs define. When it names a revision
/// newer than this instance knows, the environment is re-read from the store first (once per
/// batch): with several instances, another one may have published it a moment ago.
async fn check_names(
    state: &AppState,
    environment: &str,
    vocabulary: &mut Arc<Vocabulary>,
    refreshed: &mut bool,
    exposure: &Exposure,
) -> Result<(), String> {
    if exposure.revision > vocabulary.revision() && state.store.shared().is_some() && !*refreshed {
        *refreshed = true;
        if let Err(e) = state.refresh_environment(environment).await {
            tracing::warn!(environment, error = %e, "cannot re-read a newer revision an exposure names");
        }
        *vocabulary = state.collector.vocabulary(environment);
    }
    vocabulary.check(exposure)
}

/// `POST /sdk/v1/events` (mounted in the SDK scope by [`super::sdk::configure`]).
pub(crate) async fn ingest(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let key = authenticate(&req, &state)?;
    let environment = match (key.kind, &key.environment) {
        (KeyKind::Sdk | KeyKind::Client, Some(env)) => env.clone(),
        _ => {
            return Err(ApiError::Forbidden(
                "events are sent with the SDK or client key of their environment".into(),
            ))
        }
    };
    state.environment(&environment)?;
    // Each event stays a raw slice of the body and is parsed on its own: one bad event cannot
    // reject its batch, and no intermediate JSON tree is built.
    let batch: RawBatch = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "events: the body must be {{\"events\": [...]}}: {e}"
        ))
    })?;
    let items = batch.events;
    if items.len() > MAX_BATCH_EVENTS {
        return Err(ApiError::BadRequest(format!(
            "events: at most {MAX_BATCH_EVENTS} events per batch, got {}",
            items.len()
        )));
    }
    state
        .event_limits
        .take(&key, items.len())
        .map_err(|retry_after| ApiError::TooManyRequests {
            message: format!("key `{}` is over its events-per-second limit", key.name),
            retry_after,
        })?;
    let now = now_ms();
    let mut vocabulary = state.collector.vocabulary(&environment);
    let mut refreshed = false;
    let mut good = Vec::with_capacity(items.len());
    let mut rejected = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let json = item.get();
        let parsed = if json.len() > MAX_EVENT_JSON_BYTES {
            Err(format!(
                "event: {} bytes of JSON, more than the limit of {MAX_EVENT_JSON_BYTES}",
                json.len()
            ))
        } else {
            Event::from_json(json)
                .map_err(|e| e.to_string())
                .and_then(|ev| validate(&ev, now).map(|()| ev))
        };
        let parsed = match parsed {
            Ok(Event::Exposure(exposure)) => check_names(
                &state,
                &environment,
                &mut vocabulary,
                &mut refreshed,
                &exposure,
            )
            .await
            .map(|()| Event::Exposure(exposure)),
            other => other,
        };
        match parsed {
            Ok(ev) if ev.timestamp() > now + SKEW_TAKEN_AS_SENT_MS => {
                match stamped_when_received(ev, json, now) {
                    Ok(ev) => {
                        state.metrics.events_clock_ahead.inc();
                        good.push(ev);
                    }
                    Err(reason) => {
                        state.metrics.event_rejected(&reason);
                        rejected.push(Rejected { index, reason });
                    }
                }
            }
            // Stored as received: it was just parsed and checked, so it is not encoded again.
            Ok(ev) => good.push(EncodedEvent::received(ev, json)),
            Err(reason) => {
                state.metrics.event_rejected(&reason);
                rejected.push(Rejected { index, reason });
            }
        }
    }
    let fresh = if good.is_empty() {
        Vec::new()
    } else {
        state
            .collector
            .ingest(state.store.as_ref(), &environment, &good)
            .await
            .map_err(|e| {
                state.metrics.store_errors.inc();
                ApiError::from(e)
            })?
    };
    let duplicates = fresh.iter().filter(|f| !**f).count();
    Ok(HttpResponse::Ok().json(IngestResponse {
        accepted: good.len(),
        duplicates,
        rejected,
    }))
}
