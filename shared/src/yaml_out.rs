//! Writing YAML that every YAML reader reads back as the same strings.
//!
//! `serde_yaml_ng` writes a string plain unless YAML 1.2 would read it as something else, so
//! `off`, `yes`, `on` or `n` come out unquoted, and YAML 1.1 readers (PyYAML, Ruby's Psych,
//! many CI tools) read them as booleans; `1_000`, `0o17`, `1:20` or `2026-01-01` likewise turn
//! into numbers or dates there. [`to_yaml`] quotes every string (and mapping key) that some
//! YAML version could read as a boolean, null, number or timestamp.
//!
//! How: such strings are swapped for unique placeholder tokens, the value is written, and each
//! token is replaced by the original as a double-quoted scalar (JSON string syntax, which is
//! valid YAML).

use serde::Serialize;
use serde_yaml_ng::Value;

/// Prefix of the placeholder tokens; a document that contains it is written without the swap.
const TOKEN: &str = "tailor-yaml-quoted-7f3a9c-";

/// `value` as YAML with every ambiguous string quoted (see the module docs).
pub fn to_yaml<T: Serialize>(value: &T) -> Result<String, serde_yaml_ng::Error> {
    let mut tree = serde_yaml_ng::to_value(value)?;
    let mut quoted = Vec::new();
    swap_ambiguous(&mut tree, &mut quoted);
    let text = serde_yaml_ng::to_string(&tree)?;
    if quoted.is_empty() {
        return Ok(text);
    }
    if quoted.iter().any(|s| s.contains(TOKEN)) {
        return serde_yaml_ng::to_string(value);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find(TOKEN) {
        out.push_str(&rest[..at]);
        let after = &rest[at + TOKEN.len()..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        let original = after[..digits]
            .parse::<usize>()
            .ok()
            .and_then(|i| quoted.get(i));
        match original {
            Some(original) => out.push_str(&double_quoted(original)),
            None => out.push_str(&rest[at..at + TOKEN.len() + digits]),
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    Ok(out)
}

fn double_quoted(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn swap_ambiguous(value: &mut Value, quoted: &mut Vec<String>) {
    match value {
        Value::String(s) if is_ambiguous(s) => {
            let original = std::mem::replace(s, format!("{TOKEN}{}", quoted.len()));
            quoted.push(original);
        }
        Value::Sequence(items) => items.iter_mut().for_each(|v| swap_ambiguous(v, quoted)),
        Value::Mapping(map) => {
            let entries = std::mem::take(map);
            for (mut key, mut v) in entries {
                swap_ambiguous(&mut key, quoted);
                swap_ambiguous(&mut v, quoted);
                map.insert(key, v);
            }
        }
        Value::Tagged(tagged) => swap_ambiguous(&mut tagged.value, quoted),
        _ => {}
    }
}

/// Whether some YAML version reads `s`, written plain, as something other than this string.
pub fn is_ambiguous(s: &str) -> bool {
    const WORDS: [&str; 12] = [
        "y", "yes", "n", "no", "true", "false", "on", "off", "null", "~", ".inf", ".nan",
    ];
    let lower = s.to_ascii_lowercase();
    if WORDS.contains(&lower.as_str()) || lower == "-.inf" || lower == "+.inf" {
        return true;
    }
    // Numbers in any base or form (`1_000`, `0o17`, `0x1f`, `1e3`, `+1`, `1:20` sexagesimal)
    // and dates or timestamps (`2026-01-01`, `2026-01-01T10:00:00Z`).
    let first = s.chars().next();
    first.is_some_and(|c| c.is_ascii_digit() || ((c == '+' || c == '-' || c == '.') && s.len() > 1))
        && s.chars().all(|c| {
            c.is_ascii_hexdigit()
                || matches!(
                    c,
                    '_' | '.'
                        | ':'
                        | '+'
                        | '-'
                        | 'x'
                        | 'X'
                        | 'o'
                        | 'O'
                        | 'T'
                        | 't'
                        | 'Z'
                        | 'z'
                        | ' '
                )
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn yaml_1_1_booleans_numbers_and_dates_are_quoted_and_read_back_as_strings() {
        let value = serde_json::json!({
            "key": "off",
            "variants": [{"key": "on", "value": true}, {"key": "yes", "value": "No"}],
            "plain": "beginner-onboarding",
            "numbers": ["1_000", "0o17", "1:20", "010", "2026-01-01", 7],
            "empty": "",
            "nested": {"y": "n"},
        });
        let text = to_yaml(&value).unwrap();
        for quoted in [
            r#"key: "off""#,
            r#"- key: "on""#,
            r#"value: "No""#,
            r#"- "1_000""#,
            r#"- "0o17""#,
            r#"- "1:20""#,
            r#"- "2026-01-01""#,
            r#""y": "n""#,
        ] {
            assert!(text.contains(quoted), "no {quoted} in\n{text}");
        }
        assert!(text.contains("plain: beginner-onboarding"), "{text}");
        assert!(
            text.contains("value: true") && text.contains("- 7"),
            "{text}"
        );
        let back: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn ambiguity() {
        for s in [
            "off",
            "ON",
            "y",
            "No",
            "~",
            "null",
            ".inf",
            "1e3",
            "0x1F",
            "+1",
            "2026-01-01T10:00:00Z",
        ] {
            assert!(is_ambiguous(s), "{s}");
        }
        for s in ["offline", "beginner", "v1", "a-1", "-", "+", "."] {
            assert!(!is_ambiguous(s), "{s}");
        }
    }
}
