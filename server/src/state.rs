//! Shared server state: environments' published revisions, keys, and the single write path.
//!
//! Every admin change goes through [`AppState::write`]: take the environment's write lock, apply
//! the change to a copy of the document, compile it with tailor-core (rejecting invalid configs
//! with every problem named), commit it to the store with compare-and-swap on the revision, then
//! publish the new revision to readers and SSE subscribers. Readers never lock: they load the
//! current [`Published`] from an `ArcSwap`.
//!
//! With a store shared by several instances, `state/sync.rs` keeps this instance's published
//! revisions, keys and attribution in step with changes made through the others.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use arc_swap::ArcSwap;
use serde_json::Value;
use tailor_core::{compile, ConfigDocument};
use tokio::sync::{broadcast, Mutex};

use crate::client_address::ProxyRange;
use crate::collector::{Collector, CollectorSettings};
use crate::dashboard::session::Sessions;
use crate::dashboard::throttle::SignInThrottle;
use crate::error::{ApiError, InternalError};
use crate::keys::{self, Actor};
use crate::metrics::Metrics;
use crate::publish::{PublishError, Published};
use crate::rate_limit::EventRateLimits;
use crate::store::{ApiKey, AuditEntry, KeyKind, Store, StoreError};

mod sync;
pub use sync::start_sync;

/// How many revisions an SSE subscriber may fall behind before it skips to the newest. Each
/// event is a whole config, so skipping intermediate ones loses nothing and bounds memory.
const UPDATE_BUFFER: usize = 16;

/// One environment at runtime.
pub struct Environment {
    /// Environment key.
    pub key: String,
    current: ArcSwap<Published>,
    write_lock: Mutex<()>,
    updates: broadcast::Sender<Arc<Published>>,
}

impl Environment {
    fn new(key: String, published: Published) -> Self {
        let (updates, _) = broadcast::channel(UPDATE_BUFFER);
        Environment {
            key,
            current: ArcSwap::from_pointee(published),
            write_lock: Mutex::new(()),
            updates,
        }
    }

    /// The current revision, ready to serve.
    pub fn current(&self) -> Arc<Published> {
        self.current.load_full()
    }

    /// Subscribes to new revisions.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.updates.subscribe()
    }

    fn publish(&self, published: Published) -> Arc<Published> {
        let published = Arc::new(published);
        self.current.store(Arc::clone(&published));
        // No subscribers is fine.
        let _ = self.updates.send(Arc::clone(&published));
        published
    }
}

/// A change to record in the audit log.
#[derive(Debug, Clone)]
pub struct Change {
    /// `create`, `update`, `delete`, `rollout`, `toggle`, `import`.
    pub action: &'static str,
    /// Resource kind.
    pub kind: &'static str,
    /// Resource key.
    pub key: String,
    /// Before.
    pub before: Option<Value>,
    /// After.
    pub after: Option<Value>,
}

/// State shared by all workers.
pub struct AppState {
    /// The storage backend.
    pub store: Arc<dyn Store>,
    environments: RwLock<BTreeMap<String, Arc<Environment>>>,
    keys: RwLock<HashMap<String, ApiKey>>,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Event attribution per environment, by partition.
    pub collector: Arc<Collector>,
    /// Partitions of an environment created without saying how many (`--partitions`).
    pub default_partitions: u32,
    /// Dashboard sign-ins.
    pub sessions: Sessions,
    /// Failed admin authentications (dashboard sign-ins and admin API calls) per address.
    pub auth_throttle: SignInThrottle,
    /// Reverse proxies whose `X-Forwarded-For` names the client (`--trusted-proxies`).
    pub trusted_proxies: Vec<ProxyRange>,
    /// Events per second per key.
    pub event_limits: EventRateLimits,
    ready: AtomicBool,
}

/// Brings the collector's partitions up (in the background; results answer "loading" until
/// then). Embedded store: this instance owns every partition of every environment and loads
/// each from its checkpoint plus the events after it, one environment after the other, retrying
/// a store failure every second. Shared store: starts the ownership loop, which takes this
/// instance's share of the partitions (`collector/ownership.rs`).
pub fn spawn_loading(state: Arc<AppState>) {
    if state.store.shared().is_some() {
        let collector = Arc::clone(&state.collector);
        tokio::spawn(collector.run_ownership(Arc::clone(&state.store)));
        return;
    }
    // Every environment at once (each loads its partitions one after the other), so a small
    // environment is not kept waiting behind a large one.
    for environment in state.environment_keys() {
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            loop {
                match state.collector.own_all(&state.store, &environment).await {
                    Ok(events) => {
                        tracing::info!(
                            environment,
                            events,
                            seconds = started.elapsed().as_secs_f64(),
                            "attribution loaded (checkpoints plus the events after them)"
                        );
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(environment, error = %e, "cannot load attribution yet; retrying in 1 s");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
            }
        });
    }
}

/// Now, RFC 3339 (UTC), for audit entries and keys: a failure is an error, never an entry
/// without a time.
pub fn now_rfc3339() -> Result<String, InternalError> {
    rfc3339(time::OffsetDateTime::now_utc())
}

fn rfc3339(at: time::OffsetDateTime) -> Result<String, InternalError> {
    at.format(&time::format_description::well_known::Rfc3339)
        .map_err(InternalError::Timestamp)
}

impl AppState {
    /// Loads every environment and key from the store.
    pub async fn load(
        store: Arc<dyn Store>,
        metrics: Metrics,
        collector: CollectorSettings,
    ) -> Result<Self, StartupError> {
        let state = AppState {
            store,
            environments: RwLock::new(BTreeMap::new()),
            keys: RwLock::new(HashMap::new()),
            metrics,
            collector: Arc::new(Collector::new(collector)),
            default_partitions: tailor_core::partition::DEFAULT_PARTITIONS,
            sessions: Sessions::default(),
            auth_throttle: SignInThrottle::default(),
            trusted_proxies: Vec::new(),
            event_limits: EventRateLimits::default(),
            ready: AtomicBool::new(false),
        };
        for env in state.store.environments().await? {
            let revision = env.document.revision;
            let snapshot = compile(env.document).map_err(|e| StartupError::InvalidStored {
                environment: env.key.clone(),
                source: e,
            })?;
            state.metrics.set_revision(&env.key, revision);
            // Its partitions are loaded in the background ([`spawn_loading`]): configs are
            // served from the start, results once they are loaded.
            state.collector.register(&env.key, env.partitions);
            state
                .collector
                .config_changed(&env.key, snapshot.document());
            if state.store.shared().is_none() {
                state.collector.start_loading(&env.key);
            }
            let published = Published::new(snapshot).map_err(|source| StartupError::Publish {
                environment: env.key.clone(),
                source,
            })?;
            state.insert_environment(Environment::new(env.key, published));
        }
        state.reload_keys().await?;
        state.ready.store(true, Ordering::Release);
        Ok(state)
    }

    /// Whether the store has been loaded.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Adds an environment unless one with its key exists (SSE subscribers hold the existing
    /// one, so it is never replaced); returns the existing one in that case.
    fn insert_environment(&self, env: Environment) -> Option<Arc<Environment>> {
        let mut map = self.environments.write().unwrap_or_else(|p| p.into_inner());
        match map.entry(env.key.clone()) {
            std::collections::btree_map::Entry::Occupied(existing) => {
                Some(Arc::clone(existing.get()))
            }
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(Arc::new(env));
                None
            }
        }
    }

    /// Re-reads keys from the store and merges them into the keys held here.
    ///
    /// Keys are never deleted from a store (a revoked key stays listed with its revocation), so
    /// a key held here that the store lacks means the store lost data (Redis restarted without
    /// its append-only file) or is being repaired by another instance right now, one key at a
    /// time. Such a key keeps authenticating here and is stored again; dropping it, even for a
    /// moment, would answer its SDKs 401, which they take as permanent. Stored keys replace the
    /// held ones of the same digest, so revocations made anywhere apply.
    pub async fn reload_keys(&self) -> Result<(), StoreError> {
        let stored = self.store.keys().await?;
        let stored_ids: HashSet<&str> = stored.iter().map(|k| k.id.as_str()).collect();
        let missing: Vec<ApiKey> = self
            .list_keys()
            .into_iter()
            .filter(|k| !stored_ids.contains(k.id.as_str()))
            .collect();
        if !missing.is_empty() {
            tracing::error!(
                missing = missing.len(),
                stored = stored.len(),
                "the store lacks API keys served here (was Redis data lost? see README: \
                 durability); storing them again"
            );
            for key in &missing {
                match self.store.put_key(key).await {
                    // Restored meanwhile by another instance.
                    Ok(()) | Err(StoreError::AlreadyExists(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let mut map = self.keys.write().unwrap_or_else(|p| p.into_inner());
        for k in stored {
            map.insert(k.digest.clone(), k);
        }
        Ok(())
    }

    /// An environment by key.
    pub fn environment(&self, key: &str) -> Result<Arc<Environment>, ApiError> {
        self.environments
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
            .ok_or_else(|| ApiError::NotFound(format!("environment `{key}` does not exist")))
    }

    /// Keys of all environments.
    pub fn environment_keys(&self) -> Vec<String> {
        self.environments
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// Creates an environment with an empty config at revision 1 and an event log of
    /// `partitions` partitions (`None`: [`AppState::default_partitions`]).
    pub async fn create_environment(
        &self,
        key: &str,
        partitions: Option<u32>,
    ) -> Result<Arc<Published>, ApiError> {
        validate_environment_key(key)?;
        let partitions =
            tailor_core::partition::check_partitions(partitions.unwrap_or(self.default_partitions))
                .map_err(|message| ApiError::BadRequest(format!("partitions: {message}")))?;
        let document = ConfigDocument {
            environment: key.to_string(),
            revision: 1,
            ..ConfigDocument::default()
        };
        // Prepared before anything is stored: an environment that cannot be served is not
        // created.
        let snapshot = compile(document).map_err(ApiError::InvalidConfig)?;
        let published = Published::new(snapshot).map_err(InternalError::Publish)?;
        if let Err(e) = self
            .store
            .create_environment(key, published.snapshot.document(), partitions)
            .await
        {
            if matches!(e, StoreError::AlreadyExists(_)) && self.store.shared().is_some() {
                // Created through another instance and not announced yet: serve it now.
                if let Err(e) = self.refresh_environment(key).await {
                    tracing::warn!(environment = key, error = %e, "cannot load an existing environment");
                }
            }
            return Err(e.into());
        }
        let env = Environment::new(key.to_string(), published);
        let current = env.current();
        self.metrics.set_revision(key, current.revision);
        self.collector.register(key, partitions);
        self.collector
            .config_changed(key, current.snapshot.document());
        if self.store.shared().is_none() {
            // Owned here from its first event on (nothing stored yet: immediate).
            self.collector.own_all(&self.store, key).await?;
        }
        match self.insert_environment(env) {
            // Its creation was already adopted from the store's notification.
            Some(existing) => Ok(existing.current()),
            None => Ok(current),
        }
    }

    /// The key presenting this secret, if it exists and is not revoked.
    pub fn authenticate(&self, secret: &str) -> Option<ApiKey> {
        let digest = keys::digest(secret);
        let map = self.keys.read().unwrap_or_else(|p| p.into_inner());
        map.get(&digest)
            .filter(|k| keys::digests_equal(&k.digest, &digest) && k.revoked_at.is_none())
            .cloned()
    }

    /// Whether the key with this digest still exists and is not revoked (checked by long-lived
    /// streams, so a revoked key stops receiving updates).
    pub fn key_is_active(&self, digest: &str) -> bool {
        let map = self.keys.read().unwrap_or_else(|p| p.into_inner());
        map.get(digest).is_some_and(|k| k.revoked_at.is_none())
    }

    /// Creates and stores a key; returns it with its secret (shown once).
    pub async fn create_key(
        &self,
        name: &str,
        kind: KeyKind,
        environment: Option<&str>,
        secret: Option<String>,
    ) -> Result<(ApiKey, String), ApiError> {
        if let Some(env) = environment {
            self.environment(env)?;
        }
        let secret = secret.unwrap_or_else(|| keys::generate_secret(kind));
        let key = ApiKey {
            id: keys::generate_id(),
            name: name.to_string(),
            kind,
            environment: environment.map(str::to_string),
            digest: keys::digest(&secret),
            created_at: now_rfc3339()?,
            revoked_at: None,
        };
        self.store.put_key(&key).await?;
        self.reload_keys().await?;
        Ok((key, secret))
    }

    /// Whether any admin key exists.
    pub fn has_admin_key(&self) -> bool {
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .any(|k| k.kind == KeyKind::Admin && k.revoked_at.is_none())
    }

    /// All keys (without secrets).
    pub fn list_keys(&self) -> Vec<ApiKey> {
        let mut keys: Vec<_> = self
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        keys.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
        keys
    }

    /// The one write path: mutate a copy, validate, commit with compare-and-swap, publish.
    ///
    /// `mutate` checks preconditions (`If-Match`, existence) against the current document and
    /// returns what changed, for the audit log.
    pub async fn write(
        &self,
        environment: &str,
        actor: &Actor,
        mutate: impl FnOnce(&mut ConfigDocument) -> Result<Change, ApiError>,
    ) -> Result<Arc<Published>, ApiError> {
        let env = self.environment(environment)?;
        let _guard = env.write_lock.lock().await;
        let current = env.current();
        let mut document = current.snapshot.document().clone();
        let change = mutate(&mut document)?;
        tailor_core::key_rule::check_new_keys(current.snapshot.document(), &document)
            .map_err(ApiError::InvalidConfig)?;
        tailor_core::changes::check_change(current.snapshot.document(), &document)
            .map_err(ApiError::InvalidConfig)?;
        document.environment = environment.to_string();
        document.revision = current.revision + 1;
        let snapshot = compile(document).map_err(ApiError::InvalidConfig)?;
        // Prepared before the commit: a revision that cannot be served is never stored (the
        // store would then hold a revision that no instance serves).
        let published = Published::new(snapshot).map_err(InternalError::Publish)?;
        let audit = AuditEntry {
            id: 0,
            environment: environment.to_string(),
            revision: published.revision,
            at: now_rfc3339()?,
            actor: actor.0.clone(),
            action: change.action.to_string(),
            kind: change.kind.to_string(),
            key: change.key,
            before: change.before,
            after: change.after,
        };
        let result = self
            .store
            .commit(
                environment,
                current.revision,
                published.snapshot.document(),
                &audit,
            )
            .await;
        if let Err(e) = result {
            self.metrics.store_errors.inc();
            if matches!(e, StoreError::Conflict { .. }) && self.store.shared().is_some() {
                // Another instance committed first and its notification is still on its way:
                // serve its revision now, so a retry of this change is based on it.
                self.adopt_latest(&env).await;
            }
            return Err(e.into());
        }
        self.metrics.set_revision(environment, published.revision);
        self.collector
            .config_changed(environment, published.snapshot.document());
        tracing::info!(
            environment,
            revision = published.revision,
            actor = %actor.0,
            action = audit.action,
            kind = audit.kind,
            key = audit.key,
            "config changed"
        );
        Ok(env.publish(published))
    }
}

fn validate_environment_key(key: &str) -> Result<(), ApiError> {
    let ok = !key.is_empty()
        && key.len() <= 64
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "key: environment keys are 1-64 characters of a-z, 0-9, `-` and `_`, got `{key}`"
        )))
    }
}

/// Failures while starting the server.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The store failed.
    #[error("could not load state from the store")]
    Store(#[from] StoreError),
    /// A stored document no longer compiles (written by an incompatible version?).
    #[error("stored config of environment `{environment}` is invalid")]
    InvalidStored {
        /// Environment key.
        environment: String,
        /// The problems.
        #[source]
        source: tailor_core::ConfigError,
    },
    /// Binding the listen address failed.
    #[error("could not listen on {address}")]
    Bind {
        /// The address.
        address: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Bootstrap failed.
    #[error("could not create the initial environments and keys: {0}")]
    Bootstrap(String),
    /// A stored config could not be prepared for serving.
    #[error("stored config of environment `{environment}` cannot be served")]
    Publish {
        /// Environment key.
        environment: String,
        /// The cause.
        #[source]
        source: PublishError,
    },
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_time_that_rfc_3339_cannot_express_is_an_error_not_an_empty_timestamp() {
        let epoch = time::OffsetDateTime::UNIX_EPOCH;
        assert_eq!(rfc3339(epoch).unwrap(), "1970-01-01T00:00:00Z");
        // RFC 3339 offsets have no seconds.
        let odd = epoch.to_offset(time::UtcOffset::from_hms(0, 0, 30).unwrap());
        let result = rfc3339(odd);
        assert!(
            matches!(result, Err(InternalError::Timestamp(_))),
            "{result:?}"
        );
        assert!(!now_rfc3339().unwrap().is_empty());
    }
}
