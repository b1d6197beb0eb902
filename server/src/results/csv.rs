//! The report as CSV: one row per scope and arm.
//!
//! Exports are opened in spreadsheets, which run a cell that starts with `=`, `+`, `-` or `@`
//! as a formula (some first strip a leading tab or carriage return): CSV injection. Text cells carry
//! strings that come from users and config — scope labels (segment keys, or any `segment` an
//! SDK sends with an exposure), variant keys — so, as OWASP recommends, a text cell starting
//! with one of those characters is prefixed with a single quote, which spreadsheets show as
//! text, and then quoted as usual ([`text_field`]).
//!
//! Numeric columns are written as they are, never prefixed: they are produced here by
//! formatting `u64` and `f64`, so they hold nothing but digits, a sign, a point, an exponent or
//! `inf`/`NaN`, and a negative lift such as `-0.05` is a number a spreadsheet must read as one,
//! not a formula to defuse.

use super::output::ExperimentReport;
use crate::stats;

/// Leading characters that make a spreadsheet read a cell as a formula (OWASP's list).
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// Quotes a field that holds a separator, a quote or a line break (RFC 4180; a bare carriage
/// return counts, as spreadsheets end rows on it too).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A text cell (anything that may come from users or config): neutralised with a leading `'`
/// when a spreadsheet would take it for a formula, then quoted as needed.
fn text_field(s: &str) -> String {
    if s.starts_with(FORMULA_STARTS) {
        csv_field(&format!("'{s}"))
    } else {
        csv_field(s)
    }
}

/// A number, or an empty field when it is undefined.
fn num<T>(o: &stats::Outcome<T>, f: impl Fn(&T) -> f64) -> String {
    o.value().map(|v| number(f(v))).unwrap_or_default()
}

/// A number as spreadsheets read it: plain decimals, but scientific notation for magnitudes
/// under 1e-4 (a p-value of 6.7e-49 would otherwise be 49 zeros long) or of 1e15 and more.
fn number(v: f64) -> String {
    let magnitude = v.abs();
    if v != 0.0 && v.is_finite() && !(1e-4..1e15).contains(&magnitude) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// The report as CSV: one row per scope and arm.
pub fn to_csv(report: &ExperimentReport) -> String {
    let mut out = String::from(
        "scope,variant,users,converted,mean,abs_lift,abs_ci_lower,abs_ci_upper,rel_lift,rel_ci_lower,rel_ci_upper,p_value,chance_to_win,status\n",
    );
    for scope in std::iter::once(&report.overall).chain(&report.segments) {
        for arm in &scope.arms {
            let mean = num(&arm.result.moments, |m| m.mean);
            let (abs, rel, bayes) = match &arm.result.comparison {
                Some(c) => (Some(&c.absolute), Some(&c.relative), Some(&c.bayesian)),
                None => (None, None, None),
            };
            let status = match rel.and_then(|r| r.reason()) {
                Some(reason) => reason.message().to_string(),
                None if arm.result.comparison.is_none() => "control".to_string(),
                None => "ok".to_string(),
            };
            let cells = [
                text_field(&scope.scope),
                text_field(&arm.variant),
                arm.users.to_string(),
                arm.converted.to_string(),
                mean,
                abs.map(|a| num(a, |l| l.estimate)).unwrap_or_default(),
                abs.map(|a| num(a, |l| l.ci.lower)).unwrap_or_default(),
                abs.map(|a| num(a, |l| l.ci.upper)).unwrap_or_default(),
                rel.map(|a| num(a, |l| l.estimate)).unwrap_or_default(),
                rel.map(|a| num(a, |l| l.ci.lower)).unwrap_or_default(),
                rel.map(|a| num(a, |l| l.ci.upper)).unwrap_or_default(),
                rel.map(|a| num(a, |l| l.p_value)).unwrap_or_default(),
                bayes
                    .map(|b| num(b, |l| l.chance_to_win))
                    .unwrap_or_default(),
                text_field(&status),
            ];
            out.push_str(&cells.join(","));
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::attribution::ExperimentTotals;
    use crate::results::fixtures::{cell, snapshot};
    use crate::results::{report, ResultsQuery};

    #[test]
    fn fields_with_separators_or_quotes_are_quoted() {
        assert_eq!(csv_field("beginners"), "beginners");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field("two\rlines"), "\"two\rlines\"");
    }

    #[test]
    fn each_formula_character_is_neutralised_at_the_start_only() {
        for c in FORMULA_STARTS {
            let cell = text_field(&format!("{c}1+1"));
            assert!(
                cell.trim_start_matches('"').starts_with(&format!("'{c}")),
                "{c:?}: {cell:?}"
            );
        }
        assert_eq!(
            text_field("=HYPERLINK(\"http://x\")"),
            "\"'=HYPERLINK(\"\"http://x\"\")\""
        );
        assert_eq!(text_field("-x"), "'-x");
        assert_eq!(text_field("\rx"), "\"'\rx\"");
        assert_eq!(text_field("a=b-c"), "a=b-c");
        assert_eq!(text_field("'=already"), "'=already");
        assert_eq!(text_field(""), "");
    }

    #[test]
    fn undefined_numbers_are_empty_fields() {
        assert_eq!(num(&stats::Outcome::Ok(0.25), |v| *v), "0.25");
        let undefined: stats::Outcome<f64> = stats::Outcome::NotEnoughData {
            reason: stats::NotEnoughData::EmptyArm,
        };
        assert_eq!(num(&undefined, |v| *v), "");
    }

    /// Experiment `x` on flag `f` whose variants, `=a` (the control) and `-b`, look like
    /// formulas to a spreadsheet.
    const FORMULA_VARIANTS: &str = r#"
experiments:
  - {key: x, status: running, primary_metric: purchase}
flags:
  - key: f
    type: string
    variants:
      - {key: "=a", value: "a"}
      - {key: "-b", value: "b"}
    default_variant: "=a"
    rules:
      - split: [{variant: "=a", weight: 5000}, {variant: "-b", weight: 5000}]
        experiment: x
"#;

    /// Scope labels (segments named by exposure events) starting with each dangerous character.
    const FORMULA_SEGMENTS: [&str; 6] = ["=s", "+s", "-s", "@s", "\ts", "\rs"];

    /// The CSV of [`FORMULA_VARIANTS`] with 100 users per arm in each of [`FORMULA_SEGMENTS`]:
    /// 20 converting on `=a`, 10 on `-b` (so `-b`'s lift is negative).
    fn formula_csv() -> String {
        let cells = FORMULA_SEGMENTS
            .iter()
            .flat_map(|s| [cell("=a", s, false, 100, 20), cell("-b", s, false, 100, 10)])
            .collect();
        let totals = ExperimentTotals {
            cells,
            multi_variant_users: 0,
            late_exposures: 0,
        };
        let report = report(
            "dev",
            &snapshot(FORMULA_VARIANTS),
            "x",
            Some(&totals),
            &ResultsQuery::default(),
            String::new(),
        )
        .unwrap();
        to_csv(&report)
    }

    #[test]
    fn text_cells_starting_like_a_formula_are_neutralised() {
        let csv = formula_csv();
        for row in ["\noverall,'=a,", "\noverall,'-b,"] {
            assert!(csv.contains(row), "variant keys: no {row:?} in\n{csv}");
        }
        for scope in ["'=s", "'+s", "'-s", "'@s", "'\ts", "\"'\rs\""] {
            let row = format!("\n{scope},'-b,");
            assert!(csv.contains(&row), "scopes: no {row:?} in\n{csv}");
        }
        for line in csv.lines().skip(1) {
            let first = line.trim_start_matches('"').chars().next();
            assert!(
                !matches!(first, Some('=' | '+' | '-' | '@' | '\t' | '\r')),
                "a row starts like a formula: {line:?}"
            );
        }
    }

    #[test]
    fn negative_numbers_stay_numbers() {
        let csv = formula_csv();
        let row = csv.lines().find(|l| l.starts_with("overall,'-b,")).unwrap();
        let cells: Vec<&str> = row.split(',').collect();
        // abs_lift: 10% against 20% converted.
        assert!(cells[5].starts_with('-'), "{row}");
        assert!(cells[5].parse::<f64>().unwrap() < 0.0, "{row}");
        assert_eq!(num(&stats::Outcome::Ok(-0.05), |v| *v), "-0.05");
    }

    #[test]
    fn tiny_and_huge_numbers_are_written_in_scientific_notation() {
        assert_eq!(number(6.738_899_154_278_19e-49), "6.73889915427819e-49");
        assert_eq!(number(0.0123), "0.0123");
        assert_eq!(number(-0.05), "-0.05");
        assert_eq!(number(0.0), "0");
        assert_eq!(number(1234.5), "1234.5");
        assert_eq!(number(2e20), "2e20");
    }
}
