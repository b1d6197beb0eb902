//! Computed traits, segment sizes and the user lookup page (`…/users?key=`): what
//! [`crate::profiles`] computes, shown to people.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};
use serde::Deserialize;
use tailor_core::model::{Aggregate, TraitDefinition};
use tailor_core::{ConfigDocument, Reason, Snapshot, TraitValue, User};

use super::pages::{nav, rule_name};
use super::views::{self, value_text, Section};
use super::{env_url, flag_url, format, page_response, signed_in, DashboardError};
use crate::profiles::{self, SegmentSize, SegmentSizes, UserReport};
use crate::routes::profiles::MAX_LIST_KEY_BYTES;
use crate::state::AppState;

/// Every segment's size, or why there is none (the segments page still shows the segments).
pub(super) async fn sizes(
    state: &AppState,
    env: &str,
    snapshot: &Snapshot,
) -> Result<SegmentSizes, String> {
    profiles::segment_sizes(state, env, snapshot)
        .await
        .map_err(|e| {
            e.log_server_failure("dashboard");
            e.to_string()
        })
}

/// What the sizes count, above the segments table.
pub(super) fn sizes_note(sizes: &Result<SegmentSizes, String>, loading: Option<u64>) -> Markup {
    html! {
        @match sizes {
            Ok(s) => {
                p.muted.small #segment-sizes data-known-users=(s.known_users) {
                    "Size: members among the " strong { (format::count(s.known_users)) } " known users "
                    "(users with an event a trait reads, or in an uploaded list), each evaluated with "
                    "their key and profile but no attributes; as of " (format::timestamp(&s.as_of)) "."
                }
            },
            Err(e) => { p.alert.alert-warn role="status" { "Segment sizes are unavailable: " (e) } },
        }
        @if let Some(replayed) = loading {
            p.notice role="status" { "Sizes are incomplete: the server is replaying the stored events (" (format::count(replayed)) " so far)." }
        }
    }
}

/// A segment's size cell.
pub(super) fn size_cell(sizes: &Result<SegmentSizes, String>, segment: &str) -> Markup {
    let (size, known): (Option<&SegmentSize>, u64) = match sizes {
        Ok(s) => (s.segments.iter().find(|s| s.key == segment), s.known_users),
        Err(_) => (None, 0),
    };
    html! {
        td.num.size data-label="Size" data-size=[size.and_then(|s| s.size)] {
            @match size.map(|s| (s.size, s.list_size)) {
                None => { span.muted { "—" } },
                Some((Some(n), list)) => {
                    strong { (format::count(n)) }
                    span.sub { "of " (format::count(known)) " known" }
                    @if let Some(l) = list { span.sub.list-size data-list-size=(l) { "list: " (format::count(l)) " keys" } }
                },
                Some((None, list)) => {
                    span title="Membership depends on attributes that only the application sends when it evaluates" { "—" }
                    span.sub.no-size { "depends on attributes the server does not see" }
                    @if let Some(l) = list { span.sub.list-size data-list-size=(l) { "list: " (format::count(l)) " keys" } }
                },
            }
        }
    }
}

fn aggregate_text(aggregate: Aggregate) -> &'static str {
    match aggregate {
        Aggregate::Count => "number of events",
        Aggregate::Sum => "sum of the events' values",
        Aggregate::DistinctDays => "days with an event",
        Aggregate::FirstSeen => "time of the first event",
        Aggregate::LastSeen => "time of the latest event",
        Aggregate::DaysSinceFirst => "days since the first event",
        Aggregate::DaysSinceLast => "days since the latest event",
    }
}

fn window_text(days: Option<u32>) -> String {
    match days {
        None => "all time".into(),
        Some(1) => "last day".into(),
        Some(d) => format!("last {d} days"),
    }
}

/// A trait's definition in words: `number of events (purchase), last 30 days`.
fn definition_text(t: &TraitDefinition) -> String {
    format!(
        "{} ({}), {}",
        aggregate_text(t.aggregate),
        t.events.join(", "),
        window_text(t.window_days)
    )
}

/// The environment's computed traits (segments page).
pub(super) fn traits_section(env: &str, doc: &ConfigDocument) -> Markup {
    html! {
        h2 #traits { "Computed traits" }
        @if doc.traits.is_empty() {
            p.empty { "No computed traits yet. Define them with the admin API (POST /api/v1/environments/" (env) "/traits)." }
        } @else {
            div.table-wrap {
                table.cards {
                    thead { tr { th { "Trait" } th { "Aggregate" } th { "Events" } th { "Window" } } }
                    tbody {
                        @for t in &doc.traits {
                            tr data-trait=(t.key) {
                                td.card-title {
                                    strong { (t.key) }
                                    @if let Some(d) = &t.description { div.muted.small { (d) } }
                                }
                                td.aggregate data-label="Aggregate" { code { (t.aggregate.as_str()) } span.sub { (aggregate_text(t.aggregate)) } }
                                td.events data-label="Events" { @for e in &t.events { span.tag { (e) } " " } }
                                td.window data-label="Window" { (window_text(t.window_days)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub(super) struct UsersQuery {
    key: Option<String>,
}

/// Why a typed user key cannot be looked up.
fn key_problem(key: &str) -> Option<String> {
    if key.trim().is_empty() {
        Some("User key: enter the key of the user to look up (it is empty).".into())
    } else if key.len() > MAX_LIST_KEY_BYTES {
        Some(format!(
            "User key: at most {MAX_LIST_KEY_BYTES} bytes; this one has {}.",
            key.len()
        ))
    } else if key.chars().any(char::is_control) {
        Some("User key: control characters (such as line breaks) are not part of user keys.".into())
    } else {
        None
    }
}

/// `GET /dashboard/env/{env}/users?key=…`: a user's traits, lists, segments and what every
/// flag serves them. Without `key`, just the form.
pub(super) async fn users(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<UsersQuery>,
) -> Result<HttpResponse, DashboardError> {
    let me = signed_in(&req, &state).await?;
    let env = path.into_inner();
    let current = state.environment(&env)?.current();
    let snapshot = &current.snapshot;
    let key = query.key.as_deref();
    let problem = key.and_then(key_problem);
    let report = match (key, &problem) {
        (Some(key), None) => Some(profiles::lookup(&state, &env, snapshot, &User::new(key)).await?),
        _ => None,
    };
    let body = html! {
        h1 { "User lookup" span.muted.small { " · " (env) } }
        form.lookup method="get" action=(env_url(&env, "users")) {
            label for="user-key" { "User key" }
            input #user-key type="text" name="key" value=[key] required autocomplete="off" spellcheck="false"
                aria-invalid=[problem.is_some().then_some("true")];
            button.primary type="submit" { "Look up" }
        }
        @if let Some(p) = &problem {
            p.alert.alert-error #lookup-error role="alert" { (p) }
        }
        @if let Some(r) = &report {
            (report_section(&env, snapshot, r))
        } @else if problem.is_none() {
            p.muted { "Shows a user's computed traits, the uploaded lists and segments they are in, and what every flag serves them now." }
        }
    };
    let title = match &report {
        Some(r) => format!("User {}", r.user_key),
        None => "User lookup".into(),
    };
    let nav = nav(&state, &me, Some(&env), Section::Users);
    let mut res = page_response(views::layout(&title, &nav, body));
    if problem.is_some() {
        *res.status_mut() = StatusCode::BAD_REQUEST;
    }
    Ok(res)
}

/// A trait value for people: numbers with separators, datetimes to the minute (UTC).
fn trait_value_text(value: TraitValue) -> String {
    match value {
        TraitValue::Number(n) => {
            let text = format!("{:.6}", n.abs());
            let decimals = text
                .split_once('.')
                .map_or(0, |(_, frac)| frac.trim_end_matches('0').len());
            format::number(n, decimals)
        }
        TraitValue::Datetime(ms) => format::unix_millis(ms),
    }
}

/// Why a flag served what it did, in words.
fn reason_text(snapshot: &Snapshot, flag: &str, reason: Reason) -> String {
    let rule = |index: usize| {
        snapshot
            .document()
            .flag(flag)
            .and_then(|f| f.rules.get(index))
            .map_or_else(|| format!("rule {index}"), |r| rule_name(index, r))
    };
    match reason {
        Reason::UnknownFlag => "unknown flag".into(),
        Reason::FlagOff => "the flag is paused: its default".into(),
        Reason::Override => "individual override".into(),
        Reason::Rule { rule: i } => format!("{} matched", rule(i)),
        Reason::Split { rule: i, bucket } => format!("{} matched: split, bucket {bucket}", rule(i)),
        Reason::Holdout { rule: i, .. } => {
            format!(
                "{} matched, but the user is in its holdout: the default",
                rule(i)
            )
        }
        Reason::Fallthrough => "no rule matched: the default".into(),
        Reason::MissingUnit { rule: i } => {
            format!(
                "{} matched, but the user has no bucketing attribute: the default",
                rule(i)
            )
        }
    }
}

fn report_section(env: &str, snapshot: &Snapshot, r: &UserReport) -> Markup {
    let definitions = snapshot.traits();
    let lists: Vec<&str> = r.profile.lists().collect();
    let nothing_known = lists.is_empty()
        && r.profile
            .traits()
            .all(|(_, v)| matches!(v, TraitValue::Number(n) if n == 0.0));
    let segments_url = env_url(env, "segments");
    html! {
        section #user-report data-user=(r.user_key) {
            h2 { "User " code { (r.user_key) } }
            @if r.user_key.trim() != r.user_key {
                p.alert.alert-warn { "This key has spaces at its start or end; they are part of the key." }
            }
            p.muted.small {
                "As of " (format::timestamp(&r.as_of)) ". Evaluated with the user key and the profile the "
                "server computed, without attributes: segments and rules that read attributes (plan, "
                "country, …) match here only through include lists."
            }
            @if nothing_known {
                p.notice #no-data role="status" {
                    "No events in the traits' windows and in no uploaded list: to the server this is a new user."
                }
            }
            h3 { "Traits" }
            @if definitions.is_empty() {
                p.empty #user-traits { "No computed traits are defined in this environment." }
            } @else {
                div.table-wrap {
                    table.cards #user-traits {
                        thead { tr { th { "Trait" } th.num { "Value" } th { "Computed as" } } }
                        tbody {
                            @for t in definitions {
                                @let value = r.profile.trait_value(&t.key);
                                tr data-trait=(t.key) {
                                    td.card-title { strong { (t.key) } }
                                    td.num.value data-label="Value" {
                                        @match value {
                                            Some(TraitValue::Datetime(ms)) => { span title=(tailor_core::profile::format_millis(ms)) { (trait_value_text(TraitValue::Datetime(ms))) } },
                                            Some(v) => { (trait_value_text(v)) },
                                            None => { span.muted title="No events, so no value" { "—" } span.sub { "no events" } },
                                        }
                                    }
                                    td.small data-label="Computed as" { (definition_text(t)) }
                                }
                            }
                        }
                    }
                }
            }
            h3 { "Uploaded lists" }
            @if lists.is_empty() {
                p.muted #user-lists { "In no uploaded list." }
            } @else {
                ul #user-lists { @for l in &lists { li data-list=(l) { a href=(format!("{segments_url}#segment-{l}")) { (l) } } } }
            }
            h3 { "Segments" }
            @if r.segments.is_empty() {
                p.muted #user-segments { "In no segment." }
            } @else {
                ul #user-segments {
                    @for s in &r.segments { li data-segment=(s) { a href=(format!("{segments_url}#segment-{s}")) { (s) } } }
                }
            }
            h3 { "Flags" }
            @if r.flags.is_empty() {
                p.empty #user-flags { "No flags in this environment." }
            } @else {
                div.table-wrap {
                    table.cards #user-flags {
                        thead { tr { th { "Flag" } th { "Variant" } th { "Value" } th { "Reason" } } }
                        tbody {
                            @for f in &r.flags {
                                tr data-flag=(f.flag) {
                                    td.card-title { a href=(flag_url(env, &f.flag)) { strong { (f.flag) } } }
                                    td.variant data-label="Variant" {
                                        @match &f.variant { Some(v) => { (v) }, None => { span.muted { "none" } } }
                                    }
                                    td.value data-label="Value" { code { (value_text(&f.value)) } }
                                    td.reason data-label="Reason" {
                                        span.tag { (f.reason) } " "
                                        span.small { (reason_text(snapshot, &f.flag, f.reason_detail)) }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trait_values_and_keys_read_for_people() {
        assert_eq!(trait_value_text(TraitValue::Number(2.0)), "2");
        assert_eq!(trait_value_text(TraitValue::Number(1234.5)), "1,234.5");
        assert_eq!(trait_value_text(TraitValue::Number(59.98)), "59.98");
        assert_eq!(
            trait_value_text(TraitValue::Datetime(0)),
            "1970-01-01 00:00 UTC"
        );
        assert_eq!(window_text(Some(30)), "last 30 days");
        assert!(key_problem("").is_some());
        assert!(key_problem("  ").is_some());
        assert!(key_problem("a\nb").is_some());
        assert!(key_problem(&"k".repeat(MAX_LIST_KEY_BYTES + 1)).is_some());
        assert_eq!(key_problem("user-1"), None);
    }
}
