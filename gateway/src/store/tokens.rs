//! Refresh tokens: stored as SHA-256 hashes, rotated on every use, revoked by family. A
//! rotated token used again means it was stolen: its whole family is revoked.

use shared::ids::UserId;
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

/// Stores a new token of `family`, unless the family was revoked, the user deleted, or (with
/// `password_hash`) the password changed since it was checked. Returns whether it stored it.
pub async fn insert(
    db: &PgPool,
    hash: &[u8],
    user: UserId,
    family: Uuid,
    ttl: Duration,
    password_hash: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let stored = sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, user_id, family_id, expires_at)
         SELECT $1, u.id, $3, now() + make_interval(secs => $4) FROM users u
         WHERE u.id = $2 AND u.deleted_at IS NULL AND ($5::text IS NULL OR u.password_hash = $5)
           AND NOT EXISTS (
               SELECT 1 FROM refresh_tokens t WHERE t.family_id = $3 AND t.revoked_at IS NOT NULL)",
    )
    .bind(hash)
    .bind(user)
    .bind(family)
    .bind(ttl.as_secs_f64())
    .bind(password_hash)
    .execute(db)
    .await?;
    Ok(stored.rows_affected() == 1)
}

/// What using a refresh token found.
pub enum Redeemed {
    /// Valid: marked used; issue a successor in the same family.
    Valid { user: UserId, family: Uuid },
    /// Already used or revoked: the family (of `user`) is now revoked.
    Reused { user: UserId, family: Uuid },
    /// Unknown or expired.
    Invalid,
}

pub async fn redeem(db: &PgPool, hash: &[u8]) -> Result<Redeemed, sqlx::Error> {
    let valid: Option<(UserId, Uuid)> = sqlx::query_as(
        "UPDATE refresh_tokens SET used_at = now()
         WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now()
         RETURNING user_id, family_id",
    )
    .bind(hash)
    .fetch_optional(db)
    .await?;
    if let Some((user, family)) = valid {
        return Ok(Redeemed::Valid { user, family });
    }
    let known: Option<(UserId, Uuid)> = sqlx::query_as(
        "SELECT user_id, family_id FROM refresh_tokens
         WHERE token_hash = $1 AND (used_at IS NOT NULL OR revoked_at IS NOT NULL)",
    )
    .bind(hash)
    .fetch_optional(db)
    .await?;
    match known {
        Some((user, family)) => {
            revoke_family(db, family).await?;
            Ok(Redeemed::Reused { user, family })
        }
        None => Ok(Redeemed::Invalid),
    }
}

pub async fn revoke_family(db: &PgPool, family: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL")
        .bind(family)
        .execute(db)
        .await?;
    Ok(())
}

/// Revokes the family of `hash`, if the token is known: its user and family.
pub async fn revoke_by_token(db: &PgPool, hash: &[u8]) -> Result<Option<(UserId, Uuid)>, sqlx::Error> {
    let family: Option<(UserId, Uuid)> =
        sqlx::query_as("SELECT user_id, family_id FROM refresh_tokens WHERE token_hash = $1")
            .bind(hash)
            .fetch_optional(db)
            .await?;
    if let Some((_, family)) = family {
        revoke_family(db, family).await?;
    }
    Ok(family)
}

/// Revokes every session of `user` (password change, account deletion): the families that
/// were live.
pub async fn revoke_all(db: &PgPool, user: UserId) -> Result<Vec<Uuid>, sqlx::Error> {
    let families: Vec<(Uuid,)> = sqlx::query_as(
        "WITH revoked AS (
             UPDATE refresh_tokens SET revoked_at = now()
             WHERE user_id = $1 AND revoked_at IS NULL RETURNING family_id)
         SELECT DISTINCT family_id FROM revoked",
    )
    .bind(user)
    .fetch_all(db)
    .await?;
    Ok(families.into_iter().map(|(f,)| f).collect())
}

/// Sessions revoked within `window`: their access tokens may still be unexpired.
pub async fn recently_revoked(db: &PgPool, window: Duration) -> Result<Vec<Uuid>, sqlx::Error> {
    let families: Vec<(Uuid,)> = sqlx::query_as(
        "SELECT DISTINCT family_id FROM refresh_tokens
         WHERE revoked_at > now() - make_interval(secs => $1)",
    )
    .bind(window.as_secs_f64())
    .fetch_all(db)
    .await?;
    Ok(families.into_iter().map(|(f,)| f).collect())
}
