//! `/auth`: register, login, refresh (rotating), logout.

use crate::auth::{hash_password, hash_refresh_token, new_refresh_token, verify_password};
use crate::error::{ApiJson, ApiResult, AppError};
use crate::state::AppState;
use crate::store::{self, tokens::Redeemed, users::UserRow};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use shared::ids::UserId;
use uuid::Uuid;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    email: String,
    username: String,
    password: String,
    display_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    username: Option<String>,
    email: Option<String>,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    refresh_token: String,
}

#[derive(Serialize)]
pub struct Session {
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<UserRow>,
    access_token: String,
    refresh_token: String,
    token_type: &'static str,
    expires_in: u64,
}

pub(crate) fn validate_username(username: &str) -> Result<(), AppError> {
    let ok = (3..=32).contains(&username.len())
        && username.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    ok.then_some(()).ok_or_else(|| {
        AppError::invalid(
            "invalid_username",
            "username: 3-32 characters of ASCII letters, digits, '_', '.', '-'",
        )
    })
}

fn validate_registration(r: &RegisterRequest) -> Result<(), AppError> {
    validate_username(&r.username)?;
    let email_ok = r.email.len() <= 254
        && r.email.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !r.email.chars().any(char::is_whitespace);
    if !email_ok {
        return Err(AppError::invalid("invalid_email", "email is not a valid address"));
    }
    if !(8..=128).contains(&r.password.chars().count()) {
        return Err(AppError::invalid("invalid_password", "password: 8-128 characters"));
    }
    if r.display_name.as_ref().is_some_and(|d| d.chars().count() > 64 || d.trim().is_empty()) {
        return Err(AppError::invalid("invalid_display_name", "display_name: 1-64 characters"));
    }
    Ok(())
}

/// Issues an access token and a new refresh token of `family`.
async fn start_session(
    state: &AppState,
    user: UserId,
    family: Uuid,
    profile: Option<UserRow>,
) -> ApiResult<Session> {
    let access_token = state.tokens.issue(user)?;
    let (refresh_token, hash) = new_refresh_token();
    store::tokens::insert(&state.db, &hash, user, family, state.tokens.refresh_ttl).await?;
    Ok(Session {
        user: profile,
        access_token,
        refresh_token,
        token_type: "Bearer",
        expires_in: state.tokens.access_ttl.as_secs(),
    })
}

pub async fn register(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RegisterRequest>,
) -> ApiResult<(StatusCode, Json<Session>)> {
    validate_registration(&request)?;
    let password_hash = hash_password(request.password).await?;
    let display_name = request.display_name.as_deref().unwrap_or(&request.username).trim();
    let user = store::users::create(
        &state.db,
        store::users::NewUser {
            email: &request.email,
            username: &request.username,
            password_hash: &password_hash,
            display_name,
        },
    )
    .await?;
    let session = start_session(&state, user.id, Uuid::new_v4(), Some(user.clone())).await?;
    Ok((StatusCode::CREATED, Json(session)))
}

pub async fn login(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<LoginRequest>,
) -> ApiResult<Json<Session>> {
    let login = request
        .username
        .or(request.email)
        .ok_or_else(|| AppError::invalid("invalid_login", "give a username or an email"))?;
    let found = store::users::find_for_login(&state.db, &login).await?;
    let (user, hash) = match found {
        Some((user, hash)) => (Some(user), Some(hash)),
        None => (None, None),
    };
    let verified = verify_password(request.password, hash).await?;
    let user = user.filter(|_| verified).ok_or(AppError::InvalidCredentials("wrong username or password"))?;
    Ok(Json(start_session(&state, user.id, Uuid::new_v4(), Some(user)).await?))
}

pub async fn refresh(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RefreshRequest>,
) -> ApiResult<Json<Session>> {
    match store::tokens::redeem(&state.db, &hash_refresh_token(&request.refresh_token)).await? {
        Redeemed::Valid { user, family } => {
            let profile = store::users::get(&state.db, user).await?;
            Ok(Json(start_session(&state, user, family, profile).await?))
        }
        Redeemed::Reused => {
            Err(AppError::InvalidCredentials("refresh token reused; its sessions are revoked"))
        }
        Redeemed::Invalid => Err(AppError::InvalidCredentials("invalid or expired refresh token")),
    }
}

pub async fn logout(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RefreshRequest>,
) -> ApiResult<StatusCode> {
    store::tokens::revoke_by_token(&state.db, &hash_refresh_token(&request.refresh_token)).await?;
    Ok(StatusCode::NO_CONTENT)
}
