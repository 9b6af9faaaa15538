//! Open-loop pacing: each sender's sends are due at fixed times computed from the start, so a
//! slow cell shows as latency from the scheduled time, never as a politely slower client.

use tokio::time::{Duration, Instant};

/// The due times of one sender: `start + offset + k * period`, for as long as they fall
/// before `end`. Senders are offset evenly inside one period so the total rate is smooth.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    start: Instant,
    end: Instant,
    period: Duration,
    offset: Duration,
}

impl Schedule {
    /// The schedule of sender `rank` of `senders` sharing `total_rate` sends per second.
    pub fn for_sender(start: Instant, end: Instant, total_rate: f64, senders: usize, rank: usize) -> Self {
        let senders = senders.max(1);
        let period = Duration::from_secs_f64(senders as f64 / total_rate);
        let offset = period.mul_f64(rank as f64 / senders as f64);
        Self { start, end, period, offset }
    }

    /// When send `k` is due, or `None` once past the end.
    pub fn at(&self, k: u64) -> Option<Instant> {
        let due = self.start + self.offset + self.period.mul_f64(k as f64);
        (due < self.end).then_some(due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_share_the_total_rate() {
        let start = Instant::now();
        let end = start + Duration::from_secs(2);
        let total: usize = (0..4)
            .map(|rank| {
                let s = Schedule::for_sender(start, end, 100.0, 4, rank);
                (0..).take_while(|k| s.at(*k).is_some()).count()
            })
            .sum();
        assert_eq!(total, 200);
    }
}
