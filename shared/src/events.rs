//! What travels over NATS between the cell's processes: the message a gateway puts into the
//! stream, the delivery a worker announces after commit, and membership changes gateways
//! follow to route deliveries.

use crate::ids::{ChannelId, ChannelSeq, ClientMsgId, MessageId, UserId};
use crate::protocol::{ContentType, SenderView};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Header carrying a delivery's `seq`, so a gateway can order and de-duplicate deliveries
/// without parsing the payload.
pub const SEQ_HEADER: &str = "Chat-Seq";

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
