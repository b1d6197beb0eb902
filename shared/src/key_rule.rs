//! The key rule: what a new segment, flag, variant, experiment or layer key may look like.
//!
//! Keys are identifiers that travel everywhere: URLs, exposures, results rows, CSV cells, the
//! audit log and the dashboard. A key is 1–128 characters of ASCII letters, digits, `-`, `_`,
//! `.` and `:`, starting with a letter or a digit (`beginner-onboarding`, `checkout.v2`,
//! `exp:2026-q4`). That keeps out what used to be accepted: 1 MB keys, NUL and other control
//! characters, right-to-left overrides and look-alike letters that spoof text in the dashboard,
//! and keys that read as spreadsheet formulas.
//!
//! **Stored configs are not broken by the rule.** It applies to keys a change *introduces*:
//! [`check_new_keys`] compares the document before and after a change, and only keys absent
//! before must follow it. A config stored by an earlier version with, say, a flag `café au
//! lait` keeps loading, serving and evaluating; that flag can be updated, rolled out and deleted,
//! and an import that keeps it is accepted, but no new key like it can be created. Renaming it
//! (a new key) moves it under the rule.

use std::collections::HashSet;

use crate::error::Problems;
use crate::model::ConfigDocument;
use crate::ConfigError;

/// Longest key, in characters (all ASCII, so also bytes).
pub const MAX_KEY_LEN: usize = 128;

/// Whether `key` follows the key rule.
pub fn is_valid_key(key: &str) -> bool {
    key.len() <= MAX_KEY_LEN
        && key.starts_with(|c: char| c.is_ascii_alphanumeric())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

/// Why `key` breaks the rule, for a problem message.
fn explain(key: &str) -> String {
    let shown: String = key.chars().take(40).flat_map(char::escape_debug).collect();
    let more = if key.chars().count() > 40 { "…" } else { "" };
    format!(
        "keys are 1-{MAX_KEY_LEN} characters of A-Z, a-z, 0-9, `-`, `_`, `.` and `:`, starting \
         with a letter or digit; got \"{shown}{more}\" ({} bytes)",
        key.len()
    )
}

/// Checks every key in `after` that `before` did not have (segments, flags, each flag's
/// variants, experiments, layers, traits); every problem names its path.
pub fn check_new_keys(before: &ConfigDocument, after: &ConfigDocument) -> Result<(), ConfigError> {
    let mut problems = Problems::default();
    let mut check = |existing: HashSet<&str>, keys: Vec<(String, &str)>| {
        for (path, key) in keys {
            if !existing.contains(key) && !key.is_empty() && !is_valid_key(key) {
                problems.push(path, explain(key));
            }
        }
    };
    check(
        before.segments.iter().map(|s| s.key.as_str()).collect(),
        after
            .segments
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("segments[{i}].key"), s.key.as_str()))
            .collect(),
    );
    check(
        before.flags.iter().map(|f| f.key.as_str()).collect(),
        after
            .flags
            .iter()
            .enumerate()
            .map(|(i, f)| (format!("flags[{i}].key"), f.key.as_str()))
            .collect(),
    );
    for (i, flag) in after.flags.iter().enumerate() {
        let existing = before
            .flag(&flag.key)
            .map(|f| f.variants.iter().map(|v| v.key.as_str()).collect())
            .unwrap_or_default();
        check(
            existing,
            flag.variants
                .iter()
                .enumerate()
                .map(|(j, v)| (format!("flags[{i}].variants[{j}].key"), v.key.as_str()))
                .collect(),
        );
    }
    check(
        before.experiments.iter().map(|e| e.key.as_str()).collect(),
        after
            .experiments
            .iter()
            .enumerate()
            .map(|(i, e)| (format!("experiments[{i}].key"), e.key.as_str()))
            .collect(),
    );
    check(
        before.layers.iter().map(|l| l.key.as_str()).collect(),
        after
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| (format!("layers[{i}].key"), l.key.as_str()))
            .collect(),
    );
    check(
        before.traits.iter().map(|t| t.key.as_str()).collect(),
        after
            .traits
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("traits[{i}].key"), t.key.as_str()))
            .collect(),
    );
    problems.into_result()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn doc(yaml: &str) -> ConfigDocument {
        ConfigDocument::from_yaml(yaml).unwrap()
    }

    #[test]
    fn the_rule() {
        for ok in [
            "a",
            "beginner-onboarding",
            "checkout.v2",
            "exp:2026-q4",
            "A_1",
            "9lives",
        ] {
            assert!(is_valid_key(ok), "{ok}");
        }
        let long = "a".repeat(MAX_KEY_LEN + 1);
        for bad in [
            "",
            "-leading",
            ".hidden",
            "=HYPERLINK(1)",
            "a/b",
            "café",
            "a b",
            "nul\0",
            "rtl\u{202E}txt",
            "zero\u{200B}width",
            long.as_str(),
        ] {
            assert!(!is_valid_key(bad), "{bad:?}");
        }
        assert!(is_valid_key(&"a".repeat(MAX_KEY_LEN)));
    }

    #[test]
    fn only_keys_a_change_introduces_must_follow_it() {
        let before = doc(r#"
flags:
  - key: "café au lait"
    type: bool
    variants: [{key: "off ", value: false}, {key: "on", value: true}]
    default_variant: "off "
"#);
        // The grandfathered flag and variant may stay, and change otherwise.
        let mut after = before.clone();
        after.flags[0].enabled = false;
        assert!(check_new_keys(&before, &after).is_ok());
        // New keys must follow the rule, each reported at its path.
        let after = doc(r#"
segments:
  - {key: "seg\u202Ement", conditions: {attribute: a, op: exists}}
flags:
  - key: "café au lait"
    type: bool
    variants: [{key: "off ", value: false}, {key: "on", value: true}, {key: "=1+1", value: true}]
    default_variant: "off "
  - key: "a/b"
    type: bool
    variants: [{key: "off", value: false}]
    default_variant: "off"
experiments:
  - {key: ok-experiment}
"#);
        let err = check_new_keys(&before, &after).unwrap_err();
        let paths: Vec<&str> = err.problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "segments[0].key",
                "flags[1].key",
                "flags[0].variants[2].key"
            ]
        );
        assert!(
            err.problems[0]
                .message
                .contains(r#"got "seg\u{202e}ment" (10 bytes)"#),
            "{}",
            err.problems[0].message
        );
    }
}
