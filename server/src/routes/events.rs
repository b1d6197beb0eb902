//! Event ingestion: `POST /sdk/v1/events` with a batch of exposures and conversions.
//!
//! Each event is validated on its own: bad ones are rejected with their index and reason, good
//! ones are kept. The response is sent only after the accepted events are durably stored; an
//! event id seen before is acknowledged again but stored once.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tailor_core::events::{Event, MAX_BATCH_EVENTS};

use super::authenticate;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{EncodedEvent, KeyKind};

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
/// Clock skew tolerated into the future.
const MAX_FUTURE_MS: i64 = 24 * 3600 * 1000;

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

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// `POST /sdk/v1/events` (mounted in the SDK scope by [`super::sdk::configure`]).
pub(crate) async fn ingest(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let key = authenticate(&req, &state)?;
    let environment = match (key.kind, key.environment) {
        (KeyKind::Sdk | KeyKind::Client, Some(env)) => env,
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
    let now = now_ms();
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
        match parsed {
            // Stored as received: it was just parsed and checked, so it is not encoded again.
            Ok(ev) => good.push(EncodedEvent::received(ev, json)),
            Err(reason) => rejected.push(Rejected { index, reason }),
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
