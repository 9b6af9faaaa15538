//! What one socket (one user, in one channel) did and saw, for the measures and the checker;
//! and the compact key of a send's client id, which acks and deliveries are matched by.

use crate::measure::Tally;
use shared::ids::ChannelId;
use std::collections::{HashMap, HashSet};

/// What one user saw of one channel, and what it sent there.
#[derive(Debug)]
pub struct SocketRecord {
    pub index: usize,
    pub channel: ChannelId,
    /// The keys ([`send_key`]) of this user's acked sends into the channel, each once.
    pub acked: Vec<i64>,
    /// Each `message.new` of the channel, in arrival order, over every socket the user had.
    pub seen: Vec<Seen>,
    pub tally: Tally,
}

impl SocketRecord {
    pub fn new(index: usize, channel: ChannelId) -> Self {
        Self { index, channel, acked: Vec::new(), seen: Vec::new(), tally: Tally::default() }
    }
}

/// Each channel's acked sends (their [`send_key`]s) over all its members' records.
pub fn acked_by_channel(records: &[SocketRecord]) -> HashMap<ChannelId, HashSet<i64>> {
    let mut acked: HashMap<ChannelId, HashSet<i64>> = HashMap::new();
    for record in records {
        acked.entry(record.channel).or_default().extend(&record.acked);
    }
    acked
}

/// One delivery: its `seq`, the key of the send it carries, and whether it came in a `sync`
/// backlog the client asked for after a gap (rather than live, or in a resume's backlog,
/// which comes before anything live).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub seq: i64,
    pub key: i64,
    pub backlog: bool,
}

/// The client id of send `n` of user `index`: unique per sender and channel forever, as the
/// protocol asks, and the same for every resend of that send.
pub fn client_id(index: usize, n: u64) -> String {
    format!("s{index}-{n}")
}

/// The key of a client id made by [`client_id`]: `index << 32 | n`. Acks and deliveries are
/// matched by it rather than by message id, since the ack of a resend may rarely carry a
/// message id that is never stored (protocol §6, `message.ack`).
pub fn send_key(client_id: &str) -> Option<i64> {
    let (index, n) = client_id.strip_prefix('s')?.split_once('-')?;
    let (index, n): (u32, u32) = (index.parse().ok()?, n.parse().ok()?);
    Some(i64::from(index) << 32 | i64::from(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_tell_senders_and_sends_apart() {
        assert_eq!(send_key(&client_id(3, 7)), Some(3 << 32 | 7));
        assert_ne!(send_key(&client_id(1, 0)), send_key(&client_id(0, 1)));
        assert_eq!(send_key("c-0001"), None);
    }
}
