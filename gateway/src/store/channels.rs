//! Channels and their members.

use super::preferences::NotifyLevel;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::ids::{ChannelId, ChannelSeq, MessageId, UserId};
use shared::protocol::{ContentType, SenderView};
use sqlx::PgPool;
use sqlx::types::Json;
use std::collections::HashSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    Dm,
    Group,
    Public,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Dm => "dm",
            ChannelKind::Group => "group",
            ChannelKind::Public => "public",
        }
    }
}

/// A member's rights in a channel, weakest last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "owner" => Role::Owner,
            "admin" => Role::Admin,
            _ => Role::Member,
        }
    }

    /// Owners and admins manage a channel.
    pub fn can_manage(self) -> bool {
        self <= Role::Admin
    }
}

/// A channel as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = Channel)]
pub struct ChannelRow {
    pub id: ChannelId,
    #[serde(rename = "type")]
    #[sqlx(rename = "kind", try_from = "String")]
    #[schema(value_type = ChannelKind)]
    pub kind: KindText,
    pub name: Option<String>,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_seq: ChannelSeq,
    /// The caller's role, where the caller is a member.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Role>)]
    pub role: Option<String>,
    /// The caller's read position (in channel lists).
    #[sqlx(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_read_seq: Option<ChannelSeq>,
    /// Messages after the caller's read position (in channel lists): the channel's message
    /// count minus the ordinal of the last message at or before `last_read_seq` (changes take
    /// `seq`s too, so `last_seq - last_read_seq` would count them). One index lookup per
    /// channel, never a count over history.
    #[sqlx(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unread_count: Option<i64>,
    /// The channel's newest message (in channel lists), for a preview; absent while it has none.
    #[sqlx(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<LastMessage>)]
    pub last_message: Option<Json<LastMessage>>,
    /// The caller's notification level (in channel lists); absent: the kind's default (see
    /// `GET /channels/{id}/notifications`).
    #[sqlx(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify_level: Option<NotifyLevel>,
    /// The caller muted the channel until then (in channel lists; it may have passed).
    #[sqlx(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub muted_until: Option<DateTime<Utc>>,
}

/// How many characters of a channel's newest message its preview carries.
pub const PREVIEW_CHARS: i32 = 100;

/// A channel's newest message as its channel list previews it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LastMessage {
    pub message_id: MessageId,
    pub seq: ChannelSeq,
    pub sender: SenderView,
    /// The content's first 100 characters (Unicode scalar values); empty once deleted.
    pub content: String,
    pub content_type: ContentType,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

/// The `kind` column, checked by the database to be one of the three kinds.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct KindText(pub ChannelKind);

impl TryFrom<String> for KindText {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        Ok(KindText(match text.as_str() {
            "dm" => ChannelKind::Dm,
            "group" => ChannelKind::Group,
            "public" => ChannelKind::Public,
            other => return Err(format!("unknown channel kind {other}")),
        }))
    }
}

const COLUMNS: &str = "c.id, c.kind, c.name, c.description, c.created_at, c.last_seq";

pub async fn member_channel_ids(db: &PgPool, user: UserId) -> Result<HashSet<ChannelId>, sqlx::Error> {
    let rows: Vec<(ChannelId,)> = sqlx::query_as("SELECT channel_id FROM channel_members WHERE user_id = $1")
        .bind(user)
        .fetch_all(db)
        .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Those of `channels` with at most `max_members` members.
pub async fn with_members_at_most(
    db: &PgPool,
    channels: &[ChannelId],
    max_members: u32,
) -> Result<Vec<ChannelId>, sqlx::Error> {
    let ids: Vec<uuid::Uuid> = channels.iter().map(|c| c.0).collect();
    let rows: Vec<(ChannelId,)> =
        sqlx::query_as("SELECT id FROM channels WHERE id = ANY($1) AND member_count <= $2")
            .bind(ids)
            .bind(i64::from(max_members))
            .fetch_all(db)
            .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// The caller's channels, ordered by id, after the `after` cursor, each with the caller's read
/// position and unread count and the channel's newest message (an index lookup each). The
/// page is chosen first, so the lookups run for its channels only, however many the caller
/// is in.
pub async fn list_for_user(
    db: &PgPool,
    user: UserId,
    after: Option<ChannelId>,
    limit: i64,
) -> Result<Vec<ChannelRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS}, m.role, m.last_read_seq,
                greatest(c.message_count - coalesce(r.ordinal, 0), 0) AS unread_count,
                l.last_message, m.notify_level, m.muted_until
         FROM (
             SELECT channel_id, role, last_read_seq, notify_level, muted_until FROM channel_members
             WHERE user_id = $1 AND ($2::uuid IS NULL OR channel_id > $2)
             ORDER BY channel_id LIMIT $3
         ) m JOIN channels c ON c.id = m.channel_id
         LEFT JOIN LATERAL (
             SELECT ordinal FROM messages
             WHERE channel_id = c.id AND seq <= m.last_read_seq ORDER BY seq DESC LIMIT 1
         ) r ON true
         LEFT JOIN LATERAL (
             SELECT json_build_object(
                 'message_id', lm.message_id, 'seq', lm.seq,
                 'sender', json_build_object('id', u.id, 'username', u.username, 'avatar_url', u.avatar_url),
                 'content', CASE WHEN lm.deleted_at IS NULL THEN left(lm.content, {PREVIEW_CHARS}) ELSE '' END,
                 'content_type', lm.content_type, 'created_at', lm.created_at,
                 'deleted', lm.deleted_at IS NOT NULL) AS last_message
             FROM messages lm JOIN users u ON u.id = lm.sender_id
             WHERE lm.channel_id = c.id ORDER BY lm.seq DESC LIMIT 1
         ) l ON true
         ORDER BY c.id"
    )))
    .bind(user)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Public channels whose name contains `q` (any case), ordered by id after the cursor; the
/// caller's role where they are a member.
pub async fn list_public(
    db: &PgPool,
    user: UserId,
    q: Option<&str>,
    after: Option<ChannelId>,
    limit: i64,
) -> Result<Vec<ChannelRow>, sqlx::Error> {
    // LIKE's wildcards in the query are literal.
    let pattern = q.map(|q| format!("%{}%", super::like_literal(q)));
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS}, m.role
         FROM channels c LEFT JOIN channel_members m ON m.channel_id = c.id AND m.user_id = $1
         WHERE c.kind = 'public' AND ($2::text IS NULL OR lower(c.name) LIKE $2)
           AND ($3::uuid IS NULL OR c.id > $3)
         ORDER BY c.id LIMIT $4"
    )))
    .bind(user)
    .bind(pattern)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// The channel and the caller's role in it (None when not a member).
pub async fn get_with_role(
    db: &PgPool,
    channel: ChannelId,
    user: UserId,
) -> Result<Option<(ChannelRow, Option<Role>)>, sqlx::Error> {
    let row = with_role(db, "c.id = $1::uuid", &channel.0.to_string(), user).await?;
    Ok(row.map(|r| {
        let role = r.role.as_deref().map(Role::parse);
        (r, role)
    }))
}

/// One channel matching `condition` on `$1`, with `user`'s role (`$2`) in it.
async fn with_role(
    db: &PgPool,
    condition: &str,
    key: &str,
    user: UserId,
) -> Result<Option<ChannelRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS}, m.role FROM channels c
         LEFT JOIN channel_members m ON m.channel_id = c.id AND m.user_id = $2
         WHERE {condition}"
    )))
    .bind(key)
    .bind(user)
    .fetch_optional(db)
    .await
}

pub struct NewChannel<'a> {
    pub kind: ChannelKind,
    pub name: Option<&'a str>,
    pub description: Option<&'a str>,
    pub creator: UserId,
    pub members: &'a [UserId],
    pub dm_key: Option<String>,
}

/// Creates a channel with its creator as owner and `members` as members, in one transaction.
pub async fn create(db: &PgPool, new: NewChannel<'_>) -> Result<ChannelRow, sqlx::Error> {
    let mut tx = db.begin().await?;
    let id = ChannelId::new_random();
    let mut row: ChannelRow = sqlx::query_as(
        "INSERT INTO channels AS c (id, kind, name, description, creator_id, dm_key)
         VALUES ($1, $2, $3, $4, $5, $6)
         RETURNING c.id, c.kind, c.name, c.description, c.created_at, c.last_seq, NULL::text AS role",
    )
    .bind(id)
    .bind(new.kind.as_str())
    .bind(new.name)
    .bind(new.description)
    .bind(new.creator)
    .bind(new.dm_key)
    .fetch_one(&mut *tx)
    .await?;
    let creator_role = if new.kind == ChannelKind::Dm { Role::Member } else { Role::Owner };
    let others: Vec<uuid::Uuid> = new.members.iter().filter(|m| **m != new.creator).map(|m| m.0).collect();
    sqlx::query(
        "INSERT INTO channel_members (channel_id, user_id, role)
         SELECT $1, u, 'member' FROM unnest($2::uuid[]) AS u
         UNION ALL SELECT $1, $3, $4",
    )
    .bind(id)
    .bind(&others)
    .bind(new.creator)
    .bind(creator_role.as_str())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    row.role = Some(creator_role.as_str().to_owned());
    Ok(row)
}

pub async fn find_dm(db: &PgPool, dm_key: &str, user: UserId) -> Result<Option<ChannelRow>, sqlx::Error> {
    with_role(db, "c.dm_key = $1", dm_key, user).await
}

pub async fn update(
    db: &PgPool,
    channel: ChannelId,
    name: Option<&str>,
    description: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE channels SET name = coalesce($2, name), description = coalesce($3, description) WHERE id = $1")
        .bind(channel)
        .bind(name)
        .bind(description)
        .execute(db)
        .await?;
    Ok(())
}

/// Deletes a channel; returns the members it had.
pub async fn delete(db: &PgPool, channel: ChannelId) -> Result<Vec<UserId>, sqlx::Error> {
    let mut tx = db.begin().await?;
    let members: Vec<(UserId,)> = sqlx::query_as("SELECT user_id FROM channel_members WHERE channel_id = $1")
        .bind(channel)
        .fetch_all(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM channels WHERE id = $1").bind(channel).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(members.into_iter().map(|(u,)| u).collect())
}

/// A member as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = Member)]
pub struct MemberRow {
    pub user_id: UserId,
    pub username: String,
    pub display_name: String,
    pub avatar_url: Option<String>,
    #[schema(value_type = Role)]
    pub role: String,
    pub joined_at: DateTime<Utc>,
}

pub async fn members(
    db: &PgPool,
    channel: ChannelId,
    after: Option<UserId>,
    limit: i64,
) -> Result<Vec<MemberRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT m.user_id, u.username, u.display_name, u.avatar_url, m.role, m.joined_at
         FROM channel_members m JOIN users u ON u.id = m.user_id
         WHERE m.channel_id = $1 AND ($2::uuid IS NULL OR m.user_id > $2)
         ORDER BY m.user_id LIMIT $3",
    )
    .bind(channel)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// A member's read position, as `GET /channels/{id}/reads` shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = ReadPosition)]
pub struct ReadRow {
    pub user_id: UserId,
    pub last_read_seq: ChannelSeq,
    pub last_read_at: Option<DateTime<Utc>>,
}

pub async fn reads(
    db: &PgPool,
    channel: ChannelId,
    after: Option<UserId>,
    limit: i64,
) -> Result<Vec<ReadRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT user_id, last_read_seq, last_read_at FROM channel_members
         WHERE channel_id = $1 AND ($2::uuid IS NULL OR user_id > $2)
         ORDER BY user_id LIMIT $3",
    )
    .bind(channel)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// A read position that moved, and how many members its channel has (receipts go only over
/// small channels).
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct ReadMoved {
    pub channel_id: ChannelId,
    pub last_read_seq: ChannelSeq,
    pub member_count: i32,
}

/// Moves `user`'s read positions forward: never backwards, never past the channel's last
/// `seq`, only in channels they are a member of. Returns the positions that moved.
pub async fn mark_read(
    db: &PgPool,
    user: UserId,
    reads: &[(ChannelId, ChannelSeq)],
) -> Result<Vec<ReadMoved>, sqlx::Error> {
    let channels: Vec<uuid::Uuid> = reads.iter().map(|(c, _)| c.0).collect();
    let seqs: Vec<i64> = reads.iter().map(|(_, s)| s.0).collect();
    sqlx::query_as(
        "UPDATE channel_members m SET last_read_seq = least(r.seq, c.last_seq), last_read_at = now()
         FROM unnest($2::uuid[], $3::bigint[]) AS r(channel_id, seq)
         JOIN channels c ON c.id = r.channel_id
         WHERE m.user_id = $1 AND m.channel_id = r.channel_id
           AND least(r.seq, c.last_seq) > m.last_read_seq
         RETURNING m.channel_id, m.last_read_seq, c.member_count",
    )
    .bind(user)
    .bind(&channels)
    .bind(&seqs)
    .fetch_all(db)
    .await
}

pub async fn role_of(db: &PgPool, channel: ChannelId, user: UserId) -> Result<Option<Role>, sqlx::Error> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT role FROM channel_members WHERE channel_id = $1 AND user_id = $2")
            .bind(channel)
            .bind(user)
            .fetch_optional(db)
            .await?;
    Ok(row.map(|(r,)| Role::parse(&r)))
}

/// Adds a member; returns the channel's last `seq` as they joined.
pub async fn add_member(
    db: &PgPool,
    channel: ChannelId,
    user: UserId,
    role: Role,
) -> Result<ChannelSeq, sqlx::Error> {
    let (joined_seq,): (i64,) = sqlx::query_as(
        "INSERT INTO channel_members (channel_id, user_id, role, joined_seq)
         SELECT $1, $2, $3, last_seq FROM channels WHERE id = $1
         RETURNING joined_seq",
    )
    .bind(channel)
    .bind(user)
    .bind(role.as_str())
    .fetch_one(db)
    .await?;
    Ok(ChannelSeq(joined_seq))
}

/// The channel's last `seq` when `user` joined it, if they are a member.
pub async fn joined_seq(
    db: &PgPool,
    channel: ChannelId,
    user: UserId,
) -> Result<Option<ChannelSeq>, sqlx::Error> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT joined_seq FROM channel_members WHERE channel_id = $1 AND user_id = $2")
            .bind(channel)
            .bind(user)
            .fetch_optional(db)
            .await?;
    Ok(row.map(|(seq,)| ChannelSeq(seq)))
}

pub async fn remove_member(db: &PgPool, channel: ChannelId, user: UserId) -> Result<bool, sqlx::Error> {
    let result = sqlx::query("DELETE FROM channel_members WHERE channel_id = $1 AND user_id = $2")
        .bind(channel)
        .bind(user)
        .execute(db)
        .await?;
    Ok(result.rows_affected() > 0)
}
