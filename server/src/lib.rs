//! Tailor's server: config server, SDK delivery, OFREP, results, the web dashboard, operations.
//!
//! # Layout
//! - [`settings`]: the `serve` command's options (each also an environment variable).
//! - [`app`]: `Application::build(settings)` → bound server; first-start bootstrap of
//!   environments and keys.
//! - [`state`]: environments' published revisions and the single validated write path;
//!   `state::sync` follows changes made through other instances sharing a Redis store.
//! - [`publish`]: a revision's pre-serialized, pre-gzipped bytes and ETag.
//! - [`store`]: the storage contract; [`store::sqlite`] is the embedded default,
//!   [`store::redis`] the shared store for several instances (`--redis-url`, single node or
//!   cluster: key layout, Lua scripts, change feed, durability).
//! - [`keys`]: API key generation, hashing, constant-time checks.
//! - [`client_address`]: a request's client address (the peer, or behind trusted proxies the
//!   client named in `X-Forwarded-For`), for the failed-authentication throttle.
//! - [`routes`]: HTTP handlers by area — `admin` (CRUD, rollout), `environments` (import/export,
//!   preview, audit, keys), `sdk` (config + SSE), `ofrep`, `ops` (health, metrics, OpenAPI).
//! - [`dashboard`]: the web dashboard under `/dashboard` (sign-in sessions, CSRF, HTML pages,
//!   server-side SVG charts, rollout forms that share the admin API's flag actions).
//! - [`collector`]: ingested events → [`attribution`] (first exposure, attribution window,
//!   incrementally maintained per-arm aggregates, rebuildable from raw events); with a shared
//!   store every instance tails the event log (`collector::tail`).
//! - [`results`]: totals + config → per-variant, per-segment and personalization statistics
//!   (via [`stats`]), SRM, data-quality warnings, CSV.
//! - [`optimizer`]: learned personalization: each optimize rule's weights, recomputed per
//!   context once per update period (Thompson sampling in [`stats`]) and published through the
//!   write path as actor `optimizer`, once across instances.
//! - [`metrics`]: Prometheus metrics.
//! - [`rate_limit`]: per-key event rate limits (token buckets; client keys are public).
//! - [`stats`]: the experiment statistics engine (lifts, Welch/Bayesian/sequential tests, SRM),
//!   pure functions checked against gbstats/scipy fixtures in `fixtures/stats/`.
//! - [`error`]: `ApiError` → status code and JSON body.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod aggregates;
pub mod app;
pub mod attribution;
pub mod client_address;
pub mod collector;
pub mod dashboard;
pub mod error;
pub mod keys;
pub mod metrics;
pub mod optimizer;
pub mod profiles;
pub mod publish;
pub mod rate_limit;
pub mod results;
pub mod routes;
pub mod settings;
pub mod state;
pub mod stats;
pub mod store;

pub use app::Application;
pub use settings::Settings;
