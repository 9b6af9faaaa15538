//! Exactly-once accounting of the consume baseline: the stream sequences the PubAcks named,
//! against the sequences the consumers acknowledged.

use serde::Serialize;
use std::collections::HashMap;

/// Each acked publish consumed once, or how it was not.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Ledger {
    /// Distinct sequences the PubAcks named.
    pub expected: u64,
    /// Of those, how many were consumed (at least once).
    pub consumed: u64,
    /// Of those, how many were never consumed.
    pub missing: u64,
    /// Consumptions beyond the first of a sequence.
    pub duplicated: u64,
    /// Consumed sequences no PubAck named (a publish whose PubAck was lost, say).
    pub unexpected: u64,
}

impl Ledger {
    pub fn clean(&self) -> bool {
        self.missing == 0 && self.duplicated == 0 && self.unexpected == 0
    }
}

/// Counts every consumed sequence against the published ones.
pub fn reconcile(published: &[u64], consumed: &[u64]) -> Ledger {
    let mut counts: HashMap<u64, u64> = published.iter().map(|seq| (*seq, 0)).collect();
    let mut unexpected = 0;
    for seq in consumed {
        match counts.get_mut(seq) {
            Some(count) => *count += 1,
            None => unexpected += 1,
        }
    }
    let seen = counts.values().filter(|c| **c > 0).count() as u64;
    Ledger {
        expected: counts.len() as u64,
        consumed: seen,
        missing: counts.len() as u64 - seen,
        duplicated: counts.values().map(|c| c.saturating_sub(1)).sum(),
        unexpected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_once_is_clean() {
        let ledger = reconcile(&[1, 2, 3], &[3, 1, 2]);
        assert!(ledger.clean(), "{ledger:?}");
        assert_eq!((ledger.expected, ledger.consumed), (3, 3));
    }

    #[test]
    fn counts_missing_duplicated_and_unexpected() {
        let ledger = reconcile(&[1, 2, 3, 4], &[1, 1, 1, 2, 9]);
        assert_eq!(ledger, Ledger { expected: 4, consumed: 2, missing: 2, duplicated: 2, unexpected: 1 });
        assert!(!ledger.clean());
    }
}
