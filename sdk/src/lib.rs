//! Tailor's client SDK: evaluate flags locally, receive config changes live, record exposures
//! and conversions.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use tailor::{Client, User};
//!
//! let client = Client::builder("http://localhost:8080", "tlr_sdk_...").build().await?;
//! let user = User::new("user-42").with("country", "US").with("lifecycle", "new");
//! let homepage = client.variant(&user, "homepage"); // local, synchronous, never fails
//! println!("{:?} {}", homepage.key(), homepage.value());
//! client.track(&user, "purchase", Some(29.99));
//! client.close().await?; // delivers queued events
//! # Ok(()) }
//! ```
//!
//! # When things go wrong
//! Evaluation never fails: without a config every flag serves the caller's default. What the
//! client serves and why is in [`Client::status`]:
//! - **Server down at start.** `build()` waits up to
//!   [`start_timeout`](ClientBuilder::start_timeout) (default 5 s) for a first config, then
//!   continues with the disk cache, the bootstrap file or nothing, and logs a warning with the
//!   reason; [`start_without_waiting`](ClientBuilder::start_without_waiting) returns at once
//!   instead. Until the client has had a config from the server, a server refusing connections is
//!   retried at least every second, so the config arrives within about a second of the server
//!   coming up.
//! - **Server gone, or answering errors or junk.** The status says
//!   [`Connection::Disconnected`], with the error and its causes in
//!   [`Status::last_error`] (a warning is logged when the connection is lost, an info line when
//!   it is back), and the client keeps serving the last good config. Every failure backs off
//!   exponentially with jitter ([`backoff`](ClientBuilder::backoff)), including a server that
//!   answers 200 with configs the client rejects (counted in [`Status::rejected_configs`]).
//!   [`Connection::Polling`] while streaming is configured means the stream is unavailable but
//!   the fallback poll works.
//! - **Server hanging at shutdown.** [`Client::close`] returns within
//!   [`flush_timeout`](ClientBuilder::flush_timeout) (plus a few milliseconds); events it could
//!   not deliver are dropped and counted in [`EventStats::dropped`].
//! - **Exposures** are de-duplicated per client, across all its clones and threads (in a
//!   bounded, lock-free set: an exposure evicted from it may be sent again, and the collector
//!   counts each user once per experiment anyway).
//!
//! # Layout
//! - [`client`]: [`Client`], its builder and defaults, [`Variant`], typed getters, `track`.
//! - [`refresh`]: the update task — SSE with ETag-polling fallback, backoff, last-good config.
//! - [`events`]: exposure de-duplication, the bounded queue, batched delivery with retries.
//! - [`profiles`]: users' computed traits and list memberships: loading, the bounded cache,
//!   read-your-writes.
//! - `cache`: the atomic on-disk config cache and bootstrap files.
//! - [`error`]: build and flush errors (evaluation itself never fails).
//! - `openfeature` (cargo feature `openfeature`, on by default): `TailorProvider`, an
//!   OpenFeature provider wrapping a [`Client`].
//!
//! Everything runs on the caller's tokio runtime; no private runtime or thread is started.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod cache;
pub mod client;
pub mod error;
pub mod events;
#[cfg(feature = "openfeature")]
pub mod openfeature;
pub mod profiles;
pub mod refresh;

pub use client::{Client, ClientBuilder, Variant, VariantDetail};
pub use error::{BuildError, ConfigSourceError, FlushError};
pub use events::EventStats;
pub use profiles::{ProfileError, ProfileStats};
pub use refresh::{ConfigSource, Connection, Status};
pub use tailor_core::{
    AttributeList, AttributeRef, AttributeValue, ConfigDocument, Profile, Reason, TraitValue, User,
};
