//! The baselines' traffic: messages as a gateway puts them into the stream — a real
//! `StreamMessage` with the scenario's content length, JSON-encoded, on the subject of one
//! channel per partition, with the cell's headers (`Nats-Msg-Id` = the cell's dedup key, and a
//! `traceparent`) — so the bytes and the broker's work per message are representative. The
//! insert baseline stores the same messages.

use crate::baseline::error::BaselineError;
use crate::content::content;
use async_nats::jetstream::message::PublishMessage;
use shared::events::{StreamMessage, TRACE_HEADER, new_traceparent};
use shared::ids::{ChannelId, ClientMsgId, MessageId, UserId};
use shared::protocol::{ContentType, SenderView};
use shared::subjects::{Partition, Subjects};
use std::time::Duration;

/// Channel ids tried, at most, to find one of each partition.
const SEARCH_LIMIT: u128 = 1_000_000;
/// Message ids count up from here (snowflake-sized numbers, as the cell's are).
const MESSAGE_ID_BASE: i64 = 1 << 60;
/// What a scenario message's content starts with: `lg <µs since the epoch> ` of a send one
/// second into the run, so the padding makes it the same length as the scenario's.
const CONTENT_OFFSET: Duration = Duration::from_secs(1);

/// The messages of one baseline run.
#[derive(Debug, Clone)]
pub struct Traffic {
    /// Per partition: one channel of it and its publish subject.
    channels: Vec<(ChannelId, String)>,
    sender: SenderView,
    content: String,
}

impl Traffic {
    /// Messages of `content_bytes` of content over `partitions` channels (one per partition)
    /// under the subject `prefix`.
    pub fn new(prefix: &str, partitions: u16, content_bytes: usize) -> Result<Self, BaselineError> {
        let subjects = Subjects::new(prefix);
        let channels = channels_per_partition(partitions)?
            .into_iter()
            .map(|channel| (channel, subjects.publish(channel, partitions)))
            .collect();
        let sender =
            SenderView { id: UserId::new_random(), username: format!("{prefix}-0"), avatar_url: None };
        Ok(Self { channels, sender, content: content(CONTENT_OFFSET, content_bytes) })
    }

    /// The publish subjects, one per partition.
    pub fn subjects(&self) -> impl Iterator<Item = &str> {
        self.channels.iter().map(|(_, subject)| subject.as_str())
    }

    pub fn partitions(&self) -> usize {
        self.channels.len()
    }

    /// The `i`-th message: channel `i mod partitions`, client id `b<i>`.
    pub fn message(&self, i: usize) -> StreamMessage {
        let (channel, _) = &self.channels[i % self.channels.len()];
        StreamMessage {
            message_id: MessageId(MESSAGE_ID_BASE + i as i64),
            channel_id: *channel,
            sender: self.sender.clone(),
            client_msg_id: ClientMsgId(format!("b{i}")),
            content: self.content.clone(),
            content_type: ContentType::Text,
            reply_to: None,
            created_at: chrono::Utc::now(),
            mentions: Vec::new(),
            mentions_channel: false,
            attachments: Vec::new(),
        }
    }

    /// The `i`-th message as the gateway publishes it: subject and message with its headers.
    pub fn publish(&self, i: usize) -> Result<(String, PublishMessage), BaselineError> {
        let message = self.message(i);
        let subject = self.channels[i % self.channels.len()].1.clone();
        let publish = PublishMessage::build()
            .payload(serde_json::to_vec(&message)?.into())
            .message_id(message.dedup_key())
            .header(TRACE_HEADER, new_traceparent().as_str());
        Ok((subject, publish))
    }

    /// Bytes of one encoded message's payload (headers not counted).
    pub fn payload_bytes(&self) -> Result<usize, BaselineError> {
        Ok(serde_json::to_vec(&self.message(0))?.len())
    }
}

/// The index of a baseline message from its `Nats-Msg-Id` (`sender:channel:b<i>`).
pub fn index_of(message_id: &str) -> Option<usize> {
    message_id.rsplit(':').next()?.strip_prefix('b')?.parse().ok()
}

/// For each partition in order, the first channel id (counting up from 1) that hashes to it.
fn channels_per_partition(partitions: u16) -> Result<Vec<ChannelId>, BaselineError> {
    let mut found: Vec<Option<ChannelId>> = vec![None; partitions.max(1) as usize];
    let mut missing = found.len();
    for n in 1..=SEARCH_LIMIT {
        let channel = ChannelId(uuid::Uuid::from_u128(n));
        let slot = &mut found[Partition::of(channel, partitions).0 as usize];
        if slot.is_none() {
            *slot = Some(channel);
            missing -= 1;
            if missing == 0 {
                break;
            }
        }
    }
    found
        .into_iter()
        .enumerate()
        .map(|(p, channel)| channel.ok_or(BaselineError::NoChannel(p as u16)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_channel_per_partition_on_its_own_subject() {
        let traffic = Traffic::new("lgb1", 16, 64).expect("16 partitions are found");
        assert_eq!(traffic.partitions(), 16);
        let subjects = Subjects::new("lgb1");
        for (p, (channel, subject)) in traffic.channels.iter().enumerate() {
            assert_eq!(Partition::of(*channel, 16).0 as usize, p);
            let filter = subjects.partition_filter(Partition(p as u16));
            assert!(subject.starts_with(filter.trim_end_matches('*')), "{subject} vs {filter}");
        }
    }

    #[test]
    fn messages_carry_their_index_and_the_scenario_content_length() {
        let traffic = Traffic::new("lgb2", 4, 200).expect("found");
        let message = traffic.message(4242);
        assert_eq!(message.content.len(), 200);
        assert_eq!(index_of(&message.dedup_key()), Some(4242));
        assert_eq!(message.channel_id, traffic.message(4242 % 4).channel_id);
        assert!(traffic.payload_bytes().expect("encodes") > 200);
    }

    #[test]
    fn foreign_message_ids_have_no_index() {
        assert_eq!(index_of("u:c:s0-12"), None);
        assert_eq!(index_of("bx"), None);
    }
}
