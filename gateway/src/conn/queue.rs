//! A socket's outbound queue: frames for its writer, bounded in bytes. Live frames
//! (deliveries, acks, errors) are charged to the socket's budget, `socket_queue_bytes`; past
//! it the socket is closed with 4008 rather than waited for, so a slow reader never slows
//! anyone else. A `sync`'s backlog is counted apart (it is capped by `sync_backlog_max`
//! instead), so a large resume over a slow link does not get a healthy client cut off.

use super::close::CLOSE_SLOW_CONSUMER;
use super::lane::{self, LaneRx, LaneTx};
use crate::metrics::GatewayMetrics;
use axum::extract::ws::Utf8Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use tokio_util::sync::CancellationToken;

/// What the writer gets: a frame (and whose budget it is charged to), or the end of the
/// socket, after everything queued before it.
pub enum Outbound {
    Frame { frame: Utf8Bytes, live: bool },
    Ping,
    Close,
}

/// The sending side of a socket's queue, and what the writer reports back.
pub struct Queue {
    outbound: LaneTx<Outbound>,
    metrics: Arc<GatewayMetrics>,
    /// Bytes of live frames queued or held and not yet written; bounded by `max_bytes`.
    live_bytes: AtomicUsize,
    /// Bytes of sync backlog queued and not yet written; a sync reads the next channel's
    /// backlog only once this is 0, so one backlog at most is in memory.
    backlog_bytes: AtomicUsize,
    /// Woken by the writer when `backlog_bytes` comes back to 0.
    backlog_drained: tokio::sync::Notify,
    /// Frames the writer has written, so silence on the socket can be told from a slow link.
    written: AtomicU64,
    /// Set when the socket is closing in order: nothing more is queued.
    finishing: AtomicBool,
    max_bytes: usize,
    /// Cancelled when the socket closes: the writer stops at once.
    pub closing: CancellationToken,
    close_code: AtomicU16,
}

impl Queue {
    /// A queue of `max_bytes` of live frames, and its receiving end for the writer.
    pub fn new(
        max_bytes: usize,
        metrics: Arc<GatewayMetrics>,
        default_close: u16,
    ) -> (Self, LaneRx<Outbound>) {
        // Unbounded as a lane, bounded in bytes by `live_bytes` (live frames) and by the
        // sync backlog cap (backlog frames).
        let (outbound, rx) = lane::lane();
        let queue = Self {
            outbound,
            metrics,
            live_bytes: AtomicUsize::new(0),
            backlog_bytes: AtomicUsize::new(0),
            backlog_drained: tokio::sync::Notify::new(),
            written: AtomicU64::new(0),
            finishing: AtomicBool::new(false),
            max_bytes,
            closing: CancellationToken::new(),
            close_code: AtomicU16::new(default_close),
        };
        (queue, rx)
    }

    /// Charges `bytes` of live frames to the socket's budget; past it, closes the socket with
    /// 4008 and says no.
    pub(super) fn charge(&self, bytes: usize) -> bool {
        if self.finishing.load(Ordering::Relaxed) {
            return false;
        }
        let max = self.max_bytes;
        let charged = self.live_bytes.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |queued| {
            (queued + bytes <= max).then_some(queued + bytes)
        });
        if charged.is_err() {
            self.close(CLOSE_SLOW_CONSUMER);
            return false;
        }
        true
    }

    /// Gives back `bytes` charged for frames that will not be written.
    pub(super) fn uncharge(&self, bytes: usize) {
        self.live_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Whether `bytes` more of live frames would take the budget past `max_bytes / 2`.
    pub(super) fn past_half(&self, bytes: usize) -> bool {
        self.live_bytes.load(Ordering::Relaxed) + bytes > self.max_bytes / 2
    }

    /// Queues a live frame (delivery, ack, error); past the byte budget the socket is closed
    /// with 4008 instead of waiting.
    pub fn deliver(&self, frame: Utf8Bytes) {
        if self.charge(frame.len()) {
            self.outbound.send(Outbound::Frame { frame, live: true });
        }
    }

    /// Queues a frame of a sync's backlog, outside the live budget (counted apart).
    pub(super) fn deliver_backlog(&self, frame: Utf8Bytes) {
        self.backlog_bytes.fetch_add(frame.len(), Ordering::Relaxed);
        self.outbound.send(Outbound::Frame { frame, live: false });
    }

    /// Moves a held frame (already charged) to the queue.
    pub(super) fn deliver_held(&self, frame: Utf8Bytes) {
        self.outbound.send(Outbound::Frame { frame, live: true });
    }

    /// Asks the writer for a ping.
    pub fn ping(&self) {
        self.outbound.send(Outbound::Ping);
    }

    /// Waits until the socket has written every backlog frame queued so far (or closes).
    pub async fn backlog_written(&self) {
        loop {
            // Registered before the check, so a wake-up between the two is not missed.
            let drained = self.backlog_drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self.backlog_bytes.load(Ordering::Relaxed) == 0 {
                return;
            }
            tokio::select! {
                _ = drained => {}
                _ = self.closing.cancelled() => return,
            }
        }
    }

    /// The writer wrote a frame of `bytes` (into the socket's buffer): no longer the
    /// gateway's memory.
    pub fn written(&self, bytes: usize, live: bool) {
        if live {
            self.live_bytes.fetch_sub(bytes, Ordering::Relaxed);
        } else if self.backlog_bytes.fetch_sub(bytes, Ordering::Relaxed) == bytes {
            self.backlog_drained.notify_waiters();
        }
        self.written.fetch_add(1, Ordering::Relaxed);
    }

    /// How many frames the writer has written so far.
    pub fn frames_written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Closes the socket with `code` once everything queued so far is written (unless it is
    /// being closed already).
    pub fn finish(&self, code: u16) {
        if !self.closing.is_cancelled() {
            self.close_code.store(code, Ordering::Relaxed);
            self.finishing.store(true, Ordering::Relaxed);
            self.outbound.send(Outbound::Close);
        }
    }

    /// Asks the writer to close the socket with `code` now, dropping what is queued (the
    /// first code asked for wins).
    pub fn close(&self, code: u16) {
        if !self.closing.is_cancelled() {
            self.close_code.store(code, Ordering::Relaxed);
            self.closing.cancel();
            if code == CLOSE_SLOW_CONSUMER {
                self.metrics.slow_consumer_closes.inc();
            }
        }
    }

    pub fn metrics(&self) -> &GatewayMetrics {
        &self.metrics
    }

    /// The code the socket closes (or closed) with.
    pub fn close_code(&self) -> u16 {
        self.close_code.load(Ordering::Relaxed)
    }

    #[cfg(test)]
    pub(super) fn live_bytes(&self) -> usize {
        self.live_bytes.load(Ordering::Relaxed)
    }
}
