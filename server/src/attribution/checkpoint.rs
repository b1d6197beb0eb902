//! Checkpoints of an attribution: every user's settle point, first exposures, recent and settled
//! conversions (`super`, "Settling"), the interned names and the counters, in a compact binary
//! form (postcard), so a restart or a new owner loads a partition from its checkpoint plus the
//! events after it instead of its whole history.
//!
//! Aggregates are not stored: loading recomputes each user's contributions with the same code a
//! live event runs (settled sums as credited, recent conversions under the windows at load time).
//!
//! Format: a postcard varint [`FORMAT`], then the body. Format 1 (every conversion kept, before
//! settling) still loads: its users are settled as they load. A checkpoint of any other format is
//! refused with [`CheckpointError::Format`] rather than misread.

use serde::ser::SerializeSeq;
use serde::{Deserialize, Serialize, Serializer};

use super::user::{DayRec, SettledRec};
use super::{
    lookback_of, recompute, Attribution, ConversionRec, CovariateRec, ExperimentTerms, ExposureRec,
    Names, UserState, Users,
};

/// The checkpoint format written by this build.
pub const FORMAT: u32 = 2;
/// The format before settling, which this build still reads.
const FORMAT_1: u32 = 1;

/// A checkpoint that cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Written in a format this build does not read.
    #[error("checkpoint format {found} is not the format {FORMAT} this build reads")]
    Format {
        /// The format found.
        found: u32,
    },
    /// The bytes are not a checkpoint.
    #[error("decoding a checkpoint")]
    Decode(#[source] postcard::Error),
    /// Encoding failed.
    #[error("encoding a checkpoint")]
    Encode(#[source] postcard::Error),
}

#[derive(Serialize)]
struct Body<'a> {
    names: &'a [Box<str>],
    metrics: Vec<u32>,
    rule_labels: &'a [u32],
    events: u64,
    conversions_over_metric_limit: u64,
    late_exposures: Vec<(u32, u64)>,
    users: UsersOut<'a>,
}

struct UsersOut<'a>(&'a Users);

impl Serialize for UsersOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let count = self.0.shards.iter().map(|t| t.len()).sum();
        let mut seq = serializer.serialize_seq(Some(count))?;
        for entry in self.0.shards.iter().flat_map(|t| t.iter()) {
            let user = &entry.state;
            seq.serialize_element(&(
                &*entry.key,
                user.settle_point,
                &user.exposures,
                &user.recent,
                &user.days,
                &user.settled,
                &user.covariates,
            ))?;
        }
        seq.end()
    }
}

/// A user as format 2 stores them.
type UserIn = (
    Box<str>,
    i64,
    Vec<ExposureRec>,
    Vec<ConversionRec>,
    Vec<DayRec>,
    Vec<SettledRec>,
    Vec<CovariateRec>,
);

#[derive(Deserialize)]
struct BodyIn {
    names: Vec<Box<str>>,
    metrics: Vec<u32>,
    rule_labels: Vec<u32>,
    events: u64,
    conversions_over_metric_limit: u64,
    late_exposures: Vec<(u32, u64)>,
    users: Vec<UserIn>,
}

/// Format 1: every conversion of every user.
#[derive(Deserialize)]
struct BodyInV1 {
    names: Vec<Box<str>>,
    metrics: Vec<u32>,
    rule_labels: Vec<u32>,
    events: u64,
    conversions_over_metric_limit: u64,
    users: Vec<(Box<str>, Vec<ExposureRec>, Vec<ConversionRec>)>,
}

impl From<BodyInV1> for BodyIn {
    /// Settles each user as the events would have: the settle point trails their latest
    /// conversion or exposure by `SETTLE_MS`.
    fn from(v1: BodyInV1) -> BodyIn {
        let users = v1
            .users
            .into_iter()
            .map(|(key, exposures, mut conversions)| {
                conversions.sort_by_key(|c| c.timestamp);
                (
                    key,
                    i64::MIN,
                    exposures,
                    conversions,
                    Vec::new(),
                    Vec::new(),
                    Vec::new(),
                )
            })
            .collect();
        BodyIn {
            names: v1.names,
            metrics: v1.metrics,
            rule_labels: v1.rule_labels,
            events: v1.events,
            conversions_over_metric_limit: v1.conversions_over_metric_limit,
            late_exposures: Vec::new(),
            users,
        }
    }
}

impl Attribution {
    /// The attribution as checkpoint bytes.
    pub fn checkpoint(&self) -> Result<Vec<u8>, CheckpointError> {
        let mut metrics: Vec<u32> = self.metrics.iter().copied().collect();
        metrics.sort_unstable();
        let mut late_exposures: Vec<(u32, u64)> =
            self.late_exposures.iter().map(|(e, n)| (*e, *n)).collect();
        late_exposures.sort_unstable();
        let body = Body {
            names: &self.names.names,
            metrics,
            rule_labels: &self.rule_labels,
            events: self.events,
            conversions_over_metric_limit: self.conversions_over_metric_limit,
            late_exposures,
            users: UsersOut(&self.users),
        };
        let mut out = postcard::to_stdvec(&FORMAT).map_err(CheckpointError::Encode)?;
        out.extend(postcard::to_stdvec(&body).map_err(CheckpointError::Encode)?);
        Ok(out)
    }

    /// Loads a checkpoint with the experiments' current terms (attribution windows, `None`:
    /// unlimited), recomputing every user's contributions under them.
    pub fn from_checkpoint(
        bytes: &[u8],
        terms: &[ExperimentTerms],
    ) -> Result<Attribution, CheckpointError> {
        let (found, body) =
            postcard::take_from_bytes::<u32>(bytes).map_err(CheckpointError::Decode)?;
        // Format 1 kept every conversion: its users' covariates are computed from them.
        let from_v1 = found == FORMAT_1;
        let body: BodyIn = match found {
            FORMAT => postcard::from_bytes(body).map_err(CheckpointError::Decode)?,
            FORMAT_1 => postcard::from_bytes::<BodyInV1>(body)
                .map_err(CheckpointError::Decode)?
                .into(),
            _ => return Err(CheckpointError::Format { found }),
        };
        let mut attribution = Attribution {
            names: Names {
                ids: body
                    .names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (n.clone(), i as u32))
                    .collect(),
                names: body.names,
            },
            metrics: body.metrics.into_iter().collect(),
            rule_labels: body.rule_labels,
            events: body.events,
            conversions_over_metric_limit: body.conversions_over_metric_limit,
            late_exposures: body.late_exposures.into_iter().collect(),
            ..Attribution::default()
        };
        for t in terms {
            attribution.change_window(&t.experiment, t.window_hours);
            attribution.change_period(&t.experiment, t.period_ms);
            attribution.set_lookback(&t.experiment, t.lookback_days);
            attribution.set_ratio_pairs(&t.experiment, &t.ratio_pairs);
        }
        for (key, settle_point, exposures, recent, days, settled, covariates) in body.users {
            let user = attribution.users.get_or_insert(&key);
            *user = UserState {
                settle_point,
                exposures,
                recent,
                days,
                settled,
                covariates,
                contributions: Vec::new(),
            };
            if from_v1 {
                let firsts: Vec<(u32, i64)> = user
                    .exposures
                    .iter()
                    .map(|e| (e.experiment, e.timestamp))
                    .collect();
                for (experiment, first) in firsts {
                    let days = lookback_of(&attribution.lookbacks, experiment);
                    user.compute_covariates(experiment, first, days);
                }
            }
            // Format 1's users settle here (a no-op for format 2's).
            let latest = user
                .recent
                .iter()
                .map(|c| c.timestamp)
                .chain(user.exposures.iter().map(|e| e.timestamp))
                .max();
            if let Some(latest) = latest {
                user.advance(latest, attribution.settle_ms, &attribution.windows);
            }
            let experiments: Vec<u32> = user.exposures.iter().map(|e| e.experiment).collect();
            for experiment in experiments {
                recompute(
                    user,
                    experiment,
                    &attribution.windows,
                    &attribution.periods,
                    &mut attribution.experiments,
                );
            }
        }
        Ok(attribution)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tailor_core::events::{Conversion, Event, Exposure};

    use super::*;

    fn terms(list: &[(&str, Option<u32>)]) -> Vec<ExperimentTerms> {
        list.iter()
            .map(|(experiment, window_hours)| ExperimentTerms {
                experiment: experiment.to_string(),
                window_hours: *window_hours,
                lookback_days: 14,
                ratio_pairs: Vec::new(),
                period_ms: None,
            })
            .collect()
    }

    fn events() -> Vec<Event> {
        let mut events = Vec::new();
        for u in 0..500i64 {
            let user_key = format!("u{u}");
            for (i, variant) in ["a", "b"].iter().enumerate() {
                events.push(Event::Exposure(Exposure {
                    id: format!("e{u}-{i}"),
                    timestamp: u * 1_000 + i as i64 * 7_000_000,
                    user_key: user_key.clone(),
                    flag: "f".into(),
                    variant: if u % 7 == 0 { variant } else { "a" }.to_string(),
                    experiment: if u % 3 == 0 { "x" } else { "y" }.into(),
                    rule: (u % 2) as usize,
                    segment: (u % 5 == 0).then(|| "s".to_string()),
                    personalized: u % 4 != 0,
                    revision: 1,
                    spec_version: 1,
                }));
            }
            if u % 3 == 0 {
                // Hours after the rest: it settles the user's earlier conversions.
                events.push(Event::Conversion(Conversion {
                    id: format!("d{u}"),
                    timestamp: u * 1_000 + 5 * 3_600_000,
                    user_key: user_key.clone(),
                    event: "view".into(),
                    value: None,
                }));
            }
            events.push(Event::Conversion(Conversion {
                id: format!("c{u}"),
                timestamp: u * 1_000 + 3_600_000 * (u % 4),
                user_key,
                event: if u % 2 == 0 { "buy" } else { "view" }.into(),
                value: Some(u as f64 / 3.0),
            }));
        }
        events
    }

    /// A checkpoint loads to the same aggregates, and taking one and applying the rest gives
    /// the aggregates of applying everything.
    #[test]
    fn a_checkpoint_plus_the_rest_equals_the_whole() {
        let events = events();
        let windows = terms(&[("x", Some(2)), ("y", None)]);
        let mut whole = Attribution::default();
        whole.set_terms(&windows);
        for event in &events {
            whole.apply(event);
        }
        let mut first = Attribution::default();
        first.set_terms(&windows);
        let (head, tail) = events.split_at(events.len() / 2);
        for event in head {
            first.apply(event);
        }
        let bytes = first.checkpoint().unwrap();
        let mut loaded = Attribution::from_checkpoint(&bytes, &windows).unwrap();
        assert_eq!(loaded.aggregates(), first.aggregates());
        for event in tail {
            loaded.apply(event);
        }
        assert_eq!(loaded.aggregates(), whole.aggregates());
        assert_eq!(loaded.events_applied(), events.len() as u64);
    }

    /// Format 1 (every conversion, written before settling) loads to the numbers of applying
    /// the same events now: its users settle as they load.
    #[test]
    fn a_format_1_checkpoint_loads_settled() {
        #[derive(Serialize)]
        struct V1<'a> {
            names: &'a [Box<str>],
            metrics: Vec<u32>,
            rule_labels: &'a [u32],
            events: u64,
            conversions_over_metric_limit: u64,
            users: Vec<(&'a str, &'a [ExposureRec], &'a [ConversionRec])>,
        }
        let events = events();
        let windows = terms(&[("x", Some(2)), ("y", None)]);
        let mut kept = Attribution {
            settle_ms: i64::MAX,
            ..Attribution::default()
        };
        let mut settled = Attribution::default();
        for a in [&mut kept, &mut settled] {
            a.set_terms(&windows);
            for event in &events {
                a.apply(event);
            }
        }
        let mut metrics: Vec<u32> = kept.metrics.iter().copied().collect();
        metrics.sort_unstable();
        let v1 = V1 {
            names: &kept.names.names,
            metrics,
            rule_labels: &kept.rule_labels,
            events: kept.events,
            conversions_over_metric_limit: 0,
            users: kept
                .users
                .shards
                .iter()
                .flat_map(|t| t.iter())
                .map(|u| (&*u.key, &u.state.exposures[..], &u.state.recent[..]))
                .collect(),
        };
        let mut bytes = postcard::to_stdvec(&FORMAT_1).unwrap();
        bytes.extend(postcard::to_stdvec(&v1).unwrap());
        let loaded = Attribution::from_checkpoint(&bytes, &windows).unwrap();
        assert_eq!(loaded.aggregates(), settled.aggregates());
        assert_eq!(loaded.aggregates(), kept.aggregates());
        let names = ["buy".to_string(), "view".to_string()];
        let settled_days: usize = loaded
            .users
            .shards
            .iter()
            .flat_map(|t| t.iter())
            .map(|u| u.state.days.len())
            .sum();
        assert!(settled_days > 0, "some conversions settled");
        for u in 0..500 {
            let key = format!("u{u}");
            let count = |a: &Attribution| -> u64 {
                a.user_events(&key, &names).iter().map(|r| r.count).sum()
            };
            assert_eq!(count(&loaded), count(&kept));
        }
    }

    #[test]
    fn bad_bytes_and_other_formats_are_refused() {
        let mut bytes = postcard::to_stdvec(&(FORMAT + 1)).unwrap();
        bytes.extend([0, 0, 0]);
        assert!(matches!(
            Attribution::from_checkpoint(&bytes, &[]),
            Err(CheckpointError::Format { found }) if found == FORMAT + 1
        ));
        let good = Attribution::default().checkpoint().unwrap();
        assert!(Attribution::from_checkpoint(&good, &[]).is_ok());
        assert!(matches!(
            Attribution::from_checkpoint(&good[..good.len() - 1], &[]),
            Err(CheckpointError::Decode(_))
        ));
        assert!(Attribution::from_checkpoint(&[], &[]).is_err());
    }
}
