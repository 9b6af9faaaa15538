//! NATS subject names of a cell and the partitioning of channels: `partition = hash(channel_id)
//! mod P`, where the hash is 64-bit FNV-1a over the channel UUID's 16 bytes. Every gateway and
//! worker of a cell must use the same prefix and partition count, or per-channel order breaks.

use crate::ids::ChannelId;

/// Which partition (and so which consumer, and which one worker) a channel's messages go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition(pub u16);

impl Partition {
    pub fn of(channel: ChannelId, partitions: u16) -> Self {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in channel.0.as_bytes() {
            hash ^= *byte as u64;
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Partition((hash % partitions.max(1) as u64) as u16)
    }
}

/// Subject names under one prefix (`chat` by default; tests use their own so they can share
/// servers).
#[derive(Clone, Debug)]
pub struct Subjects {
    prefix: String,
}

impl Subjects {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self { prefix: prefix.into() }
    }

    /// The prefix itself, which also names the cell's keys in Redis.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Everything the message stream captures.
    pub fn stream_filter(&self) -> String {
        format!("{}.msg.>", self.prefix)
    }

    /// Where a gateway publishes a message for `channel`.
    pub fn publish(&self, channel: ChannelId, partitions: u16) -> String {
        let partition = Partition::of(channel, partitions);
        format!("{}.msg.{}.{channel}", self.prefix, partition.0)
    }

    /// What one partition's consumer filters on.
    pub fn partition_filter(&self, partition: Partition) -> String {
        format!("{}.msg.{}.*", self.prefix, partition.0)
    }

    /// Core NATS subject where workers announce a channel's committed messages.
    pub fn deliver(&self, channel: ChannelId) -> String {
        format!("{}.deliver.{channel}", self.prefix)
    }

    /// Where a worker puts a message of `partition` it could not persist.
    pub fn dead_letter(&self, partition: Partition) -> String {
        format!("{}.dead.{}", self.prefix, partition.0)
    }

    /// Everything the dead-letter stream captures from the workers.
    pub fn dead_letter_filter(&self) -> String {
        format!("{}.dead.>", self.prefix)
    }

    /// Core NATS subject of membership changes, followed by every gateway.
    pub fn membership(&self) -> String {
        format!("{}.membership", self.prefix)
    }

    /// Core NATS subject of frames for every socket of one user (`USER_HEADER`), wherever it
    /// is connected; followed by every gateway. Read positions travel here.
    pub fn user_frames(&self) -> String {
        format!("{}.users", self.prefix)
    }

    /// Core NATS subject of revoked sessions, followed by every gateway.
    pub fn sessions_revoked(&self) -> String {
        format!("{}.sessions.revoked", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn publish_subject_matches_its_partition_filter_only() {
        let subjects = Subjects::new("chat");
        let channel = ChannelId::new_random();
        let partition = Partition::of(channel, 16);
        let subject = subjects.publish(channel, 16);
        assert_eq!(subject, format!("chat.msg.{}.{channel}", partition.0));
        assert!(subject.starts_with(subjects.partition_filter(partition).trim_end_matches('*')));
    }

    #[test]
    fn channels_spread_over_all_partitions() {
        let mut counts = [0usize; 16];
        for _ in 0..16_000 {
            counts[Partition::of(ChannelId::new_random(), 16).0 as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 700), "uneven spread: {counts:?}");
    }

    proptest! {
        #[test]
        fn partition_is_stable_and_in_range(bytes in any::<[u8; 16]>(), p in 1u16..512) {
            let channel = ChannelId(uuid::Uuid::from_bytes(bytes));
            let partition = Partition::of(channel, p);
            prop_assert!(partition.0 < p);
            prop_assert_eq!(partition, Partition::of(channel, p));
        }
    }
}
