//! Shared-store mode: every instance tails each environment's event log.
//!
//! Events may be sent to any instance, so no instance can apply "its" events locally and be
//! right. Instead the store's log (one order for all readers) is the source of truth and each
//! instance keeps a cursor into it per environment: [`Collector::catch_up`] reads everything
//! after the cursor and applies it, once, with the same [`Attribution`] code the embedded store
//! uses. Identical input in identical order gives identical results on every instance.
//!
//! A catch-up runs when the store announces new events (from any instance, including this
//! one), after this instance ingested a batch, and every [`SharedStore::poll_interval`] as a
//! safety net for missed announcements. The cursor sits in an async mutex held for the whole
//! read-and-apply, so catch-ups and rebuilds of one environment never interleave: no event is
//! applied twice or skipped.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{Mutex as AsyncMutex, Notify};

use super::Collector;
use crate::attribution::Attribution;
use crate::store::{EventCursor, SharedStore, StoreError};

/// Events read per round trip.
const PAGE: usize = 5_000;

/// One environment's position in the shared log.
#[derive(Default)]
pub(crate) struct Tail {
    /// After the last applied event.
    cursor: AsyncMutex<EventCursor>,
    wake: Notify,
    running: AtomicBool,
}

impl Collector {
    fn tail(&self, environment: &str) -> Arc<Tail> {
        let mut tails = self.tails.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(tails.entry(environment.to_string()).or_default())
    }

    /// Replays the whole log into a fresh attribution, swapping it in with its cursor.
    pub(super) async fn load_shared(
        &self,
        shared: &dyn SharedStore,
        environment: &str,
        progress: &AtomicU64,
    ) -> Result<u64, StoreError> {
        let tail = self.tail(environment);
        let mut cursor = tail.cursor.lock().await;
        let mut attribution = Attribution::default();
        self.apply_windows(environment, &mut attribution);
        let mut next = EventCursor::default();
        loop {
            let page = shared.events_after(environment, &next, PAGE).await?;
            for event in &page.events {
                attribution.apply(event);
            }
            progress.fetch_add(page.events.len() as u64, Ordering::Relaxed);
            next = page.next;
            if page.events.len() < PAGE {
                break;
            }
        }
        let applied = attribution.events_applied();
        {
            // Config changes during the load (under the attribution lock, like
            // `config_changed`).
            let mut map = self.lock();
            self.apply_windows(environment, &mut attribution);
            map.insert(environment.to_string(), attribution);
        }
        *cursor = next;
        Ok(applied)
    }

    /// Applies every event stored after this environment's cursor; returns how many.
    pub async fn catch_up(
        &self,
        shared: &dyn SharedStore,
        environment: &str,
    ) -> Result<usize, StoreError> {
        if self.loading(environment).is_some() {
            // The first load replays the whole log and sets the cursor; catching up now would
            // only do the same work twice.
            return Ok(0);
        }
        let tail = self.tail(environment);
        let mut cursor = tail.cursor.lock().await;
        let mut applied = 0;
        loop {
            let page = shared.events_after(environment, &cursor, PAGE).await?;
            let n = page.events.len();
            if n > 0 {
                self.apply(environment, &page.events);
            }
            *cursor = page.next;
            applied += n;
            if n < PAGE {
                return Ok(applied);
            }
        }
    }

    /// Asks the environment's tail to catch up now (no-op without a tail).
    pub fn wake(&self, environment: &str) {
        let tails = self.tails.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tail) = tails.get(environment) {
            tail.wake.notify_one();
        }
    }

    /// Asks every tail to catch up now.
    pub fn wake_all(&self) {
        let tails = self.tails.lock().unwrap_or_else(|p| p.into_inner());
        for tail in tails.values() {
            tail.wake.notify_one();
        }
    }

    /// Claims the right to run `environment`'s tail task: true once per environment.
    pub fn claim_tail(&self, environment: &str) -> bool {
        !self.tail(environment).running.swap(true, Ordering::AcqRel)
    }

    /// Keeps `environment`'s attribution in step with the shared log, forever (a background
    /// task: `run_*`). Failures are logged once per outage and retried on the next wake-up.
    pub async fn run_tail(&self, shared: &dyn SharedStore, environment: &str) {
        let tail = self.tail(environment);
        let mut failing = false;
        loop {
            match self.catch_up(shared, environment).await {
                Ok(_) if failing => {
                    failing = false;
                    tracing::info!(environment, "reading events from the store again");
                }
                Ok(_) => {}
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(
                        environment,
                        error = %e,
                        "cannot read new events; results on this instance lag until the store is back"
                    );
                }
                Err(_) => {}
            }
            tokio::select! {
                _ = tail.wake.notified() => {}
                _ = tokio::time::sleep(shared.poll_interval()) => {}
            }
        }
    }
}
