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
//! # Layout
//! - [`client`]: [`Client`], its builder and defaults, [`Variant`], typed getters, `track`.
//! - [`refresh`]: the update task — SSE with ETag-polling fallback, backoff, last-good config.
//! - [`events`]: exposure de-duplication, the bounded queue, batched delivery with retries.
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
pub mod refresh;

pub use client::{Client, ClientBuilder, Variant, VariantDetail};
pub use error::{BuildError, ConfigSourceError, FlushError};
pub use events::EventStats;
pub use refresh::{ConfigSource, Connection, Status};
pub use tailor_core::{AttributeList, AttributeRef, AttributeValue, ConfigDocument, Reason, User};
