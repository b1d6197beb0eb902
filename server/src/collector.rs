//! The event collector's state: each environment's partitions (`collector/partition.rs`),
//! who owns them, and results merged across them.
//!
//! An environment's events are split by user into partitions (`tailor_core::partition`). The
//! instance that owns a partition keeps its attribution in memory, in step with the
//! partition's log in the store, and checkpoints it there; results are the exact merge of every
//! partition's aggregates (`crate::aggregates`), so they do not depend on how partitions are
//! spread over instances.
//!
//! - **Embedded store:** this instance owns every partition. Ingestion stores a batch durably,
//!   then brings the partitions it touched up to date before acknowledging it, so results
//!   include every acknowledged event. At start each partition loads its checkpoint plus the
//!   events after it, in the background; results answer "loading" until all are loaded.
//! - **Shared store (Redis, several instances):** partitions are spread over the live
//!   instances by leases (`collector/ownership.rs`). Ingestion only stores; the owner of each
//!   partition applies the events (woken by the store's notification) and publishes the
//!   partition's aggregates, which every instance merges with its own.

mod ownership;
mod partition;
pub mod vocabulary;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tailor_core::partition::DEFAULT_PARTITIONS;
use tailor_core::traits::{EventRun, OwnedRun};
use tailor_core::ConfigDocument;

use crate::aggregates::{
    ExperimentAggregates, ExperimentTotals, PartitionAggregates, VariantSeries,
};
use crate::attribution::{Attribution, ExperimentTerms};
use crate::store::{EncodedEvent, EventCursor, Store, StoreError};
pub use ownership::assignment;
use partition::{Part, Start};
use vocabulary::Vocabulary;

/// Experiment key → attribution window in hours (`None`: unlimited).
type Windows = Vec<ExperimentTerms>;

/// How the collector runs.
#[derive(Debug, Clone)]
pub struct CollectorSettings {
    /// This instance's name among the instances sharing a store (unique per process).
    pub instance: String,
    /// How often an owned partition with new events writes a checkpoint.
    pub checkpoint_every: Duration,
}

impl Default for CollectorSettings {
    fn default() -> Self {
        CollectorSettings {
            instance: format!("{}-{:08x}", std::process::id(), rand::random::<u32>()),
            checkpoint_every: Duration::from_secs(60),
        }
    }
}

/// What another instance published for a partition this one does not own.
struct Remote {
    cursor: EventCursor,
    aggregates: Arc<PartitionAggregates>,
}

/// One environment's partitions and what its events are checked against.
pub(crate) struct Env {
    key: String,
    partitions: u32,
    parts: Vec<Arc<Part>>,
    /// The latest attribution windows of its experiments.
    windows: Mutex<Windows>,
    /// What its exposures may name (replaced, never changed in place, so ingestion checks a
    /// batch against one snapshot without holding a lock).
    vocabulary: Mutex<Arc<Vocabulary>>,
    /// Shared store: aggregates published by the owners of the partitions not owned here.
    remote: Mutex<Vec<Option<Remote>>>,
    /// The first load of every partition has not finished (embedded store).
    pending: AtomicBool,
    /// Embedded store: the position in the environment's whole log up to which every
    /// partition has applied its rows (held while reading and applying the rows after it).
    log: tokio::sync::Mutex<EventCursor>,
    /// The same position as a number, readable without the lock: a batch whose commit is at or
    /// before it was applied by another batch's read.
    log_applied: std::sync::atomic::AtomicI64,
    /// Embedded store: the environment's background task (log safety net, checkpoints) runs.
    task_started: AtomicBool,
    /// The event names its traits read, sorted.
    trait_names: Mutex<Arc<Vec<String>>>,
}

/// A user's events that traits read, copied out of the collector (settled ones as one run per
/// name and day, `crate::attribution`).
pub type OwnedEvents = Vec<OwnedRun>;

/// A user's events that traits read, as this instance can see them.
#[derive(Debug)]
pub enum UserEvents {
    /// The user's partition is owned and loaded here: their events.
    Local(OwnedEvents),
    /// Another instance owns the user's partition (shared store): read its profile record.
    Remote {
        /// The user's partition.
        partition: u32,
    },
    /// The user's partition is loading here.
    Loading,
}

/// One partition's state as `/readyz` and `/metrics` report it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PartitionStatus {
    /// Partition index.
    pub partition: u32,
    /// Events replayed so far, while loading.
    pub loading: Option<u64>,
    /// Seconds since its events were last all applied.
    pub lag_seconds: Option<f64>,
    /// Seconds since its last checkpoint.
    pub checkpoint_age_seconds: Option<f64>,
}

/// Attribution for every environment.
pub struct Collector {
    environments: Mutex<HashMap<String, Arc<Env>>>,
    settings: CollectorSettings,
    /// Shutting down: take no more partitions.
    stopping: AtomicBool,
}

impl Default for Collector {
    fn default() -> Self {
        Collector::new(CollectorSettings::default())
    }
}

impl Collector {
    /// A collector with these settings.
    pub fn new(settings: CollectorSettings) -> Collector {
        Collector {
            environments: Mutex::default(),
            settings,
            stopping: AtomicBool::new(false),
        }
    }

    /// This instance's name among those sharing the store.
    pub fn instance(&self) -> &str {
        &self.settings.instance
    }

    /// Knows an environment with `partitions` partitions (idempotent: the first count stays).
    pub fn register(&self, environment: &str, partitions: u32) {
        self.env_or_register(environment, partitions);
    }

    fn env_or_register(&self, environment: &str, partitions: u32) -> Arc<Env> {
        let mut map = lock(&self.environments);
        let env = map.entry(environment.to_string()).or_insert_with(|| {
            let partitions = partitions.max(1);
            Arc::new(Env {
                key: environment.to_string(),
                partitions,
                parts: (0..partitions).map(|p| Arc::new(Part::new(p))).collect(),
                windows: Mutex::default(),
                vocabulary: Mutex::default(),
                remote: Mutex::new((0..partitions).map(|_| None).collect()),
                pending: AtomicBool::new(false),
                log: tokio::sync::Mutex::default(),
                log_applied: std::sync::atomic::AtomicI64::new(0),
                task_started: AtomicBool::new(false),
                trait_names: Mutex::default(),
            })
        });
        Arc::clone(env)
    }

    fn env(&self, environment: &str) -> Option<Arc<Env>> {
        lock(&self.environments).get(environment).cloned()
    }

    fn envs(&self) -> Vec<Arc<Env>> {
        lock(&self.environments).values().cloned().collect()
    }

    /// The environment's partition count, if it is known.
    pub fn partitions(&self, environment: &str) -> Option<u32> {
        self.env(environment).map(|e| e.partitions)
    }

    /// Marks an environment's results as loading until [`Collector::own_all`] has loaded every
    /// partition (embedded store). Call it before the environment takes events.
    pub fn start_loading(&self, environment: &str) {
        if let Some(env) = self.env(environment) {
            env.pending.store(true, Ordering::Release);
        }
    }

    /// Events replayed so far while the environment's results are loading (`None`: ready).
    pub fn loading(&self, environment: &str) -> Option<u64> {
        let env = self.env(environment)?;
        let mut loading = env.pending.load(Ordering::Acquire).then_some(0);
        for part in &env.parts {
            if let Some(n) = part.loading() {
                loading = Some(loading.unwrap_or(0) + n);
            }
        }
        loading
    }

    /// Embedded store: owns and loads every partition of the environment, one after the other
    /// (each from its checkpoint plus the events after it), then applies what was stored
    /// meanwhile and keeps them in step from then on. Returns the events applied while loading.
    pub async fn own_all(
        &self,
        store: &Arc<dyn Store>,
        environment: &str,
    ) -> Result<u64, StoreError> {
        let env = self.env_or_register(environment, DEFAULT_PARTITIONS);
        let mut applied = 0;
        for part in &env.parts {
            if part.is_owned() {
                continue;
            }
            applied += part
                .take(
                    store.as_ref(),
                    &env.key,
                    &env.windows,
                    None,
                    Start::Checkpoint,
                )
                .await?;
        }
        if env.task_started.load(Ordering::Acquire) {
            return Ok(applied);
        }
        // The whole log is read from the partition that is furthest behind; each row is
        // applied only by a partition that has not applied it yet. (Again after a failed
        // attempt: the partitions' cursors are the truth.)
        {
            let mut cursor = env.log.lock().await;
            let mut lowest: Option<(i64, EventCursor)> = None;
            for part in &env.parts {
                let at = part.cursor().await;
                let number = partition::log_position(&at);
                if lowest.as_ref().is_none_or(|(l, _)| number < *l) {
                    lowest = Some((number, at));
                }
            }
            let (number, at) = lowest.unwrap_or_default();
            *cursor = at;
            env.log_applied.store(number, Ordering::Release);
        }
        env.pending.store(false, Ordering::Release);
        applied += Self::catch_up_log(store.as_ref(), &env).await? as u64;
        if !env.task_started.swap(true, Ordering::AcqRel) {
            self.spawn_environment_task(&env, store);
        }
        Ok(applied)
    }

    /// Embedded store: applies every row stored after the environment's log cursor to its
    /// partition (one read for all partitions, so concurrent batches share it); returns the
    /// events applied.
    async fn catch_up_log(store: &dyn Store, env: &Env) -> Result<usize, StoreError> {
        Self::catch_up_log_to(store, env, None).await
    }

    /// [`Collector::catch_up_log`], unless the log is applied up to `target` already (then
    /// without reading anything).
    async fn catch_up_log_to(
        store: &dyn Store,
        env: &Env,
        target: Option<&EventCursor>,
    ) -> Result<usize, StoreError> {
        let done = |env: &Env| {
            target.is_some_and(|t| {
                partition::log_position(t) <= env.log_applied.load(Ordering::Acquire)
            })
        };
        if done(env) {
            return Ok(0);
        }
        let mut cursor = env.log.lock().await;
        if done(env) {
            return Ok(0);
        }
        let mut applied = 0;
        loop {
            let Some(page) = store.log_after(&env.key, &cursor, partition::PAGE).await? else {
                return Ok(applied);
            };
            for row in &page.rows {
                if let Some(part) = env.parts.get(row.partition as usize) {
                    if part.apply_logged(row).await {
                        applied += row.events.len();
                    }
                }
            }
            *cursor = page.next;
            env.log_applied
                .store(partition::log_position(&cursor), Ordering::Release);
            if !page.more {
                return Ok(applied);
            }
        }
    }

    /// Embedded store: every second, applies rows no batch applied (a request that ended
    /// between storing and applying) and writes the checkpoints that are due.
    fn spawn_environment_task(&self, env: &Arc<Env>, store: &Arc<dyn Store>) {
        let (env, store) = (Arc::clone(env), Arc::clone(store));
        let every = self.settings.checkpoint_every;
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let mut last_checkpoint = vec![std::time::Instant::now(); env.parts.len()];
            let mut failing = false;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let mut result = Self::catch_up_log(store.as_ref(), &env).await.map(drop);
                for (part, last) in env.parts.iter().zip(last_checkpoint.iter_mut()) {
                    if result.is_err() || last.elapsed() < every {
                        continue;
                    }
                    result = part.checkpoint(store.as_ref(), &env.key).await.map(|written| {
                        if written {
                            *last = std::time::Instant::now();
                        }
                    });
                }
                match result {
                    Ok(()) if failing => {
                        failing = false;
                        tracing::info!(environment = env.key, "attribution in step with the event log again");
                    }
                    Ok(()) => {}
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(environment = env.key, error = %e, "cannot read the event log or write checkpoints; retrying");
                    }
                    Err(_) => {}
                }
            }
        });
    }

    /// Reloads every partition owned here from its raw events (embedded store: from the first
    /// event; shared store, whose logs are trimmed: from the checkpoint, recomputing every
    /// user). Results of a partition answer "loading" while it reloads.
    pub async fn rebuild(&self, store: &dyn Store, environment: &str) -> Result<u64, StoreError> {
        let Some(env) = self.env(environment) else {
            return Ok(0);
        };
        let start = if store.shared().is_some() {
            Start::Checkpoint
        } else {
            Start::Beginning
        };
        let mut applied = 0;
        for part in &env.parts {
            if !part.is_owned() {
                continue;
            }
            applied += part
                .take(store, &env.key, &env.windows, part.lease(), start)
                .await?;
        }
        Ok(applied)
    }

    /// Stores a batch durably. Embedded store: then applies it (and whatever else was committed
    /// since the last read) before returning; shared store: the owners apply it, woken by the
    /// store's notification. Returns, per event, whether it was new.
    pub async fn ingest(
        &self,
        store: &dyn Store,
        environment: &str,
        events: &[EncodedEvent<'_>],
    ) -> Result<Vec<bool>, StoreError> {
        let (fresh, position) = store.append_events_at(environment, events).await?;
        // Shared store: the append's notification wakes each partition's owner, this instance
        // included.
        if store.shared().is_some() {
            return Ok(fresh);
        }
        let Some(env) = self.env(environment) else {
            return Ok(fresh);
        };
        if env.pending.load(Ordering::Acquire) || !fresh.iter().any(|new| *new) {
            // Loading: the load reads them. Nothing new: nothing to apply.
            return Ok(fresh);
        }
        if let Err(e) = Self::catch_up_log_to(store, &env, position.as_ref()).await {
            // Stored durably already: the environment's task applies it on its next round.
            tracing::warn!(environment, error = %e, "cannot apply stored events yet");
        }
        Ok(fresh)
    }

    /// Asks the owner of a partition (if this instance) to catch up now.
    pub fn wake(&self, environment: &str, partition: u32) {
        if let Some(part) = self
            .env(environment)
            .and_then(|env| env.parts.get(partition as usize).cloned())
        {
            part.wake.notify_one();
        }
    }

    /// Asks every partition owned here to catch up now.
    pub fn wake_all(&self) {
        for env in self.envs() {
            for part in &env.parts {
                part.wake.notify_one();
            }
        }
    }

    /// Applies the experiments' attribution windows from a new config revision, and what
    /// exposures may name.
    ///
    /// Called on the write path, so it only records the windows. When one changed, its users
    /// are recomputed by a pass on the blocking pool, 1/1024 of a partition's users at a time
    /// with the lock released in between, so neither the writer's worker nor ingestion waits
    /// for millions of users (a user whose event arrives meanwhile is recomputed under the new
    /// window at once). Until the pass ends, results may count some users under the old window.
    pub fn config_changed(&self, environment: &str, document: &ConfigDocument) {
        let env = self.env_or_register(environment, DEFAULT_PARTITIONS);
        {
            let mut slot = lock(&env.vocabulary);
            let mut vocabulary = Vocabulary::clone(&slot);
            vocabulary.add(document);
            *slot = Arc::new(vocabulary);
        }
        let names: Vec<String> = tailor_core::traits::event_names(&document.traits)
            .into_iter()
            .map(str::to_string)
            .collect();
        {
            let mut current = lock(&env.trait_names);
            if **current != names {
                *current = Arc::new(names);
            }
            for part in &env.parts {
                part.set_trait_names(&current);
            }
        }
        let windows: Windows = ExperimentTerms::of(document);
        // Under the windows lock, so that a partition finishing its load (which reads the
        // windows under it) cannot miss the change.
        let changed: Vec<(Arc<Part>, Vec<String>)> = {
            let mut current = lock(&env.windows);
            *current = windows.clone();
            env.parts
                .iter()
                .map(|part| (Arc::clone(part), part.change_windows(&windows)))
                .filter(|(_, changed)| !changed.is_empty())
                .collect()
        };
        if changed.is_empty() {
            return;
        }
        let environment = environment.to_string();
        let pass = move || recompute_users(&environment, &changed);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(pass)),
            // Outside a runtime (tools, unit tests) nothing else is waiting: recompute here.
            Err(_) => pass(),
        }
    }

    /// The events of `user_key` that the environment's traits read, where this instance keeps
    /// them (see [`UserEvents`]). An environment not known here has no events.
    pub fn user_events(&self, environment: &str, user_key: &str) -> UserEvents {
        let Some(env) = self.env(environment) else {
            return UserEvents::Local(Vec::new());
        };
        let partition = tailor_core::partition::partition(user_key, env.partitions);
        let Some(part) = env.parts.get(partition as usize) else {
            return UserEvents::Local(Vec::new());
        };
        if part.loading().is_some() || env.pending.load(Ordering::Acquire) {
            return UserEvents::Loading;
        }
        let names = Arc::clone(&lock(&env.trait_names));
        let events = part.with_attribution(|a| {
            a.user_events(user_key, &names)
                .into_iter()
                .map(OwnedRun::from)
                .collect()
        });
        match events {
            Some(events) => UserEvents::Local(events),
            None => UserEvents::Remote { partition },
        }
    }

    /// Calls `f` with every user of the partitions owned and loaded here who has an event that
    /// `names` read, and those events (for segment sizes); returns the partitions it covered.
    /// Each partition's users are copied out under its lock, and `f` runs without it, so
    /// ingestion waits only for the copy.
    pub fn for_each_local_user(
        &self,
        environment: &str,
        names: &[String],
        mut f: impl FnMut(&str, &[EventRun<'_>]),
    ) -> Vec<u32> {
        let Some(env) = self.env(environment) else {
            return Vec::new();
        };
        let mut counted = Vec::new();
        for part in &env.parts {
            if part.loading().is_some() {
                continue;
            }
            let users = part.with_attribution(|a| {
                let mut users: Vec<(String, OwnedEvents)> = Vec::new();
                a.for_each_user(names, |key, events| {
                    if !events.is_empty() {
                        let events = events.iter().copied().map(OwnedRun::from).collect();
                        users.push((key.to_string(), events));
                    }
                });
                users
            });
            let Some(users) = users else {
                continue;
            };
            counted.push(part.index);
            for (key, events) in &users {
                let events: Vec<EventRun<'_>> = events.iter().map(OwnedRun::run).collect();
                f(key, &events);
            }
        }
        counted
    }

    /// What the environment's exposures may name (see [`vocabulary`]).
    pub fn vocabulary(&self, environment: &str) -> Arc<Vocabulary> {
        self.env(environment)
            .map(|env| Arc::clone(&lock(&env.vocabulary)))
            .unwrap_or_default()
    }

    /// An experiment's aggregates merged over every partition (owned here: live; others: as
    /// their owners last published them), or `None` if nobody was exposed to it.
    pub fn experiment(&self, environment: &str, experiment: &str) -> Option<ExperimentAggregates> {
        let env = self.env(environment)?;
        let remote = lock(&env.remote);
        let mut merged: Option<ExperimentAggregates> = None;
        for (part, remote) in env.parts.iter().zip(remote.iter()) {
            let local = part.with_attribution(|a| a.experiment_aggregates(experiment));
            let aggregates = match local {
                Some(local) => local,
                None => remote
                    .as_ref()
                    .and_then(|r| r.aggregates.experiments.get(experiment).cloned()),
            };
            if let Some(aggregates) = aggregates {
                merged
                    .get_or_insert_with(Default::default)
                    .merge(&aggregates);
            }
        }
        merged
    }

    /// An experiment's totals, merged over every partition.
    pub fn totals(&self, environment: &str, experiment: &str) -> Option<ExperimentTotals> {
        Some(self.experiment(environment, experiment)?.totals())
    }

    /// An experiment's cumulative users and conversions per variant over time, for `metric`.
    pub fn timeline(
        &self,
        environment: &str,
        experiment: &str,
        metric: &str,
    ) -> Vec<VariantSeries> {
        self.experiment(environment, experiment)
            .map(|a| a.timeline(metric))
            .unwrap_or_default()
    }

    /// The partitions of an environment owned here, with their state.
    pub fn owned_partitions(&self, environment: &str) -> Vec<PartitionStatus> {
        let Some(env) = self.env(environment) else {
            return Vec::new();
        };
        env.parts
            .iter()
            .filter(|p| p.is_owned())
            .map(|p| PartitionStatus {
                partition: p.index,
                loading: p.loading(),
                lag_seconds: p.lag_seconds(),
                checkpoint_age_seconds: p.checkpoint_age_seconds(),
            })
            .collect()
    }

    /// At shutdown: checkpoints every partition owned here and gives it up (shared store:
    /// releases its lease), then leaves the live instances. Failures are logged; returns the
    /// partitions handed over.
    pub async fn hand_over(&self, store: &dyn Store) -> usize {
        self.stopping.store(true, Ordering::Release);
        let mut handed = 0;
        for env in self.envs() {
            for part in &env.parts {
                if !part.is_owned() {
                    continue;
                }
                match part.release(store, &env.key).await {
                    Ok(()) => handed += 1,
                    Err(e) => tracing::warn!(
                        environment = env.key,
                        partition = part.index,
                        error = %e,
                        "cannot hand a partition over at shutdown"
                    ),
                }
            }
        }
        if let Some(shared) = store.shared() {
            if let Err(e) = shared.leave(self.instance()).await {
                tracing::warn!(error = %e, "cannot leave the live instances at shutdown");
            }
        }
        handed
    }

    /// Writes a checkpoint of every partition owned here that has new events.
    #[cfg(test)]
    pub async fn checkpoint_all(&self, store: &dyn Store) -> Result<usize, StoreError> {
        let mut written = 0;
        for env in self.envs() {
            for part in &env.parts {
                if part.checkpoint(store, &env.key).await? {
                    written += 1;
                }
            }
        }
        Ok(written)
    }
}

/// Recomputes the users of each partition for its changed experiments, one part (1/1024 of a
/// partition's users) per lock.
fn recompute_users(environment: &str, changed: &[(Arc<Part>, Vec<String>)]) {
    let started = std::time::Instant::now();
    for (part, experiments) in changed {
        for slice in 0..Attribution::RECOMPUTE_PARTS {
            if part
                .with_attribution(|a| a.recompute_part(slice, experiments))
                .is_none()
            {
                break;
            }
        }
    }
    tracing::info!(
        environment,
        millis = started.elapsed().as_millis() as u64,
        "recomputed users for a changed attribution window"
    );
}

/// Locks one of the collector's mutexes. Attribution updates cannot leave partial state behind
/// a panic that matters more than the lost update; a rebuild restores exact numbers.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tailor_core::events::{Conversion, Event, Exposure};

    use super::*;
    use crate::store::sqlite::SqliteStore;

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
        totals
            .cells
            .iter()
            .map(|c| c.metrics.get("purchase").map_or(0, |m| m.converted))
            .sum()
    }

    /// Ingested events are in the results when the batch is acknowledged (embedded store), over
    /// every partition; a window change returns at once and the background pass recomputes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ingest_applies_at_once_and_a_window_change_is_recomputed_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let collector = Collector::default();
        collector.register("prod", 16);
        collector.config_changed("prod", &document(None));
        collector.own_all(&store, "prod").await.unwrap();
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
        let encoded: Vec<EncodedEvent<'static>> = events
            .into_iter()
            .map(|e| EncodedEvent::new(e).unwrap())
            .collect();
        collector
            .ingest(store.as_ref(), "prod", &encoded)
            .await
            .unwrap();
        assert_eq!(converted(&collector), 1_000);
        assert_eq!(collector.owned_partitions("prod").len(), 16);
        collector.config_changed("prod", &document(Some(1)));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while converted(&collector) != 500 {
            assert!(std::time::Instant::now() < deadline, "the pass never ended");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Checkpoints, then a fresh collector loads them to the same totals.
        assert_eq!(collector.checkpoint_all(store.as_ref()).await.unwrap(), 16);
        let reloaded = Collector::default();
        reloaded.register("prod", 16);
        reloaded.config_changed("prod", &document(Some(1)));
        assert_eq!(reloaded.own_all(&store, "prod").await.unwrap(), 0);
        assert_eq!(
            reloaded.totals("prod", "exp"),
            collector.totals("prod", "exp")
        );
    }
}
