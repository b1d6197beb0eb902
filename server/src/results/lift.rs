//! Personalization lift: users who saw tailored content against those held out to the generic
//! default, per segment and pooled.

use super::output::{LiftReport, Personalization};
use super::query::Analysis;
use super::scope::cells_in;
use super::sums::Sums;
use crate::attribution::CellTotals;
use crate::stats::{self, StatsError};

/// The name of the lift over all segments together.
const POOLED: &str = "pooled";

/// Per-label and pooled lift; `None` unless the data holds both personalized and generic users
/// (without a holdout there is nothing to compare).
pub(super) fn personalization(
    labels: &[String],
    cells: &[CellTotals],
    analysis: &Analysis,
) -> Result<Option<Personalization>, StatsError> {
    if !has_holdout_data(cells) {
        return Ok(None);
    }
    let segments = labels
        .iter()
        .map(|label| lift_report(label, &cells_in(cells, label), analysis))
        .collect::<Result<Vec<_>, _>>()?;
    let all: Vec<&CellTotals> = cells.iter().collect();
    Ok(Some(Personalization {
        segments,
        pooled: lift_report(POOLED, &all, analysis)?,
    }))
}

/// Whether the cells hold both personalized and generic users.
fn has_holdout_data(cells: &[CellTotals]) -> bool {
    cells.iter().any(|c| !c.personalized) && cells.iter().any(|c| c.personalized)
}

/// Personalized (treatment) against generic (control) over `cells`.
fn lift_report(
    name: &str,
    cells: &[&CellTotals],
    analysis: &Analysis,
) -> Result<LiftReport, StatsError> {
    let personalized = Sums::of(
        cells.iter().copied().filter(|c| c.personalized),
        &analysis.target,
    );
    let generic = Sums::of(
        cells.iter().copied().filter(|c| !c.personalized),
        &analysis.target,
    );
    Ok(LiftReport {
        segment: name.to_string(),
        personalized_users: personalized.users,
        personalized_converted: personalized.metric.converted,
        generic_users: generic.users,
        generic_converted: generic.metric.converted,
        comparison: stats::compare(
            &generic.arm(analysis.measure),
            &personalized.arm(analysis.measure),
            &analysis.config,
        )?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::results::fixtures::{analysis, cell};

    #[test]
    fn without_generic_users_there_is_no_lift() {
        let cells = [cell("b", "s", true, 100, 10), cell("a", "s", true, 100, 9)];
        let labels = ["s".to_string()];
        assert!(personalization(&labels, &cells, &analysis())
            .unwrap()
            .is_none());
    }

    #[test]
    fn lift_compares_personalized_with_generic_per_segment_and_pooled() {
        let cells = [
            cell("a", "s", false, 100, 10),
            cell("b", "s", true, 900, 120),
            cell("a", "t", false, 50, 5),
            cell("c", "t", true, 450, 45),
            cell("a", "t", true, 10, 1),
        ];
        let labels = ["s".to_string(), "t".to_string()];
        let lift = personalization(&labels, &cells, &analysis())
            .unwrap()
            .unwrap();
        let counts = |l: &LiftReport| {
            (
                l.segment.clone(),
                l.personalized_users,
                l.personalized_converted,
                l.generic_users,
                l.generic_converted,
            )
        };
        assert_eq!(
            lift.segments.iter().map(counts).collect::<Vec<_>>(),
            [
                ("s".to_string(), 900, 120, 100, 10),
                ("t".to_string(), 460, 46, 50, 5),
            ]
        );
        assert_eq!(
            counts(&lift.pooled),
            ("pooled".to_string(), 1360, 166, 150, 15)
        );
        let s = lift.segments[0].comparison.absolute.value().unwrap();
        assert!((s.estimate - (120.0 / 900.0 - 0.1)).abs() < 1e-12);
    }
}
