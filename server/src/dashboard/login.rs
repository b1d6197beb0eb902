//! Signing in with an admin key, and out.
//!
//! The sign-in form has no session yet, so its CSRF defence is a double submit: the form page
//! sets a random token in an `HttpOnly`, `SameSite=Strict` cookie scoped to the login path and
//! in a hidden field, and the post must carry both, equal. SDK and client keys cannot sign in.
//! Too many failed sign-ins from one address make it wait (`throttle.rs`).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use maud::html;
use serde::Deserialize;

use super::session::{self, random_token};
use super::{csrf, page_response, query_value, signed_in, views, DashboardError, Form};
use crate::client_address::client_address;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::KeyKind;

/// Where the sign-in page sends you afterwards, if it is a dashboard page (never another site).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if (n == "/dashboard" || n.starts_with("/dashboard/"))
                && !n.contains(['\\', '\r', '\n'])
                && !n.starts_with("/dashboard/login") =>
        {
            n.to_string()
        }
        _ => "/dashboard".to_string(),
    }
}

/// The sign-in page's URL, returning to `next` afterwards.
pub fn login_url(next: &str) -> String {
    let next = safe_next(Some(next));
    if next == "/dashboard" {
        "/dashboard/login".to_string()
    } else {
        format!("/dashboard/login?next={}", query_value(&next))
    }
}

#[derive(Deserialize)]
pub(super) struct LoginQuery {
    next: Option<String>,
}

fn render(
    state: &AppState,
    next: &str,
    error: Option<&str>,
    status: StatusCode,
    from_another_site: bool,
) -> HttpResponse {
    let token = random_token();
    let body = html! {
        h1 { "Sign in" }
        @if from_another_site {
            // The session cookie is SameSite=Strict: a link from another site (chat, mail)
            // arrives without it. Following this link from here sends it.
            p.notice { "Already signed in in this browser? " a href=(next) { "Continue to the page" } }
        }
        p.muted { "Sign in with an admin key. The key is checked, never stored in your browser: you get a session that lasts "
            (state.sessions.config().lifetime.as_secs() / 3600) " hours." }
        @if let Some(e) = error { p.alert.alert-error role="alert" { (e) } }
        form.card.login method="post" action="/dashboard/login" {
            input type="hidden" name=(csrf::FIELD) value=(token);
            input type="hidden" name="next" value=(next);
            label for="key" { "Admin key" }
            input #key type="password" name="key" autocomplete="current-password" required autofocus;
            button.primary type="submit" { "Sign in" }
        }
    };
    let mut res = page_response(views::bare_layout("Sign in", body));
    *res.status_mut() = status;
    let cookie = session::cookie(
        csrf::LOGIN_COOKIE,
        &token,
        csrf::LOGIN_PATH,
        3600,
        state.sessions.config().secure_cookies,
    );
    if let Ok(v) = header::HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

/// `GET /dashboard/login`: the form (or straight on, when already signed in).
pub(super) async fn form(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<LoginQuery>,
) -> HttpResponse {
    let next = safe_next(query.next.as_deref());
    if signed_in(&req, &state).await.is_ok() {
        return HttpResponse::SeeOther()
            .insert_header((header::LOCATION, next))
            .finish();
    }
    let cross_site = req
        .headers()
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site");
    render(&state, &next, None, StatusCode::OK, cross_site)
}

/// `POST /dashboard/login`: checks the key, opens a session.
pub(super) async fn sign_in(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, DashboardError> {
    if !state.is_ready() {
        return Err(ApiError::Unavailable("the store is not loaded yet".into()).into());
    }
    let form = Form::parse(&body)?;
    csrf::check_origin(&req)?;
    let expected = session::request_cookie(&req, csrf::LOGIN_COOKIE).unwrap_or_default();
    if !csrf::tokens_match(expected, form.get(csrf::FIELD).unwrap_or_default()) {
        return Err(DashboardError::Forbidden(
            "the sign-in form expired or was sent from another site; reload the sign-in page"
                .into(),
        ));
    }
    let next = safe_next(form.get("next"));
    let address = client_address(&req, &state.trusted_proxies);
    if let Some(wait) = state.auth_throttle.wait(address) {
        tracing::warn!(%address, "dashboard sign-in throttled");
        let minutes = wait.as_secs().div_ceil(60).max(1);
        let message = format!(
            "Too many failed sign-ins from your address. Try again in {minutes} minute{}.",
            if minutes == 1 { "" } else { "s" }
        );
        let mut res = render(
            &state,
            &next,
            Some(&message),
            StatusCode::TOO_MANY_REQUESTS,
            false,
        );
        if let Ok(v) = header::HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Ok(res);
    }
    let secret = form.get("key").unwrap_or_default().trim();
    let key = state.authenticate(secret);
    let Some(key) = key.filter(|k| k.kind == KeyKind::Admin) else {
        state.auth_throttle.failed(address);
        tracing::info!(%address, "dashboard sign-in refused");
        return Ok(render(
            &state,
            &next,
            Some("That is not an active admin key. SDK and client keys cannot sign in."),
            StatusCode::UNAUTHORIZED,
            false,
        ));
    };
    state.auth_throttle.succeeded(address);
    let id = state
        .sessions
        .create(state.store.as_ref(), &key)
        .await
        .map_err(ApiError::from)?;
    tracing::info!(key = key.name, "dashboard sign-in");
    let mut res = HttpResponse::SeeOther()
        .insert_header((header::LOCATION, next))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish();
    let secure = state.sessions.config().secure_cookies;
    for cookie in [
        state.sessions.cookie(&id),
        session::cookie(csrf::LOGIN_COOKIE, "", csrf::LOGIN_PATH, 0, secure),
    ] {
        if let Ok(v) = header::HeaderValue::from_str(&cookie) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(res)
}

/// `POST /dashboard/logout`: ends the session (CSRF-checked, so no one can sign you out).
pub(super) async fn sign_out(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, DashboardError> {
    let (me, _) = super::signed_in_post(&req, &state, &body).await?;
    state
        .sessions
        .remove(state.store.as_ref(), &me.session_id)
        .await
        .map_err(ApiError::from)?;
    let mut res = HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/dashboard/login"))
        .finish();
    if let Ok(v) = header::HeaderValue::from_str(&state.sessions.clear_cookie()) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(res)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_dashboard_pages_are_returned_to() {
        assert_eq!(
            safe_next(Some("/dashboard/env/x/flags")),
            "/dashboard/env/x/flags"
        );
        assert_eq!(safe_next(Some("https://evil.example/")), "/dashboard");
        assert_eq!(safe_next(Some("//evil.example/dashboard")), "/dashboard");
        assert_eq!(safe_next(Some("/dashboardx")), "/dashboard");
        assert_eq!(safe_next(Some("/dashboard/login?next=x")), "/dashboard");
        assert_eq!(safe_next(None), "/dashboard");
        assert_eq!(
            login_url("/dashboard/env/a b/flags?x=1"),
            "/dashboard/login?next=%2Fdashboard%2Fenv%2Fa%20b%2Fflags%3Fx%3D1"
        );
    }
}
