//! Messages that change, from a socket or the REST API: an edit, a delete or a reaction is
//! checked against what is stored (the message is in the channel and not deleted; only its
//! sender edits it; its sender or a channel owner or admin deletes it), then published into
//! the stream on the channel's partition like a send. The ack means the change is in the
//! replicated stream; the worker applies it in stream order, checks it again and gives it the
//! channel's next `seq`. Also here: what a send's content mentions, its `reply_to` check and
//! its attachments.

use crate::publish::PublishFailure;
use crate::state::AppState;
use crate::store;
use async_nats::jetstream::publish::PublishAck;
use shared::events::{Change, StreamChange, new_traceparent, trace_id};
use shared::ids::{ChannelId, ClientMsgId, MessageId, UploadId, UserId};
use shared::protocol::{AttachmentView, ErrorCode, ServerFrame, parse_mentions};

/// Why a change (or a reply) is refused before publishing.
#[derive(Debug, thiserror::Error)]
pub enum ChangeRefused {
    /// Not in the channel: maybe not stored yet (it was acknowledged moments ago), so worth
    /// retrying.
    #[error("no message {0} in this channel (yet)")]
    NotFound(MessageId),
    #[error("message {0} is deleted")]
    Deleted(MessageId),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("you are not a member of that channel")]
    NotAMember,
    /// An attachment that is not an upload of the sender's (or was deleted).
    #[error("no upload {0} of yours")]
    NoSuchUpload(UploadId),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// The checks did not finish within [`CHECK_TIMEOUT`] (the database is slow or its pool
    /// is exhausted): retryable, and the socket goes on.
    #[error("the gateway is busy; send it again")]
    Busy,
}

/// Longest a socket's read loop waits for the database to check a change or a reply.
pub const CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs checks within [`CHECK_TIMEOUT`].
pub async fn bounded<T>(checks: impl Future<Output = Result<T, ChangeRefused>>) -> Result<T, ChangeRefused> {
    tokio::time::timeout(CHECK_TIMEOUT, checks).await.unwrap_or(Err(ChangeRefused::Busy))
}

impl ChangeRefused {
    /// The `error` frame answering frame `id`.
    pub fn frame(&self, id: &ClientMsgId) -> ServerFrame {
        let code = match self {
            ChangeRefused::NotFound(_) | ChangeRefused::Deleted(_) | ChangeRefused::NoSuchUpload(_) => {
                ErrorCode::NotFound
            }
            ChangeRefused::Forbidden(_) => ErrorCode::Forbidden,
            ChangeRefused::NotAMember => ErrorCode::NotAMember,
            ChangeRefused::Db(_) => ErrorCode::Internal,
            ChangeRefused::Busy => ErrorCode::Unavailable,
        };
        let mut frame = ServerFrame::error(Some(id.0.clone()), code, self.to_string());
        if let (
            ChangeRefused::Deleted(_) | ChangeRefused::NoSuchUpload(_),
            ServerFrame::Error { payload, .. },
        ) = (self, &mut frame)
        {
            payload.retryable = false;
        }
        frame
    }
}

/// Checks that `actor` (a member) may make `change` to `message` of `channel` as it is stored.
pub async fn check(
    state: &AppState,
    actor: UserId,
    channel: ChannelId,
    message: MessageId,
    change: &Change,
) -> Result<(), ChangeRefused> {
    let target = store::messages::target(&state.db, channel, message)
        .await?
        .ok_or(ChangeRefused::NotFound(message))?;
    if target.deleted {
        return Err(ChangeRefused::Deleted(message));
    }
    match change {
        Change::Edit { .. } if target.sender_id != actor => {
            Err(ChangeRefused::Forbidden("only its sender can edit a message"))
        }
        Change::Delete if target.sender_id != actor => {
            let role = store::channels::role_of(&state.db, channel, actor).await?;
            match role.is_some_and(|r| r.can_manage()) {
                true => Ok(()),
                false => Err(ChangeRefused::Forbidden(
                    "only its sender or a channel owner or admin can delete a message",
                )),
            }
        }
        _ => Ok(()),
    }
}

/// Checks that `reply_to` is a message of `channel` (deleted ones included: replying to a
/// message that was deleted since is normal).
pub async fn check_reply(
    state: &AppState,
    channel: ChannelId,
    reply_to: MessageId,
) -> Result<(), ChangeRefused> {
    match store::messages::target(&state.db, channel, reply_to).await? {
        Some(_) => Ok(()),
        None => Err(ChangeRefused::NotFound(reply_to)),
    }
}

/// The uploads `ids` as a message of `sender`'s carries them, in the order given: each must be
/// the sender's and not deleted; they are marked attached (kept from the sweeper). One
/// statement, only when there are any.
pub async fn attachments(
    state: &AppState,
    sender: UserId,
    ids: &[UploadId],
) -> Result<Vec<AttachmentView>, ChangeRefused> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let found = store::uploads::attach(&state.db, sender, ids).await?;
    ids.iter()
        .map(|id| {
            found.iter().find(|u| u.id == *id).map(|u| u.view()).ok_or(ChangeRefused::NoSuchUpload(*id))
        })
        .collect()
}

/// The members `content` mentions with `@username`, and whether it says `@channel`. One query,
/// only when the content has an `@`.
pub async fn mentions(
    state: &AppState,
    channel: ChannelId,
    content: &str,
) -> Result<(Vec<UserId>, bool), sqlx::Error> {
    if !content.contains('@') {
        return Ok((Vec::new(), false));
    }
    let (names, everyone) = parse_mentions(content);
    let users = store::messages::mentioned_members(&state.db, channel, &names).await?;
    Ok((users, everyone))
}

/// Checks `change` by `actor` (a member) within [`CHECK_TIMEOUT`], an edit's mentions
/// resolved from its new content; the change to publish.
pub async fn prepare(
    state: &AppState,
    actor: UserId,
    channel: ChannelId,
    message: MessageId,
    mut change: Change,
) -> Result<Change, ChangeRefused> {
    bounded(async {
        if let Change::Edit { content, mentions: named, mentions_channel } = &mut change {
            (*named, *mentions_channel) = mentions(state, channel, content).await?;
        }
        check(state, actor, channel, message, &change).await?;
        Ok(change)
    })
    .await
}

/// Queues the publish of a checked change, in call order; the future yields its PubAck.
pub async fn publish(
    state: &AppState,
    actor: UserId,
    id: ClientMsgId,
    channel: ChannelId,
    message: MessageId,
    change: Change,
) -> impl Future<Output = Result<PublishAck, PublishFailure>> + use<> {
    let change = StreamChange {
        channel_id: channel,
        message_id: message,
        actor,
        client_msg_id: id,
        change,
        created_at: chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 6),
    };
    let subject = state.subjects.publish(channel, state.partitions);
    let encoded = serde_json::to_vec(&change).unwrap_or_default();
    let trace = new_traceparent();
    tracing::debug!(trace_id = trace_id(&trace), kind = change.change.kind(), "change published");
    state.publisher.submit(subject, change.dedup_key(), encoded.into(), trace, true).await
}
