//! Snowflake message ids: 41 bits of milliseconds since the project epoch, 10 bits of node id
//! (unique per gateway, from config) and 12 bits of sequence within the millisecond. Ids of one
//! node strictly increase, and ids of different nodes never collide.

use crate::ids::MessageId;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// 2025-01-01T00:00:00Z in Unix milliseconds.
pub const EPOCH_MS: u64 = 1_735_689_600_000;
const NODE_BITS: u32 = 10;
const SEQ_BITS: u32 = 12;
pub const MAX_NODE_ID: u16 = (1 << NODE_BITS) - 1;
const MAX_SEQ: u64 = (1 << SEQ_BITS) - 1;

#[derive(Debug, thiserror::Error)]
#[error("snowflake node id {0} is above {MAX_NODE_ID}")]
pub struct NodeIdOutOfRange(pub u16);

/// Hands out ids for one node. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct SnowflakeGenerator {
    node: u64,
    /// (last millisecond used, last sequence used in it)
    state: Mutex<(u64, u64)>,
}

impl SnowflakeGenerator {
    pub fn new(node: u16) -> Result<Self, NodeIdOutOfRange> {
        if node > MAX_NODE_ID {
            return Err(NodeIdOutOfRange(node));
        }
        Ok(Self { node: node as u64, state: Mutex::new((0, 0)) })
    }

    /// The next id. If the clock steps back, ids keep increasing from the last millisecond
    /// used; if 4,096 ids are taken within one millisecond, the id borrows the next one.
    pub fn next_id(&self) -> MessageId {
        let now = now_ms().saturating_sub(EPOCH_MS);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (last_ms, last_seq) = *state;
        let (ms, seq) = if now > last_ms {
            (now, 0)
        } else if last_seq < MAX_SEQ {
            (last_ms, last_seq + 1)
        } else {
            (last_ms + 1, 0)
        };
        *state = (ms, seq);
        MessageId(((ms << (NODE_BITS + SEQ_BITS)) | (self.node << SEQ_BITS) | seq) as i64)
    }
}

/// The node id that made `id`.
pub fn node_of(id: MessageId) -> u16 {
    ((id.0 as u64 >> SEQ_BITS) & MAX_NODE_ID as u64) as u16
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids_of_one_node_strictly_increase_even_past_4096_per_millisecond() {
        let generator = SnowflakeGenerator::new(7).unwrap();
        let ids: Vec<_> = (0..20_000).map(|_| generator.next_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert!(ids.iter().all(|id| node_of(*id) == 7 && id.0 > 0));
    }

    #[test]
    fn node_ids_above_ten_bits_are_refused() {
        assert!(SnowflakeGenerator::new(1024).is_err());
        assert!(SnowflakeGenerator::new(1023).is_ok());
    }

    proptest! {
        #[test]
        fn different_nodes_never_collide(a in 0u16..=MAX_NODE_ID, b in 0u16..=MAX_NODE_ID, n in 1usize..300) {
            prop_assume!(a != b);
            let (ga, gb) = (SnowflakeGenerator::new(a).unwrap(), SnowflakeGenerator::new(b).unwrap());
            let mut seen = std::collections::HashSet::new();
            for _ in 0..n {
                prop_assert!(seen.insert(ga.next_id()));
                prop_assert!(seen.insert(gb.next_id()));
            }
        }
    }
}
