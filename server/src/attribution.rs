//! Attribution (DESIGN §5) with incrementally maintained per-arm aggregates.
//!
//! Rules: a user counts once per experiment, in the variant of their **first** exposure (earliest
//! timestamp; ties broken by a fixed hash of the event id, see "Ties", so the answer never
//! depends on arrival order). A conversion counts for an experiment when its timestamp is at or
//! after that first exposure, and within the experiment's attribution window if it has one.
//! The window is half-open: with `attribution_window_hours: h`, a conversion at
//! `first + h·3,600,000 − 1` ms counts and one at exactly `first + h·3,600,000` does not, so a
//! window covers exactly `h` hours. Timestamps are the sender's clock, except that an event
//! stamped more than 5 minutes ahead of the server is stored at the time it was received (see
//! `routes::events`), so a clock running ahead cannot push a first exposure past conversions
//! that followed it.
//! Users exposed to more than one variant stay in their first and are counted as a data-quality
//! warning.
//!
//! Ties: of exposures with the same millisecond timestamp, the first is the one with the smaller
//! 64-bit key
//!
//! ```text
//! tie(id) = murmur3_x86_32(UTF-8 bytes of id, seed = 0) << 32 | murmur3_x86_32(same bytes, seed = 1)
//! ```
//!
//! (the murmur3 of the bucketing contract, `tailor_core::bucketing::murmur3_x86_32`). The key is
//! part of what the results mean, so it is a hash with a fixed specification: a rebuild, another
//! instance and a newer build all pick the same first exposure.
//!
//! Settling (memory bounded by users, not events): each user has a *settle point*, the latest
//! timestamp of their events minus [`SETTLE_MS`] (15 minutes), which only moves forward. A
//! conversion older than it is *settled*: folded into running sums and forgotten one by one —
//! per experiment the attributed count, value sum and first hour (what the user's contribution
//! is made of), and per event name and UTC day the count, sum, first and last time (what computed
//! traits read, `tailor_core::traits::EventRun`). Conversions newer than the settle point stay
//! as they are. A user therefore costs memory for their experiments, event names and active
//! days, and for their last 15 minutes of conversions, never for their whole history.
//!
//! The results are exactly those of keeping every conversion, under one rule: **an exposure
//! stamped before its user's settle point counts from the settle point** (its timestamp is
//! raised to it; the experiment's report counts these as `late_exposures`). An exposure arrives
//! that late only when it was held back more than 15 minutes behind the same user's later
//! events, e.g. by a device that was offline. With that rule every first exposure is at or after
//! the settle point, so the conversions a first exposure (or a moved one) needs are never
//! settled ones, and a settled conversion is credited once, to the experiments whose window
//! holds it. A late *conversion* needs no rule: it is credited to exactly the experiments whose
//! window holds it. The settle point depends only on the user's own events in log order, so a
//! rebuild, another instance or another number of partitions gives the same numbers.
//!
//! An experiment's attribution window is fixed once it has started (the config write path
//! refuses a change, `crate::state`): settled sums were credited under the window. Were a window
//! to change anyway (a config written by an older build), the change applies to the
//! conversions not yet settled.
//!
//! Covariates (CUPED, `crate::stats`): for each experiment a user is exposed to, and each
//! metric, the user's conversions in the experiment's *lookback* before their first exposure
//! `F`: those with `ts < F` on the UTC day of `F` or one of the `L` whole days before it
//! (`cuped_lookback_days`, default 14). They are taken when the first exposure is applied (or
//! moves earlier), from the user's day runs and recent conversions: exact, because a first
//! exposure is never before the settle point and every settled conversion is, so a day run in
//! the lookback holds only conversions before `F`. A conversion arriving later with a
//! timestamp in the lookback is added then. The lookback, like the window, is fixed once the
//! experiment has started. Per cell and metric the aggregates keep the covariate's sums: users
//! with a pre-exposure conversion, users with both, `Σx`, `Σx²` and `Σxy` of the values.
//!
//! How it stays incremental: each stored event updates only its user. The user's contribution to
//! each affected experiment is recomputed from that user's own events and the difference is
//! applied to the experiment's aggregates, so reading results never rescans events and events may
//! arrive in any order. Values are summed as integer micro-units so that incremental updates and a
//! rebuild from raw events give bit-identical numbers.

mod checkpoint;
mod user;

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};

use hashbrown::hash_table::{self, HashTable};
use rustc_hash::{FxHashMap, FxHasher};
use serde::{Deserialize, Serialize};
use tailor_core::bucketing::murmur3_x86_32;
use tailor_core::events::Event;
use tailor_core::traits::EventRun;
use user::{
    counts_for, first_of, fold_exposure, lookback_of, ConversionRec, CovariateRec, UserState,
};

/// Most distinct conversion event names (metrics) an environment's attribution tracks; the
/// first ones in log order are kept, so a rebuild keeps the same ones.
pub const MAX_METRICS: usize = 1_000;

/// How far a user's settle point trails their latest event (module docs, "Settling"): 15
/// minutes. A constant, not a setting, so that every instance folds alike.
pub const SETTLE_MS: i64 = 15 * 60_000;

use crate::aggregates::{
    CellId, CellSums, ExperimentAggregates, HourSums, MetricSums, PairSums, PartitionAggregates,
    MICROS,
};
pub use crate::aggregates::{
    CellTotals, CumulativePoint, ExperimentTotals, MetricTotals, VariantSeries,
};
pub use checkpoint::{CheckpointError, FORMAT as CHECKPOINT_FORMAT};

/// Interns names (experiments, variants, segments, metrics) as small integers.
#[derive(Debug, Default)]
struct Names {
    ids: FxHashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
}

impl Names {
    fn id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.into());
        self.ids.insert(name.into(), id);
        id
    }

    fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("", |n| n)
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct ExposureRec {
    experiment: u32,
    variant: u32,
    segment: u32,
    /// Index of the rule that served it (fits in the padding after `personalized`).
    rule: u16,
    personalized: bool,
    /// The user was exposed to more than one variant of the experiment (also in the padding).
    multi_variant: bool,
    timestamp: i64,
    tie: u64,
}

/// The analysis cell a user falls in: arm, segment (or rule label), the rule that served the
/// first exposure, and personalized-or-generic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct CellKey {
    variant: u32,
    segment: u32,
    rule: u16,
    personalized: bool,
    /// The update period of the first exposure, for an experiment measuring an optimize rule
    /// (`ExperimentTerms::period_ms`); 0 otherwise.
    period: u32,
}

/// Hours since the Unix epoch: the time series' bucket.
fn hour_of(ms: i64) -> i64 {
    ms.div_euclid(3_600_000)
}

/// One user's share of one experiment's aggregates for one metric.
#[derive(Debug, Clone, Copy, PartialEq)]
struct MetricShare {
    metric: u32,
    /// Attributed conversions.
    count: u32,
    /// Sum of their values, micros.
    sum: i128,
    /// Hour of the first (meaningless when `count` is 0).
    first_hour: i64,
    /// The CUPED covariate: conversions of the metric in the lookback before the first exposure
    /// (module docs, "Covariates"), and the sum of their values in micros.
    pre_count: u32,
    pre_sum: i64,
}

impl MetricShare {
    /// This one user's sums, to add to (or take out of) a cell's.
    fn sums(&self) -> MetricSums {
        let mut m = MetricSums::default();
        if self.count > 0 {
            let count = i128::from(self.count);
            m.converted = 1;
            m.sum = self.sum;
            m.sum_sq = self.sum * self.sum;
            m.count = count;
            m.count_sq = count * count;
            m.value_count = self.sum * count;
        }
        if self.pre_count > 0 {
            let x = i128::from(self.pre_sum);
            m.pre_converted = 1;
            m.pre_sum = x;
            m.pre_sum_sq = x * x;
            m.sum_products = self.sum * x;
            m.both_converted = u64::from(self.count > 0);
        }
        m
    }
}

/// One user's share of one experiment's aggregates.
#[derive(Debug, Clone, PartialEq)]
struct Contribution {
    cell: CellKey,
    multi_variant: bool,
    /// Hour of the first exposure.
    exposed_hour: i64,
    /// Per metric with an attributed conversion or a covariate, by metric id.
    metrics: Vec<MetricShare>,
}

/// Two metrics' cross products over a cell's users (`aggregates::PairSums`), keyed by the
/// metric ids in ascending order: `count_value` is `Σ count(lower id) · value(higher id)`.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct PairProducts {
    count_count: i128,
    count_value: i128,
    value_count: i128,
    value_value: i128,
}

#[derive(Debug, Default)]
struct Cell {
    users: u64,
    metrics: FxHashMap<u32, MetricSums>,
    pairs: FxHashMap<(u32, u32), PairProducts>,
}

/// Per variant and hour: users first exposed, and per metric users first converting.
#[derive(Debug, Default)]
struct HourDeltas {
    exposed: i64,
    converted: FxHashMap<u32, i64>,
}

#[derive(Debug, Default)]
struct ExperimentAggregate {
    cells: FxHashMap<CellKey, Cell>,
    multi_variant_users: u64,
    /// Variant → hour → deltas, for cumulative curves.
    timeline: FxHashMap<u32, BTreeMap<i64, HourDeltas>>,
    /// The pairs of different metrics its ratio metrics divide (ids, lower first): only these
    /// cross products are kept ([`Attribution::set_ratio_pairs`]).
    ratio_pairs: Vec<(u32, u32)>,
}

/// What attribution reads of one experiment's config.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentTerms {
    /// The experiment key.
    pub experiment: String,
    /// `attribution_window_hours` (`None`: unlimited).
    pub window_hours: Option<u32>,
    /// The CUPED lookback, days (the default applied).
    pub lookback_days: u32,
    /// The two events of each ratio metric over two different events, each pair once, the
    /// name that sorts first first.
    pub ratio_pairs: Vec<(String, String)>,
    /// The update period of the optimize rule the experiment measures, milliseconds: its
    /// users' cells are split by the period of their first exposure.
    pub period_ms: Option<i64>,
}

impl ExperimentTerms {
    /// The terms of every experiment of a config.
    pub fn of(document: &tailor_core::ConfigDocument) -> Vec<ExperimentTerms> {
        document
            .experiments
            .iter()
            .map(|e| ExperimentTerms {
                experiment: e.key.clone(),
                window_hours: e.attribution_window_hours,
                lookback_days: e.lookback_days(),
                ratio_pairs: {
                    let mut pairs: Vec<(String, String)> = e
                        .ratio_metrics
                        .iter()
                        .map(|r| (&r.numerator.event, &r.denominator.event))
                        .filter(|(a, b)| a != b)
                        .map(|(a, b)| (a.min(b).clone(), a.max(b).clone()))
                        .collect();
                    pairs.sort();
                    pairs.dedup();
                    pairs
                },
                period_ms: document.flags.iter().find_map(|f| {
                    f.rules
                        .iter()
                        .filter(|r| r.experiment.as_deref() == Some(e.key.as_str()))
                        .find_map(|r| r.optimize.as_ref())
                        .map(tailor_core::model::Optimize::period_ms)
                }),
            })
            .collect()
    }
}

/// All attribution state of one environment.
#[derive(Debug)]
pub struct Attribution {
    names: Names,
    users: Users,
    experiments: FxHashMap<u32, ExperimentAggregate>,
    /// Attribution window per experiment, milliseconds.
    windows: FxHashMap<u32, i64>,
    /// Update period per experiment measuring an optimize rule, milliseconds.
    periods: FxHashMap<u32, i64>,
    /// CUPED lookback per experiment, days (absent: the default, 14).
    lookbacks: FxHashMap<u32, i64>,
    /// Interned `rule <n>` labels by rule index, so exposures do not format one each.
    rule_labels: Vec<u32>,
    events: u64,
    /// Interned ids of the conversion event names (metrics) seen, at most [`MAX_METRICS`].
    metrics: rustc_hash::FxHashSet<u32>,
    /// Conversions not attributed because their event name came after [`MAX_METRICS`] others.
    conversions_over_metric_limit: u64,
    /// Per experiment, exposures that counted from their user's settle point (module docs).
    late_exposures: FxHashMap<u32, u64>,
    /// How far settle points trail (module docs): [`SETTLE_MS`]; tests compare with `i64::MAX`,
    /// which settles nothing.
    settle_ms: i64,
}

impl Default for Attribution {
    fn default() -> Self {
        Attribution {
            names: Names::default(),
            users: Users::default(),
            experiments: FxHashMap::default(),
            windows: FxHashMap::default(),
            periods: FxHashMap::default(),
            lookbacks: FxHashMap::default(),
            rule_labels: Vec::new(),
            events: 0,
            metrics: rustc_hash::FxHashSet::default(),
            conversions_over_metric_limit: 0,
            late_exposures: FxHashMap::default(),
            settle_ms: SETTLE_MS,
        }
    }
}

/// Number of [`Users`] shards (a power of two).
const USER_SHARDS: usize = 64;
/// Slices of a shard in a recompute pass (a power of two).
const RECOMPUTE_SLICES: usize = 16;

/// One user, with the hash of their key kept beside it.
#[derive(Debug)]
struct UserEntry {
    hash: u64,
    key: Box<str>,
    state: UserState,
}

/// Users by key. Two things keep growing the table cheap, which matters because ingestion waits
/// while it grows:
/// - each entry keeps its key's hash, so a resize moves entries without reading every key
///   again (a pointer chase per user: that made a growth at 14.7M users cost seconds);
/// - the users are split into shards, so one growth moves 1/64 of them (a single table held
///   ingestion for 0.55 s at 917k users).
#[derive(Debug)]
struct Users {
    shards: Vec<HashTable<UserEntry>>,
}

impl Default for Users {
    fn default() -> Self {
        Users {
            shards: (0..USER_SHARDS).map(|_| HashTable::new()).collect(),
        }
    }
}

/// A user key's 64-bit hash: FxHash, then a finalizer that spreads it over every bit (the table
/// places entries by the low bits and filters by the top 7; the shard comes from bits 40–45).
fn user_hash(key: &str) -> u64 {
    let mut h = FxHasher::default();
    key.hash(&mut h);
    let mut x = h.finish();
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

impl Users {
    fn get(&self, key: &str) -> Option<&UserState> {
        let hash = user_hash(key);
        let shard = self.shards.get((hash >> 40) as usize % USER_SHARDS)?;
        shard
            .find(hash, |e| e.hash == hash && &*e.key == key)
            .map(|e| &e.state)
    }

    fn get_or_insert(&mut self, key: &str) -> &mut UserState {
        let hash = user_hash(key);
        let shard = &mut self.shards[(hash >> 40) as usize % USER_SHARDS];
        match shard.entry(hash, |e| e.hash == hash && &*e.key == key, |e| e.hash) {
            hash_table::Entry::Occupied(entry) => &mut entry.into_mut().state,
            hash_table::Entry::Vacant(entry) => {
                &mut entry
                    .insert(UserEntry {
                        hash,
                        key: key.into(),
                        state: UserState::default(),
                    })
                    .into_mut()
                    .state
            }
        }
    }
}

/// The tie-break of an exposure (module docs, "Ties"): MurmurHash3 x86 32 of the event id's
/// UTF-8 bytes with seed 0 in the high half and seed 1 in the low half. A hash with a published
/// specification, so every build picks the same first exposure; FxHash, used before, promises
/// nothing across rustc-hash versions. Two seeds make a 64-bit key, so a tie of the tie-break
/// itself (then arrival order decides) needs a 64-bit collision.
fn tie_of(id: &str) -> u64 {
    let bytes = id.as_bytes();
    (u64::from(murmur3_x86_32(bytes, 0)) << 32) | u64::from(murmur3_x86_32(bytes, 1))
}

impl Attribution {
    /// Number of events applied.
    pub fn events_applied(&self) -> u64 {
        self.events
    }

    /// The user's conversions (the events traits read, `tailor_core::traits`) whose name is in
    /// `names`, settled ones as one run per name and day; empty for an unknown user.
    pub fn user_events(&self, key: &str, names: &[String]) -> Vec<EventRun<'_>> {
        let wanted = self.name_ids(names);
        match self.users.get(key) {
            Some(user) => self.events_of(user, &wanted),
            None => Vec::new(),
        }
    }

    fn name_ids(&self, names: &[String]) -> Vec<u32> {
        names.iter().filter_map(|n| self.names.get(n)).collect()
    }

    fn events_of(&self, user: &UserState, wanted: &[u32]) -> Vec<EventRun<'_>> {
        let days = user
            .days
            .iter()
            .filter(|d| wanted.contains(&d.metric))
            .map(|d| EventRun {
                name: self.names.name(d.metric),
                first: d.first,
                last: d.last,
                count: u64::from(d.count),
                micros: d.micros,
            });
        let recent = user
            .recent
            .iter()
            .filter(|c| wanted.contains(&c.metric))
            .map(|c| EventRun::one(self.names.name(c.metric), c.timestamp, c.micros));
        days.chain(recent).collect()
    }

    /// Calls `f` with every user's key and their conversions whose name is in `names`, as
    /// [`Attribution::user_events`] gives them.
    pub fn for_each_user(&self, names: &[String], mut f: impl FnMut(&str, &[EventRun<'_>])) {
        let wanted = self.name_ids(names);
        for shard in &self.users.shards {
            for entry in shard.iter() {
                f(&entry.key, &self.events_of(&entry.state, &wanted));
            }
        }
    }

    /// Number of users with at least one event.
    pub fn user_count(&self) -> u64 {
        self.users.shards.iter().map(|s| s.len() as u64).sum()
    }

    /// Sets every experiment's window (recomputing its users if it changed, as
    /// [`Attribution::set_window`]) and lookback.
    pub fn set_terms(&mut self, terms: &[ExperimentTerms]) {
        for t in terms {
            self.change_period(&t.experiment, t.period_ms);
            self.set_window(&t.experiment, t.window_hours);
            self.set_lookback(&t.experiment, t.lookback_days);
            self.set_ratio_pairs(&t.experiment, &t.ratio_pairs);
        }
    }

    /// Sets which pairs of different events an experiment's ratio metrics divide. Cross
    /// products are kept for those pairs only (a user converting on many events costs nothing
    /// more), so a change re-derives them, exactly, from every user's stored contribution: one
    /// pass over the users under the attribution's lock, no event read again.
    pub fn set_ratio_pairs(&mut self, experiment: &str, pairs: &[(String, String)]) {
        let id = self.names.id(experiment);
        let mut ids: Vec<(u32, u32)> = pairs
            .iter()
            .map(|(a, b)| {
                let (a, b) = (self.names.id(a), self.names.id(b));
                (a.min(b), a.max(b))
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let current = self.experiments.get(&id).map(|a| a.ratio_pairs.as_slice());
        if current.unwrap_or_default() == ids.as_slice() {
            return;
        }
        let agg = self.experiments.entry(id).or_default();
        agg.ratio_pairs = ids;
        for cell in agg.cells.values_mut() {
            cell.pairs.clear();
        }
        for entry in self.users.shards.iter().flat_map(|t| t.iter()) {
            for (_, c) in entry.state.contributions.iter().filter(|(e, _)| *e == id) {
                add_pairs(agg, c, 1);
            }
        }
    }

    /// Sets an experiment's attribution window (`None`: unlimited) and recomputes its users when
    /// the window changes, so aggregates always reflect the current window. That is a pass over
    /// every user: the collector instead calls [`Attribution::change_window`] and then
    /// [`Attribution::recompute_part`] part by part, off the request path.
    pub fn set_window(&mut self, experiment: &str, hours: Option<u32>) {
        if self.change_window(experiment, hours) {
            let experiments = [experiment.to_string()];
            for part in 0..Self::RECOMPUTE_PARTS {
                self.recompute_part(part, &experiments);
            }
        }
    }

    /// Sets an experiment's CUPED lookback in days (module docs, "Covariates"). It applies to
    /// first exposures from then on: the write path refuses a change once the experiment has
    /// started (`tailor_core::changes`), so no user needs recomputing.
    pub fn set_lookback(&mut self, experiment: &str, days: u32) {
        let id = self.names.id(experiment);
        self.lookbacks.insert(id, i64::from(days));
    }

    /// How many parts a recompute pass is split into ([`Attribution::recompute_part`]): each
    /// shard's users in 16 slices by their key's hash, so that one part is 1/1024 of the users.
    pub const RECOMPUTE_PARTS: usize = USER_SHARDS * RECOMPUTE_SLICES;

    /// Sets an experiment's attribution window without recomputing its users; returns whether it
    /// changed. Users are recomputed under the new window as their next event arrives, and all of
    /// them by a [`Attribution::recompute_part`] pass over every part, which must follow.
    pub fn change_window(&mut self, experiment: &str, hours: Option<u32>) -> bool {
        let id = self.names.id(experiment);
        let new = hours.map(|h| i64::from(h) * 3_600_000);
        if self.windows.get(&id).copied() == new {
            return false;
        }
        match new {
            Some(ms) => self.windows.insert(id, ms),
            None => self.windows.remove(&id),
        };
        true
    }

    /// Sets the update period that splits an experiment's cells (`None`: not split) without
    /// recomputing its users; returns whether it changed. As for [`Attribution::change_window`],
    /// a [`Attribution::recompute_part`] pass over every part must follow. The write path
    /// refuses a change once the experiment has started, so that only happens to drafts.
    pub fn change_period(&mut self, experiment: &str, period_ms: Option<i64>) -> bool {
        let id = self.names.id(experiment);
        let new = period_ms.filter(|ms| *ms > 0);
        if self.periods.get(&id).copied() == new {
            return false;
        }
        match new {
            Some(ms) => self.periods.insert(id, ms),
            None => self.periods.remove(&id),
        };
        true
    }

    /// Recomputes the contributions of one part's users (`part` < [`Self::RECOMPUTE_PARTS`]) to
    /// `experiments` under the current windows (a no-op for users already up to date).
    pub fn recompute_part(&mut self, part: usize, experiments: &[String]) {
        let ids: Vec<u32> = experiments
            .iter()
            .filter_map(|e| self.names.get(e))
            .collect();
        let slice = (part / USER_SHARDS) as u64;
        let Some(table) = self.users.shards.get_mut(part % USER_SHARDS) else {
            return;
        };
        // Bits 46-49 of the hash: independent of the shard's (40-45) and the table's own bits.
        let in_slice = |e: &&mut UserEntry| (e.hash >> 46) % RECOMPUTE_SLICES as u64 == slice;
        for entry in table.iter_mut().filter(in_slice) {
            let user = &mut entry.state;
            for &id in &ids {
                if user.exposures.iter().any(|e| e.experiment == id) {
                    recompute(
                        user,
                        id,
                        &self.windows,
                        &self.periods,
                        &mut self.experiments,
                    );
                }
            }
        }
    }

    fn rule_label(&mut self, rule: usize) -> u32 {
        while self.rule_labels.len() <= rule.min(1024) {
            let label = format!("rule {}", self.rule_labels.len());
            let id = self.names.id(&label);
            self.rule_labels.push(id);
        }
        match self.rule_labels.get(rule) {
            Some(&id) => id,
            None => self.names.id(&format!("rule {rule}")),
        }
    }

    /// Applies one newly stored event (never call it twice for the same event id).
    pub fn apply(&mut self, event: &Event) {
        self.events += 1;
        match event {
            Event::Exposure(e) => {
                let mut rec = ExposureRec {
                    experiment: self.names.id(&e.experiment),
                    variant: self.names.id(&e.variant),
                    segment: match &e.segment {
                        Some(s) => self.names.id(s),
                        None => self.rule_label(e.rule),
                    },
                    rule: u16::try_from(e.rule).unwrap_or(u16::MAX),
                    personalized: e.personalized,
                    multi_variant: false,
                    timestamp: e.timestamp,
                    tie: tie_of(&e.id),
                };
                let user = self.users.get_or_insert(&e.user_key);
                user.advance(e.timestamp, self.settle_ms, &self.windows);
                if rec.timestamp < user.settle_point {
                    rec.timestamp = user.settle_point;
                    *self.late_exposures.entry(rec.experiment).or_default() += 1;
                }
                let before = first_of(&user.exposures, rec.experiment);
                fold_exposure(&mut user.exposures, rec);
                let after = first_of(&user.exposures, rec.experiment);
                if let Some(first) = after.filter(|&f| Some(f) != before) {
                    let days = lookback_of(&self.lookbacks, rec.experiment);
                    user.compute_covariates(rec.experiment, first, days);
                }
                recompute(
                    user,
                    rec.experiment,
                    &self.windows,
                    &self.periods,
                    &mut self.experiments,
                );
            }
            Event::Conversion(c) => {
                let Some(metric) = self.metric_id(&c.event) else {
                    self.conversions_over_metric_limit += 1;
                    if self.conversions_over_metric_limit == 1 {
                        tracing::warn!(
                            limit = MAX_METRICS,
                            event = c.event,
                            "conversion event names past the limit are stored but not attributed"
                        );
                    }
                    return;
                };
                let rec = ConversionRec {
                    metric,
                    timestamp: c.timestamp,
                    micros: c.value.map_or(0, |v| (v * MICROS).round() as i64),
                };
                let user = self.users.get_or_insert(&c.user_key);
                user.note_covariate(rec, &self.lookbacks);
                user.insert_recent(rec);
                user.advance(c.timestamp, self.settle_ms, &self.windows);
                let mut experiments: Vec<u32> =
                    user.exposures.iter().map(|e| e.experiment).collect();
                experiments.sort_unstable();
                experiments.dedup();
                for experiment in experiments {
                    recompute(
                        user,
                        experiment,
                        &self.windows,
                        &self.periods,
                        &mut self.experiments,
                    );
                }
            }
        }
    }

    /// The id of a conversion event name, interning it while fewer than [`MAX_METRICS`] are known
    /// (conversions need no config, so a public key could otherwise grow the names forever).
    fn metric_id(&mut self, name: &str) -> Option<u32> {
        if let Some(id) = self.names.get(name) {
            if self.metrics.contains(&id) {
                return Some(id);
            }
        }
        if self.metrics.len() >= MAX_METRICS {
            return None;
        }
        let id = self.names.id(name);
        self.metrics.insert(id);
        Some(id)
    }

    /// Conversions not attributed because their event name came after [`MAX_METRICS`] others.
    pub fn conversions_over_metric_limit(&self) -> u64 {
        self.conversions_over_metric_limit
    }

    /// Cumulative users and converted users per variant over time (hourly), for `metric`.
    pub fn timeline(&self, experiment: &str, metric: &str) -> Vec<VariantSeries> {
        self.experiment_aggregates(experiment)
            .map(|a| a.timeline(metric))
            .unwrap_or_default()
    }

    /// The aggregates of an experiment, or `None` if nobody was exposed to it.
    pub fn totals(&self, experiment: &str) -> Option<ExperimentTotals> {
        Some(self.experiment_aggregates(experiment)?.totals())
    }

    /// An experiment's sufficient statistics by name (mergeable with other partitions'), or
    /// `None` if nobody was exposed to it.
    pub fn experiment_aggregates(&self, experiment: &str) -> Option<ExperimentAggregates> {
        let id = self.names.get(experiment)?;
        Some(self.export(id, self.experiments.get(&id)?))
    }

    /// Every experiment's sufficient statistics and the counters: what a partition publishes.
    pub fn aggregates(&self) -> PartitionAggregates {
        PartitionAggregates {
            experiments: self
                .experiments
                .iter()
                .map(|(id, agg)| (self.names.name(*id).to_string(), self.export(*id, agg)))
                .collect(),
            events_applied: self.events,
            conversions_over_metric_limit: self.conversions_over_metric_limit,
        }
    }

    fn export(&self, id: u32, agg: &ExperimentAggregate) -> ExperimentAggregates {
        let name = |id: u32| self.names.name(id).to_string();
        let mut cells: Vec<CellSums> = agg
            .cells
            .iter()
            .filter(|(_, cell)| cell.users > 0)
            .map(|(key, cell)| CellSums {
                cell: CellId {
                    variant: name(key.variant),
                    segment: name(key.segment),
                    rule: key.rule,
                    personalized: key.personalized,
                    period: key.period,
                },
                users: cell.users,
                metrics: cell
                    .metrics
                    .iter()
                    .filter(|(_, m)| m.converted > 0 || m.pre_converted > 0)
                    .map(|(id, m)| (name(*id), *m))
                    .collect(),
                pairs: export_pairs(&cell.pairs, name),
            })
            .collect();
        cells.sort_by(|a, b| a.cell.cmp(&b.cell));
        let timeline = agg
            .timeline
            .iter()
            .map(|(variant, hours)| {
                let hours = hours
                    .iter()
                    .map(|(hour, d)| HourSums {
                        hour: *hour,
                        exposed: d.exposed,
                        converted: d
                            .converted
                            .iter()
                            .filter(|(_, n)| **n != 0)
                            .map(|(id, n)| (name(*id), *n))
                            .collect(),
                    })
                    .filter(|h| h.exposed != 0 || !h.converted.is_empty())
                    .collect();
                (name(*variant), hours)
            })
            .collect();
        ExperimentAggregates {
            cells,
            multi_variant_users: agg.multi_variant_users,
            late_exposures: self.late_exposures.get(&id).copied().unwrap_or(0),
            timeline,
        }
    }
}

/// The user's contribution to `experiment` given all their events.
fn contribution(
    user: &UserState,
    experiment: u32,
    window: Option<i64>,
    period_ms: Option<i64>,
) -> Option<Contribution> {
    let first = *user.exposures.iter().find(|e| e.experiment == experiment)?;
    let multi_variant = first.multi_variant;
    let share = |metric: u32| MetricShare {
        metric,
        count: 0,
        sum: 0,
        first_hour: i64::MAX,
        pre_count: 0,
        pre_sum: 0,
    };
    let mut metrics: Vec<MetricShare> = user
        .settled
        .iter()
        .filter(|s| s.experiment == experiment)
        .map(|s| MetricShare {
            count: s.count,
            sum: i128::from(s.micros),
            first_hour: s.first_hour,
            ..share(s.metric)
        })
        .collect();
    for c in &user.recent {
        if !counts_for(c.timestamp, first.timestamp, window) {
            continue;
        }
        let hour = hour_of(c.timestamp);
        match metrics.iter_mut().find(|m| m.metric == c.metric) {
            Some(entry) => {
                entry.count += 1;
                entry.sum += i128::from(c.micros);
                entry.first_hour = entry.first_hour.min(hour);
            }
            None => metrics.push(MetricShare {
                count: 1,
                sum: i128::from(c.micros),
                first_hour: hour,
                ..share(c.metric)
            }),
        }
    }
    for cov in user
        .covariates
        .iter()
        .filter(|c| c.experiment == experiment)
    {
        let entry = match metrics.iter_mut().position(|m| m.metric == cov.metric) {
            Some(i) => &mut metrics[i],
            None => {
                metrics.push(share(cov.metric));
                let last = metrics.len() - 1;
                &mut metrics[last]
            }
        };
        entry.pre_count = cov.count;
        entry.pre_sum = cov.micros;
    }
    metrics.sort_unstable_by_key(|m| m.metric);
    metrics.shrink_to_fit();
    Some(Contribution {
        cell: CellKey {
            variant: first.variant,
            segment: first.segment,
            rule: first.rule,
            personalized: first.personalized,
            period: period_ms.map_or(0, |ms| {
                u32::try_from(first.timestamp.div_euclid(ms).max(0)).unwrap_or(u32::MAX)
            }),
        },
        multi_variant,
        exposed_hour: hour_of(first.timestamp),
        metrics,
    })
}

fn add(agg: &mut ExperimentAggregate, c: &Contribution, sign: i64) {
    let cell = agg.cells.entry(c.cell).or_default();
    cell.users = cell.users.wrapping_add_signed(sign);
    if c.multi_variant {
        agg.multi_variant_users = agg.multi_variant_users.wrapping_add_signed(sign);
    }
    for share in &c.metrics {
        cell.metrics
            .entry(share.metric)
            .or_default()
            .add(&share.sums(), sign);
    }
    add_pairs(agg, c, sign);
    let hours = agg.timeline.entry(c.cell.variant).or_default();
    hours.entry(c.exposed_hour).or_default().exposed += sign;
    for share in c.metrics.iter().filter(|m| m.count > 0) {
        *hours
            .entry(share.first_hour)
            .or_default()
            .converted
            .entry(share.metric)
            .or_default() += sign;
    }
}

/// Adds (`sign` +1) or removes (−1) a contribution's cross products for the experiment's ratio
/// pairs: users who converted on both events only, as the others add zero.
fn add_pairs(agg: &mut ExperimentAggregate, c: &Contribution, sign: i64) {
    if agg.ratio_pairs.is_empty() {
        return;
    }
    let share = |metric: u32| {
        c.metrics
            .binary_search_by_key(&metric, |m| m.metric)
            .ok()
            .map(|i| &c.metrics[i])
            .filter(|m| m.count > 0)
    };
    let Some(cell) = agg.cells.get_mut(&c.cell) else {
        return;
    };
    let s = i128::from(sign);
    for &(a, b) in &agg.ratio_pairs {
        let (Some(a_share), Some(b_share)) = (share(a), share(b)) else {
            continue;
        };
        let (ca, cb) = (i128::from(a_share.count), i128::from(b_share.count));
        let p = cell.pairs.entry((a, b)).or_default();
        p.count_count += ca * cb * s;
        p.count_value += ca * b_share.sum * s;
        p.value_count += a_share.sum * cb * s;
        p.value_value += a_share.sum * b_share.sum * s;
    }
}

/// A cell's pair products by metric name, oriented and sorted by name.
fn export_pairs(
    pairs: &FxHashMap<(u32, u32), PairProducts>,
    name: impl Fn(u32) -> String,
) -> Vec<PairSums> {
    let mut out: Vec<PairSums> = pairs
        .iter()
        .filter(|(_, p)| **p != PairProducts::default())
        .map(|(&(a, b), p)| {
            let (a, b) = (name(a), name(b));
            if a <= b {
                PairSums {
                    first: a,
                    second: b,
                    count_count: p.count_count,
                    count_value: p.count_value,
                    value_count: p.value_count,
                    value_value: p.value_value,
                }
            } else {
                PairSums {
                    first: b,
                    second: a,
                    count_count: p.count_count,
                    count_value: p.value_count,
                    value_count: p.count_value,
                    value_value: p.value_value,
                }
            }
        })
        .collect();
    out.sort_by(|x, y| (&x.first, &x.second).cmp(&(&y.first, &y.second)));
    out
}

fn recompute(
    user: &mut UserState,
    experiment: u32,
    windows: &FxHashMap<u32, i64>,
    periods: &FxHashMap<u32, i64>,
    experiments: &mut FxHashMap<u32, ExperimentAggregate>,
) {
    let new = contribution(
        user,
        experiment,
        windows.get(&experiment).copied(),
        periods.get(&experiment).copied(),
    );
    let slot = user
        .contributions
        .iter()
        .position(|(e, _)| *e == experiment);
    let old = slot.map(|i| &user.contributions[i].1);
    if old == new.as_ref() {
        return;
    }
    let agg = experiments.entry(experiment).or_default();
    if let Some(old) = old {
        add(agg, old, -1);
    }
    if let Some(new) = &new {
        add(agg, new, 1);
    }
    match (slot, new) {
        (Some(i), Some(new)) => user.contributions[i].1 = new,
        (Some(i), None) => {
            user.contributions.swap_remove(i);
        }
        (None, Some(new)) => {
            user.contributions.reserve_exact(1);
            user.contributions.push((experiment, new));
        }
        (None, None) => {}
    }
}

/// Attribution for every environment, keyed by environment.
pub type ByEnvironment = HashMap<String, Attribution>;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tailor_core::events::{Conversion, Exposure};
    use tailor_core::traits::day_of;
    use user::add_covariate;

    fn exposure(id: &str, user: &str, variant: &str, ts: i64) -> Event {
        Event::Exposure(Exposure {
            id: id.into(),
            timestamp: ts,
            user_key: user.into(),
            flag: "homepage".into(),
            variant: variant.into(),
            experiment: "exp".into(),
            rule: 0,
            segment: Some("beginners".into()),
            personalized: variant != "generic",
            revision: 1,
            spec_version: 1,
        })
    }

    fn conversion(id: &str, user: &str, ts: i64, value: Option<f64>) -> Event {
        Event::Conversion(Conversion {
            id: id.into(),
            timestamp: ts,
            user_key: user.into(),
            event: "purchase".into(),
            value,
        })
    }

    fn cell<'a>(t: &'a ExperimentTotals, variant: &str) -> &'a CellTotals {
        t.cells.iter().find(|c| c.variant == variant).unwrap()
    }

    #[test]
    fn conversion_before_exposure_does_not_count() {
        let mut a = Attribution::default();
        a.apply(&conversion("c1", "u1", 100, Some(5.0)));
        a.apply(&exposure("e1", "u1", "personal", 200));
        let t = a.totals("exp").unwrap();
        assert_eq!(cell(&t, "personal").users, 1);
        // Not attributed; it is the user's CUPED covariate (before the exposure, in the lookback).
        let m = cell(&t, "personal").metrics["purchase"];
        assert_eq!(
            (m.converted, m.sum, m.pre_converted, m.pre_sum),
            (0, 0.0, 1, 5.0)
        );
        a.apply(&conversion("c2", "u1", 300, Some(7.5)));
        let t = a.totals("exp").unwrap();
        let m = cell(&t, "personal").metrics["purchase"];
        assert_eq!((m.converted, m.sum, m.sum_sq), (1, 7.5, 56.25));
        assert_eq!((m.both_converted, m.sum_products), (1, 37.5));
    }

    #[test]
    fn a_user_counts_once_in_the_variant_of_first_exposure_even_out_of_order() {
        let mut a = Attribution::default();
        a.apply(&exposure("e2", "u1", "generic", 500));
        a.apply(&conversion("c1", "u1", 400, None));
        // The earlier exposure arrives late: the user moves to it, and the conversion at 400
        // (after 300) now counts.
        a.apply(&exposure("e1", "u1", "personal", 300));
        let t = a.totals("exp").unwrap();
        assert_eq!(t.cells.len(), 1, "{t:?}");
        assert_eq!(cell(&t, "personal").users, 1);
        assert_eq!(cell(&t, "personal").metrics["purchase"].converted, 1);
        assert_eq!(t.multi_variant_users, 1);
    }

    #[test]
    fn repeated_exposures_and_conversions_count_one_user() {
        let mut a = Attribution::default();
        for i in 0..5 {
            a.apply(&exposure(&format!("e{i}"), "u1", "personal", 100 + i));
            a.apply(&conversion(&format!("c{i}"), "u1", 200 + i, Some(1.0)));
        }
        let t = a.totals("exp").unwrap();
        let c = cell(&t, "personal");
        assert_eq!(c.users, 1);
        let m = c.metrics["purchase"];
        assert_eq!((m.converted, m.sum, m.sum_sq), (1, 5.0, 25.0));
        assert_eq!(t.multi_variant_users, 0);
    }

    #[test]
    fn the_attribution_window_limits_conversions_and_can_change() {
        let mut a = Attribution::default();
        a.set_window("exp", Some(1));
        a.apply(&exposure("e1", "u1", "personal", 0));
        a.apply(&conversion("c0", "u1", 0, Some(4.0)));
        a.apply(&conversion("c1", "u1", 3_599_999, Some(1.0)));
        // Exactly one hour after the exposure: outside the half-open window.
        a.apply(&conversion("c2", "u1", 3_600_000, Some(2.0)));
        let t = a.totals("exp").unwrap();
        assert_eq!(cell(&t, "personal").metrics["purchase"].sum, 5.0);
        a.set_window("exp", None);
        let t = a.totals("exp").unwrap();
        assert_eq!(cell(&t, "personal").metrics["purchase"].sum, 7.0);
    }

    /// The plain reference: keep every exposure, then pick the first and check the variants.
    fn reference_first(all: &[ExposureRec]) -> (ExposureRec, bool) {
        let mut first = all[0];
        for e in all {
            if (e.timestamp, e.tie) < (first.timestamp, first.tie) {
                first = *e;
            }
        }
        (first, all.iter().any(|e| e.variant != first.variant))
    }

    #[test]
    fn folded_exposures_match_the_reference_in_any_order() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for _case in 0..2_000 {
            let count = 1 + next(12) as usize;
            let variants = 1 + next(3) as u32;
            let all: Vec<ExposureRec> = (0..count)
                .map(|i| ExposureRec {
                    experiment: 7,
                    variant: next(u64::from(variants)) as u32,
                    segment: next(2) as u32,
                    rule: next(2) as u16,
                    personalized: next(2) == 1,
                    multi_variant: false,
                    // Few distinct milliseconds, so ties are common.
                    timestamp: next(4) as i64,
                    tie: tie_of(&format!("e{i}-{}", next(1_000_000))),
                })
                .collect();
            let mut folded = Vec::new();
            for rec in &all {
                fold_exposure(&mut folded, *rec);
            }
            assert_eq!(folded.len(), 1, "one record per experiment");
            let (first, multi) = reference_first(&all);
            let got = folded[0];
            assert_eq!(
                (
                    got.variant,
                    got.segment,
                    got.rule,
                    got.personalized,
                    got.timestamp,
                    got.tie
                ),
                (
                    first.variant,
                    first.segment,
                    first.rule,
                    first.personalized,
                    first.timestamp,
                    first.tie
                )
            );
            assert_eq!(got.multi_variant, multi, "{all:?}");
        }
    }

    #[test]
    fn repeated_exposures_keep_one_record_per_experiment() {
        let mut a = Attribution::default();
        for i in 0..1_000 {
            a.apply(&exposure(&format!("e{i}"), "u1", "personal", 1_000 - i));
        }
        let user = a.users.get_or_insert("u1");
        assert_eq!(user.exposures.len(), 1);
        assert_eq!(user.exposures[0].timestamp, 1);
    }

    #[test]
    fn conversion_event_names_past_the_limit_are_not_attributed() {
        let mut a = Attribution::default();
        a.apply(&exposure("e1", "u1", "personal", 0));
        for m in 0..MAX_METRICS + 5 {
            a.apply(&Event::Conversion(Conversion {
                id: format!("c{m}"),
                timestamp: 1,
                user_key: "u1".into(),
                event: format!("metric-{m}"),
                value: None,
            }));
        }
        assert_eq!(a.conversions_over_metric_limit(), 5);
        let t = a.totals("exp").unwrap();
        let metrics = &cell(&t, "personal").metrics;
        assert_eq!(metrics.len(), MAX_METRICS);
        assert!(metrics.contains_key("metric-0") && !metrics.contains_key("metric-1000"));
        // A known name keeps counting.
        a.apply(&Event::Conversion(Conversion {
            id: "again".into(),
            timestamp: 2,
            user_key: "u1".into(),
            event: "metric-3".into(),
            value: None,
        }));
        assert_eq!(a.conversions_over_metric_limit(), 5);
    }

    /// A window changed part by part, with events arriving between parts, ends exactly where
    /// the one-pass `set_window` on the same events does.
    #[test]
    fn a_window_changed_part_by_part_matches_the_one_pass_change() {
        let hour = 3_600_000;
        let events = |from: u32, to: u32| -> Vec<Event> {
            (from..to)
                .flat_map(|u| {
                    let user = format!("u{u}");
                    let variant = if u % 2 == 0 { "generic" } else { "personal" };
                    vec![
                        exposure(&format!("e{u}"), &user, variant, 0),
                        conversion(&format!("c{u}"), &user, i64::from(u % 5) * hour, Some(1.0)),
                    ]
                })
                .collect()
        };
        let mut reference = Attribution::default();
        let mut sharded = Attribution::default();
        for e in events(0, 2_000) {
            reference.apply(&e);
            sharded.apply(&e);
        }
        reference.set_window("exp", Some(2));
        assert!(sharded.change_window("exp", Some(2)));
        assert!(!sharded.change_window("exp", Some(2)), "unchanged");
        let late = events(2_000, 2_100);
        for part in 0..Attribution::RECOMPUTE_PARTS {
            sharded.recompute_part(part, &["exp".to_string()]);
            if let Some(e) = late.get(part / 8) {
                if part % 8 == 0 {
                    sharded.apply(e);
                }
            }
        }
        for e in &late {
            reference.apply(e);
        }
        for e in late.iter().skip(Attribution::RECOMPUTE_PARTS / 8) {
            sharded.apply(e);
        }
        assert_eq!(sharded.totals("exp"), reference.totals("exp"));
        let converted = cell(&reference.totals("exp").unwrap(), "personal").metrics["purchase"];
        assert_eq!(converted.converted, 420, "users converting within 2 hours");
    }

    #[test]
    fn the_timeline_is_cumulative_per_variant_and_follows_late_corrections() {
        let hour = 3_600_000;
        let mut a = Attribution::default();
        a.apply(&exposure("e1", "u1", "personal", 0));
        a.apply(&exposure("e2", "u2", "personal", 2 * hour + 5));
        a.apply(&conversion("c1", "u1", 3 * hour, None));
        a.apply(&conversion("c2", "u1", 4 * hour, None));
        a.apply(&exposure("e3", "u3", "generic", hour));
        let series = a.timeline("exp", "purchase");
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].variant, "generic");
        let p: Vec<(i64, u64, u64)> = series[1]
            .points
            .iter()
            .map(|p| (p.at / hour, p.users, p.converted))
            .collect();
        assert_eq!(p, [(0, 1, 0), (2, 2, 0), (3, 2, 1)]);
        // A late, earlier exposure moves u2 to `generic` at hour 1.
        a.apply(&exposure("e0", "u2", "generic", hour));
        let series = a.timeline("exp", "purchase");
        let g: Vec<(i64, u64)> = series[0]
            .points
            .iter()
            .map(|p| (p.at / hour, p.users))
            .collect();
        assert_eq!(g, [(1, 2)]);
        let p: Vec<(i64, u64, u64)> = series[1]
            .points
            .iter()
            .map(|p| (p.at / hour, p.users, p.converted))
            .collect();
        assert_eq!(p, [(0, 1, 0), (3, 1, 1)]);
        assert!(a
            .timeline("exp", "signup")
            .iter()
            .all(|s| s.points.iter().all(|p| p.converted == 0)));
        assert!(a.timeline("nope", "purchase").is_empty());
    }

    #[test]
    fn arrival_order_does_not_change_the_totals() {
        let mut events = Vec::new();
        for u in 0..50 {
            let user = format!("u{u}");
            let v = if u % 3 == 0 { "generic" } else { "personal" };
            events.push(exposure(&format!("e{u}a"), &user, v, 1000 + u));
            if u % 7 == 0 {
                events.push(exposure(&format!("e{u}b"), &user, "personal", 900 + u));
            }
            for k in 0..(u % 4) {
                events.push(conversion(
                    &format!("c{u}-{k}"),
                    &user,
                    950 + u * 10 + k,
                    Some(0.1 * k as f64 + 0.07),
                ));
            }
        }
        let mut forward = Attribution::default();
        events.iter().for_each(|e| forward.apply(e));
        let mut backward = Attribution::default();
        events.iter().rev().for_each(|e| backward.apply(e));
        assert_eq!(forward.totals("exp"), backward.totals("exp"));
        assert_eq!(
            forward.timeline("exp", "purchase"),
            backward.timeline("exp", "purchase")
        );
        assert!(forward.totals("exp").unwrap().multi_variant_users > 0);
    }

    /// An attribution that settles nothing (the plain reference for settling).
    fn keeping_everything() -> Attribution {
        Attribution {
            settle_ms: i64::MAX,
            ..Attribution::default()
        }
    }

    /// The settling rule, literally: replay each user's latest timestamp and raise an exposure
    /// stamped more than [`SETTLE_MS`] before it.
    fn clamp_late_exposures(events: &[Event]) -> (Vec<Event>, u64) {
        let mut latest: HashMap<String, i64> = HashMap::new();
        let mut late = 0;
        let clamped = events
            .iter()
            .map(|event| {
                let (user, ts) = match event {
                    Event::Exposure(e) => (&e.user_key, e.timestamp),
                    Event::Conversion(c) => (&c.user_key, c.timestamp),
                };
                let l = latest.entry(user.clone()).or_insert(i64::MIN);
                *l = (*l).max(ts);
                let point = l.saturating_sub(SETTLE_MS);
                match event {
                    Event::Exposure(e) if e.timestamp < point => {
                        late += 1;
                        let mut e = e.clone();
                        e.timestamp = point;
                        Event::Exposure(e)
                    }
                    other => other.clone(),
                }
            })
            .collect();
        (clamped, late)
    }

    fn arb_events() -> impl proptest::strategy::Strategy<Value = Vec<Event>> {
        use proptest::prelude::*;
        let minute = 60_000i64;
        let event = (
            0u8..4,
            0u8..6,
            // Mostly forward in time, with some events far behind (late) or ahead.
            prop_oneof![
                8 => 0i64..(6 * 60 * minute),
                1 => (0i64..3 * 24 * 60).prop_map(move |m| m * minute),
            ],
            0u8..3,
            0u8..4,
        );
        prop::collection::vec(event, 1..120).prop_map(move |raw| {
            raw.into_iter()
                .enumerate()
                .map(|(i, (user, kind, ts, variant, value))| {
                    let user = format!("u{user}");
                    let id = format!("i{i}");
                    if kind < 2 {
                        let mut e = exposure(
                            &id,
                            &user,
                            ["generic", "personal", "x"][variant as usize],
                            ts,
                        );
                        if let Event::Exposure(x) = &mut e {
                            x.experiment = ["exp", "win"][kind as usize].into();
                        }
                        e
                    } else {
                        let mut c = conversion(
                            &id,
                            &user,
                            ts,
                            (value > 0).then(|| f64::from(value) * 1.25),
                        );
                        if let Event::Conversion(x) = &mut c {
                            x.event = ["purchase", "signup", "view", "purchase"][kind as usize - 2]
                                .into();
                        }
                        c
                    }
                })
                .collect()
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1_000))]

        /// Settling changes nothing but the documented rule: the aggregates, timelines and the
        /// events traits read equal those of keeping every conversion and raising each late
        /// exposure to its user's settle point.
        #[test]
        fn settling_is_exact_under_the_late_exposure_rule(events in arb_events()) {
            let mut settled = Attribution::default();
            let mut reference = keeping_everything();
            for a in [&mut settled, &mut reference] {
                a.set_window("win", Some(2));
                a.set_lookback("win", 1);
            }
            let (clamped, late) = clamp_late_exposures(&events);
            events.iter().for_each(|e| settled.apply(e));
            clamped.iter().for_each(|e| reference.apply(e));
            let mut got = settled.aggregates();
            let expected = reference.aggregates();
            let late_got: u64 = got.experiments.values_mut().map(|x| std::mem::take(&mut x.late_exposures)).sum();
            proptest::prop_assert_eq!(late_got, late);
            proptest::prop_assert_eq!(got, expected);
            // Covariates, from the plain definition over every conversion the reference kept.
            for u in 0..4 {
                let key = format!("u{u}");
                let (Some(got), Some(all)) = (settled.users.get(&key), reference.users.get(&key))
                else {
                    continue;
                };
                let mut expected: Vec<CovariateRec> = Vec::new();
                for e in &all.exposures {
                    let days = lookback_of(&reference.lookbacks, e.experiment);
                    for c in all.recent.iter().filter(|c| {
                        c.timestamp < e.timestamp
                            && day_of(c.timestamp) >= day_of(e.timestamp) - days
                    }) {
                        add_covariate(&mut expected, e.experiment, c.metric, 1, c.micros);
                    }
                }
                let mut got = got.covariates.clone();
                let key_of = |c: &CovariateRec| (c.experiment, c.metric);
                got.sort_by_key(key_of);
                expected.sort_by_key(key_of);
                proptest::prop_assert_eq!(got, expected, "covariates of {}", key);
            }
            let names = ["purchase".to_string(), "signup".to_string(), "view".to_string()];
            let now = 4 * 24 * 3_600_000;
            let defs: Vec<tailor_core::model::TraitDefinition> = [
                tailor_core::model::Aggregate::Count,
                tailor_core::model::Aggregate::Sum,
                tailor_core::model::Aggregate::DistinctDays,
                tailor_core::model::Aggregate::FirstSeen,
                tailor_core::model::Aggregate::LastSeen,
            ]
            .into_iter()
            .flat_map(|aggregate| [None, Some(1), Some(2)].map(|window_days| tailor_core::model::TraitDefinition {
                key: "t".into(),
                description: None,
                events: vec!["purchase".into(), "view".into()],
                aggregate,
                window_days,
            }))
            .collect();
            for u in 0..4 {
                let key = format!("u{u}");
                proptest::prop_assert_eq!(
                    tailor_core::traits::compute(&defs, settled.user_events(&key, &names), now),
                    tailor_core::traits::compute(&defs, reference.user_events(&key, &names), now)
                );
            }
        }
    }

    /// The tie-break must not change with a dependency upgrade. Cross-checked with Python's
    /// `mmh3`: `(mmh3.hash(id, 0, signed=False) << 32) | mmh3.hash(id, 1, signed=False)`.
    #[test]
    fn the_tie_break_is_murmur3_of_the_event_id() {
        assert_eq!(tie_of(""), 0x0000_0000_514e_28b7);
        assert_eq!(tie_of("x"), 0x3e9a_9b1b_04ce_aa1e);
        assert_eq!(tie_of("e1"), 0x203e_5145_447f_72a1);
        assert_eq!(tie_of("e2"), 0xf08e_5928_f3a0_b973);
        assert_eq!(
            tie_of("0190a5b2-7c3e-7d4f-8a1b-2c3d4e5f6a7b"),
            0x09bc_3e79_68c5_1492
        );
    }

    #[test]
    fn same_millisecond_exposures_keep_the_one_with_the_smaller_tie() {
        // tie_of("e1") < tie_of("e2") (pinned above), so e1's variant is first in either order.
        for order in [["e1", "e2"], ["e2", "e1"]] {
            let mut a = Attribution::default();
            for id in order {
                let variant = if id == "e1" { "personal" } else { "generic" };
                a.apply(&exposure(id, "u1", variant, 500));
            }
            let t = a.totals("exp").unwrap();
            assert_eq!(t.cells.len(), 1, "{order:?}: {t:?}");
            assert_eq!(cell(&t, "personal").users, 1, "{order:?}");
            assert_eq!(t.multi_variant_users, 1);
        }
    }
}
