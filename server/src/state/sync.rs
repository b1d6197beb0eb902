//! Keeping this instance in step with the other instances that share its store.
//!
//! [`start_sync`] (a no-op for the embedded store) starts two kinds of background task, and
//! returns once this instance has caught up with the store after subscribing (or after
//! [`FIRST_SYNC`], if the store does not answer), so an instance never starts serving without
//! what other instances created while it was loading:
//! - `run_changes` reads the store's [`ChangeFeed`]. A new revision of an environment is read
//!   from the store, compiled and published here, so SDKs streaming from this instance get a
//!   change made through any other within milliseconds. Key changes reload the keys (merged:
//!   a key served here is never dropped, see [`AppState::reload_keys`]). A
//!   [`StoreChange::Resync`] (first subscription, or after a lost connection) re-reads every
//!   environment and keeps whatever is newer: catch-up by revision.
//! - the notifications of new events wake the owner of the partition they were stored in (if
//!   this instance owns it; partitions and their owners: `crate::collector`).
//!
//! Publishing is idempotent by revision: a revision is published only when it is newer than
//! the one served, under the environment's write lock, so the notification of this instance's
//! own write (published already) or a duplicate never reaches SSE clients twice, and a slow
//! read can never publish an older revision over a newer one.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tailor_core::{compile, ConfigDocument};

use super::{AppState, Environment};
use crate::publish::Published;
use crate::store::{ChangeFeed, StoreChange, StoreError, StoredEnvironment};

/// Wait before retrying a failed catch-up.
const RETRY: Duration = Duration::from_secs(1);
/// Longest wait at start for the first catch-up; past it the instance serves and catches up in
/// the background.
pub const FIRST_SYNC: Duration = Duration::from_secs(10);

/// Starts following the other instances' changes, if the store is shared, and waits (at most
/// [`FIRST_SYNC`]) until the first re-read after subscribing is done. Instances starting
/// together would otherwise miss what another created between their load and their
/// subscription (an environment, say) until the next change.
pub async fn start_sync(state: Arc<AppState>) {
    let Some(shared) = state.store.shared() else {
        return;
    };
    let feed = shared.changes();
    let (caught_up, first) = tokio::sync::oneshot::channel();
    tokio::spawn(run_changes(state, feed, Some(caught_up)));
    if tokio::time::timeout(FIRST_SYNC, first).await.is_err() {
        tracing::warn!(
            "not caught up with the shared store after {FIRST_SYNC:?}; serving, and catching up in the background"
        );
    }
}

async fn run_changes(
    state: Arc<AppState>,
    mut feed: ChangeFeed,
    mut caught_up: Option<tokio::sync::oneshot::Sender<()>>,
) {
    // Set when applying a change failed (the store failing right after a reconnect, say):
    // everything is re-read once it answers again.
    let mut behind = false;
    loop {
        let change = if behind {
            tokio::select! {
                change = feed.recv() => change,
                _ = tokio::time::sleep(RETRY) => Some(StoreChange::Resync),
            }
        } else {
            feed.recv().await
        };
        let Some(change) = change else {
            return;
        };
        let result = match change {
            StoreChange::Environment {
                environment,
                revision,
            } => {
                if state.is_news(&environment, revision) {
                    state.refresh_environment(&environment).await
                } else {
                    Ok(())
                }
            }
            StoreChange::Keys => state.reload_keys().await,
            StoreChange::Events {
                environment,
                partition,
            } => {
                state.collector.wake(&environment, partition);
                Ok(())
            }
            StoreChange::Resync => {
                let result = resync(&state).await;
                if result.is_ok() {
                    if let Some(caught_up) = caught_up.take() {
                        // The receiver may have stopped waiting: nothing to tell.
                        let _ = caught_up.send(());
                    }
                }
                result
            }
        };
        match result {
            Ok(()) if behind => {
                behind = false;
                tracing::info!("caught up with the shared store");
            }
            Ok(()) => {}
            Err(e) => {
                if !behind {
                    tracing::warn!(error = %e, "cannot apply changes from the shared store; retrying");
                }
                behind = true;
            }
        }
    }
}

/// Re-reads every environment and the keys, adopting whatever is newer.
async fn resync(state: &Arc<AppState>) -> Result<(), StoreError> {
    let stored = state.store.environments().await?;
    let listed: BTreeSet<String> = stored.iter().map(|e| e.key.clone()).collect();
    for env in stored {
        state.adopt(env).await?;
    }
    for key in state.environment_keys() {
        if !listed.contains(&key) {
            state.restore_environment(&key).await?;
        }
    }
    state.reload_keys().await?;
    state.collector.wake_all();
    Ok(())
}

/// A stored document compiled and ready to serve; `None` (logged) if it cannot be: the
/// revision served now stays.
fn prepare_stored(key: &str, document: ConfigDocument) -> Option<Published> {
    let snapshot = match compile(document) {
        Ok(snapshot) => snapshot,
        Err(e) => {
            tracing::error!(environment = key, error = %e, "ignoring a stored config that does not compile");
            return None;
        }
    };
    match Published::new(snapshot) {
        Ok(published) => Some(published),
        Err(e) => {
            let error = crate::error::chain(&e);
            tracing::error!(environment = key, %error, "ignoring a stored config that cannot be served");
            None
        }
    }
}

impl AppState {
    /// An environment served here is missing from the shared store: Redis lost its data (no
    /// append-only file). Stores the config served here again (if no other instance did
    /// first), so SDKs keep their config and admins can write again; the audit log and the
    /// events are gone.
    async fn restore_environment(&self, key: &str) -> Result<(), StoreError> {
        let Ok(env) = self.environment(key) else {
            return Ok(());
        };
        let current = env.current();
        match self
            .store
            .create_environment(
                key,
                current.snapshot.document(),
                self.collector
                    .partitions(key)
                    .unwrap_or(self.default_partitions),
            )
            .await
        {
            Ok(()) => {
                tracing::error!(
                    environment = key,
                    revision = current.revision,
                    "the environment was missing from the shared store (was Redis data lost? see \
                     README: durability); stored the config served here again"
                );
                Ok(())
            }
            Err(StoreError::AlreadyExists(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Whether `revision` of `environment` is newer than what this instance serves.
    fn is_news(&self, environment: &str, revision: u64) -> bool {
        self.environments
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(environment)
            .is_none_or(|env| revision > env.current().revision)
    }

    /// Reads one environment from the store and adopts it (publishes it if newer, adds it if
    /// it is new here).
    pub async fn refresh_environment(&self, key: &str) -> Result<(), StoreError> {
        match self.store.environment(key).await? {
            Some(stored) => self.adopt(stored).await,
            None => Ok(()),
        }
    }

    /// Serves a stored document: publishes it when it is newer than the revision served here,
    /// or adds the environment (with its attribution) when it is new here.
    async fn adopt(&self, stored: StoredEnvironment) -> Result<(), StoreError> {
        let existing = self
            .environments
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&stored.key)
            .cloned();
        if let Some(env) = existing {
            let _guard = env.write_lock.lock().await;
            self.publish_stored(&env, stored.document);
            return Ok(());
        }
        let key = stored.key;
        let Some(published) = prepare_stored(&key, stored.document.clone()) else {
            return Ok(());
        };
        // Its partitions are taken by the ownership loop at its next round.
        self.collector.register(&key, stored.partitions);
        self.collector
            .config_changed(&key, published.snapshot.document());
        let revision = published.revision;
        match self.insert_environment(Environment::new(key.clone(), published)) {
            Some(raced) => {
                // Created here meanwhile: keep that one (it has subscribers), newest revision.
                let _guard = raced.write_lock.lock().await;
                self.publish_stored(&raced, stored.document);
            }
            None => {
                self.metrics.set_revision(&key, revision);
                tracing::info!(
                    environment = key,
                    revision,
                    partitions = stored.partitions,
                    "environment created through another instance"
                );
            }
        }
        Ok(())
    }

    /// With `env`'s write lock held: reads its stored document and publishes it if newer.
    pub(super) async fn adopt_latest(&self, env: &Environment) {
        match self.store.environment(&env.key).await {
            Ok(Some(stored)) => {
                self.publish_stored(env, stored.document);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(environment = env.key, error = %e, "cannot re-read after a conflict")
            }
        }
    }

    /// With `env`'s write lock held: publishes `document` if it is newer than the current
    /// revision. Returns whether it did.
    fn publish_stored(&self, env: &Environment, document: ConfigDocument) -> bool {
        let current = env.current().revision;
        if document.revision <= current {
            if document.revision < current {
                tracing::warn!(
                    environment = env.key,
                    stored = document.revision,
                    served = current,
                    "the shared store holds an older revision than this instance serves (was Redis \
                     data lost? see README: durability); keeping the newer one"
                );
            }
            return false;
        }
        let Some(published) = prepare_stored(&env.key, document) else {
            return false;
        };
        let revision = published.revision;
        self.metrics.set_revision(&env.key, revision);
        self.collector
            .config_changed(&env.key, published.snapshot.document());
        env.publish(published);
        tracing::info!(
            environment = env.key,
            revision,
            "config changed through another instance"
        );
        true
    }
}
