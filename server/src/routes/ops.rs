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
            let mut body = serde_json::json!({"status": "ready"});
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

async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let text = state
        .metrics
        .render()
        .map_err(|e| ApiError::Internal(InternalError::Metrics(e)))?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(text))
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/yaml")
        .body(OPENAPI_YAML)
}
