//! Read-only pages: environments, flags, one flag (variants, rules with their rollout controls,
//! recent history), a flag's history, segments (with their sizes and the computed traits),
//! experiments and the audit log.

use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};
use serde::Deserialize;
use tailor_core::model::{ExperimentStatus, Flag, Rule, Segment};
use tailor_core::ConfigDocument;

use super::profiles::{self, size_cell, sizes_note, traits_section};
use super::views::{self, condition_text, flag_status, value_text, Nav, Section};
use super::{
    env_url, experiment_url, flag_url, format, page_response, signed_in, DashboardError, SignedIn,
};
use crate::state::AppState;
use crate::store::{AuditEntry, AuditQuery};

/// Coverage steps offered as one-click rollout stages.
pub const ROLLOUT_STEPS: [u32; 5] = [500, 1000, 2500, 5000, 10_000];

pub(super) fn nav<'a>(
    state: &AppState,
    me: &'a SignedIn,
    env: Option<&'a str>,
    section: Section,
) -> Nav<'a> {
    Nav {
        me,
        env,
        environments: state.environment_keys(),
        section,
    }
}

/// `GET /dashboard`: every environment.
pub(super) async fn environments(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DashboardError> {
    let me = signed_in(&req, &state).await?;
    let mut rows = Vec::new();
    for key in state.environment_keys() {
        let current = state.environment(&key)?.current();
        let doc = current.snapshot.document();
        let running = doc
            .experiments
            .iter()
            .filter(|e| e.status == ExperimentStatus::Running)
            .count();
        rows.push((
            key,
            current.revision,
            doc.flags.len(),
            doc.segments.len(),
            running,
        ));
    }
    let body = html! {
        h1 { "Environments" }
        div.table-wrap {
            table.cards {
                thead { tr { th { "Environment" } th.num { "Revision" } th.num { "Flags" } th.num { "Segments" } th.num { "Running experiments" } } }
                tbody {
                    @for (key, revision, flags, segments, running) in &rows {
                        tr data-env=(key) {
                            td.card-title { a href=(env_url(key, "flags")) { strong { (key) } } }
                            td.num data-label="Revision" { (revision) }
                            td.num data-label="Flags" { a href=(env_url(key, "flags")) { (flags) } }
                            td.num data-label="Segments" { a href=(env_url(key, "segments")) { (segments) } }
                            td.num data-label="Running experiments" { a href=(env_url(key, "experiments")) { (running) } }
                        }
                    }
                }
            }
        }
    };
    let nav = nav(&state, &me, None, Section::Environments);
    Ok(page_response(views::layout("Environments", &nav, body)))
}

/// What a rule serves, in words.
pub(super) fn serves(rule: &Rule) -> String {
    match (&rule.variant, &rule.split, &rule.optimize) {
        (Some(v), _, _) => v.clone(),
        (None, Some(split), _) => split
            .iter()
            .map(|w| format!("{} {}", w.variant, format::basis_points(w.weight)))
            .collect::<Vec<_>>()
            .join(" · "),
        (None, None, Some(o)) => format!(
            "{}: {}",
            if o.frozen { "frozen" } else { "learned" },
            o.variants.join(" · ")
        ),
        (None, None, None) => "—".into(),
    }
}

/// A rule's name: `rule 0` or `rule 0 (main)`.
pub(super) fn rule_name(index: usize, rule: &Rule) -> String {
    match &rule.id {
        Some(id) => format!("rule {index} ({id})"),
        None => format!("rule {index}"),
    }
}

fn audience(rule: &Rule) -> String {
    rule.when
        .as_ref()
        .map(condition_text)
        .unwrap_or_else(|| "everyone".into())
}

/// `GET /dashboard/env/{env}/flags`.
pub(super) async fn flags(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, DashboardError> {
    let me = signed_in(&req, &state).await?;
    let env = path.into_inner();
    let current = state.environment(&env)?.current();
    let doc = current.snapshot.document();
    let body = html! {
        h1 { "Flags" span.muted.small { " · " (env) " · revision " (current.revision) } }
        @if doc.flags.is_empty() {
            p.empty { "No flags yet. Create them with the admin API or import a config." }
        } @else {
            div.table-wrap {
                table.cards {
                    thead { tr { th { "Flag" } th { "Status" } th { "Variants" } th { "Rules" } th { "Experiments" } } }
                    tbody {
                        @for f in &doc.flags {
                            tr data-flag=(f.key) {
                                td.card-title {
                                    a href=(flag_url(&env, &f.key)) { strong { (f.key) } }
                                    @if let Some(d) = &f.description { div.muted.small { (d) } }
                                }
                                td data-label="Status" { (flag_status(f.enabled)) }
                                td data-label="Variants" {
                                    @for v in &f.variants {
                                        span.tag.default[v.key == f.default_variant] { (v.key) } " "
                                    }
                                }
                                td.wide data-label="Rules" {
                                    @if f.rules.is_empty() { span.muted { "none" } }
                                    @for (i, r) in f.rules.iter().enumerate() {
                                        div.small {
                                            (rule_name(i, r)) ": " (audience(r)) " → " (serves(r))
                                            @if r.coverage < tailor_core::model::FULL_COVERAGE {
                                                " (" (format::basis_points(r.coverage)) ")"
                                            }
                                        }
                                    }
                                }
                                td data-label="Experiments" {
                                    @for e in experiments_of(f) {
                                        a href=(experiment_url(&env, &e)) { (e) } " "
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let nav = nav(&state, &me, Some(&env), Section::Flags);
    Ok(page_response(views::layout("Flags", &nav, body)))
}

fn experiments_of(flag: &Flag) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in flag.rules.iter().filter_map(|r| r.experiment.clone()) {
        if !out.contains(&e) {
            out.push(e);
        }
    }
    out
}

pub(super) fn find_flag<'d>(
    doc: &'d ConfigDocument,
    env: &str,
    key: &str,
) -> Result<&'d Flag, DashboardError> {
    doc.flag(key).ok_or_else(|| {
        crate::error::ApiError::NotFound(format!(
            "flag `{key}` does not exist in environment `{env}`"
        ))
        .into()
    })
}

#[derive(Deserialize)]
pub(super) struct FlagQuery {
    published: Option<u64>,
}

/// `GET /dashboard/env/{env}/flags/{flag}`: variants, rules with rollout controls, history.
pub(super) async fn flag(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<FlagQuery>,
) -> Result<HttpResponse, DashboardError> {
    let me = signed_in(&req, &state).await?;
    let (env, key) = path.into_inner();
    let current = state.environment(&env)?.current();
    let f = find_flag(current.snapshot.document(), &env, &key)?;
    let history = flag_audit(&state, &env, &key, 5).await?;
    let base = flag_url(&env, &key);
    let body = html! {
        p.crumbs { a href=(env_url(&env, "flags")) { "Flags" } " / " }
        h1 { (f.key) " " (flag_status(f.enabled)) }
        @if let Some(revision) = query.published {
            p.alert.alert-ok role="status" data-published=(revision) {
                "Published revision " (revision) ". Connected SDKs receive it now."
            }
        }
        @if let Some(d) = &f.description { p { (d) } }
        div.actions {
            @if f.enabled {
                a.button.danger href=(format!("{base}/toggle?enabled=false")) { "Pause flag…" }
                span.muted.small { " Pausing serves everyone the default variant (" (f.default_variant) ")." }
            } @else {
                a.button.primary href=(format!("{base}/toggle?enabled=true")) { "Resume flag…" }
                span.muted.small { " While paused, everyone gets the default variant (" (f.default_variant) ")." }
            }
            " "
            a.button href=(format!("{base}/history")) { "History and roll-back" }
        }
        h2 { "Variants" }
        div.table-wrap {
            table.cards {
                thead { tr { th { "Variant" } th { "Value" } } }
                tbody {
                    @for v in &f.variants {
                        tr {
                            td.card-title { strong { (v.key) } @if v.key == f.default_variant { " " span.tag { "default (generic)" } } }
                            td.wide data-label="Value" { code { (value_text(&v.value)) } @if let Some(d) = &v.description { div.muted.small { (d) } } }
                        }
                    }
                }
            }
        }
        @if !f.overrides.is_empty() {
            h2 { "Individual overrides" }
            ul {
                @for o in &f.overrides {
                    li { (o.variant) ": " (format::count(o.keys.len() as u64)) " users"
                        span.muted.small { " (" (format::truncate(&o.keys.join(", "), 120)) ")" } }
                }
            }
        }
        h2 { "Rules" }
        @if f.rules.is_empty() {
            p.empty { "No rules: everyone gets the default variant." }
        }
        @for (i, r) in f.rules.iter().enumerate() {
            (rule_card(&env, &key, i, r))
        }
        h2 { "Recent changes" }
        (audit_table(&env, current.snapshot.document(), &history, true))
        p { a href=(format!("{base}/history")) { "Full history" } }
    };
    let nav = nav(&state, &me, Some(&env), Section::Flags);
    Ok(page_response(views::layout(&f.key, &nav, body)))
}

fn rule_card(env: &str, flag: &str, index: usize, rule: &Rule) -> Markup {
    let rollout = format!("{}/rollout", flag_url(env, flag));
    html! {
        section.card.rule #(format!("rule-{index}")) data-rule=(index) {
            div.rule-head {
                h3 { (rule_name(index, rule)) }
                @if let Some(e) = &rule.experiment {
                    span.muted.small { "experiment " a href=(experiment_url(env, e)) { (e) } }
                }
            }
            @if let Some(d) = &rule.description { p.muted { (d) } }
            dl.facts {
                dt { "Audience" } dd { (audience(rule)) }
                dt { "Serves" } dd { (serves(rule)) }
                @if let Some(h) = &rule.holdout {
                    dt { "Holdout" } dd { (format::basis_points(h.basis_points)) " get the generic default (to measure lift)" }
                }
                dt { "Coverage" }
                dd {
                    strong.coverage data-coverage=(rule.coverage) { (format::basis_points(rule.coverage)) }
                    " of the matched users"
                    div.meter role="img" aria-label=(format!("coverage {}", format::basis_points(rule.coverage))) {
                        (coverage_meter(rule.coverage))
                    }
                }
            }
            div.rollout {
                span.small.muted { "Roll out to: " }
                @for step in ROLLOUT_STEPS {
                    @if step != rule.coverage {
                        a.button.step href=(format!("{rollout}?rule={index}&coverage={}", format::basis_points(step).trim_end_matches('%')))
                            data-step=(step) { (format::basis_points(step)) }
                        " "
                    }
                }
                @if rule.coverage != 0 {
                    a.button.step.danger href=(format!("{rollout}?rule={index}&coverage=0")) data-step="0" { "0% (stop)" }
                }
                form.inline method="get" action=(rollout) {
                    input type="hidden" name="rule" value=(index);
                    label.small for=(format!("coverage-{index}")) { "Other: " }
                    input.percent #(format!("coverage-{index}")) type="number" name="coverage" min="0" max="100" step="0.01"
                        value=(format::basis_points(rule.coverage).trim_end_matches('%')) required;
                    " % "
                    button type="submit" { "Review" }
                }
            }
        }
    }
}

fn coverage_meter(bp: u32) -> Markup {
    let width = f64::from(bp.min(10_000)) / 100.0;
    html! {
        svg viewBox="0 0 100 6" preserveAspectRatio="none" {
            rect.meter-bg x="0" y="0" width="100" height="6" rx="3" {}
            rect.meter-fill x="0" y="0" width=(width) height="6" rx="3" {}
        }
    }
}

/// The audit entries of one flag, newest first.
pub(super) async fn flag_audit(
    state: &AppState,
    env: &str,
    key: &str,
    limit: u32,
) -> Result<Vec<AuditEntry>, DashboardError> {
    Ok(state
        .store
        .audit(
            env,
            &AuditQuery {
                kind: Some("flag".into()),
                key: Some(key.to_string()),
                limit: Some(limit),
            },
        )
        .await
        .map_err(crate::error::ApiError::from)?)
}

/// What a flag change did, in words.
pub(super) fn flag_changes(before: Option<&Flag>, after: Option<&Flag>) -> Vec<String> {
    let (b, a) = match (before, after) {
        (None, Some(_)) => return vec!["created".into()],
        (Some(_), None) => return vec!["deleted".into()],
        (None, None) => return Vec::new(),
        (Some(b), Some(a)) => (b, a),
    };
    let mut out = Vec::new();
    if b.enabled != a.enabled {
        out.push(if a.enabled {
            "resumed (turned on)".to_string()
        } else {
            "paused (turned off)".to_string()
        });
    }
    if b.default_variant != a.default_variant {
        out.push(format!(
            "default variant {} → {}",
            b.default_variant, a.default_variant
        ));
    }
    if b.variants != a.variants {
        out.push("variants changed".into());
    }
    if b.overrides != a.overrides {
        out.push("overrides changed".into());
    }
    for (i, (rb, ra)) in b.rules.iter().zip(&a.rules).enumerate() {
        if rb.coverage != ra.coverage {
            out.push(format!(
                "{}: coverage {} → {}",
                rule_name(i, ra),
                format::basis_points(rb.coverage),
                format::basis_points(ra.coverage)
            ));
        }
        let mut same_coverage = rb.clone();
        same_coverage.coverage = ra.coverage;
        if same_coverage != *ra {
            out.push(format!("{} changed", rule_name(i, ra)));
        }
    }
    if b.rules.len() != a.rules.len() {
        out.push(format!("rules: {} → {}", b.rules.len(), a.rules.len()));
    }
    if out.is_empty() && b != a {
        out.push("settings changed".into());
    }
    if out.is_empty() {
        out.push("no change".into());
    }
    out
}

fn entry_changes(entry: &AuditEntry) -> Vec<String> {
    if entry.kind == "flag" {
        let parse = |v: &Option<serde_json::Value>| {
            v.as_ref()
                .and_then(|v| serde_json::from_value::<Flag>(v.clone()).ok())
        };
        return flag_changes(parse(&entry.before).as_ref(), parse(&entry.after).as_ref());
    }
    vec![match entry.action.as_str() {
        "create" => "created".into(),
        "delete" => "deleted".into(),
        "import" => "whole config imported".into(),
        other => other.to_string(),
    }]
}

/// A table of audit entries; `rollback`: offer "roll back to before this" on flag entries.
pub(super) fn audit_table(
    env: &str,
    doc: &ConfigDocument,
    entries: &[AuditEntry],
    rollback: bool,
) -> Markup {
    html! {
        @if entries.is_empty() {
            p.empty { "No changes recorded yet." }
        } @else {
            div.table-wrap {
                table.audit.cards {
                    thead { tr { th.num { "#" } th { "When" } th { "Who" } th { "What" } th { "Change" } th.num { "Revision" } @if rollback { th {} } } }
                    tbody {
                        @for e in entries {
                            tr data-audit=(e.id) data-action=(e.action) {
                                td.num data-label="#" { (e.id) }
                                td.nowrap data-label="When" { (format::timestamp(&e.at)) }
                                td data-label="Who" { (e.actor) }
                                td data-label="What" {
                                    span.tag { (e.action) } " " (e.kind) " "
                                    @if e.kind == "flag" && doc.flag(&e.key).is_some() {
                                        a href=(flag_url(env, &e.key)) { (e.key) }
                                    } @else {
                                        (e.key)
                                    }
                                }
                                td.wide data-label="Change" { @for c in entry_changes(e) { div.change { (c) } } }
                                td.num data-label="Revision" { (e.revision) }
                                @if rollback {
                                    td {
                                        @if e.kind == "flag" && e.before.is_some() && doc.flag(&e.key).is_some() {
                                            a.button.small href=(format!("{}/restore?audit_id={}", flag_url(env, &e.key), e.id)) {
                                                "Roll back to before this…"
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /dashboard/env/{env}/flags/{flag}/history`.
pub(super) async fn flag_history(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, DashboardError> {
    let me = signed_in(&req, &state).await?;
    let (env, key) = path.into_inner();
    let current = state.environment(&env)?.current();
    let entries = flag_audit(&state, &env, &key, 200).await?;
    if entries.is_empty() {
        find_flag(current.snapshot.document(), &env, &key)?;
    }
    let body = html! {
        p.crumbs { a href=(env_url(&env, "flags")) { "Flags" } " / "
            @if current.snapshot.document().flag(&key).is_some() { a href=(flag_url(&env, &key)) { (key) } } @else { (key) } " / " }
        h1 { "History of " (key) }
        p.muted { "Every change is a new revision. Rolling back restores the flag as it was before a change, as a new change of its own." }
        (audit_table(&env, current.snapshot.document(), &entries, true))
    };
    let nav = nav(&state, &me, Some(&env), Section::Flags);
    Ok(page_response(views::layout(
        &format!("History of {key}"),
        &nav,
        body,
    )))
}

/// `GET /dashboard/env/{env}/audit`: every change in the environment.
pub(super) async fn audit(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, DashboardError> {
    let me = signed_in(&req, &state).await?;
    let env = path.into_inner();
    let current = state.environment(&env)?.current();
    let entries = state
        .store
        .audit(
            &env,
            &AuditQuery {
                limit: Some(200),
                ..AuditQuery::default()
            },
        )
        .await
        .map_err(crate::error::ApiError::from)?;
    let body = html! {
        h1 { "Audit log" span.muted.small { " · " (env) " · latest 200 changes" } }
        (audit_table(&env, current.snapshot.document(), &entries, false))
    };
    let nav = nav(&state, &me, Some(&env), Section::Audit);
    Ok(page_response(views::layout("Audit log", &nav, body)))
}

fn segment_users(doc: &ConfigDocument, segment: &str) -> Vec<String> {
    let needle = tailor_core::model::Condition::Segment {
        segment: segment.to_string(),
    };
    fn mentions(c: &tailor_core::model::Condition, needle: &tailor_core::model::Condition) -> bool {
        use tailor_core::model::Condition as C;
        c == needle
            || match c {
                C::All { all } => all.iter().any(|c| mentions(c, needle)),
                C::Any { any } => any.iter().any(|c| mentions(c, needle)),
                C::Not { not } => mentions(not, needle),
                _ => false,
            }
    }
    let mut out = Vec::new();
    for f in &doc.flags {
        if f.rules
            .iter()
            .any(|r| r.when.as_ref().is_some_and(|c| mentions(c, &needle)))
        {
            out.push(format!("flag {}", f.key));
        }
    }
    for s in &doc.segments {
        if s.conditions.as_ref().is_some_and(|c| mentions(c, &needle)) {
            out.push(format!("segment {}", s.key));
        }
    }
    out
}

fn segment_row(
    env: &str,
    doc: &ConfigDocument,
    s: &Segment,
    sizes: &Result<crate::profiles::SegmentSizes, String>,
) -> Markup {
    let used = segment_users(doc, &s.key);
    html! {
        tr #(format!("segment-{}", s.key)) data-segment=(s.key) {
            td.card-title {
                strong { (s.key) }
                @if let Some(n) = &s.name { div { (n) } }
                @if let Some(d) = &s.description { div.muted.small { (d) } }
                @if s.list { div { span.tag { "large list" } } }
            }
            (size_cell(sizes, &s.key))
            td.wide data-label="Conditions" {
                @match &s.conditions {
                    Some(c) => { (condition_text(c)) },
                    None if s.list => { span.muted { "no conditions (the uploaded list's members)" } },
                    None => { span.muted { "no conditions (only the listed users)" } },
                }
            }
            td.small data-label="Listed users" {
                @if !s.include.is_empty() { div { "include " (format::count(s.include.len() as u64)) ": " (format::truncate(&s.include.join(", "), 80)) } }
                @if !s.exclude.is_empty() { div { "exclude " (format::count(s.exclude.len() as u64)) ": " (format::truncate(&s.exclude.join(", "), 80)) } }
            }
            td.small data-label="Used by" {
                @for u in &used {
                    @if let Some(flag) = u.strip_prefix("flag ") {
                        div { "flag " a href=(flag_url(env, flag)) { (flag) } }
                    } @else {
                        div { (u) }
                    }
                }
            }
        }
    }
}

/// `GET /dashboard/env/{env}/segments`.
pub(super) async fn segments(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, DashboardError> {
    let me = signed_in(&req, &state).await?;
    let env = path.into_inner();
    let current = state.environment(&env)?.current();
    let doc = current.snapshot.document();
    let sizes = match doc.segments.is_empty() {
        true => Err(String::new()),
        false => profiles::sizes(&state, &env, &current.snapshot).await,
    };
    let body = html! {
        h1 { "Segments" span.muted.small { " · " (env) } }
        p { a href=(env_url(&env, "users")) { "Look up a user" } span.muted.small { ": their traits, segments and what every flag serves them" } }
        @if doc.segments.is_empty() {
            p.empty { "No segments yet." }
        } @else {
            (sizes_note(&sizes, state.collector.loading(&env)))
            div.table-wrap {
                table.cards {
                    thead { tr { th { "Segment" } th.num { "Size" } th { "Conditions" } th { "Listed users" } th { "Used by" } } }
                    tbody { @for s in &doc.segments { (segment_row(&env, doc, s, &sizes)) } }
                }
            }
        }
        (traits_section(&env, doc))
    };
    let nav = nav(&state, &me, Some(&env), Section::Segments);
    Ok(page_response(views::layout("Segments", &nav, body)))
}

/// `GET /dashboard/env/{env}/experiments`.
pub(super) async fn experiments(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, DashboardError> {
    let me = signed_in(&req, &state).await?;
    let env = path.into_inner();
    let current = state.environment(&env)?.current();
    let snapshot = &current.snapshot;
    let doc = snapshot.document();
    let loading = state.collector.loading(&env);
    let body = html! {
        h1 { "Experiments" span.muted.small { " · " (env) } }
        @if let Some(replayed) = loading {
            p.notice role="status" { "Results are loading: the server is replaying the stored events (" (format::count(replayed)) " so far)." }
        }
        @if doc.experiments.is_empty() {
            p.empty { "No experiments yet." }
        } @else {
            div.table-wrap {
                table.cards {
                    thead { tr { th { "Experiment" } th { "Status" } th { "Flag" } th { "Primary metric" } th.num { "Users so far" } th {} } }
                    tbody {
                        @for e in &doc.experiments {
                            @let users: u64 = state.collector.totals(&env, &e.key)
                                .map(|t| t.cells.iter().map(|c| c.users).sum()).unwrap_or(0);
                            tr data-experiment=(e.key) {
                                td.card-title {
                                    a href=(experiment_url(&env, &e.key)) { strong { (e.key) } }
                                    @if let Some(n) = &e.name { div { (n) } }
                                    @if let Some(h) = &e.hypothesis { div.muted.small { (h) } }
                                }
                                td data-label="Status" { (status_badge(e.status)) }
                                td data-label="Flag" { @if let Some(f) = snapshot.experiment_flag(&e.key) { a href=(flag_url(&env, f)) { (f) } } }
                                td data-label="Primary metric" { (e.primary_metric.as_deref().unwrap_or("—")) }
                                td.num data-label="Users so far" { @if loading.is_some() { "…" } @else { (format::count(users)) } }
                                td { a.button.small href=(experiment_url(&env, &e.key)) { "Results" } }
                            }
                        }
                    }
                }
            }
        }
    };
    let nav = nav(&state, &me, Some(&env), Section::Experiments);
    Ok(page_response(views::layout("Experiments", &nav, body)))
}

/// An experiment's status badge.
pub(super) fn status_badge(status: ExperimentStatus) -> Markup {
    match status {
        ExperimentStatus::Draft => html! { span.badge.badge-off { "Draft" } },
        ExperimentStatus::Running => html! { span.badge.badge-on { "Running" } },
        ExperimentStatus::Stopped => html! { span.badge { "Stopped" } },
    }
}
