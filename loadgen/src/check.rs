//! The verdict: per channel, every receiver's `seq`s in order, without duplicates or gaps,
//! and every acked message delivered to every member. Works from what the sockets saw alone,
//! so it needs no access to the cell's database (unlike `shared::local::load::check`). A user's
//! deliveries over all its sockets (before and after a reconnect) count as one sequence, so
//! a resume's backlog is checked against what came live before it.

use crate::record::{Seen, SocketRecord};
use serde::Serialize;
use std::collections::HashSet;

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Verdict {
    /// (acked message, member) pairs where the member never saw the message.
    pub lost: u64,
    /// Deliveries of a `seq` a socket had already seen.
    pub duplicated: u64,
    /// Deliveries of a `seq` lower than the one before for the same user (live deliveries and
    /// the backlogs of syncs asked for after a gap are each in order; a gap's backlog comes
    /// after the live message that showed the gap, and is merged by `seq`).
    pub reordered: u64,
    /// `seq`s missing between a socket's lowest and highest (any sender's).
    pub gaps: u64,
}

impl Verdict {
    pub fn clean(&self) -> bool {
        *self == Verdict::default()
    }
}

/// Checks every socket's deliveries against the acks of its channel.
pub fn check(records: &[SocketRecord]) -> Verdict {
    let acked = crate::record::acked_by_channel(records);
    let mut verdict = Verdict::default();
    for record in records {
        let seen: HashSet<i64> = record.seen.iter().map(|s| s.key).collect();
        let due = acked.get(&record.channel).map(|a| a.iter().filter(|id| !seen.contains(id)).count());
        verdict.lost += due.unwrap_or(0) as u64;
        order(&record.seen, &mut verdict);
    }
    verdict
}

/// Adds one user's duplicates, reorderings and gaps in one channel.
fn order(seen: &[Seen], verdict: &mut Verdict) {
    for backlog in [false, true] {
        let part: Vec<i64> = seen.iter().filter(|s| s.backlog == backlog).map(|s| s.seq).collect();
        verdict.reordered += part.windows(2).filter(|w| w[1] < w[0]).count() as u64;
    }
    let seqs: Vec<i64> = seen.iter().map(|s| s.seq).collect();
    let mut distinct = seqs.clone();
    distinct.sort_unstable();
    distinct.dedup();
    verdict.duplicated += (seqs.len() - distinct.len()) as u64;
    if let (Some(first), Some(last)) = (distinct.first(), distinct.last()) {
        verdict.gaps += (last - first + 1) as u64 - distinct.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::ids::ChannelId;

    fn record(channel: u128, acked: &[i64], seen: &[(i64, i64)]) -> SocketRecord {
        let mut record = SocketRecord::new(0, ChannelId(uuid::Uuid::from_u128(channel)));
        record.acked = acked.to_vec();
        record.seen = seen.iter().map(|&(seq, key)| Seen { seq, key, backlog: false }).collect();
        record
    }

    #[test]
    fn a_clean_run_is_clean() {
        let seen = [(1, 10), (2, 11)];
        let records = [record(1, &[10], &seen), record(1, &[11], &seen)];
        assert!(check(&records).clean());
    }

    #[test]
    fn counts_loss_duplicates_order_and_gaps() {
        let a = record(1, &[10, 11, 12], &[(1, 10), (3, 12), (1, 10)]);
        let b = record(1, &[], &[(2, 11), (1, 10), (3, 12)]);
        let verdict = check(&[a, b]);
        assert_eq!(verdict, Verdict { lost: 1, duplicated: 1, reordered: 2, gaps: 1 });
    }

    #[test]
    fn a_gaps_backlog_is_merged_by_seq() {
        let mut a = record(1, &[10, 11, 12], &[(3, 12)]);
        a.seen.extend([(1, 10), (2, 11)].map(|(seq, key)| Seen { seq, key, backlog: true }));
        assert!(check(&[a]).clean());
    }
}
