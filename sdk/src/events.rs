//! Event recording and delivery: exposure de-duplication, the bounded queue, batching, retries.
//!
//! The caller's thread only does a `try_send` into a bounded channel; when it is full the event
//! is dropped and counted (a warning is logged once), so memory stays bounded whatever the
//! server does. A background task (`run_delivery`) batches events and posts them; failed batches
//! are retried with exponential backoff and jitter, and because every event carries a unique id
//! the collector stores a retried event once.

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
    /// Exposures already recorded, per client (all threads share it).
    seen: ExposureSet,
}

impl EventQueue {
    pub(crate) fn new(
        capacity: usize,
        counters: Arc<EventCounters>,
    ) -> (Self, mpsc::Receiver<Command>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let instance = rand::random();
        let queue = EventQueue {
            tx,
            counters,
            instance,
            sequence: AtomicU64::new(0),
            seen: ExposureSet::new(instance),
        };
        (queue, rx)
    }

    /// A unique event id: this client's random instance id and a sequence number.
    pub(crate) fn next_id(&self) -> String {
        let n = self.sequence.fetch_add(1, Ordering::Relaxed);
        format!("{:016x}-{n:x}", self.instance)
    }

    #[cfg(test)]
    pub(crate) fn instance(&self) -> u64 {
        self.instance
    }

    /// See [`ExposureSet::first_sighting`].
    #[inline]
    pub(crate) fn first_sighting(
        &self,
        user_key: &str,
        flag: &str,
        variant: &str,
        experiment: &str,
    ) -> bool {
        self.seen
            .first_sighting(user_key, flag, variant, experiment)
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

/// Slots per bucket of the exposure set: 4 × 8 bytes, so a bucket is half a cache line and a
/// lookup reads one line.
const WAYS: usize = 4;
/// Buckets per client: 4,096 × 4 slots remember 16,384 recent exposures in 128 KiB.
const BUCKET_BITS: u32 = 12;
const BUCKETS: usize = 1 << BUCKET_BITS;

/// One bucket of [`ExposureSet`]: fingerprints, 0 for an empty slot. Aligned to its size so it
/// never straddles two cache lines.
#[repr(align(32))]
#[derive(Default)]
struct Bucket([AtomicU64; WAYS]);

impl Bucket {
    fn contains(&self, fingerprint: u64) -> bool {
        self.0
            .iter()
            .any(|slot| slot.load(Ordering::Relaxed) == fingerprint)
    }

    /// Claims a slot for `fingerprint`; false when another thread got there first. Taking a
    /// free slot is a compare-and-swap and so is exactly-once even when threads race on the
    /// same new exposure; a full bucket evicts the slot the fingerprint picks (a `swap`, so two
    /// racers for it still see each other).
    #[cold]
    #[inline(never)]
    fn insert(&self, fingerprint: u64) -> bool {
        for slot in &self.0 {
            match slot.compare_exchange(0, fingerprint, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(current) if current == fingerprint => return false,
                Err(_) => {}
            }
        }
        let victim = &self.0[(fingerprint >> 62) as usize % WAYS];
        victim.swap(fingerprint, Ordering::Relaxed) != fingerprint
    }
}

/// The exposures a client has recorded recently, shared by all its threads: a set-associative
/// cache of fingerprints in atomics, with no lock. A repeat (the common case: a user sees the
/// same page many times) only reads one cache line, which every core can keep a shared copy of,
/// so threads do not contend; only a new exposure writes. When a bucket is full an old entry
/// is evicted, and its exposure may be sent again later: the collector counts each user once
/// per experiment, so that costs a few bytes of traffic, not a wrong result.
pub(crate) struct ExposureSet {
    seed: u64,
    buckets: Box<[Bucket]>,
}

impl ExposureSet {
    /// An empty set; `seed` (the client's instance id) varies the slots from client to client.
    pub(crate) fn new(seed: u64) -> Self {
        ExposureSet {
            seed,
            buckets: (0..BUCKETS).map(|_| Bucket::default()).collect(),
        }
    }

    /// True the first time (for this client, within the set's memory) this exposure is seen,
    /// on whichever thread.
    #[inline]
    pub(crate) fn first_sighting(
        &self,
        user_key: &str,
        flag: &str,
        variant: &str,
        experiment: &str,
    ) -> bool {
        // `write` hashes each part together with its length, so field boundaries count
        // (("ab", "c") differs from ("a", "bc")) without separators; each write is one link of
        // a serial multiply chain, so fewer writes is a shorter chain.
        let mut h = FxHasher::with_seed(self.seed as usize);
        h.write(user_key.as_bytes());
        h.write(flag.as_bytes());
        h.write(variant.as_bytes());
        h.write(experiment.as_bytes());
        // Never 0, so an empty slot never matches.
        let fingerprint = h.finish() | 1;
        // FxHash's low bits are weak for keys that differ in a few characters (`user-1`,
        // `user-2`, …); a multiply by the 64-bit golden ratio moves every input bit into the
        // top bits, which pick the bucket.
        let index =
            (fingerprint.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - BUCKET_BITS)) as usize;
        let Some(bucket) = self.buckets.get(index) else {
            return true;
        };
        !bucket.contains(fingerprint) && bucket.insert(fingerprint)
    }
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

/// Whether the client is closing and its delivery deadline has passed.
fn deadline_passed(stop: &watch::Receiver<Option<tokio::time::Instant>>) -> bool {
    stop.borrow()
        .is_some_and(|deadline| tokio::time::Instant::now() >= deadline)
}

/// Whether the client is closing and its delivery deadline has passed, or is gone (dropped
/// without `close()`: nobody can set a deadline any more, and waiting for a change of `stop`
/// would return at once, so retrying would spin).
fn giving_up(stop: &watch::Receiver<Option<tokio::time::Instant>>) -> bool {
    deadline_passed(stop) || stop.has_changed().is_err()
}

/// Resolves at the close deadline; never while there is none (nor once the client is gone
/// without setting one: an attempt in flight then ends by its own request timeout).
async fn close_deadline(stop: &mut watch::Receiver<Option<tokio::time::Instant>>) {
    loop {
        // Its own statement: the guard of `borrow_and_update` must be gone before awaiting.
        let deadline = *stop.borrow_and_update();
        if let Some(deadline) = deadline {
            tokio::time::sleep_until(deadline).await;
            return;
        }
        if stop.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Drops a batch the client closed before it could be delivered, counting it; returns false
/// (what [`deliver`] returns when it gave up).
fn drop_undelivered(batch: &mut Vec<Event>, counters: &EventCounters) -> bool {
    tracing::warn!(
        events = batch.len(),
        "client closed before these events could be delivered"
    );
    counters
        .dropped
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    batch.clear();
    false
}

/// Posts `batch` until it is delivered or refused, backing off between attempts. Gives up only
/// when `stop` says the client is closing and its deadline has passed (or the client is gone);
/// a request still in flight at the deadline is abandoned, so a hung collector cannot hold
/// `close()` past it. Returns false when it gave up (the batch is then dropped and counted).
async fn deliver(
    http: &reqwest::Client,
    settings: &DeliverySettings,
    batch: &mut Vec<Event>,
    counters: &EventCounters,
    stop: &mut watch::Receiver<Option<tokio::time::Instant>>,
) -> bool {
    let mut backoff =
        crate::refresh::Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
    while !batch.is_empty() {
        if deadline_passed(stop) {
            return drop_undelivered(batch, counters);
        }
        let outcome = tokio::select! {
            outcome = post_batch(http, settings, batch, counters) => outcome,
            () = close_deadline(stop) => return drop_undelivered(batch, counters),
        };
        match outcome {
            Outcome::Delivered | Outcome::Refused => batch.clear(),
            Outcome::Retry => {
                counters.failed_attempts.fetch_add(1, Ordering::Relaxed);
                if giving_up(stop) {
                    return drop_undelivered(batch, counters);
                }
                let wait = backoff.next_delay();
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }
    true
}

/// After `close()` (its flush is over): what is still queued is delivered until the close
/// deadline; once a batch fails for good (the deadline passed, or the client is gone) the rest
/// is dropped and counted without more attempts. A flush still waiting in the queue is
/// answered with an error (its sender is dropped).
async fn deliver_rest(
    rx: &mut mpsc::Receiver<Command>,
    http: &reqwest::Client,
    settings: &DeliverySettings,
    batch: &mut Vec<Event>,
    counters: &EventCounters,
    stop: &mut watch::Receiver<Option<tokio::time::Instant>>,
) {
    let mut reachable = true;
    loop {
        while batch.len() < settings.max_batch {
            match rx.try_recv() {
                Ok(Command::Event(e)) => batch.push(e),
                Ok(Command::Flush(_)) => {}
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            return;
        }
        if reachable {
            reachable = deliver(http, settings, batch, counters, stop).await;
        } else {
            counters
                .dropped
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            batch.clear();
        }
    }
}

/// The delivery task: batches by size and time, answers flushes in order, and ends once the
/// client is closed (or dropped).
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
        // Checked on every turn, not only when `stop` changes: `deliver` may have consumed the
        // change notification while it was backing off. The borrow is its own statement so its
        // guard is released before anything else touches the channel.
        let closing = stop.borrow().is_some();
        if closing || stop.has_changed().is_err() {
            deliver_rest(&mut rx, &http, &settings, &mut batch, &counters, &mut stop).await;
            return;
        }
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
            // Wakes the loop so the check above sees a deadline (or a dropped client).
            _ = stop.changed() => {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is the test failure
mod tests {
    use super::*;

    #[test]
    fn exposures_are_deduplicated_per_identity() {
        let seen = ExposureSet::new(1);
        assert!(seen.first_sighting("u1", "f", "a", "e"));
        assert!(!seen.first_sighting("u1", "f", "a", "e"));
        assert!(
            seen.first_sighting("u1", "f", "b", "e"),
            "another variant is new"
        );
        assert!(
            seen.first_sighting("u2", "f", "a", "e"),
            "another user is new"
        );
        assert!(
            ExposureSet::new(2).first_sighting("u1", "f", "a", "e"),
            "another client is new"
        );
        // Field boundaries matter: ("ab","c") differs from ("a","bc").
        assert!(seen.first_sighting("ab", "c", "x", "e"));
        assert!(seen.first_sighting("a", "bc", "x", "e"));
    }

    #[test]
    fn an_exposure_is_new_once_per_client_whichever_thread_sees_it() {
        let seen = ExposureSet::new(7);
        let firsts = AtomicU64::new(0);
        let barrier = std::sync::Barrier::new(4);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    barrier.wait();
                    for i in 0..2_000 {
                        if seen.first_sighting(&format!("user-{i}"), "f", "a", "e") {
                            firsts.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(firsts.load(Ordering::Relaxed), 2_000);
    }

    #[test]
    fn similar_keys_spread_over_the_buckets() {
        // A quarter of the capacity, keys differing only in a counter: almost nothing may be
        // evicted (a weak bucket index would crowd them into few buckets).
        let seen = ExposureSet::new(5);
        let n = BUCKETS * WAYS / 4;
        for i in 0..n {
            assert!(seen.first_sighting(&format!("user-{i}"), "f", "a", "e"));
        }
        let resent = (0..n)
            .filter(|i| seen.first_sighting(&format!("user-{i}"), "f", "a", "e"))
            .count();
        assert!(resent <= n / 100, "{resent} of {n} forgotten");
    }

    #[test]
    fn a_full_bucket_evicts_and_still_deduplicates_its_newest_entries() {
        let seen = ExposureSet::new(3);
        // Far more exposures than slots: every bucket fills and evicts.
        let n = BUCKETS * WAYS * 4;
        for i in 0..n {
            seen.first_sighting(&format!("user-{i}"), "f", "a", "e");
        }
        assert!(
            !seen.first_sighting(&format!("user-{}", n - 1), "f", "a", "e"),
            "the newest exposure is remembered"
        );
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

    /// Delivery settings for a collector that refuses connections (a port nobody listens on).
    fn unreachable() -> DeliverySettings {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        DeliverySettings {
            url: format!("http://127.0.0.1:{port}/sdk/v1/events"),
            sdk_key: "tlr_sdk_test".into(),
            max_batch: 10,
            flush_interval: Duration::from_millis(20),
            request_timeout: Duration::from_secs(1),
        }
    }

    /// A delivery task sending to a port nobody listens on, with `events` conversions queued:
    /// the counters, the queue, the close deadline and the task.
    #[allow(clippy::type_complexity)]
    fn delivering_to_nowhere(
        events: usize,
    ) -> (
        Arc<EventCounters>,
        EventQueue,
        watch::Sender<Option<tokio::time::Instant>>,
        tokio::task::JoinHandle<()>,
    ) {
        let counters = Arc::new(EventCounters::default());
        let (queue, rx) = EventQueue::new(100, Arc::clone(&counters));
        let (deadline, stop) = watch::channel(None);
        let task = tokio::spawn(run_delivery(
            rx,
            reqwest::Client::new(),
            unreachable(),
            Arc::clone(&counters),
            stop,
        ));
        for _ in 0..events {
            queue.push(conversion(&queue));
        }
        (counters, queue, deadline, task)
    }

    fn conversion(queue: &EventQueue) -> Event {
        Event::Conversion(tailor_core::events::Conversion {
            id: queue.next_id(),
            timestamp: now_ms(),
            user_key: "u".into(),
            event: "e".into(),
            value: None,
        })
    }

    #[tokio::test]
    async fn the_delivery_task_ends_at_close_and_counts_what_it_could_not_send() {
        let (counters, queue, deadline, task) = delivering_to_nowhere(25);
        tokio::time::sleep(Duration::from_millis(50)).await;
        deadline.send_replace(Some(tokio::time::Instant::now()));
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the task ends after close")
            .unwrap();
        assert_eq!(counters.snapshot().dropped, 25);
        drop(queue);
    }

    #[tokio::test]
    async fn a_dropped_client_does_not_leave_the_delivery_task_spinning() {
        let (counters, queue, deadline, task) = delivering_to_nowhere(25);
        // What dropping a client without `close()` does: both senders go away.
        drop(queue);
        drop(deadline);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the task ends")
            .unwrap();
        let stats = counters.snapshot();
        assert_eq!(stats.dropped, 25);
        assert!(
            stats.failed_attempts <= 3,
            "one attempt per batch at most, no retry loop: {stats:?}"
        );
    }
}
