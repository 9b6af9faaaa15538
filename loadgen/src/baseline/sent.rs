//! When each baseline message was published, kept by index so a consumer can time a message
//! from its publish to its ack without anything extra in the payload.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Publish instants of `n` messages, as microseconds since an epoch (0: not published).
#[derive(Debug)]
pub struct SentTimes {
    epoch: Instant,
    at_us: Vec<AtomicU64>,
}

impl SentTimes {
    pub fn new(n: usize) -> Self {
        Self { epoch: Instant::now(), at_us: (0..n).map(|_| AtomicU64::new(0)).collect() }
    }

    /// Notes that message `i` is published now.
    pub fn mark(&self, i: usize) {
        let us = self.epoch.elapsed().as_micros().max(1) as u64;
        if let Some(slot) = self.at_us.get(i) {
            slot.store(us, Ordering::Relaxed);
        }
    }

    /// How long ago message `i` was published, if it was.
    pub fn since(&self, i: usize, now: Instant) -> Option<Duration> {
        let us = self.at_us.get(i)?.load(Ordering::Relaxed);
        (us > 0).then(|| now.duration_since(self.epoch).saturating_sub(Duration::from_micros(us)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpublished_and_unknown_messages_have_no_time() {
        let sent = SentTimes::new(2);
        sent.mark(1);
        sent.mark(7);
        assert!(sent.since(0, Instant::now()).is_none());
        assert!(sent.since(1, Instant::now()).is_some());
        assert!(sent.since(7, Instant::now()).is_none());
    }
}
