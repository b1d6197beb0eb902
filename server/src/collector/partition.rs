//! One partition of an environment's events as this instance holds it: its attribution, its
//! position in the partition's log, its checkpoints and (with a shared store) its lease and
//! published aggregates.
//!
//! The log is the source of truth. An owned partition's state is always "every event up to
//! `cursor`, applied once": a load starts from the latest checkpoint (or the log's start) and
//! applies what follows; a catch-up applies whatever was stored after the cursor. The async
//! `tail` mutex is held for a whole load, catch-up, checkpoint or hand-over, so none of them
//! interleave and no event is applied twice or skipped. The attribution itself sits in a plain
//! mutex held only for moments (applying a page, exporting aggregates, encoding a checkpoint),
//! so results never wait for the store.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{Mutex as AsyncMutex, Notify};

use super::{lock, Windows};
use crate::attribution::Attribution;
use crate::store::unix_now_ms as now_ms;
use crate::store::{
    Checkpoint, EventCursor, Lease, LogRow, PublishedAggregates, SharedStore, Store, StoreError,
};

/// Events read per round trip.
pub(super) const PAGE: usize = 5_000;
/// How often an owner publishes its partition's aggregates even when nothing changed.
const REPUBLISH: std::time::Duration = std::time::Duration::from_secs(5);

/// How a partition is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Start {
    /// From the latest checkpoint, then the events after it.
    Checkpoint,
    /// From the first stored event, ignoring any checkpoint (a rebuild on the embedded store,
    /// which keeps every event).
    Beginning,
}

/// The tail's position and bookkeeping, under the async `tail` mutex.
#[derive(Default)]
struct TailState {
    /// After the last applied event.
    cursor: EventCursor,
    /// The cursor of the last checkpoint written or loaded.
    checkpointed: EventCursor,
    /// The cursor of the last aggregates published.
    published: Option<EventCursor>,
}

/// One partition.
pub(crate) struct Part {
    pub(super) index: u32,
    tail: AsyncMutex<TailState>,
    /// The attribution while this instance owns the partition and has loaded it.
    attribution: Mutex<Option<Attribution>>,
    /// The lease (shared store) while owned; the embedded store owns every partition without one.
    lease: Mutex<Option<Lease>>,
    /// Owned by this instance (loading or loaded).
    owned: AtomicBool,
    /// Events replayed so far while loading (`loading` true).
    loading: AtomicBool,
    replayed: AtomicU64,
    /// Bumped whenever ownership is given up or lost, so a load that finishes afterwards knows
    /// its result is stale.
    generation: AtomicU64,
    pub(super) wake: Notify,
    /// When the last checkpoint was written or loaded (Unix ms; 0: never).
    checkpoint_at: AtomicI64,
    /// When a catch-up last reached the end of the log (Unix ms; 0: never).
    caught_up_at: AtomicI64,
    /// A load or hand-over started by the ownership loop is in flight.
    pub(super) busy: AtomicBool,
    /// Shared store: the profile records still to write (`crate::profiles`).
    profiles: Mutex<ProfileWork>,
}

/// Which users' profile records (shared store) must be written, and for which trait event names.
#[derive(Default)]
struct ProfileWork {
    /// The event names traits read, sorted (none: nothing to write).
    names: Arc<Vec<String>>,
    /// Users whose events traits read changed since their records were written.
    users: rustc_hash::FxHashSet<String>,
    /// Every user's record must be written again (the names changed, or a new owner found the
    /// records written for other names).
    all: bool,
}

impl Part {
    pub(super) fn new(index: u32) -> Part {
        Part {
            index,
            tail: AsyncMutex::new(TailState::default()),
            attribution: Mutex::new(None),
            lease: Mutex::new(None),
            owned: AtomicBool::new(false),
            loading: AtomicBool::new(false),
            replayed: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            wake: Notify::new(),
            checkpoint_at: AtomicI64::new(0),
            caught_up_at: AtomicI64::new(0),
            busy: AtomicBool::new(false),
            profiles: Mutex::default(),
        }
    }

    /// Sets the event names traits read; when they changed, every user's profile record is
    /// written again (shared store).
    pub(super) fn set_trait_names(&self, names: &Arc<Vec<String>>) {
        let mut work = lock(&self.profiles);
        if *work.names != **names {
            work.names = Arc::clone(names);
            // A partition not owned here is checked when it is taken (`take`).
            work.all = !names.is_empty() && self.is_owned();
            work.users.clear();
            self.wake.notify_one();
        }
    }

    /// Notes the users of `events` whose profile records must be written (shared store).
    fn note_profile_users(&self, store: &dyn Store, events: &[tailor_core::events::Event]) {
        if store.shared().is_none() {
            return;
        }
        let mut work = lock(&self.profiles);
        if work.names.is_empty() || work.all {
            return;
        }
        let ProfileWork { names, users, .. } = &mut *work;
        for event in events {
            if let tailor_core::events::Event::Conversion(c) = event {
                if names.binary_search(&c.event).is_ok() && !users.contains(&c.user_key) {
                    users.insert(c.user_key.clone());
                }
            }
        }
    }

    /// Writes the profile records that are due (shared store, owner only): the changed users'
    /// or, after the names changed, every user's. On failure the work stays due.
    pub(super) async fn write_profiles(
        &self,
        shared: &dyn SharedStore,
        environment: &str,
    ) -> Result<(), StoreError> {
        if !self.is_owned() || self.loading().is_some() {
            return Ok(());
        }
        let Some(lease) = self.lease() else {
            return Ok(());
        };
        let (names, users, all) = {
            let mut work = lock(&self.profiles);
            if !work.all && work.users.is_empty() {
                return Ok(());
            }
            let users = std::mem::take(&mut work.users);
            let all = std::mem::replace(&mut work.all, false);
            (Arc::clone(&work.names), users, all)
        };
        let keys: Vec<String> = if all {
            let mut keys = Vec::new();
            self.with_attribution(|a| {
                a.for_each_user(&names, |key, events| {
                    if !events.is_empty() {
                        keys.push(key.to_string());
                    }
                })
            });
            keys
        } else {
            users.iter().cloned().collect()
        };
        let mark = crate::profiles::names_mark(&names);
        let mut result = Ok(());
        let chunks: Vec<&[String]> = keys.chunks(500).collect();
        let last = chunks.len().saturating_sub(1);
        for (i, chunk) in chunks.iter().enumerate() {
            let encoded: Result<Vec<(String, Vec<u8>)>, postcard::Error> = self
                .with_attribution(|a| {
                    chunk
                        .iter()
                        .map(|key| {
                            crate::profiles::encode_record(&a.user_events(key, &names))
                                .map(|record| (key.clone(), record))
                        })
                        .collect()
                })
                .unwrap_or(Ok(Vec::new()));
            let records = match encoded {
                Ok(records) => records,
                Err(e) => {
                    result = Err(StoreError::Backend {
                        message: "encoding profile records".into(),
                        source: Box::new(e),
                    });
                    break;
                }
            };
            let complete = (all && i == last).then_some(mark.as_str());
            result = shared
                .put_profile_records(environment, self.index, &lease, &records, complete)
                .await;
            if result.is_err() {
                break;
            }
        }
        if all && keys.is_empty() && result.is_ok() {
            result = shared
                .put_profile_records(environment, self.index, &lease, &[], Some(&mark))
                .await;
        }
        if let Err(e) = result {
            if matches!(e, StoreError::Fenced { .. }) {
                self.drop_state();
            } else {
                let mut work = lock(&self.profiles);
                work.all |= all;
                work.users.extend(users);
            }
            return Err(e);
        }
        Ok(())
    }

    /// Owned by this instance (loading or loaded).
    pub(crate) fn is_owned(&self) -> bool {
        self.owned.load(Ordering::Acquire)
    }

    /// Events replayed so far while loading; `None` when not loading.
    pub(crate) fn loading(&self) -> Option<u64> {
        self.loading
            .load(Ordering::Acquire)
            .then(|| self.replayed.load(Ordering::Relaxed))
    }

    /// The lease held, if any.
    pub(crate) fn lease(&self) -> Option<Lease> {
        lock(&self.lease).clone()
    }

    /// Seconds since the last checkpoint (`None`: none yet).
    pub(crate) fn checkpoint_age_seconds(&self) -> Option<f64> {
        let at = self.checkpoint_at.load(Ordering::Relaxed);
        (at > 0).then(|| (now_ms() - at).max(0) as f64 / 1000.0)
    }

    /// Seconds since a catch-up last found nothing more to read (`None`: not yet).
    pub(crate) fn lag_seconds(&self) -> Option<f64> {
        let at = self.caught_up_at.load(Ordering::Relaxed);
        (at > 0).then(|| (now_ms() - at).max(0) as f64 / 1000.0)
    }

    /// Runs `f` on the loaded attribution (`None` if not owned or still loading).
    pub(super) fn with_attribution<T>(&self, f: impl FnOnce(&mut Attribution) -> T) -> Option<T> {
        lock(&self.attribution).as_mut().map(f)
    }

    /// Takes ownership (with `lease` on a shared store) and loads the partition: the latest
    /// checkpoint plus the events after it (or every event, for [`Start::Beginning`]). Until it
    /// is done, [`Part::loading`] counts the events replayed. Returns the events applied.
    pub(super) async fn take(
        &self,
        store: &dyn Store,
        environment: &str,
        windows: &Mutex<Windows>,
        lease: Option<Lease>,
        start: Start,
    ) -> Result<u64, StoreError> {
        let generation = self.generation.load(Ordering::Acquire);
        *lock(&self.lease) = lease;
        self.owned.store(true, Ordering::Release);
        let mut tail = self.tail.lock().await;
        self.replayed.store(0, Ordering::Relaxed);
        self.loading.store(true, Ordering::Release);
        // Nothing reads a loading partition's state (results, profiles and segment sizes wait
        // for the load), so a rebuild drops the old state first instead of holding two.
        drop(lock(&self.attribution).take());
        let result = self
            .load(store, environment, windows, start, &mut tail)
            .await;
        self.loading.store(false, Ordering::Release);
        let (attribution, applied) = match result {
            Ok(loaded) => loaded,
            Err(e) => {
                self.owned.store(false, Ordering::Release);
                return Err(e);
            }
        };
        if self.generation.load(Ordering::Acquire) != generation {
            // Given up or lost while loading: the state is not ours to keep.
            return Ok(0);
        }
        {
            // The windows lock first, then the attribution's: the order `config_changed` takes
            // them in, so a change cannot slip between reading the windows and placing the
            // attribution (it would find no attribution to change).
            let current = lock(windows);
            let mut slot = lock(&self.attribution);
            // Windows changed during the load: recompute under the current ones.
            let mut attribution = attribution;
            attribution.set_terms(&current);
            *slot = Some(attribution);
        }
        tail.published = None;
        self.caught_up_at.store(now_ms(), Ordering::Relaxed);
        if let Some(shared) = store.shared() {
            // Records written for other trait event names (or never): write every user's.
            let names = Arc::clone(&lock(&self.profiles).names);
            if !names.is_empty() {
                let stored = shared.profile_names(environment, self.index).await?;
                if stored.as_deref() != Some(crate::profiles::names_mark(&names).as_str()) {
                    lock(&self.profiles).all = true;
                }
            }
        }
        Ok(applied)
    }

    async fn load(
        &self,
        store: &dyn Store,
        environment: &str,
        windows: &Mutex<Windows>,
        start: Start,
        tail: &mut TailState,
    ) -> Result<(Attribution, u64), StoreError> {
        let current = lock(windows).clone();
        let checkpoint = match start {
            Start::Checkpoint => store.checkpoint(environment, self.index).await?,
            Start::Beginning => None,
        };
        let (mut attribution, mut cursor) = match checkpoint {
            Some(checkpoint) => {
                let attribution = Attribution::from_checkpoint(&checkpoint.state, &current)
                    .map_err(|e| StoreError::Backend {
                        message: format!(
                            "loading the checkpoint of partition {} of `{environment}`",
                            self.index
                        ),
                        source: Box::new(e),
                    })?;
                self.checkpoint_at
                    .store(checkpoint.written_at, Ordering::Relaxed);
                (attribution, checkpoint.cursor)
            }
            None => {
                let mut attribution = Attribution::default();
                attribution.set_terms(&current);
                (attribution, EventCursor::default())
            }
        };
        tail.checkpointed = cursor.clone();
        let before = attribution.events_applied();
        loop {
            let page = store
                .events_after(environment, self.index, &cursor, PAGE)
                .await?;
            for event in &page.events {
                attribution.apply(event);
            }
            self.note_profile_users(store, &page.events);
            self.replayed
                .fetch_add(page.events.len() as u64, Ordering::Relaxed);
            cursor = page.next;
            if !page.more {
                break;
            }
        }
        tail.cursor = cursor;
        let applied = attribution.events_applied() - before;
        Ok((attribution, applied))
    }

    /// Applies every event stored after the cursor; returns how many (0 when not owned or
    /// still loading: the load reads them).
    pub(super) async fn catch_up(
        &self,
        store: &dyn Store,
        environment: &str,
    ) -> Result<usize, StoreError> {
        if !self.is_owned() || self.loading().is_some() {
            return Ok(0);
        }
        let mut tail = self.tail.lock().await;
        let mut applied = 0;
        loop {
            let page = store
                .events_after(environment, self.index, &tail.cursor, PAGE)
                .await?;
            if !page.events.is_empty() {
                let mut slot = lock(&self.attribution);
                let Some(attribution) = slot.as_mut() else {
                    // Given up meanwhile.
                    return Ok(applied);
                };
                for event in &page.events {
                    attribution.apply(event);
                }
                drop(slot);
                self.note_profile_users(store, &page.events);
            }
            applied += page.events.len();
            tail.cursor = page.next;
            if !page.more {
                self.caught_up_at.store(now_ms(), Ordering::Relaxed);
                return Ok(applied);
            }
        }
    }

    /// Applies one row of the environment's whole log (embedded store) unless it is at or
    /// before this partition's cursor (applied already, by the load or an earlier read);
    /// returns whether it did. Waits while the partition loads.
    pub(super) async fn apply_logged(&self, row: &LogRow) -> bool {
        if !self.is_owned() {
            return false;
        }
        let mut tail = self.tail.lock().await;
        if log_position(&row.position) <= log_position(&tail.cursor) {
            return false;
        }
        {
            let mut slot = lock(&self.attribution);
            let Some(attribution) = slot.as_mut() else {
                return false;
            };
            for event in &row.events {
                attribution.apply(event);
            }
        }
        tail.cursor = row.position.clone();
        true
    }

    /// The partition's cursor (after the last applied event).
    pub(super) async fn cursor(&self) -> EventCursor {
        self.tail.lock().await.cursor.clone()
    }

    /// Writes a checkpoint if events were applied since the last one. A lost lease
    /// ([`StoreError::Fenced`]) gives the partition up.
    pub(super) async fn checkpoint(
        &self,
        store: &dyn Store,
        environment: &str,
    ) -> Result<bool, StoreError> {
        if !self.is_owned() || self.loading().is_some() {
            return Ok(false);
        }
        let mut tail = self.tail.lock().await;
        self.checkpoint_locked(store, environment, &mut tail).await
    }

    async fn checkpoint_locked(
        &self,
        store: &dyn Store,
        environment: &str,
        tail: &mut TailState,
    ) -> Result<bool, StoreError> {
        if tail.cursor == tail.checkpointed {
            return Ok(false);
        }
        let started = Instant::now();
        let state = {
            let slot = lock(&self.attribution);
            let Some(attribution) = slot.as_ref() else {
                return Ok(false);
            };
            attribution.checkpoint().map_err(|e| StoreError::Backend {
                message: format!(
                    "encoding the checkpoint of partition {} of `{environment}`",
                    self.index
                ),
                source: Box::new(e),
            })?
        };
        let checkpoint = Checkpoint {
            cursor: tail.cursor.clone(),
            state,
            written_at: now_ms(),
        };
        let lease = self.lease();
        match store
            .put_checkpoint(environment, self.index, &checkpoint, lease.as_ref())
            .await
        {
            Ok(()) => {}
            Err(e @ StoreError::Fenced { .. }) => {
                self.drop_state();
                return Err(e);
            }
            Err(e) => return Err(e),
        }
        tracing::debug!(
            environment,
            partition = self.index,
            bytes = checkpoint.state.len(),
            millis = started.elapsed().as_millis() as u64,
            "checkpoint written"
        );
        tail.checkpointed = checkpoint.cursor;
        self.checkpoint_at
            .store(checkpoint.written_at, Ordering::Relaxed);
        Ok(true)
    }

    /// Publishes the partition's aggregates if they changed since the last time, or `again`
    /// even if not (shared store).
    pub(super) async fn publish(
        &self,
        shared: &dyn SharedStore,
        environment: &str,
        again: bool,
    ) -> Result<bool, StoreError> {
        if !self.is_owned() || self.loading().is_some() {
            return Ok(false);
        }
        let Some(lease) = self.lease() else {
            return Ok(false);
        };
        let mut tail = self.tail.lock().await;
        if tail.published.as_ref() == Some(&tail.cursor) && !again {
            return Ok(false);
        }
        let Some(aggregates) = self.with_attribution(|a| a.aggregates()) else {
            return Ok(false);
        };
        let json = serde_json::to_string(&aggregates).map_err(|e| StoreError::Backend {
            message: "encoding aggregates".into(),
            source: Box::new(e),
        })?;
        let published = PublishedAggregates {
            json,
            cursor: tail.cursor.clone(),
        };
        match shared
            .publish_aggregates(environment, self.index, &lease, &published)
            .await
        {
            Ok(()) => {
                tail.published = Some(published.cursor);
                Ok(true)
            }
            Err(e @ StoreError::Fenced { .. }) => {
                self.drop_state();
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Hands the partition over: a last checkpoint (and, shared, its aggregates), then the
    /// lease is released and the state dropped.
    pub(super) async fn release(
        &self,
        store: &dyn Store,
        environment: &str,
    ) -> Result<(), StoreError> {
        let mut tail = self.tail.lock().await;
        if self.loading().is_none() {
            self.checkpoint_locked(store, environment, &mut tail)
                .await?;
        }
        let lease = self.lease();
        self.drop_state();
        *tail = TailState::default();
        drop(tail);
        if let (Some(shared), Some(lease)) = (store.shared(), lease) {
            shared
                .release_lease(environment, self.index, &lease)
                .await?;
        }
        Ok(())
    }

    /// Forgets the partition at once, writing nothing (its lease was lost).
    pub(super) fn drop_state(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.owned.store(false, Ordering::Release);
        *lock(&self.lease) = None;
        *lock(&self.attribution) = None;
        let mut work = lock(&self.profiles);
        work.users.clear();
        work.all = false;
    }

    /// Applies a window change to the loaded attribution; true if users must be recomputed.
    pub(super) fn change_windows(&self, windows: &Windows) -> Vec<String> {
        self.with_attribution(|a| {
            for t in windows {
                a.set_lookback(&t.experiment, t.lookback_days);
                a.set_ratio_pairs(&t.experiment, &t.ratio_pairs);
            }
            windows
                .iter()
                .filter(|t| {
                    // Both, not short-circuited: either change needs the users recomputed.
                    let window = a.change_window(&t.experiment, t.window_hours);
                    let period = a.change_period(&t.experiment, t.period_ms);
                    window || period
                })
                .map(|t| t.experiment.clone())
                .collect()
        })
        .unwrap_or_default()
    }
}

/// A position in the embedded store's log as a number (the row `seq`; the start is 0), to
/// order rows of the whole log against partitions' cursors.
pub(super) fn log_position(cursor: &EventCursor) -> i64 {
    cursor.0.parse().unwrap_or(0)
}

/// Keeps an owned partition in step with its log until it is given up: catches up when woken
/// (or every `poll`), publishes its aggregates when they changed (shared store; at most once per
/// `poll`) and checkpoints every `checkpoint_every`. Failures are logged once per outage and
/// retried.
pub(super) async fn run(
    part: Arc<Part>,
    store: Arc<dyn Store>,
    environment: String,
    poll: std::time::Duration,
    checkpoint_every: std::time::Duration,
) {
    let mut failing = false;
    let mut last_checkpoint = Instant::now();
    let mut last_publish: Option<Instant> = None;
    while part.is_owned() {
        let mut result = part.catch_up(store.as_ref(), &environment).await.map(drop);
        if let (Ok(()), Some(shared)) = (&result, store.shared()) {
            result = part.write_profiles(shared, &environment).await;
        }
        // At most once per `poll`: a busy partition is woken by every batch. And again every
        // `REPUBLISH` even without news: Redis may have lost the last copy (a crash within
        // `appendfsync everysec`'s second), and other instances would serve an older one.
        let publish_due = last_publish.is_none_or(|at| at.elapsed() >= poll);
        let again = last_publish.is_none_or(|at| at.elapsed() >= REPUBLISH);
        if result.is_ok() && publish_due {
            if let Some(shared) = store.shared() {
                result = part
                    .publish(shared, &environment, again)
                    .await
                    .map(|published| {
                        if published {
                            last_publish = Some(Instant::now());
                        }
                    });
            }
        }
        if result.is_ok() && last_checkpoint.elapsed() >= checkpoint_every {
            result = part
                .checkpoint(store.as_ref(), &environment)
                .await
                .map(drop);
            last_checkpoint = Instant::now();
        }
        match result {
            Ok(()) if failing => {
                failing = false;
                tracing::info!(
                    environment,
                    partition = part.index,
                    "partition in step with the store again"
                );
            }
            Ok(()) => {}
            Err(StoreError::Fenced { .. }) => {
                tracing::warn!(
                    environment,
                    partition = part.index,
                    "partition lease lost (another instance owns it now); dropped its state"
                );
                return;
            }
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(
                    environment,
                    partition = part.index,
                    error = %e,
                    "cannot keep the partition in step with the store; results lag until it is back"
                );
            }
            Err(_) => {}
        }
        // Woken by new events; every `poll` anyway (missed notifications, a publish that was
        // not due yet, the checkpoint timer).
        tokio::select! {
            _ = part.wake.notified() => {}
            _ = tokio::time::sleep(poll) => {}
        }
    }
}
