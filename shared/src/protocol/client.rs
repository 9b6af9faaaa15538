//! Frames a client sends, their payloads and limits, and the checks a payload must pass
//! beyond its JSON shape. Why a frame is refused ([`FrameError`]) lives here too: the checks
//! return it, and the decoder beside this module (`decode`) adds its own kinds.

use super::change::Change;
use super::server::ErrorCode;
use super::view::{ContentType, PresenceStatus};
use crate::ids::{ChannelId, ChannelSeq, ClientMsgId, MessageId, UploadId};
use serde::{Deserialize, Serialize};

/// Longest message content accepted, in characters.
pub const MAX_CONTENT_CHARS: usize = 4_000;

/// A frame a client sends.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    MessageSend {
        id: ClientMsgId,
        payload: SendPayload,
    },
    /// Resume: the client's last seen `seq` per channel (or none: all its channels from 0).
    Sync {
        id: Option<String>,
        payload: SyncPayload,
    },
    /// A fresh access token for an open socket, before the one it opened with expires.
    AuthRefresh {
        id: Option<String>,
        payload: AuthRefreshPayload,
    },
    /// The user has read a channel up to `seq` (a read receipt; never moves backwards).
    MessageRead {
        id: Option<String>,
        payload: ReadPayload,
    },
    /// The user is typing in a channel; repeat every few seconds while it lasts.
    TypingStart {
        id: Option<String>,
        payload: TypingPayload,
    },
    /// The user's chosen presence while connected: `online` or `away`.
    PresenceSet {
        id: Option<String>,
        payload: PresenceSetPayload,
    },
    /// New content for one of the sender's own messages.
    MessageEdit {
        id: ClientMsgId,
        payload: EditPayload,
    },
    /// Deletes a message: its sender's, or any as a channel owner or admin.
    MessageDelete {
        id: ClientMsgId,
        payload: MessageRef,
    },
    /// Adds the user's reaction with an emoji (one per user per emoji).
    ReactionAdd {
        id: ClientMsgId,
        payload: ReactionPayload,
    },
    /// Removes the user's reaction with an emoji.
    ReactionRemove {
        id: ClientMsgId,
        payload: ReactionPayload,
    },
}

/// A change frame taken apart: its `id`, the channel and message it names, and the change
/// (an edit's mentions not resolved yet).
pub struct ChangeFrame {
    pub id: ClientMsgId,
    pub channel_id: ChannelId,
    pub message_id: MessageId,
    pub change: Change,
}

impl ClientFrame {
    /// The frames that go through the stream like a send but change a message that is there.
    pub fn into_change(self) -> Option<ChangeFrame> {
        let (id, channel_id, message_id, change) = match self {
            ClientFrame::MessageEdit { id, payload } => {
                let change =
                    Change::Edit { content: payload.content, mentions: Vec::new(), mentions_channel: false };
                (id, payload.channel_id, payload.message_id, change)
            }
            ClientFrame::MessageDelete { id, payload } => {
                (id, payload.channel_id, payload.message_id, Change::Delete)
            }
            ClientFrame::ReactionAdd { id, payload } => {
                (id, payload.channel_id, payload.message_id, Change::ReactionAdd { emoji: payload.emoji })
            }
            ClientFrame::ReactionRemove { id, payload } => {
                (id, payload.channel_id, payload.message_id, Change::ReactionRemove { emoji: payload.emoji })
            }
            _ => return None,
        };
        Some(ChangeFrame { id, channel_id, message_id, change })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditPayload {
    pub channel_id: ChannelId,
    pub message_id: MessageId,
    pub content: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageRef {
    pub channel_id: ChannelId,
    pub message_id: MessageId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReactionPayload {
    pub channel_id: ChannelId,
    pub message_id: MessageId,
    pub emoji: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceSetPayload {
    pub status: PresenceStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadPayload {
    pub channel_id: ChannelId,
    pub seq: ChannelSeq,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypingPayload {
    pub channel_id: ChannelId,
}

/// Longest access token accepted in `auth.refresh`.
pub const MAX_TOKEN_BYTES: usize = 4096;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthRefreshPayload {
    pub access_token: String,
}

/// Most channels one `sync` may name.
pub const MAX_SYNC_CHANNELS: usize = 1_000;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncPayload {
    /// Channel → last `seq` the client has. Absent or empty: every channel of the user, from 0.
    #[serde(default)]
    pub channels: std::collections::HashMap<ChannelId, ChannelSeq>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendPayload {
    pub channel_id: ChannelId,
    pub content: String,
    #[serde(default = "ContentType::default")]
    pub content_type: ContentType,
    #[serde(default)]
    pub reply_to: Option<MessageId>,
    /// Uploads of the sender's (`POST /api/v1/upload`), at most [`MAX_ATTACHMENTS`]. With
    /// attachments the content may be empty (a caption is optional).
    #[serde(default)]
    pub attachments: Vec<UploadId>,
}

/// Most uploads one message carries.
pub const MAX_ATTACHMENTS: usize = 10;

/// Longest emoji (or `:shortcode:`) of a reaction, in characters: room for ZWJ sequences.
pub const MAX_EMOJI_CHARS: usize = 32;

/// Deepest nesting of arrays and objects a frame or a REST body may have. Every valid one
/// nests 4 levels at most; serde's own limit (128) only guards the stack.
pub const MAX_JSON_DEPTH: usize = 32;

/// Why a client frame could not be decoded. Each maps to an `error` frame code.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FrameError {
    #[error("frame is not valid JSON of the form {{type, id?, payload}}: {0}")]
    Malformed(String),
    #[error("unknown frame type {0:?}")]
    UnknownType(String),
    #[error("invalid payload: {0}")]
    InvalidPayload(String),
    #[error("JSON nested deeper than {MAX_JSON_DEPTH} levels")]
    TooDeep,
}

impl FrameError {
    pub fn code(&self) -> ErrorCode {
        match self {
            FrameError::Malformed(_) | FrameError::TooDeep => ErrorCode::MalformedFrame,
            FrameError::UnknownType(_) => ErrorCode::UnknownType,
            FrameError::InvalidPayload(_) => ErrorCode::InvalidPayload,
        }
    }
}

/// Checks a reaction's emoji: 1–32 characters, no whitespace or control characters.
pub fn validate_emoji(emoji: &str) -> Result<(), String> {
    let chars = emoji.chars().count();
    if chars == 0 || chars > MAX_EMOJI_CHARS {
        return Err(format!("emoji must be 1-{MAX_EMOJI_CHARS} characters"));
    }
    if emoji.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("emoji must not contain whitespace or control characters".into());
    }
    Ok(())
}

/// Checks a send: its content, empty only with attachments, and the attachments' number.
pub(super) fn validate_send(payload: &SendPayload) -> Result<(), FrameError> {
    let attachments = &payload.attachments;
    if attachments.len() > MAX_ATTACHMENTS {
        return Err(FrameError::InvalidPayload(format!("at most {MAX_ATTACHMENTS} attachments")));
    }
    if attachments.iter().enumerate().any(|(i, a)| attachments[..i].contains(a)) {
        return Err(FrameError::InvalidPayload("an upload is attached twice".into()));
    }
    if attachments.is_empty() && payload.content_type != ContentType::Text {
        return Err(FrameError::InvalidPayload(format!(
            "content_type {} needs attachments",
            payload.content_type.as_str()
        )));
    }
    match attachments.is_empty() {
        true => validate_content(&payload.content),
        false => validate_content_chars(&payload.content),
    }
}

/// Checks a message's content (of a send or an edit).
pub fn validate_content(content: &str) -> Result<(), FrameError> {
    if content.trim().is_empty() {
        return Err(FrameError::InvalidPayload("content is empty".into()));
    }
    validate_content_chars(content)
}

/// Checks the length and characters of content that may be empty.
fn validate_content_chars(content: &str) -> Result<(), FrameError> {
    let chars = content.chars().count();
    if chars > MAX_CONTENT_CHARS {
        return Err(FrameError::InvalidPayload(format!(
            "content has {chars} characters, more than {MAX_CONTENT_CHARS}"
        )));
    }
    // Postgres text cannot hold NUL, and no other control character belongs in a chat
    // message: refused here, so the stream never carries a message that cannot be stored.
    if content.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r')) {
        return Err(FrameError::InvalidPayload("content contains control characters".into()));
    }
    Ok(())
}

/// Checks a sync: not too many channels, no negative `seq`.
pub(super) fn validate_sync(payload: &SyncPayload) -> Result<(), FrameError> {
    if payload.channels.len() > MAX_SYNC_CHANNELS {
        return Err(FrameError::InvalidPayload(format!("at most {MAX_SYNC_CHANNELS} channels")));
    }
    if payload.channels.values().any(|seq| seq.0 < 0) {
        return Err(FrameError::InvalidPayload("seq must not be negative".into()));
    }
    Ok(())
}

/// Checks an `auth.refresh`: a token of 1 to [`MAX_TOKEN_BYTES`] bytes.
pub(super) fn validate_auth_refresh(payload: &AuthRefreshPayload) -> Result<(), FrameError> {
    if payload.access_token.is_empty() || payload.access_token.len() > MAX_TOKEN_BYTES {
        return Err(FrameError::InvalidPayload(format!("access_token must be 1-{MAX_TOKEN_BYTES} bytes")));
    }
    Ok(())
}

/// Checks a read receipt: no negative `seq`.
pub(super) fn validate_read(payload: &ReadPayload) -> Result<(), FrameError> {
    if payload.seq.0 < 0 {
        return Err(FrameError::InvalidPayload("seq must not be negative".into()));
    }
    Ok(())
}

/// Checks a `presence.set`: a client chooses `online` or `away`; `offline` is the server's to say.
pub(super) fn validate_presence_set(payload: &PresenceSetPayload) -> Result<(), FrameError> {
    if payload.status == PresenceStatus::Offline {
        return Err(FrameError::InvalidPayload("status is online or away".into()));
    }
    Ok(())
}
