//! The lane between a socket's senders (fan-out, its read loop, sync) and its writer: a
//! deque under a lock and a wake-up for the one reader. In place of tokio's unbounded mpsc,
//! whose channel keeps a first block of 32 slots (1.3 KB) allocated for a socket's whole life:
//! an idle socket's deque holds no buffer, and one a burst grew is given back once it drains.
//! Unbounded as a lane; the queue above bounds it in bytes.

use super::queue::Outbound;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// Room a drained deque may keep; past it the buffer goes back to the allocator.
const KEPT_SLOTS: usize = 16;

#[derive(Default)]
struct Shared {
    items: Mutex<VecDeque<Outbound>>,
    /// Woken on every push; holds one permit while the reader is not waiting.
    ready: Notify,
}

impl Shared {
    fn items(&self) -> MutexGuard<'_, VecDeque<Outbound>> {
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The senders' end.
pub struct LaneTx(Arc<Shared>);

/// The writer's end.
pub struct LaneRx(Arc<Shared>);

/// A new lane's two ends.
pub fn lane() -> (LaneTx, LaneRx) {
    let shared = Arc::new(Shared::default());
    (LaneTx(shared.clone()), LaneRx(shared))
}

impl LaneTx {
    pub fn send(&self, item: Outbound) {
        self.0.items().push_back(item);
        self.0.ready.notify_one();
    }
}

impl LaneRx {
    /// The next item, waiting for one.
    pub async fn recv(&mut self) -> Outbound {
        loop {
            if let Some(item) = self.try_recv() {
                return item;
            }
            // A push after the look above left a permit: this returns at once.
            self.0.ready.notified().await;
        }
    }

    /// The next item if one is queued.
    pub fn try_recv(&mut self) -> Option<Outbound> {
        let mut items = self.0.items();
        let item = items.pop_front();
        if items.is_empty() && items.capacity() > KEPT_SLOTS {
            items.shrink_to(KEPT_SLOTS);
        }
        item
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::ws::Utf8Bytes;

    fn frame(n: usize) -> Outbound {
        Outbound::Frame { frame: Utf8Bytes::from(n.to_string()), live: true }
    }

    fn number(item: Outbound) -> usize {
        match item {
            Outbound::Frame { frame, .. } => frame.as_str().parse().expect("a number"),
            _ => panic!("not a frame"),
        }
    }

    #[tokio::test]
    async fn items_come_out_in_order_and_a_waiting_reader_is_woken() {
        let (tx, mut rx) = lane();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..3 {
                got.push(number(rx.recv().await));
            }
            got
        });
        tokio::task::yield_now().await;
        for n in 1..=3 {
            tx.send(frame(n));
        }
        assert_eq!(reader.await.expect("the reader ends"), [1, 2, 3]);
    }

    #[test]
    fn a_drained_lane_gives_back_what_a_burst_grew() {
        let (tx, mut rx) = lane();
        for n in 0..1000 {
            tx.send(frame(n));
        }
        assert!(rx.0.items().capacity() >= 1000);
        let got: Vec<usize> = std::iter::from_fn(|| rx.try_recv().map(number)).collect();
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
        assert!(rx.0.items().capacity() <= KEPT_SLOTS);
        assert!(rx.try_recv().is_none());
    }
}
