//! The page layout and the pieces pages share. All text goes through maud's `( … )`, which
//! HTML-escapes it: keys, names, descriptions and values are user-provided.

use maud::{html, Markup, DOCTYPE};
use serde_json::Value;
use tailor_core::model::{Condition, Operator};

use super::{csrf, env_url, SignedIn, CSS_URL};

/// The areas of an environment, for the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// The list of environments.
    Environments,
    /// Flags and their rules.
    Flags,
    /// Segments and computed traits.
    Segments,
    /// The user lookup.
    Users,
    /// Experiments and results.
    Experiments,
    /// The audit log.
    Audit,
}

/// What the header shows.
pub struct Nav<'a> {
    /// Who is signed in.
    pub me: &'a SignedIn,
    /// The environment being looked at.
    pub env: Option<&'a str>,
    /// Every environment, for switching.
    pub environments: Vec<String>,
    /// The current area.
    pub section: Section,
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="referrer" content="same-origin";
            title { (title) " · Tailor" }
            link rel="stylesheet" href=(CSS_URL.as_str());
        }
    }
}

/// A signed-in page.
pub fn layout(title: &str, nav: &Nav<'_>, body: Markup) -> Markup {
    let sections = [
        (Section::Flags, "Flags", "flags"),
        (Section::Segments, "Segments", "segments"),
        (Section::Users, "Users", "users"),
        (Section::Experiments, "Experiments", "experiments"),
        (Section::Audit, "Audit log", "audit"),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header.top {
                    div.bar {
                        a.brand href="/dashboard" { "Tailor" }
                        nav.envs aria-label="Environments" {
                            @for env in &nav.environments {
                                @let current = nav.env == Some(env.as_str());
                                a.env.current[current] href=(env_url(env, "flags"))
                                    aria-current=[current.then_some("page")] { (env) }
                            }
                        }
                        form.signout method="post" action="/dashboard/logout" {
                            span.who title="Signed in with this admin key" { (nav.me.key_name) }
                            (csrf_field(nav.me))
                            button.link type="submit" { "Sign out" }
                        }
                    }
                    @if let Some(env) = nav.env {
                        nav.sections aria-label="Sections" {
                            @for (section, label, path) in sections {
                                @let current = nav.section == section;
                                a.current[current] href=(env_url(env, path))
                                    aria-current=[current.then_some("page")] { (label) }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A page without navigation (sign-in, errors).
pub fn bare_layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header.top { div.bar { a.brand href="/dashboard" { "Tailor" } } }
                main.narrow { (body) }
            }
        }
    }
}

/// The hidden CSRF field every changing form carries.
pub fn csrf_field(me: &SignedIn) -> Markup {
    html! { input type="hidden" name=(csrf::FIELD) value=(me.csrf); }
}

/// A flag's on/off badge.
pub fn flag_status(enabled: bool) -> Markup {
    if enabled {
        html! { span.badge.badge-on { "On" } }
    } else {
        html! { span.badge.badge-off { "Paused" } }
    }
}

/// A JSON value on one line, shortened.
pub fn value_text(value: &Value) -> String {
    let text = match value {
        Value::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    };
    super::format::truncate(&text, 160)
}

fn operator(op: Operator) -> &'static str {
    match op {
        Operator::Eq => "is",
        Operator::Neq => "is not",
        Operator::In => "is one of",
        Operator::NotIn => "is none of",
        Operator::Contains => "contains",
        Operator::StartsWith => "starts with",
        Operator::EndsWith => "ends with",
        Operator::Regex => "matches",
        Operator::Lt => "<",
        Operator::Lte => "≤",
        Operator::Gt => ">",
        Operator::Gte => "≥",
        Operator::SemverEq => "= version",
        Operator::SemverLt => "< version",
        Operator::SemverLte => "≤ version",
        Operator::SemverGt => "> version",
        Operator::SemverGte => "≥ version",
        Operator::Before => "is before",
        Operator::After => "is after",
        Operator::Exists => "exists",
        Operator::ContainsAny => "contains any of",
        Operator::ContainsAll => "contains all of",
    }
}

/// A condition as a sentence: `plan is "pro" and (in segment beginners or not country is "US")`.
pub fn condition_text(condition: &Condition) -> String {
    fn go(c: &Condition, nested: bool) -> String {
        let group = |items: &[Condition], joiner: &str, empty: &str| {
            if items.is_empty() {
                return empty.to_string();
            }
            let parts: Vec<String> = items.iter().map(|c| go(c, true)).collect();
            let joined = parts.join(joiner);
            if nested && items.len() > 1 {
                format!("({joined})")
            } else {
                joined
            }
        };
        match c {
            Condition::All { all } => group(all, " and ", "everyone"),
            Condition::Any { any } => group(any, " or ", "no one"),
            Condition::Not { not } => format!("not {}", go(not, true)),
            Condition::Segment { segment } => format!("in segment {segment}"),
            Condition::Trait(t) => test_text(&format!("trait {}", t.trait_key), t.op, &t.values),
            Condition::Attribute(a) => {
                let mut out = test_text(&a.attribute, a.op, &a.values);
                if a.ignore_case {
                    out.push_str(" (any case)");
                }
                out
            }
        }
    }
    fn test_text(subject: &str, op: Operator, values: &[serde_json::Value]) -> String {
        let values: Vec<String> = values.iter().map(value_text).collect();
        let mut out = format!("{subject} {}", operator(op));
        match values.len() {
            0 => {}
            1 => {
                out.push(' ');
                out.push_str(&values[0]);
            }
            _ => {
                out.push_str(" [");
                out.push_str(&values.join(", "));
                out.push(']');
            }
        }
        out
    }
    go(condition, false)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn conditions_read_as_sentences() {
        let c: Condition = serde_json::from_value(serde_json::json!({"all": [
            {"attribute": "plan", "op": "eq", "values": ["pro"]},
            {"any": [{"segment": "beginners"}, {"not": {"attribute": "age", "op": "gte", "values": [30]}}]},
        ]}))
        .unwrap();
        assert_eq!(
            condition_text(&c),
            "plan is \"pro\" and (in segment beginners or not age ≥ 30)"
        );
    }
}
