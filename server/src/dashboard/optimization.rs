//! Learned personalization on the experiment page: per context, the weights SDKs split by, their
//! history over the optimizer's updates, each variant's period-weighted estimate, and the
//! policy's lift over generic content; and freezing the policy on each context's best variant
//! (or resuming learning), two steps like every change in the dashboard, through the admin
//! API's own flag action ([`admin::freeze_optimize`]).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};
use serde::Deserialize;
use tailor_core::model::{ContextWeights, Flag, Optimize};

use super::pages::find_flag;
use super::{chart, experiment_url, flag_url, format, signed_in, signed_in_post, DashboardError};
use crate::results::{ExperimentReport, OptimizationReport};
use crate::routes::admin;
use crate::state::AppState;
use crate::store::AuditEntry;

/// Per context, its weights at each update: `(unix ms, basis points per variant)`, oldest first.
pub(super) type History = Vec<(String, Vec<(i64, Vec<u32>)>)>;

/// Each context's weights at every update the audit log holds.
pub(super) fn history(entries: &[AuditEntry], optimize: &Optimize) -> History {
    let mut updates: Vec<&AuditEntry> = entries.iter().filter(|e| e.action == "optimize").collect();
    updates.sort_by_key(|e| e.id);
    optimize
        .all_contexts()
        .into_iter()
        .map(|context| {
            let points = updates
                .iter()
                .filter_map(|e| {
                    let after: Vec<ContextWeights> =
                        serde_json::from_value(e.after.clone()?).ok()?;
                    let w = after.into_iter().find(|w| w.context == context)?;
                    let at = i64::try_from(w.period)
                        .ok()?
                        .checked_mul(optimize.period_ms())?;
                    Some((at, w.weights))
                })
                .collect();
            (context.to_string(), points)
        })
        .collect()
}

/// The page's learned-personalization section.
pub(super) fn section(
    env: &str,
    flag: &str,
    report: &ExperimentReport,
    optimization: &OptimizationReport,
    history: &History,
    colour: &dyn Fn(&str) -> usize,
) -> Markup {
    let freeze = format!(
        "{}/freeze?rule={}&frozen={}",
        flag_url(env, flag),
        optimization.rule,
        !optimization.frozen
    );
    // A conversion rate as a percentage, a value per user as a number.
    let shown = |x: f64| {
        if optimization.kind == "conversion" {
            format::percent(x)
        } else {
            format::number(x, 2)
        }
    };
    html! {
        section #optimization.scope {
            h2 { "Learned personalization" }
            p.muted {
                "The optimizer moves each context's traffic toward the variant that converts best on "
                (optimization.metric) " (" (optimization.kind) "), updating every " (optimization.update_minutes) " min. "
                (optimization.note)
            }
            @if optimization.frozen {
                p.notice #frozen { strong { "Frozen. " } "Learning is stopped; the weights stay as published." }
            }
            @for context in &optimization.contexts {
                @let lift = report.personalization.as_ref().and_then(|p| p.segments.iter().find(|s| s.segment == context.label));
                section.context data-context=(context.context) {
                    h3 { @if context.context == "*" { "Everyone else (" (context.label) ")" } @else { (context.context) } }
                    div.table-wrap {
                        table.results.cards {
                            thead { tr {
                                th { "Variant" } th.num { "Weight" } th.num { "Users" }
                                th.num { "Estimate (period-weighted)" } th.num { "Chance best" }
                            } }
                            tbody {
                                @for (arm, weight) in context.arms.iter().zip(&context.weights) {
                                    tr data-variant=(arm.variant) {
                                        td.card-title { strong { (arm.variant) } }
                                        td.num.weight data-label="Weight" { (format::basis_points(*weight)) }
                                        td.num data-label="Users" { (format::count(arm.users)) }
                                        td.num data-label="Estimate" {
                                            (shown(arm.mean))
                                            span.sub { "[" (shown(arm.ci.lower)) ", " (shown(arm.ci.upper)) "]" }
                                        }
                                        td.num.best data-label="Chance best" { (format::chance(arm.probability_best)) }
                                    }
                                }
                            }
                        }
                    }
                    @if let Some(lift) = lift {
                        p.policy-lift {
                            "Policy against generic content: "
                            @match lift.comparison.absolute.value() {
                                Some(l) if report.kind == "conversion" => { strong { (format::signed_percent(l.estimate)) } " " (format::interval(l.ci.lower, l.ci.upper)) " in conversion rate (" (format::count(lift.personalized_users)) " vs " (format::count(lift.generic_users)) " users)" },
                                Some(l) => { strong { (format::number(l.estimate, 2)) } " [" (format::number(l.ci.lower, 2)) ", " (format::number(l.ci.upper, 2)) "] in " (report.kind) " per user (" (format::count(lift.personalized_users)) " vs " (format::count(lift.generic_users)) " users)" },
                                None => { "not enough data yet" },
                            }
                        }
                    }
                    @if let Some((_, points)) = history.iter().find(|(c, _)| *c == context.context) {
                        @if points.len() > 1 {
                            div.chart-wrap.weights-chart {
                                @let variants: Vec<String> = context.arms.iter().map(|a| a.variant.clone()).collect();
                                (chart::weight_history(&variants, points, colour, chart::WIDE))
                                (chart::weight_history(&variants, points, colour, chart::NARROW))
                            }
                        } @else {
                            p.muted.small { "The weights' history appears after two updates." }
                        }
                    }
                }
            }
            p {
                a.button #freeze href=(freeze) {
                    @if optimization.frozen { "Resume learning" } @else { "Freeze on each context's best variant" }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub(super) struct FreezeQuery {
    rule: Option<usize>,
    frozen: Option<bool>,
}

/// Rule `index` of `flag` as an optimize rule, with the experiment measuring it.
fn optimize_rule(
    flag: &Flag,
    index: Option<usize>,
) -> Result<(usize, &Optimize, &str), DashboardError> {
    let index = index.ok_or_else(|| DashboardError::BadRequest("rule: missing".into()))?;
    flag.rules
        .get(index)
        .and_then(|r| Some((index, r.optimize.as_ref()?, r.experiment.as_deref()?)))
        .ok_or_else(|| {
            DashboardError::BadRequest(format!(
                "rule: rule {index} of `{}` is not an optimize rule",
                flag.key
            ))
        })
}

/// Each context's variant with the highest chance of being best, from the current report.
fn best_variants(
    state: &AppState,
    env: &str,
    experiment: &str,
) -> Result<Vec<(String, String)>, DashboardError> {
    let report = crate::routes::results::experiment_report(
        state,
        env,
        experiment,
        &crate::results::ResultsQuery::default(),
    )?;
    let optimization = report.optimization.ok_or_else(|| {
        DashboardError::BadRequest("the experiment measures no optimize rule".into())
    })?;
    Ok(optimization
        .contexts
        .into_iter()
        .map(|c| {
            let best = c
                .arms
                .iter()
                .max_by(|a, b| a.probability_best.total_cmp(&b.probability_best))
                .map(|a| a.variant.clone())
                .unwrap_or_default();
            (c.context, best)
        })
        .collect())
}

/// `GET …/flags/{flag}/freeze?rule=0&frozen=true`: what freezing (or resuming) will do.
pub(super) async fn confirm_freeze(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<FreezeQuery>,
) -> Result<HttpResponse, DashboardError> {
    let me = signed_in(&req, &state).await?;
    let (env, key) = path.into_inner();
    let current = state.environment(&env)?.current();
    let flag = find_flag(current.snapshot.document(), &env, &key)?;
    let (index, _, experiment) = optimize_rule(flag, query.rule)?;
    let freeze = query.frozen.unwrap_or(true);
    let best = if freeze {
        best_variants(&state, &env, experiment)?
    } else {
        Vec::new()
    };
    let question = if freeze {
        format!("Freeze the learned policy of {key}?")
    } else {
        format!("Resume learning for {key}?")
    };
    let details = html! {
        @if freeze {
            p { "Each context then serves its best variant to all its users, and the optimizer stops updating the weights:" }
            dl.facts #freeze-plan {
                @for (context, variant) in &best { dt { (context) } dd { (variant) } }
            }
        } @else {
            p { "The optimizer updates the weights again at its next period, from everything measured so far." }
        }
        p.muted { "Experiment " a href=(experiment_url(&env, experiment)) { (experiment) } " measures this rule. This publishes a new revision (now " (current.revision) ") to every connected SDK and is recorded in the audit log." }
    };
    let fields = html! {
        input type="hidden" name="rule" value=(index);
        input type="hidden" name="frozen" value=(freeze);
        @for (_, variant) in &best { input type="hidden" name="best" value=(variant); }
    };
    let action = format!("{}/freeze", flag_url(&env, &key));
    let label = if freeze {
        "Confirm: freeze"
    } else {
        "Confirm: resume learning"
    };
    super::rollout::confirm_page(
        &state,
        &me,
        &env,
        flag,
        &question,
        details,
        Some((&action, fields, label)),
    )
}

/// `POST …/flags/{flag}/freeze`: applies the reviewed freeze (or resume).
pub(super) async fn apply_freeze(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, DashboardError> {
    let (me, form) = signed_in_post(&req, &state, &body).await?;
    let (env, key) = path.into_inner();
    let index: usize = form
        .require("rule")?
        .parse()
        .map_err(|_| DashboardError::BadRequest("rule: not a rule number".into()))?;
    let freeze = form.require("frozen")? == "true";
    let best: Vec<String> = form.all("best").into_iter().map(str::to_string).collect();
    admin::freeze_optimize(
        &state,
        &env,
        &key,
        &me.actor(),
        Some(form.require("if_match")?),
        index,
        freeze.then_some(best.as_slice()),
    )
    .await?;
    let current = state.environment(&env)?.current();
    let experiment = find_flag(current.snapshot.document(), &env, &key)?
        .rules
        .get(index)
        .and_then(|r| r.experiment.clone())
        .unwrap_or_default();
    Ok(HttpResponse::SeeOther()
        .insert_header((
            header::LOCATION,
            format!("{}#optimization", experiment_url(&env, &experiment)),
        ))
        .finish())
}
