//! An experiment's results page: per variant and per segment (users, conversions, rate, lift
//! with its interval drawn around zero, p-value, chance to win), the sample-ratio and
//! data-quality warnings, the cumulative conversion rate over time, and the lift of
//! personalized over generic content per segment. The numbers are the results API's report
//! ([`crate::routes::results::experiment_report`]); this module only lays them out.

use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};
use serde::Deserialize;

use super::chart;
use super::pages::{nav, status_badge};
use super::views::{self, Section};
use super::{
    env_url, experiment_url, flag_url, format, page_response, query_value, signed_in,
    DashboardError,
};
use crate::error::ApiError;
use crate::results::{ArmReport, ExperimentReport, LiftReport, ResultsQuery, ScopeReport};
use crate::routes::results::experiment_report;
use crate::state::AppState;
use crate::stats::{Comparison, FrequentistLift, Outcome};

/// Query of the results page.
#[derive(Debug, Default, Deserialize)]
pub(super) struct PageQuery {
    metric: Option<String>,
    kind: Option<String>,
    sort: Option<String>,
    /// `on`: comparisons adjusted with CUPED.
    cuped: Option<String>,
    /// A multiple-comparison correction, as the results API takes it.
    correction: Option<String>,
    /// `flat`, or a proper prior from the three fields below (results API parameters).
    prior: Option<String>,
    prior_mean: Option<String>,
    prior_sd: Option<String>,
    prior_scale: Option<String>,
}

impl PageQuery {
    fn cuped(&self) -> bool {
        self.cuped.as_deref() == Some("on")
    }

    /// A prior field as a number; a form left empty means "not given", and text that is not a
    /// number is passed on as NaN, which the analysis rejects with the field's name.
    fn number(field: &Option<String>) -> Option<f64> {
        let text = field.as_deref()?.trim();
        if text.is_empty() {
            return None;
        }
        Some(text.parse().unwrap_or(f64::NAN))
    }

    fn nonempty(field: &Option<String>) -> Option<String> {
        field.clone().filter(|v| !v.trim().is_empty())
    }
}

/// Row order of the tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sort {
    /// As configured (control first).
    Config,
    /// Highest lift first (the control counts as 0, rows without a lift last).
    LiftDesc,
    /// Lowest lift first.
    LiftAsc,
}

impl Sort {
    fn parse(s: Option<&str>) -> Sort {
        match s {
            Some("lift") => Sort::LiftDesc,
            Some("lift-asc") => Sort::LiftAsc,
            _ => Sort::Config,
        }
    }

    /// Orders rows by their lift estimate.
    fn apply<T>(self, rows: &mut [T], lift: impl Fn(&T) -> Option<f64>) {
        let key = |r: &T| lift(r).unwrap_or(f64::NAN);
        match self {
            Sort::Config => {}
            Sort::LiftDesc => rows.sort_by(|a, b| {
                let (a, b) = (key(a), key(b));
                a.is_nan().cmp(&b.is_nan()).then(b.total_cmp(&a))
            }),
            Sort::LiftAsc => rows.sort_by(|a, b| {
                let (a, b) = (key(a), key(b));
                a.is_nan().cmp(&b.is_nan()).then(a.total_cmp(&b))
            }),
        }
    }
}

/// The page's own URL with some parameters replaced.
struct Links<'a> {
    base: String,
    query: &'a PageQuery,
}

impl Links<'_> {
    /// This page with `metric`, `kind` or `sort` replaced (`Some("")` drops the sort).
    fn with(&self, metric: Option<&str>, kind: Option<&str>, sort: Option<&str>) -> String {
        self.link(metric, kind, sort, self.query.cuped(), None)
    }

    /// This page with CUPED switched `on` or off.
    fn with_cuped(&self, on: bool) -> String {
        self.link(None, None, None, on, None)
    }

    /// This page with the correction replaced (`""`: none).
    fn with_correction(&self, correction: &str) -> String {
        self.link(None, None, None, self.query.cuped(), Some(correction))
    }

    /// `metric`, `kind` or `sort` replaced (`Some("")` drops `kind` or `sort`), CUPED on or
    /// off, the correction replaced (`Some("")` drops it); the prior is kept.
    fn link(
        &self,
        metric: Option<&str>,
        kind: Option<&str>,
        sort: Option<&str>,
        cuped: bool,
        correction: Option<&str>,
    ) -> String {
        let mut parts = Vec::new();
        if let Some(m) = metric.or(self.query.metric.as_deref()) {
            parts.push(format!("metric={}", query_value(m)));
        }
        if let Some(k) = kind
            .or(self.query.kind.as_deref())
            .filter(|k| !k.is_empty())
        {
            parts.push(format!("kind={}", query_value(k)));
        }
        match sort {
            Some("") => {}
            Some(s) => parts.push(format!("sort={}", query_value(s))),
            None => {
                if let Some(s) = &self.query.sort {
                    parts.push(format!("sort={}", query_value(s)));
                }
            }
        }
        if cuped {
            parts.push("cuped=on".to_string());
        }
        if let Some(c) = correction
            .or(self.query.correction.as_deref())
            .filter(|c| !c.is_empty())
        {
            parts.push(format!("correction={}", query_value(c)));
        }
        for (name, value) in [
            ("prior", &self.query.prior),
            ("prior_mean", &self.query.prior_mean),
            ("prior_sd", &self.query.prior_sd),
            ("prior_scale", &self.query.prior_scale),
        ] {
            if let Some(v) = PageQuery::nonempty(value) {
                parts.push(format!("{name}={}", query_value(&v)));
            }
        }
        if parts.is_empty() {
            self.base.clone()
        } else {
            format!("{}?{}", self.base, parts.join("&"))
        }
    }
}

/// `GET /dashboard/env/{env}/experiments/{experiment}`.
pub(super) async fn experiment(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, DashboardError> {
    let me = signed_in(&req, &state).await?;
    let (env, key) = path.into_inner();
    let current = state.environment(&env)?.current();
    let snapshot = &current.snapshot;
    let exp = snapshot.experiment(&key).ok_or_else(|| {
        ApiError::NotFound(format!(
            "experiment `{key}` does not exist in environment `{env}`"
        ))
    })?;
    let results_query = ResultsQuery {
        metric: query.metric.clone(),
        kind: query.kind.clone(),
        sequential: false,
        alpha: None,
        cuped: query.cuped(),
        correction: PageQuery::nonempty(&query.correction),
        prior: PageQuery::nonempty(&query.prior),
        prior_mean: PageQuery::number(&query.prior_mean),
        prior_sd: PageQuery::number(&query.prior_sd),
        prior_scale: PageQuery::nonempty(&query.prior_scale),
    };
    let report = match experiment_report(&state, &env, &key, &results_query) {
        Ok(r) => Ok(r),
        // An experiment that cannot be analysed yet (no metric, a single arm) is a state to
        // show, not an error page.
        Err(ApiError::BadRequest(message)) => Err(message),
        Err(e) => return Err(e.into()),
    };
    let links = Links {
        base: experiment_url(&env, &key),
        query: &query,
    };
    // An optimize rule's weights over its updates, from the audit log.
    let flag_key = snapshot.experiment_flag(&key).map(str::to_string);
    let optimize = flag_key.as_deref().and_then(|f| {
        snapshot
            .document()
            .flag(f)?
            .rules
            .iter()
            .find(|r| r.experiment.as_deref() == Some(key.as_str()))?
            .optimize
            .clone()
    });
    let history = match (&flag_key, &optimize) {
        (Some(f), Some(o)) => super::optimization::history(
            &super::pages::flag_audit(&state, &env, f, 2_000).await?,
            o,
        ),
        _ => Vec::new(),
    };
    let sort = Sort::parse(query.sort.as_deref());
    let title = exp.name.clone().unwrap_or_else(|| exp.key.clone());
    let metrics: Vec<&str> = exp.metrics();
    let ratio = |m: &str| exp.ratio_metric(m).is_some();
    let body = html! {
        p.crumbs { a href=(env_url(&env, "experiments")) { "Experiments" } " / " }
        h1 { (title) " " (status_badge(exp.status)) }
        @if let Some(h) = &exp.hypothesis { p.hypothesis { (h) } }
        dl.facts.meta {
            dt { "Experiment" } dd { code { (exp.key) } }
            @if let Some(f) = snapshot.experiment_flag(&key) {
                dt { "Flag" } dd { a href=(flag_url(&env, f)) { (f) } }
            }
            @if let Ok(r) = &report {
                dt { "Control" } dd { (r.control) }
                dt { "Analysed" } dd { (format::timestamp(&r.analyzed_at)) ", revision " (r.revision) ", " (format::number((1.0 - r.alpha) * 100.0, 0)) "% intervals" }
            }
        }
        @if !metrics.is_empty() {
            nav.tabs aria-label="Metric" {
                span.muted.small { "Metric: " }
                @for m in &metrics {
                    @let current = report.as_ref().map(|r| r.metric.as_str()).ok() == Some(*m);
                    // A ratio metric has no measure to choose: its link drops `kind`.
                    a.tab.current[current] data-metric=(m) href=(links.with(Some(m), ratio(m).then_some(""), None)) { (m)
                        @if exp.primary_metric.as_deref() == Some(*m) { " (primary)" }
                        @if ratio(m) { " (ratio)" } }
                }
                @if !report.as_ref().is_ok_and(|r| r.kind == "ratio") {
                    span.muted.small { " Measure: " }
                    @let value = query.kind.as_deref() == Some("value");
                    a.tab.current[!value] href=(links.with(None, Some("conversion"), None)) { "conversion rate" }
                    a.tab.current[value] href=(links.with(None, Some("value"), None)) { "value per user" }
                    span.muted.small { " Adjustment: " }
                    a.tab.current[!query.cuped()] href=(links.with_cuped(false)) { "none" }
                    a.tab.current[query.cuped()] #cuped-on href=(links.with_cuped(true)) { "CUPED" }
                }
            }
            @let correction = report.as_ref().ok().and_then(|r| r.correction.as_ref()).map(|c| c.method);
            nav.tabs #corrections aria-label="Multiple-comparison correction" {
                span.muted.small { "Correction across metrics and variants: " }
                a.tab.current[correction.is_none()] href=(links.with_correction("none")) { "none" }
                a.tab.current[correction == Some("holm_bonferroni")] #correction-holm href=(links.with_correction("holm_bonferroni")) { "Holm–Bonferroni" }
                a.tab.current[correction == Some("benjamini_hochberg")] #correction-bh href=(links.with_correction("benjamini_hochberg")) { "Benjamini–Hochberg" }
            }
            (prior_form(&query, &links, report.as_ref().ok().and_then(|r| r.prior)))
        }
        @match &report {
            Err(message) => {
                div.notice.not-enough #not-enough-data role="status" {
                    strong { "Not enough data. " } (message)
                }
            },
            Ok(report) => {
                (report_body(report, sort, &links))
                @if let (Some(o), Some(f)) = (&report.optimization, &flag_key) {
                    @let colour = |v: &str| report.overall.arms.iter().position(|a| a.variant == v).unwrap_or(0);
                    (super::optimization::section(&env, f, report, o, &history, &colour))
                }
            },
        }
    };
    let nav = nav(&state, &me, Some(&env), Section::Experiments);
    Ok(page_response(views::layout(&title, &nav, body)))
}

fn report_body(report: &ExperimentReport, sort: Sort, links: &Links<'_>) -> Markup {
    let colour = |v: &str| {
        report
            .overall
            .arms
            .iter()
            .position(|a| a.variant == v)
            .unwrap_or(0)
    };
    let total_users: u64 = report.overall.arms.iter().map(|a| a.users).sum();
    let corrected = report.correction.is_some();
    html! {
        @if !report.data_quality.warnings.is_empty() {
            div.warnings #warnings {
                @for w in &report.data_quality.warnings {
                    p.alert.alert-warn role="alert" { strong { "Warning: " } (w) }
                }
            }
        }
        @if total_users == 0 {
            div.notice.not-enough #not-enough-data role="status" {
                strong { "Not enough data yet. " }
                "No users have been exposed to this experiment. Results appear here as the SDKs report exposures."
            }
        }
        section #overall.scope {
            h2 { "Overall" }
            (arms_table(&report.overall, report.kind, corrected, sort, links, &colour, &report.metric))
            (correction_line(report))
            (srm_line(&report.overall))
            (cuped_line(report))
            h3 { "Cumulative conversion rate (" (report.metric) ")" }
            div.chart-wrap #chart {
                @if report.timeline.iter().any(|s| s.points.iter().any(|p| p.users > 0)) {
                    (chart::conversion_rate(&report.timeline, colour, chart::WIDE))
                    (chart::conversion_rate(&report.timeline, colour, chart::NARROW))
                    div.legend {
                        @for a in &report.overall.arms {
                            span.legend-item { (swatch(colour(&a.variant))) " " (a.variant) }
                        }
                    }
                } @else {
                    p.empty { "No exposures yet: the chart appears with the first data." }
                }
            }
        }
        @if !report.segments.is_empty() {
            h2 { "By segment" }
            @for s in &report.segments {
                section.scope data-scope=(s.scope) {
                    h3 { (s.scope) }
                    (arms_table(s, report.kind, corrected, sort, links, &colour, &report.metric))
                    (srm_line(s))
                }
            }
        }
        @if let Some(p) = &report.personalization {
            section #personalization.scope {
                h2 { "Personalization: tailored vs generic" }
                p.muted { "Users who got a segment's tailored content against the users of the same segment held out to the generic default." }
                (lift_table(&p.segments, &p.pooled, sort, links))
            }
        }
    }
}

/// The prior of the Bayesian numbers: a GET form (it only changes the view) with the prior in
/// use filled in, and a link back to the flat prior.
fn prior_form(query: &PageQuery, links: &Links<'_>, prior: Option<crate::stats::Prior>) -> Markup {
    let shown = |asked: &Option<String>, used: Option<f64>| {
        PageQuery::nonempty(asked).or_else(|| used.map(|v| v.to_string()))
    };
    let mean = shown(&query.prior_mean, prior.map(|p| p.mean));
    let sd = shown(&query.prior_sd, prior.map(|p| p.std_dev));
    let absolute = prior.is_some_and(|p| p.scale == crate::stats::LiftScale::Absolute);
    let flat = Links {
        base: links.base.clone(),
        query: &PageQuery {
            prior: Some("flat".into()),
            prior_mean: None,
            prior_sd: None,
            prior_scale: None,
            metric: query.metric.clone(),
            kind: query.kind.clone(),
            sort: query.sort.clone(),
            cuped: query.cuped.clone(),
            correction: query.correction.clone(),
        },
    };
    html! {
        form.prior #prior-form method="get" action=(links.base) {
            @for (name, value) in [("metric", &query.metric), ("kind", &query.kind), ("sort", &query.sort), ("cuped", &query.cuped), ("correction", &query.correction)] {
                @if let Some(v) = value { input type="hidden" name=(name) value=(v); }
            }
            span.muted.small #prior { "Bayesian prior on the lift: "
                @match prior {
                    None => { "flat (none). " },
                    Some(p) => { "normal, mean " (p.mean) ", sd " (p.std_dev) " (" @if absolute { "absolute" } @else { "relative" } "). " },
                }
            }
            label for="prior-mean" { "Mean" }
            input #prior-mean type="text" inputmode="decimal" name="prior_mean" size="6" value=[mean];
            label for="prior-sd" { "SD" }
            input #prior-sd type="text" inputmode="decimal" name="prior_sd" size="6" value=[sd];
            label for="prior-scale" { "On" }
            select #prior-scale name="prior_scale" {
                option value="relative" selected[!absolute] { "relative lift" }
                option value="absolute" selected[absolute] { "absolute lift" }
            }
            button.btn type="submit" { "Apply prior" }
            " "
            a #prior-flat href=(flat.with(None, None, None)) { "flat prior" }
        }
    }
}

/// Which correction the adjusted column applies, over which metrics.
fn correction_line(report: &ExperimentReport) -> Markup {
    let Some(c) = &report.correction else {
        return html! {};
    };
    let name = match c.method {
        "holm_bonferroni" => "Holm–Bonferroni (family-wise error)",
        _ => "Benjamini–Hochberg (false discovery rate)",
    };
    html! {
        p.muted #correction {
            "Adjusted: " (name) " over every variant of " (c.metrics.join(", "))
            ", within each scope; an interval is never narrowed."
        }
    }
}

/// What CUPED did to each overall comparison, when it was asked for.
fn cuped_line(report: &ExperimentReport) -> Markup {
    let Some(days) = report.cuped_lookback_days else {
        return html! {};
    };
    html! {
        p.muted #cuped {
            "CUPED: adjusted with each user's " (report.metric) " in the " (days)
            " days before their first exposure."
            @for a in &report.overall.arms {
                @if let Some(c) = a.result.comparison.and_then(|c| c.cuped) {
                    " " (a.variant) ": θ = " (format::number(c.theta, 3))
                    @if let Some(r) = c.variance_reduction {
                        ", variance removed " (format::number(r * 100.0, 1)) "%"
                    }
                    "."
                }
            }
        }
    }
}

fn swatch(colour: usize) -> Markup {
    html! {
        svg.swatch viewBox="0 0 10 10" aria-hidden="true" {
            rect class=(format!("series-{}", colour % chart::SERIES_COLOURS)) width="10" height="10" rx="2" {}
        }
    }
}

/// The relative lift, when there is one.
fn relative(c: Option<&Comparison>) -> Option<&FrequentistLift> {
    c.and_then(|c| c.relative.value())
}

fn lift_header(sort: Sort, links: &Links<'_>) -> Markup {
    let (next, arrow) = match sort {
        Sort::LiftDesc => ("lift-asc", " ↓"),
        Sort::LiftAsc => ("", " ↑"),
        Sort::Config => ("lift", ""),
    };
    html! {
        th.lift-col {
            a.sort href=(links.with(None, None, Some(next))) title="Sort by lift" { "Lift" (arrow) }
        }
    }
}

/// The lift cells: estimate and interval, bar, p-value, chance to win. Cells carry their
/// column name in `data-label`, shown instead of the header when a phone shows rows as cards.
fn lift_cells(comparison: Option<&Comparison>, is_control: bool, scale: f64) -> Markup {
    let bar_label = format!(
        "95% interval (±{})",
        chart::scale_label(scale).trim_start_matches('+')
    );
    let Some(c) = comparison else {
        return html! {
            td.lift data-label="Lift" { span.muted { @if is_control { "baseline" } @else { "—" } } }
            td.bar.na data-label=(bar_label) {}
            td.num.p-value.na data-label="p-value" { "—" }
            td.num.chance.na data-label="Chance to win" { "—" }
        };
    };
    match (&c.relative, c.bayesian.value()) {
        (Outcome::Ok(rel), bayes) => {
            let class = if rel.ci.lower > 0.0 {
                "up"
            } else if rel.ci.upper < 0.0 {
                "down"
            } else {
                "flat"
            };
            html! {
                td.lift data-label="Lift" {
                    span.estimate class=(class) { (format::signed_percent(rel.estimate)) }
                    span.interval { (format::interval(rel.ci.lower, rel.ci.upper)) }
                }
                td.bar data-label=(bar_label) { (chart::interval_bar(rel.estimate, rel.ci.lower, rel.ci.upper, scale)) }
                td.num.p-value data-label="p-value" { (format::p_value(rel.p_value)) }
                td.num.chance data-label="Chance to win" { @match bayes { Some(b) => { (format::chance(b.chance_to_win)) }, None => { "—" } } }
            }
        }
        (Outcome::NotEnoughData { reason }, _) => html! {
            td.lift.nodata data-label="Lift" {
                span.not-enough-data { "not enough data" }
                span.reason { (reason.message()) }
            }
            td.bar.na data-label=(bar_label) {}
            td.num.p-value.na data-label="p-value" { "—" }
            td.num.chance.na data-label="Chance to win" { "—" }
        },
    }
}

/// The corrected p-value and interval of an arm's relative lift (`—` where there is none).
fn adjusted_cell(arm: &ArmReport) -> Markup {
    html! {
        td.num.adjusted data-label="Adjusted" {
            @match &arm.adjusted {
                Some(adj) => {
                    (format::p_value(adj.p_value))
                    span.sub { @match adj.ci { Some(ci) => { (format::interval(ci.lower, ci.upper)) }, None => { "unbounded" } } }
                },
                None => { span.muted { "—" } },
            }
        }
    }
}

/// One scope's arms; `kind` is the report's (`conversion`, `value` or `ratio`).
fn arms_table(
    scope: &ScopeReport,
    kind: &str,
    corrected: bool,
    sort: Sort,
    links: &Links<'_>,
    colour: &dyn Fn(&str) -> usize,
    metric: &str,
) -> Markup {
    let (value, ratio) = (kind == "value", kind == "ratio");
    let mut arms: Vec<&ArmReport> = scope.arms.iter().collect();
    sort.apply(&mut arms, |a| match &a.result.comparison {
        None => Some(0.0),
        Some(c) => c.relative.value().map(|r| r.estimate),
    });
    let scale = chart::interval_scale(
        arms.iter()
            .filter_map(|a| relative(a.result.comparison.as_ref()))
            .map(|r| (r.ci.lower, r.ci.upper)),
    );
    html! {
        div.table-wrap {
            table.results.cards {
                thead {
                    tr {
                        th { "Variant" }
                        th.num { "Users" }
                        th.num { @if ratio { "Numerator / denominator" } @else if value { "Total " (metric) } @else { "Conversions" } }
                        th.num { @if ratio { "Ratio" } @else if value { "Per user" } @else { "Rate" } }
                        (lift_header(sort, links))
                        th.bar { (chart::interval_axis(scale)) }
                        th.num { "p-value" }
                        @if corrected { th.num { "Adjusted" } }
                        th.num { "Chance to win" }
                    }
                }
                tbody {
                    @for a in &arms {
                        @let is_control = a.result.comparison.is_none();
                        tr.control[is_control] data-variant=(a.variant) {
                            td.variant.card-title {
                                (swatch(colour(&a.variant))) " " strong { (a.variant) }
                                @if is_control { " " span.tag { "control" } }
                            }
                            td.num.users data-label="Users" { (format::count(a.users)) }
                            td.num.conversions data-label=(if ratio { "Numerator / denominator" } else if value { "Total" } else { "Conversions" }) {
                                @if let Some(r) = &a.ratio { (format::number(r.numerator, 2)) " / " (format::number(r.denominator, 2)) }
                                @else if value { (format::number(a.value_sum, 2)) } @else { (format::count(a.converted)) }
                            }
                            td.num.rate data-label=(if ratio { "Ratio" } else if value { "Per user" } else { "Rate" }) {
                                @match a.result.moments.value() {
                                    Some(m) if value || ratio => { (format::number(m.mean, 3)) },
                                    Some(m) => { (format::percent(m.mean)) },
                                    None => { span.muted { "—" } },
                                }
                            }
                            (lift_cells(a.result.comparison.as_ref(), is_control, scale))
                            @if corrected { (adjusted_cell(a)) }
                        }
                    }
                }
            }
        }
    }
}

/// `p = 0.032` or `p < 0.001`.
fn p_text(p: f64) -> String {
    let v = format::p_value(p);
    if v.starts_with('<') {
        format!("p {v}")
    } else {
        format!("p = {v}")
    }
}

fn srm_line(scope: &ScopeReport) -> Markup {
    html! {
        @match &scope.srm {
            None => {},
            Some(Outcome::Ok(srm)) if srm.mismatch => {
                p.srm.srm-bad { "Sample ratio mismatch: users are not split as configured (" (p_text(srm.p_value)) ")." }
            },
            Some(Outcome::Ok(srm)) => {
                p.srm.srm-ok.muted.small { "Traffic split as configured (sample-ratio check " (p_text(srm.p_value)) ")." }
            },
            Some(Outcome::NotEnoughData { reason }) => {
                p.srm.muted.small { "Sample-ratio check: not enough data (" (reason.message()) ")." }
            },
        }
    }
}

fn lift_table(
    segments: &[LiftReport],
    pooled: &LiftReport,
    sort: Sort,
    links: &Links<'_>,
) -> Markup {
    let mut rows: Vec<&LiftReport> = segments.iter().collect();
    sort.apply(&mut rows, |r| {
        r.comparison.relative.value().map(|l| l.estimate)
    });
    let scale = chart::interval_scale(
        rows.iter()
            .copied()
            .chain(std::iter::once(pooled))
            .filter_map(|r| r.comparison.relative.value())
            .map(|r| (r.ci.lower, r.ci.upper)),
    );
    let rate = |converted: u64, users: u64| {
        if users == 0 {
            "—".to_string()
        } else {
            format::percent(converted as f64 / users as f64)
        }
    };
    let row = |r: &LiftReport, pooled: bool| {
        html! {
            tr.pooled[pooled] data-segment=(r.segment) {
                td.card-title { @if pooled { strong { "All segments" } } @else { strong { (r.segment) } } }
                td.num.personalized-rate data-label="Tailored" {
                    (rate(r.personalized_converted, r.personalized_users))
                    span.sub { (format::count(r.personalized_converted)) " of " (format::count(r.personalized_users)) " users" }
                }
                td.num.generic-rate data-label="Generic" {
                    (rate(r.generic_converted, r.generic_users))
                    span.sub { (format::count(r.generic_converted)) " of " (format::count(r.generic_users)) " users" }
                }
                (lift_cells(Some(&r.comparison), false, scale))
            }
        }
    };
    html! {
        div.table-wrap {
            table.results.cards.lift-table {
                thead {
                    tr {
                        th { "Segment" }
                        th.num { "Tailored" }
                        th.num { "Generic" }
                        (lift_header(sort, links))
                        th.bar { (chart::interval_axis(scale)) }
                        th.num { "p-value" }
                        th.num { "Chance to win" }
                    }
                }
                tbody {
                    @for r in &rows { (row(r, false)) }
                    (row(pooled, true))
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lift_sorting_puts_rows_without_a_lift_last() {
        let mut rows = vec![Some(0.1), None, Some(-0.2), Some(0.0), Some(0.3)];
        Sort::LiftDesc.apply(&mut rows, |r| *r);
        assert_eq!(rows, [Some(0.3), Some(0.1), Some(0.0), Some(-0.2), None]);
        Sort::LiftAsc.apply(&mut rows, |r| *r);
        assert_eq!(rows, [Some(-0.2), Some(0.0), Some(0.1), Some(0.3), None]);
    }
}
