//! Mergeable experiment aggregates: the sufficient statistics one partition's attribution
//! publishes, and how results add them up.
//!
//! Everything is kept in integer units (counts, values in millionths, squares in millionths
//! squared, hourly deltas), so merging partitions is exact and associative: the totals of P
//! partitions merged in any order, on any instance, are bit for bit the totals one attribution
//! holding every user would give. Floating point appears only in [`ExperimentAggregates::totals`],
//! after the merge.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Values are stored as integer millionths.
pub const MICROS: f64 = 1_000_000.0;

/// Per-metric totals of one cell, in the event's value units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct MetricTotals {
    /// Users with at least one attributed conversion.
    pub converted: u64,
    /// Sum over users of their attributed value.
    pub sum: f64,
    /// Sum over users of the square of their attributed value.
    pub sum_sq: f64,
    /// CUPED covariate (`crate::attribution`, "Covariates"), over every user of the cell:
    /// users with a conversion in the lookback before their first exposure,
    pub pre_converted: u64,
    /// of them, users who also converted after it,
    pub both_converted: u64,
    /// the sum of their pre-exposure values,
    pub pre_sum: f64,
    /// of its squares,
    pub pre_sum_sq: f64,
    /// and of each user's pre-exposure value times their attributed value.
    pub sum_products: f64,
    /// Ratio metrics (`crate::stats`, "Ratio metrics"): the sum over users of their attributed
    /// conversions (events, not users),
    pub count: f64,
    /// of its squares,
    pub count_sq: f64,
    /// and of each user's count times their value.
    pub value_count: f64,
}

impl MetricTotals {
    /// Adds `other`'s totals (another cell's) into these.
    pub fn add(&mut self, other: &MetricTotals) {
        self.converted += other.converted;
        self.sum += other.sum;
        self.sum_sq += other.sum_sq;
        self.pre_converted += other.pre_converted;
        self.both_converted += other.both_converted;
        self.pre_sum += other.pre_sum;
        self.pre_sum_sq += other.pre_sum_sq;
        self.sum_products += other.sum_products;
        self.count += other.count;
        self.count_sq += other.count_sq;
        self.value_count += other.value_count;
    }
}

/// The cross products of two metrics over one cell's users, in the event's units: what a ratio
/// metric over two different events needs (`Σ numerator × denominator`). `first` sorts before
/// `second`; `count_value` is `Σ count(first) × value(second)`, `value_count` the other way.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PairTotals {
    /// The metric that sorts first.
    pub first: String,
    /// The other one.
    pub second: String,
    /// `Σ count(first) · count(second)`.
    pub count_count: f64,
    /// `Σ count(first) · value(second)`.
    pub count_value: f64,
    /// `Σ value(first) · count(second)`.
    pub value_count: f64,
    /// `Σ value(first) · value(second)`.
    pub value_value: f64,
}

/// One cell's totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellTotals {
    /// Variant of first exposure.
    pub variant: String,
    /// The matched rule's segment, or `rule <n>` when its audience is not one segment.
    pub segment: String,
    /// Index of the rule that served the first exposure (several rules may share a segment).
    pub rule: usize,
    /// Tailored content (true) or the generic default from a holdout (false).
    pub personalized: bool,
    /// The optimize rule's update period of the first exposure (0 for other experiments).
    pub period: u32,
    /// Users counted.
    pub users: u64,
    /// Totals per conversion event name.
    pub metrics: BTreeMap<String, MetricTotals>,
    /// Cross products of every two metrics some user of the cell converted on, by name order.
    pub pairs: Vec<PairTotals>,
}

impl CellTotals {
    /// The cross products of metrics `a` and `b` (oriented: `count_value` is `Σ count(a) ·
    /// value(b)`), zeros when no user converted on both.
    pub fn pair(&self, a: &str, b: &str) -> PairTotals {
        let (first, second, swapped) = if a <= b { (a, b, false) } else { (b, a, true) };
        let found = self
            .pairs
            .iter()
            .find(|p| p.first == first && p.second == second)
            .cloned()
            .unwrap_or_default();
        if swapped {
            PairTotals {
                first: a.to_string(),
                second: b.to_string(),
                count_value: found.value_count,
                value_count: found.count_value,
                ..found
            }
        } else {
            found
        }
    }
}

/// One point of a cumulative curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CumulativePoint {
    /// Start of the hour, Unix milliseconds.
    pub at: i64,
    /// Users exposed up to the end of this hour.
    pub users: u64,
    /// Of them, users converted up to the end of this hour.
    pub converted: u64,
}

/// A variant's cumulative exposure and conversion curve for one metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantSeries {
    /// Variant key.
    pub variant: String,
    /// Points in time order, one per hour with any change.
    pub points: Vec<CumulativePoint>,
}

/// An experiment's aggregates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExperimentTotals {
    /// Cells in a stable order (variant, segment, rule, personalized).
    pub cells: Vec<CellTotals>,
    /// Users exposed to more than one variant (each counted in their first).
    pub multi_variant_users: u64,
    /// Exposures that counted from their user's settle point (`crate::attribution`, "Settling").
    pub late_exposures: u64,
}

/// The analysis cell: variant, segment (or rule label), rule index, personalized. Ordered by
/// those, in that order (the order results list cells in).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CellId {
    /// Variant of first exposure.
    pub variant: String,
    /// Segment or rule label.
    pub segment: String,
    /// Rule index.
    pub rule: u16,
    /// Tailored (true) or generic (false).
    pub personalized: bool,
    /// The optimize rule's update period of the first exposure (0 for other experiments).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub period: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A metric's integer sums in one cell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricSums {
    /// Users with at least one attributed conversion.
    pub converted: u64,
    /// Sum of the users' attributed values, in millionths.
    pub sum: i128,
    /// Sum of their squares, in millionths squared.
    pub sum_sq: i128,
    /// CUPED: users with a pre-exposure conversion (see [`MetricTotals`]).
    #[serde(default)]
    pub pre_converted: u64,
    /// Users with both a pre-exposure and an attributed conversion.
    #[serde(default)]
    pub both_converted: u64,
    /// Sum of pre-exposure values, millionths.
    #[serde(default)]
    pub pre_sum: i128,
    /// Sum of their squares, millionths squared.
    #[serde(default)]
    pub pre_sum_sq: i128,
    /// Sum of pre-exposure value × attributed value, millionths squared.
    #[serde(default)]
    pub sum_products: i128,
    /// Ratio metrics: the sum of the users' attributed conversion counts,
    #[serde(default)]
    pub count: i128,
    /// of their squares,
    #[serde(default)]
    pub count_sq: i128,
    /// and of count × value, millionths.
    #[serde(default)]
    pub value_count: i128,
}

impl MetricSums {
    /// Adds `other` times `sign` (+1 to add a user's share or another partition's sums, −1 to
    /// take a user's share back out).
    pub fn add(&mut self, other: &MetricSums, sign: i64) {
        let s = i128::from(sign);
        self.converted = self
            .converted
            .wrapping_add_signed(other.converted as i64 * sign);
        self.sum += other.sum * s;
        self.sum_sq += other.sum_sq * s;
        self.pre_converted = self
            .pre_converted
            .wrapping_add_signed(other.pre_converted as i64 * sign);
        self.both_converted = self
            .both_converted
            .wrapping_add_signed(other.both_converted as i64 * sign);
        self.pre_sum += other.pre_sum * s;
        self.pre_sum_sq += other.pre_sum_sq * s;
        self.sum_products += other.sum_products * s;
        self.count += other.count * s;
        self.count_sq += other.count_sq * s;
        self.value_count += other.value_count * s;
    }

    /// The totals in the event's units.
    pub fn totals(&self) -> MetricTotals {
        MetricTotals {
            converted: self.converted,
            sum: self.sum as f64 / MICROS,
            sum_sq: self.sum_sq as f64 / (MICROS * MICROS),
            pre_converted: self.pre_converted,
            both_converted: self.both_converted,
            pre_sum: self.pre_sum as f64 / MICROS,
            pre_sum_sq: self.pre_sum_sq as f64 / (MICROS * MICROS),
            sum_products: self.sum_products as f64 / (MICROS * MICROS),
            count: self.count as f64,
            count_sq: self.count_sq as f64,
            value_count: self.value_count as f64 / MICROS,
        }
    }
}

/// Two metrics' cross products over one cell's users (see [`PairTotals`]), integer units.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairSums {
    /// The metric that sorts first by name.
    pub first: String,
    /// The other one.
    pub second: String,
    /// `Σ count(first) · count(second)`.
    pub count_count: i128,
    /// `Σ count(first) · value(second)`, millionths.
    pub count_value: i128,
    /// `Σ value(first) · count(second)`, millionths.
    pub value_count: i128,
    /// `Σ value(first) · value(second)`, millionths squared.
    pub value_value: i128,
}

impl PairSums {
    /// The totals in the events' units.
    pub fn totals(&self) -> PairTotals {
        PairTotals {
            first: self.first.clone(),
            second: self.second.clone(),
            count_count: self.count_count as f64,
            count_value: self.count_value as f64 / MICROS,
            value_count: self.value_count as f64 / MICROS,
            value_value: self.value_value as f64 / (MICROS * MICROS),
        }
    }
}

/// One cell's integer sums.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellSums {
    /// The cell.
    pub cell: CellId,
    /// Users counted.
    pub users: u64,
    /// Per conversion event name (only metrics with a conversion).
    pub metrics: BTreeMap<String, MetricSums>,
    /// Cross products of every two metrics a user of the cell converted on, in name order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pairs: Vec<PairSums>,
}

/// What changed in one hour for one variant: users first exposed, users first converted per
/// metric (negative after a late correction moved a user out).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourSums {
    /// Hours since the Unix epoch.
    pub hour: i64,
    /// Change in exposed users.
    pub exposed: i64,
    /// Change in converted users per metric.
    pub converted: BTreeMap<String, i64>,
}

/// One experiment's sufficient statistics, by name: what a partition publishes and results merge.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExperimentAggregates {
    /// Cells in [`CellId`] order, users > 0 only.
    pub cells: Vec<CellSums>,
    /// Users exposed to more than one variant.
    pub multi_variant_users: u64,
    /// Exposures that counted from their user's settle point (`crate::attribution`, "Settling").
    #[serde(default)]
    pub late_exposures: u64,
    /// Per variant, hourly changes in hour order (hours with no change left out).
    pub timeline: BTreeMap<String, Vec<HourSums>>,
}

impl ExperimentAggregates {
    /// Adds `other` into `self` (exact: integer sums).
    pub fn merge(&mut self, other: &ExperimentAggregates) {
        let mut cells: BTreeMap<CellId, CellSums> = std::mem::take(&mut self.cells)
            .into_iter()
            .map(|c| (c.cell.clone(), c))
            .collect();
        for c in &other.cells {
            let cell = cells.entry(c.cell.clone()).or_insert_with(|| CellSums {
                cell: c.cell.clone(),
                ..CellSums::default()
            });
            cell.users += c.users;
            for (metric, m) in &c.metrics {
                cell.metrics.entry(metric.clone()).or_default().add(m, 1);
            }
            for p in &c.pairs {
                match cell
                    .pairs
                    .binary_search_by(|q| (&q.first, &q.second).cmp(&(&p.first, &p.second)))
                {
                    Ok(i) => {
                        let q = &mut cell.pairs[i];
                        q.count_count += p.count_count;
                        q.count_value += p.count_value;
                        q.value_count += p.value_count;
                        q.value_value += p.value_value;
                    }
                    Err(i) => cell.pairs.insert(i, p.clone()),
                }
            }
        }
        self.cells = cells.into_values().collect();
        self.multi_variant_users += other.multi_variant_users;
        self.late_exposures += other.late_exposures;
        for (variant, hours) in &other.timeline {
            let mine = self.timeline.entry(variant.clone()).or_default();
            let mut by_hour: BTreeMap<i64, HourSums> = std::mem::take(mine)
                .into_iter()
                .map(|h| (h.hour, h))
                .collect();
            for h in hours {
                let slot = by_hour.entry(h.hour).or_insert_with(|| HourSums {
                    hour: h.hour,
                    ..HourSums::default()
                });
                slot.exposed += h.exposed;
                for (metric, n) in &h.converted {
                    *slot.converted.entry(metric.clone()).or_default() += n;
                }
            }
            *mine = by_hour.into_values().collect();
        }
    }

    /// The totals results analyse (values converted from millionths here, once).
    pub fn totals(&self) -> ExperimentTotals {
        ExperimentTotals {
            cells: self
                .cells
                .iter()
                .filter(|c| c.users > 0)
                .map(|c| CellTotals {
                    variant: c.cell.variant.clone(),
                    segment: c.cell.segment.clone(),
                    rule: usize::from(c.cell.rule),
                    personalized: c.cell.personalized,
                    period: c.cell.period,
                    users: c.users,
                    metrics: c
                        .metrics
                        .iter()
                        .filter(|(_, m)| m.converted > 0 || m.pre_converted > 0)
                        .map(|(name, m)| (name.clone(), m.totals()))
                        .collect(),
                    pairs: c.pairs.iter().map(PairSums::totals).collect(),
                })
                .collect(),
            multi_variant_users: self.multi_variant_users,
            late_exposures: self.late_exposures,
        }
    }

    /// Cumulative users and converted users per variant over time (hourly), for `metric`.
    pub fn timeline(&self, metric: &str) -> Vec<VariantSeries> {
        self.timeline
            .iter()
            .map(|(variant, hours)| {
                let mut users = 0i64;
                let mut converted = 0i64;
                let points = hours
                    .iter()
                    .filter_map(|h| {
                        let c = h.converted.get(metric).copied().unwrap_or(0);
                        users += h.exposed;
                        converted += c;
                        (h.exposed != 0 || c != 0).then_some(CumulativePoint {
                            at: h.hour * 3_600_000,
                            users: users.max(0) as u64,
                            converted: converted.max(0) as u64,
                        })
                    })
                    .collect();
                VariantSeries {
                    variant: variant.clone(),
                    points,
                }
            })
            .filter(|s| !s.points.is_empty())
            .collect()
    }
}

/// Everything one partition publishes: each experiment's aggregates and the partition's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionAggregates {
    /// By experiment key.
    pub experiments: BTreeMap<String, ExperimentAggregates>,
    /// Events applied to the partition's attribution.
    pub events_applied: u64,
    /// Conversions not attributed because their name came after the metric limit.
    pub conversions_over_metric_limit: u64,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cell(variant: &str, users: u64, converted: u64, sum: i128) -> CellSums {
        CellSums {
            cell: CellId {
                variant: variant.into(),
                segment: "s".into(),
                rule: 0,
                personalized: true,
                period: 0,
            },
            users,
            metrics: [(
                "purchase".to_string(),
                MetricSums {
                    converted,
                    sum,
                    sum_sq: sum * 2,
                    ..MetricSums::default()
                },
            )]
            .into(),
            pairs: Vec::new(),
        }
    }

    fn hours(list: &[(i64, i64, i64)]) -> Vec<HourSums> {
        list.iter()
            .map(|&(hour, exposed, converted)| HourSums {
                hour,
                exposed,
                converted: [("purchase".to_string(), converted)].into(),
            })
            .collect()
    }

    #[test]
    fn merging_adds_every_sum_in_any_order() {
        let a = ExperimentAggregates {
            cells: vec![cell("a", 3, 1, 5_000_000), cell("b", 2, 0, 0)],
            multi_variant_users: 1,
            late_exposures: 2,
            timeline: [("a".to_string(), hours(&[(10, 3, 1)]))].into(),
        };
        let b = ExperimentAggregates {
            cells: vec![cell("a", 1, 1, 2_500_000), cell("c", 4, 2, 1)],
            multi_variant_users: 2,
            late_exposures: 0,
            timeline: [("a".to_string(), hours(&[(9, 1, 0), (10, 0, 1)]))].into(),
        };
        let mut ab = ExperimentAggregates::default();
        ab.merge(&a);
        ab.merge(&b);
        let mut ba = ExperimentAggregates::default();
        ba.merge(&b);
        ba.merge(&a);
        assert_eq!(ab, ba);
        let totals = ab.totals();
        let variants: Vec<&str> = totals.cells.iter().map(|c| c.variant.as_str()).collect();
        assert_eq!(variants, ["a", "b", "c"]);
        assert_eq!(totals.cells[0].users, 4);
        assert_eq!(totals.cells[0].metrics["purchase"].converted, 2);
        assert_eq!(totals.cells[0].metrics["purchase"].sum, 7.5);
        assert_eq!(totals.multi_variant_users, 3);
        assert_eq!(totals.late_exposures, 2);
        let series = ab.timeline("purchase");
        assert_eq!(series[0].points.len(), 2);
        assert_eq!(series[0].points[1].users, 4);
        assert_eq!(series[0].points[1].converted, 2);
    }

    #[test]
    fn published_aggregates_survive_json() {
        let mut p = PartitionAggregates::default();
        p.experiments.insert(
            "exp".into(),
            ExperimentAggregates {
                cells: vec![cell("a", 1, 1, i128::from(i64::MAX) * 3)],
                ..ExperimentAggregates::default()
            },
        );
        let text = serde_json::to_string(&p).unwrap();
        assert_eq!(
            serde_json::from_str::<PartitionAggregates>(&text).unwrap(),
            p
        );
    }
}
