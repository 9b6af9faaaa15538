//! Messages as stored: history pages (current state: edits, deletes, reactions), one message,
//! the checks a change needs before it is published, and a channel's log after a `seq` (new
//! messages and changes, as the frames members were sent) for `sync` and gap filling.

use chrono::{DateTime, Utc};
use shared::ids::{ChannelId, ChannelSeq, ClientMsgId, MessageId, UserId};
use shared::protocol::{AttachmentView, ContentType, MessageView, ReactionCount, SenderView, ServerFrame};
use sqlx::PgPool;

const COLUMNS: &str = "m.message_id, m.client_msg_id, m.channel_id, m.seq, m.sender_id, u.username,
    u.avatar_url, m.content, m.content_type, m.reply_to, m.created_at, m.mentions, m.mentions_channel,
    m.edited_at, m.deleted_at, m.attachments";

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
    content_type: String,
    reply_to: Option<MessageId>,
    created_at: DateTime<Utc>,
    mentions: Vec<uuid::Uuid>,
    mentions_channel: bool,
    edited_at: Option<DateTime<Utc>>,
    deleted_at: Option<DateTime<Utc>>,
    attachments: Option<sqlx::types::Json<Vec<AttachmentView>>>,
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
            content_type: ContentType::parse(&r.content_type),
            reply_to: r.reply_to,
            created_at: r.created_at,
            mentions: r.mentions.into_iter().map(UserId).collect(),
            mentions_channel: r.mentions_channel,
            edited_at: r.edited_at,
            deleted: r.deleted_at.is_some(),
            reactions: Vec::new(),
            attachments: r.attachments.map(|a| a.0).unwrap_or_default(),
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
    /// Messages with `seq` above the first and below the second, ascending.
    Between(i64, i64),
}

/// Up to `limit` messages of the page, as they are now. With a `viewer`, each carries its
/// reactions (counts, and whether the viewer is among them); without, none (a socket follows
/// reactions with `reaction.updated`).
pub async fn history(
    db: &PgPool,
    channel: ChannelId,
    page: Page,
    limit: i64,
    viewer: Option<UserId>,
) -> Result<Vec<MessageView>, sqlx::Error> {
    let mut messages = page_of(db, channel, page, limit).await?;
    if let Some(viewer) = viewer {
        add_reactions(db, &mut messages, viewer).await?;
    }
    Ok(messages)
}

/// Up to `limit` messages of the page, without reactions.
async fn page_of<'e>(
    db: impl sqlx::PgExecutor<'e>,
    channel: ChannelId,
    page: Page,
    limit: i64,
) -> Result<Vec<MessageView>, sqlx::Error> {
    let (above, below, order) = match page {
        Page::After(seq) => (seq, i64::MAX, "ASC"),
        Page::Before(seq) => (i64::MIN, seq, "DESC"),
        Page::Between(after, before) => (after, before, "ASC"),
    };
    let rows: Vec<HistoryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS}
         FROM messages m JOIN users u ON u.id = m.sender_id
         WHERE m.channel_id = $1 AND m.seq > $2 AND m.seq < $3
         ORDER BY m.seq {order} LIMIT $4"
    )))
    .bind(channel)
    .bind(above)
    .bind(below)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(MessageView::from).collect())
}

/// One message of a channel, as it is now, with its reactions as `viewer` sees them.
pub async fn one(
    db: &PgPool,
    channel: ChannelId,
    message: MessageId,
    viewer: UserId,
) -> Result<Option<MessageView>, sqlx::Error> {
    let row: Option<HistoryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM messages m JOIN users u ON u.id = m.sender_id
         WHERE m.message_id = $1 AND m.channel_id = $2"
    )))
    .bind(message)
    .bind(channel)
    .fetch_optional(db)
    .await?;
    let mut messages: Vec<MessageView> = row.into_iter().map(MessageView::from).collect();
    add_reactions(db, &mut messages, viewer).await?;
    Ok(messages.pop())
}

/// Fills in the reactions of `messages` (one query), each message's in the order its emoji
/// were first given.
async fn add_reactions(db: &PgPool, messages: &mut [MessageView], viewer: UserId) -> Result<(), sqlx::Error> {
    if messages.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = messages.iter().map(|m| m.message_id.0).collect();
    let rows: Vec<(MessageId, String, i64, bool)> = sqlx::query_as(
        "SELECT message_id, emoji, count(*), bool_or(user_id = $2)
         FROM reactions WHERE message_id = ANY($1)
         GROUP BY message_id, emoji ORDER BY message_id, min(created_at), emoji",
    )
    .bind(&ids)
    .bind(viewer)
    .fetch_all(db)
    .await?;
    let mut by_message: std::collections::HashMap<MessageId, Vec<ReactionCount>> = Default::default();
    for (message, emoji, count, me) in rows {
        by_message.entry(message).or_default().push(ReactionCount { emoji, count, me });
    }
    for message in messages {
        message.reactions = by_message.remove(&message.message_id).unwrap_or_default();
    }
    Ok(())
}

/// What a change's target is now, for the checks made before publishing it.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct Target {
    pub sender_id: UserId,
    pub deleted: bool,
}

/// The message `message` of `channel`, if it is stored.
pub async fn target(
    db: &PgPool,
    channel: ChannelId,
    message: MessageId,
) -> Result<Option<Target>, sqlx::Error> {
    sqlx::query_as(
        "SELECT sender_id, deleted_at IS NOT NULL AS deleted FROM messages WHERE message_id = $1 AND channel_id = $2",
    )
    .bind(message)
    .bind(channel)
    .fetch_optional(db)
    .await
}

/// The members of `channel` among `usernames` (lowercase): whom a message's `@username`s name.
pub async fn mentioned_members(
    db: &PgPool,
    channel: ChannelId,
    usernames: &[String],
) -> Result<Vec<UserId>, sqlx::Error> {
    if usernames.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_scalar(
        "SELECT u.id FROM users u JOIN channel_members m ON m.user_id = u.id AND m.channel_id = $1
         WHERE lower(u.username) = ANY($2) ORDER BY array_position($2, lower(u.username))",
    )
    .bind(channel)
    .bind(usernames)
    .fetch_all(db)
    .await
}

/// A frame of a channel's log: a new message or a change, with its `seq`.
pub struct LogEntry {
    pub seq: ChannelSeq,
    /// The frame's JSON.
    pub frame: String,
}

/// Up to `limit` entries of a channel's log after `after`, in `seq` order: new messages (as
/// `message.new` of their current state) and changes (as the frames that were sent).
/// Replayed in order they end in the current state of every message.
pub async fn log_after(
    db: &PgPool,
    channel: ChannelId,
    after: i64,
    limit: i64,
) -> Result<Vec<LogEntry>, sqlx::Error> {
    // One snapshot for both reads: a message committed between them, below a change read
    // in the second, would otherwise be missing from the log while the change is in it.
    let mut tx = db.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    let messages = page_of(&mut *tx, channel, Page::After(after), limit).await?;
    // Re-encoded rather than sent as jsonb prints it: frames start with their `type`.
    let changes: Vec<(i64, sqlx::types::Json<ServerFrame>)> = sqlx::query_as(
        "SELECT seq, frame FROM channel_events
         WHERE channel_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(channel)
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut log: Vec<LogEntry> = messages
        .into_iter()
        .map(|m| LogEntry { seq: m.seq, frame: ServerFrame::MessageNew { payload: m }.to_json() })
        .chain(
            changes
                .into_iter()
                .map(|(seq, frame)| LogEntry { seq: ChannelSeq(seq), frame: frame.0.to_json() }),
        )
        .collect();
    log.sort_by_key(|e| e.seq);
    log.truncate(limit.max(0) as usize);
    Ok(log)
}

/// Where a search looks.
#[derive(Debug, Clone, Copy)]
pub enum SearchScope {
    Channel(ChannelId),
    /// Every channel the user is a member of.
    ChannelsOf(UserId),
}

/// Messages matching `query` (web-search syntax), newest first, before the `before` cursor;
/// deleted ones never match. With the viewer's reactions.
pub async fn search(
    db: &PgPool,
    scope: SearchScope,
    query: &str,
    before: Option<MessageId>,
    limit: i64,
    viewer: UserId,
) -> Result<Vec<MessageView>, sqlx::Error> {
    let (scope_condition, scope_id) = match scope {
        SearchScope::Channel(channel) => ("m.channel_id = $3", channel.0),
        SearchScope::ChannelsOf(user) => {
            ("m.channel_id IN (SELECT channel_id FROM channel_members WHERE user_id = $3)", user.0)
        }
    };
    let rows: Vec<HistoryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM messages m JOIN users u ON u.id = m.sender_id
         WHERE m.search @@ websearch_to_tsquery('simple', $1) AND m.deleted_at IS NULL
           AND ($2::bigint IS NULL OR m.message_id < $2) AND {scope_condition}
         ORDER BY m.message_id DESC LIMIT $4"
    )))
    .bind(query)
    .bind(before)
    .bind(scope_id)
    .bind(limit)
    .fetch_all(db)
    .await?;
    let mut messages: Vec<MessageView> = rows.into_iter().map(MessageView::from).collect();
    add_reactions(db, &mut messages, viewer).await?;
    Ok(messages)
}
