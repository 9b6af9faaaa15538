//! Message history, read from Postgres in `seq` order.

use chrono::{DateTime, Utc};
use shared::ids::{ChannelId, ChannelSeq, ClientMsgId, MessageId, UserId};
use shared::protocol::{ContentType, MessageView, SenderView};
use sqlx::PgPool;

#[derive(sqlx::FromRow)]
struct HistoryRow {
    message_id: MessageId,
    client_msg_id: ClientMsgId,
    channel_id: ChannelId,
    seq: ChannelSeq,
    sender_id: UserId,
    username: String,
    avatar_url: Option<String>,
    content: String,
    reply_to: Option<MessageId>,
    created_at: DateTime<Utc>,
}

impl From<HistoryRow> for MessageView {
    fn from(r: HistoryRow) -> Self {
        MessageView {
            message_id: r.message_id,
            client_id: r.client_msg_id,
            channel_id: r.channel_id,
            seq: r.seq,
            sender: SenderView { id: r.sender_id, username: r.username, avatar_url: r.avatar_url },
            content: r.content,
            content_type: ContentType::Text,
            reply_to: r.reply_to,
            created_at: r.created_at,
        }
    }
}

/// Which page of a channel's history.
#[derive(Debug, Clone, Copy)]
pub enum Page {
    /// Messages with `seq` above this, ascending.
    After(i64),
    /// Messages with `seq` below this, descending.
    Before(i64),
}

/// Up to `limit` messages of the page.
pub async fn history(
    db: &PgPool,
    channel: ChannelId,
    page: Page,
    limit: i64,
) -> Result<Vec<MessageView>, sqlx::Error> {
    let (condition, order, bound) = match page {
        Page::After(seq) => ("m.seq > $2", "ASC", seq),
        Page::Before(seq) => ("m.seq < $2", "DESC", seq),
    };
    let rows: Vec<HistoryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT m.message_id, m.client_msg_id, m.channel_id, m.seq, m.sender_id, u.username,
                u.avatar_url, m.content, m.reply_to, m.created_at
         FROM messages m JOIN users u ON u.id = m.sender_id
         WHERE m.channel_id = $1 AND {condition}
         ORDER BY m.seq {order} LIMIT $3"
    )))
    .bind(channel)
    .bind(bound)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(MessageView::from).collect())
}
