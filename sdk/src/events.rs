//! Event recording and delivery: exposure de-duplication, the bounded queue, batching, retries.
//!
//! The caller's thread only does a `try_send` into a bounded channel; when it is full the event
//! is dropped and counted (a warning is logged once), so memory stays bounded whatever the
//! server does. A background task (`run_delivery`) batches events and posts them; failed batches
//! are retried with exponential backoff and jitter, and because every event carries a unique id
//! the collector stores a retried event once.

use std::cell::RefCell;
use std::hash::Hasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustc_hash::FxHasher;
use tailor_core::events::{Event, EventBatch};
use tokio::sync::{mpsc, oneshot, watch};

/// Counters describing event delivery, readable through [`crate::Client::event_stats`].
#[derive(Debug, Default)]
pub struct EventCounters {
    pub(crate) queued: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) failed_attempts: AtomicU64,
    warned_full: AtomicBool,
}

/// A snapshot of [`EventCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventStats {
    /// Events accepted into the queue.
    pub queued: u64,
    /// Events dropped because the queue was full (or the client closed).
    pub dropped: u64,
    /// Events acknowledged by the collector.
    pub delivered: u64,
    /// Events the collector refused as invalid (not retried).
    pub rejected: u64,
    /// Delivery attempts that failed and were retried.
    pub failed_attempts: u64,
}

impl EventCounters {
    pub(crate) fn snapshot(&self) -> EventStats {
        EventStats {
            queued: self.queued.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            failed_attempts: self.failed_attempts.load(Ordering::Relaxed),
        }
    }
}

pub(crate) enum Command {
    Event(Event),
    Flush(oneshot::Sender<()>),
}

/// The producer side, owned by the client.
pub(crate) struct EventQueue {
    tx: mpsc::Sender<Command>,
    pub(crate) counters: Arc<EventCounters>,
    instance: u64,
    sequence: AtomicU64,
}

impl EventQueue {
    pub(crate) fn new(
        capacity: usize,
        counters: Arc<EventCounters>,
    ) -> (Self, mpsc::Receiver<Command>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let queue = EventQueue {
            tx,
            counters,
            instance: rand::random(),
            sequence: AtomicU64::new(0),
        };
        (queue, rx)
    }

    /// A unique event id: this client's random instance id and a sequence number.
    pub(crate) fn next_id(&self) -> String {
        let n = self.sequence.fetch_add(1, Ordering::Relaxed);
        format!("{:016x}-{n:x}", self.instance)
    }

    pub(crate) fn instance(&self) -> u64 {
        self.instance
    }

    /// Commands (events, and flushes waiting for delivery) in the channel now: its bound minus
    /// its free slots, so never more than the capacity.
    pub(crate) fn len(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Queues without waiting; a full queue drops the event and counts it.
    pub(crate) fn push(&self, event: Event) {
        match self.tx.try_send(Command::Event(event)) {
            Ok(()) => {
                self.counters.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                if !self.counters.warned_full.swap(true, Ordering::Relaxed) {
                    tracing::warn!("tailor event queue is full: dropping events (counted in event_stats().dropped)");
                }
            }
        }
    }

    /// Asks the delivery task to send everything queued so far; resolves when it has.
    pub(crate) async fn flush(&self) -> Option<oneshot::Receiver<()>> {
        let (done, wait) = oneshot::channel();
        self.tx.send(Command::Flush(done)).await.ok()?;
        Some(wait)
    }
}

/// Now, Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

const SEEN_SLOTS: usize = 4096;

thread_local! {
    // Per-thread, direct-mapped cache of recently recorded exposures: no lock and no shared
    // cache line on the hot path. A collision only causes an extra exposure, which the collector
    // de-duplicates by counting each user once per experiment.
    static SEEN: RefCell<Box<[u64]>> = RefCell::new(vec![0u64; SEEN_SLOTS].into_boxed_slice());
}

/// Returns true the first time (per thread, within the cache's memory) this exposure is seen.
pub(crate) fn first_sighting(
    instance: u64,
    user_key: &str,
    flag: &str,
    variant: &str,
    experiment: &str,
) -> bool {
    let mut h = FxHasher::default();
    h.write_u64(instance);
    for part in [user_key, flag, variant, experiment] {
        h.write(part.as_bytes());
        h.write_u8(0xff);
    }
    // Never 0, so an empty slot never matches.
    let fingerprint = h.finish() | 1;
    SEEN.with(|seen| {
        let mut seen = seen.borrow_mut();
        let slot = (fingerprint as usize ^ (fingerprint >> 32) as usize) % SEEN_SLOTS;
        if seen[slot] == fingerprint {
            false
        } else {
            seen[slot] = fingerprint;
            true
        }
    })
}

/// Delivery settings.
#[derive(Debug, Clone)]
pub(crate) struct DeliverySettings {
    pub(crate) url: String,
    pub(crate) sdk_key: String,
    pub(crate) max_batch: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) request_timeout: Duration,
}

enum Outcome {
    Delivered,
    /// The collector refused the batch (4xx): retrying cannot help.
    Refused,
    Retry,
}

async fn post_batch(
    http: &reqwest::Client,
    settings: &DeliverySettings,
    batch: &[Event],
    counters: &EventCounters,
) -> Outcome {
    let body = EventBatch {
        events: batch.to_vec(),
    };
    let result = http
        .post(&settings.url)
        .bearer_auth(&settings.sdk_key)
        .timeout(settings.request_timeout)
        .json(&body)
        .send()
        .await;
    match result {
        Ok(resp) if resp.status().is_success() => {
            let rejected = resp
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|v| v.get("rejected").and_then(|r| r.as_array()).map(Vec::len))
                .unwrap_or(0);
            if rejected > 0 {
                tracing::warn!(rejected, "the collector rejected some events as invalid");
            }
            counters.delivered.fetch_add(
                (batch.len() - rejected.min(batch.len())) as u64,
                Ordering::Relaxed,
            );
            counters
                .rejected
                .fetch_add(rejected as u64, Ordering::Relaxed);
            Outcome::Delivered
        }
        Ok(resp) => {
            let status = resp.status();
            let retryable = status.is_server_error()
                || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                || status == reqwest::StatusCode::REQUEST_TIMEOUT;
            if retryable {
                tracing::debug!(%status, "event delivery failed; will retry");
                Outcome::Retry
            } else {
                let text = resp.text().await.unwrap_or_default();
                tracing::error!(%status, body = %text, "the collector refused an event batch; dropping it");
                counters
                    .rejected
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                Outcome::Refused
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, "event delivery failed; will retry");
            Outcome::Retry
        }
    }
}

/// Posts `batch` until it is delivered or refused, backing off between attempts. Gives up only
/// when `stop` says the client is closing and `deadline` has passed.
async fn deliver(
    http: &reqwest::Client,
    settings: &DeliverySettings,
    batch: &mut Vec<Event>,
    counters: &EventCounters,
    stop: &mut watch::Receiver<Option<tokio::time::Instant>>,
) {
    let mut backoff =
        crate::refresh::Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
    while !batch.is_empty() {
        match post_batch(http, settings, batch, counters).await {
            Outcome::Delivered | Outcome::Refused => batch.clear(),
            Outcome::Retry => {
                counters.failed_attempts.fetch_add(1, Ordering::Relaxed);
                let deadline = *stop.borrow();
                if let Some(deadline) = deadline {
                    if tokio::time::Instant::now() >= deadline {
                        tracing::warn!(
                            events = batch.len(),
                            "client closed before these events could be delivered"
                        );
                        counters
                            .dropped
                            .fetch_add(batch.len() as u64, Ordering::Relaxed);
                        batch.clear();
                        return;
                    }
                }
                let wait = backoff.next_delay();
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }
}

/// The delivery task: batches by size and time, answers flushes in order.
pub(crate) async fn run_delivery(
    mut rx: mpsc::Receiver<Command>,
    http: reqwest::Client,
    settings: DeliverySettings,
    counters: Arc<EventCounters>,
    mut stop: watch::Receiver<Option<tokio::time::Instant>>,
) {
    let mut batch: Vec<Event> = Vec::with_capacity(settings.max_batch);
    let mut tick = tokio::time::interval(settings.flush_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            command = rx.recv() => match command {
                Some(Command::Event(e)) => {
                    batch.push(e);
                    if batch.len() >= settings.max_batch {
                        deliver(&http, &settings, &mut batch, &counters, &mut stop).await;
                    }
                }
                Some(Command::Flush(done)) => {
                    deliver(&http, &settings, &mut batch, &counters, &mut stop).await;
                    let _ = done.send(());
                }
                None => {
                    deliver(&http, &settings, &mut batch, &counters, &mut stop).await;
                    return;
                }
            },
            _ = tick.tick() => {
                deliver(&http, &settings, &mut batch, &counters, &mut stop).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposures_are_deduplicated_per_identity() {
        assert!(first_sighting(1, "u1", "f", "a", "e"));
        assert!(!first_sighting(1, "u1", "f", "a", "e"));
        assert!(
            first_sighting(1, "u1", "f", "b", "e"),
            "another variant is new"
        );
        assert!(
            first_sighting(1, "u2", "f", "a", "e"),
            "another user is new"
        );
        assert!(
            first_sighting(2, "u1", "f", "a", "e"),
            "another client is new"
        );
        // Field boundaries matter: ("ab","c") differs from ("a","bc").
        assert!(first_sighting(1, "ab", "c", "x", "e"));
        assert!(first_sighting(1, "a", "bc", "x", "e"));
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts() {
        let counters = Arc::new(EventCounters::default());
        let (queue, _rx) = EventQueue::new(3, Arc::clone(&counters));
        for _ in 0..10 {
            queue.push(Event::Conversion(tailor_core::events::Conversion {
                id: queue.next_id(),
                timestamp: now_ms(),
                user_key: "u".into(),
                event: "e".into(),
                value: None,
            }));
        }
        let stats = counters.snapshot();
        assert_eq!(stats.queued, 3);
        assert_eq!(stats.dropped, 7);
    }

    #[test]
    fn event_ids_are_unique() {
        let (queue, _rx) = EventQueue::new(1, Arc::new(EventCounters::default()));
        let a = queue.next_id();
        let b = queue.next_id();
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("{:016x}-", queue.instance())));
    }
}
