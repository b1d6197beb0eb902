//! The web dashboard, served under `/dashboard` for the people who run personalization:
//! environments, flags, segments with their sizes, computed traits, user lookups, experiment
//! results with charts, and gradual rollout.
//!
//! # Layout
//! - [`session`]: sign-in sessions (random 256-bit ids, server-side, expiring) and cookies.
//! - [`csrf`]: the token every changing form carries, and the `Origin`/`Referer` check.
//! - [`login`]: sign-in with an admin key, sign-out.
//! - [`views`]: the page layout, navigation and shared pieces (escaping is maud's: every
//!   interpolated value is HTML-escaped; nothing here writes raw HTML).
//! - [`pages`]: environments, flags, a flag's rules and history, segments, experiments, audit.
//! - [`profiles`]: segment sizes and computed traits (on the segments page), the user lookup.
//! - [`results`]: an experiment's results and personalization lift.
//! - [`rollout`]: coverage changes, pause/resume and roll-back, each with a confirmation page,
//!   applied through the admin API's own flag actions (`routes::admin::rollout_flag` …).
//! - [`chart`]: server-side SVG (cumulative conversion rate, interval bars).
//! - [`format`]: numbers for people.
//! - `assets/dashboard.css`: the only asset, compiled into the binary. No script, no web font,
//!   no CDN: the pages work offline, and the content security policy forbids anything else.
//!
//! Every page needs a session; without one a request is redirected to the sign-in page and gets
//! no data. Changes go through the same validated write path as the admin API (new revision,
//! audit entry with the actor `<admin key name> via dashboard`, pushed to SDKs over SSE).

pub mod chart;
pub mod csrf;
pub mod format;
pub mod login;
pub mod optimization;
pub mod pages;
pub mod profiles;
pub mod results;
pub mod rollout;
pub mod session;
pub mod throttle;
pub mod views;

use std::sync::LazyLock;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use maud::{html, Markup};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::keys::Actor;
use crate::state::AppState;

/// The stylesheet, compiled in.
pub const CSS: &str = include_str!("assets/dashboard.css");

/// The stylesheet's URL, versioned by content so browsers may cache it forever.
pub static CSS_URL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "/dashboard/assets/dashboard.css?v={}",
        hex::encode(&Sha256::digest(CSS.as_bytes())[..6])
    )
});

/// Mounts the dashboard.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/dashboard", web::get().to(pages::environments))
        .route("/dashboard/", web::get().to(pages::environments))
        .route("/dashboard/assets/dashboard.css", web::get().to(stylesheet))
        .route("/dashboard/login", web::get().to(login::form))
        .route("/dashboard/login", web::post().to(login::sign_in))
        .route("/dashboard/logout", web::post().to(login::sign_out))
        .route("/dashboard/env/{env}/flags", web::get().to(pages::flags))
        .route(
            "/dashboard/env/{env}/flags/{flag}",
            web::get().to(pages::flag),
        )
        .route(
            "/dashboard/env/{env}/flags/{flag}/history",
            web::get().to(pages::flag_history),
        )
        .route(
            "/dashboard/env/{env}/flags/{flag}/rollout",
            web::get().to(rollout::confirm_rollout),
        )
        .route(
            "/dashboard/env/{env}/flags/{flag}/rollout",
            web::post().to(rollout::apply_rollout),
        )
        .route(
            "/dashboard/env/{env}/flags/{flag}/toggle",
            web::get().to(rollout::confirm_toggle),
        )
        .route(
            "/dashboard/env/{env}/flags/{flag}/toggle",
            web::post().to(rollout::apply_toggle),
        )
        .route(
            "/dashboard/env/{env}/flags/{flag}/restore",
            web::get().to(rollout::confirm_restore),
        )
        .route(
            "/dashboard/env/{env}/flags/{flag}/restore",
            web::post().to(rollout::apply_restore),
        )
        .route(
            "/dashboard/env/{env}/flags/{flag}/freeze",
            web::get().to(optimization::confirm_freeze),
        )
        .route(
            "/dashboard/env/{env}/flags/{flag}/freeze",
            web::post().to(optimization::apply_freeze),
        )
        .route(
            "/dashboard/env/{env}/segments",
            web::get().to(pages::segments),
        )
        .route("/dashboard/env/{env}/users", web::get().to(profiles::users))
        .route(
            "/dashboard/env/{env}/experiments",
            web::get().to(pages::experiments),
        )
        .route(
            "/dashboard/env/{env}/experiments/{experiment}",
            web::get().to(results::experiment),
        )
        .route("/dashboard/env/{env}/audit", web::get().to(pages::audit));
}

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=31536000, immutable"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(CSS)
}

/// Why a dashboard request failed; rendered as an HTML page (or a redirect to sign in).
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// No live session: go to the sign-in page, then come back to `next`.
    #[error("sign in first")]
    SignInRequired {
        /// Where to return after signing in.
        next: String,
    },
    /// Refused (a form without its CSRF token, or from another site).
    #[error("{0}")]
    Forbidden(String),
    /// Malformed form input; the message names the field.
    #[error("{0}")]
    BadRequest(String),
    /// What the admin API would have answered.
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl ResponseError for DashboardError {
    fn status_code(&self) -> StatusCode {
        match self {
            DashboardError::SignInRequired { .. } => StatusCode::SEE_OTHER,
            DashboardError::Forbidden(_) => StatusCode::FORBIDDEN,
            DashboardError::BadRequest(_) => StatusCode::BAD_REQUEST,
            DashboardError::Api(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let DashboardError::SignInRequired { next } = self {
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, login::login_url(next)))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish();
        }
        if let DashboardError::Api(e) = self {
            e.log_server_failure("dashboard");
        }
        let problems: Vec<String> = match self {
            DashboardError::Api(ApiError::InvalidConfig(e)) => e
                .problems
                .iter()
                .map(|p| format!("{}: {}", p.path, p.message))
                .collect(),
            _ => Vec::new(),
        };
        let status = self.status_code();
        let title = status.canonical_reason().unwrap_or("Error");
        let body = html! {
            h1 { (title) }
            p.alert.alert-error { (self.to_string()) }
            @if !problems.is_empty() {
                ul { @for p in &problems { li { (p) } } }
            }
            p { a href="/dashboard" { "Back to the dashboard" } }
        };
        let mut res = page_response(views::bare_layout(title, body));
        *res.status_mut() = status;
        res
    }
}

/// A signed-in request's identity.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The admin key's name.
    pub key_name: String,
    /// The session's CSRF token, for the forms on the page.
    pub csrf: String,
    /// The session id (to end it).
    session_id: String,
}

impl SignedIn {
    /// The actor recorded in the audit log for changes made from the dashboard.
    pub fn actor(&self) -> Actor {
        Actor(format!("{} via dashboard", self.key_name))
    }
}

/// The request's live session, or [`DashboardError::SignInRequired`]. The admin key that
/// opened the session must still exist and be unrevoked.
pub async fn signed_in(req: &HttpRequest, state: &AppState) -> Result<SignedIn, DashboardError> {
    let next = if req.method() == actix_web::http::Method::GET {
        match req.query_string() {
            "" => req.path().to_string(),
            q => format!("{}?{q}", req.path()),
        }
    } else {
        // A form sent after the session ended: come back to the page it was on, not to the
        // form's target (which needs the form).
        let path = req.path();
        ["/rollout", "/toggle", "/restore"]
            .iter()
            .find_map(|action| path.strip_suffix(action))
            .unwrap_or("/dashboard")
            .to_string()
    };
    let denied = || DashboardError::SignInRequired { next: next.clone() };
    if !state.is_ready() {
        return Err(ApiError::Unavailable("the store is not loaded yet".into()).into());
    }
    let id = session::request_cookie(req, session::SESSION_COOKIE).ok_or_else(denied)?;
    let store = state.store.as_ref();
    let s = state
        .sessions
        .get(store, id)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(denied)?;
    // Only admin keys open sessions (see `login`), and a key's kind never changes.
    if !state.key_is_active(&s.key_digest) {
        state
            .sessions
            .remove(store, id)
            .await
            .map_err(ApiError::from)?;
        return Err(denied());
    }
    Ok(SignedIn {
        key_name: s.key_name,
        csrf: s.csrf,
        session_id: id.to_string(),
    })
}

/// A page: HTML with the dashboard's security headers, never cached.
pub fn page_response(markup: Markup) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "same-origin"))
        .body(markup.into_string())
}

/// A submitted `application/x-www-form-urlencoded` form.
#[derive(Debug, Default)]
pub struct Form(Vec<(String, String)>);

impl Form {
    /// Parses a form body.
    pub fn parse(body: &[u8]) -> Result<Form, DashboardError> {
        serde_urlencoded::from_bytes(body)
            .map(Form)
            .map_err(|e| DashboardError::BadRequest(format!("the form could not be read: {e}")))
    }

    /// A field's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated field, in form order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A required field.
    pub fn require(&self, name: &str) -> Result<&str, DashboardError> {
        self.get(name)
            .ok_or_else(|| DashboardError::BadRequest(format!("{name}: missing from the form")))
    }
}

/// A signed-in POST: session, same origin and CSRF token checked, form parsed.
pub async fn signed_in_post(
    req: &HttpRequest,
    state: &AppState,
    body: &[u8],
) -> Result<(SignedIn, Form), DashboardError> {
    let me = signed_in(req, state).await?;
    let form = Form::parse(body);
    let token = form.as_ref().ok().and_then(|f| f.get(csrf::FIELD));
    csrf::check(req, &me.csrf, token)?;
    Ok((me, form?))
}

pub use crate::routes::path_segment;

/// A query-string value, percent-encoded.
pub fn query_value(value: &str) -> String {
    path_segment(value)
}

/// The dashboard URL of an environment's page: `/dashboard/env/<env>/<rest>`.
pub fn env_url(env: &str, rest: &str) -> String {
    format!("/dashboard/env/{}/{rest}", path_segment(env))
}

/// The dashboard URL of a flag's page.
pub fn flag_url(env: &str, flag: &str) -> String {
    env_url(env, &format!("flags/{}", path_segment(flag)))
}

/// The dashboard URL of an experiment's results.
pub fn experiment_url(env: &str, experiment: &str) -> String {
    env_url(env, &format!("experiments/{}", path_segment(experiment)))
}
