//! Frames the server sends: acknowledgements, a channel's new messages and changes, sync and
//! auth answers, read, typing and presence updates, and `error` frames with their stable codes.

use super::view::{MessageView, PresenceView};
use crate::ids::{ChannelId, ChannelSeq, ClientMsgId, MessageId, UserId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A frame the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ServerFrame {
    #[serde(rename = "message.ack")]
    MessageAck { id: ClientMsgId, payload: AckPayload },
    #[serde(rename = "message.new")]
    MessageNew { payload: MessageView },
    #[serde(rename = "message.updated")]
    MessageUpdated { payload: MessageUpdatedPayload },
    #[serde(rename = "message.deleted")]
    MessageDeleted { payload: MessageDeletedPayload },
    #[serde(rename = "reaction.updated")]
    ReactionUpdated { payload: ReactionUpdatedPayload },
    /// An acknowledged change (its `id`) was not applied; to its author's sockets only.
    #[serde(rename = "change.rejected")]
    ChangeRejected { id: ClientMsgId, payload: ChangeRejectedPayload },
    /// A channel's backlog is out; live messages of it follow.
    #[serde(rename = "sync.done")]
    SyncDone { payload: SyncDonePayload },
    /// The socket now runs on the token of an `auth.refresh`, until `expires_at`.
    #[serde(rename = "auth.refreshed")]
    AuthRefreshed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        payload: AuthRefreshedPayload,
    },
    #[serde(rename = "error")]
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        payload: ErrorPayload,
    },
    /// A user's read position in a channel moved: sent to that user's sockets (their other
    /// devices included).
    #[serde(rename = "read.updated")]
    ReadUpdated { payload: ReadUpdatedPayload },
    /// Another member's read position in a channel of at most `gateway.receipts_max_members`
    /// members moved: sent to the other members' sockets.
    #[serde(rename = "receipt.updated")]
    ReceiptUpdated { payload: ReadUpdatedPayload },
    /// Who is typing in a channel now (the recipient left out); an empty list ends it.
    #[serde(rename = "typing.update")]
    TypingUpdate { payload: TypingUpdatePayload },
    /// The presence of someone who shares a channel with the recipient changed.
    #[serde(rename = "presence.update")]
    PresenceUpdate { payload: PresenceView },
}

impl ServerFrame {
    /// The channel and `seq` of a frame of a channel's log (a new message or a change).
    pub fn channel_seq(&self) -> Option<(ChannelId, ChannelSeq)> {
        match self {
            ServerFrame::MessageNew { payload } => Some((payload.channel_id, payload.seq)),
            ServerFrame::MessageUpdated { payload } => Some((payload.channel_id, payload.seq)),
            ServerFrame::MessageDeleted { payload } => Some((payload.channel_id, payload.seq)),
            ServerFrame::ReactionUpdated { payload } => Some((payload.channel_id, payload.seq)),
            _ => None,
        }
    }

    pub fn error(id: Option<String>, code: ErrorCode, message: impl Into<String>) -> Self {
        ServerFrame::Error {
            id,
            payload: ErrorPayload {
                code,
                retryable: code.is_retryable(),
                message: message.into(),
                retry_after_ms: None,
            },
        }
    }

    /// `rate_limited`: this frame only; the client may resend it after `retry_after_ms`.
    pub fn rate_limited(id: Option<String>, limit: &str, retry_after_ms: u64) -> Self {
        let message = format!("rate limit `{limit}` reached; resend after {retry_after_ms} ms");
        let mut frame = Self::error(id, ErrorCode::RateLimited, message);
        if let ServerFrame::Error { payload, .. } = &mut frame {
            payload.retry_after_ms = Some(retry_after_ms);
        }
        frame
    }

    pub fn to_json(&self) -> String {
        // Serialising these types cannot fail: no maps with non-string keys, no foreign types.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// `message.updated`: a message's content was edited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageUpdatedPayload {
    pub channel_id: ChannelId,
    pub seq: ChannelSeq,
    pub message_id: MessageId,
    pub content: String,
    pub edited_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<UserId>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mentions_channel: bool,
}

/// `message.deleted`: a message was deleted (its content is gone, its reactions too).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageDeletedPayload {
    pub channel_id: ChannelId,
    pub seq: ChannelSeq,
    pub message_id: MessageId,
    pub deleted_by: UserId,
    pub deleted_at: DateTime<Utc>,
}

/// `reaction.updated`: `user_id` added or removed their reaction `emoji`; `count` is how many
/// users now react with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReactionUpdatedPayload {
    pub channel_id: ChannelId,
    pub seq: ChannelSeq,
    pub message_id: MessageId,
    pub emoji: String,
    pub user_id: UserId,
    pub added: bool,
    pub count: i64,
}

/// `change.rejected`: a change that was acknowledged (it is in the stream) but that the worker
/// could not apply once it came to it, told to the sockets of the user who made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeRejectedPayload {
    pub channel_id: ChannelId,
    pub message_id: MessageId,
    pub reason: ChangeRejection,
}

/// Why an acknowledged change was not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeRejection {
    /// The message, or its channel, is gone.
    NotFound,
    /// The message was deleted before the change came to it (an edit or a reaction).
    Deleted,
    /// The user lost the right meanwhile: left the channel, or lost the role a delete needs.
    Forbidden,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadUpdatedPayload {
    pub channel_id: ChannelId,
    pub user_id: UserId,
    pub last_read_seq: ChannelSeq,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypingUpdatePayload {
    pub channel_id: ChannelId,
    pub users: Vec<UserId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthRefreshedPayload {
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncDonePayload {
    pub channel_id: ChannelId,
    /// The last `seq` sent for the channel, backlog included.
    pub last_seq: ChannelSeq,
    /// True when the backlog was above the cap: page the rest from the history API.
    #[serde(default)]
    pub truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AckPayload {
    pub status: AckStatus,
    pub message_id: MessageId,
    pub channel_id: ChannelId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AckStatus {
    /// In the replicated stream: durable, and it will be persisted and delivered.
    Stored,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorPayload {
    pub code: ErrorCode,
    /// True when resending the same frame (same `id`) may succeed.
    pub retryable: bool,
    pub message: String,
    /// With `rate_limited`: resend after this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// Stable error codes of `error` frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    MalformedFrame,
    UnknownType,
    InvalidPayload,
    TooLarge,
    NotAMember,
    /// The message named does not exist in that channel (or is deleted). Retryable: a
    /// message just acknowledged may not be stored yet.
    NotFound,
    /// Not allowed: editing someone else's message, deleting it without being an owner or
    /// admin of the channel.
    Forbidden,
    /// The stream did not confirm the message in time; resend with the same `id`.
    PublishFailed,
    /// The gateway is shutting down or overloaded; resend with the same `id`, maybe elsewhere.
    Unavailable,
    /// An `auth.refresh` whose token is invalid, expired or another user's.
    Unauthorized,
    /// Over a rate limit: resend the same frame after `retry_after_ms`.
    RateLimited,
    Internal,
}

impl ErrorCode {
    /// The code's own words, for answers that have nothing more exact to say (a failed
    /// publish: the broker's own words stay in the gateway's log).
    pub fn text(self) -> &'static str {
        match self {
            ErrorCode::MalformedFrame => "the frame is not valid JSON of the protocol's envelope",
            ErrorCode::UnknownType => "unknown frame type",
            ErrorCode::InvalidPayload => "the frame's payload is not valid for its type",
            ErrorCode::TooLarge => "too large",
            ErrorCode::NotAMember => "not a member of this channel",
            ErrorCode::NotFound => "no such message in this channel",
            ErrorCode::Forbidden => "not allowed",
            ErrorCode::PublishFailed => "the message was not confirmed as stored; resend it with the same id",
            ErrorCode::Unavailable => {
                "this gateway is shutting down or overloaded; resend with the same id, to another gateway if need be"
            }
            ErrorCode::Unauthorized => "the token is invalid, expired or not this session's",
            ErrorCode::RateLimited => "over a rate limit; resend after retry_after_ms",
            ErrorCode::Internal => "internal error; resend with the same id",
        }
    }

    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::PublishFailed
                | ErrorCode::Unavailable
                | ErrorCode::RateLimited
                | ErrorCode::Internal
                | ErrorCode::NotFound
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_frames_say_whether_to_retry() {
        let json = ServerFrame::error(Some("c1".into()), ErrorCode::PublishFailed, "timed out").to_json();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["type"], "error");
        assert_eq!(value["id"], "c1");
        assert_eq!(value["payload"]["code"], "publish_failed");
        assert_eq!(value["payload"]["retryable"], true);
    }
}
