//! Cross-site request forgery defences for every dashboard form that changes something.
//!
//! Three layers, each enough on its own in today's browsers:
//! 1. the session cookie is `SameSite=Strict`, so a cross-site form post arrives without it;
//! 2. every POST carries the session's random token in a hidden `csrf` field, compared in
//!    constant time (the sign-in form, which has no session yet, uses a double-submit cookie);
//! 3. when the browser sends `Origin` (or, failing that, `Referer`), it must name this host.

use actix_web::http::header;
use actix_web::HttpRequest;
use subtle::ConstantTimeEq;

use super::DashboardError;

/// Name of the hidden form field.
pub const FIELD: &str = "csrf";
/// Cookie holding the sign-in form's token (double submit).
pub const LOGIN_COOKIE: &str = "tailor_login";
/// Path of that cookie.
pub const LOGIN_PATH: &str = "/dashboard/login";

/// Whether `presented` equals `expected`, in constant time; an empty token never matches.
pub fn tokens_match(expected: &str, presented: &str) -> bool {
    !expected.is_empty()
        && expected.len() == presented.len()
        && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

/// The `host[:port]` of an absolute URL (`scheme://authority/...`).
fn authority(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    // Userinfo never appears in Origin; in a Referer it would be a trick.
    (!authority.is_empty() && !authority.contains('@')).then_some(authority)
}

/// Rejects a request whose `Origin` (or `Referer`, when there is no `Origin`) names another
/// host than the one the request was sent to. Requests with neither header pass (older
/// browsers, privacy settings): the token check still applies to them.
pub fn check_origin(req: &HttpRequest) -> Result<(), DashboardError> {
    let info = req.connection_info();
    let host = info.host();
    let header_value = |name| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let (what, value) = match (header_value(header::ORIGIN), header_value(header::REFERER)) {
        (Some(origin), _) => ("Origin", origin),
        (None, Some(referer)) => ("Referer", referer),
        (None, None) => return Ok(()),
    };
    match authority(value) {
        Some(a) if a.eq_ignore_ascii_case(host) => Ok(()),
        _ => Err(DashboardError::Forbidden(format!(
            "this form was sent from another site ({what}: {value}); changes can only be made from the dashboard itself"
        ))),
    }
}

/// Checks a POST: same origin, and the form's token equals `expected`.
pub fn check(
    req: &HttpRequest,
    expected: &str,
    presented: Option<&str>,
) -> Result<(), DashboardError> {
    check_origin(req)?;
    match presented {
        Some(token) if tokens_match(expected, token) => Ok(()),
        _ => Err(DashboardError::Forbidden(
            "this form's security token is missing or out of date (were you signed out meanwhile?); reload the page and try again".into(),
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn tokens_compare_exactly() {
        assert!(tokens_match("abc", "abc"));
        assert!(!tokens_match("abc", "abd"));
        assert!(!tokens_match("abc", "ab"));
        assert!(!tokens_match("", ""));
    }

    #[test]
    fn origin_and_referer_must_name_this_host() {
        let ok = |req: TestRequest| check_origin(&req.to_http_request()).is_ok();
        let base = || TestRequest::default().insert_header((header::HOST, "127.0.0.1:8080"));
        assert!(ok(base()), "no Origin, no Referer");
        assert!(ok(
            base().insert_header((header::ORIGIN, "http://127.0.0.1:8080"))
        ));
        assert!(ok(base().insert_header((
            header::REFERER,
            "http://127.0.0.1:8080/dashboard/x?y=1"
        ))));
        assert!(!ok(
            base().insert_header((header::ORIGIN, "http://evil.example"))
        ));
        assert!(!ok(base().insert_header((header::ORIGIN, "null"))));
        assert!(!ok(
            base().insert_header((header::ORIGIN, "http://127.0.0.1:9999"))
        ));
        assert!(!ok(base().insert_header((
            header::REFERER,
            "http://127.0.0.1:8080@evil.example/"
        ))));
        // Origin wins over Referer.
        assert!(!ok(base()
            .insert_header((header::ORIGIN, "http://evil.example"))
            .insert_header((header::REFERER, "http://127.0.0.1:8080/"))));
    }
}
