//! Users, conversions and values summed over analysis cells: the engine's input for one arm.

use super::query::Measure;
use crate::attribution::CellTotals;
use crate::stats::{ArmStats, Covariate};

/// One arm's totals for one metric.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(super) struct Sums {
    /// Users counted.
    pub users: u64,
    /// Users who converted.
    pub converted: u64,
    /// Sum of attributed values.
    pub sum: f64,
    /// Sum of squared attributed values.
    pub sum_sq: f64,
    /// CUPED covariate sums, as in `crate::aggregates::MetricTotals`: users with a
    /// pre-exposure conversion,
    pub pre_converted: u64,
    /// of them, users who also converted after,
    pub both_converted: u64,
    /// the pre-exposure values' sum,
    pub pre_sum: f64,
    /// of squares,
    pub pre_sum_sq: f64,
    /// and of products with the attributed values.
    pub sum_products: f64,
}

impl Sums {
    /// Adds a cell's users and its totals for `metric` (a cell without them had no conversion).
    pub(super) fn add(&mut self, cell: &CellTotals, metric: &str) {
        self.users += cell.users;
        if let Some(m) = cell.metrics.get(metric) {
            self.converted += m.converted;
            self.sum += m.sum;
            self.sum_sq += m.sum_sq;
            self.pre_converted += m.pre_converted;
            self.both_converted += m.both_converted;
            self.pre_sum += m.pre_sum;
            self.pre_sum_sq += m.pre_sum_sq;
            self.sum_products += m.sum_products;
        }
    }

    /// The sums of `cells` for `metric`.
    pub(super) fn of<'a>(cells: impl IntoIterator<Item = &'a CellTotals>, metric: &str) -> Self {
        let mut sums = Self::default();
        for cell in cells {
            sums.add(cell, metric);
        }
        sums
    }

    /// The engine's view of this arm.
    pub(super) fn arm(&self, measure: Measure) -> ArmStats {
        match measure {
            Measure::Value => ArmStats::continuous(self.users, self.sum, self.sum_sq),
            Measure::Conversion => ArmStats::binomial(self.users, self.converted),
        }
    }

    /// The CUPED covariate of this arm for the measure: for conversion, whether each user
    /// converted in the lookback (`x` ∈ {0, 1}); for value, the lookback's value.
    pub(super) fn covariate(&self, measure: Measure) -> Covariate {
        match measure {
            Measure::Value => Covariate {
                sum: self.pre_sum,
                sum_squares: self.pre_sum_sq,
                sum_products: self.sum_products,
            },
            Measure::Conversion => Covariate {
                sum: self.pre_converted as f64,
                sum_squares: self.pre_converted as f64,
                sum_products: self.both_converted as f64,
            },
        }
    }
}

/// Each variant's sums over `cells`, in `variants` order.
pub(super) fn arm_sums(variants: &[String], cells: &[&CellTotals], metric: &str) -> Vec<Sums> {
    variants
        .iter()
        .map(|v| Sums::of(cells.iter().copied().filter(|c| &c.variant == v), metric))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::attribution::MetricTotals;

    fn cell(variant: &str, users: u64, converted: u64, sum: f64) -> CellTotals {
        CellTotals {
            variant: variant.into(),
            segment: "s".into(),
            rule: 0,
            personalized: true,
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
        }
    }

    #[test]
    fn sums_add_users_and_only_the_asked_metric() {
        let cells = [cell("a", 10, 2, 3.0), cell("a", 5, 1, 4.0)];
        assert_eq!(
            Sums::of(&cells, "purchase"),
            Sums {
                users: 15,
                converted: 3,
                sum: 7.0,
                sum_sq: 25.0,
                ..Sums::default()
            }
        );
        // Users without the metric still count, with no conversions.
        assert_eq!(
            Sums::of(&cells, "signup"),
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
        let users: Vec<u64> = arm_sums(&variants, &refs, "purchase")
            .iter()
            .map(|s| s.users)
            .collect();
        assert_eq!(users, [6, 6, 0]);
    }

    #[test]
    fn the_measure_picks_the_engine_input() {
        let sums = Sums {
            users: 10,
            converted: 4,
            sum: 20.0,
            sum_sq: 50.0,
            ..Sums::default()
        };
        assert_eq!(sums.arm(Measure::Conversion), ArmStats::binomial(10, 4));
        assert_eq!(
            sums.arm(Measure::Value),
            ArmStats::continuous(10, 20.0, 50.0)
        );
    }
}
