//! Uploads as stored: their descriptions, who may read them, their deletion, the intents of
//! uploads in progress, and what the sweeper finds to delete.

use shared::ids::{UploadId, UserId};
use shared::protocol::AttachmentView;
use sqlx::{PgConnection, PgPool};
use std::time::Duration;

/// An upload's row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Upload {
    pub id: UploadId,
    pub owner_id: UserId,
    pub content_type: String,
    pub size: i64,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub filename: String,
}

impl Upload {
    /// How messages show it.
    pub fn view(&self) -> AttachmentView {
        AttachmentView {
            id: self.id,
            url: AttachmentView::url_of(self.id),
            content_type: self.content_type.clone(),
            size: self.size,
            width: self.width,
            height: self.height,
            filename: self.filename.clone(),
        }
    }
}

const COLUMNS: &str = "id, owner_id, content_type, size, width, height, filename";

/// Records that upload `id` of `owner`'s is being stored, before its first byte is: if its
/// request never ends well, the sweeper finds the file by this row.
pub async fn intend(db: &PgPool, id: UploadId, owner: UserId) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO upload_intents (id, owner_id) VALUES ($1, $2)")
        .bind(id)
        .bind(owner)
        .execute(db)
        .await?;
    Ok(())
}

/// Forgets the intent of upload `id`, whose file is deleted already (a refused upload).
pub async fn forget_intent(db: &PgPool, id: UploadId) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM upload_intents WHERE id = $1").bind(id).execute(db).await?;
    Ok(())
}

/// Writes the upload's row, and drops its intent in the same transaction.
pub async fn insert(db: &PgPool, upload: &Upload) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO uploads (id, owner_id, content_type, size, width, height, filename)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(upload.id)
    .bind(upload.owner_id)
    .bind(&upload.content_type)
    .bind(upload.size)
    .bind(upload.width)
    .bind(upload.height)
    .bind(&upload.filename)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM upload_intents WHERE id = $1").bind(upload.id).execute(&mut *tx).await?;
    tx.commit().await
}

/// Bytes of `owner`'s uploads that are not deleted (an index-only sum).
pub async fn bytes_used(db: &PgPool, owner: UserId) -> Result<u64, sqlx::Error> {
    let used: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(size), 0)::bigint FROM uploads WHERE owner_id = $1 AND deleted_at IS NULL",
    )
    .bind(owner)
    .fetch_one(db)
    .await?;
    Ok(u64::try_from(used).unwrap_or_default())
}

/// The upload, unless deleted.
pub async fn get(db: &PgPool, id: UploadId) -> Result<Option<Upload>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM uploads WHERE id = $1 AND deleted_at IS NULL"
    )))
    .bind(id)
    .fetch_optional(db)
    .await
}

/// Those of `ids` (distinct) that `owner` uploaded and did not delete, in no particular order;
/// when that is all of them, they are marked attached so the sweeper leaves them (one
/// statement; none is marked when one is missing, since the send is refused). The sweeper
/// holds the rows it deletes locked, so an upload is either attached here or swept, never both.
pub async fn attach(db: &PgPool, owner: UserId, ids: &[UploadId]) -> Result<Vec<Upload>, sqlx::Error> {
    let wanted: Vec<uuid::Uuid> = ids.iter().map(|id| id.0).collect();
    let mut tx = db.begin().await?;
    let found: Vec<Upload> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE uploads SET attached_at = coalesce(attached_at, now())
          WHERE id = ANY($1) AND owner_id = $2 AND deleted_at IS NULL
         RETURNING {COLUMNS}"
    )))
    .bind(&wanted)
    .bind(owner)
    .fetch_all(&mut *tx)
    .await?;
    if found.len() == ids.len() {
        tx.commit().await?;
    }
    Ok(found)
}

/// Whether `reader` is a member of a channel with a (not deleted) message carrying `id`.
pub async fn shared_with(db: &PgPool, id: UploadId, reader: UserId) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (
             SELECT 1 FROM messages m
             JOIN channel_members cm ON cm.channel_id = m.channel_id AND cm.user_id = $2
             WHERE m.attachments IS NOT NULL
               AND m.attachments @> jsonb_build_array(jsonb_build_object('id', $1::text)))",
    )
    .bind(id.0.to_string())
    .bind(reader)
    .fetch_one(db)
    .await
}

/// Marks `owner`'s upload deleted.
pub async fn mark_deleted(db: &PgPool, id: UploadId, owner: UserId) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE uploads SET deleted_at = now() WHERE id = $1 AND owner_id = $2 AND deleted_at IS NULL",
    )
    .bind(id)
    .bind(owner)
    .execute(db)
    .await?;
    Ok(())
}

/// Interval parameters are bound as seconds.
fn seconds(age: Duration) -> f64 {
    age.as_secs_f64()
}

/// Up to `limit` uploads stored longer than `age` ago and never attached, locked for this
/// transaction (other sweepers skip them). Those a message does carry (attached by a gateway
/// older than `attached_at`) are marked attached instead, and left out.
pub async fn lock_unattached(
    tx: &mut PgConnection,
    age: Duration,
    limit: i64,
) -> Result<Vec<UploadId>, sqlx::Error> {
    let candidates: Vec<UploadId> = sqlx::query_scalar(
        "SELECT id FROM uploads
          WHERE attached_at IS NULL AND deleted_at IS NULL
            AND created_at < now() - make_interval(secs => $1)
          ORDER BY created_at LIMIT $2
          FOR UPDATE SKIP LOCKED",
    )
    .bind(seconds(age))
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    if candidates.is_empty() {
        return Ok(candidates);
    }
    let carried: Vec<UploadId> = sqlx::query_scalar(
        "UPDATE uploads u SET attached_at = now()
          WHERE u.id = ANY($1)
            AND EXISTS (SELECT 1 FROM messages m
                         WHERE m.attachments IS NOT NULL
                           AND m.attachments @> jsonb_build_array(jsonb_build_object('id', u.id::text)))
         RETURNING u.id",
    )
    .bind(candidates.iter().map(|id| id.0).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?;
    Ok(candidates.into_iter().filter(|id| !carried.contains(id)).collect())
}

/// Marks swept uploads deleted, and records an intent for each: their files are deleted
/// after the commit, and one whose deletion fails (or never runs: the gateway stopped) is
/// deleted later by the sweep of abandoned intents.
pub async fn mark_swept(tx: &mut PgConnection, ids: &[UploadId]) -> Result<(), sqlx::Error> {
    let ids: Vec<uuid::Uuid> = ids.iter().map(|id| id.0).collect();
    sqlx::query("UPDATE uploads SET deleted_at = now() WHERE id = ANY($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO upload_intents (id, owner_id)
         SELECT id, owner_id FROM uploads WHERE id = ANY($1)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Up to `limit` intents older than `age` (their request is over: it ended without a row),
/// locked for this transaction.
pub async fn lock_abandoned(
    tx: &mut PgConnection,
    age: Duration,
    limit: i64,
) -> Result<Vec<UploadId>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM upload_intents
          WHERE created_at < now() - make_interval(secs => $1)
          ORDER BY created_at LIMIT $2
          FOR UPDATE SKIP LOCKED",
    )
    .bind(seconds(age))
    .bind(limit)
    .fetch_all(tx)
    .await
}

/// Drops intents whose files are deleted.
pub async fn forget_intents(db: impl sqlx::PgExecutor<'_>, ids: &[UploadId]) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM upload_intents WHERE id = ANY($1)")
        .bind(ids.iter().map(|id| id.0).collect::<Vec<_>>())
        .execute(db)
        .await?;
    Ok(())
}
