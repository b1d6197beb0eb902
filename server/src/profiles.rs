//! Users' profiles on the server: trait values and list memberships
//! (`tailor_core::profile`) computed from the collector's users, other owners' profile records
//! and the store's lists; user lookups and segment sizes.
//!
//! Where a user's events come from (`crate::collector::UserEvents`): the partition's state in
//! memory when this instance owns it (always, on the embedded store), otherwise the profile
//! record its owner wrote to the shared store after applying the user's events. Either way the
//! values are computed here, at the time of the request, by `tailor_core::traits::compute`, so
//! every instance gives the same values for the same events and windows slide with the clock.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tailor_core::partition::partition;
use tailor_core::profile::format_millis;
use tailor_core::traits::{self, EventRun, OwnedRun, TraitValue};
use tailor_core::{assign_with_profile, OpenFeatureReason, Profile, Snapshot, User};

use crate::collector::{OwnedEvents, UserEvents};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::unix_now_ms;

/// Version byte of [`encode_record`]'s format.
const RECORD_FORMAT: u8 = 2;
/// The format before settling (single events only), still read.
const RECORD_FORMAT_1: u8 = 1;

/// A profile record: the user's events that traits read, as runs (settled events one run per
/// name and day, `crate::attribution`), names interned.
#[derive(Serialize, Deserialize)]
struct Record {
    names: Vec<String>,
    /// `(name index, first ms, last ms, count, value micros)`.
    runs: Vec<(u32, i64, i64, u64, i64)>,
}

/// Format 1: single events.
#[derive(Deserialize)]
struct RecordV1 {
    names: Vec<String>,
    /// `(name index, timestamp ms, value micros)`.
    events: Vec<(u32, i64, i64)>,
}

/// What marks a partition's records as complete for these trait event names (sorted).
pub fn names_mark(names: &[String]) -> String {
    format!("v{RECORD_FORMAT}\n{}", names.join("\n"))
}

/// Encodes a user's events as a profile record (empty without events: the record is deleted).
pub fn encode_record(events: &[EventRun<'_>]) -> Result<Vec<u8>, postcard::Error> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let mut names: Vec<String> = Vec::new();
    let mut runs = Vec::with_capacity(events.len());
    for e in events {
        let index = match names.iter().position(|n| n == e.name) {
            Some(i) => i,
            None => {
                names.push(e.name.to_string());
                names.len() - 1
            }
        };
        runs.push((index as u32, e.first, e.last, e.count, e.micros));
    }
    postcard::to_extend(&Record { names, runs }, vec![RECORD_FORMAT])
}

/// Decodes a profile record into the user's runs of events.
pub fn decode_record(bytes: &[u8]) -> Result<OwnedEvents, ApiError> {
    let corrupt = |why: String| {
        ApiError::Store(crate::store::StoreError::Corrupt(format!(
            "a profile record: {why}"
        )))
    };
    let Some((&format, rest)) = bytes.split_first() else {
        return Ok(Vec::new());
    };
    let record: Record = match format {
        RECORD_FORMAT => postcard::from_bytes(rest).map_err(|e| corrupt(e.to_string()))?,
        RECORD_FORMAT_1 => {
            let v1: RecordV1 = postcard::from_bytes(rest).map_err(|e| corrupt(e.to_string()))?;
            Record {
                names: v1.names,
                runs: v1
                    .events
                    .into_iter()
                    .map(|(i, ts, micros)| (i, ts, ts, 1, micros))
                    .collect(),
            }
        }
        _ => return Err(corrupt(format!("unknown format {format}"))),
    };
    record
        .runs
        .into_iter()
        .map(|(i, first, last, count, micros)| {
            let name = record
                .names
                .get(i as usize)
                .ok_or_else(|| corrupt(format!("name index {i} out of range")))?;
            Ok(OwnedRun {
                name: name.clone(),
                first,
                last,
                count,
                micros,
            })
        })
        .collect()
}

/// The user's events that traits read, from wherever this instance can see them.
async fn user_events(
    state: &AppState,
    environment: &str,
    user_key: &str,
) -> Result<OwnedEvents, ApiError> {
    match state.collector.user_events(environment, user_key) {
        UserEvents::Local(events) => Ok(events),
        UserEvents::Loading => Err(ApiError::Unavailable(format!(
            "the events of environment `{environment}` are loading; retry shortly"
        ))),
        UserEvents::Remote { partition } => match state.store.shared() {
            Some(shared) => match shared
                .profile_record(environment, partition, user_key)
                .await?
            {
                Some(bytes) => decode_record(&bytes),
                None => Ok(Vec::new()),
            },
            None => Ok(Vec::new()),
        },
    }
}

/// The keys of the snapshot's large list segments.
fn list_segments(snapshot: &Snapshot) -> Vec<String> {
    snapshot
        .document()
        .segments
        .iter()
        .filter(|s| s.list)
        .map(|s| s.key.clone())
        .collect()
}

/// A user's profile as of now: traits computed from their events, and the list segments that
/// hold them. An unknown user simply has no events.
pub async fn profile(
    state: &AppState,
    environment: &str,
    snapshot: &Snapshot,
    user_key: &str,
) -> Result<Profile, ApiError> {
    let definitions = snapshot.traits();
    let events = if definitions.is_empty() {
        Vec::new()
    } else {
        user_events(state, environment, user_key).await?
    };
    let now = unix_now_ms();
    let computed = traits::compute(definitions, events.iter().map(OwnedRun::run), now);
    let lists = list_segments(snapshot);
    let holding = state
        .store
        .lists_containing(environment, &lists, user_key)
        .await?;
    let member_of = lists
        .into_iter()
        .zip(holding)
        .filter_map(|(segment, held)| held.then_some(segment));
    Ok(Profile::new(
        user_key,
        now,
        definitions,
        &computed,
        member_of,
    ))
}

/// A trait's value as JSON: a number, or an RFC 3339 datetime.
pub fn trait_json(value: TraitValue) -> Value {
    match value {
        TraitValue::Number(n) => Value::from(n),
        TraitValue::Datetime(ms) => Value::from(format_millis(ms)),
    }
}

/// What one flag serves a looked-up user.
#[derive(Debug, Serialize)]
pub struct Served {
    /// Flag key.
    pub flag: String,
    /// The variant served (`null` for none).
    pub variant: Option<String>,
    /// Its value.
    pub value: Value,
    /// The OpenFeature reason (`TARGETING_MATCH`, `SPLIT`, …).
    pub reason: &'static str,
    /// The engine's reason (`rule`, `split`, `holdout`, `fallthrough`, …).
    pub reason_detail: tailor_core::Reason,
}

/// A user lookup: their profile, the segments they are in and what every flag serves them.
#[derive(Debug, Serialize)]
pub struct UserReport {
    /// The user key.
    pub user_key: String,
    /// Trait values (missing traits are absent) and list memberships, as of `as_of`.
    pub profile: Profile,
    /// Keys of the segments the user is a member of, evaluated with `attributes`.
    pub segments: Vec<String>,
    /// Every flag, in document order.
    pub flags: Vec<Served>,
    /// When the traits were computed, RFC 3339.
    pub as_of: String,
}

/// Looks a user up: profile, segments and flags, evaluated with `user`'s attributes (none for a
/// bare key) by the one engine.
pub async fn lookup(
    state: &AppState,
    environment: &str,
    snapshot: &Snapshot,
    user: &User,
) -> Result<UserReport, ApiError> {
    let profile = profile(state, environment, snapshot, user.key()).await?;
    let segments = snapshot
        .document()
        .segments
        .iter()
        .filter(|s| snapshot.in_segment(&s.key, user, Some(&profile)) == Some(true))
        .map(|s| s.key.clone())
        .collect();
    let flags = snapshot
        .flag_keys()
        .map(|flag| {
            let a = assign_with_profile(snapshot, user, Some(&profile), flag);
            Served {
                flag: flag.to_string(),
                variant: a.variant_key().map(str::to_string),
                value: a.value().clone(),
                reason: OpenFeatureReason::of(snapshot, &a).as_str(),
                reason_detail: a.reason,
            }
        })
        .collect();
    Ok(UserReport {
        user_key: user.key().to_string(),
        as_of: format_millis(profile.as_of()),
        profile,
        segments,
        flags,
    })
}

/// One segment's size.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentSize {
    /// Segment key.
    pub key: String,
    /// Known users who are members; `null` when membership depends on attributes the server
    /// does not see (`reason` says so).
    pub size: Option<u64>,
    /// Keys in the uploaded list (large list segments).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list_size: Option<u64>,
    /// Why `size` is `null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// Every segment's size over the known users.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentSizes {
    /// Users with at least one event a trait reads, or in an uploaded list.
    pub known_users: u64,
    /// When it was computed, RFC 3339.
    pub as_of: String,
    /// In document order.
    pub segments: Vec<SegmentSize>,
}

/// Counts, for every segment, the known users who are members. Known users are those with at
/// least one event a trait reads, and the members of uploaded lists; each is evaluated by the
/// engine with their profile and no attributes, so a segment whose conditions read attributes
/// has no size (`reads_attributes`).
pub async fn segment_sizes(
    state: &AppState,
    environment: &str,
    snapshot: &Snapshot,
) -> Result<SegmentSizes, ApiError> {
    let now = unix_now_ms();
    let definitions = snapshot.traits();
    let names: Vec<String> = traits::event_names(definitions)
        .into_iter()
        .map(str::to_string)
        .collect();
    let lists = list_segments(snapshot);
    let mut list_members: Vec<rustc_hash::FxHashSet<String>> = Vec::with_capacity(lists.len());
    for segment in &lists {
        list_members.push(
            state
                .store
                .list_members(environment, segment)
                .await?
                .into_iter()
                .collect(),
        );
    }
    let sized: Vec<&str> = snapshot
        .document()
        .segments
        .iter()
        .map(|s| s.key.as_str())
        .filter(|k| !snapshot.segment_reads_attributes(k))
        .collect();
    let mut counts = vec![0u64; sized.len()];
    let mut seen: rustc_hash::FxHashSet<String> = rustc_hash::FxHashSet::default();
    let count_user = |key: &str, events: &[EventRun<'_>], counts: &mut [u64]| {
        let computed = traits::compute(definitions, events.iter().copied(), now);
        let member_of = lists
            .iter()
            .zip(&list_members)
            .filter(|(_, members)| members.contains(key))
            .map(|(segment, _)| segment.clone());
        let profile = Profile::new(key, now, definitions, &computed, member_of);
        let user = User::new(key);
        for (count, segment) in counts.iter_mut().zip(&sized) {
            if snapshot.in_segment(segment, &user, Some(&profile)) == Some(true) {
                *count += 1;
            }
        }
    };
    // Users with events, from memory where this instance owns their partition ...
    let local = if names.is_empty() {
        Vec::new()
    } else {
        state
            .collector
            .for_each_local_user(environment, &names, |key, events| {
                count_user(key, events, &mut counts);
                seen.insert(key.to_string());
            })
    };
    // ... and from the owners' records for the others (shared store).
    if let (Some(shared), Some(partitions), false) = (
        state.store.shared(),
        state.collector.partitions(environment),
        names.is_empty(),
    ) {
        for p in (0..partitions).filter(|p| !local.contains(p)) {
            let mut cursor = "0".to_string();
            loop {
                let (next, page) = shared.profile_records_page(environment, p, &cursor).await?;
                for (key, bytes) in page {
                    let events = decode_record(&bytes)?;
                    let events: Vec<EventRun<'_>> = events
                        .iter()
                        .filter(|r| names.binary_search(&r.name).is_ok())
                        .map(OwnedRun::run)
                        .collect();
                    if !events.is_empty() && partition(&key, partitions) == p {
                        count_user(&key, &events, &mut counts);
                        seen.insert(key);
                    }
                }
                if next == "0" {
                    break;
                }
                cursor = next;
            }
        }
    }
    // Members of uploaded lists without events.
    for members in &list_members {
        for key in members {
            if !seen.contains(key) {
                count_user(key, &[], &mut counts);
                seen.insert(key.clone());
            }
        }
    }
    let mut segments = Vec::new();
    for s in &snapshot.document().segments {
        // The uploaded sets hold each key once: their sizes are the lists' sizes.
        let list_size = lists
            .iter()
            .position(|l| *l == s.key)
            .and_then(|i| list_members.get(i))
            .map(|members| members.len() as u64);
        let size = sized
            .iter()
            .position(|k| *k == s.key)
            .and_then(|i| counts.get(i).copied());
        segments.push(SegmentSize {
            key: s.key.clone(),
            size,
            list_size,
            reason: size.is_none().then_some("reads_attributes"),
        });
    }
    Ok(SegmentSizes {
        known_users: seen.len() as u64,
        as_of: format_millis(now),
        segments,
    })
}
