//! Persisting a batch: one transaction that locks the batch's channels, inserts every message
//! not stored yet with the next contiguous `seq` of its channel, and bumps the channels'
//! `last_seq`. Idempotent on `(channel_id, sender_id, client_msg_id)`: a message stored before
//! is skipped, never stored twice and never given a second `seq`. A sender's own messages
//! count as read: the same statement moves their read position past them. One round trip per
//! batch: the whole transaction is the SQL function `chat_persist_batch` (its migration says
//! what it does, step by step), called as one autocommitted statement.

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

/// One autocommitted call of `chat_persist_batch` (migration `20261202000001_persist_batch`):
/// lock, insert, bump and read positions in one round trip.
const PERSIST_BATCH: &str = "SELECT * FROM chat_persist_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

/// Stores `batch` in one transaction and returns every message of it that is in Postgres,
/// ordered by channel and `seq`. Messages of channels that no longer exist are dropped.
pub async fn persist_batch(db: &PgPool, batch: &PersistBatch) -> Result<Vec<PersistedMessage>, PersistError> {
    let columns = Columns::of(&batch.messages);
    let returned: Vec<PersistedMessage> = sqlx::query_as(PERSIST_BATCH)
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
        .fetch_all(db)
        .await?;
    // A row stored by this call comes twice when some of the batch was stored before: once
    // fresh, once among the stored. The fresh copy is kept.
    let (mut rows, stored): (Vec<_>, Vec<_>) = returned.into_iter().partition(|r| r.fresh);
    let fresh: std::collections::HashSet<MessageId> = rows.iter().map(|r| r.message_id).collect();
    rows.extend(stored.into_iter().filter(|r| !fresh.contains(&r.message_id)));
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
