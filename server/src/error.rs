//! HTTP API errors: each maps to a status and a JSON body `{error, message, problems?}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use tailor_core::{ConfigError, Problem};

use crate::publish::PublishError;
use crate::store::StoreError;

/// Everything an API handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No usable credentials.
    #[error("missing or unknown API key: send `Authorization: Bearer <key>` (or `X-API-Key`)")]
    Unauthenticated,
    /// Credentials that may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// No such resource.
    #[error("{0}")]
    NotFound(String),
    /// A malformed request; the message names the field.
    #[error("{0}")]
    BadRequest(String),
    /// The change would make the config invalid.
    #[error("{0}")]
    InvalidConfig(ConfigError),
    /// A create of something that exists, or a lost compare-and-swap.
    #[error("{0}")]
    Conflict(String),
    /// `If-Match` does not match the current version.
    #[error("{0}")]
    PreconditionFailed(String),
    /// A write without `If-Match`.
    #[error("{0}")]
    PreconditionRequired(String),
    /// Over a limit (failed authentications per address, events per key): wait this long.
    #[error("{message}; retry in {} s", retry_after.as_secs().max(1))]
    TooManyRequests {
        /// Which limit.
        message: String,
        /// How long until the caller may try again.
        retry_after: std::time::Duration,
    },
    /// The server cannot serve this yet (store not loaded or unavailable).
    #[error("{0}")]
    Unavailable(String),
    /// The storage backend failed.
    #[error("storage failed")]
    Store(#[source] StoreError),
    /// The server could not produce its answer (a bug, not the request's fault): 500, logged
    /// with its causes.
    #[error("internal error: {0}")]
    Internal(#[from] InternalError),
}

/// What went wrong inside the server when it answers [`ApiError::Internal`]. Each of these used
/// to become an empty value (an empty export, an ETag of nothing, an empty audit timestamp);
/// they are errors so that a failure is seen, not served.
#[derive(Debug, thiserror::Error)]
pub enum InternalError {
    /// Serializing a value to JSON failed.
    #[error("could not serialize {what}")]
    Serialize {
        /// What was being serialized.
        what: &'static str,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// Writing the config document for an export failed.
    #[error("could not export the config document")]
    Export(#[source] tailor_core::SerializeError),
    /// Preparing a revision for serving failed.
    #[error("could not prepare the revision for serving")]
    Publish(#[source] PublishError),
    /// Formatting the current time as RFC 3339 failed.
    #[error("could not format the current time")]
    Timestamp(#[source] time::error::Format),
    /// Encoding the Prometheus metrics failed.
    #[error("could not encode the metrics")]
    Metrics(#[source] prometheus::Error),
}

impl InternalError {
    /// An [`InternalError::Serialize`] of `what`, for `map_err`.
    pub fn serialize(what: &'static str) -> impl FnOnce(serde_json::Error) -> Self {
        move |source| InternalError::Serialize { what, source }
    }
}

/// A value whose serialization fails, for tests of the paths that used to swallow that.
#[cfg(test)]
pub(crate) struct Unserializable;

#[cfg(test)]
impl Serialize for Unserializable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("this value cannot be serialized"))
    }
}

/// `error` and its causes, `: `-separated, for logs (a `Display` names only the outermost).
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { .. } => ApiError::Conflict(format!(
                "{e}; another change was committed first: reload and retry"
            )),
            StoreError::NoSuchEnvironment(_) => ApiError::NotFound(e.to_string()),
            StoreError::AlreadyExists(_) => ApiError::Conflict(e.to_string()),
            StoreError::Unavailable { .. } => {
                // The log gets the causes (`broken pipe`, …); the client gets what and why.
                tracing::warn!(error = %chain(&e), "store unavailable");
                ApiError::Unavailable(format!(
                    "{e}. Changes and events are refused until the store is back (retry \
                     later); SDKs keep receiving the last published config"
                ))
            }
            e => ApiError::Store(e),
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    problems: Option<&'a [Problem]>,
}

impl ApiError {
    fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated => "unauthenticated",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::InvalidConfig(_) => "invalid_config",
            ApiError::Conflict(_) => "conflict",
            ApiError::PreconditionFailed(_) => "precondition_failed",
            ApiError::PreconditionRequired(_) => "precondition_required",
            ApiError::TooManyRequests { .. } => "too_many_requests",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Store(_) => "storage_error",
            ApiError::Internal(_) => "internal_error",
        }
    }

    /// Logs a storage or internal failure with its whole chain of causes (the response shows
    /// only a summary); `surface` says where it was answered (`api`, `dashboard`).
    pub fn log_server_failure(&self, surface: &str) {
        match self {
            ApiError::Store(source) => {
                tracing::error!(error = %chain(source), surface, "storage failure")
            }
            ApiError::Internal(source) => {
                tracing::error!(error = %chain(source), surface, "internal error")
            }
            _ => {}
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::InvalidConfig(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::PreconditionRequired(_) => StatusCode::PRECONDITION_REQUIRED,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) | ApiError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        self.log_server_failure("api");
        let problems = match self {
            ApiError::InvalidConfig(e) => Some(e.problems.as_slice()),
            _ => None,
        };
        let mut response = HttpResponse::build(self.status_code());
        if let ApiError::TooManyRequests { retry_after, .. } = self {
            response.insert_header((
                actix_web::http::header::RETRY_AFTER,
                retry_after.as_secs().max(1).to_string(),
            ));
        }
        response.json(Body {
            error: self.code(),
            message: self.to_string(),
            problems,
        })
    }
}

/// Rewrites the plain-text error responses that actix-web itself produces (a body over the
/// size limit: 413; a malformed query string: 400; a failed extractor) into the API's JSON
/// error body, so every error a client sees has the same `{error, message}` shape. Status and
/// headers are kept; JSON errors from handlers (and the dashboard's HTML pages) pass through
/// untouched.
pub fn json_error_body<B>(
    res: actix_web::dev::ServiceResponse<B>,
    body_limit: usize,
) -> actix_web::Result<actix_web::middleware::ErrorHandlerResponse<B>> {
    use actix_web::body::{BoxBody, EitherBody};
    use actix_web::http::header::{self, HeaderValue};
    use actix_web::middleware::ErrorHandlerResponse;

    // JSON errors from API handlers and HTML error pages from the dashboard are already in
    // their final shape.
    let is_final = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json") || ct.starts_with("text/html"));
    if is_final {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let cause = res.response().error();
    let detail = cause
        .map(|e| e.to_string())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
    let (code, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload_too_large",
            format!("the request body is larger than the limit of {body_limit} bytes (TAILOR_BODY_LIMIT_BYTES)"),
        ),
        StatusCode::BAD_REQUEST
            if cause.is_some_and(|e| e.as_error::<actix_web::error::QueryPayloadError>().is_some()) =>
        {
            (
                "bad_request",
                format!("invalid query string `{}`: {detail}", res.request().query_string()),
            )
        }
        StatusCode::BAD_REQUEST => ("bad_request", detail),
        StatusCode::NOT_FOUND => ("not_found", detail),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", detail),
        s if s.is_server_error() => ("internal_error", detail),
        _ => ("client_error", detail),
    };
    let body = serde_json::to_vec(&Body {
        error: code,
        message,
        problems: None,
    })
    // Two strings cannot fail to encode; if they ever did, the client still gets JSON.
    .unwrap_or_else(|_| {
        br#"{"error":"internal_error","message":"the error could not be encoded"}"#.to_vec()
    });
    Ok(ErrorHandlerResponse::Response(res.map_body(|head, _| {
        head.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        EitherBody::right(BoxBody::new(body))
    })))
}

#[cfg(test)]
mod tests {

    #[test]
    fn an_unavailable_store_is_named_without_its_low_level_causes() {
        let e = StoreError::Unavailable {
            message: "Redis at 127.0.0.1:6380 is unavailable".into(),
            source: Box::new(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "broken pipe",
            )),
        };
        let message = ApiError::from(e).to_string();
        assert!(
            message.starts_with("Redis at 127.0.0.1:6380 is unavailable. "),
            "{message}"
        );
        assert!(!message.contains("broken pipe"), "{message}");
    }
    use super::*;

    #[test]
    fn an_internal_error_is_a_500_whose_log_names_the_cause() {
        let source = match serde_json::to_vec(&Unserializable) {
            Err(e) => e,
            Ok(bytes) => panic!("serialized to {bytes:?}"),
        };
        let e = ApiError::from(InternalError::serialize("the thing")(source));
        assert_eq!(e.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(e.code(), "internal_error");
        assert_eq!(
            e.to_string(),
            "internal error: could not serialize the thing"
        );
        let ApiError::Internal(internal) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(
            chain(internal),
            "could not serialize the thing: this value cannot be serialized"
        );
    }
}
