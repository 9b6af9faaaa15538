//! How the protocol shows what is stored: a message with its sender, attachments and
//! reactions (`message.new` and the history API alike), and a user's presence. Both
//! directions use these; they import no other part of the protocol.

use crate::ids::{ChannelId, ChannelSeq, ClientMsgId, MessageId, UploadId, UserId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PresenceView {
    pub user_id: UserId,
    pub status: PresenceStatus,
    /// When their last socket closed (absent while online, or if never seen).
    pub last_seen_at: Option<DateTime<Utc>>,
}
