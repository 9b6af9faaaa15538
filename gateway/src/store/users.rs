//! Users: accounts, profiles, search.

use serde::Serialize;
use shared::ids::{ChannelId, ChannelSeq, UserId};
use shared::protocol::SenderView;
use sqlx::PgPool;

/// A user as the API shows it; `email` only to the user themself.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = User)]
pub struct UserRow {
    pub id: UserId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub username: String,
    pub display_name: String,
    pub avatar_url: Option<String>,
    /// `online`, `away` or `offline` (from presence, not from this row).
    #[schema(value_type = shared::protocol::PresenceStatus)]
    pub status: String,
    /// When their last socket closed, while offline.
    #[sqlx(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl UserRow {
    pub fn without_email(mut self) -> Self {
        self.email = None;
        self
    }

    pub fn with_presence(mut self, presence: shared::protocol::PresenceView) -> Self {
        self.status = presence.status.as_str().to_owned();
        self.last_seen_at = presence.last_seen_at;
        self
    }
}

const COLUMNS: &str = "id, email, username, display_name, avatar_url, status";

pub struct NewUser<'a> {
    pub email: &'a str,
    pub username: &'a str,
    pub password_hash: &'a str,
    pub display_name: &'a str,
}

pub async fn create(db: &PgPool, user: NewUser<'_>) -> Result<UserRow, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO users (id, email, username, password_hash, display_name)
         VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    )))
    .bind(UserId::new_random())
    .bind(user.email)
    .bind(user.username)
    .bind(user.password_hash)
    .bind(user.display_name)
    .fetch_one(db)
    .await
}

/// The user and password hash for a login by username or email.
pub async fn find_for_login(db: &PgPool, login: &str) -> Result<Option<(UserRow, String)>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        user: UserRow,
        password_hash: String,
    }
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS}, password_hash FROM users
         WHERE (lower(username) = lower($1) OR lower(email) = lower($1)) AND deleted_at IS NULL LIMIT 1"
    )))
    .bind(login)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| (r.user, r.password_hash)))
}

pub async fn get(db: &PgPool, id: UserId) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM users WHERE id = $1")))
        .bind(id)
        .fetch_optional(db)
        .await
}

/// The password hash of a user who was not deleted.
pub async fn password_hash(db: &PgPool, id: UserId) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1 AND deleted_at IS NULL")
        .bind(id)
        .fetch_optional(db)
        .await
}

pub async fn set_password(db: &PgPool, id: UserId, password_hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(password_hash)
        .execute(db)
        .await?;
    Ok(())
}

/// Marks the user deleted (no more logins; the row stays for their messages) and removes
/// them from every channel. Returns the channels left, with their last `seq`.
pub async fn delete(db: &PgPool, id: UserId) -> Result<Vec<(ChannelId, ChannelSeq)>, sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query("UPDATE users SET deleted_at = now(), updated_at = now() WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let left = sqlx::query_as(
        "WITH gone AS (DELETE FROM channel_members WHERE user_id = $1 RETURNING channel_id)
         SELECT c.id, c.last_seq FROM channels c JOIN gone ON gone.channel_id = c.id",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(left)
}

pub async fn sender_view(db: &PgPool, id: UserId) -> Result<Option<SenderView>, sqlx::Error> {
    let row: Option<(UserId, String, Option<String>)> =
        sqlx::query_as("SELECT id, username, avatar_url FROM users WHERE id = $1 AND deleted_at IS NULL")
            .bind(id)
            .fetch_optional(db)
            .await?;
    Ok(row.map(|(id, username, avatar_url)| SenderView { id, username, avatar_url }))
}

pub async fn update_profile(
    db: &PgPool,
    id: UserId,
    display_name: Option<&str>,
    avatar_url: Option<Option<&str>>,
) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE users SET display_name = coalesce($2, display_name),
                          avatar_url = CASE WHEN $3 THEN $4 ELSE avatar_url END,
                          updated_at = now()
         WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(display_name)
    .bind(avatar_url.is_some())
    .bind(avatar_url.flatten())
    .fetch_optional(db)
    .await
}

/// Users whose username starts with `prefix`, by username, after the `after` cursor.
pub async fn search(
    db: &PgPool,
    prefix: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<UserRow>, sqlx::Error> {
    let pattern = format!("{}%", super::like_literal(prefix));
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM users
         WHERE lower(username) LIKE $1 AND deleted_at IS NULL AND ($2::text IS NULL OR lower(username) > lower($2))
         ORDER BY lower(username) LIMIT $3"
    )))
    .bind(pattern)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
}
