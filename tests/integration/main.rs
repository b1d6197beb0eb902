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
//! - [`delivery`]: `/sdk/v1/config` (ETag, 304, gzip) and `/sdk/v1/stream` (push, resume with
//!   `Last-Event-ID`, keep-alives).
//! - [`keys`]: key scoping (SDK, client, admin), revocation, keys stored hashed.
//! - [`actions`]: rollout, toggle, restore from the audit log, import (dry run and real),
//!   export, preview, environments.
//! - [`ofrep`]: OpenFeature Remote Evaluation Protocol, single and bulk.
//! - [`results`]: event ingestion and validation, attribution edge cases, rebuild identity,
//!   CSV, and the simulator recovering known lifts (200 seeded runs in-process, one end to end).
//! - [`sdk`]: the SDK against a real server: live updates, bootstrap and disk cache, events
//!   across a server restart (none lost, none twice), rejected keys, a misbehaving server,
//!   and tailor-core's conformance suite through the SDK.
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics`, `/openapi.yaml`, CORS, unknown routes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod actions;
mod admin_crud;
mod concurrency;
mod delivery;
mod durability;
mod keys;
mod ofrep;
mod openapi;
mod ops;
mod results;
mod sdk;
mod support;
