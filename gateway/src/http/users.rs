//! `/users`: my profile, other users, search.

use crate::auth::AuthUser;
use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult, AppError};
use crate::http::{next_cursor, page_limit};
use crate::state::AppState;
use crate::store::{self, users::UserRow};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use shared::ids::UserId;

pub async fn me(State(state): State<AppState>, AuthUser(user): AuthUser) -> ApiResult<Json<UserRow>> {
    store::users::get(&state.db, user).await?.map(Json).ok_or(AppError::Unauthorized)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateMe {
    display_name: Option<String>,
    #[serde(default, deserialize_with = "deserialize_some")]
    avatar_url: Option<Option<String>>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn deserialize_some<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

pub async fn update_me(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiJson(update): ApiJson<UpdateMe>,
) -> ApiResult<Json<UserRow>> {
    if update.display_name.as_ref().is_some_and(|d| d.trim().is_empty() || d.chars().count() > 64) {
        return Err(AppError::invalid("invalid_display_name", "display_name: 1-64 characters"));
    }
    if let Some(Some(url)) = &update.avatar_url
        && (url.len() > 500 || !(url.starts_with("https://") || url.starts_with("http://")))
    {
        return Err(AppError::invalid(
            "invalid_avatar_url",
            "avatar_url: an http(s) URL up to 500 characters",
        ));
    }
    let avatar = update.avatar_url.as_ref().map(|a| a.as_deref());
    store::users::update_profile(&state.db, user, update.display_name.as_deref().map(str::trim), avatar)
        .await?
        .map(Json)
        .ok_or(AppError::Unauthorized)
}

pub async fn get(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    ApiPath(id): ApiPath<UserId>,
) -> ApiResult<Json<UserRow>> {
    let user = store::users::get(&state.db, id).await?.ok_or(AppError::NotFound("user"))?;
    let user = user.with_presence(state.presence_of(id).await);
    Ok(Json(if id == me { user } else { user.without_email() }))
}

#[derive(Deserialize)]
pub struct SearchQuery {
    q: String,
    limit: Option<i64>,
    cursor: Option<String>,
}

#[derive(Serialize)]
pub struct UserPage {
    users: Vec<UserRow>,
    next_cursor: Option<String>,
}

pub async fn search(
    State(state): State<AppState>,
    AuthUser(_): AuthUser,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> ApiResult<Json<UserPage>> {
    if query.q.is_empty() || query.q.chars().count() > 32 {
        return Err(AppError::invalid("invalid_query", "q: 1-32 characters"));
    }
    let limit = page_limit(query.limit, 20, 100);
    let users: Vec<UserRow> = store::users::search(&state.db, &query.q, query.cursor.as_deref(), limit)
        .await?
        .into_iter()
        .map(UserRow::without_email)
        .collect();
    let next_cursor = next_cursor(&users, limit, |u| u.username.clone());
    Ok(Json(UserPage { users, next_cursor }))
}
