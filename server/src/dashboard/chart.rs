//! Server-side SVG: the cumulative conversion rate per variant over time, an optimize rule's
//! weights over its updates, and confidence intervals drawn as bars around zero. Plain markup (no script, no external font); colours come
//! from CSS classes (`series-N`, `ci-*`) so the page's legend and lines always agree.

use maud::{html, Markup};

use super::format;
use crate::attribution::VariantSeries;

/// Number of distinct series colours in the stylesheet (`.series-0` … `.series-7`).
pub const SERIES_COLOURS: usize = 8;

/// The drawing size of a chart, in SVG units (≈ CSS pixels at 1:1 scale). The page carries a
/// wide and a narrow drawing and CSS shows the one that fits, so labels stay legible on phones.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    /// Width.
    pub width: f64,
    /// Height.
    pub height: f64,
    /// Number of time labels.
    pub time_labels: i64,
    /// CSS classes of the `svg`.
    pub class: &'static str,
}

/// For laptop and desktop widths.
pub const WIDE: Size = Size {
    width: 720.0,
    height: 260.0,
    time_labels: 4,
    class: "chart chart-wide",
};

/// For phones.
pub const NARROW: Size = Size {
    width: 360.0,
    height: 220.0,
    time_labels: 2,
    class: "chart chart-narrow",
};

const LEFT: f64 = 44.0;
const RIGHT: f64 = 14.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 30.0;

fn ceiling_of(x: f64, mantissas: &[f64]) -> f64 {
    if !(x.is_finite() && x > 0.0) {
        return 1.0;
    }
    let exponent = x.log10().floor() as i32;
    // Dividing by an exact power of ten keeps 0.15 from becoming 0.15000000000000002.
    let scaled = |m: f64| {
        if exponent < 0 {
            m / 10f64.powi(-exponent)
        } else {
            m * 10f64.powi(exponent)
        }
    };
    mantissas
        .iter()
        .map(|m| scaled(*m))
        .find(|v| *v >= x * (1.0 - 1e-12))
        .unwrap_or_else(|| scaled(10.0))
}

/// The smallest of 1, 1.5, 2, 2.5 and 5 × 10^k that is at least `x` (for axis ranges).
pub fn nice_ceiling(x: f64) -> f64 {
    ceiling_of(x, &[1.0, 1.5, 2.0, 2.5, 5.0, 10.0])
}

/// The smallest of 1, 2, 2.5 and 5 × 10^k that is at least `x` (for tick steps).
pub fn nice_step(x: f64) -> f64 {
    ceiling_of(x, &[1.0, 2.0, 2.5, 5.0, 10.0])
}

/// One line of a chart: its colour index, its name, its `(unix ms, share)` points.
type Line<'s> = (usize, &'s str, Vec<(i64, f64)>);

/// Each variant's weight (a share of its context's traffic) at each update: `history` holds
/// `(unix ms, weights in basis points)` in time order, `variants` name the weights.
pub fn weight_history(
    variants: &[String],
    history: &[(i64, Vec<u32>)],
    colour: impl Fn(&str) -> usize,
    size: Size,
) -> Markup {
    let lines: Vec<Line<'_>> = variants
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let points = history
                .iter()
                .filter_map(|(at, w)| w.get(i).map(|w| (*at, f64::from(*w) / 10_000.0)))
                .collect();
            (colour(v), v.as_str(), points)
        })
        .collect();
    draw(lines, "Traffic weight per variant", size)
}

/// The cumulative conversion rate of each variant over time. `series_class(variant)` gives
/// the variant's colour index, shared with the tables' swatches.
pub fn conversion_rate(
    series: &[VariantSeries],
    colour: impl Fn(&str) -> usize,
    size: Size,
) -> Markup {
    let points: Vec<Line<'_>> = series
        .iter()
        .map(|s| {
            let pts = s
                .points
                .iter()
                .filter(|p| p.users > 0)
                .map(|p| (p.at, p.converted as f64 / p.users as f64))
                .collect();
            (colour(&s.variant), s.variant.as_str(), pts)
        })
        .collect();
    draw(points, "Cumulative conversion rate per variant", size)
}

/// Lines of shares over time, with a percent axis and `what` in the chart's accessible name.
fn draw(points: Vec<Line<'_>>, what: &str, size: Size) -> Markup {
    let Size {
        width,
        height,
        time_labels,
        class,
    } = size;
    let all = points.iter().flat_map(|(_, _, p)| p.iter());
    let (mut t0, mut t1, mut top) = (i64::MAX, i64::MIN, 0.0f64);
    for (t, r) in all {
        t0 = t0.min(*t);
        t1 = t1.max(*t);
        top = top.max(*r);
    }
    if t0 > t1 {
        return html! {
            p.empty { "No exposures yet: the chart appears with the first data." }
        };
    }
    if t1 == t0 {
        // One hour of data: show it in the middle of a two-hour window.
        t0 -= 3_600_000;
        t1 += 3_600_000;
    }
    // Round ticks: a step of 1, 2, 2.5 or 5 × 10^k, at most five of them above zero.
    let wanted = (top * 1.05).max(0.01);
    let step = nice_step(wanted / 5.0);
    let steps = (wanted / step).ceil().max(1.0);
    let y_max = step * steps;
    let plot_w = width - LEFT - RIGHT;
    let plot_h = height - TOP - BOTTOM;
    let x = |t: i64| LEFT + (t - t0) as f64 / (t1 - t0) as f64 * plot_w;
    let y = |r: f64| TOP + (1.0 - (r / y_max).clamp(0.0, 1.0)) * plot_h;
    let y_ticks: Vec<f64> = (0..=steps as u32).map(|i| step * f64::from(i)).collect();
    let decimals = (0..3)
        .find(|d| {
            let scaled = step * 100.0 * 10f64.powi(*d);
            (scaled - scaled.round()).abs() < 1e-6
        })
        .unwrap_or(3) as usize;
    let last = (time_labels - 1).max(1);
    let x_ticks: Vec<i64> = (0..=last).map(|i| t0 + (t1 - t0) * i / last).collect();
    let label = format!(
        "{what} from {} to {}",
        format::unix_millis(t0),
        format::unix_millis(t1)
    );
    html! {
        svg class=(class) viewBox=(format!("0 0 {width} {height}")) role="img" aria-label=(label)
            preserveAspectRatio="xMidYMid meet" {
            title { (label) }
            @for tick in &y_ticks {
                line.grid x1=(LEFT) x2=(width - RIGHT) y1=(r1(y(*tick))) y2=(r1(y(*tick))) {}
                text.axis x=(LEFT - 6.0) y=(r1(y(*tick) + 4.0)) text-anchor="end" {
                    (format!("{:.*}%", decimals, tick * 100.0))
                }
            }
            @for (i, tick) in x_ticks.iter().enumerate() {
                text.axis x=(r1(x(*tick))) y=(height - 10.0)
                    text-anchor=(if i == 0 { "start" } else if i as i64 == last { "end" } else { "middle" }) {
                    (format::axis_time(*tick))
                }
            }
            line.axis-line x1=(LEFT) x2=(width - RIGHT) y1=(TOP + plot_h) y2=(TOP + plot_h) {}
            @for (colour, variant, pts) in &points {
                @let class = format!("series series-{}", colour % SERIES_COLOURS);
                @if pts.len() > 1 {
                    polyline class=(class) fill="none" points=(
                        pts.iter().map(|(t, r)| format!("{},{}", r1(x(*t)), r1(y(*r))))
                            .collect::<Vec<_>>().join(" ")
                    ) {
                        title { (variant) }
                    }
                }
                @if let Some((t, r)) = pts.last() {
                    circle class=(format!("dot series-{}", colour % SERIES_COLOURS))
                        cx=(r1(x(*t))) cy=(r1(y(*r))) r="3.5" {
                        title { (variant) ": " (format::percent(*r)) }
                    }
                }
            }
        }
    }
}

fn r1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Half-width of the shared axis of a column of interval bars: covers every interval.
pub fn interval_scale(intervals: impl IntoIterator<Item = (f64, f64)>) -> f64 {
    let widest = intervals
        .into_iter()
        .map(|(l, u)| l.abs().max(u.abs()))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    nice_ceiling(widest.max(0.05))
}

const BAR_W: f64 = 160.0;
const BAR_H: f64 = 22.0;

fn bar_x(v: f64, scale: f64) -> f64 {
    let half = BAR_W / 2.0 - 4.0;
    r1((BAR_W / 2.0 + v / scale * half).clamp(2.0, BAR_W - 2.0))
}

/// A confidence interval as a bar around zero (green when it is all above zero, red when all
/// below, grey when it straddles zero), with the estimate as a dot.
pub fn interval_bar(estimate: f64, lower: f64, upper: f64, scale: f64) -> Markup {
    let class = if lower > 0.0 {
        "ci-bar ci-up"
    } else if upper < 0.0 {
        "ci-bar ci-down"
    } else {
        "ci-bar ci-flat"
    };
    let (x0, x1) = (bar_x(lower, scale), bar_x(upper, scale));
    let label = format!(
        "lift {} , 95% interval {}",
        format::signed_percent(estimate),
        format::interval(lower, upper)
    );
    html! {
        svg.ci viewBox=(format!("0 0 {BAR_W} {BAR_H}")) role="img" aria-label=(label) {
            title { (label) }
            line.ci-zero x1=(BAR_W / 2.0) x2=(BAR_W / 2.0) y1="1" y2=(BAR_H - 1.0) {}
            rect class=(class) x=(x0) y="7" width=(r1((x1 - x0).max(1.5))) height="8" rx="2" {}
            circle.ci-dot cx=(bar_x(estimate, scale)) cy=(BAR_H / 2.0) r="3" {}
        }
    }
}

/// `±1.5` → `+150%`: the ends of an interval axis (always round numbers).
pub fn scale_label(v: f64) -> String {
    let pct = v * 100.0;
    let text = if (pct - pct.round()).abs() < 1e-9 {
        format!("{:.0}%", pct.abs())
    } else {
        format!("{:.1}%", pct.abs())
    };
    if v < 0.0 {
        format!("\u{2212}{text}")
    } else {
        format!("+{text}")
    }
}

/// The axis above a column of interval bars: `−scale`, `0`, `+scale`.
pub fn interval_axis(scale: f64) -> Markup {
    html! {
        svg.ci.ci-axis viewBox=(format!("0 0 {BAR_W} 14")) role="img"
            aria-label=(format!("axis from {} to {}", scale_label(-scale), scale_label(scale))) {
            text.axis x="2" y="11" text-anchor="start" { (scale_label(-scale)) }
            text.axis x=(BAR_W / 2.0) y="11" text-anchor="middle" { "0" }
            text.axis x=(BAR_W - 2.0) y="11" text-anchor="end" { (scale_label(scale)) }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::attribution::CumulativePoint;

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(0.13), 0.15);
        assert_eq!(nice_ceiling(0.16), 0.2);
        assert_eq!(nice_ceiling(0.2), 0.2);
        assert_eq!(nice_ceiling(0.21), 0.25);
        assert_eq!(nice_ceiling(0.3), 0.5);
        assert_eq!(nice_ceiling(0.6), 1.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(f64::NAN), 1.0);
        assert_eq!(interval_scale([(-0.02, 0.62), (0.1, 0.3)]), 1.0);
        assert_eq!(interval_scale([(0.35, 1.12)]), 1.5);
        assert_eq!(interval_scale([]), 0.05);
        assert_eq!(nice_step(0.13 / 5.0), 0.05);
        assert_eq!(nice_step(0.003), 0.005);
    }

    #[test]
    fn one_line_per_variant_and_names_are_escaped() {
        let series = vec![
            VariantSeries {
                variant: "control".into(),
                points: vec![
                    CumulativePoint {
                        at: 0,
                        users: 10,
                        converted: 1,
                    },
                    CumulativePoint {
                        at: 3_600_000,
                        users: 20,
                        converted: 3,
                    },
                ],
            },
            VariantSeries {
                variant: "<b>x</b>".into(),
                points: vec![
                    CumulativePoint {
                        at: 0,
                        users: 10,
                        converted: 2,
                    },
                    CumulativePoint {
                        at: 3_600_000,
                        users: 20,
                        converted: 5,
                    },
                ],
            },
        ];
        let svg = conversion_rate(&series, |v| usize::from(v != "control"), WIDE).into_string();
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert!(svg.contains("series-0") && svg.contains("series-1"));
        assert!(svg.contains("&lt;b&gt;x&lt;/b&gt;") && !svg.contains("<b>"));
        assert!(svg.contains("25.00%"), "last point's rate: {svg}");
        let empty = conversion_rate(&[], |_| 0, NARROW).into_string();
        assert!(empty.contains("No exposures yet"));
    }

    #[test]
    fn interval_bars_are_coloured_by_sign() {
        assert!(interval_bar(0.3, 0.1, 0.5, 1.0)
            .into_string()
            .contains("ci-up"));
        assert!(interval_bar(-0.3, -0.5, -0.1, 1.0)
            .into_string()
            .contains("ci-down"));
        assert!(interval_bar(0.1, -0.1, 0.3, 1.0)
            .into_string()
            .contains("ci-flat"));
    }
}
