//! Gradual rollout from the browser: change a rule's coverage, pause or resume a flag, roll it
//! back to before a change. Each is two steps: a GET that only shows what will change (safe,
//! works without JavaScript), and a POST from its Confirm button that applies it.
//!
//! The POST calls the admin API's own flag actions ([`admin::rollout_flag`],
//! [`admin::toggle_flag`], [`admin::restore_flag`]): same validation, one write path, a new
//! revision, an audit entry (actor `<key name> via dashboard`) and an SSE push to SDKs. The
//! confirmation form carries the flag's ETag as it was reviewed, so if someone changes the flag
//! in between, the confirmation is refused instead of applying a change nobody reviewed.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};
use serde::Deserialize;
use tailor_core::model::Flag;

use super::pages::{find_flag, flag_audit, flag_changes, nav, rule_name, serves};
use super::views::{self, csrf_field, Section};
use super::{flag_url, format, page_response, signed_in, signed_in_post, DashboardError, SignedIn};
use crate::error::ApiError;
use crate::publish::Published;
use crate::routes::admin::{self, RuleRef};
use crate::routes::content_etag;
use crate::state::AppState;

/// A confirmation page for a change to `flag`: the question, what it will do, and the form
/// whose Confirm button applies it (carrying the flag's ETag as reviewed), or only a way back.
pub(super) fn confirm_page(
    state: &AppState,
    me: &SignedIn,
    env: &str,
    flag: &Flag,
    question: &str,
    details: Markup,
    form: Option<(&str, Markup, &str)>,
) -> Result<HttpResponse, DashboardError> {
    // The flag's ETag as reviewed: the confirmation is refused if the flag changes meanwhile.
    let if_match = content_etag(flag)?;
    let back = flag_url(env, &flag.key);
    let body = html! {
        p.crumbs { a href=(super::env_url(env, "flags")) { "Flags" } " / " a href=(back) { (flag.key) } " / " }
        section.card.confirm {
            h1 { (question) }
            (details)
            @match form {
                Some((action, fields, label)) => {
                    form method="post" action=(action) {
                        (csrf_field(me))
                        input type="hidden" name="if_match" value=(if_match);
                        (fields)
                        div.actions {
                            button.primary #confirm type="submit" { (label) }
                            " "
                            a.button href=(back) { "Cancel" }
                        }
                    }
                },
                None => { div.actions { a.button href=(back) { "Back to the flag" } } },
            }
        }
    };
    let nav = nav(state, me, Some(env), Section::Flags);
    Ok(page_response(views::layout(question, &nav, body)))
}

/// After a change: back to the flag page, which says which revision was published.
fn published_redirect(env: &str, flag: &str, published: &Published, anchor: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((
            header::LOCATION,
            format!(
                "{}?published={}{anchor}",
                flag_url(env, flag),
                published.revision
            ),
        ))
        .finish()
}

/// A lost `If-Match` in words for people.
fn reviewed_conflict(flag: &str) -> impl Fn(ApiError) -> DashboardError + '_ {
    move |e| {
        match e {
        ApiError::PreconditionFailed(_) => DashboardError::Api(ApiError::PreconditionFailed(format!(
            "flag `{flag}` was changed by someone else after you reviewed this change, so it was not applied; open the flag again and review the change anew"
        ))),
        e => e.into(),
    }
    }
}

fn bad(message: String) -> DashboardError {
    DashboardError::BadRequest(message)
}

#[derive(Deserialize)]
pub(super) struct RolloutQuery {
    rule: Option<String>,
    coverage: Option<String>,
}

fn rule_index(flag: &Flag, text: Option<&str>) -> Result<usize, DashboardError> {
    let text = text.unwrap_or_default();
    let index: usize = text
        .trim()
        .parse()
        .map_err(|_| bad(format!("rule: `{text}` is not a rule number")))?;
    if index >= flag.rules.len() {
        return Err(bad(format!(
            "rule: flag `{}` has {} rules, there is no rule {index}",
            flag.key,
            flag.rules.len()
        )));
    }
    Ok(index)
}

/// `GET …/flags/{flag}/rollout?rule=0&coverage=50`: what the coverage change will do.
pub(super) async fn confirm_rollout(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<RolloutQuery>,
) -> Result<HttpResponse, DashboardError> {
    let me = signed_in(&req, &state).await?;
    let (env, key) = path.into_inner();
    let current = state.environment(&env)?.current();
    let flag = find_flag(current.snapshot.document(), &env, &key)?;
    let index = rule_index(flag, query.rule.as_deref())?;
    let coverage = format::parse_percent(query.coverage.as_deref().unwrap_or_default())
        .map_err(|e| bad(format!("coverage: {e}")))?;
    let rule = &flag.rules[index];
    let (from, to) = (
        format::basis_points(rule.coverage),
        format::basis_points(coverage),
    );
    let name = rule_name(index, rule);
    if coverage == rule.coverage {
        let details =
            html! { p { (name) " of " (key) " already covers " (from) " of its audience." } };
        return confirm_page(&state, &me, &env, flag, "Nothing to change", details, None);
    }
    let question = format!("Change the coverage of {name} from {from} to {to}?");
    let details = html! {
        dl.facts {
            dt { "Flag" } dd { (key) " (" (env) ")" }
            dt { "Rule" } dd { (name) ": serves " (serves(rule)) }
            dt { "Coverage" } dd.change-line { (from) " → " strong { (to) } }
        }
        @if coverage > rule.coverage {
            p { "More of the rule's audience gets its content. Users already in keep the variant they have; raising coverage only adds users." }
        } @else {
            p { "Users outside the new coverage fall through to the next rule or the default variant. Raising it again later brings the same users back." }
        }
        @if let Some(e) = &rule.experiment {
            p.muted { "Experiment " (e) " tracks this rule: new users enter it at the new coverage; no one changes variant." }
        }
        p.muted { "This publishes a new revision (now " (current.revision) ") to every connected SDK and is recorded in the audit log." }
    };
    let fields = html! {
        input type="hidden" name="rule" value=(index);
        input type="hidden" name="coverage_bp" value=(coverage);
    };
    let action = format!("{}/rollout", flag_url(&env, &key));
    confirm_page(
        &state,
        &me,
        &env,
        flag,
        &question,
        details,
        Some((&action, fields, &format!("Confirm: roll out to {to}"))),
    )
}

/// `POST …/flags/{flag}/rollout`: applies the reviewed coverage change.
pub(super) async fn apply_rollout(
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
        .map_err(|_| bad("rule: not a rule number".into()))?;
    let coverage: u32 = form
        .require("coverage_bp")?
        .parse()
        .map_err(|_| bad("coverage_bp: not a number of basis points".into()))?;
    let published = admin::rollout_flag(
        &state,
        &env,
        &key,
        &me.actor(),
        Some(form.require("if_match")?),
        &RuleRef::Index(index),
        coverage,
    )
    .await
    .map_err(reviewed_conflict(&key))?;
    Ok(published_redirect(
        &env,
        &key,
        &published,
        &format!("#rule-{index}"),
    ))
}

#[derive(Deserialize)]
pub(super) struct ToggleQuery {
    enabled: Option<String>,
}

fn parse_enabled(text: Option<&str>) -> Result<bool, DashboardError> {
    match text {
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        other => Err(bad(format!(
            "enabled: must be `true` or `false`, got `{}`",
            other.unwrap_or_default()
        ))),
    }
}

/// `GET …/flags/{flag}/toggle?enabled=false`: what pausing (or resuming) will do.
pub(super) async fn confirm_toggle(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<ToggleQuery>,
) -> Result<HttpResponse, DashboardError> {
    let me = signed_in(&req, &state).await?;
    let (env, key) = path.into_inner();
    let current = state.environment(&env)?.current();
    let flag = find_flag(current.snapshot.document(), &env, &key)?;
    let enabled = parse_enabled(query.enabled.as_deref())?;
    if enabled == flag.enabled {
        let details = html! { p { "Flag " (key) " is already " (if enabled { "on" } else { "paused" }) "." } };
        return confirm_page(&state, &me, &env, flag, "Nothing to change", details, None);
    }
    let (question, label) = if enabled {
        (format!("Resume flag {key}?"), "Confirm: resume")
    } else {
        (format!("Pause flag {key}?"), "Confirm: pause")
    };
    let details = html! {
        @if enabled {
            p { "Its overrides and rules apply again, at their current coverage." }
        } @else {
            p { "Everyone gets the default variant, " strong { (flag.default_variant) } ", until you resume it. Experiments on its rules record no new exposures meanwhile." }
        }
        p.muted { "This publishes a new revision (now " (current.revision) ") to every connected SDK and is recorded in the audit log." }
    };
    let fields = html! { input type="hidden" name="enabled" value=(enabled); };
    let action = format!("{}/toggle", flag_url(&env, &key));
    confirm_page(
        &state,
        &me,
        &env,
        flag,
        &question,
        details,
        Some((&action, fields, label)),
    )
}

/// `POST …/flags/{flag}/toggle`.
pub(super) async fn apply_toggle(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, DashboardError> {
    let (me, form) = signed_in_post(&req, &state, &body).await?;
    let (env, key) = path.into_inner();
    let enabled = parse_enabled(form.get("enabled"))?;
    let published = admin::toggle_flag(
        &state,
        &env,
        &key,
        &me.actor(),
        Some(form.require("if_match")?),
        enabled,
    )
    .await
    .map_err(reviewed_conflict(&key))?;
    Ok(published_redirect(&env, &key, &published, ""))
}

#[derive(Deserialize)]
pub(super) struct RestoreQuery {
    audit_id: Option<String>,
}

fn parse_audit_id(text: Option<&str>) -> Result<i64, DashboardError> {
    let text = text.unwrap_or_default();
    text.trim()
        .parse()
        .map_err(|_| bad(format!("audit_id: `{text}` is not a change number")))
}

/// `GET …/flags/{flag}/restore?audit_id=12`: what rolling back to before change 12 will do.
pub(super) async fn confirm_restore(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<RestoreQuery>,
) -> Result<HttpResponse, DashboardError> {
    let me = signed_in(&req, &state).await?;
    let (env, key) = path.into_inner();
    let current = state.environment(&env)?.current();
    let flag = find_flag(current.snapshot.document(), &env, &key)?;
    let audit_id = parse_audit_id(query.audit_id.as_deref())?;
    let target = admin::flag_before(&state, &env, &key, audit_id).await?;
    let entry = flag_audit(&state, &env, &key, 1000)
        .await?
        .into_iter()
        .find(|e| e.id == audit_id);
    let changes = flag_changes(Some(flag), Some(&target));
    let question = format!("Roll back flag {key} to before change #{audit_id}?");
    let details = html! {
        @if let Some(e) = &entry {
            p { "Change #" (e.id) " was a " strong { (e.action) } " by " (e.actor) " on " (format::timestamp(&e.at)) " (revision " (e.revision) ")." }
        }
        p { "Rolling back will:" }
        ul.changes { @for c in &changes { li { (c) } } }
        p.muted { "This publishes a new revision (now " (current.revision) ") to every connected SDK and is recorded in the audit log; later changes stay in the history." }
    };
    let fields = html! { input type="hidden" name="audit_id" value=(audit_id); };
    let action = format!("{}/restore", flag_url(&env, &key));
    confirm_page(
        &state,
        &me,
        &env,
        flag,
        &question,
        details,
        Some((&action, fields, "Confirm: roll back")),
    )
}

/// `POST …/flags/{flag}/restore`.
pub(super) async fn apply_restore(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, DashboardError> {
    let (me, form) = signed_in_post(&req, &state, &body).await?;
    let (env, key) = path.into_inner();
    let audit_id = parse_audit_id(form.get("audit_id"))?;
    let published = admin::restore_flag(
        &state,
        &env,
        &key,
        &me.actor(),
        Some(form.require("if_match")?),
        audit_id,
    )
    .await
    .map_err(reviewed_conflict(&key))?;
    Ok(published_redirect(&env, &key, &published, ""))
}
