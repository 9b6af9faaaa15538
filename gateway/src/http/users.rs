//! `/users`: my profile, other users, search.

use crate::auth::extract::AuthUser;
use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult, AppError, ErrorBody};
use crate::http::auth::{DISPLAY_NAME_RULE, display_name_ok, validate_username};
use crate::http::openapi::{RateLimited, Unauthorized, rules};
use crate::http::paging::{next_cursor, page_limit};
use crate::live::presence::Presence;
use crate::store::{self, users::UserRow};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use shared::ids::UserId;
use sqlx::PgPool;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// The caller's own profile, with `email`.
#[utoipa::path(
    get,
    path = "/users/me",
    tag = "users",
    operation_id = "get_me",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = UserRow),
        (status = 401, response = Unauthorized),
        (status = 429, response = RateLimited),
    )
)]
pub async fn me(State(db): State<PgPool>, AuthUser(user): AuthUser) -> ApiResult<Json<UserRow>> {
    store::users::get(&db, user).await?.map(Json).ok_or(AppError::Unauthorized)
}

/// The fields to change; absent ones stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMe {
    /// 1-64 characters.
    #[schema(schema_with = rules::display_name)]
    display_name: Option<String>,
    /// An http(s) URL of up to 500 characters; `null` removes the avatar.
    #[serde(default, deserialize_with = "deserialize_some")]
    #[schema(schema_with = rules::avatar_url)]
    avatar_url: Option<Option<String>>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn deserialize_some<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Changes the caller's display name or avatar.
#[utoipa::path(
    patch,
    path = "/users/me",
    tag = "users",
    security(("bearer" = [])),
    request_body = UpdateMe,
    responses(
        (status = 200, description = "The caller as changed", body = UserRow),
        (status = 401, response = Unauthorized),
        (status = 422, description = "`invalid_display_name` or `invalid_avatar_url`", body = ErrorBody),
        (status = 429, response = RateLimited),
    )
)]
pub async fn update_me(
    State(db): State<PgPool>,
    AuthUser(user): AuthUser,
    ApiJson(update): ApiJson<UpdateMe>,
) -> ApiResult<Json<UserRow>> {
    if update.display_name.as_deref().is_some_and(|d| !display_name_ok(d)) {
        return Err(AppError::invalid("invalid_display_name", DISPLAY_NAME_RULE));
    }
    if let Some(Some(url)) = &update.avatar_url
        && (url.chars().count() > 500
            || !(url.starts_with("https://") || url.starts_with("http://"))
            || url.chars().any(char::is_control))
    {
        return Err(AppError::invalid(
            "invalid_avatar_url",
            "avatar_url: an http(s) URL up to 500 characters",
        ));
    }
    let avatar = update.avatar_url.as_ref().map(|a| a.as_deref());
    store::users::update_profile(&db, user, update.display_name.as_deref().map(str::trim), avatar)
        .await?
        .map(Json)
        .ok_or(AppError::Unauthorized)
}

/// The `{id}` of `/users/{id}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct UserPath {
    /// The user.
    id: UserId,
}

/// A user, with their presence (`email` only when it is the caller).
#[utoipa::path(
    get,
    path = "/users/{id}",
    tag = "users",
    operation_id = "get_user",
    security(("bearer" = [])),
    params(UserPath),
    responses(
        (status = 200, description = "The user", body = UserRow),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no such user", body = ErrorBody),
        (status = 429, response = RateLimited),
    )
)]
pub async fn get(
    State(db): State<PgPool>,
    State(presence): State<Arc<Presence>>,
    AuthUser(me): AuthUser,
    ApiPath(UserPath { id }): ApiPath<UserPath>,
) -> ApiResult<Json<UserRow>> {
    let user = store::users::get(&db, id).await?.ok_or(AppError::NotFound("user"))?;
    let user = user.with_presence(presence.of(id).await);
    Ok(Json(if id == me { user } else { user.without_email() }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// 1-32 characters: the start of a username.
    #[param(inline)]
    q: rules::UserQueryParam,
    /// Page size: 20 by default; any other number is clamped into 1-100.
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(schema_with = rules::username_cursor)]
    cursor: Option<String>,
}

/// A page of users, by username; `next_cursor` is absent on the last page.
#[derive(Serialize, ToSchema)]
pub struct UserPage {
    users: Vec<UserRow>,
    next_cursor: Option<String>,
}

/// Users whose username starts with `q`, without their emails.
#[utoipa::path(
    get,
    path = "/users/search",
    tag = "users",
    operation_id = "search_users",
    security(("bearer" = [])),
    params(SearchQuery),
    responses(
        (status = 200, description = "A page of users", body = UserPage),
        (status = 401, response = Unauthorized),
        (status = 422, description = "`invalid_query`: `q` is not 1-32 characters", body = ErrorBody),
        (status = 429, response = RateLimited),
    )
)]
pub async fn search(
    State(db): State<PgPool>,
    AuthUser(_): AuthUser,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> ApiResult<Json<UserPage>> {
    if query.q.0.is_empty() || query.q.0.chars().count() > 32 || query.q.0.chars().any(char::is_control) {
        return Err(AppError::invalid("invalid_query", "q: 1-32 characters, no control characters"));
    }
    // A cursor is a username this API gave (`rules::username_cursor`).
    if query.cursor.as_deref().is_some_and(|c| validate_username(c).is_err()) {
        return Err(AppError::BadRequest("cursor: not a cursor this API gave".into()));
    }
    let limit = page_limit(query.limit, 20, 100);
    let users: Vec<UserRow> = store::users::search(&db, &query.q.0, query.cursor.as_deref(), limit)
        .await?
        .into_iter()
        .map(UserRow::without_email)
        .collect();
    let next_cursor = next_cursor(&users, limit, |u| u.username.clone());
    Ok(Json(UserPage { users, next_cursor }))
}
