//! One user's attribution state: their first exposures, their recent conversions one by one,
//! older ones settled into sums, and their CUPED covariates (the contract is in `super`'s docs,
//! "Settling" and "Covariates").

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use tailor_core::model::DEFAULT_CUPED_LOOKBACK_DAYS as DEFAULT_LOOKBACK_DAYS;
use tailor_core::traits::day_of;

use super::{hour_of, Contribution, ExposureRec};

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(super) struct ConversionRec {
    pub(super) metric: u32,
    pub(super) timestamp: i64,
    pub(super) micros: i64,
}

/// A user's settled conversions of one metric on one UTC day (the day of `first`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(super) struct DayRec {
    pub(super) metric: u32,
    pub(super) count: u32,
    pub(super) micros: i64,
    pub(super) first: i64,
    pub(super) last: i64,
}

/// A user's conversions of one metric in the CUPED lookback before their first exposure to one
/// experiment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(super) struct CovariateRec {
    pub(super) experiment: u32,
    pub(super) metric: u32,
    pub(super) count: u32,
    pub(super) micros: i64,
}

/// A user's settled conversions of one metric attributed to one experiment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(super) struct SettledRec {
    pub(super) experiment: u32,
    pub(super) metric: u32,
    pub(super) count: u32,
    pub(super) micros: i64,
    /// Hour of the earliest.
    pub(super) first_hour: i64,
}

#[derive(Debug)]
pub(super) struct UserState {
    /// The settle point (module docs): conversions before it are folded into `days` and
    /// `settled`, exposures before it count from it.
    pub(super) settle_point: i64,
    /// First exposure per experiment.
    pub(super) exposures: Vec<ExposureRec>,
    /// Conversions at or after the settle point, in timestamp order.
    pub(super) recent: Vec<ConversionRec>,
    /// Settled conversions per metric and day.
    pub(super) days: Vec<DayRec>,
    /// Settled conversions per experiment and metric, as attributed.
    pub(super) settled: Vec<SettledRec>,
    /// CUPED covariates per experiment and metric (module docs, "Covariates").
    pub(super) covariates: Vec<CovariateRec>,
    pub(super) contributions: Vec<(u32, Contribution)>,
}

impl Default for UserState {
    fn default() -> Self {
        UserState {
            settle_point: i64::MIN,
            exposures: Vec::new(),
            recent: Vec::new(),
            days: Vec::new(),
            settled: Vec::new(),
            covariates: Vec::new(),
            contributions: Vec::new(),
        }
    }
}

impl UserState {
    /// Moves the settle point to `timestamp - settle_ms` if that is later, and settles the
    /// conversions it passes.
    pub(super) fn advance(
        &mut self,
        timestamp: i64,
        settle_ms: i64,
        windows: &FxHashMap<u32, i64>,
    ) {
        self.settle_point = self.settle_point.max(timestamp.saturating_sub(settle_ms));
        let n = self
            .recent
            .partition_point(|c| c.timestamp < self.settle_point);
        if n == 0 {
            return;
        }
        let mut recent = std::mem::take(&mut self.recent);
        for c in recent.iter().take(n) {
            self.settle(*c, windows);
        }
        recent.drain(..n);
        self.recent = recent;
        if self.recent.capacity() > self.recent.len() + self.recent.len() / 2 + 4 {
            self.recent.shrink_to_fit();
        }
    }

    /// Folds one conversion into the day sums and into each experiment whose window holds it.
    fn settle(&mut self, c: ConversionRec, windows: &FxHashMap<u32, i64>) {
        let day = day_of(c.timestamp);
        // From the newest: conversions settle in about time order, so their run is near the end.
        match self
            .days
            .iter_mut()
            .rev()
            .find(|d| d.metric == c.metric && day_of(d.first) == day)
        {
            Some(d) => {
                d.count = d.count.saturating_add(1);
                d.micros = d.micros.saturating_add(c.micros);
                d.first = d.first.min(c.timestamp);
                d.last = d.last.max(c.timestamp);
            }
            None => {
                self.days.reserve_exact(1);
                self.days.push(DayRec {
                    metric: c.metric,
                    count: 1,
                    micros: c.micros,
                    first: c.timestamp,
                    last: c.timestamp,
                });
            }
        }
        for e in &self.exposures {
            if !counts_for(
                c.timestamp,
                e.timestamp,
                windows.get(&e.experiment).copied(),
            ) {
                continue;
            }
            let hour = hour_of(c.timestamp);
            match self
                .settled
                .iter_mut()
                .find(|s| s.experiment == e.experiment && s.metric == c.metric)
            {
                Some(s) => {
                    s.count = s.count.saturating_add(1);
                    s.micros = s.micros.saturating_add(c.micros);
                    s.first_hour = s.first_hour.min(hour);
                }
                None => {
                    self.settled.reserve_exact(1);
                    self.settled.push(SettledRec {
                        experiment: e.experiment,
                        metric: c.metric,
                        count: 1,
                        micros: c.micros,
                        first_hour: hour,
                    });
                }
            }
        }
    }

    /// Recomputes the covariates of `experiment` for a first exposure at `first` (module docs,
    /// "Covariates"): exact, because every settled conversion is before the settle point, which
    /// a first exposure never precedes.
    pub(super) fn compute_covariates(&mut self, experiment: u32, first: i64, lookback_days: i64) {
        self.covariates.retain(|c| c.experiment != experiment);
        for d in self
            .days
            .iter()
            .filter(|d| in_lookback(d.first, first, lookback_days))
        {
            add_covariate(
                &mut self.covariates,
                experiment,
                d.metric,
                d.count,
                d.micros,
            );
        }
        for c in self
            .recent
            .iter()
            .filter(|c| in_lookback(c.timestamp, first, lookback_days))
        {
            add_covariate(&mut self.covariates, experiment, c.metric, 1, c.micros);
        }
    }

    /// Adds a newly arrived conversion to the covariates of every experiment whose lookback
    /// holds it (a conversion arriving after the exposure it precedes).
    pub(super) fn note_covariate(&mut self, c: ConversionRec, lookbacks: &FxHashMap<u32, i64>) {
        for e in &self.exposures {
            if in_lookback(
                c.timestamp,
                e.timestamp,
                lookback_of(lookbacks, e.experiment),
            ) {
                add_covariate(&mut self.covariates, e.experiment, c.metric, 1, c.micros);
            }
        }
    }

    /// Inserts a conversion into `recent`, keeping timestamp order. Grows by a quarter, not
    /// double: this vector is most of an active user's memory.
    pub(super) fn insert_recent(&mut self, rec: ConversionRec) {
        let len = self.recent.len();
        if len == self.recent.capacity() {
            self.recent.reserve_exact((len / 4).max(2));
        }
        let at = self
            .recent
            .partition_point(|c| c.timestamp <= rec.timestamp);
        self.recent.insert(at, rec);
    }
}

/// Whether a conversion at `ts` is in the CUPED lookback of a first exposure at `first`: before
/// it, on its UTC day or one of the `days` whole days before (module docs, "Covariates").
fn in_lookback(ts: i64, first: i64, days: i64) -> bool {
    ts < first && day_of(ts) >= day_of(first) - days
}

/// The lookback of an experiment, days ([`DEFAULT_LOOKBACK_DAYS`] unless configured).
pub(super) fn lookback_of(lookbacks: &FxHashMap<u32, i64>, experiment: u32) -> i64 {
    lookbacks
        .get(&experiment)
        .copied()
        .unwrap_or(i64::from(DEFAULT_LOOKBACK_DAYS))
}

pub(super) fn add_covariate(
    covariates: &mut Vec<CovariateRec>,
    experiment: u32,
    metric: u32,
    count: u32,
    micros: i64,
) {
    match covariates
        .iter_mut()
        .find(|c| c.experiment == experiment && c.metric == metric)
    {
        Some(c) => {
            c.count = c.count.saturating_add(count);
            c.micros = c.micros.saturating_add(micros);
        }
        None => {
            covariates.reserve_exact(1);
            covariates.push(CovariateRec {
                experiment,
                metric,
                count,
                micros,
            });
        }
    }
}

/// Whether a conversion at `ts` counts for a first exposure at `first` with this window
/// (half-open: `[first, first + window)`).
pub(super) fn counts_for(ts: i64, first: i64, window: Option<i64>) -> bool {
    ts >= first && window.is_none_or(|w| ts < first.saturating_add(w))
}

/// The first exposure's time of `experiment`, if the user has one.
pub(super) fn first_of(exposures: &[ExposureRec], experiment: u32) -> Option<i64> {
    exposures
        .iter()
        .find(|e| e.experiment == experiment)
        .map(|e| e.timestamp)
}

/// Folds an exposure into the user's one record per experiment: the first exposure (earliest;
/// of the same millisecond, the smaller tie) and whether two variants were seen. That is all a
/// contribution needs of a user's exposures, so repeated exposures cost no memory, in any
/// arrival order: "two variants seen" becomes true exactly when an exposure's variant differs
/// from the first's so far, since until then every exposure had that one variant.
pub(super) fn fold_exposure(exposures: &mut Vec<ExposureRec>, rec: ExposureRec) {
    match exposures
        .iter_mut()
        .find(|e| e.experiment == rec.experiment)
    {
        Some(first) => {
            let multi_variant = first.multi_variant || first.variant != rec.variant;
            if (rec.timestamp, rec.tie) < (first.timestamp, first.tie) {
                *first = rec;
            }
            first.multi_variant = multi_variant;
        }
        None => {
            // Exact capacities throughout: a user has a handful of experiments, and Vec's
            // default growth (to 4) tripled the memory per user.
            exposures.reserve_exact(1);
            exposures.push(rec);
        }
    }
}
