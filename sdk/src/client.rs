//! The client: local evaluation (`variant`, typed getters), conversions (`track`), and the
//! lifecycle of its background tasks (`build`, `flush`, `close`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::Guard;
use serde_json::Value;
use tailor_core::bucketing::SPEC_VERSION;
use tailor_core::events::{Conversion, Event, Exposure};
use tailor_core::{
    assign, assign_lazy, Assignment, ConfigDocument, OpenFeatureReason, Profile, Reason, Snapshot,
    User, VariantRef,
};

use crate::profiles::{ProfileError, ProfileStats, Profiles, Source as ProfileSource};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::{BuildError, ConfigSourceError, FlushError};
use crate::events::{self, DeliverySettings, EventCounters, EventQueue, EventStats};
use crate::refresh::{self, ConfigSource, Connection, RefreshSettings, Shared, Status};

/// How long after its deadline `close()` still waits for the background tasks to notice it.
const TASK_STOP_GRACE: Duration = Duration::from_millis(250);

/// The served variant of a flag: its key and payload.
///
/// Holds a lock-free read guard on the config it was evaluated with, so reading it never
/// allocates and stays consistent even if a new config arrives meanwhile. Keep it briefly (for
/// the duration of a request); copy out what you need for longer.
pub struct Variant {
    snapshot: Guard<Option<Arc<Snapshot>>>,
    at: Option<VariantRef>,
}

static NULL: Value = Value::Null;

impl Variant {
    fn resolve(&self) -> Option<&tailor_core::model::Variant> {
        self.snapshot.as_ref()?.variant(self.at?)
    }

    /// The variant key; `None` when the flag is unknown or there is no config yet.
    pub fn key(&self) -> Option<&str> {
        self.resolve().map(|v| v.key.as_str())
    }

    /// The payload; `null` when the flag is unknown or there is no config yet.
    pub fn value(&self) -> &Value {
        self.resolve().map_or(&NULL, |v| &v.value)
    }
}

impl std::fmt::Debug for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Variant")
            .field("key", &self.key())
            .field("value", self.value())
            .finish()
    }
}

/// A variant with the reason it was served: for debugging and for logging decisions.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantDetail {
    /// Variant key (`None`: unknown flag or no config).
    pub key: Option<String>,
    /// Payload.
    pub value: Value,
    /// Why.
    pub reason: Reason,
    /// Why, in OpenFeature's terms (the same mapping the server's OFREP endpoint uses).
    pub openfeature_reason: OpenFeatureReason,
    /// The running experiment the user was exposed in, if any.
    pub experiment: Option<String>,
    /// The matched rule's segment, if its audience is one segment.
    pub segment: Option<String>,
    /// The config revision used (`None`: no config yet).
    pub revision: Option<u64>,
    /// The flag reads traits or large lists and the user's profile is not loaded
    /// ([`Client::load_profile`]): trait conditions did not match.
    pub profile_missing: bool,
}

/// A Tailor client. Cheap to clone (all clones share one config and one event queue).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    events: Option<EventQueue>,
    counters: Arc<EventCounters>,
    /// `true` asks the update task to stop.
    shutdown: watch::Sender<bool>,
    /// A deadline tells the delivery task to give up retrying at that instant.
    delivery_deadline: watch::Sender<Option<tokio::time::Instant>>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    flush_timeout: Duration,
    /// Users' profiles (traits, large lists) for evaluation.
    profiles: Arc<Profiles>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Dropping must not block: signal the tasks and let them finish on the runtime.
        let _ = self.shutdown.send(true);
    }
}

/// Builder for a connected client; every setting has a documented default.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    server_url: String,
    sdk_key: String,
    start_timeout: Duration,
    streaming: bool,
    poll_interval: Duration,
    request_timeout: Duration,
    stream_idle_timeout: Duration,
    max_config_bytes: usize,
    event_capacity: usize,
    max_batch: usize,
    flush_interval: Duration,
    flush_timeout: Duration,
    cache_path: Option<PathBuf>,
    bootstrap_path: Option<PathBuf>,
    initial_backoff: Duration,
    max_backoff: Duration,
    profile_ttl: Duration,
    profile_capacity: usize,
}

impl ClientBuilder {
    /// How old a cached profile may get before the next evaluation that reads it reloads it in
    /// the background (default 60 s; see [`crate::profiles`]).
    pub fn profile_ttl(mut self, d: Duration) -> Self {
        self.profile_ttl = d;
        self
    }

    /// Most users whose profiles are cached (default 10,000); the least recently loaded go first.
    pub fn profile_capacity(mut self, n: usize) -> Self {
        self.profile_capacity = n.max(1);
        self
    }

    /// How long `build()` waits for the first config from the server before continuing with the
    /// disk cache, the bootstrap file or nothing (updates keep trying in the background).
    /// Default 5 s.
    ///
    /// While it waits, a server that refuses connections is retried at least every second, so a
    /// server that comes up during the wait is noticed at once. If the wait ends without a
    /// config, `build()` logs a warning with the reason and [`Client::status`] says
    /// [`Connection::Disconnected`] with `last_error`. [`Duration::ZERO`] does not wait: see
    /// [`ClientBuilder::start_without_waiting`].
    pub fn start_timeout(mut self, d: Duration) -> Self {
        self.start_timeout = d;
        self
    }
    /// Makes `build()` return at once, serving the disk cache, the bootstrap file or the
    /// callers' defaults until the first config arrives in the background (the same as
    /// `start_timeout(Duration::ZERO)`). Use it when starting must not depend on the server,
    /// and [`Client::wait_for_revision`] or [`Client::status`] to learn when the config arrived.
    ///
    /// `build()` then cannot report a rejected key as [`BuildError::Unauthorized`]; the status
    /// says [`Connection::Unauthorized`] instead (and an error is logged).
    pub fn start_without_waiting(self) -> Self {
        self.start_timeout(Duration::ZERO)
    }
    /// Use server-sent events (default `true`); `false` polls every `poll_interval`.
    pub fn streaming(mut self, on: bool) -> Self {
        self.streaming = on;
        self
    }
    /// Polling interval when not streaming. Default 30 s.
    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.poll_interval = d;
        self
    }
    /// Timeout of one config or event request. Default 10 s.
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }
    /// Reconnect when the stream is silent this long (the server sends keep-alives every 15 s).
    /// Default 60 s.
    pub fn stream_idle_timeout(mut self, d: Duration) -> Self {
        self.stream_idle_timeout = d;
        self
    }
    /// Largest config accepted from the server. Default 32 MiB.
    pub fn max_config_bytes(mut self, n: usize) -> Self {
        self.max_config_bytes = n;
        self
    }
    /// Bound of the event queue; events beyond it are dropped and counted. Default 10,000.
    pub fn event_capacity(mut self, n: usize) -> Self {
        self.event_capacity = n;
        self
    }
    /// Events per delivery request. Default 500.
    pub fn max_batch(mut self, n: usize) -> Self {
        self.max_batch = n.clamp(1, tailor_core::events::MAX_BATCH_EVENTS);
        self
    }
    /// Deliver queued events at least this often. Default 2 s.
    pub fn flush_interval(mut self, d: Duration) -> Self {
        self.flush_interval = d;
        self
    }
    /// How long `flush()` and `close()` wait for delivery. Default 10 s. This also bounds
    /// `close()` as a whole: it returns within this time (plus a few milliseconds) even if the
    /// server hangs, counting what it could not deliver as dropped.
    pub fn flush_timeout(mut self, d: Duration) -> Self {
        self.flush_timeout = d;
        self
    }
    /// Keep a last-known-good copy of the config here (written atomically) and start from it
    /// when the server is unreachable. Default: none.
    pub fn cache_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.cache_path = Some(path.into());
        self
    }
    /// Start from this config file (JSON or YAML) when neither the server nor the cache answers.
    pub fn bootstrap_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.bootstrap_path = Some(path.into());
        self
    }
    /// First and largest reconnect delay. Defaults 500 ms and 30 s. Every failed attempt backs
    /// off, including a server answering with configs the client rejects. Until the client has
    /// had a config from the server, a server refusing connections is retried at least every
    /// second whatever these say (probing a closed port costs the server nothing, and the
    /// client serves only local config or defaults until then).
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// Starts the client on the current tokio runtime and waits (up to `start_timeout`) for the
    /// first config. Fails only on a malformed URL, an unusable bootstrap file, or a key the
    /// server rejects; an unreachable server is not an error (it is logged, and reported by
    /// [`Client::status`]).
    pub async fn build(self) -> Result<Client, BuildError> {
        let base_url = self.server_url.trim_end_matches('/').to_string();
        let scheme_ok = base_url.starts_with("http://") || base_url.starts_with("https://");
        if !scheme_ok || reqwest::Url::parse(&base_url).is_err() {
            return Err(BuildError::InvalidUrl {
                url: self.server_url.clone(),
                reason: "expected an http:// or https:// URL".into(),
            });
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("tailor-rust/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(BuildError::Http)?;

        let shared = Arc::new(Shared::new(self.cache_path.clone(), Connection::Connecting));
        self.load_local_config(&shared)?;

        let (shutdown, shutdown_rx) = watch::channel(false);
        let (delivery_deadline, deadline_rx) = watch::channel(None);
        let counters = Arc::new(EventCounters::default());
        let (queue, rx) = EventQueue::new(self.event_capacity, Arc::clone(&counters));

        let updates = tokio::spawn(refresh::run_updates(
            Arc::clone(&shared),
            http.clone(),
            RefreshSettings {
                base_url: base_url.clone(),
                sdk_key: self.sdk_key.clone(),
                streaming: self.streaming,
                poll_interval: self.poll_interval,
                request_timeout: self.request_timeout,
                stream_idle_timeout: self.stream_idle_timeout,
                max_config_bytes: self.max_config_bytes,
                initial_backoff: self.initial_backoff,
                max_backoff: self.max_backoff,
            },
            shutdown_rx,
        ));
        let profiles = Arc::new(Profiles::new(
            self.profile_capacity,
            self.profile_ttl,
            Some(ProfileSource {
                http: http.clone(),
                base_url: base_url.clone(),
                sdk_key: self.sdk_key.clone(),
                request_timeout: self.request_timeout,
            }),
        ));
        let refresher = tokio::spawn(Arc::clone(&profiles).run_refresher(shutdown.subscribe()));
        let delivery = tokio::spawn(events::run_delivery(
            rx,
            http,
            DeliverySettings {
                url: format!("{base_url}/sdk/v1/events"),
                sdk_key: self.sdk_key,
                max_batch: self.max_batch,
                flush_interval: self.flush_interval,
                request_timeout: self.request_timeout,
            },
            Arc::clone(&counters),
            deadline_rx,
        ));
        let client = Client {
            inner: Arc::new(Inner {
                shared,
                events: Some(queue),
                counters,
                shutdown,
                delivery_deadline,
                tasks: std::sync::Mutex::new(vec![updates, delivery, refresher]),
                flush_timeout: self.flush_timeout,
                profiles,
            }),
        };

        if self.start_timeout.is_zero() {
            tracing::debug!("not waiting for a first config; it arrives in the background");
            return Ok(client);
        }
        client.wait_for_first_config(self.start_timeout).await?;
        Ok(client)
    }

    /// The disk cache first (it is newer than a bootstrap file), then the bootstrap file.
    fn load_local_config(&self, shared: &Shared) -> Result<(), BuildError> {
        if let Some(path) = &self.cache_path {
            match crate::cache::load_file(path) {
                Ok(snapshot) => {
                    shared.install(snapshot, ConfigSource::DiskCache);
                    return Ok(());
                }
                Err(ConfigSourceError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(error = %e, path = %path.display(), "ignoring an unusable config cache")
                }
            }
        }
        if let Some(path) = &self.bootstrap_path {
            let snapshot =
                crate::cache::load_file(path).map_err(|source| BuildError::Bootstrap {
                    path: path.clone(),
                    source,
                })?;
            shared.install(snapshot, ConfigSource::Bootstrap);
        }
        Ok(())
    }
}

impl Client {
    /// `build()`'s wait: until a config from the server or a rejected key (an error), or
    /// `timeout` (a warning naming the reason; the client keeps trying).
    async fn wait_for_first_config(&self, timeout: Duration) -> Result<(), BuildError> {
        let mut status = self.inner.shared.status.subscribe();
        let waited = tokio::time::timeout(
            timeout,
            status.wait_for(|s| {
                s.source == ConfigSource::Server || s.connection == Connection::Unauthorized
            }),
        )
        .await;
        let current = self.status();
        if current.connection == Connection::Unauthorized {
            let message = current.last_error.unwrap_or_default();
            let status = message
                .strip_prefix("HTTP ")
                .and_then(|m| m.get(..3))
                .and_then(|c| c.parse().ok())
                .unwrap_or(401);
            self.inner.shutdown.send_replace(true);
            return Err(BuildError::Unauthorized { status, message });
        }
        if waited.is_err() {
            tracing::warn!(
                serving = ?current.source,
                connection = ?current.connection,
                error = current.last_error.as_deref().unwrap_or("no answer yet"),
                "no config from the tailor server within the start timeout; serving the cache, \
                 the bootstrap file or the callers' defaults, and retrying in the background"
            );
        }
        Ok(())
    }

    /// A builder for a client of `server_url` (e.g. `http://localhost:8080`) with an SDK key.
    pub fn builder(server_url: impl Into<String>, sdk_key: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            server_url: server_url.into(),
            sdk_key: sdk_key.into(),
            start_timeout: Duration::from_secs(5),
            streaming: true,
            poll_interval: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            stream_idle_timeout: Duration::from_secs(60),
            max_config_bytes: 32 * 1024 * 1024,
            event_capacity: 10_000,
            max_batch: 500,
            flush_interval: Duration::from_secs(2),
            flush_timeout: Duration::from_secs(10),
            cache_path: None,
            bootstrap_path: None,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            profile_ttl: Duration::from_secs(60),
            profile_capacity: 10_000,
        }
    }

    /// A client that evaluates a fixed config with no server and no event delivery: for tests
    /// and air-gapped use.
    pub fn offline(document: ConfigDocument) -> Result<Client, tailor_core::ConfigError> {
        let snapshot = tailor_core::compile(document)?;
        Ok(Self::offline_snapshot(snapshot))
    }

    /// An offline client from a config file (JSON, or YAML by extension).
    pub fn offline_from_file(path: impl Into<PathBuf>) -> Result<Client, ConfigSourceError> {
        Ok(Self::offline_snapshot(crate::cache::load_file(
            &path.into(),
        )?))
    }

    fn offline_snapshot(snapshot: Snapshot) -> Client {
        let shared = Arc::new(Shared::new(None, Connection::Offline));
        shared.install(snapshot, ConfigSource::Offline);
        let (shutdown, _) = watch::channel(false);
        let (delivery_deadline, _) = watch::channel(None);
        Client {
            inner: Arc::new(Inner {
                shared,
                events: None,
                counters: Arc::new(EventCounters::default()),
                shutdown,
                delivery_deadline,
                tasks: std::sync::Mutex::new(Vec::new()),
                flush_timeout: Duration::ZERO,
                profiles: Arc::new(Profiles::new(10_000, Duration::MAX, None)),
            }),
        }
    }

    /// The variant of `flag` for `user`. Synchronous, never fails, never blocks, no network I/O.
    /// Records an exposure (once per user, flag, variant and experiment, for this client and all
    /// its clones on every thread) when the user is in a running experiment or holdout.
    pub fn variant(&self, user: &User, flag: &str) -> Variant {
        let snapshot = self.inner.shared.config.load();
        let at = match snapshot.as_ref() {
            Some(s) => {
                let a = self.assign(s, user, flag);
                if a.experiment.is_some() {
                    self.record_exposure(s, user, flag, &a);
                }
                a.variant_ref
            }
            None => None,
        };
        Variant { snapshot, at }
    }

    /// Like [`Client::variant`], with the reason and experiment, as owned data.
    pub fn variant_detail(&self, user: &User, flag: &str) -> VariantDetail {
        self.variant_detail_if(user, flag, |_| true)
    }

    /// [`Client::variant_detail`] that records the exposure only if `serves(value)` (always
    /// called once when there is a config) says the caller will serve this value: a caller that falls back to its own default (OpenFeature
    /// on a type mismatch) must not report an exposure to a variant the user never saw.
    pub(crate) fn variant_detail_if(
        &self,
        user: &User,
        flag: &str,
        serves: impl FnOnce(&Value) -> bool,
    ) -> VariantDetail {
        let snapshot = self.inner.shared.config.load();
        let Some(s) = snapshot.as_ref() else {
            return VariantDetail {
                key: None,
                value: Value::Null,
                reason: Reason::UnknownFlag,
                openfeature_reason: OpenFeatureReason::Error,
                experiment: None,
                segment: None,
                revision: None,
                profile_missing: false,
            };
        };
        let a = self.assign(s, user, flag);
        // Always asked (not only for experiments): the caller may convert the value in it.
        let served = serves(a.value());
        if a.experiment.is_some() && served {
            self.record_exposure(s, user, flag, &a);
        }
        VariantDetail {
            key: a.variant_key().map(str::to_string),
            value: a.value().clone(),
            reason: a.reason,
            openfeature_reason: OpenFeatureReason::of(s, &a),
            experiment: a.experiment.map(str::to_string),
            segment: a.segment.map(str::to_string),
            revision: Some(s.revision()),
            profile_missing: a.profile_missing,
        }
    }

    /// The flag's boolean value, or `default` (unknown flag, no config, or not a boolean).
    ///
    /// Like every typed getter, it records the exposure only when it serves the flag's value:
    /// when it returns the caller's default because the value has another type, the user did not
    /// see the variant and is not counted in its experiment.
    pub fn bool_value(&self, user: &User, flag: &str, default: bool) -> bool {
        self.typed_value(user, flag, Value::as_bool)
            .unwrap_or(default)
    }

    /// The flag's string value, or `default`.
    pub fn string_value(&self, user: &User, flag: &str, default: &str) -> String {
        self.typed_value(user, flag, |v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| default.to_string())
    }

    /// The flag's numeric value, or `default`.
    pub fn number_value(&self, user: &User, flag: &str, default: f64) -> f64 {
        self.typed_value(user, flag, Value::as_f64)
            .unwrap_or(default)
    }

    /// The flag's JSON value, or `default` when there is none.
    pub fn json_value(&self, user: &User, flag: &str, default: Value) -> Value {
        self.typed_value(user, flag, |v| (!v.is_null()).then(|| v.clone()))
            .unwrap_or(default)
    }

    /// Evaluates `flag` and converts its value; records the exposure only if the conversion
    /// succeeds, that is, only if the caller serves the variant rather than its own default.
    fn typed_value<T>(
        &self,
        user: &User,
        flag: &str,
        convert: impl FnOnce(&Value) -> Option<T>,
    ) -> Option<T> {
        let snapshot = self.inner.shared.config.load();
        let s = snapshot.as_ref()?;
        let a = self.assign(s, user, flag);
        let value = convert(a.value())?;
        if a.experiment.is_some() {
            self.record_exposure(s, user, flag, &a);
        }
        Some(value)
    }

    /// Evaluates with the user's cached profile when the flag reads one (traits, large lists);
    /// other flags never touch the profile cache.
    #[inline]
    fn assign<'s>(&self, s: &'s Snapshot, user: &User, flag: &str) -> Assignment<'s> {
        if !s.reads_profiles() {
            return assign(s, user, flag);
        }
        let a = assign_lazy(s, user, flag, || {
            self.inner.profiles.for_evaluation(user.key())
        });
        if a.profile_missing {
            self.inner.profiles.note_missing(flag);
        }
        a
    }

    /// Loads the user's profile (computed traits, large-list memberships) from the server and
    /// caches it for evaluation, after delivering the events this client has queued (so it
    /// includes them). Call it ahead of evaluation, e.g. at session start; see
    /// [`crate::profiles`] for expiry and read-your-writes.
    pub async fn load_profile(&self, user: &User) -> Result<Profile, ProfileError> {
        if self.inner.events.is_some() {
            if let Err(e) = self.flush().await {
                tracing::debug!(error = %e, "queued events not all delivered before loading a profile");
            }
        }
        self.inner.profiles.fetch(user.key()).await
    }

    /// Caches a profile obtained elsewhere (tests, offline clients, a profile your own service
    /// passed along).
    pub fn set_profile(&self, profile: Profile) {
        self.inner.profiles.insert(profile);
    }

    /// The user's cached profile, with this process's tracked events applied.
    pub fn profile(&self, user: &User) -> Option<Profile> {
        self.inner.profiles.get(user.key())
    }

    /// Drops the user's cached profile (e.g. at sign-out).
    pub fn forget_profile(&self, user: &User) {
        self.inner.profiles.forget(user.key());
    }

    /// Profile cache counters.
    pub fn profile_stats(&self) -> ProfileStats {
        self.inner.profiles.stats()
    }

    /// The hot half of exposure recording: is this a new exposure? Almost every call is a
    /// repeat (a user sees the same page many times), so this stays small enough to inline and
    /// building the event is left to the cold [`push_exposure`].
    #[inline]
    fn record_exposure(
        &self,
        snapshot: &Snapshot,
        user: &User,
        flag: &str,
        a: &tailor_core::Assignment<'_>,
    ) {
        let (Some(queue), Some(experiment), Some(variant)) =
            (&self.inner.events, a.experiment, a.variant_key())
        else {
            return;
        };
        if queue.first_sighting(user.key(), flag, variant, experiment) {
            push_exposure(queue, snapshot, user, flag, a);
        }
    }

    /// Records a conversion (`purchase`, `signup`, …) with an optional value. Never blocks; an
    /// invalid name or value is logged and dropped.
    /// The event also updates the user's cached profile at once (read-your-writes).
    pub fn track(&self, user: &User, event: &str, value: Option<f64>) {
        if event.is_empty() || value.is_some_and(|v| !v.is_finite()) || user.key().is_empty() {
            tracing::warn!(
                event,
                ?value,
                "ignoring a conversion with an empty name, empty user key or non-finite value"
            );
            return;
        }
        let timestamp = events::now_ms();
        if let Some(s) = self.inner.shared.config.load().as_ref() {
            self.inner
                .profiles
                .record(s.traits(), user.key(), event, timestamp, value);
        }
        let Some(queue) = &self.inner.events else {
            return;
        };
        queue.push(Event::Conversion(Conversion {
            id: queue.next_id(),
            timestamp,
            user_key: user.key().to_string(),
            event: event.to_string(),
            value,
        }));
    }

    /// Waits until every event queued before this call is delivered (or `flush_timeout`).
    pub async fn flush(&self) -> Result<(), FlushError> {
        self.flush_until(tokio::time::Instant::now() + self.inner.flush_timeout)
            .await
    }

    /// [`Client::flush`] with an explicit deadline (`close()` shares one with its other steps).
    async fn flush_until(&self, deadline: tokio::time::Instant) -> Result<(), FlushError> {
        let queue = self
            .inner
            .events
            .as_ref()
            .ok_or(FlushError::NotDelivering)?;
        let wait = async {
            match queue.flush().await {
                Some(done) => done.await.map_err(|_| FlushError::NotDelivering),
                None => Err(FlushError::NotDelivering),
            }
        };
        tokio::time::timeout_at(deadline, wait)
            .await
            .map_err(|_| FlushError::Timeout(self.inner.flush_timeout))?
    }

    /// Flushes, then stops the background tasks, all within `flush_timeout` (plus a few
    /// milliseconds) however the server behaves. Events still undelivered at that deadline —
    /// including a batch whose request is still in flight — are dropped and counted.
    pub async fn close(&self) -> Result<(), FlushError> {
        let deadline = tokio::time::Instant::now() + self.inner.flush_timeout;
        let flushed = if self.inner.events.is_some() {
            self.flush_until(deadline).await
        } else {
            Ok(())
        };
        // Events queued after the flush (by other threads) may still go out until the deadline.
        self.inner.delivery_deadline.send_replace(Some(deadline));
        self.inner.shutdown.send_replace(true);
        self.join_tasks(deadline + TASK_STOP_GRACE).await;
        self.inner
            .shared
            .status
            .send_modify(|s| s.connection = Connection::Offline);
        flushed
    }

    /// Waits for the background tasks until `until`, then aborts any still running. Both stop
    /// by themselves well before (the update task at the shutdown signal, the delivery task at
    /// the close deadline), so aborting is only a guard against a bug holding `close()` up.
    async fn join_tasks(&self, until: tokio::time::Instant) {
        let tasks: Vec<_> =
            std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for mut task in tasks {
            if tokio::time::timeout_at(until, &mut task).await.is_err() {
                tracing::warn!("a background task did not stop by the close deadline; aborting it");
                task.abort();
            }
        }
    }

    /// What the client serves and how it is connected.
    pub fn status(&self) -> Status {
        self.inner.shared.status.borrow().clone()
    }

    /// Event queue counters (queued, dropped, delivered, …).
    pub fn event_stats(&self) -> EventStats {
        self.inner.counters.snapshot()
    }

    /// Events waiting in the queue for the delivery task right now (0 without event delivery).
    /// Never above `event_capacity`: a full queue drops new events instead of growing. The
    /// delivery task holds up to `max_batch` more while it sends (or retries) a batch.
    pub fn queued_len(&self) -> usize {
        self.inner.events.as_ref().map_or(0, EventQueue::len)
    }

    /// Waits until the client serves a config at or above `revision`; false on timeout.
    pub async fn wait_for_revision(&self, revision: u64, timeout: Duration) -> bool {
        let mut rx = self.inner.shared.status.subscribe();
        tokio::time::timeout(
            timeout,
            rx.wait_for(|s| s.revision.is_some_and(|r| r >= revision)),
        )
        .await
        .is_ok_and(|r| r.is_ok())
    }
}

/// Queues a new exposure: the rarely taken half of [`Client::record_exposure`], kept out of
/// line so the hot path does not pay for its stack frame.
#[cold]
#[inline(never)]
fn push_exposure(
    queue: &EventQueue,
    snapshot: &Snapshot,
    user: &User,
    flag: &str,
    a: &tailor_core::Assignment<'_>,
) {
    let (Some(experiment), Some(variant)) = (a.experiment, a.variant_key()) else {
        return;
    };
    queue.push(Event::Exposure(Exposure {
        id: queue.next_id(),
        timestamp: events::now_ms(),
        user_key: user.key().to_string(),
        flag: flag.to_string(),
        variant: variant.to_string(),
        experiment: experiment.to_string(),
        rule: a.rule_index().unwrap_or(0),
        segment: a.segment.map(str::to_string),
        personalized: a.personalized(),
        revision: snapshot.revision(),
        spec_version: SPEC_VERSION,
    }));
}
