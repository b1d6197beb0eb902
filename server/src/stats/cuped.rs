//! CUPED: regression adjustment with a pre-exposure covariate, as gbstats'
//! `RegressionAdjustedStatistic` and `compute_theta`.
//!
//! For a comparison of control `a` with treatment `b`, each arm has the metric `y` and the
//! covariate `x` (the same metric in the lookback before each user's first exposure):
//!
//! - `θ` is pooled over both arms: `cov(x, y) / var(x)` of the joint sample (`n = n_a + n_b`,
//!   sums added), where `cov = (Σxy − Σx·Σy/n)/(n − 1)` and each variance follows the metric
//!   kind (`p(1 − p)` for a proportion); `θ = 0` when either joint variance is 0, and then
//!   nothing is adjusted (gbstats reverts to the plain statistics);
//! - each arm's adjusted mean is `ȳ − θ·x̄` and its variance `var(y) + θ²·var(x) − 2θ·cov(x, y)`
//!   (0 for `n ≤ 1`), while the relative lift still divides by the control's *unadjusted* mean;
//! - the variance reduction reported is `1 − Var(Δ̂_adjusted) / Var(Δ̂)` of the absolute lift.

use super::input::{ArmStats, Covariate, MetricKind, Moments};

/// One arm's sums for the adjustment.
pub(crate) struct Arm<'a> {
    pub stats: &'a ArmStats,
    pub covariate: &'a Covariate,
}

impl Arm<'_> {
    fn users(&self) -> u64 {
        self.stats.users()
    }

    /// `cov(x, y)` with Bessel's correction, 0 for `n ≤ 1` (gbstats `covariance`).
    fn covariance(&self) -> f64 {
        covariance(
            self.users(),
            self.covariate.sum_products,
            self.stats.sum(),
            self.covariate.sum,
        )
    }
}

fn covariance(users: u64, sum_products: f64, sum_y: f64, sum_x: f64) -> f64 {
    if users <= 1 {
        return 0.0;
    }
    let n = users as f64;
    (sum_products - sum_y * sum_x / n) / (n - 1.0)
}

/// The pooled `θ` of a comparison (gbstats `compute_theta`).
pub(crate) fn theta(a: &Arm<'_>, b: &Arm<'_>) -> f64 {
    let kind = a.stats.kind();
    let users = a.users() + b.users();
    let joint_y = joint(kind, users, a.stats, b.stats);
    // A binomial covariate's Σx² is Σx, and its moments read Σx alone.
    let joint_x = Covariate {
        sum: a.covariate.sum + b.covariate.sum,
        sum_squares: a.covariate.sum_squares + b.covariate.sum_squares,
        sum_products: 0.0,
    }
    .moments(kind, users);
    if joint_x.variance == 0.0 || joint_y.variance == 0.0 {
        return 0.0;
    }
    let cov = covariance(
        users,
        a.covariate.sum_products + b.covariate.sum_products,
        a.stats.sum() + b.stats.sum(),
        a.covariate.sum + b.covariate.sum,
    );
    cov / joint_x.variance
}

fn joint(kind: MetricKind, users: u64, a: &ArmStats, b: &ArmStats) -> Moments {
    match kind {
        MetricKind::Binomial => ArmStats::Binomial {
            users,
            conversions: (a.sum() + b.sum()).round() as u64,
        },
        // Validation refuses covariates for a ratio metric.
        MetricKind::Continuous | MetricKind::Ratio => {
            ArmStats::continuous(users, a.sum() + b.sum(), a.sum_squares() + b.sum_squares())
        }
    }
    .moments()
}

/// The arm's moments adjusted with `theta` (gbstats `RegressionAdjustedStatistic.mean` and
/// `.variance`); `unadjusted_mean` keeps the plain mean.
pub(crate) fn adjusted(arm: &Arm<'_>, theta: f64) -> Moments {
    let y = arm.stats.moments();
    let x = arm.covariate.moments(arm.stats.kind(), arm.users());
    let variance = if arm.users() <= 1 {
        0.0
    } else {
        y.variance + theta * theta * x.variance - 2.0 * theta * arm.covariance()
    };
    Moments {
        n: y.n,
        mean: y.mean - theta * x.mean,
        variance,
        unadjusted_mean: y.mean,
    }
}
