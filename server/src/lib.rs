//! Tailor's server: config server, SDK delivery, OFREP, operations.
//!
//! # Layout
//! - [`settings`]: the `serve` command's options (each also an environment variable).
//! - [`app`]: `Application::build(settings)` → bound server; first-start bootstrap of
//!   environments and keys.
//! - [`state`]: environments' published revisions and the single validated write path.
//! - [`publish`]: a revision's pre-serialized, pre-gzipped bytes and ETag.
//! - [`store`]: the storage contract; [`store::sqlite`] is the embedded default.
//! - [`keys`]: API key generation, hashing, constant-time checks.
//! - [`routes`]: HTTP handlers by area — `admin` (CRUD, rollout), `environments` (import/export,
//!   preview, audit, keys), `sdk` (config + SSE), `ofrep`, `ops` (health, metrics, OpenAPI).
//! - [`collector`]: ingested events → [`attribution`] (first exposure, attribution window,
//!   incrementally maintained per-arm aggregates, rebuildable from raw events).
//! - [`results`]: totals + config → per-variant, per-segment and personalization statistics
//!   (via [`stats`]), SRM, data-quality warnings, CSV.
//! - [`metrics`]: Prometheus metrics.
//! - [`stats`]: the experiment statistics engine (lifts, Welch/Bayesian/sequential tests, SRM),
//!   pure functions checked against gbstats/scipy fixtures in `fixtures/stats/`.
//! - [`error`]: `ApiError` → status code and JSON body.
#![deny(missing_docs)]

pub mod app;
pub mod attribution;
pub mod collector;
pub mod error;
pub mod keys;
pub mod metrics;
pub mod publish;
pub mod results;
pub mod routes;
pub mod settings;
pub mod state;
pub mod stats;
pub mod store;

pub use app::Application;
pub use settings::Settings;
