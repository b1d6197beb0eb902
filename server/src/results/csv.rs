//! The report as CSV: one row per scope and arm.

use super::output::ExperimentReport;
use crate::stats;

/// Quotes a field that holds a separator, a quote or a newline (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A number, or an empty field when it is undefined.
fn num<T>(o: &stats::Outcome<T>, f: impl Fn(&T) -> f64) -> String {
    o.value().map(|v| format!("{}", f(v))).unwrap_or_default()
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
                csv_field(&scope.scope),
                csv_field(&arm.variant),
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
                csv_field(&status),
            ];
            out.push_str(&cells.join(","));
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_with_separators_or_quotes_are_quoted() {
        assert_eq!(csv_field("beginners"), "beginners");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn undefined_numbers_are_empty_fields() {
        assert_eq!(num(&stats::Outcome::Ok(0.25), |v| *v), "0.25");
        let undefined: stats::Outcome<f64> = stats::Outcome::NotEnoughData {
            reason: stats::NotEnoughData::EmptyArm,
        };
        assert_eq!(num(&undefined, |v| *v), "");
    }
}
