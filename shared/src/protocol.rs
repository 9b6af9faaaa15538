//! The WebSocket protocol, v1: client → server frames, server → client frames, and the message
//! object that both `message.new` and the history API return. Frames are JSON text
//! `{type, id?, payload}`; see `docs/protocol.md`.

use crate::ids::{ChannelId, ChannelSeq, ClientMsgId, MessageId, UploadId, UserId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Subprotocol a browser offers (with `bearer.<token>`) and the server answers with.
pub const SUBPROTOCOL: &str = "chat.v1";
/// Prefix of the subprotocol entry that carries a browser's access token.
pub const BEARER_SUBPROTOCOL_PREFIX: &str = "bearer.";

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
    pub change: crate::events::Change,
}

impl ClientFrame {
    /// The frames that go through the stream like a send but change a message that is there.
    pub fn into_change(self) -> Option<ChangeFrame> {
        use crate::events::Change;
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

/// Longest emoji (or `:shortcode:`) of a reaction, in characters: room for ZWJ sequences.
pub const MAX_EMOJI_CHARS: usize = 32;

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

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceSetPayload {
    pub status: PresenceStatus,
}

/// A user's presence: `offline` when no socket of theirs is open anywhere in the cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PresenceStatus {
    Online,
    Away,
    Offline,
}

impl PresenceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PresenceStatus::Online => "online",
            PresenceStatus::Away => "away",
            PresenceStatus::Offline => "offline",
        }
    }
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

/// What a message carries. The server decides it from the attachments: `image` when every
/// one is an image, `file` otherwise, `text` without any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ContentType {
    #[default]
    Text,
    Image,
    File,
}

impl ContentType {
    pub fn as_str(self) -> &'static str {
        match self {
            ContentType::Text => "text",
            ContentType::Image => "image",
            ContentType::File => "file",
        }
    }

    /// The stored name back; anything unknown reads as text.
    pub fn parse(name: &str) -> Self {
        match name {
            "image" => ContentType::Image,
            "file" => ContentType::File,
            _ => ContentType::Text,
        }
    }

    /// The content type of a message with these attachments.
    pub fn of(attachments: &[AttachmentView]) -> Self {
        match attachments {
            [] => ContentType::Text,
            _ if attachments.iter().all(|a| a.width.is_some()) => ContentType::Image,
            _ => ContentType::File,
        }
    }
}

/// An upload as messages show it. `url` needs the reader's bearer token (or use
/// `GET {url}/link` for a short-lived signed url an `<img>` can load).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentView {
    pub id: UploadId,
    pub url: String,
    /// Sniffed from the content (e.g. `image/png`; `application/octet-stream` when unknown).
    pub content_type: String,
    pub size: i64,
    /// Set for images only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<i32>,
    pub filename: String,
}

impl AttachmentView {
    /// Where an upload is read.
    pub fn url_of(id: UploadId) -> String {
        format!("/api/v1/upload/{id}")
    }
}

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

#[derive(Deserialize)]
struct RawFrame<'a> {
    #[serde(rename = "type")]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default)]
    id: Option<String>,
    #[serde(borrow)]
    payload: Option<&'a RawValue>,
}

/// Deepest nesting of arrays and objects a frame or a REST body may have. Every valid one
/// nests 4 levels at most; serde's own limit (128) only guards the stack.
pub const MAX_JSON_DEPTH: usize = 32;

/// Whether `json` nests arrays and objects deeper than `max`: one linear pass that skips
/// strings and validates nothing else, run before parsing.
pub fn json_depth_exceeds(json: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &byte in json {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// A frame's `id`, if one could be read, so an `error` can name the frame it answers.
pub fn frame_id(text: &str) -> Option<String> {
    serde_json::from_str::<RawFrame<'_>>(text).ok().and_then(|f| f.id)
}

impl ClientFrame {
    /// Decodes a text frame. The envelope is read first so that an unknown `type` and a bad
    /// `payload` get errors of their own.
    pub fn decode(text: &str) -> Result<Self, FrameError> {
        if json_depth_exceeds(text.as_bytes(), MAX_JSON_DEPTH) {
            return Err(FrameError::TooDeep);
        }
        let raw: RawFrame<'_> =
            serde_json::from_str(text).map_err(|e| FrameError::Malformed(e.to_string()))?;
        let payload = raw.payload.map(RawValue::get).unwrap_or("null");
        match raw.kind.as_ref() {
            "message.send" => {
                let id = client_msg_id(raw.id, "message.send")?;
                let payload: SendPayload =
                    serde_json::from_str(payload).map_err(|e| FrameError::InvalidPayload(e.to_string()))?;
                validate_send(&payload)?;
                Ok(ClientFrame::MessageSend { id, payload })
            }
            "message.edit" => {
                let id = client_msg_id(raw.id, "message.edit")?;
                let payload: EditPayload =
                    serde_json::from_str(payload).map_err(|e| FrameError::InvalidPayload(e.to_string()))?;
                validate_content(&payload.content)?;
                Ok(ClientFrame::MessageEdit { id, payload })
            }
            "message.delete" => {
                let id = client_msg_id(raw.id, "message.delete")?;
                let payload: MessageRef =
                    serde_json::from_str(payload).map_err(|e| FrameError::InvalidPayload(e.to_string()))?;
                Ok(ClientFrame::MessageDelete { id, payload })
            }
            kind @ ("reaction.add" | "reaction.remove") => {
                let id = client_msg_id(raw.id, kind)?;
                let payload: ReactionPayload =
                    serde_json::from_str(payload).map_err(|e| FrameError::InvalidPayload(e.to_string()))?;
                validate_emoji(&payload.emoji).map_err(FrameError::InvalidPayload)?;
                Ok(match kind {
                    "reaction.add" => ClientFrame::ReactionAdd { id, payload },
                    _ => ClientFrame::ReactionRemove { id, payload },
                })
            }
            "sync" => {
                let payload: SyncPayload = match raw.payload {
                    None => SyncPayload::default(),
                    Some(_) => serde_json::from_str(payload)
                        .map_err(|e| FrameError::InvalidPayload(e.to_string()))?,
                };
                if payload.channels.len() > MAX_SYNC_CHANNELS {
                    return Err(FrameError::InvalidPayload(format!("at most {MAX_SYNC_CHANNELS} channels")));
                }
                if payload.channels.values().any(|seq| seq.0 < 0) {
                    return Err(FrameError::InvalidPayload("seq must not be negative".into()));
                }
                Ok(ClientFrame::Sync { id: raw.id, payload })
            }
            "auth.refresh" => {
                let payload: AuthRefreshPayload =
                    serde_json::from_str(payload).map_err(|e| FrameError::InvalidPayload(e.to_string()))?;
                if payload.access_token.is_empty() || payload.access_token.len() > MAX_TOKEN_BYTES {
                    return Err(FrameError::InvalidPayload(format!(
                        "access_token must be 1-{MAX_TOKEN_BYTES} bytes"
                    )));
                }
                Ok(ClientFrame::AuthRefresh { id: raw.id, payload })
            }
            "message.read" => {
                let payload: ReadPayload =
                    serde_json::from_str(payload).map_err(|e| FrameError::InvalidPayload(e.to_string()))?;
                if payload.seq.0 < 0 {
                    return Err(FrameError::InvalidPayload("seq must not be negative".into()));
                }
                Ok(ClientFrame::MessageRead { id: raw.id, payload })
            }
            "presence.set" => {
                let payload: PresenceSetPayload =
                    serde_json::from_str(payload).map_err(|e| FrameError::InvalidPayload(e.to_string()))?;
                if payload.status == PresenceStatus::Offline {
                    return Err(FrameError::InvalidPayload("status is online or away".into()));
                }
                Ok(ClientFrame::PresenceSet { id: raw.id, payload })
            }
            "typing.start" => {
                let payload: TypingPayload =
                    serde_json::from_str(payload).map_err(|e| FrameError::InvalidPayload(e.to_string()))?;
                Ok(ClientFrame::TypingStart { id: raw.id, payload })
            }
            other => Err(FrameError::UnknownType(other.chars().take(64).collect())),
        }
    }
}

/// The `id` a frame that goes through the stream must carry: its idempotency key.
fn client_msg_id(id: Option<String>, kind: &str) -> Result<ClientMsgId, FrameError> {
    let id = ClientMsgId(id.ok_or_else(|| FrameError::InvalidPayload(format!("{kind} needs an id")))?);
    if !id.is_valid() {
        return Err(FrameError::InvalidPayload(format!(
            "id must be 1-{} printable ASCII characters",
            ClientMsgId::MAX_LEN
        )));
    }
    Ok(id)
}

/// Checks a send: its content, empty only with attachments, and the attachments' number.
fn validate_send(payload: &SendPayload) -> Result<(), FrameError> {
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

/// The `@username`s of a message's content (lowercased, each once), and whether it mentions
/// `@channel` (or `@everyone`): everybody in the channel. Usernames follow the registration
/// rule (3–32 of ASCII letters, digits, `_`, `.`, `-`); a mention must start the content or
/// follow a character that cannot be in a username, so `mail@example.com` mentions nobody.
pub fn parse_mentions(content: &str) -> (Vec<String>, bool) {
    let is_name = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    let mut names: Vec<String> = Vec::new();
    let mut everyone = false;
    let mut previous: Option<char> = None;
    for (at, c) in content.char_indices() {
        let starts = c == '@' && !previous.is_some_and(is_name);
        previous = Some(c);
        if !starts {
            continue;
        }
        let rest = &content[at + 1..];
        let end = rest.find(|c: char| !is_name(c)).unwrap_or(rest.len());
        // A sentence's full stop is not part of the name.
        let name = rest[..end].trim_end_matches('.').to_ascii_lowercase();
        match name.as_str() {
            "channel" | "everyone" => everyone = true,
            _ if (3..=32).contains(&name.len()) && !names.contains(&name) => names.push(name),
            _ => {}
        }
    }
    (names, everyone)
}

/// Who sent a message, as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SenderView {
    pub id: UserId,
    pub username: String,
    pub avatar_url: Option<String>,
}

/// A stored message, as `message.new` and the history API show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageView {
    pub message_id: MessageId,
    pub client_id: ClientMsgId,
    pub channel_id: ChannelId,
    pub seq: ChannelSeq,
    pub sender: SenderView,
    pub content: String,
    pub content_type: ContentType,
    pub reply_to: Option<MessageId>,
    pub created_at: DateTime<Utc>,
    /// Members named with `@username` in the content.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<UserId>,
    /// The content says `@channel` (or `@everyone`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mentions_channel: bool,
    /// When the content was last edited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<DateTime<Utc>>,
    /// Deleted: the content is gone (empty), the message keeps its place.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// Reactions, by emoji, in the order first given. Only the history API fills them in:
    /// a socket follows them with `reaction.updated`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<ReactionCount>,
    /// Uploads the message carries (none once it is deleted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReactionCount {
    pub emoji: String,
    pub count: i64,
    /// The user asking is among them.
    pub me: bool,
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
    /// Who is typing in a channel now (the recipient left out); an empty list ends it.
    #[serde(rename = "typing.update")]
    TypingUpdate { payload: TypingUpdatePayload },
    /// The presence of someone who shares a channel with the recipient changed.
    #[serde(rename = "presence.update")]
    PresenceUpdate { payload: PresenceView },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PresenceView {
    pub user_id: UserId,
    pub status: PresenceStatus,
    /// When their last socket closed (absent while online, or if never seen).
    pub last_seen_at: Option<DateTime<Utc>>,
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
    use proptest::prelude::*;

    const CHANNEL: &str = "7d8f7c1e-2b8e-4e55-9d55-3f1f6f0b2c11";

    #[test]
    fn decodes_a_send_with_defaults() {
        let text = format!(
            r#"{{"type":"message.send","id":"c1","payload":{{"channel_id":"{CHANNEL}","content":"hi"}}}}"#
        );
        let Ok(ClientFrame::MessageSend { id, payload }) = ClientFrame::decode(&text) else {
            panic!("a send")
        };
        assert_eq!(id.0, "c1");
        assert_eq!(payload.content, "hi");
        assert_eq!(payload.content_type, ContentType::Text);
        assert_eq!(payload.reply_to, None);
    }

    #[test]
    fn decodes_auth_refresh_and_refuses_empty_or_huge_tokens() {
        let text = r#"{"type":"auth.refresh","id":"r1","payload":{"access_token":"abc"}}"#;
        let Ok(ClientFrame::AuthRefresh { id, payload }) = ClientFrame::decode(text) else {
            panic!("a refresh")
        };
        assert_eq!((id.as_deref(), payload.access_token.as_str()), (Some("r1"), "abc"));
        let empty = r#"{"type":"auth.refresh","payload":{"access_token":""}}"#;
        assert!(matches!(ClientFrame::decode(empty), Err(FrameError::InvalidPayload(_))));
        let huge =
            format!(r#"{{"type":"auth.refresh","payload":{{"access_token":"{}"}}}}"#, "a".repeat(5000));
        assert!(matches!(ClientFrame::decode(&huge), Err(FrameError::InvalidPayload(_))));
    }

    #[test]
    fn decodes_sync_with_and_without_channels() {
        let text = format!(r#"{{"type":"sync","id":"s1","payload":{{"channels":{{"{CHANNEL}":7}}}}}}"#);
        let Ok(ClientFrame::Sync { id, payload }) = ClientFrame::decode(&text) else { panic!("a sync") };
        assert_eq!(id.as_deref(), Some("s1"));
        assert_eq!(payload.channels.values().copied().collect::<Vec<_>>(), [ChannelSeq(7)]);
        assert_eq!(
            ClientFrame::decode(r#"{"type":"sync"}"#),
            Ok(ClientFrame::Sync { id: None, payload: SyncPayload::default() })
        );
        let negative = format!(r#"{{"type":"sync","payload":{{"channels":{{"{CHANNEL}":-1}}}}}}"#);
        assert!(matches!(ClientFrame::decode(&negative), Err(FrameError::InvalidPayload(_))));
    }

    #[test]
    fn tells_malformed_unknown_and_invalid_apart() {
        assert!(matches!(ClientFrame::decode("{"), Err(FrameError::Malformed(_))));
        assert!(matches!(ClientFrame::decode("[1]"), Err(FrameError::Malformed(_))));
        assert_eq!(
            ClientFrame::decode(r#"{"type":"nope","payload":{}}"#),
            Err(FrameError::UnknownType("nope".into()))
        );
        let no_id =
            format!(r#"{{"type":"message.send","payload":{{"channel_id":"{CHANNEL}","content":"hi"}}}}"#);
        assert!(matches!(ClientFrame::decode(&no_id), Err(FrameError::InvalidPayload(_))));
        let too_long = format!(
            r#"{{"type":"message.send","id":"c","payload":{{"channel_id":"{CHANNEL}","content":"{}"}}}}"#,
            "x".repeat(MAX_CONTENT_CHARS + 1)
        );
        assert!(matches!(ClientFrame::decode(&too_long), Err(FrameError::InvalidPayload(_))));
        for control in ["\\u0000", "\\u001b[2J", "\\u0085"] {
            let text = format!(
                r#"{{"type":"message.send","id":"c","payload":{{"channel_id":"{CHANNEL}","content":"a{control}b"}}}}"#
            );
            assert!(matches!(ClientFrame::decode(&text), Err(FrameError::InvalidPayload(_))), "{control}");
        }
        let multi_line = format!(
            r#"{{"type":"message.send","id":"c","payload":{{"channel_id":"{CHANNEL}","content":"a\n\tb"}}}}"#
        );
        assert!(ClientFrame::decode(&multi_line).is_ok());
        let bad_channel = r#"{"type":"message.send","id":"c","payload":{"channel_id":"x","content":"a"}}"#;
        assert!(matches!(ClientFrame::decode(bad_channel), Err(FrameError::InvalidPayload(_))));
    }

    #[test]
    fn error_frames_say_whether_to_retry() {
        let json = ServerFrame::error(Some("c1".into()), ErrorCode::PublishFailed, "timed out").to_json();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["type"], "error");
        assert_eq!(value["id"], "c1");
        assert_eq!(value["payload"]["code"], "publish_failed");
        assert_eq!(value["payload"]["retryable"], true);
    }

    #[test]
    fn json_depth_counts_nesting_outside_strings_only() {
        assert!(!json_depth_exceeds(br#"{"a":[1,{"b":2}]}"#, 3));
        assert!(json_depth_exceeds(br#"{"a":[1,{"b":[2]}]}"#, 3));
        assert!(!json_depth_exceeds(br#"{"a":"[[[[\"[[[[{{"}"#, 1), "brackets inside a string");
        let deep = format!(
            r#"{{"type":"message.send","id":"x","payload":{}{}}}"#,
            "[".repeat(MAX_JSON_DEPTH),
            "]".repeat(MAX_JSON_DEPTH)
        );
        assert_eq!(ClientFrame::decode(&deep), Err(FrameError::TooDeep));
        assert_eq!(FrameError::TooDeep.code(), ErrorCode::MalformedFrame);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]
        #[test]
        fn decoding_arbitrary_text_never_panics(text in ".{0,200}") {
            let _ = ClientFrame::decode(&text);
            let _ = frame_id(&text);
        }

        #[test]
        fn decoding_arbitrary_sends_never_panics(id in ".{0,80}", content in ".{0,50}", kind in "[a-z.]{0,16}") {
            let text = serde_json::json!({"type": kind, "id": id, "payload": {"channel_id": CHANNEL, "content": content}}).to_string();
            if let Ok(ClientFrame::MessageSend { id, payload }) = ClientFrame::decode(&text) {
                prop_assert!(id.is_valid());
                prop_assert!(!payload.content.trim().is_empty());
                prop_assert!(!payload.content.contains('\0'));
            }
        }
    }
}
