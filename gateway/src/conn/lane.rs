//! The lane between a socket's senders (fan-out, its read loop, sync) and its writer: a
//! deque under a lock and a wake-up for the one reader. In place of tokio's unbounded mpsc,
//! whose channel keeps a first block of 32 slots (1.3 KB) allocated for a socket's whole life:
//! an idle socket's deque holds no buffer, and one a burst grew is given back once it drains.
//! Unbounded as a lane; the queue above bounds it in bytes.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// Room a drained deque may keep; past it the buffer goes back to the allocator.
const KEPT_SLOTS: usize = 16;

struct Shared<T> {
    items: Mutex<VecDeque<T>>,
    /// Woken on every push; holds one permit while the reader is not waiting.
    ready: Notify,
}

impl<T> Shared<T> {
    fn items(&self) -> MutexGuard<'_, VecDeque<T>> {
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The senders' end.
pub struct LaneTx<T>(Arc<Shared<T>>);

/// The writer's end.
pub struct LaneRx<T>(Arc<Shared<T>>);

/// A new lane's two ends.
pub fn lane<T>() -> (LaneTx<T>, LaneRx<T>) {
    let shared = Arc::new(Shared { items: Mutex::new(VecDeque::new()), ready: Notify::new() });
    (LaneTx(shared.clone()), LaneRx(shared))
}

impl<T> LaneTx<T> {
    pub fn send(&self, item: T) {
        self.0.items().push_back(item);
        self.0.ready.notify_one();
    }
}

impl<T> LaneRx<T> {
    /// The next item, waiting for one.
    pub async fn recv(&mut self) -> T {
        loop {
            if let Some(item) = self.try_recv() {
                return item;
            }
            // A push after the look above left a permit: this returns at once.
            self.0.ready.notified().await;
        }
    }

    /// The next item if one is queued.
    pub fn try_recv(&mut self) -> Option<T> {
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

    #[tokio::test]
    async fn items_come_out_in_order_and_a_waiting_reader_is_woken() {
        let (tx, mut rx) = lane::<usize>();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..3 {
                got.push(rx.recv().await);
            }
            got
        });
        tokio::task::yield_now().await;
        for n in 1..=3 {
            tx.send(n);
        }
        assert_eq!(reader.await.expect("the reader ends"), [1, 2, 3]);
    }

    #[test]
    fn a_drained_lane_gives_back_what_a_burst_grew() {
        let (tx, mut rx) = lane::<usize>();
        for n in 0..1000 {
            tx.send(n);
        }
        assert!(rx.0.items().capacity() >= 1000);
        let got: Vec<usize> = std::iter::from_fn(|| rx.try_recv()).collect();
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
        assert!(rx.0.items().capacity() <= KEPT_SLOTS);
        assert!(rx.try_recv().is_none());
    }
}
