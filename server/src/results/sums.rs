//! Users, conversions and values summed over analysis cells: the engine's input for one arm.

use tailor_core::model::{EventMeasure, Measure as EventPart, RatioMetric};

use super::query::Measure;
use crate::attribution::{CellTotals, MetricTotals};
use crate::stats::{ArmStats, Covariate};

/// What is summed: one event's totals, or a ratio metric's numerator and denominator.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Target {
    /// A conversion event.
    Event(String),
    /// A ratio metric of the experiment.
    Ratio(RatioMetric),
}

/// One arm's totals for one metric.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(super) struct Sums {
    /// Users counted.
    pub users: u64,
    /// The event's totals (for a ratio metric, its numerator event's).
    pub metric: MetricTotals,
    /// A ratio metric's sums (zero for an event).
    pub ratio: RatioSums,
}

/// A ratio metric's per-user sums over an arm: `m` the numerator, `d` the denominator.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(super) struct RatioSums {
    /// `Σm`.
    pub numerator: f64,
    /// `Σm²`.
    pub numerator_sq: f64,
    /// `Σd`.
    pub denominator: f64,
    /// `Σd²`.
    pub denominator_sq: f64,
    /// `Σm·d`.
    pub products: f64,
}

/// `Σ measure` of one event over a cell's users.
fn sum_of(m: &MetricTotals, part: EventPart) -> f64 {
    match part {
        EventPart::Count => m.count,
        EventPart::Value => m.sum,
    }
}

/// `Σ a·b` over a cell's users, for two measures of events.
fn cross(cell: &CellTotals, a: &EventMeasure, b: &EventMeasure) -> f64 {
    if a.event == b.event {
        let Some(m) = cell.metrics.get(&a.event) else {
            return 0.0;
        };
        return match (a.measure, b.measure) {
            (EventPart::Count, EventPart::Count) => m.count_sq,
            (EventPart::Value, EventPart::Value) => m.sum_sq,
            _ => m.value_count,
        };
    }
    let p = cell.pair(&a.event, &b.event);
    match (a.measure, b.measure) {
        (EventPart::Count, EventPart::Count) => p.count_count,
        (EventPart::Count, EventPart::Value) => p.count_value,
        (EventPart::Value, EventPart::Count) => p.value_count,
        (EventPart::Value, EventPart::Value) => p.value_value,
    }
}

impl Sums {
    /// Adds a cell's users and its totals for `target` (a cell without them had no conversion).
    pub(super) fn add(&mut self, cell: &CellTotals, target: &Target) {
        self.users += cell.users;
        let event = match target {
            Target::Event(event) => event,
            Target::Ratio(r) => &r.numerator.event,
        };
        if let Some(m) = cell.metrics.get(event) {
            self.metric.add(m);
        }
        if let Target::Ratio(r) = target {
            let sum = |side: &EventMeasure| {
                cell.metrics
                    .get(&side.event)
                    .map_or(0.0, |m| sum_of(m, side.measure))
            };
            self.ratio.numerator += sum(&r.numerator);
            self.ratio.denominator += sum(&r.denominator);
            self.ratio.numerator_sq += cross(cell, &r.numerator, &r.numerator);
            self.ratio.denominator_sq += cross(cell, &r.denominator, &r.denominator);
            self.ratio.products += cross(cell, &r.numerator, &r.denominator);
        }
    }

    /// The sums of `cells` for `target`.
    pub(super) fn of<'a>(cells: impl IntoIterator<Item = &'a CellTotals>, target: &Target) -> Self {
        let mut sums = Self::default();
        for cell in cells {
            sums.add(cell, target);
        }
        sums
    }

    /// The engine's view of this arm.
    pub(super) fn arm(&self, measure: Measure) -> ArmStats {
        match measure {
            Measure::Value => ArmStats::continuous(self.users, self.metric.sum, self.metric.sum_sq),
            Measure::Conversion => ArmStats::binomial(self.users, self.metric.converted),
            Measure::Ratio => ArmStats::Ratio {
                users: self.users,
                numerator_sum: self.ratio.numerator,
                numerator_sum_squares: self.ratio.numerator_sq,
                denominator_sum: self.ratio.denominator,
                denominator_sum_squares: self.ratio.denominator_sq,
                sum_products: self.ratio.products,
            },
        }
    }

    /// The CUPED covariate of this arm for the measure: for conversion, whether each user
    /// converted in the lookback (`x` ∈ {0, 1}); for value, the lookback's value. `None` for a
    /// ratio metric, which CUPED does not adjust.
    pub(super) fn covariate(&self, measure: Measure) -> Option<Covariate> {
        let m = &self.metric;
        match measure {
            Measure::Value => Some(Covariate {
                sum: m.pre_sum,
                sum_squares: m.pre_sum_sq,
                sum_products: m.sum_products,
            }),
            Measure::Conversion => Some(Covariate {
                sum: m.pre_converted as f64,
                sum_squares: m.pre_converted as f64,
                sum_products: m.both_converted as f64,
            }),
            Measure::Ratio => None,
        }
    }
}

/// Each variant's sums over `cells`, in `variants` order.
pub(super) fn arm_sums(variants: &[String], cells: &[&CellTotals], target: &Target) -> Vec<Sums> {
    variants
        .iter()
        .map(|v| Sums::of(cells.iter().copied().filter(|c| &c.variant == v), target))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn event(name: &str) -> Target {
        Target::Event(name.to_string())
    }

    fn cell(variant: &str, users: u64, converted: u64, sum: f64) -> CellTotals {
        CellTotals {
            variant: variant.into(),
            segment: "s".into(),
            rule: 0,
            personalized: true,
            period: 0,
            users,
            metrics: BTreeMap::from([(
                "purchase".to_string(),
                MetricTotals {
                    converted,
                    sum,
                    sum_sq: sum * sum,
                    ..MetricTotals::default()
                },
            )]),
            pairs: Vec::new(),
        }
    }

    #[test]
    fn sums_add_users_and_only_the_asked_metric() {
        let cells = [cell("a", 10, 2, 3.0), cell("a", 5, 1, 4.0)];
        assert_eq!(
            Sums::of(&cells, &event("purchase")),
            Sums {
                users: 15,
                metric: MetricTotals {
                    converted: 3,
                    sum: 7.0,
                    sum_sq: 25.0,
                    ..MetricTotals::default()
                },
                ..Sums::default()
            }
        );
        // Users without the metric still count, with no conversions.
        assert_eq!(
            Sums::of(&cells, &event("signup")),
            Sums {
                users: 15,
                ..Sums::default()
            }
        );
    }

    #[test]
    fn arm_sums_follow_the_variant_order() {
        let cells = [
            cell("b", 4, 1, 1.0),
            cell("a", 6, 3, 2.0),
            cell("b", 2, 0, 0.0),
        ];
        let refs: Vec<&CellTotals> = cells.iter().collect();
        let variants = ["a".to_string(), "b".to_string(), "c".to_string()];
        let users: Vec<u64> = arm_sums(&variants, &refs, &event("purchase"))
            .iter()
            .map(|s| s.users)
            .collect();
        assert_eq!(users, [6, 6, 0]);
    }

    #[test]
    fn the_measure_picks_the_engine_input() {
        let sums = Sums {
            users: 10,
            metric: MetricTotals {
                converted: 4,
                sum: 20.0,
                sum_sq: 50.0,
                ..MetricTotals::default()
            },
            ..Sums::default()
        };
        assert_eq!(sums.arm(Measure::Conversion), ArmStats::binomial(10, 4));
        assert_eq!(
            sums.arm(Measure::Value),
            ArmStats::continuous(10, 20.0, 50.0)
        );
    }
}
