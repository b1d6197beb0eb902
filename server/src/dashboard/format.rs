//! Numbers for people: counts with thousands separators, rates and lifts as percentages,
//! intervals, p-values, chances, basis points, times. Negative numbers use the minus sign
//! (U+2212), which lines up with `+` in tables.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const MINUS: char = '\u{2212}';

/// `1234567` → `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A number with `decimals` places and thousands separators, minus sign for negatives.
pub fn number(x: f64, decimals: usize) -> String {
    let text = format!("{:.*}", decimals, x.abs());
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let mut out = String::new();
    if x < 0.0 && !is_zero(&text) {
        out.push(MINUS);
    }
    out.push_str(&count(int.parse().unwrap_or(0)));
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out
}

fn is_zero(text: &str) -> bool {
    text.chars().all(|c| c == '0' || c == '.')
}

/// A share as a percentage: `0.1234` → `12.34%` (2 decimals).
pub fn percent(x: f64) -> String {
    format!("{}%", number(x * 100.0, 2))
}

/// A signed share as a percentage with one decimal: `0.3` → `+30.0%`, `-0.021` → `−2.1%`;
/// what rounds to zero has no sign.
pub fn signed_percent(x: f64) -> String {
    let text = format!("{:.1}", (x * 100.0).abs());
    if is_zero(&text) {
        format!("{text}%")
    } else if x < 0.0 {
        format!("{MINUS}{text}%")
    } else {
        format!("+{text}%")
    }
}

/// A difference of shares in percentage points: `0.03` → `+3.00 pp`.
pub fn signed_points(x: f64) -> String {
    let text = format!("{:.2}", (x * 100.0).abs());
    if is_zero(&text) {
        format!("{text} pp")
    } else if x < 0.0 {
        format!("{MINUS}{text} pp")
    } else {
        format!("+{text} pp")
    }
}

/// A relative-lift interval: `[−1.9%, +61.9%]`.
pub fn interval(lower: f64, upper: f64) -> String {
    format!("[{}, {}]", signed_percent(lower), signed_percent(upper))
}

/// A p-value: three decimals, `< 0.001` below that.
pub fn p_value(p: f64) -> String {
    if p < 0.001 {
        "< 0.001".into()
    } else {
        format!("{p:.3}")
    }
}

/// A probability as a percentage with one decimal, never claiming certainty.
pub fn chance(p: f64) -> String {
    if p > 0.999 {
        "> 99.9%".into()
    } else if p < 0.001 {
        "< 0.1%".into()
    } else {
        format!("{:.1}%", p * 100.0)
    }
}

/// Basis points as a percentage without needless decimals: `2500` → `25%`, `1250` → `12.5%`,
/// `1` → `0.01%`.
pub fn basis_points(bp: u32) -> String {
    let whole = bp / 100;
    match bp % 100 {
        0 => format!("{whole}%"),
        frac if frac % 10 == 0 => format!("{whole}.{}%", frac / 10),
        frac => format!("{whole}.{frac:02}%"),
    }
}

/// A percentage typed by a person (`25`, `25%`, `12.5`, `0.01`) → basis points.
pub fn parse_percent(text: &str) -> Result<u32, String> {
    let t = text.trim().trim_end_matches('%').trim();
    let bad = || format!("`{text}` is not a percentage between 0 and 100 (at most 2 decimals)");
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if int.is_empty() && frac.is_empty()
        || !int.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
        || frac.len() > 2
        || int.len() > 3
    {
        return Err(bad());
    }
    let int: u32 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| bad())?
    };
    let frac: u32 = format!("{frac:0<2}").parse().map_err(|_| bad())?;
    let bp = int * 100 + frac;
    if bp > 10_000 {
        return Err(bad());
    }
    Ok(bp)
}

/// An RFC 3339 time as `2026-03-04 14:05 UTC` (the input when it does not parse).
pub fn timestamp(rfc3339: &str) -> String {
    OffsetDateTime::parse(rfc3339, &Rfc3339)
        .map(|t| utc_minutes(t.to_offset(time::UtcOffset::UTC)))
        .unwrap_or_else(|_| rfc3339.to_string())
}

/// Unix milliseconds as `2026-03-04 14:05 UTC`.
pub fn unix_millis(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map(utc_minutes)
        .unwrap_or_default()
}

fn utc_minutes(t: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// Unix milliseconds as a short axis label: `03-04 14:00`.
pub fn axis_time(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map(|t| {
            format!(
                "{:02}-{:02} {:02}:{:02}",
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute()
            )
        })
        .unwrap_or_default()
}

/// Text shortened to `max` characters with an ellipsis.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_like_people_write_them() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(number(-1234.5, 2), "−1,234.50");
        assert_eq!(number(-0.001, 2), "0.00");
        assert_eq!(percent(0.075), "7.50%");
        assert_eq!(percent(0.13), "13.00%");
        assert_eq!(signed_percent(0.3), "+30.0%");
        assert_eq!(signed_percent(-0.0214), "−2.1%");
        assert_eq!(signed_percent(-0.0004), "0.0%");
        assert_eq!(signed_points(0.055), "+5.50 pp");
        assert_eq!(interval(-0.019, 0.619), "[−1.9%, +61.9%]");
        assert_eq!(p_value(0.0451), "0.045");
        assert_eq!(p_value(0.0002), "< 0.001");
        assert_eq!(chance(0.9731), "97.3%");
        assert_eq!(chance(0.99999), "> 99.9%");
        assert_eq!(chance(0.00001), "< 0.1%");
    }

    #[test]
    fn basis_points_round_trip_through_percentages() {
        assert_eq!(basis_points(2500), "25%");
        assert_eq!(basis_points(1250), "12.5%");
        assert_eq!(basis_points(1), "0.01%");
        assert_eq!(basis_points(10_000), "100%");
        for bp in [0, 1, 10, 99, 500, 1250, 2500, 3333, 10_000] {
            assert_eq!(parse_percent(&basis_points(bp)), Ok(bp));
        }
        assert_eq!(parse_percent(" 50 "), Ok(5000));
        assert_eq!(parse_percent(".5"), Ok(50));
        for bad in [
            "", "abc", "-5", "100.01", "101", "1.234", "1e2", "50.%x", ".",
        ] {
            assert!(parse_percent(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_are_utc_minutes() {
        assert_eq!(timestamp("2026-03-04T14:05:59Z"), "2026-03-04 14:05 UTC");
        assert_eq!(
            timestamp("2026-03-04T15:05:00+01:00"),
            "2026-03-04 14:05 UTC"
        );
        assert_eq!(timestamp("garbage"), "garbage");
        assert_eq!(unix_millis(0), "1970-01-01 00:00 UTC");
        assert_eq!(axis_time(3_600_000), "01-01 01:00");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }
}
