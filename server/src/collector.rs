//! The event collector's state: per-environment attribution kept in step with stored events.
//!
//! Ingestion stores a batch durably first, then applies only the newly stored events (a resent
//! id is a no-op) to the environment's [`Attribution`]. At startup and on demand, attribution is
//! rebuilt from the raw events with the same code, so a rebuild gives identical numbers.
//!
//! Loading never holds the server up: configs are served while an environment's events are
//! replayed in the background, and ingestion goes on storing (and acknowledging) meanwhile. The
//! replay reads the log in two passes: the first, long one runs beside ingestion; the second,
//! with ingestion paused, reads what was stored during the first. Until it is done, results
//! answer "loading" ([`Collector::loading`]).
//!
//! With a shared store (Redis, several instances) ingestion only stores: every instance
//! instead tails the environment's event log and applies each stored event once, whichever
//! instance received it (`collector/tail.rs`), so all instances report the same results.

mod tail;
pub mod vocabulary;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tailor_core::events::Event;
use tailor_core::ConfigDocument;
use tokio::sync::RwLock;

use crate::attribution::{Attribution, ExperimentTotals, VariantSeries};
use crate::store::{EncodedEvent, EventCursor, Store, StoreError};
use vocabulary::Vocabulary;

/// Experiment key → attribution window in hours (`None`: unlimited).
type Windows = Vec<(String, Option<u32>)>;

/// Attribution for every environment.
#[derive(Default)]
pub struct Collector {
    // Shared with the background passes that recompute users after a window change.
    by_environment: Arc<Mutex<HashMap<String, Attribution>>>,
    /// Ingestion holds it shared from storing a batch to applying it; a replay's second pass
    /// holds it exclusively, so every stored event is applied exactly once.
    gate: RwLock<()>,
    /// Environments whose events are being replayed for the first time, with the number of
    /// events replayed so far. Their results are not ready, and ingestion leaves their events to
    /// the replay.
    loading: Mutex<HashMap<String, Arc<AtomicU64>>>,
    /// The latest attribution windows of each environment's experiments.
    windows: Mutex<HashMap<String, Windows>>,
    /// Shared-store mode: each environment's position in the event log.
    tails: Mutex<HashMap<String, Arc<tail::Tail>>>,
    /// What each environment's exposures may name (replaced, never changed in place, so
    /// ingestion checks a batch against one snapshot without holding a lock).
    vocabularies: Mutex<HashMap<String, Arc<Vocabulary>>>,
}

impl Collector {
    /// Marks an environment as loading: until [`Collector::load_environment`] finishes, its
    /// results answer "loading". Call it before the environment takes events.
    pub fn start_loading(&self, environment: &str) {
        lock(&self.loading)
            .entry(environment.to_string())
            .or_default();
    }

    /// Events replayed so far, while the environment's attribution is first loading (`None`:
    /// loaded, results are ready).
    pub fn loading(&self, environment: &str) -> Option<u64> {
        lock(&self.loading)
            .get(environment)
            .map(|n| n.load(Ordering::Relaxed))
    }

    /// Gives `attribution` the environment's current attribution windows.
    fn apply_windows(&self, environment: &str, attribution: &mut Attribution) {
        if let Some(windows) = lock(&self.windows).get(environment) {
            for (experiment, hours) in windows {
                attribution.set_window(experiment, *hours);
            }
        }
    }

    /// Applies newly stored events to the environment's attribution (creating it, with the
    /// current windows, for an environment that has none yet).
    fn apply<'e>(&self, environment: &str, events: impl IntoIterator<Item = &'e Event>) {
        let mut map = self.lock();
        if !map.contains_key(environment) {
            let mut attribution = Attribution::default();
            self.apply_windows(environment, &mut attribution);
            map.insert(environment.to_string(), attribution);
        }
        if let Some(attribution) = map.get_mut(environment) {
            for event in events {
                attribution.apply(event);
            }
        }
    }

    /// Applies every event stored after `after` to `attribution`; returns the position after
    /// the last one.
    async fn replay(
        store: &dyn Store,
        environment: &str,
        attribution: &mut Attribution,
        after: EventCursor,
        progress: &AtomicU64,
    ) -> Result<EventCursor, StoreError> {
        let mut next = after.clone();
        let mut scan = store.scan_events(environment, &after).await?;
        while let Some(page) = scan.recv().await {
            let page = page?;
            for event in &page.events {
                attribution.apply(event);
            }
            progress.fetch_add(page.events.len() as u64, Ordering::Relaxed);
            next = page.next;
        }
        Ok(next)
    }

    /// Loads an environment's attribution from the stored events (at startup, when it is
    /// created through another instance, or to rebuild it) and swaps it in; returns how many
    /// events it holds. Results keep answering from the old attribution, if any, meanwhile, and
    /// ingestion pauses only for the second, short pass.
    pub async fn load_environment(
        &self,
        store: &dyn Store,
        environment: &str,
    ) -> Result<u64, StoreError> {
        let progress = lock(&self.loading)
            .get(environment)
            .cloned()
            .unwrap_or_default();
        // A retry after a failed attempt counts from zero again.
        progress.store(0, Ordering::Relaxed);
        if let Some(shared) = store.shared() {
            let applied = self.load_shared(shared, environment, &progress).await?;
            lock(&self.loading).remove(environment);
            // Events stored during the load: the tail left them to it until now.
            self.wake(environment);
            return Ok(applied);
        }
        let mut attribution = Attribution::default();
        self.apply_windows(environment, &mut attribution);
        let cursor = Self::replay(
            store,
            environment,
            &mut attribution,
            EventCursor::default(),
            &progress,
        )
        .await?;
        // What was stored during the first pass; no batch is between storing and applying now.
        let _exclusive = self.gate.write().await;
        Self::replay(store, environment, &mut attribution, cursor, &progress).await?;
        // Config changes during the replay (under the attribution lock, like `config_changed`).
        let applied = attribution.events_applied();
        {
            let mut map = self.lock();
            self.apply_windows(environment, &mut attribution);
            map.insert(environment.to_string(), attribution);
        }
        lock(&self.loading).remove(environment);
        Ok(applied)
    }

    /// Stores a batch durably and applies the newly stored events (with a shared store: wakes
    /// the tail that applies them; while the environment is loading: leaves them to the
    /// replay). Returns, per event, whether it was new.
    pub async fn ingest(
        &self,
        store: &dyn Store,
        environment: &str,
        events: &[EncodedEvent<'_>],
    ) -> Result<Vec<bool>, StoreError> {
        let _shared = self.gate.read().await;
        let fresh = store.append_events(environment, events).await?;
        if store.shared().is_some() {
            // The tail applies them, in log order, like events stored through other instances.
            self.wake(environment);
            return Ok(fresh);
        }
        if self.loading(environment).is_none() {
            let new_events = events.iter().zip(&fresh).filter(|(_, new)| **new);
            self.apply(environment, new_events.map(|(e, _)| &e.event));
        }
        Ok(fresh)
    }

    /// Applies the experiments' attribution windows from a new config revision.
    ///
    /// Called on the write path, so it only records the windows. When one changed, its users
    /// are recomputed by a pass on the blocking pool, 1/1024 of the users at a time with the lock
    /// released in between, so neither the writer's worker nor ingestion waits for millions of
    /// users (a user whose event arrives meanwhile is recomputed under the new window at once).
    /// Until the pass ends, results may count some users under the old window.
    pub fn config_changed(&self, environment: &str, document: &ConfigDocument) {
        {
            let mut vocabularies = lock(&self.vocabularies);
            let slot = vocabularies.entry(environment.to_string()).or_default();
            let mut vocabulary = Vocabulary::clone(slot);
            vocabulary.add(document);
            *slot = Arc::new(vocabulary);
        }
        let windows: Windows = document
            .experiments
            .iter()
            .map(|e| (e.key.clone(), e.attribution_window_hours))
            .collect();
        // Under the attribution lock (then the windows lock, the order everywhere), so that an
        // attribution swapped in by a rebuild cannot miss the change.
        let changed: Vec<String> = {
            let mut map = self.lock();
            let changed = match map.get_mut(environment) {
                Some(attribution) => windows
                    .iter()
                    .filter(|(experiment, hours)| attribution.change_window(experiment, *hours))
                    .map(|(experiment, _)| experiment.clone())
                    .collect(),
                None => Vec::new(),
            };
            lock(&self.windows).insert(environment.to_string(), windows);
            changed
        };
        if changed.is_empty() {
            return;
        }
        let by_environment = Arc::clone(&self.by_environment);
        let environment = environment.to_string();
        let pass = move || recompute_users(&by_environment, &environment, &changed);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(pass)),
            // Outside a runtime (tools, unit tests) nothing else is waiting: recompute here.
            Err(_) => pass(),
        }
    }

    /// What the environment's exposures may name (see [`vocabulary`]).
    pub fn vocabulary(&self, environment: &str) -> Arc<Vocabulary> {
        lock(&self.vocabularies)
            .get(environment)
            .cloned()
            .unwrap_or_default()
    }

    /// An experiment's aggregates.
    pub fn totals(&self, environment: &str, experiment: &str) -> Option<ExperimentTotals> {
        self.lock().get(environment)?.totals(experiment)
    }

    /// An experiment's cumulative users and conversions per variant over time, for `metric`.
    pub fn timeline(
        &self,
        environment: &str,
        experiment: &str,
        metric: &str,
    ) -> Vec<VariantSeries> {
        self.lock()
            .get(environment)
            .map(|a| a.timeline(experiment, metric))
            .unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Attribution>> {
        lock(&self.by_environment)
    }
}

/// Recomputes every user of `environment` for `experiments`, one part (1/1024 of the users) per
/// lock.
fn recompute_users(
    by_environment: &Mutex<HashMap<String, Attribution>>,
    environment: &str,
    experiments: &[String],
) {
    let started = std::time::Instant::now();
    for part in 0..Attribution::RECOMPUTE_PARTS {
        match lock(by_environment).get_mut(environment) {
            Some(attribution) => attribution.recompute_part(part, experiments),
            None => return,
        }
    }
    tracing::info!(
        environment,
        ?experiments,
        millis = started.elapsed().as_millis() as u64,
        "recomputed users for a changed attribution window"
    );
}

/// Locks one of the collector's maps. Attribution updates cannot leave partial state behind a
/// panic that matters more than the lost update; a rebuild restores exact numbers.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tailor_core::events::{Conversion, Exposure};

    use super::*;

    fn document(window_hours: Option<u32>) -> ConfigDocument {
        let mut document = ConfigDocument::default();
        document.experiments.push(
            serde_json::from_value(serde_json::json!({
                "key": "exp", "status": "running", "attribution_window_hours": window_hours,
            }))
            .unwrap(),
        );
        document
    }

    fn converted(collector: &Collector) -> u64 {
        let totals = collector.totals("prod", "exp").unwrap();
        totals.cells[0]
            .metrics
            .get("purchase")
            .map_or(0, |m| m.converted)
    }

    /// A window change returns at once on the write path; the users are recomputed by the
    /// background pass, after which the results reflect the new window.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_window_change_is_recomputed_in_the_background() {
        let collector = Collector::default();
        collector.config_changed("prod", &document(None));
        let mut events = Vec::new();
        for u in 0..1_000i64 {
            let user_key = format!("u{u}");
            events.push(Event::Exposure(Exposure {
                id: format!("e{u}"),
                timestamp: 0,
                user_key: user_key.clone(),
                flag: "homepage".into(),
                variant: "personal".into(),
                experiment: "exp".into(),
                rule: 0,
                segment: None,
                personalized: true,
                revision: 1,
                spec_version: 1,
            }));
            events.push(Event::Conversion(Conversion {
                id: format!("c{u}"),
                timestamp: (u % 2) * 7_200_000,
                user_key,
                event: "purchase".into(),
                value: None,
            }));
        }
        collector.apply("prod", &events);
        assert_eq!(converted(&collector), 1_000);
        collector.config_changed("prod", &document(Some(1)));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while converted(&collector) != 500 {
            assert!(std::time::Instant::now() < deadline, "the pass never ended");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}
