//! What travels over NATS between the cell's processes: the message a gateway puts into the
//! stream, the delivery a worker announces after commit, membership changes gateways follow
//! to route deliveries, revoked sessions whose sockets they close, and frames for one user's
//! sockets.

use crate::ids::{ChannelId, ChannelSeq, ClientMsgId, MessageId, UserId};
use crate::protocol::{AttachmentView, ContentType, SenderView};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A change to a stored message: a client's change frame makes it, so it lives with the protocol.
pub use crate::protocol::Change;

/// Header carrying a delivery's `seq`, so a gateway can order and de-duplicate deliveries
/// without parsing the payload.
pub const SEQ_HEADER: &str = "Chat-Seq";

/// Header of a delivery carrying when its message was received by a gateway (Unix
/// microseconds), for the send→deliver latency.
pub const CREATED_HEADER: &str = "Chat-Created-Us";

/// Header of a typing signal on a channel's delivery subject: the typing user's id. Such a
/// message has no payload and no `seq`: typing never touches the stream or Postgres.
pub const TYPING_HEADER: &str = "Chat-Typing";

/// Header of a presence change on a channel's delivery subject: the user whose presence
/// changed (the payload is the `presence.update` frame). No `seq`, never stored.
pub const PRESENCE_HEADER: &str = "Chat-Presence";

/// Header of a read receipt on a channel's delivery subject: the reader (the payload is the
/// `receipt.updated` frame). No `seq`, never stored: Postgres has the position itself.
pub const RECEIPT_HEADER: &str = "Chat-Receipt";

/// Header of a frame on the user-frames subject: the user whose sockets get it.
pub const USER_HEADER: &str = "Chat-User";

/// Publishes `frame` for every socket of `user`, on every gateway of the cell (the
/// user-frames subject, with [`USER_HEADER`]). Core NATS: a socket not connected now misses it.
pub async fn publish_to_user(
    nats: &async_nats::Client,
    subjects: &crate::subjects::Subjects,
    user: UserId,
    frame: &crate::protocol::ServerFrame,
) -> Result<(), async_nats::PublishError> {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(USER_HEADER, user.to_string().as_str());
    nats.publish_with_headers(subjects.user_frames(), headers, frame.to_json().into()).await
}

/// Publishes a live signal of `user` on `channel`'s delivery subject: `header` (the
/// [`TYPING_HEADER`], [`PRESENCE_HEADER`] or [`RECEIPT_HEADER`]) names them, `payload` is the
/// frame the members' sockets get (empty for typing). Core NATS, no `seq`, never stored:
/// every gateway with sockets in the channel hands it to them.
pub async fn publish_on_channel(
    nats: &async_nats::Client,
    subjects: &crate::subjects::Subjects,
    channel: crate::ids::ChannelId,
    header: &'static str,
    user: UserId,
    payload: bytes::Bytes,
) -> Result<(), async_nats::PublishError> {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(header, user.to_string().as_str());
    nats.publish_with_headers(subjects.deliver(channel), headers, payload).await
}

/// Header of a stream message that is a [`StreamChange`] (value `1`); without it, the stream
/// message is a [`StreamMessage`].
pub const CHANGE_HEADER: &str = "Chat-Change";

/// Header of a delivery whose payload is a whole frame (a change: `message.updated`,
/// `message.deleted`, `reaction.updated`); without it, the payload is the `message.new`'s
/// message.
pub const FRAME_HEADER: &str = "Chat-Frame";

/// W3C trace context header: set by the gateway on the publish of each send, carried by the
/// worker onto the delivery, so one message can be followed through every process's logs.
pub const TRACE_HEADER: &str = "traceparent";

/// A new W3C `traceparent` (version 00, sampled) with a random trace id.
pub fn new_traceparent() -> String {
    let trace: u128 = rand::random();
    let span: u64 = rand::random();
    format!("00-{trace:032x}-{span:016x}-01")
}

/// The trace id inside a `traceparent`.
pub fn trace_id(traceparent: &str) -> &str {
    traceparent.split('-').nth(1).unwrap_or(traceparent)
}

/// A message as a gateway publishes it into the stream; the worker gives it its `seq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamMessage {
    pub message_id: MessageId,
    pub channel_id: ChannelId,
    pub sender: SenderView,
    pub client_msg_id: ClientMsgId,
    pub content: String,
    pub content_type: ContentType,
    pub reply_to: Option<MessageId>,
    pub created_at: DateTime<Utc>,
    /// Channel members named with `@username`, resolved by the gateway.
    #[serde(default)]
    pub mentions: Vec<UserId>,
    #[serde(default)]
    pub mentions_channel: bool,
    /// The sender's uploads, checked and described by the gateway.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentView>,
}

/// A change to a stored message (edit, delete, reaction), as a gateway publishes it into the
/// stream on the channel's partition, after the new messages it may follow. The worker checks
/// it again against Postgres, applies it and gives it the channel's next `seq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamChange {
    pub channel_id: ChannelId,
    pub message_id: MessageId,
    pub actor: UserId,
    /// The frame's `id`: with `actor` and `channel_id`, the idempotency key.
    pub client_msg_id: ClientMsgId,
    pub change: Change,
    pub created_at: DateTime<Utc>,
}

impl StreamChange {
    /// The JetStream de-duplication key: apart from sends' (`chg:` first), so a change that
    /// reuses a send's `id`, or the other way round, is neither dropped nor acked as the other.
    pub fn dedup_key(&self) -> String {
        format!("chg:{}", dedup_key(self.actor, self.channel_id, &self.client_msg_id))
    }
}

impl StreamMessage {
    /// The JetStream de-duplication key (`Nats-Msg-Id`): the same triple as the database's
    /// unique key, so a resend within the duplicate window never even reaches a worker.
    pub fn dedup_key(&self) -> String {
        dedup_key(self.sender.id, self.channel_id, &self.client_msg_id)
    }
}

pub fn dedup_key(sender: UserId, channel: ChannelId, client_msg_id: &ClientMsgId) -> String {
    format!("{sender}:{channel}:{client_msg_id}")
}

/// A change of channel membership, published by whoever made it so that every gateway can
/// start or stop routing the channel to that user's sockets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MembershipEvent {
    pub channel_id: ChannelId,
    pub user_id: UserId,
    pub change: MembershipChange,
    /// The channel's last `seq` when the change was made.
    pub last_seq: ChannelSeq,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MembershipChange {
    Joined,
    Left,
}

/// Sessions (logins: a refresh-token family, the `sid` of its access tokens) that were
/// revoked — logout, refresh-token reuse, password change, account deletion — published by
/// whoever revoked them so that every gateway refuses their tokens and closes their sockets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionsRevoked {
    pub user_id: UserId,
    pub sessions: Vec<uuid::Uuid>,
}
