//! Per-key event rate limits: token buckets that bound how many events one key may send.
//!
//! Client-side keys are public by design (they ship in web pages and apps), so anyone can post
//! events with one. Each key gets a bucket of `rate` events per second that holds up to 10
//! seconds' worth (at least one full batch), refilled continuously; a batch that finds too few
//! tokens is refused whole with `429` and `Retry-After` (the SDKs retry it later, so a burst is
//! delayed, not lost). Client keys default to 1,000 events/s
//! (`TAILOR_CLIENT_KEY_EVENTS_PER_SECOND`); SDK keys are secret server-side keys and are not
//! limited unless `TAILOR_SDK_KEY_EVENTS_PER_SECOND` is set (0 = unlimited for either). Limits
//! are per instance: with several instances behind a load balancer, a key gets the rate at each.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tailor_core::events::MAX_BATCH_EVENTS;

use crate::store::{ApiKey, KeyKind};

/// Seconds of rate a bucket holds.
const BURST_SECONDS: f64 = 10.0;
/// Keys tracked at most; past it, buckets that are full again are forgotten.
const MAX_TRACKED: usize = 100_000;

/// Events per second allowed per key, by kind (0: unlimited).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventRates {
    /// Per client-side key.
    pub client: u32,
    /// Per SDK key.
    pub sdk: u32,
}

impl Default for EventRates {
    fn default() -> Self {
        EventRates {
            client: 1_000,
            sdk: 0,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The buckets of every key that sent events.
#[derive(Debug, Default)]
pub struct EventRateLimits {
    rates: EventRates,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl EventRateLimits {
    /// Limits at these rates.
    pub fn new(rates: EventRates) -> Self {
        EventRateLimits {
            rates,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `events` tokens from `key`'s bucket, or says how long to wait until they are there.
    pub fn take(&self, key: &ApiKey, events: usize) -> Result<(), Duration> {
        self.take_at(key, events, Instant::now())
    }

    /// [`EventRateLimits::take`] as of `now` (a parameter so tests need not sleep).
    fn take_at(&self, key: &ApiKey, events: usize, now: Instant) -> Result<(), Duration> {
        let rate = match key.kind {
            KeyKind::Client => self.rates.client,
            KeyKind::Sdk => self.rates.sdk,
            KeyKind::Admin => 0,
        };
        if rate == 0 {
            return Ok(());
        }
        let rate = f64::from(rate);
        // At least one full batch fits, so no batch is refused forever.
        let capacity = (rate * BURST_SECONDS).max(MAX_BATCH_EVENTS as f64);
        // Counters only: a panicking holder cannot leave them inconsistent.
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&key.id) {
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.updated).as_secs_f64() * rate < capacity
            });
        }
        let bucket = buckets.entry(key.id.clone()).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
        bucket.updated = now;
        let wanted = events as f64;
        if bucket.tokens >= wanted {
            bucket.tokens -= wanted;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((wanted - bucket.tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, kind: KeyKind) -> ApiKey {
        ApiKey {
            id: id.into(),
            name: id.into(),
            kind,
            environment: Some("production".into()),
            digest: String::new(),
            created_at: String::new(),
            revoked_at: None,
        }
    }

    #[test]
    fn a_client_key_gets_its_burst_then_its_rate() {
        let limits = EventRateLimits::new(EventRates {
            client: 100,
            sdk: 0,
        });
        let client = key("c", KeyKind::Client);
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        // The bucket holds 10 s of rate, but at least one batch of 1,000.
        assert_eq!(limits.take_at(&client, 1_000, at(0)), Ok(()));
        assert_eq!(
            limits.take_at(&client, 50, at(0)),
            Err(Duration::from_millis(500))
        );
        // Half a second refills 50.
        assert_eq!(limits.take_at(&client, 50, at(500)), Ok(()));
        assert!(limits.take_at(&client, 1, at(500)).is_err());
        // Other keys have their own buckets; SDK keys are unlimited by default.
        assert_eq!(
            limits.take_at(&key("d", KeyKind::Client), 1_000, at(500)),
            Ok(())
        );
        let sdk = key("s", KeyKind::Sdk);
        for _ in 0..100 {
            assert_eq!(limits.take_at(&sdk, 1_000, at(500)), Ok(()));
        }
    }

    #[test]
    fn a_bucket_never_holds_more_than_its_capacity() {
        let limits = EventRateLimits::new(EventRates {
            client: 200,
            sdk: 10,
        });
        let client = key("c", KeyKind::Client);
        let start = Instant::now();
        assert_eq!(limits.take_at(&client, 2_000, start), Ok(()));
        let an_hour = start + Duration::from_secs(3_600);
        assert_eq!(limits.take_at(&client, 2_000, an_hour), Ok(()));
        assert!(limits.take_at(&client, 1, an_hour).is_err());
        let sdk = key("s", KeyKind::Sdk);
        assert_eq!(limits.take_at(&sdk, 1_000, start), Ok(()));
        assert_eq!(limits.take_at(&sdk, 10, start), Err(Duration::from_secs(1)));
    }
}
