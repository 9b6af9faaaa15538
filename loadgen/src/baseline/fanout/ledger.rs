//! Exactly-once accounting of the fan-out baseline: per socket, one bit per message, so a
//! delivery is told from a duplicate; over all sockets, what was due against what came.

use serde::Serialize;

/// What one socket received, by message index.
#[derive(Debug, Clone, Default)]
pub struct SocketLedger {
    seen: Vec<u64>,
    messages: u64,
    pub distinct: u64,
    pub duplicated: u64,
    /// Text that was no message of this run (or an index past the last).
    pub unexpected: u64,
}

impl SocketLedger {
    /// A ledger for messages `0..messages`.
    pub fn new(messages: u64) -> Self {
        Self { seen: vec![0; messages.div_ceil(64) as usize], messages, ..Default::default() }
    }

    /// Counts a delivery of message `index` (none: not a message).
    pub fn record(&mut self, index: Option<u64>) {
        let Some(index) = index.filter(|i| *i < self.messages) else {
            self.unexpected += 1;
            return;
        };
        let (word, bit) = ((index / 64) as usize, 1u64 << (index % 64));
        if self.seen[word] & bit == 0 {
            self.seen[word] |= bit;
            self.distinct += 1;
        } else {
            self.duplicated += 1;
        }
    }
}

/// Every sent message at every socket once, or how not.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct FanoutLedger {
    /// Messages sent × sockets connected.
    pub expected: u64,
    /// Deliveries of a message a socket had not had yet.
    pub delivered: u64,
    /// `expected − delivered`.
    pub missing: u64,
    /// Deliveries of a message the socket had already had.
    pub duplicated: u64,
    pub unexpected: u64,
}

impl FanoutLedger {
    /// The ledger of `sockets` (of `due` sockets: one that never reported is all missing),
    /// `sent` messages due at each.
    pub fn reconcile(sent: u64, due: u64, sockets: &[SocketLedger]) -> Self {
        let expected = sent * due;
        let delivered = sockets.iter().map(|s| s.distinct).sum();
        Self {
            expected,
            delivered,
            missing: expected.saturating_sub(delivered),
            duplicated: sockets.iter().map(|s| s.duplicated).sum(),
            unexpected: sockets.iter().map(|s| s.unexpected).sum(),
        }
    }

    pub fn clean(&self) -> bool {
        self.missing == 0 && self.duplicated == 0 && self.unexpected == 0 && self.delivered == self.expected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_once_at_every_socket_is_clean() {
        let sockets: Vec<SocketLedger> = (0..3)
            .map(|_| {
                let mut ledger = SocketLedger::new(130);
                (0..130).rev().for_each(|i| ledger.record(Some(i)));
                ledger
            })
            .collect();
        let ledger = FanoutLedger::reconcile(130, 3, &sockets);
        assert!(ledger.clean(), "{ledger:?}");
        assert_eq!((ledger.expected, ledger.delivered), (390, 390));
    }

    #[test]
    fn counts_missing_duplicated_and_unexpected() {
        let mut a = SocketLedger::new(4);
        [0, 1, 1, 3, 4].into_iter().for_each(|i| a.record(Some(i)));
        a.record(None);
        let ledger = FanoutLedger::reconcile(4, 3, &[a, SocketLedger::new(4)]);
        assert_eq!(
            ledger,
            FanoutLedger { expected: 12, delivered: 3, missing: 9, duplicated: 1, unexpected: 2 }
        );
        assert!(!ledger.clean());
    }
}
