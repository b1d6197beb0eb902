//! The event collector's state: per-environment attribution kept in step with stored events.
//!
//! Ingestion stores a batch durably first, then applies only the newly stored events (a resent
//! id is a no-op) to the environment's [`Attribution`]. At startup and on demand, attribution is
//! rebuilt from the raw events with the same code, so a rebuild gives identical numbers.
//!
//! With a shared store (Redis, several instances) ingestion only stores: every instance
//! instead tails the environment's event log and applies each stored event once, whichever
//! instance received it (`collector/tail.rs`), so all instances report the same results.

mod tail;

use std::collections::HashMap;
use std::sync::Mutex;

use tailor_core::ConfigDocument;
use tokio::sync::RwLock;

use crate::attribution::{Attribution, ExperimentTotals, VariantSeries};
use crate::store::{EncodedEvent, Store, StoreError};

/// Attribution for every environment.
#[derive(Default)]
pub struct Collector {
    by_environment: Mutex<HashMap<String, Attribution>>,
    /// Ingestion holds it shared; a rebuild holds it exclusively so no event is applied twice or
    /// missed while the raw events are replayed.
    gate: RwLock<()>,
    /// Shared-store mode: each environment's position in the event log.
    tails: Mutex<HashMap<String, std::sync::Arc<tail::Tail>>>,
}

impl Collector {
    /// Rebuilds one environment from its stored events; returns how many were applied.
    async fn replay(
        store: &dyn Store,
        environment: &str,
        document: &ConfigDocument,
    ) -> Result<Attribution, StoreError> {
        let mut attribution = Attribution::default();
        sync_windows(&mut attribution, document);
        let mut scan = store.scan_events(environment).await?;
        while let Some(chunk) = scan.recv().await {
            for event in chunk? {
                attribution.apply(&event);
            }
        }
        Ok(attribution)
    }

    /// Loads an environment's attribution from the store (at startup or when it is created).
    pub async fn load_environment(
        &self,
        store: &dyn Store,
        environment: &str,
        document: &ConfigDocument,
    ) -> Result<u64, StoreError> {
        if let Some(shared) = store.shared() {
            return self.load_shared(shared, environment, document).await;
        }
        let attribution = Self::replay(store, environment, document).await?;
        let applied = attribution.events_applied();
        self.lock().insert(environment.to_string(), attribution);
        Ok(applied)
    }

    /// Replaces an environment's attribution with one rebuilt from its raw events, pausing
    /// ingestion meanwhile; returns how many events were replayed.
    pub async fn rebuild(
        &self,
        store: &dyn Store,
        environment: &str,
        document: &ConfigDocument,
    ) -> Result<u64, StoreError> {
        let _exclusive = self.gate.write().await;
        self.load_environment(store, environment, document).await
    }

    /// Stores a batch durably and applies the newly stored events (with a shared store: wakes
    /// the tail that applies them). Returns, per event, whether it was new.
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
        let mut map = self.lock();
        let attribution = map.entry(environment.to_string()).or_default();
        for (event, new) in events.iter().zip(&fresh) {
            if *new {
                attribution.apply(&event.event);
            }
        }
        Ok(fresh)
    }

    /// Applies the experiments' attribution windows from a new config revision.
    pub fn config_changed(&self, environment: &str, document: &ConfigDocument) {
        let mut map = self.lock();
        sync_windows(map.entry(environment.to_string()).or_default(), document);
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
        // Attribution updates cannot leave partial state behind a panic that matters more than
        // the lost update; a rebuild restores exact numbers.
        self.by_environment
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

fn sync_windows(attribution: &mut Attribution, document: &ConfigDocument) {
    for e in &document.experiments {
        attribution.set_window(&e.key, e.attribution_window_hours);
    }
}
