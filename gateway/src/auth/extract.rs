//! The `AuthUser` extractor that guards every authenticated route, and the bearer token of a
//! request.

use super::sessions::Sessions;
use crate::error::AppError;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use shared::ids::UserId;
use std::sync::Arc;

/// The user a request acts for, from its `Authorization: Bearer` access token.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser(pub UserId);

impl<S> FromRequestParts<S> for AuthUser
where
    S: Send + Sync,
    Arc<Sessions>: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        // Verified once per request: the REST rate limit already did it.
        if let Some(user) = parts.extensions.get::<AuthUser>() {
            return Ok(*user);
        }
        let token = bearer_token(parts).ok_or(AppError::Unauthorized)?;
        Ok(AuthUser(Arc::<Sessions>::from_ref(state).authenticate(token)?.sub))
    }
}

/// `Option<AuthUser>`: none without an `Authorization` header; an invalid token is still 401.
impl<S> axum::extract::OptionalFromRequestParts<S> for AuthUser
where
    S: Send + Sync,
    Arc<Sessions>: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Option<Self>, AppError> {
        match parts.extensions.get::<AuthUser>().is_some() || bearer_token(parts).is_some() {
            true => <AuthUser as FromRequestParts<S>>::from_request_parts(parts, state).await.map(Some),
            false => Ok(None),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    bearer_token_of(&parts.headers)
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer_token_of(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
}
