//! What the fan-out baseline's sockets receive: each counts every message in its ledger and
//! times it from its send (the time it carries, on the run's one clock); the deliveries over
//! all sockets are counted as they come, which is what opens the senders' window.

use crate::baseline::fanout::frame;
use crate::baseline::fanout::ledger::SocketLedger;
use crate::measure::Latency;
use futures::{Stream, StreamExt};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;

/// Latency histograms the sockets record into: every socket of (c) records thousands of
/// deliveries, so one `Latency` each would grow to a ~94 KiB histogram each (0.9 GB at
/// 10,000 sockets).
const LATENCY_SHARDS: usize = 16;

/// Shared by every socket of a run.
#[derive(Debug)]
pub struct Progress {
    /// The instant send times are counted from.
    pub epoch: Instant,
    /// Sockets connected: each message is due at all of them.
    pub sockets: u64,
    delivered: AtomicU64,
    /// Woken each time the deliveries pass a multiple of `sockets` (a message's worth).
    advanced: Notify,
    latency: Vec<Mutex<Latency>>,
}

impl Progress {
    pub fn new(sockets: u64) -> Self {
        Self {
            epoch: Instant::now(),
            sockets: sockets.max(1),
            delivered: AtomicU64::new(0),
            advanced: Notify::new(),
            latency: (0..LATENCY_SHARDS).map(|_| Mutex::new(Latency::default())).collect(),
        }
    }

    /// Deliveries so far, over all sockets.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Messages' worth of deliveries so far: deliveries ÷ sockets.
    pub fn messages_delivered(&self) -> u64 {
        self.delivered() / self.sockets
    }

    /// Waits until `messages` messages' worth of deliveries came, at most `patience` past
    /// the last step towards it; false when they did not.
    pub async fn until_delivered(&self, messages: u64, patience: Duration) -> bool {
        loop {
            let advanced = self.advanced.notified();
            tokio::pin!(advanced);
            // Registered before the check, so a step between the two is not missed.
            advanced.as_mut().enable();
            if self.messages_delivered() >= messages {
                return true;
            }
            if tokio::time::timeout(patience, advanced).await.is_err() {
                return self.messages_delivered() >= messages;
            }
        }
    }

    fn count(&self, socket: usize, sent: Duration) {
        let now = self.epoch.elapsed();
        if let Ok(mut latency) = self.latency[socket % LATENCY_SHARDS].lock() {
            latency.record(now.saturating_sub(sent));
        }
        if (self.delivered.fetch_add(1, Ordering::Relaxed) + 1).is_multiple_of(self.sockets) {
            self.advanced.notify_waiters();
        }
    }

    /// Every socket's latencies, merged.
    pub fn latency(&self) -> Latency {
        let mut merged = Latency::default();
        for shard in &self.latency {
            if let Ok(shard) = shard.lock() {
                merged.merge(&shard);
            }
        }
        merged
    }
}

/// What one socket received.
#[derive(Debug)]
pub struct Received {
    pub ledger: SocketLedger,
    /// The socket ended (closed or failed) before the run did.
    pub closed_early: bool,
    pub last: Option<Instant>,
}

/// Receives on socket `index` until `finish` or the socket ends; hands the stream back.
pub async fn receive<S>(
    mut stream: S,
    index: usize,
    messages: u64,
    progress: &Progress,
    finish: &CancellationToken,
) -> (S, Received)
where
    S: Stream<Item = Result<Message, WsError>> + Unpin,
{
    let mut received = Received { ledger: SocketLedger::new(messages), closed_early: false, last: None };
    loop {
        let next = tokio::select! {
            biased;
            _ = finish.cancelled() => break,
            next = stream.next() => next,
        };
        match next {
            Some(Ok(Message::Text(text))) => {
                let parsed = frame::parse(text.as_str());
                received.ledger.record(parsed.map(|(i, _)| i));
                if let Some((_, sent)) = parsed {
                    progress.count(index, sent);
                }
                received.last = Some(Instant::now());
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => {
                received.closed_early = true;
                break;
            }
        }
    }
    (stream, received)
}
