//! One channel's deliveries to its local sockets: a task per channel route that reads the
//! channel's core NATS subscription, drops what was forwarded already, fills holes from
//! Postgres (or closes the route's sockets when it cannot), and hands each message, typing
//! signal and presence change to the route.

use super::route::ChannelRoute;
use super::typing::TypingSet;
use crate::conn::close::CLOSE_DELIVERIES_MISSED;
use crate::metrics::GatewayMetrics;
use crate::store::messages::log_after;
use axum::extract::ws::Utf8Bytes;
use futures::StreamExt;
use shared::events::{
    CREATED_HEADER, FRAME_HEADER, PRESENCE_HEADER, RECEIPT_HEADER, SEQ_HEADER, TYPING_HEADER,
};
use shared::ids::{ChannelId, ChannelSeq, UserId};
use std::sync::Arc;

/// Forwards one channel's deliveries to its local sockets until the route stops. The frame is
/// built once per delivery and shared by every socket. A delivery whose `seq` was already
/// forwarded (a worker announcing a redelivered batch again) is dropped; a delivery past a
/// hole (a lost core NATS message) is preceded by the missing messages, read from Postgres,
/// so no socket sees `seq` n+2 before n+1.
pub async fn forward(
    route: Arc<ChannelRoute>,
    mut subscription: async_nats::Subscriber,
    channel: ChannelId,
    db: sqlx::PgPool,
    metrics: Arc<GatewayMetrics>,
) {
    let mut forwarder = Forwarder { route, channel, db, metrics, last_seq: 0, typing: TypingSet::default() };
    loop {
        let expiry = forwarder.typing.next_expiry();
        let delivery = tokio::select! {
            _ = forwarder.route.stop.cancelled() => break,
            _ = tokio::time::sleep_until(expiry.unwrap_or_else(tokio::time::Instant::now)), if expiry.is_some() => {
                forwarder.expire_typers();
                continue;
            }
            delivery = subscription.next() => delivery,
        };
        let Some(delivery) = delivery else { break };
        forwarder.handle(delivery).await;
    }
    let _ = subscription.unsubscribe().await;
}

/// The state of one channel's forwarding: the last `seq` forwarded and who is typing.
struct Forwarder {
    route: Arc<ChannelRoute>,
    channel: ChannelId,
    db: sqlx::PgPool,
    metrics: Arc<GatewayMetrics>,
    last_seq: i64,
    typing: TypingSet,
}

/// The value of header `name` of `delivery`, if it has one.
fn header<'a>(delivery: &'a async_nats::Message, name: &str) -> Option<&'a str> {
    delivery.headers.as_ref()?.get(name).map(|v| v.as_str())
}

impl Forwarder {
    fn expire_typers(&mut self) {
        let expired = self.typing.expire(tokio::time::Instant::now());
        self.route.send_typing(self.channel, &self.typing, &expired);
    }

    /// One delivery of the channel's subject: a typing signal, a presence change, a read
    /// receipt or a message (new, or a change with its whole frame).
    async fn handle(&mut self, delivery: async_nats::Message) {
        if let Some(typer) = header(&delivery, TYPING_HEADER).and_then(|v| v.parse().ok()).map(UserId) {
            if self.typing.start(typer, tokio::time::Instant::now()) {
                self.route.send_typing(self.channel, &self.typing, &[typer]);
            }
            return;
        }
        if header(&delivery, PRESENCE_HEADER).is_some() {
            self.route.send_presence(&delivery.payload);
            return;
        }
        if let Some(reader) = header(&delivery, RECEIPT_HEADER).and_then(|v| v.parse().ok()).map(UserId) {
            self.route.send_receipt(reader, &delivery.payload);
            return;
        }
        let Some(seq) = header(&delivery, SEQ_HEADER).and_then(|v| v.parse::<i64>().ok()) else {
            tracing::warn!(channel = %self.channel, "delivery without a seq dropped");
            return;
        };
        if seq <= self.last_seq {
            return;
        }
        if self.last_seq != 0 && seq > self.last_seq + 1 {
            self.fill_hole_before(seq).await;
        }
        if let Some(created_us) = header(&delivery, CREATED_HEADER).and_then(|v| v.parse::<i64>().ok()) {
            let age_us = chrono::Utc::now().timestamp_micros() - created_us;
            self.metrics.send_deliver_seconds.observe(age_us.max(0) as f64 / 1e6);
        }
        self.last_seq = seq;
        let Ok(payload) = std::str::from_utf8(&delivery.payload) else { return };
        // A change carries its whole frame; a new message only the message.
        let frame = match header(&delivery, FRAME_HEADER).is_some() {
            true => Utf8Bytes::from(payload),
            false => Utf8Bytes::from(format!(r#"{{"type":"message.new","payload":{payload}}}"#)),
        };
        self.route.send_message(self.channel, ChannelSeq(seq), &frame);
    }

    /// Fills the hole between the last `seq` forwarded and `seq`.
    async fn fill_hole_before(&self, seq: i64) {
        self.metrics.gap_fills.inc();
        if !fill_gap(&self.route, self.channel, &self.db, self.last_seq, seq).await {
            // Forwarding on would skip the hole without anyone knowing: the route's
            // sockets are closed instead, and their clients resume with `sync`.
            self.metrics.gap_fills_failed.inc();
            self.route.close_all(CLOSE_DELIVERIES_MISSED);
        }
    }
}

/// Sends the stored messages between `after` and `before` (exclusive) to the route; false
/// when they could not be read (after a few tries) or the hole is too large to fill.
async fn fill_gap(
    route: &ChannelRoute,
    channel: ChannelId,
    db: &sqlx::PgPool,
    after: i64,
    before: i64,
) -> bool {
    let missing = before - after - 1;
    if missing > MAX_GAP_FILL {
        tracing::warn!(%channel, after, before, "gap too large to fill; the channel's sockets resume with sync");
        return false;
    }
    tracing::info!(%channel, after, before, "filling a gap in channel deliveries");
    let mut retries = GAP_FILL_RETRIES.iter();
    loop {
        let read = tokio::time::timeout(GAP_FILL_TIMEOUT, log_after(db, channel, after, missing)).await;
        match read.unwrap_or_else(|_| Err(sqlx::Error::PoolTimedOut)) {
            Ok(log) => {
                for entry in log.into_iter().filter(|e| e.seq.0 < before) {
                    route.send_message(channel, entry.seq, &Utf8Bytes::from(entry.frame));
                }
                return true;
            }
            Err(error) => match retries.next() {
                Some(pause) => {
                    tracing::debug!(%channel, %error, "reading a gap failed; retrying");
                    tokio::time::sleep(*pause).await;
                }
                None => {
                    tracing::warn!(%channel, %error, "gap not filled; the channel's sockets resume with sync");
                    return false;
                }
            },
        }
    }
}

/// How long one try to read a hole may take (the pool's own acquire timeout is longer).
const GAP_FILL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
/// Pauses between tries to read a hole from Postgres: with the tries, at most about 15 s in
/// all, while the route's later deliveries wait in its subscription.
const GAP_FILL_RETRIES: [std::time::Duration; 3] = [
    std::time::Duration::from_millis(100),
    std::time::Duration::from_millis(400),
    std::time::Duration::from_secs(2),
];

/// Largest hole filled from Postgres; past that, clients resume with `sync`.
const MAX_GAP_FILL: i64 = 1_000;
