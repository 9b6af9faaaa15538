//! Refresh tokens: stored as SHA-256 hashes, rotated on every use, revoked by family. A
//! rotated token used again means it was stolen: its whole family is revoked.

use shared::ids::UserId;
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

pub async fn insert(
    db: &PgPool,
    hash: &[u8],
    user: UserId,
    family: Uuid,
    ttl: Duration,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, user_id, family_id, expires_at)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
    )
    .bind(hash)
    .bind(user)
    .bind(family)
    .bind(ttl.as_secs_f64())
    .execute(db)
    .await?;
    Ok(())
}

/// What using a refresh token found.
pub enum Redeemed {
    /// Valid: marked used; issue a successor in the same family.
    Valid { user: UserId, family: Uuid },
    /// Already used or revoked: the family is now revoked.
    Reused,
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
    let known: Option<(Uuid,)> = sqlx::query_as(
        "SELECT family_id FROM refresh_tokens WHERE token_hash = $1 AND (used_at IS NOT NULL OR revoked_at IS NOT NULL)",
    )
    .bind(hash)
    .fetch_optional(db)
    .await?;
    match known {
        Some((family,)) => {
            revoke_family(db, family).await?;
            Ok(Redeemed::Reused)
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

/// Revokes the family of `hash`, if the token is known. Returns whether it was.
pub async fn revoke_by_token(db: &PgPool, hash: &[u8]) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = now()
         WHERE family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1) AND revoked_at IS NULL",
    )
    .bind(hash)
    .execute(db)
    .await?;
    Ok(result.rows_affected() > 0)
}
