//! Persisting a batch: one transaction that locks the batch's channels, inserts every message
//! not stored yet with the next contiguous `seq` of its channel, and bumps the channels'
//! `last_seq`. Idempotent on `(channel_id, sender_id, client_msg_id)`: a message stored before
//! is skipped, never stored twice and never given a second `seq`. A sender's own messages
//! count as read: the same statement moves their read position past them. Four round trips
//! per batch: `BEGIN`, the lock, the insert, `COMMIT` (and a fifth when some of the batch was
//! stored before).

use shared::events::StreamMessage;
use shared::ids::{ChannelId, ChannelSeq, ClientMsgId, MessageId, UserId};
use shared::protocol::AttachmentView;
use sqlx::PgPool;

#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

impl PersistError {
    /// Whether Postgres refused the data itself (SQLSTATE class 22, data exception, or 23,
    /// integrity violation): retrying the same rows fails the same way. Everything else
    /// (connection lost, server restarting, serialization failure, a bug in a query) is
    /// retried, never dead-lettered: a broken deploy must not empty the stream.
    pub fn is_permanent(&self) -> bool {
        let Self::Db(sqlx::Error::Database(error)) = self else { return false };
        error.code().is_some_and(|code| code.starts_with("22") || code.starts_with("23"))
    }
}

/// Messages to store together, in stream order.
#[derive(Debug, Default)]
pub struct PersistBatch {
    pub messages: Vec<StreamMessage>,
}

/// A message of the batch as it stands in Postgres, whether this batch stored it or an
/// earlier delivery did.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PersistedMessage {
    pub message_id: MessageId,
    pub channel_id: ChannelId,
    pub seq: ChannelSeq,
    pub sender_id: UserId,
    pub client_msg_id: ClientMsgId,
    /// As stored: a resend of a stored message is announced with the stored copy.
    pub content: String,
    pub content_type: String,
    /// As stored (none once deleted).
    pub attachments: Option<sqlx::types::Json<Vec<AttachmentView>>>,
    pub reply_to: Option<MessageId>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub mentions: Vec<uuid::Uuid>,
    pub mentions_channel: bool,
    /// As stored now: a message announced again may have been edited or deleted since.
    pub edited_at: Option<chrono::DateTime<chrono::Utc>>,
    pub deleted: bool,
    /// False when an earlier delivery of the same message already stored it.
    pub fresh: bool,
}

const LOCK_CHANNELS: &str = "SELECT id FROM channels WHERE id = ANY($1) ORDER BY id FOR UPDATE";

const INSERT_FRESH: &str = r#"
WITH input AS (
    SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[],
                         $7::bigint[], $8::timestamptz[], $9::text[], $10::bool[], $11::text[])
        WITH ORDINALITY AS t(message_id, channel_id, sender_id, client_msg_id, content,
                             content_type, reply_to, created_at, mentions, mentions_channel,
                             attachments, ord)
), fresh AS (
    SELECT DISTINCT ON (i.channel_id, i.sender_id, i.client_msg_id) i.*
    FROM input i JOIN channels c ON c.id = i.channel_id
    WHERE NOT EXISTS (
        SELECT 1 FROM messages m
        WHERE m.channel_id = i.channel_id AND m.sender_id = i.sender_id
          AND m.client_msg_id = i.client_msg_id)
    ORDER BY i.channel_id, i.sender_id, i.client_msg_id, i.ord
), numbered AS (
    SELECT f.*, row_number() OVER (PARTITION BY f.channel_id ORDER BY f.ord) AS rn FROM fresh f
), counts AS (
    SELECT channel_id, count(*) AS n FROM numbered GROUP BY channel_id
), bumped AS (
    UPDATE channels c SET last_seq = c.last_seq + counts.n, message_count = c.message_count + counts.n
    FROM counts WHERE c.id = counts.channel_id
    RETURNING c.id, c.last_seq - counts.n AS base, c.message_count - counts.n AS ordinal_base
), inserted AS (
    INSERT INTO messages (message_id, channel_id, seq, ordinal, sender_id, client_msg_id, content,
                          content_type, reply_to, created_at, mentions, mentions_channel, attachments)
    SELECT n.message_id, n.channel_id, b.base + n.rn, b.ordinal_base + n.rn, n.sender_id,
           n.client_msg_id, n.content, n.content_type, n.reply_to, n.created_at,
           coalesce(string_to_array(nullif(n.mentions, ''), ',')::uuid[], '{}'), n.mentions_channel,
           nullif(n.attachments, '')::jsonb
    FROM numbered n JOIN bumped b ON b.id = n.channel_id
    ORDER BY n.channel_id, n.rn
    RETURNING message_id, channel_id, seq, sender_id, client_msg_id, content, content_type, attachments,
              reply_to, created_at, mentions, mentions_channel, edited_at, deleted_at IS NOT NULL AS deleted,
              true AS fresh
), own_read AS (
    -- Each sender's read position moves to their last message stored (never backwards).
    UPDATE channel_members m SET last_read_seq = r.seq, last_read_at = now()
    FROM (SELECT channel_id, sender_id, max(seq) AS seq FROM inserted GROUP BY channel_id, sender_id) r
    WHERE m.channel_id = r.channel_id AND m.user_id = r.sender_id AND m.last_read_seq < r.seq
)
SELECT * FROM inserted
"#;

/// The stored rows of messages that an earlier delivery already persisted.
const SELECT_STORED: &str = r#"
SELECT m.message_id, m.channel_id, m.seq, m.sender_id, m.client_msg_id, m.content, m.content_type,
       m.attachments, m.reply_to, m.created_at, m.mentions, m.mentions_channel, m.edited_at,
       m.deleted_at IS NOT NULL AS deleted, false AS fresh
FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS k(channel_id, sender_id, client_msg_id)
JOIN messages m USING (channel_id, sender_id, client_msg_id)
"#;

/// Stores `batch` in one transaction and returns every message of it that is in Postgres,
/// ordered by channel and `seq`. Messages of channels that no longer exist are dropped.
pub async fn persist_batch(db: &PgPool, batch: &PersistBatch) -> Result<Vec<PersistedMessage>, PersistError> {
    let columns = Columns::of(&batch.messages);
    let mut channels = columns.channel_id.clone();
    channels.sort();
    channels.dedup();

    let mut tx = db.begin().await?;
    sqlx::query(LOCK_CHANNELS).bind(&channels).execute(&mut *tx).await?;
    let mut rows: Vec<PersistedMessage> = sqlx::query_as(INSERT_FRESH)
        .bind(&columns.message_id)
        .bind(&columns.channel_id)
        .bind(&columns.sender_id)
        .bind(&columns.client_msg_id)
        .bind(&columns.content)
        .bind(&columns.content_type)
        .bind(&columns.reply_to)
        .bind(&columns.created_at)
        .bind(&columns.mentions)
        .bind(&columns.mentions_channel)
        .bind(&columns.attachments)
        .fetch_all(&mut *tx)
        .await?;
    if rows.len() < batch.messages.len() {
        let stored: Vec<PersistedMessage> = sqlx::query_as(SELECT_STORED)
            .bind(&columns.channel_id)
            .bind(&columns.sender_id)
            .bind(&columns.client_msg_id)
            .fetch_all(&mut *tx)
            .await?;
        let fresh: std::collections::HashSet<MessageId> = rows.iter().map(|r| r.message_id).collect();
        rows.extend(stored.into_iter().filter(|r| !fresh.contains(&r.message_id)));
    }
    tx.commit().await?;
    rows.sort_by_key(|r| (r.channel_id, r.seq));
    rows.dedup_by_key(|r| r.message_id);
    Ok(rows)
}

/// The batch as column arrays, for `unnest`.
struct Columns<'a> {
    message_id: Vec<i64>,
    channel_id: Vec<uuid::Uuid>,
    sender_id: Vec<uuid::Uuid>,
    client_msg_id: Vec<&'a str>,
    content: Vec<&'a str>,
    content_type: Vec<&'static str>,
    reply_to: Vec<Option<i64>>,
    created_at: Vec<chrono::DateTime<chrono::Utc>>,
    /// Comma-separated user ids (arrays of arrays must be rectangular in Postgres).
    mentions: Vec<String>,
    mentions_channel: Vec<bool>,
    /// JSON arrays, empty without attachments.
    attachments: Vec<String>,
}

impl<'a> Columns<'a> {
    fn of(messages: &'a [StreamMessage]) -> Self {
        Self {
            message_id: messages.iter().map(|m| m.message_id.0).collect(),
            channel_id: messages.iter().map(|m| m.channel_id.0).collect(),
            sender_id: messages.iter().map(|m| m.sender.id.0).collect(),
            client_msg_id: messages.iter().map(|m| m.client_msg_id.0.as_str()).collect(),
            content: messages.iter().map(|m| m.content.as_str()).collect(),
            content_type: messages.iter().map(|m| m.content_type.as_str()).collect(),
            reply_to: messages.iter().map(|m| m.reply_to.map(|r| r.0)).collect(),
            created_at: messages.iter().map(|m| m.created_at).collect(),
            mentions: messages
                .iter()
                .map(|m| m.mentions.iter().map(ToString::to_string).collect::<Vec<_>>().join(","))
                .collect(),
            mentions_channel: messages.iter().map(|m| m.mentions_channel).collect(),
            attachments: messages
                .iter()
                .map(|m| match m.attachments.is_empty() {
                    true => String::new(),
                    // Derived structs of strings and numbers: serialising them cannot fail
                    // (serde_json fails only on maps with non-string keys and failing impls).
                    false => serde_json::to_string(&m.attachments).unwrap_or_default(),
                })
                .collect(),
        }
    }
}
