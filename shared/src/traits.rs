//! Computed traits: the contract that turns one user's events into trait values "as of now".
//!
//! A trait ([`TraitDefinition`]) aggregates the user's conversion events (`track`) whose name is
//! one of its `events`. With `now` and an event time `ts`, both Unix milliseconds:
//!
//! - an event is **counted** when `ts <= now` (events later than `now` are not counted yet);
//! - with `window_days: N` it must also be in the window, which is whole UTC days: the `N` days
//!   ending with today, `day(now) - N < day(ts)` where `day(ms) = floor(ms / 86,400,000)`. So
//!   `window_days: 1` is today so far, and an event moves out of a 30-day window at the midnight
//!   (UTC) that starts its 31st day; without a window every counted event is in. Whole days are
//!   what the collector can keep for every user at a fixed cost (it folds settled events into one
//!   run per name and day, `server::attribution`), and they give every instance the same answer;
//! - `count`: the number of events in (each event id once: the store drops repeated ids);
//! - `sum`: the sum of their values, each rounded to micro-units (10⁻⁶) as the results are, an
//!   event without a value adding 0;
//! - `distinct_days`: the number of distinct UTC days (`floor(ts / 86,400,000)`) among them;
//! - `first_seen` / `last_seen`: the earliest / latest `ts` among them, a datetime;
//! - `days_since_first` / `days_since_last`: `floor((now - ts) / 86,400,000)` of the earliest /
//!   latest, whole days (0 within the first 24 hours);
//! - a user with no event in has no value for `first_seen`, `last_seen` and `days_since_*` (the
//!   trait is missing, like a missing attribute: only `neq`/`not_in` match) and 0 for `count`,
//!   `sum` and `distinct_days`.
//!
//! [`compute`] is the one implementation the server (every instance, after restarts and
//! rebuilds) and the SDK's read-your-writes update ([`crate::profile::Profile::record`]) agree
//! with; `shared/tests/traits.rs` checks it against a plain reference.

use crate::model::{Aggregate, TraitDefinition};

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;
/// Longest window a trait may have, in days (ten years).
pub const MAX_WINDOW_DAYS: u32 = 3_650;
/// Micro-units per unit of value: values are summed as integers, as in the results.
pub const MICROS: f64 = 1_000_000.0;

/// A computed trait's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TraitValue {
    /// `count`, `sum`, `distinct_days`, `days_since_*`.
    Number(f64),
    /// `first_seen`, `last_seen`: Unix milliseconds.
    Datetime(i64),
}

/// Some of a user's events with one name on one UTC day, as traits read them: a single event
/// ([`EventRun::one`]), or several folded together (the collector folds a user's settled events
/// into one run per name and day). Every aggregate is exact over runs: they keep the count, the
/// sum, and the first and last time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventRun<'a> {
    /// The event name.
    pub name: &'a str,
    /// The earliest event's time, Unix milliseconds.
    pub first: i64,
    /// The latest event's time, on the same UTC day as `first`.
    pub last: i64,
    /// How many events.
    pub count: u64,
    /// Their values' sum in micro-units (an event without a value adds 0).
    pub micros: i64,
}

impl<'a> EventRun<'a> {
    /// A single event.
    pub fn one(name: &'a str, timestamp: i64, micros: i64) -> EventRun<'a> {
        EventRun {
            name,
            first: timestamp,
            last: timestamp,
            count: 1,
            micros,
        }
    }
}

/// An [`EventRun`] that owns its name (copied out of the collector, or decoded from a record).
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedRun {
    /// The event name.
    pub name: String,
    /// As [`EventRun::first`].
    pub first: i64,
    /// As [`EventRun::last`].
    pub last: i64,
    /// As [`EventRun::count`].
    pub count: u64,
    /// As [`EventRun::micros`].
    pub micros: i64,
}

impl OwnedRun {
    /// The run, borrowing the name.
    pub fn run(&self) -> EventRun<'_> {
        EventRun {
            name: &self.name,
            first: self.first,
            last: self.last,
            count: self.count,
            micros: self.micros,
        }
    }
}

impl From<EventRun<'_>> for OwnedRun {
    fn from(r: EventRun<'_>) -> OwnedRun {
        OwnedRun {
            name: r.name.to_string(),
            first: r.first,
            last: r.last,
            count: r.count,
            micros: r.micros,
        }
    }
}

/// A value in micro-units, rounded as the collector rounds it.
pub fn micros_of(value: Option<f64>) -> i64 {
    value.map_or(0, |v| (v * MICROS).round() as i64)
}

/// The UTC day of a timestamp.
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// Whether an event at `ts` (not after `now`) is in a window of `window_days` at `now`: on one of
/// the window's whole UTC days (module docs).
#[inline]
pub fn in_window(ts: i64, now: i64, window_days: Option<u32>) -> bool {
    window_days.is_none_or(|days| day_of(now) - i64::from(days) < day_of(ts))
}

/// Running state of one trait over a pass of events.
#[derive(Debug, Default, Clone)]
struct Accumulator {
    count: u64,
    micros: i128,
    first: Option<i64>,
    last: Option<i64>,
    /// Latest counted event regardless of the window (for read-your-writes).
    last_any: Option<i64>,
    days: Vec<i64>,
}

/// One trait's value and the time of the latest counted event it reads (ignoring its window):
/// what a [`crate::profile::Profile`] keeps per trait.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Computed {
    /// The value; `None` when the trait is missing (no event for a datetime or days-since trait).
    pub value: Option<TraitValue>,
    /// The latest counted event's time (window aside), if any.
    pub last_event: Option<i64>,
}

/// Every definition's value for one user's events at `now`, in definition order. The runs may
/// come in any order; a run counts when its last event is at or before `now` (the collector only
/// folds events older than `now`, so a folded run never straddles it).
pub fn compute<'a>(
    definitions: &[TraitDefinition],
    runs: impl IntoIterator<Item = EventRun<'a>>,
    now: i64,
) -> Vec<Computed> {
    let mut acc = vec![Accumulator::default(); definitions.len()];
    for run in runs {
        if run.last > now {
            continue;
        }
        for (def, a) in definitions.iter().zip(acc.iter_mut()) {
            if !def.events.iter().any(|e| e == run.name) {
                continue;
            }
            a.last_any = Some(a.last_any.map_or(run.last, |l| l.max(run.last)));
            if !in_window(run.first, now, def.window_days) {
                continue;
            }
            a.count += run.count;
            a.micros += i128::from(run.micros);
            a.first = Some(a.first.map_or(run.first, |f| f.min(run.first)));
            a.last = Some(a.last.map_or(run.last, |l| l.max(run.last)));
            if def.aggregate == Aggregate::DistinctDays {
                a.days.push(day_of(run.first));
            }
        }
    }
    definitions
        .iter()
        .zip(acc)
        .map(|(def, mut a)| Computed {
            value: finish(def.aggregate, &mut a, now),
            last_event: a.last_any,
        })
        .collect()
}

fn finish(aggregate: Aggregate, a: &mut Accumulator, now: i64) -> Option<TraitValue> {
    let days_since = |ts: i64| TraitValue::Number(now.saturating_sub(ts).div_euclid(DAY_MS) as f64);
    match aggregate {
        Aggregate::Count => Some(TraitValue::Number(a.count as f64)),
        Aggregate::Sum => Some(TraitValue::Number(a.micros as f64 / MICROS)),
        Aggregate::DistinctDays => {
            a.days.sort_unstable();
            a.days.dedup();
            Some(TraitValue::Number(a.days.len() as f64))
        }
        Aggregate::FirstSeen => a.first.map(TraitValue::Datetime),
        Aggregate::LastSeen => a.last.map(TraitValue::Datetime),
        Aggregate::DaysSinceFirst => a.first.map(days_since),
        Aggregate::DaysSinceLast => a.last.map(days_since),
    }
}

/// The event names any of `definitions` reads, sorted and without repeats.
pub fn event_names(definitions: &[TraitDefinition]) -> Vec<&str> {
    let mut names: Vec<&str> = definitions
        .iter()
        .flat_map(|d| d.events.iter().map(String::as_str))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(aggregate: Aggregate, window_days: Option<u32>) -> TraitDefinition {
        TraitDefinition {
            key: "t".into(),
            description: None,
            events: vec!["purchase".into()],
            aggregate,
            window_days,
        }
    }

    fn ev(timestamp: i64, value: f64) -> EventRun<'static> {
        EventRun::one("purchase", timestamp, micros_of(Some(value)))
    }

    #[test]
    fn windows_are_whole_utc_days() {
        // Noon on day 100: a 30-day window is days 71..=100.
        let now = 100 * DAY_MS + DAY_MS / 2;
        let d = [def(Aggregate::Count, Some(30))];
        let last_ms_of_day_70 = 71 * DAY_MS - 1;
        assert_eq!(
            compute(&d, [ev(last_ms_of_day_70, 1.0)], now)[0].value,
            Some(TraitValue::Number(0.0))
        );
        assert_eq!(
            compute(&d, [ev(last_ms_of_day_70 + 1, 1.0)], now)[0].value,
            Some(TraitValue::Number(1.0))
        );
        // `window_days: 1` is today so far.
        let today = [def(Aggregate::Count, Some(1))];
        assert_eq!(
            compute(
                &today,
                [ev(100 * DAY_MS - 1, 1.0), ev(100 * DAY_MS, 1.0)],
                now
            )[0]
            .value,
            Some(TraitValue::Number(1.0))
        );
        assert_eq!(
            compute(&d, [ev(now, 1.0), ev(now + 1, 1.0)], now)[0].value,
            Some(TraitValue::Number(1.0))
        );
    }

    #[test]
    fn missing_and_zero() {
        let now = 10 * DAY_MS;
        for (aggregate, expected) in [
            (Aggregate::Count, Some(TraitValue::Number(0.0))),
            (Aggregate::Sum, Some(TraitValue::Number(0.0))),
            (Aggregate::DistinctDays, Some(TraitValue::Number(0.0))),
            (Aggregate::FirstSeen, None),
            (Aggregate::LastSeen, None),
            (Aggregate::DaysSinceFirst, None),
            (Aggregate::DaysSinceLast, None),
        ] {
            assert_eq!(compute(&[def(aggregate, None)], [], now)[0].value, expected);
        }
    }

    #[test]
    fn days_since_floors() {
        let now = 10 * DAY_MS + 5;
        let d = [def(Aggregate::DaysSinceLast, None)];
        assert_eq!(
            compute(&d, [ev(now - DAY_MS + 1, 0.0)], now)[0].value,
            Some(TraitValue::Number(0.0))
        );
        assert_eq!(
            compute(&d, [ev(now - DAY_MS, 0.0)], now)[0].value,
            Some(TraitValue::Number(1.0))
        );
    }
}
