//! `/auth`: register, login, refresh (rotating), logout; and what revokes every session of
//! a user: a password change and account deletion. Each revocation also closes the
//! sessions' sockets, on every gateway (`crate::auth::sessions`).

use crate::auth::extract::AuthUser;
use crate::auth::passwords::{hash_password, hash_refresh_token, new_refresh_token, verify_password};
use crate::error::{ApiJson, ApiResult, AppError, ErrorBody};
use crate::http::openapi::{RateLimited, rules};
use crate::state::AppState;
use crate::store::{self, tokens::Redeemed, users::UserRow};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use shared::events::MembershipChange;
use shared::ids::UserId;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// An address of up to 254 characters; unique.
    #[schema(schema_with = rules::email)]
    email: String,
    /// 3-32 ASCII letters, digits, `_`, `.`, `-`; unique in any case.
    #[schema(schema_with = rules::username)]
    username: String,
    /// 8-128 characters.
    #[schema(schema_with = rules::password)]
    password: String,
    /// 1-64 characters; the username when absent.
    #[schema(schema_with = rules::display_name)]
    display_name: Option<String>,
}

/// Logs in by `username` or by `email` (the username wins when both are given); its schema
/// says that one of them is needed (`rules::login_request`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    username: Option<String>,
    email: Option<String>,
    password: String,
}

impl utoipa::PartialSchema for LoginRequest {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        rules::login_request().into()
    }
}

impl ToSchema for LoginRequest {}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    refresh_token: String,
}

/// A new session: an access token for `Authorization: Bearer`, and the refresh token that
/// replaces it (each refresh token is good for one refresh).
#[derive(Serialize, ToSchema)]
pub struct Session {
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<UserRow>,
    access_token: String,
    refresh_token: String,
    #[schema(value_type = String, example = "Bearer")]
    token_type: &'static str,
    /// Seconds until the access token expires.
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

fn validate_password(password: &str) -> Result<(), AppError> {
    if !(8..=128).contains(&password.chars().count()) {
        return Err(AppError::invalid("invalid_password", "password: 8-128 characters"));
    }
    Ok(())
}

fn validate_registration(r: &RegisterRequest) -> Result<(), AppError> {
    validate_username(&r.username)?;
    let email_ok = r.email.chars().count() <= 254
        && r.email.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !r.email.chars().any(|c| c.is_whitespace() || c.is_control());
    if !email_ok {
        return Err(AppError::invalid("invalid_email", "email is not a valid address"));
    }
    validate_password(&r.password)?;
    if r.display_name.as_deref().is_some_and(|d| !display_name_ok(d)) {
        return Err(AppError::invalid("invalid_display_name", DISPLAY_NAME_RULE));
    }
    Ok(())
}

/// What a display name must be.
pub(crate) const DISPLAY_NAME_RULE: &str = "display_name: 1-64 characters, no control characters";

/// Whether `name` is a display name: 1-64 characters once trimmed, no control characters (a
/// NUL would not even reach Postgres, which refuses it).
pub(crate) fn display_name_ok(name: &str) -> bool {
    !name.trim().is_empty() && name.chars().count() <= 64 && !name.chars().any(char::is_control)
}

/// Issues a new refresh token of `family` and an access token — unless, meanwhile, the family
/// was revoked, the account deleted, or the password changed from `verified_password` (the
/// hash a login just checked): a login racing a password change does not survive it.
async fn start_session(
    state: &AppState,
    user: UserId,
    family: Uuid,
    profile: Option<UserRow>,
    verified_password: Option<&str>,
) -> ApiResult<Session> {
    let (refresh_token, hash) = new_refresh_token();
    let ttl = state.sessions.tokens.refresh_ttl;
    if !store::tokens::insert(&state.db, &hash, user, family, ttl, verified_password).await? {
        return Err(AppError::InvalidCredentials("the session was revoked meanwhile"));
    }
    let access_token = state.sessions.tokens.issue(user, family)?;
    Ok(Session {
        user: profile,
        access_token,
        refresh_token,
        token_type: "Bearer",
        expires_in: state.sessions.tokens.access_ttl.as_secs(),
    })
}

/// Creates an account and logs it in.
#[utoipa::path(
    post,
    path = "/auth/register",
    tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered, with a session", body = Session),
        (status = 409, description = "`email_taken` or `username_taken`", body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`invalid_username`, `invalid_email`, \
            `invalid_password` or `invalid_display_name`"),
        (status = 429, response = RateLimited),
    )
)]
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
    let session = start_session(&state, user.id, Uuid::new_v4(), Some(user.clone()), None).await?;
    Ok((StatusCode::CREATED, Json(session)))
}

/// Logs in with a username or an email and the password.
#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "A new session", body = Session),
        (status = 401, description = "`invalid_credentials`: wrong username or password", body = ErrorBody),
        (status = 422, description = "`invalid_login`: neither a username nor an email", body = ErrorBody),
        (status = 429, response = RateLimited),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<LoginRequest>,
) -> ApiResult<Json<Session>> {
    let login = request
        .username
        .or(request.email)
        .ok_or_else(|| AppError::invalid("invalid_login", "give a username or an email"))?;
    // No user has a NUL in their name or address (Postgres could not even compare it).
    let found = match login.contains('\0') {
        true => None,
        false => store::users::find_for_login(&state.db, &login).await?,
    };
    let (user, hash) = match found {
        Some((user, hash)) => (Some(user), Some(hash)),
        None => (None, None),
    };
    let verified = verify_password(request.password, hash.clone()).await?;
    let user = user.filter(|_| verified).ok_or(AppError::InvalidCredentials("wrong username or password"))?;
    Ok(Json(start_session(&state, user.id, Uuid::new_v4(), Some(user), hash.as_deref()).await?))
}

/// Trades a refresh token for a new session of the same family. Redeeming a refresh token a
/// second time revokes its whole family.
#[utoipa::path(
    post,
    path = "/auth/refresh",
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "The next session", body = Session),
        (status = 401, body = ErrorBody, description = "`invalid_credentials`: invalid, expired, revoked \
            or reused refresh token"),
        (status = 429, response = RateLimited),
    )
)]
pub async fn refresh(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RefreshRequest>,
) -> ApiResult<Json<Session>> {
    match store::tokens::redeem(&state.db, &hash_refresh_token(&request.refresh_token)).await? {
        Redeemed::Valid { user, family } => {
            let profile = store::users::get(&state.db, user).await?;
            Ok(Json(start_session(&state, user, family, profile, None).await?))
        }
        Redeemed::Reused { user, family } => {
            // The theft signal: whoever holds the family's live token is cut off too.
            state.sessions.revoke(user, vec![family]);
            Err(AppError::InvalidCredentials("refresh token reused; its sessions are revoked"))
        }
        Redeemed::Invalid => Err(AppError::InvalidCredentials("invalid or expired refresh token")),
    }
}

/// Revokes the session of a refresh token (and closes its sockets); an unknown token is not
/// an error.
#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "auth",
    request_body = RefreshRequest,
    responses((status = 204, description = "The session is revoked"))
)]
pub async fn logout(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RefreshRequest>,
) -> ApiResult<StatusCode> {
    let revoked =
        store::tokens::revoke_by_token(&state.db, &hash_refresh_token(&request.refresh_token)).await?;
    if let Some((user, family)) = revoked {
        state.sessions.revoke(user, vec![family]);
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    current_password: String,
    /// 8-128 characters.
    #[schema(schema_with = rules::password)]
    new_password: String,
}

/// `PUT /users/me/password`: every session of the user is revoked (their sockets closed);
/// the answer is a new session for the device that asked.
#[utoipa::path(
    put,
    path = "/users/me/password",
    tag = "auth",
    security(("bearer" = [])),
    request_body = ChangePassword,
    responses(
        (status = 200, description = "Changed; a new session, every other one revoked", body = Session),
        (status = 401, body = ErrorBody, description = "`unauthorized` (no valid access token) or \
            `invalid_credentials` (wrong current password)"),
        (status = 422, body = ErrorBody, description = "`invalid_password`: the new password is not 8-128 \
            characters"),
        (status = 429, response = RateLimited),
    )
)]
pub async fn change_password(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiJson(request): ApiJson<ChangePassword>,
) -> ApiResult<Json<Session>> {
    validate_password(&request.new_password)?;
    check_password(&state, user, request.current_password).await?;
    let hash = hash_password(request.new_password).await?;
    store::users::set_password(&state.db, user, &hash).await?;
    state.sessions.revoke(user, store::tokens::revoke_all(&state.db, user).await?);
    let profile = store::users::get(&state.db, user).await?;
    Ok(Json(start_session(&state, user, Uuid::new_v4(), profile, Some(&hash)).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteAccount {
    password: String,
}

/// `DELETE /users/me`: the account can no longer log in, leaves every channel (its members
/// stop seeing it at once), and every session is revoked. Its messages stay.
#[utoipa::path(
    delete,
    path = "/users/me",
    tag = "users",
    security(("bearer" = [])),
    request_body = DeleteAccount,
    responses(
        (status = 204, description = "The account is deleted"),
        (status = 401, body = ErrorBody, description = "`unauthorized` (no valid access token) or \
            `invalid_credentials` (wrong password)"),
        (status = 429, response = RateLimited),
    )
)]
pub async fn delete_me(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiJson(request): ApiJson<DeleteAccount>,
) -> ApiResult<StatusCode> {
    check_password(&state, user, request.password).await?;
    let left = store::users::delete(&state.db, user).await?;
    state.sessions.revoke(user, store::tokens::revoke_all(&state.db, user).await?);
    for (channel, last_seq) in left {
        state.fanout.announce_membership(channel, user, MembershipChange::Left, last_seq).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The user's password, checked again before changes that need it.
async fn check_password(state: &AppState, user: UserId, password: String) -> Result<(), AppError> {
    let stored = store::users::password_hash(&state.db, user).await?;
    if verify_password(password, stored).await? {
        Ok(())
    } else {
        Err(AppError::InvalidCredentials("wrong password"))
    }
}
