//! Computed traits: the contract that turns one user's events into trait values "as of now".
//!
//! A trait ([`TraitDefinition`]) aggregates the user's conversion events (`track`) whose name is
//! one of its `events`. With `now` and an event time `ts`, both Unix milliseconds:
//!
//! - an event is **counted** when `ts <= now` (events later than `now` are not counted yet);
//! - with `window_days: N` it must also be in the window: `now - N·86,400,000 < ts`, so an event
//!   exactly `N` days old has just left it; without a window every counted event is in;
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

/// One of the user's events as traits read it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TraitEvent<'a> {
    /// The event name.
    pub name: &'a str,
    /// When, Unix milliseconds.
    pub timestamp: i64,
    /// The value in micro-units (0 without a value).
    pub micros: i64,
}

/// A value in micro-units, rounded as the collector rounds it.
pub fn micros_of(value: Option<f64>) -> i64 {
    value.map_or(0, |v| (v * MICROS).round() as i64)
}

/// The UTC day of a timestamp.
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// Whether `ts` is counted at `now` for a trait with this window (module docs).
#[inline]
pub fn in_window(ts: i64, now: i64, window_days: Option<u32>) -> bool {
    ts <= now && window_days.is_none_or(|days| now.saturating_sub(i64::from(days) * DAY_MS) < ts)
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

/// Every definition's value for one user's events at `now`, in definition order. The events may
/// come in any order.
pub fn compute<'a>(
    definitions: &[TraitDefinition],
    events: impl IntoIterator<Item = TraitEvent<'a>>,
    now: i64,
) -> Vec<Computed> {
    let mut acc = vec![Accumulator::default(); definitions.len()];
    for event in events {
        if event.timestamp > now {
            continue;
        }
        for (def, a) in definitions.iter().zip(acc.iter_mut()) {
            if !def.events.iter().any(|e| e == event.name) {
                continue;
            }
            let ts = event.timestamp;
            a.last_any = Some(a.last_any.map_or(ts, |l| l.max(ts)));
            if !in_window(ts, now, def.window_days) {
                continue;
            }
            a.count += 1;
            a.micros += i128::from(event.micros);
            a.first = Some(a.first.map_or(ts, |f| f.min(ts)));
            a.last = Some(a.last.map_or(ts, |l| l.max(ts)));
            if def.aggregate == Aggregate::DistinctDays {
                a.days.push(day_of(ts));
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

    fn ev(timestamp: i64, value: f64) -> TraitEvent<'static> {
        TraitEvent {
            name: "purchase",
            timestamp,
            micros: micros_of(Some(value)),
        }
    }

    #[test]
    fn window_edges_are_half_open() {
        let now = 100 * DAY_MS;
        let d = [def(Aggregate::Count, Some(30))];
        let exactly_30_days = now - 30 * DAY_MS;
        assert_eq!(
            compute(&d, [ev(exactly_30_days, 1.0)], now)[0].value,
            Some(TraitValue::Number(0.0))
        );
        assert_eq!(
            compute(&d, [ev(exactly_30_days + 1, 1.0)], now)[0].value,
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
