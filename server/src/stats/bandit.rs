//! Thompson sampling for learned personalization (an `optimize` rule): each arm's posterior
//! from period-weighted sums, the probability that each arm is best, and the weights an SDK
//! splits by. No I/O and no randomness: the same sums give the same weights on every instance.
//!
//! # The contract (README, "Learned personalization")
//!
//! - **Periods.** Users are counted in the update period of their first exposure. An arm's
//!   mean is the average of its per-period means weighted by each period's share of all users
//!   (GrowthBook's bandit weighting: allocation changes between periods, and behaviour may
//!   drift, so pooling the arm's users naively would weight each arm's periods differently);
//!   its variance is `Σ wₚ² vₚ/nₚ`. Periods where the arm has no user are left out and the
//!   weights of the others renormalised.
//! - **Posteriors.** Conversion: `Beta(1 + m·n̂, 1 + (1 − m)·n̂)` with the effective sample size
//!   `n̂ = m(1 − m)/Var(m)` (with one period, exactly Beta–Bernoulli on a uniform prior:
//!   `Beta(1 + conversions, 1 + users − conversions)`); when `m` is 0 or 1, `n̂` is the arm's
//!   users. Value: `N(m, Var(m))`; an arm whose variance is 0 gets the widest other arm's.
//! - **Probability best.** `P(i best) = ∫ fᵢ(x) Πⱼ≠ᵢ Fⱼ(x) dx`, by Simpson's rule over 160
//!   intervals spanning arm `i`'s own mean ± 12 standard deviations (so a narrow posterior is
//!   integrated as finely as a wide one), each `Fⱼ` tabulated once from its density and
//!   interpolated; then normalised to sum to 1. Closed forms agree to 1e-6 in the tests.
//! - **Weights.** Until every arm has `burn_in_users` users: equal. Then the additive floor
//!   GrowthBook uses, `pᵢ = f + (1 − k·f)·P(i best)` with `f = min_weight/10,000`, which keeps
//!   every arm at or above the floor without distorting the others' proportions (clipping and
//!   renormalising would); then whole basis points by largest remainder, summing to 10,000.

#[cfg(test)]
use super::special::normal_cdf;
use super::special::{ln_gamma, normal_pdf};

/// `ln B(a, b)`.
fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// Basis points of a whole split.
const FULL: u32 = 10_000;
/// Simpson intervals over each arm's range (even).
const STEPS: usize = 160;
/// Each arm's range: its mean ± this many standard deviations (a skewed Beta posterior keeps
/// mass beyond 8).
const SPAN: f64 = 12.0;

/// One arm's users and sums in one period: for conversion, `sum` counts users who converted.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PeriodArm {
    /// Users first exposed in the period.
    pub users: u64,
    /// Σy over them.
    pub sum: f64,
    /// Σy² over them.
    pub sum_squares: f64,
}

/// What the arms are compared on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// Whether each user converted: Beta–Bernoulli.
    Conversion,
    /// Each user's value: normal.
    Value,
}

/// An arm's period-weighted estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArmEstimate {
    /// Users over every period.
    pub users: u64,
    /// The period-weighted mean.
    pub mean: f64,
    /// Its variance.
    pub variance: f64,
}

/// Each arm's period-weighted estimate; `periods[p][a]` is arm `a` in period `p`.
pub fn period_weighted(periods: &[Vec<PeriodArm>], model: Model) -> Vec<ArmEstimate> {
    let arms = periods.iter().map(Vec::len).max().unwrap_or(0);
    let total: u64 = periods.iter().flatten().map(|a| a.users).sum();
    (0..arms)
        .map(|a| {
            let (mut weight, mut mean, mut variance, mut users) = (0.0, 0.0, 0.0, 0u64);
            for period in periods {
                let Some(arm) = period.get(a).filter(|arm| arm.users > 0) else {
                    continue;
                };
                let n = arm.users as f64;
                let w = period.iter().map(|x| x.users).sum::<u64>() as f64 / total as f64;
                let m = arm.sum / n;
                let v = match model {
                    Model::Conversion => m * (1.0 - m),
                    Model::Value if arm.users > 1 => {
                        ((arm.sum_squares - arm.sum * arm.sum / n) / (n - 1.0)).max(0.0)
                    }
                    Model::Value => 0.0,
                };
                weight += w;
                mean += w * m;
                variance += w * w * v / n;
                users += arm.users;
            }
            if weight > 0.0 {
                ArmEstimate {
                    users,
                    mean: mean / weight,
                    variance: variance / (weight * weight),
                }
            } else {
                ArmEstimate {
                    users: 0,
                    mean: 0.0,
                    variance: 0.0,
                }
            }
        })
        .collect()
}

/// A posterior the integration reads: its CDF, mean and standard deviation.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Posterior {
    Beta { a: f64, b: f64 },
    Normal { mean: f64, sd: f64 },
}

impl Posterior {
    fn pdf(&self, x: f64) -> f64 {
        match *self {
            Posterior::Beta { a, b } => {
                if x <= 0.0 || x >= 1.0 {
                    0.0
                } else {
                    ((a - 1.0) * x.ln() + (b - 1.0) * (1.0 - x).ln() - ln_beta(a, b)).exp()
                }
            }
            Posterior::Normal { mean, sd } => normal_pdf((x - mean) / sd) / sd,
        }
    }

    /// The interval the integration covers: the mean ± [`SPAN`] standard deviations (within
    /// `[0, 1]` for a Beta); empty for a degenerate posterior.
    fn range(&self) -> (f64, f64) {
        let (mean, sd) = self.mean_sd();
        if sd.is_nan() || sd <= 0.0 {
            return (0.0, 0.0);
        }
        let (lo, hi) = (mean - SPAN * sd, mean + SPAN * sd);
        match self {
            Posterior::Beta { .. } => (lo.max(0.0), hi.min(1.0)),
            Posterior::Normal { .. } => (lo, hi),
        }
    }

    fn mean_sd(&self) -> (f64, f64) {
        match *self {
            Posterior::Beta { a, b } => {
                let s = a + b;
                (a / s, (a * b / (s * s * (s + 1.0))).sqrt())
            }
            Posterior::Normal { mean, sd } => (mean, sd),
        }
    }
}

fn posteriors(arms: &[ArmEstimate], model: Model) -> Vec<Posterior> {
    match model {
        Model::Conversion => arms
            .iter()
            .map(|arm| {
                let m = arm.mean.clamp(0.0, 1.0);
                let n = if arm.variance > 0.0 && m > 0.0 && m < 1.0 {
                    m * (1.0 - m) / arm.variance
                } else {
                    arm.users as f64
                };
                Posterior::Beta {
                    a: 1.0 + m * n,
                    b: 1.0 + (1.0 - m) * n,
                }
            })
            .collect(),
        Model::Value => {
            let widest = arms
                .iter()
                .map(|a| a.variance.sqrt())
                .filter(|sd| sd.is_finite() && *sd > 0.0)
                .fold(0.0_f64, f64::max);
            let fallback = if widest > 0.0 { widest } else { 1.0 };
            arms.iter()
                .map(|arm| Posterior::Normal {
                    mean: arm.mean,
                    sd: if arm.variance > 0.0 && arm.variance.is_finite() {
                        arm.variance.sqrt()
                    } else {
                        fallback
                    },
                })
                .collect()
        }
    }
}

/// The probability that each arm's true mean is the highest.
pub fn probability_best(arms: &[ArmEstimate], model: Model) -> Vec<f64> {
    probability_best_of(&posteriors(arms, model))
}

/// One posterior tabulated on its own range: its density at `STEPS + 1` equally spaced points
/// and its CDF there, the CDF by Simpson's rule on the density (with midpoints), normalised to
/// 1 at the top of the range. Between points the CDF is the cubic Hermite interpolant of the
/// tabulated CDF and density (its derivative): accurate to ~1e-9 at these steps, and a few
/// flops instead of an incomplete beta function per query.
struct Table {
    lo: f64,
    h: f64,
    pdf: Vec<f64>,
    cdf: Vec<f64>,
}

impl Table {
    fn new(p: &Posterior) -> Option<Table> {
        let (lo, hi) = p.range();
        if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
            return None;
        }
        let h = (hi - lo) / STEPS as f64;
        let mut pdf: Vec<f64> = (0..=STEPS).map(|s| p.pdf(lo + h * s as f64)).collect();
        let mut cdf = Vec::with_capacity(STEPS + 1);
        cdf.push(0.0);
        for k in 0..STEPS {
            let mid = p.pdf(lo + h * (k as f64 + 0.5));
            cdf.push(cdf[k] + h / 6.0 * (pdf[k] + 4.0 * mid + pdf[k + 1]));
        }
        let total = cdf[STEPS];
        if !(total > 0.0 && total.is_finite()) {
            return None;
        }
        for v in cdf.iter_mut().chain(pdf.iter_mut()) {
            *v /= total;
        }
        Some(Table { lo, h, pdf, cdf })
    }

    fn x(&self, s: usize) -> f64 {
        self.lo + self.h * s as f64
    }

    /// The CDF at `x`: 0 below the range, 1 above it.
    fn cdf(&self, x: f64) -> f64 {
        let t = (x - self.lo) / self.h;
        if t <= 0.0 {
            return 0.0;
        }
        if t >= STEPS as f64 {
            return 1.0;
        }
        let k = (t as usize).min(STEPS - 1);
        let u = t - k as f64;
        let (f0, f1) = (self.cdf[k], self.cdf[k + 1]);
        let (d0, d1) = (self.pdf[k] * self.h, self.pdf[k + 1] * self.h);
        let (u2, u3) = (u * u, u * u * u);
        (2.0 * u3 - 3.0 * u2 + 1.0) * f0
            + (u3 - 2.0 * u2 + u) * d0
            + (-2.0 * u3 + 3.0 * u2) * f1
            + (u3 - u2) * d1
    }
}

fn probability_best_of(posteriors: &[Posterior]) -> Vec<f64> {
    let k = posteriors.len();
    if k == 0 {
        return Vec::new();
    }
    if k == 1 {
        return vec![1.0];
    }
    let tables: Vec<Option<Table>> = posteriors.iter().map(Table::new).collect();
    if tables.iter().any(Option::is_none) {
        return vec![1.0 / k as f64; k];
    }
    let tables: Vec<Table> = tables.into_iter().flatten().collect();
    // P(i best) = ∫ fᵢ(x) Πⱼ≠ᵢ Fⱼ(x) dx over arm i's own range, by Simpson's rule: a grid per
    // arm keeps a narrow posterior as accurate as a wide one.
    let mut best: Vec<f64> = (0..k)
        .map(|i| {
            let table = &tables[i];
            let mut sum = 0.0;
            for s in 0..=STEPS {
                let x = table.x(s);
                let others: f64 = (0..k)
                    .filter(|&j| j != i)
                    .map(|j| tables[j].cdf(x))
                    .product();
                let weight = if s == 0 || s == STEPS {
                    1.0
                } else if s % 2 == 1 {
                    4.0
                } else {
                    2.0
                };
                sum += weight * table.pdf[s] * others;
            }
            sum * table.h / 3.0
        })
        .collect();
    let total: f64 = best.iter().sum();
    if total > 0.0 && total.is_finite() {
        for p in &mut best {
            *p /= total;
        }
        best
    } else {
        vec![1.0 / k as f64; k]
    }
}

/// The weights of the next period, in basis points summing to 10,000 (module docs).
pub fn weights(
    arms: &[ArmEstimate],
    model: Model,
    min_weight: u32,
    burn_in_users: u64,
) -> Vec<u32> {
    let k = arms.len();
    if k == 0 {
        return Vec::new();
    }
    if arms.iter().any(|a| a.users < burn_in_users) {
        return tailor_core::model::equal_weights(k);
    }
    let floor = f64::from(min_weight.min(FULL / k as u32)) / f64::from(FULL);
    let shares: Vec<f64> = probability_best(arms, model)
        .iter()
        .map(|p| floor + (1.0 - k as f64 * floor) * p)
        .collect();
    to_basis_points(&shares)
}

/// Shares summing to 1 as whole basis points summing to 10,000, by largest remainder (ties to
/// the earlier arm).
fn to_basis_points(shares: &[f64]) -> Vec<u32> {
    let scaled: Vec<f64> = shares.iter().map(|s| s * f64::from(FULL)).collect();
    let mut out: Vec<u32> = scaled.iter().map(|s| s.floor().max(0.0) as u32).collect();
    let given: u32 = out.iter().sum();
    let mut order: Vec<usize> = (0..shares.len()).collect();
    order.sort_by(|&a, &b| {
        let (fa, fb) = (scaled[a] - scaled[a].floor(), scaled[b] - scaled[b].floor());
        fb.total_cmp(&fa).then(a.cmp(&b))
    });
    for &i in order
        .iter()
        .cycle()
        .take(FULL.saturating_sub(given) as usize)
    {
        out[i] += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A conversion arm of `users` at rate `mean`, from one period.
    fn arm(users: u64, mean: f64) -> ArmEstimate {
        ArmEstimate {
            users,
            mean,
            variance: mean * (1.0 - mean) / users as f64,
        }
    }

    /// `P(p_B > p_A)` for `p_A ~ Beta(a_a, b_a)`, `p_B ~ Beta(a_b, b_b)` with integer `a_b`: the
    /// closed form (Evan Miller, "Formulas for Bayesian A/B testing").
    fn b_beats_a(a_a: f64, b_a: f64, a_b: u32, b_b: f64) -> f64 {
        (0..a_b)
            .map(|i| {
                let i = f64::from(i);
                (ln_beta(a_a + i, b_a + b_b)
                    - (b_b + i).ln()
                    - ln_beta(1.0 + i, b_b)
                    - ln_beta(a_a, b_a))
                .exp()
            })
            .sum()
    }

    #[test]
    fn two_beta_arms_match_the_closed_form() {
        for (users_a, conv_a, users_b, conv_b) in [
            (200u32, 20u32, 200u32, 30u32),
            (1_000, 100, 1_000, 100),
            (50, 1, 60, 5),
            (5_000, 600, 4_800, 560),
        ] {
            let arms = [
                ArmEstimate {
                    users: u64::from(users_a),
                    mean: f64::from(conv_a) / f64::from(users_a),
                    variance: 0.0,
                },
                ArmEstimate {
                    users: u64::from(users_b),
                    mean: f64::from(conv_b) / f64::from(users_b),
                    variance: 0.0,
                },
            ];
            // Zero variance falls back to the users as the sample size: exactly
            // Beta(1 + conversions, 1 + users − conversions).
            let p = probability_best(&arms, Model::Conversion);
            let want = b_beats_a(
                1.0 + f64::from(conv_a),
                1.0 + f64::from(users_a - conv_a),
                1 + conv_b,
                1.0 + f64::from(users_b - conv_b),
            );
            assert!((p[1] - want).abs() < 1e-6, "{p:?} vs {want}");
            assert!((p[0] + p[1] - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn two_normal_arms_match_the_closed_form() {
        for (m_a, v_a, m_b, v_b) in [
            (10.0, 0.04, 10.3, 0.05),
            (1.0, 1.0, 0.0, 4.0),
            (5.0, 0.01, 5.0, 0.01),
        ] {
            let arms = [
                ArmEstimate {
                    users: 1_000,
                    mean: m_a,
                    variance: v_a,
                },
                ArmEstimate {
                    users: 1_000,
                    mean: m_b,
                    variance: v_b,
                },
            ];
            let p = probability_best(&arms, Model::Value);
            let want = normal_cdf((m_b - m_a) / (v_a + v_b).sqrt());
            assert!((p[1] - want).abs() < 1e-6, "{p:?} vs {want}");
        }
    }

    #[test]
    fn identical_arms_are_equally_likely_best_and_a_clear_winner_is_certain() {
        for k in [3, 5, 10] {
            let p = probability_best(&vec![arm(2_000, 0.1); k], Model::Conversion);
            for x in &p {
                assert!((x - 1.0 / k as f64).abs() < 1e-6, "{p:?}");
            }
        }
        let p = probability_best(
            &[arm(5_000, 0.1), arm(5_000, 0.2), arm(5_000, 0.1)],
            Model::Conversion,
        );
        assert!(p[1] > 1.0 - 1e-9, "{p:?}");
    }

    #[test]
    fn one_period_is_plain_beta_bernoulli_and_periods_are_weighted_by_their_users() {
        let conv = |users: u64, converted: f64| PeriodArm {
            users,
            sum: converted,
            sum_squares: converted,
        };
        let one = period_weighted(&[vec![conv(100, 10.0), conv(300, 60.0)]], Model::Conversion);
        assert_eq!(one[1].users, 300);
        assert!((one[1].mean - 0.2).abs() < 1e-15);
        assert!((one[1].variance - 0.2 * 0.8 / 300.0).abs() < 1e-15);
        // Period 1 (1,000 users) converts at 10% in both arms, period 2 (3,000 users) at 30%;
        // arm 1 got most of its users in period 2. Pooled naively arm 1 looks better; weighted
        // by period both arms are 0.1·¼ + 0.3·¾ = 0.25.
        let two = period_weighted(
            &[
                vec![conv(500, 50.0), conv(500, 50.0)],
                vec![conv(300, 90.0), conv(2_700, 810.0)],
            ],
            Model::Conversion,
        );
        assert!((two[0].mean - 0.25).abs() < 1e-12 && (two[1].mean - 0.25).abs() < 1e-12);
        // The same users pooled into one period: arm 1 looks better than it is.
        let pooled = period_weighted(
            &[vec![conv(800, 140.0), conv(3_200, 860.0)]],
            Model::Conversion,
        );
        assert!(pooled[1].mean - pooled[0].mean > 0.08, "{pooled:?}");
    }

    #[test]
    fn weights_respect_the_floor_burn_in_and_sum_to_ten_thousand() {
        let clear = [arm(5_000, 0.10), arm(5_000, 0.15), arm(5_000, 0.09)];
        let w = weights(&clear, Model::Conversion, 500, 200);
        assert_eq!(w.iter().sum::<u32>(), 10_000);
        assert!(w.iter().all(|&x| x >= 500), "{w:?}");
        assert!(w[1] > 8_900, "{w:?}");
        // Burn-in: one arm short of users, equal weights.
        let early = [arm(5_000, 0.10), arm(150, 0.15), arm(5_000, 0.09)];
        assert_eq!(
            weights(&early, Model::Conversion, 500, 200),
            [3_334, 3_333, 3_333]
        );
        // Equal arms: equal weights.
        let tie = [arm(1_000, 0.1), arm(1_000, 0.1)];
        assert_eq!(weights(&tie, Model::Conversion, 500, 200), [5_000, 5_000]);
        for shares in [
            [0.33333, 0.33333, 0.33334],
            [0.05, 0.9, 0.05],
            [1e-9, 0.5, 0.5 - 1e-9],
        ] {
            let bp = to_basis_points(&shares);
            assert_eq!(bp.iter().sum::<u32>(), 10_000, "{shares:?}");
        }
    }
}
