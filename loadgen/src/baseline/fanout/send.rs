//! The fan-out baseline's senders: sender `r` of `s` sends messages `r, r + s, r + 2s, …`,
//! each as soon as the window lets it (at most `window` messages ahead of what has reached
//! every socket, so the sockets' queues never fill) and, with a rate, not before its time.

use crate::baseline::fanout::frame;
use crate::baseline::fanout::receive::Progress;
use crate::baseline::fanout::sockets::ClientSocket;
use futures::SinkExt;
use futures::stream::SplitSink;
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// How long a sender waits for a message's worth of deliveries before it gives up.
pub const STALL_LIMIT: Duration = Duration::from_secs(10);

pub type Sink = SplitSink<ClientSocket, Message>;

/// What every sender sends.
#[derive(Debug, Clone, Copy)]
pub struct SendPlan {
    pub messages: u64,
    pub senders: u64,
    /// Messages ahead of the deliveries, at most.
    pub window: u64,
    /// Messages per second over all senders; none: as fast as the window allows.
    pub rate: Option<f64>,
    pub bytes: usize,
    pub deadline: Instant,
}

impl SendPlan {
    /// When message `i` is due, from `start`.
    pub fn due(&self, start: Instant, i: u64) -> Instant {
        match self.rate {
            Some(rate) => start + Duration::from_secs_f64(i as f64 / rate),
            None => start,
        }
    }

    /// Messages' worth of deliveries there must be before message `i` goes.
    pub fn needs_delivered(&self, i: u64) -> u64 {
        (i + 1).saturating_sub(self.window)
    }
}

/// What one sender did.
#[derive(Debug, Default)]
pub struct Sent {
    pub sent: u64,
    pub first: Option<Instant>,
    /// The deliveries stopped coming (or the socket failed) before everything was sent.
    pub stalled: bool,
}

/// Sends the messages of sender `rank`, until done, the deadline or `stop`.
pub async fn send(
    sink: &mut Sink,
    rank: u64,
    plan: SendPlan,
    progress: &Progress,
    start: Instant,
    stop: &CancellationToken,
) -> Sent {
    let mut sent = Sent::default();
    let mut i = rank;
    while i < plan.messages && !stop.is_cancelled() {
        if !progress.until_delivered(plan.needs_delivered(i), STALL_LIMIT).await {
            sent.stalled = true;
            break;
        }
        tokio::time::sleep_until(plan.due(start, i)).await;
        if Instant::now() >= plan.deadline {
            break;
        }
        let text = frame::text(i, progress.epoch.elapsed(), plan.bytes);
        if sink.send(Message::Text(text.into())).await.is_err() {
            sent.stalled = true;
            break;
        }
        sent.first.get_or_insert_with(Instant::now);
        sent.sent += 1;
        i += plan.senders;
    }
    sent
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(rate: Option<f64>) -> SendPlan {
        SendPlan { messages: 10, senders: 2, window: 4, rate, bytes: 200, deadline: Instant::now() }
    }

    #[test]
    fn the_window_holds_a_message_until_enough_reached_every_socket() {
        let p = plan(None);
        assert_eq!((p.needs_delivered(0), p.needs_delivered(3)), (0, 0));
        assert_eq!((p.needs_delivered(4), p.needs_delivered(9)), (1, 6));
    }

    #[test]
    fn a_rate_spaces_the_messages_and_none_sends_at_once() {
        let start = Instant::now();
        assert_eq!(plan(Some(100.0)).due(start, 50), start + Duration::from_millis(500));
        assert_eq!(plan(None).due(start, 50), start);
    }
}
