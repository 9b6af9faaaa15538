//! Uploads as stored: their descriptions, who may read them, and their deletion.

use shared::ids::{UploadId, UserId};
use shared::protocol::AttachmentView;
use sqlx::PgPool;

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

pub async fn insert(db: &PgPool, upload: &Upload) -> Result<(), sqlx::Error> {
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
    .execute(db)
    .await?;
    Ok(())
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

/// Those of `ids` that `owner` uploaded and did not delete, in no particular order (one query).
pub async fn owned(db: &PgPool, owner: UserId, ids: &[UploadId]) -> Result<Vec<Upload>, sqlx::Error> {
    let ids: Vec<uuid::Uuid> = ids.iter().map(|id| id.0).collect();
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM uploads WHERE id = ANY($1) AND owner_id = $2 AND deleted_at IS NULL"
    )))
    .bind(&ids)
    .bind(owner)
    .fetch_all(db)
    .await
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
