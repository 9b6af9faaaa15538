//! Members' notification preferences per channel (`channel_members.notify_level`,
//! `muted_until`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::ids::{ChannelId, UserId};
use sqlx::PgPool;

/// Which messages of a channel its member is told of when not looking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum NotifyLevel {
    All,
    Mentions,
    None,
}

/// A member's choice, as stored: `None` is the channel kind's default.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct Preference {
    pub notify_level: Option<NotifyLevel>,
    pub muted_until: Option<DateTime<Utc>>,
}

/// `user`'s preference in `channel`; `None` when not a member.
pub async fn get(db: &PgPool, channel: ChannelId, user: UserId) -> Result<Option<Preference>, sqlx::Error> {
    sqlx::query_as(
        "SELECT notify_level, muted_until FROM channel_members WHERE channel_id = $1 AND user_id = $2",
    )
    .bind(channel)
    .bind(user)
    .fetch_optional(db)
    .await
}

/// Sets `user`'s preference in `channel`; `None` when not a member (left meanwhile).
pub async fn set(
    db: &PgPool,
    channel: ChannelId,
    user: UserId,
    preference: Preference,
) -> Result<Option<Preference>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE channel_members SET notify_level = $3, muted_until = $4
         WHERE channel_id = $1 AND user_id = $2
         RETURNING notify_level, muted_until",
    )
    .bind(channel)
    .bind(user)
    .bind(preference.notify_level)
    .bind(preference.muted_until)
    .fetch_optional(db)
    .await
}
