//! What the run measures: HDR histograms of send→ack and send→deliver latency (microseconds,
//! from the scheduled time), counters per socket, and shared progress for the settle phase.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Highest latency a histogram holds (longer ones are recorded as this): one hour.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// A socket that records more latencies than this gets a histogram of its own; below it, its
/// samples are kept as they are. A histogram of these bounds is ~94 KiB, so one per socket
/// from the start cost 10,000 quiet sockets 2–3 GB of loadgen's memory (three each) and the
/// CPU of touching it: their latencies came out of loadgen's own overload, not the cell's.
const SAMPLES_BEFORE_HISTOGRAM: usize = 512;

/// Latencies in microseconds, as an HDR histogram of 3 significant digits: a few kept as they
/// are until there are enough to need one.
#[derive(Debug, Clone, Default)]
pub struct Latency {
    samples: Vec<u32>,
    histogram: Option<Box<Histogram<u32>>>,
}

fn new_histogram() -> Box<Histogram<u32>> {
    Box::new(Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("static bounds are valid"))
}

impl Latency {
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(MAX_LATENCY_US).clamp(1, MAX_LATENCY_US);
        self.record_us(us);
    }

    fn record_us(&mut self, us: u64) {
        match self.histogram.as_mut() {
            Some(histogram) => histogram.saturating_record(us),
            // Within u32: MAX_LATENCY_US is below 2^32.
            None if self.samples.len() < SAMPLES_BEFORE_HISTOGRAM => self.samples.push(us as u32),
            None => {
                let mut histogram = new_histogram();
                for sample in self.samples.drain(..) {
                    histogram.saturating_record(u64::from(sample));
                }
                histogram.saturating_record(us);
                self.samples = Vec::new();
                self.histogram = Some(histogram);
            }
        }
    }

    pub fn merge(&mut self, other: &Latency) {
        for &sample in &other.samples {
            self.record_us(u64::from(sample));
        }
        if let Some(theirs) = &other.histogram {
            // Same bounds on both sides, so adding cannot fail.
            let _ = self.histogram.get_or_insert_with(new_histogram).add(theirs.as_ref());
        }
    }

    pub fn percentiles(&self) -> Percentiles {
        let mut all = self.histogram.clone().unwrap_or_else(new_histogram);
        for &sample in &self.samples {
            all.saturating_record(u64::from(sample));
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            count: all.len(),
            mean: all.mean() / 1000.0,
            p50: ms(all.value_at_quantile(0.50)),
            p90: ms(all.value_at_quantile(0.90)),
            p99: ms(all.value_at_quantile(0.99)),
            p999: ms(all.value_at_quantile(0.999)),
            max: ms(all.max()),
        }
    }
}

/// Percentiles of a latency histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// Counters and histograms of one socket, merged over all of them at the end.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Sends whose due time came.
    pub scheduled: u64,
    /// Sends written to the socket.
    pub sent: u64,
    pub acked: u64,
    /// Sends answered by an `error` frame.
    pub failed: u64,
    /// Due while the window was full: not sent (open loop: never delayed).
    pub skipped_window_full: u64,
    /// Sent but neither acked nor failed by the end.
    pub unacked: u64,
    /// `message.new` frames received for the socket's channel.
    pub delivered: u64,
    /// Error frames by code (`socket_closed` when the socket ended under the load).
    pub errors: BTreeMap<String, u64>,
    pub ack: Latency,
    pub deliver: Latency,
    pub recovery: Recovery,
}

/// How a client came back after its socket dropped (reconnect-storm).
#[derive(Debug, Clone, Default)]
pub struct Recovery {
    /// Sockets that ended under the load (each drop of each client).
    pub dropped: u64,
    /// Sockets opened again after a drop.
    pub reconnects: u64,
    /// Connection attempts after drops, the successful ones included.
    pub attempts: u64,
    /// Drops after which no socket could be opened within the bounds.
    pub gave_up: u64,
    /// Sends written again, with the same client id, after a reconnect.
    pub resends: u64,
    /// Drops recovered from: reconnected, `sync.done` of the channel, and every send that
    /// was unacked at the drop answered.
    pub caught_up: u64,
    /// Of those, caught up within [`CATCH_UP_TARGET`] of the drop.
    pub caught_up_in_time: u64,
    /// Drop → caught up.
    pub catch_up: Latency,
}

/// Issue 14's bound on drop → caught up.
pub const CATCH_UP_TARGET: Duration = Duration::from_secs(10);

impl Recovery {
    pub fn caught_up_after(&mut self, took: Duration) {
        self.caught_up += 1;
        self.caught_up_in_time += u64::from(took <= CATCH_UP_TARGET);
        self.catch_up.record(took);
    }

    pub fn merge(&mut self, other: &Recovery) {
        self.dropped += other.dropped;
        self.reconnects += other.reconnects;
        self.attempts += other.attempts;
        self.gave_up += other.gave_up;
        self.resends += other.resends;
        self.caught_up += other.caught_up;
        self.caught_up_in_time += other.caught_up_in_time;
        self.catch_up.merge(&other.catch_up);
    }
}

impl Tally {
    pub fn count_error(&mut self, code: &str) {
        *self.errors.entry(code.to_owned()).or_default() += 1;
    }

    pub fn merge(&mut self, other: &Tally) {
        self.scheduled += other.scheduled;
        self.sent += other.sent;
        self.acked += other.acked;
        self.failed += other.failed;
        self.skipped_window_full += other.skipped_window_full;
        self.unacked += other.unacked;
        self.delivered += other.delivered;
        for (code, n) in &other.errors {
            *self.errors.entry(code.clone()).or_default() += n;
        }
        self.ack.merge(&other.ack);
        self.deliver.merge(&other.deliver);
        self.recovery.merge(&other.recovery);
    }
}

/// Shared across sockets while the run settles: when nothing is in flight and every acked
/// message reached every member, the run is over before its settle deadline.
#[derive(Debug, Default)]
pub struct Progress {
    in_flight: AtomicU64,
    sent: AtomicU64,
    acked: AtomicU64,
    delivered: AtomicU64,
    expected: AtomicU64,
}

impl Progress {
    pub fn sent(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    /// An acked send, due to `members` sockets.
    pub fn acked(&self, members: usize) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.acked.fetch_add(1, Ordering::Relaxed);
        self.expected.fetch_add(members as u64, Ordering::Relaxed);
    }

    pub fn failed(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn delivered(&self) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
    }

    pub fn settled(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0
            && self.delivered.load(Ordering::Relaxed) >= self.expected.load(Ordering::Relaxed)
    }

    /// Sent, acked, delivered and expected deliveries so far, for the live progress line.
    pub fn counts(&self) -> [u64; 4] {
        [&self.sent, &self.acked, &self.delivered, &self.expected].map(|a| a.load(Ordering::Relaxed))
    }

    /// Waits until nothing is in flight and every acked message reached every member, at
    /// most `limit` (half of it after a Ctrl-C, `stop`). True when settled.
    pub async fn settle(&self, limit: Duration, stop: &CancellationToken) -> bool {
        let deadline = Instant::now() + limit;
        while !self.settled() && Instant::now() < deadline {
            if stop.is_cancelled() && Instant::now() + limit / 2 > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.settled()
    }

    /// Sends written and not answered yet.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn expected(&self) -> u64 {
        self.expected.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_kept_as_they_are_and_in_a_histogram_give_the_same_percentiles() {
        let (mut few, mut many, mut merged) = (Latency::default(), Latency::default(), Latency::default());
        for ms in 1..=100 {
            few.record(Duration::from_millis(ms));
        }
        for _ in 0..10 {
            for ms in 1..=100 {
                many.record(Duration::from_millis(ms));
            }
        }
        assert!(few.histogram.is_none() && many.histogram.is_some());
        let (f, m) = (few.percentiles(), many.percentiles());
        assert_eq!((f.count, m.count), (100, 1000));
        assert!((f.p50 - m.p50).abs() < 0.1 && (f.p99 - m.p99).abs() < 0.1, "{f:?} {m:?}");
        merged.merge(&few);
        merged.merge(&many);
        merged.merge(&few);
        let all = merged.percentiles();
        assert_eq!(all.count, 1200);
        assert!((all.p50 - 50.0).abs() < 0.5 && (all.max - 100.0).abs() < 0.5, "{all:?}");
    }

    #[test]
    fn percentiles_are_in_milliseconds() {
        let mut latency = Latency::default();
        for ms in 1..=100 {
            latency.record(Duration::from_millis(ms));
        }
        let p = latency.percentiles();
        assert_eq!(p.count, 100);
        assert!((p.p50 - 50.0).abs() < 0.5, "{p:?}");
        assert!((p.max - 100.0).abs() < 0.5, "{p:?}");
    }
}
