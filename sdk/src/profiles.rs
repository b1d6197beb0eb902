//! Users' profiles in the SDK (computed traits and large-list memberships): loaded ahead of
//! evaluation, kept in a bounded cache that refreshes itself, and updated by the events this
//! client tracks (read-your-writes).
//!
//! Evaluation stays local and synchronous: [`crate::Client::variant`] reads only this cache.
//!
//! ```no_run
//! # async fn run(client: tailor::Client) -> Result<(), Box<dyn std::error::Error>> {
//! let user = tailor::User::new("user-42");
//! client.load_profile(&user).await?; // at session start: traits and list memberships
//! let banner = client.variant(&user, "lifecycle-banner"); // local, reads the cached profile
//! client.track(&user, "purchase", Some(29.99)); // applied to the cached profile at once
//! # Ok(()) }
//! ```
//!
//! The contract:
//! - **Loading.** [`crate::Client::load_profile`] (async, e.g. at session start) first delivers
//!   the events this client has queued, then reads `GET /sdk/v1/profiles/{user_key}` and caches
//!   the answer, so it includes what this process tracked before.
//! - **Expiry.** A profile older than [`profile_ttl`](crate::ClientBuilder::profile_ttl)
//!   (default 60 s) that an evaluation read since its last load is reloaded in the background
//!   (a task looks every quarter of the TTL, at least every second); it is used meanwhile, and
//!   a failed reload keeps the old values and tries again a TTL later. Profiles nobody reads are
//!   not reloaded. The evaluation itself reads no clock. The cache holds at most
//!   [`profile_capacity`](crate::ClientBuilder::profile_capacity) users (default 10,000) and
//!   drops the least recently loaded past it.
//! - **Read-your-writes.** [`crate::Client::track`] applies the event to the user's cached
//!   profile at once (`tailor_core::profile::Profile::record`), so the next evaluation in this
//!   process sees it; the server's values replace these at the next load. A reload that is in
//!   flight while the user tracks more events may miss them until the reload after.
//! - **Missing.** A flag whose rules read traits or large lists, evaluated for a user without a
//!   cached profile, treats trait conditions as not matching (like missing attributes); the
//!   answer says so (`VariantDetail::profile_missing`), [`ProfileStats::missing`] counts it and
//!   a warning is logged once per flag.
//! - **Privacy.** Profiles are read with the server-side SDK key only; the server refuses
//!   client-side keys.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rustc_hash::{FxHashMap, FxHashSet};
use tailor_core::Profile;

/// Number of independently locked shards.
const SHARDS: usize = 16;

struct Entry {
    /// Shared with evaluations in flight; `track` changes it copy-on-write.
    profile: Arc<Profile>,
    loaded: Instant,
    /// An evaluation read it since it was loaded (so it is worth reloading when it expires).
    used: AtomicBool,
}

/// Profile counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProfileStats {
    /// Users cached now.
    pub cached: u64,
    /// Profiles loaded from the server (explicit loads and background reloads).
    pub loads: u64,
    /// Loads that failed (the old values, if any, were kept).
    pub load_failures: u64,
    /// Evaluations of a flag that reads profiles for a user without one.
    pub missing: u64,
}

/// Where profiles come from (absent for offline clients).
#[derive(Clone)]
pub(crate) struct Source {
    pub(crate) http: reqwest::Client,
    pub(crate) base_url: String,
    pub(crate) sdk_key: String,
    pub(crate) request_timeout: Duration,
}

/// The bounded, self-refreshing profile cache.
pub(crate) struct Profiles {
    shards: Vec<RwLock<FxHashMap<Box<str>, Entry>>>,
    capacity_per_shard: usize,
    ttl: Duration,
    source: Option<Source>,
    loads: AtomicU64,
    load_failures: AtomicU64,
    missing: AtomicU64,
    /// Flags already warned about (missing profiles).
    warned: RwLock<FxHashSet<String>>,
}

/// Why a profile could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The client has no server (offline).
    #[error("an offline client cannot load profiles; install one with `set_profile`")]
    Offline,
    /// The request failed.
    #[error("loading the profile of `{user}` failed")]
    Request {
        /// The user key.
        user: String,
        /// The HTTP failure.
        #[source]
        source: reqwest::Error,
    },
    /// The profile URL could not be formed from the server URL.
    #[error("no profile URL from the server URL `{url}`")]
    Url {
        /// The server URL.
        url: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The server answered with an error.
    #[error("loading the profile of `{user}`: HTTP {status}: {message}")]
    Status {
        /// The user key.
        user: String,
        /// HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
}

fn shard_of(key: &str) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    key.hash(&mut h);
    (h.finish() >> 32) as usize % SHARDS
}

impl Profiles {
    pub(crate) fn new(capacity: usize, ttl: Duration, source: Option<Source>) -> Profiles {
        Profiles {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            capacity_per_shard: capacity.div_ceil(SHARDS).max(1),
            ttl,
            source,
            loads: AtomicU64::new(0),
            load_failures: AtomicU64::new(0),
            missing: AtomicU64::new(0),
            warned: RwLock::default(),
        }
    }

    fn shard(&self, key: &str) -> &RwLock<FxHashMap<Box<str>, Entry>> {
        &self.shards[shard_of(key)]
    }

    /// The user's cached profile for an evaluation (marking it used). Never blocks on I/O and
    /// reads no clock.
    #[inline]
    pub(crate) fn for_evaluation(&self, user_key: &str) -> Option<Arc<Profile>> {
        let shard = self
            .shard(user_key)
            .read()
            .unwrap_or_else(|p| p.into_inner());
        let entry = shard.get(user_key)?;
        if !entry.used.load(Ordering::Relaxed) {
            entry.used.store(true, Ordering::Relaxed);
        }
        Some(Arc::clone(&entry.profile))
    }

    /// Counts (and once per flag, logs) an evaluation that needed a profile it did not have.
    #[cold]
    pub(crate) fn note_missing(&self, flag: &str) {
        self.missing.fetch_add(1, Ordering::Relaxed);
        if self
            .warned
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(flag)
        {
            return;
        }
        let mut warned = self.warned.write().unwrap_or_else(|p| p.into_inner());
        if !warned.contains(flag) && warned.len() < 1_000 {
            warned.insert(flag.to_string());
            tracing::warn!(
                flag,
                "flag reads traits or large lists, but the user's profile is not loaded: trait \
                 conditions do not match; call `load_profile` first (logged once per flag)"
            );
        }
    }

    /// Caches `profile` (replacing the user's), evicting the least recently loaded past capacity.
    pub(crate) fn insert(&self, profile: Profile) {
        let key: Box<str> = profile.user_key().into();
        let mut shard = self.shard(&key).write().unwrap_or_else(|p| p.into_inner());
        if !shard.contains_key(&key) && shard.len() >= self.capacity_per_shard {
            let oldest = shard
                .iter()
                .min_by_key(|(_, e)| e.loaded)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                shard.remove(&oldest);
            }
        }
        shard.insert(
            key,
            Entry {
                profile: Arc::new(profile),
                loaded: Instant::now(),
                used: AtomicBool::new(false),
            },
        );
    }

    /// A copy of the user's cached profile.
    pub(crate) fn get(&self, user_key: &str) -> Option<Profile> {
        let shard = self
            .shard(user_key)
            .read()
            .unwrap_or_else(|p| p.into_inner());
        shard.get(user_key).map(|e| Profile::clone(&e.profile))
    }

    /// Drops the user's cached profile.
    pub(crate) fn forget(&self, user_key: &str) {
        let mut shard = self
            .shard(user_key)
            .write()
            .unwrap_or_else(|p| p.into_inner());
        shard.remove(user_key);
    }

    /// Applies a tracked event to the user's cached profile, if any (read-your-writes).
    pub(crate) fn record(
        &self,
        definitions: &[tailor_core::model::TraitDefinition],
        user_key: &str,
        event: &str,
        timestamp: i64,
        value: Option<f64>,
    ) {
        if definitions.is_empty() {
            return;
        }
        let mut shard = self
            .shard(user_key)
            .write()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = shard.get_mut(user_key) {
            Arc::make_mut(&mut entry.profile).record(definitions, event, timestamp, value);
        }
    }

    pub(crate) fn stats(&self) -> ProfileStats {
        ProfileStats {
            cached: self
                .shards
                .iter()
                .map(|s| s.read().unwrap_or_else(|p| p.into_inner()).len() as u64)
                .sum(),
            loads: self.loads.load(Ordering::Relaxed),
            load_failures: self.load_failures.load(Ordering::Relaxed),
            missing: self.missing.load(Ordering::Relaxed),
        }
    }

    /// Fetches the user's profile from the server and caches it.
    pub(crate) async fn fetch(&self, user_key: &str) -> Result<Profile, ProfileError> {
        let source = self.source.as_ref().ok_or(ProfileError::Offline)?;
        let result = fetch(source, user_key).await;
        match &result {
            Ok(profile) => {
                self.loads.fetch_add(1, Ordering::Relaxed);
                self.insert(profile.clone());
            }
            Err(_) => {
                self.load_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        result
    }

    /// Reloads, until `shutdown`, the profiles that expired and were read since their load,
    /// looking every quarter of the TTL (at least every second, at most every minute).
    pub(crate) async fn run_refresher(
        self: Arc<Self>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        if self.source.is_none() || self.ttl == Duration::MAX {
            return;
        }
        let every = (self.ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            let due: Vec<String> = self
                .shards
                .iter()
                .flat_map(|shard| {
                    let shard = shard.read().unwrap_or_else(|p| p.into_inner());
                    shard
                        .iter()
                        .filter(|(_, e)| {
                            e.used.load(Ordering::Relaxed) && e.loaded.elapsed() >= self.ttl
                        })
                        .map(|(k, _)| k.to_string())
                        .collect::<Vec<_>>()
                })
                .collect();
            for user_key in due {
                if *shutdown.borrow() {
                    return;
                }
                if let Err(e) = self.fetch(&user_key).await {
                    tracing::debug!(error = %e, "reloading a profile failed; keeping the old values");
                    let mut shard = self
                        .shard(&user_key)
                        .write()
                        .unwrap_or_else(|p| p.into_inner());
                    if let Some(entry) = shard.get_mut(user_key.as_str()) {
                        // Try again after another TTL, and only if it is read again.
                        entry.loaded = Instant::now();
                        entry.used.store(false, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

async fn fetch(source: &Source, user_key: &str) -> Result<Profile, ProfileError> {
    let request_error = |source: reqwest::Error| ProfileError::Request {
        user: user_key.to_string(),
        source,
    };
    let mut url =
        reqwest::Url::parse(&format!("{}/sdk/v1/profiles", source.base_url)).map_err(|e| {
            ProfileError::Url {
                url: source.base_url.clone(),
                source: Box::new(e),
            }
        })?;
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.push(user_key);
    }
    let response = source
        .http
        .get(url)
        .bearer_auth(&source.sdk_key)
        .timeout(source.request_timeout)
        .send()
        .await
        .map_err(request_error)?;
    let status = response.status();
    if !status.is_success() {
        let message = response.text().await.unwrap_or_default();
        return Err(ProfileError::Status {
            user: user_key.to_string(),
            status: status.as_u16(),
            message,
        });
    }
    response.json::<Profile>().await.map_err(request_error)
}
