//! Tailor's integration tests: one binary (faster builds, one place to look).
//!
//! Most modules drive the real `tailor-server` binary over HTTP: [`support`] builds it once per
//! run, starts one child process per test on a free port with a temporary data directory, and
//! kills it on drop, so tests run in parallel freely.
//!
//! # Module index
//! - [`support`]: building and running the server, the HTTP client, an SSE reader, fixtures.
//! - [`openapi`]: `server/openapi.yaml` documents exactly the routes the server mounts.
//! - [`admin_crud`]: CRUD of segments, flags, experiments and layers, and every kind of bad
//!   input (400/404/409/412/413/422/428 with a JSON error naming the field).
//! - [`concurrency`]: concurrent edits of one resource (one wins, the other gets 412) and
//!   parallel creates (distinct revisions, none lost).
//! - [`durability`]: restart on the same data directory, and `kill -9` during acknowledged writes.
//! - [`examples`]: the README's walk through the example programs, run as built.
//! - [`delivery`]: `/sdk/v1/config` (ETag, 304, gzip) and `/sdk/v1/stream` (push, resume with
//!   `Last-Event-ID`, keep-alives).
//! - [`keys`]: key scoping (SDK, client, admin), revocation, keys stored hashed.
//! - [`actions`]: rollout, toggle, restore from the audit log, import (dry run and real),
//!   export, preview, environments.
//! - [`hostile`]: garbage bodies on every documented operation: 4xx JSON errors, the server
//!   stays up, nothing changes.
//! - [`ofrep`]: OpenFeature Remote Evaluation Protocol, single and bulk.
//! - [`results`]: event ingestion and validation, attribution edge cases, rebuild identity,
//!   CSV, and the simulator recovering known lifts (200 seeded runs in-process, one end to end).
//! - [`sdk`]: the SDK against a real server: live updates, bootstrap and disk cache, events
//!   across a server restart (none lost, none twice), rejected keys, a misbehaving server,
//!   and tailor-core's conformance suite through the SDK.
//! - [`analyses`]: ratio metrics (one added after its events), Holm and Benjamini–Hochberg
//!   corrections across variants × metrics, proper priors, against the engine on plain sums.
//! - [`learning`]: learned personalization over 200 seeds: each context's best arm wins its
//!   traffic, the policy lift's interval covers the true lift.
//! - [`optimizer`]: learned weights published by running servers (audited, served to SDKs,
//!   kept across a restart, learning on), once per period across two instances on Redis.
//! - [`schema`]: every results report any test receives, validated against
//!   `server/openapi.yaml`'s `ExperimentReport` (made strict: no undocumented field).
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics`, `/openapi.yaml`, CORS, unknown routes.
//! - [`dashboard`]: the web dashboard in headless Chromium: sign-in, an experiment's numbers
//!   as seeded, SRM and not-enough-data states, sorting, screenshots (laptop and phone width,
//!   in `target/test-artifacts/dashboard/`), a rollout with confirmation reaching an SDK and the
//!   audit log, pause and roll-back; over HTTP: no data without a session, CSRF and origin
//!   checks, cookie attributes, revoked keys.
//! - [`traits`]: computed traits and large list segments: SDK `track` to server segments within
//!   a second, another process's SDK, backdated events, restart, a 1M-key list, two instances
//!   on Redis.
//! - [`browser`]: headless Chromium over WebDriver (chromedriver + fantoccini) for [`dashboard`].
//! - [`store_contract`]: the storage contract against SQLite, Redis and a 3-master Redis
//!   Cluster (real `redis-server` processes), plus Redis' event log, change feed and faults.
//! - [`partitions`]: three instances on a Redis Cluster with kills during ingest report what one
//!   embedded instance reports; checkpoints trim Redis' streams and restarts load them; the
//!   embedded store restarts from its checkpoints.
//! - [`multi_instance`]: two and three servers sharing one Redis (or a cluster): a write on one
//!   reaches SSE clients of the others, events split across instances counted once, Redis killed
//!   and restarted mid-traffic, an instance cut off from Redis catching up by revision.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod actions;
mod admin_crud;
mod analyses;
mod browser;
mod concurrency;
mod dashboard;
mod delivery;
mod durability;
mod examples;
mod hostile;
mod keys;
mod learning;
mod ofrep;
mod openapi;
mod ops;
mod optimizer;
mod results;
mod schema;
mod sdk;
mod support;
mod traits;
// Redis: the shared store.
mod multi_instance;
mod partitions;
mod store_contract;
