//! Operations: liveness, readiness, Prometheus metrics and the OpenAPI document.

use std::sync::RwLock;

use actix_web::{web, HttpResponse};

use crate::error::{ApiError, InternalError};
use crate::state::AppState;

/// The OpenAPI document describing every route, kept in sync by a test.
pub const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

/// Mounts the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics))
        .route("/openapi.yaml", web::get().to(openapi));
}

/// What a server that is bound but still waiting for its store waits for (e.g. "Redis at
/// 10.0.0.5:6379 is loading its dataset"), shown by its `/readyz` and its 503s.
#[derive(Debug)]
pub struct StoreWait(RwLock<String>);

impl StoreWait {
    /// Waiting for `why`.
    pub fn new(why: &str) -> Self {
        StoreWait(RwLock::new(why.to_string()))
    }

    /// Now waiting for `why`.
    pub fn set(&self, why: &str) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = why.to_string();
    }

    fn get(&self) -> String {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Mounts the routes of a server waiting for its store (needs a `web::Data<StoreWait>`): alive,
/// not ready, and a clear 503 for every other route, so that probes and SDKs see why instead
/// of a refused connection.
pub fn configure_waiting(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz_waiting))
        .default_service(web::to(unavailable_waiting));
}

async fn readyz_waiting(wait: web::Data<StoreWait>) -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .json(serde_json::json!({"status": "store_loading", "message": wait.get()}))
}

async fn unavailable_waiting(wait: web::Data<StoreWait>) -> HttpResponse {
    HttpResponse::ServiceUnavailable().json(serde_json::json!({
        "error": "unavailable",
        "message": format!("the server is starting: {}; retry later", wait.get()),
    }))
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// 200 once the store is loaded and answering (configs are served); 503 otherwise. While
/// environments' stored events are still being replayed for results, `results_loading` lists
/// them with the events replayed so far.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if !state.is_ready() {
        return HttpResponse::ServiceUnavailable().json(
            serde_json::json!({"status": "loading", "message": "the store is not loaded yet"}),
        );
    }
    match state.store.ping().await {
        Ok(()) => {
            let loading: serde_json::Map<String, serde_json::Value> = state
                .environment_keys()
                .into_iter()
                .filter_map(|env| {
                    let replayed = state.collector.loading(&env)?;
                    Some((env, replayed.into()))
                })
                .collect();
            let mut body = serde_json::json!({
                "status": "ready",
                "instance": state.collector.instance(),
                "partitions": partitions_owned(&state),
            });
            if !loading.is_empty() {
                body["results_loading"] = loading.into();
            }
            HttpResponse::Ok().json(body)
        }
        Err(e) => {
            state.metrics.store_errors.inc();
            HttpResponse::ServiceUnavailable()
                .json(serde_json::json!({"status": "store_unavailable", "message": e.to_string()}))
        }
    }
}

/// Per environment: how many of its partitions this instance owns, of how many, and the worst
/// lag and checkpoint age among them.
fn partitions_owned(state: &AppState) -> serde_json::Value {
    let max = |values: &mut dyn Iterator<Item = Option<f64>>| {
        values
            .flatten()
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
    };
    state
        .environment_keys()
        .into_iter()
        .map(|env| {
            let owned = state.collector.owned_partitions(&env);
            let value = serde_json::json!({
                "owned": owned.len(),
                "of": state.collector.partitions(&env),
                "max_lag_seconds": max(&mut owned.iter().map(|p| p.lag_seconds)),
                "oldest_checkpoint_seconds": max(&mut owned.iter().map(|p| p.checkpoint_age_seconds)),
            });
            (env, value)
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The partitions owned here, in Prometheus' text format (read at scrape time).
fn partition_metrics(state: &AppState) -> String {
    use std::fmt::Write;
    let mut out = String::from(
        "# HELP tailor_partitions_owned Partitions of an environment's event log owned by this instance\n\
         # TYPE tailor_partitions_owned gauge\n",
    );
    let mut lag = String::from(
        "# HELP tailor_partition_lag_seconds Seconds since an owned partition last had every stored event applied\n\
         # TYPE tailor_partition_lag_seconds gauge\n",
    );
    let mut age = String::from(
        "# HELP tailor_partition_checkpoint_age_seconds Seconds since an owned partition's last checkpoint\n\
         # TYPE tailor_partition_checkpoint_age_seconds gauge\n",
    );
    for env in state.environment_keys() {
        let owned = state.collector.owned_partitions(&env);
        let _ = writeln!(
            out,
            "tailor_partitions_owned{{environment=\"{env}\"}} {}",
            owned.len()
        );
        for p in owned {
            if let Some(seconds) = p.lag_seconds {
                let _ = writeln!(
                    lag,
                    "tailor_partition_lag_seconds{{environment=\"{env}\",partition=\"{}\"}} {seconds}",
                    p.partition
                );
            }
            if let Some(seconds) = p.checkpoint_age_seconds {
                let _ = writeln!(
                    age,
                    "tailor_partition_checkpoint_age_seconds{{environment=\"{env}\",partition=\"{}\"}} {seconds}",
                    p.partition
                );
            }
        }
    }
    out + &lag + &age
}

async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let mut text = state
        .metrics
        .render()
        .map_err(|e| ApiError::Internal(InternalError::Metrics(e)))?;
    text.push_str(&partition_metrics(&state));
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(text))
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/yaml")
        .body(OPENAPI_YAML)
}
