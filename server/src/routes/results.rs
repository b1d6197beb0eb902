//! Results API (admin key): an experiment's analysis as JSON or CSV, and the aggregate rebuild.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::require_admin;
use crate::error::ApiError;
use crate::results::{self, ExperimentReport, ResultsError, ResultsQuery};
use crate::state::{now_rfc3339, AppState};

/// Mounts the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/api/v1/environments/{env}/experiments/{key}/results",
        web::get().to(experiment_results),
    )
    .route(
        "/api/v1/environments/{env}/results/rebuild",
        web::post().to(rebuild),
    );
}

// Fields are listed here rather than `#[serde(flatten)]`ed from `ResultsQuery`: with flatten,
// the query-string deserializer hands booleans and numbers over as strings and rejects them.
#[derive(Deserialize)]
struct Query {
    metric: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    sequential: bool,
    alpha: Option<f64>,
    #[serde(default)]
    cuped: bool,
    correction: Option<String>,
    prior: Option<String>,
    prior_mean: Option<f64>,
    prior_sd: Option<f64>,
    prior_scale: Option<String>,
    format: Option<String>,
}

impl From<ResultsError> for ApiError {
    fn from(e: ResultsError) -> Self {
        match e {
            ResultsError::UnknownExperiment(_) => ApiError::NotFound(e.to_string()),
            ResultsError::BadQuery(_) | ResultsError::Stats(_) => {
                ApiError::BadRequest(e.to_string())
            }
        }
    }
}

/// `GET …/experiments/{key}/results?metric=purchase&kind=conversion|value&sequential=true&cuped=true&correction=holm_bonferroni&prior_mean=0&prior_sd=0.1&format=csv`
async fn experiment_results(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<Query>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state)?;
    let (env_key, experiment) = path.into_inner();
    let query = query.into_inner();
    let results_query = ResultsQuery {
        metric: query.metric,
        kind: query.kind,
        sequential: query.sequential,
        alpha: query.alpha,
        cuped: query.cuped,
        correction: query.correction,
        prior: query.prior,
        prior_mean: query.prior_mean,
        prior_sd: query.prior_sd,
        prior_scale: query.prior_scale,
    };
    let report = experiment_report(&state, &env_key, &experiment, &results_query)?;
    match query.format.as_deref() {
        None | Some("json") => Ok(HttpResponse::Ok().json(report)),
        Some("csv") => Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((header::CONTENT_DISPOSITION, csv_disposition(&experiment)))
            .body(results::to_csv(&report))),
        Some(other) => Err(ApiError::BadRequest(format!(
            "format: must be `json` or `csv`, got `{other}`"
        ))),
    }
}

/// `Content-Disposition` of the CSV export: a download (never rendered in the browser) named
/// `<experiment>-results.csv`.
fn csv_disposition(experiment: &str) -> String {
    format!(
        "attachment; filename=\"{}-results.csv\"",
        safe_file_name(experiment)
    )
}

/// `name` with every character but `[A-Za-z0-9._-]` replaced by `_`: experiment keys may hold
/// anything, and a quote or line break would end the header's value, a `/` make a path.
fn safe_file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Results are not ready while the environment's stored events are first replayed.
fn loading_error(environment: &str, replayed: u64) -> ApiError {
    ApiError::Unavailable(format!(
        "results of `{environment}` are loading: the server is replaying its stored events \
         ({replayed} so far); try again shortly"
    ))
}

/// An experiment's report at the environment's current revision, with its timeline: what the
/// results API returns and the dashboard shows.
pub fn experiment_report(
    state: &AppState,
    env_key: &str,
    experiment: &str,
    query: &ResultsQuery,
) -> Result<ExperimentReport, ApiError> {
    let current = state.environment(env_key)?.current();
    if let Some(replayed) = state.collector.loading(env_key) {
        return Err(loading_error(env_key, replayed));
    }
    let totals = state.collector.totals(env_key, experiment);
    let mut report = results::report(
        env_key,
        &current.snapshot,
        experiment,
        totals.as_ref(),
        query,
        now_rfc3339()?,
    )?;
    report.timeline = state
        .collector
        .timeline(env_key, experiment, &report.metric);
    Ok(report)
}

/// Rebuilds the environment's aggregates from its raw events (ingestion pauses meanwhile).
async fn rebuild(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state)?;
    state.environment(&path)?;
    if let Some(replayed) = state.collector.loading(&path) {
        return Err(loading_error(&path, replayed));
    }
    let started = std::time::Instant::now();
    let events = state.collector.rebuild(state.store.as_ref(), &path).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "environment": path.into_inner(),
        "events_replayed": events,
        "seconds": started.elapsed().as_secs_f64(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csv_download_is_named_after_the_experiment_with_safe_characters_only() {
        assert_eq!(
            csv_disposition("homepage-v2.1_b"),
            "attachment; filename=\"homepage-v2.1_b-results.csv\""
        );
        assert_eq!(safe_file_name("a\"b/c\\d e\r\nf;g=é"), "a_b_c_d_e__f_g__");
    }
}
