//! HTTP API errors: each maps to a status and a JSON body `{error, message, problems?}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use tailor_core::{ConfigError, Problem};

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
    /// The server cannot serve this yet (store not loaded or unavailable).
    #[error("{0}")]
    Unavailable(String),
    /// The storage backend failed.
    #[error("storage failed")]
    Store(#[source] StoreError),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { .. } => ApiError::Conflict(format!(
                "{e}; another change was committed first: reload and retry"
            )),
            StoreError::NoSuchEnvironment(_) => ApiError::NotFound(e.to_string()),
            StoreError::AlreadyExists(_) => ApiError::Conflict(e.to_string()),
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
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Store(_) => "storage_error",
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
            ApiError::Unavailable(_) | ApiError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Store(source) = self {
            let mut chain = source.to_string();
            let mut cause = std::error::Error::source(source);
            while let Some(c) = cause {
                chain.push_str(": ");
                chain.push_str(&c.to_string());
                cause = c.source();
            }
            tracing::error!(error = %chain, "storage failure");
        }
        let problems = match self {
            ApiError::InvalidConfig(e) => Some(e.problems.as_slice()),
            _ => None,
        };
        HttpResponse::build(self.status_code()).json(Body {
            error: self.code(),
            message: self.to_string(),
            problems,
        })
    }
}
