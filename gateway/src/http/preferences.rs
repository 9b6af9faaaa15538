//! A member's notification preferences for a channel: which messages they are told of when
//! not looking (`all`, `mentions`, `none`; by default all of a dm's and the mentions of a
//! group's or public channel's), and a mute until a time. The notifier reads them; clients show
//! a muted channel without its unread badge.

use crate::auth::extract::AuthUser;
use crate::error::{ApiJson, ApiPath, ApiResult, AppError};
use crate::http::channels::{ChannelPath, member_role};
use crate::http::openapi::{ChannelNotFound, NotAMember, RateLimited, Unauthorized};
use crate::state::AppState;
use crate::store::channels::ChannelKind;
use crate::store::preferences::{self, NotifyLevel, Preference};
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The caller's preferences for a channel.
#[derive(Debug, Serialize, ToSchema)]
pub struct Notifications {
    /// The level in force: the one chosen, or the channel kind's default.
    pub level: NotifyLevel,
    /// No level was chosen: `level` is the default (`all` in a dm, `mentions` elsewhere).
    pub default: bool,
    /// Silent until then, whatever the level; absent when not muted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub muted_until: Option<DateTime<Utc>>,
}

/// New preferences, replacing the old ones.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetNotifications {
    /// The level to keep; absent or `null`: back to the channel kind's default.
    #[serde(default)]
    pub level: Option<NotifyLevel>,
    /// Muted until then; absent or `null`: not muted.
    #[serde(default)]
    pub muted_until: Option<DateTime<Utc>>,
}

/// The level of a channel of `kind` nobody chose one for.
fn default_level(kind: ChannelKind) -> NotifyLevel {
    match kind {
        ChannelKind::Dm => NotifyLevel::All,
        ChannelKind::Group | ChannelKind::Public => NotifyLevel::Mentions,
    }
}

fn answer(kind: ChannelKind, preference: Preference) -> Notifications {
    Notifications {
        level: preference.notify_level.unwrap_or(default_level(kind)),
        default: preference.notify_level.is_none(),
        muted_until: preference.muted_until.filter(|until| *until > Utc::now()),
    }
}

/// The caller's notification preferences for a channel they are in.
#[utoipa::path(
    get,
    path = "/channels/{id}/notifications",
    tag = "channels",
    operation_id = "get_notifications",
    security(("bearer" = [])),
    params(ChannelPath),
    responses(
        (status = 200, description = "The caller's preferences", body = Notifications),
        (status = 401, response = Unauthorized),
        (status = 403, response = NotAMember),
        (status = 404, response = ChannelNotFound),
        (status = 429, response = RateLimited),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(ChannelPath { id: channel }): ApiPath<ChannelPath>,
) -> ApiResult<Json<Notifications>> {
    let (row, _) = member_role(&state, channel, user).await?;
    let preference = preferences::get(&state.db, channel, user).await?.ok_or(NOT_A_MEMBER)?;
    Ok(Json(answer(row.kind.0, preference)))
}

/// Sets the caller's notification preferences for a channel they are in.
#[utoipa::path(
    put,
    path = "/channels/{id}/notifications",
    tag = "channels",
    operation_id = "set_notifications",
    security(("bearer" = [])),
    params(ChannelPath),
    request_body = SetNotifications,
    responses(
        (status = 200, description = "The preferences now", body = Notifications),
        (status = 401, response = Unauthorized),
        (status = 403, response = NotAMember),
        (status = 404, response = ChannelNotFound),
        (status = 429, response = RateLimited),
    )
)]
pub async fn set(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(ChannelPath { id: channel }): ApiPath<ChannelPath>,
    ApiJson(body): ApiJson<SetNotifications>,
) -> ApiResult<Json<Notifications>> {
    let (row, _) = member_role(&state, channel, user).await?;
    let wanted = Preference { notify_level: body.level, muted_until: body.muted_until };
    let stored = preferences::set(&state.db, channel, user, wanted).await?.ok_or(NOT_A_MEMBER)?;
    Ok(Json(answer(row.kind.0, stored)))
}

/// A member who left between the check and the query.
const NOT_A_MEMBER: AppError = AppError::Forbidden("you are not a member of this channel");
