//! The one error type of the REST API. Every error answers with a fitting status and the
//! stable body `{"error": {"code": "...", "message": "..."}}`; database constraint names are
//! mapped to codes here and nowhere else.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    /// An extractor's rejection, with the status it chose (400, 413, 415, 422).
    #[error("{message}")]
    Rejected { status: StatusCode, message: String },
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("missing or invalid access token")]
    Unauthorized,
    #[error("{0}")]
    InvalidCredentials(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("this upload would take the user past their storage quota of {quota} bytes")]
    QuotaExceeded { quota: u64 },
    #[error("a dependency is unavailable")]
    Unavailable,
    #[error("the request took too long")]
    RequestTimeout,
    #[error("rate limit `{limit}` reached; retry after {retry_after_ms} ms")]
    RateLimited { limit: &'static str, retry_after_ms: u64 },
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl AppError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        AppError::Invalid { code, message: message.into() }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        AppError::Conflict { code, message: message.into() }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            AppError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            AppError::Rejected { status, .. } => (
                *status,
                match status.as_u16() {
                    413 => "too_large",
                    415 => "unsupported_media_type",
                    _ => "bad_request",
                },
            ),
            AppError::Invalid { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, code),
            AppError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            AppError::InvalidCredentials(_) => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            AppError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            AppError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            AppError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            AppError::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            AppError::QuotaExceeded { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "quota_exceeded"),
            AppError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            AppError::RequestTimeout => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            AppError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

/// The body of every error answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

/// What went wrong: `code` is stable, for programs; `message` is for people.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    #[schema(example = "not_found")]
    code: &'static str,
    #[schema(example = "channel not found")]
    message: String,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let AppError::Internal(source) = &self {
            tracing::error!(error = %source, "internal error");
        }
        let body = Json(ErrorBody { error: ErrorDetail { code, message: self.to_string() } });
        if let AppError::RateLimited { retry_after_ms, .. } = self {
            let retry_after = retry_after_ms.div_ceil(1000).max(1).to_string();
            return (status, [(axum::http::header::RETRY_AFTER, retry_after)], body).into_response();
        }
        (status, body).into_response()
    }
}

/// Unique constraints that clients can run into, and what to tell them.
fn on_constraint(name: &str) -> Option<AppError> {
    Some(match name {
        "users_email_key" => AppError::conflict("email_taken", "that email is already registered"),
        "users_username_key" => AppError::conflict("username_taken", "that username is taken"),
        "channel_members_pkey" => AppError::conflict("already_member", "the user is already a member"),
        "channel_members_user_id_fkey" => AppError::invalid("unknown_user", "no such user"),
        _ => return None,
    })
}

impl From<sqlx::Error> for AppError {
    fn from(error: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &error
            && let Some(mapped) = db.constraint().and_then(on_constraint)
        {
            return mapped;
        }
        match error {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => AppError::Unavailable,
            other => AppError::Internal(Box::new(other)),
        }
    }
}

impl From<JsonRejection> for AppError {
    fn from(rejection: JsonRejection) -> Self {
        AppError::Rejected { status: rejection.status(), message: rejection.body_text() }
    }
}

impl From<QueryRejection> for AppError {
    fn from(rejection: QueryRejection) -> Self {
        AppError::Rejected { status: rejection.status(), message: rejection.body_text() }
    }
}

impl From<PathRejection> for AppError {
    fn from(rejection: PathRejection) -> Self {
        AppError::Rejected { status: rejection.status(), message: rejection.body_text() }
    }
}

/// `Json` whose rejections answer in the API's error format, and which refuses bodies
/// nested deeper than `MAX_JSON_DEPTH` before parsing them.
pub struct ApiJson<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, AppError> {
        let (parts, body) = request.into_parts();
        // Read within the route's body limit, check the depth, then let `Json` do the rest
        // (content type, syntax, shape) with its own answers.
        let whole = axum::extract::Request::from_parts(parts.clone(), body);
        let bytes = bytes::Bytes::from_request(whole, state)
            .await
            .map_err(|r| AppError::Rejected { status: r.status(), message: r.body_text() })?;
        if shared::protocol::json_depth_exceeds(&bytes, shared::protocol::MAX_JSON_DEPTH) {
            return Err(AppError::invalid("too_deep", shared::protocol::FrameError::TooDeep.to_string()));
        }
        // Every body of the API is an object: serde would also read a struct from an array of
        // its fields' values (`[null, null]`), which no client means.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()).is_some_and(|&b| b == b'[') {
            return Err(AppError::Rejected {
                status: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                message: "the body must be a JSON object".into(),
            });
        }
        let request = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
        let axum::Json(value) = axum::Json::<T>::from_request(request, state).await?;
        Ok(ApiJson(value))
    }
}

/// `Query` whose rejections answer in the API's error format.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(AppError))]
pub struct ApiQuery<T>(pub T);

/// `Path` whose rejections answer in the API's error format.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(AppError))]
pub struct ApiPath<T>(pub T);

pub type ApiResult<T> = Result<T, AppError>;
