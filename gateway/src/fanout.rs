//! Delivery to sockets. The gateway holds one core NATS subscription per channel that has a
//! member connected here, and fans each delivery out in-process to that channel's sockets —
//! not one subscription per socket. It follows membership changes so that a user added to or
//! removed from a channel starts or stops receiving it at once. Typing signals share the
//! channel's subscription (`crate::typing`), and frames for one user's sockets (read
//! positions) come on a subject every gateway follows.

use crate::metrics::GatewayMetrics;
use crate::store::messages::log_after;
use crate::typing::TypingSet;
use crate::ws::ConnHandle;
use axum::extract::ws::Utf8Bytes;
use futures::StreamExt;
use shared::events::{
    CREATED_HEADER, FRAME_HEADER, MembershipChange, MembershipEvent, PRESENCE_HEADER, SEQ_HEADER,
    TYPING_HEADER, USER_HEADER,
};
use shared::ids::{ChannelId, ChannelSeq, UserId};
use shared::protocol::ServerFrame;
use shared::protocol::TypingUpdatePayload;
use shared::subjects::Subjects;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use tokio_util::sync::CancellationToken;

/// Sockets connected here, by channel and by user.
pub struct Fanout {
    nats: async_nats::Client,
    metrics: Arc<GatewayMetrics>,
    /// To fill holes in a channel's deliveries from the stored messages.
    db: sqlx::PgPool,
    subjects: Subjects,
    routes: Mutex<Routes>,
    shutdown: CancellationToken,
}

#[derive(Default)]
struct Routes {
    channels: HashMap<ChannelId, Arc<ChannelRoute>>,
    users: HashMap<UserId, HashMap<u64, ConnHandle>>,
}

/// One channel's local sockets and its subscription.
struct ChannelRoute {
    conns: RwLock<HashMap<u64, ConnHandle>>,
    /// Cancelled when the last local socket of the channel leaves: ends the subscription.
    stop: CancellationToken,
}

impl Fanout {
    pub fn new(
        nats: async_nats::Client,
        db: sqlx::PgPool,
        subjects: Subjects,
        metrics: Arc<GatewayMetrics>,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Self { nats, metrics, db, subjects, routes: Mutex::default(), shutdown })
    }

    /// Follows membership changes until shutdown.
    pub async fn follow_membership(self: Arc<Self>) -> Result<(), async_nats::SubscribeError> {
        let mut changes = self.nats.subscribe(self.subjects.membership()).await?;
        loop {
            let message = tokio::select! {
                _ = self.shutdown.cancelled() => return Ok(()),
                message = changes.next() => message,
            };
            let Some(message) = message else { return Ok(()) };
            match serde_json::from_slice::<MembershipEvent>(&message.payload) {
                Ok(event) => self.apply(&event).await,
                Err(error) => tracing::warn!(%error, "undecodable membership event"),
            }
        }
    }

    /// Sends frames published for one user (`AppState::send_to_user`) to their sockets here,
    /// until shutdown.
    pub async fn follow_user_frames(self: Arc<Self>) -> Result<(), async_nats::SubscribeError> {
        let mut frames = self.nats.subscribe(self.subjects.user_frames()).await?;
        loop {
            let message = tokio::select! {
                _ = self.shutdown.cancelled() => return Ok(()),
                message = frames.next() => message,
            };
            let Some(message) = message else { return Ok(()) };
            let user = message
                .headers
                .as_ref()
                .and_then(|h| h.get(USER_HEADER))
                .and_then(|v| v.as_str().parse().ok());
            let (Some(user), Ok(frame)) = (user, std::str::from_utf8(&message.payload)) else { continue };
            let frame = Utf8Bytes::from(frame);
            for conn in self.sockets_of(UserId(user)) {
                conn.deliver(frame.clone());
            }
        }
    }

    /// The sockets of `user` connected here.
    pub fn sockets_of(&self, user: UserId) -> Vec<ConnHandle> {
        let routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        routes.users.get(&user).map(|c| c.values().cloned().collect()).unwrap_or_default()
    }

    async fn apply(self: &Arc<Self>, event: &MembershipEvent) {
        for conn in self.sockets_of(event.user_id) {
            match event.change {
                MembershipChange::Joined => self.join(&conn, [event.channel_id]).await,
                MembershipChange::Left => {
                    conn.channels.write().unwrap_or_else(|e| e.into_inner()).remove(&event.channel_id);
                    self.unroute(conn.id, event.channel_id);
                    conn.forget_channel(event.channel_id);
                }
            }
        }
    }

    /// Registers a socket under its user, so it follows the user's membership changes from
    /// now on. Register before reading the user's channels, or a join in between is missed.
    pub fn register(&self, conn: &ConnHandle) {
        self.routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .users
            .entry(conn.user)
            .or_default()
            .insert(conn.id, conn.clone());
    }

    /// Lets a socket use and receive `channels`; returns once the subscriptions are made, so
    /// the socket gets every delivery announced after this.
    pub async fn join(self: &Arc<Self>, conn: &ConnHandle, channels: impl IntoIterator<Item = ChannelId>) {
        for channel in channels {
            let added = conn.channels.write().unwrap_or_else(|e| e.into_inner()).insert(channel);
            if added {
                self.route(conn, channel).await;
            }
        }
        let _ = self.nats.flush().await;
    }

    /// Removes a socket from every route.
    pub fn unregister(&self, conn: &ConnHandle) {
        let channels: HashSet<ChannelId> = conn.channels.read().unwrap_or_else(|e| e.into_inner()).clone();
        for channel in channels {
            self.unroute(conn.id, channel);
        }
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(user_conns) = routes.users.get_mut(&conn.user) {
            user_conns.remove(&conn.id);
            if user_conns.is_empty() {
                routes.users.remove(&conn.user);
            }
        }
    }

    /// Adds a socket to a channel's route, subscribing if it is the channel's first here.
    async fn route(self: &Arc<Self>, conn: &ConnHandle, channel: ChannelId) {
        let (route, is_new) = {
            let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
            let mut is_new = false;
            let route = routes
                .channels
                .entry(channel)
                .or_insert_with(|| {
                    is_new = true;
                    Arc::new(ChannelRoute { conns: RwLock::default(), stop: self.shutdown.child_token() })
                })
                .clone();
            route.conns.write().unwrap_or_else(|e| e.into_inner()).insert(conn.id, conn.clone());
            (route, is_new)
        };
        if !is_new {
            return;
        }
        match self.nats.subscribe(self.subjects.deliver(channel)).await {
            Ok(subscription) => {
                tokio::spawn(forward(route, subscription, channel, self.db.clone(), self.metrics.clone()));
            }
            Err(error) => {
                // Drop the route so the next socket of the channel tries again.
                tracing::error!(%channel, %error, "cannot subscribe to channel deliveries");
                let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
                if routes.channels.get(&channel).is_some_and(|r| Arc::ptr_eq(r, &route)) {
                    routes.channels.remove(&channel);
                }
            }
        }
    }

    /// Removes a socket from a channel's route, ending the subscription with its last socket.
    fn unroute(&self, conn: u64, channel: ChannelId) {
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        let Some(route) = routes.channels.get(&channel) else { return };
        let mut conns = route.conns.write().unwrap_or_else(|e| e.into_inner());
        conns.remove(&conn);
        if conns.is_empty() {
            drop(conns);
            route.stop.cancel();
            routes.channels.remove(&channel);
        }
    }
}

/// Forwards one channel's deliveries to its local sockets until the route stops. The frame is
/// built once per delivery and shared by every socket. A delivery whose `seq` was already
/// forwarded (a worker announcing a redelivered batch again) is dropped; a delivery past a
/// hole (a lost core NATS message) is preceded by the missing messages, read from Postgres,
/// so no socket sees `seq` n+2 before n+1.
async fn forward(
    route: Arc<ChannelRoute>,
    mut subscription: async_nats::Subscriber,
    channel: ChannelId,
    db: sqlx::PgPool,
    metrics: Arc<GatewayMetrics>,
) {
    let mut last_seq: i64 = 0;
    let mut typing = TypingSet::default();
    loop {
        let expiry = typing.next_expiry();
        let delivery = tokio::select! {
            _ = route.stop.cancelled() => break,
            _ = tokio::time::sleep_until(expiry.unwrap_or_else(tokio::time::Instant::now)), if expiry.is_some() => {
                let expired = typing.expire(tokio::time::Instant::now());
                send_typing(&route, channel, &typing, &expired);
                continue;
            }
            delivery = subscription.next() => delivery,
        };
        let Some(delivery) = delivery else { break };
        let typer = delivery
            .headers
            .as_ref()
            .and_then(|h| h.get(TYPING_HEADER))
            .and_then(|v| v.as_str().parse().ok());
        if let Some(typer) = typer.map(UserId) {
            if typing.start(typer, tokio::time::Instant::now()) {
                send_typing(&route, channel, &typing, &[typer]);
            }
            continue;
        }
        if delivery.headers.as_ref().is_some_and(|h| h.get(PRESENCE_HEADER).is_some()) {
            send_presence(&route, &delivery.payload);
            continue;
        }
        let Some(seq) = delivery
            .headers
            .as_ref()
            .and_then(|h| h.get(SEQ_HEADER))
            .and_then(|v| v.as_str().parse::<i64>().ok())
        else {
            tracing::warn!(%channel, "delivery without a seq dropped");
            continue;
        };
        if seq <= last_seq {
            continue;
        }
        if last_seq != 0 && seq > last_seq + 1 {
            metrics.gap_fills.inc();
            if !fill_gap(&route, channel, &db, last_seq, seq).await {
                // Forwarding on would skip the hole without anyone knowing: the route's
                // sockets are closed instead, and their clients resume with `sync`.
                metrics.gap_fills_failed.inc();
                close_route(&route, crate::ws::CLOSE_DELIVERIES_MISSED);
            }
        }
        let created_us = delivery.headers.as_ref().and_then(|h| h.get(CREATED_HEADER));
        if let Some(created_us) = created_us.and_then(|v| v.as_str().parse::<i64>().ok()) {
            let age_us = chrono::Utc::now().timestamp_micros() - created_us;
            metrics.send_deliver_seconds.observe(age_us.max(0) as f64 / 1e6);
        }
        last_seq = seq;
        let Ok(payload) = std::str::from_utf8(&delivery.payload) else { continue };
        // A change carries its whole frame; a new message only the message.
        let whole = delivery.headers.as_ref().is_some_and(|h| h.get(FRAME_HEADER).is_some());
        let frame = match whole {
            true => Utf8Bytes::from(payload),
            false => Utf8Bytes::from(format!(r#"{{"type":"message.new","payload":{payload}}}"#)),
        };
        send_to_route(&route, channel, ChannelSeq(seq), &frame);
    }
    let _ = subscription.unsubscribe().await;
}

fn send_to_route(route: &ChannelRoute, channel: ChannelId, seq: ChannelSeq, frame: &Utf8Bytes) {
    let conns = route.conns.read().unwrap_or_else(|e| e.into_inner());
    for conn in conns.values() {
        conn.deliver_message(channel, seq, frame.clone());
    }
}

/// Tells the route's sockets who is typing now, after `changed` started or stopped. A socket
/// of the only user who changed sees no difference (typers never see themselves) and gets
/// nothing.
fn send_typing(route: &ChannelRoute, channel: ChannelId, typing: &TypingSet, changed: &[UserId]) {
    let frame_for = |recipient: UserId| {
        let payload = TypingUpdatePayload { channel_id: channel, users: typing.users_but(recipient) };
        Utf8Bytes::from(ServerFrame::TypingUpdate { payload }.to_json())
    };
    // The frame of everyone not typing, built once.
    let shared = frame_for(UserId(uuid::Uuid::nil()));
    let conns = route.conns.read().unwrap_or_else(|e| e.into_inner());
    for conn in conns.values() {
        if changed == [conn.user] {
            continue;
        }
        conn.deliver(if typing.contains(conn.user) { frame_for(conn.user) } else { shared.clone() });
    }
}

/// Sends a `presence.update` to the route's sockets but the user's own; each socket drops it
/// if it says what it was told last.
fn send_presence(route: &ChannelRoute, payload: &[u8]) {
    let Ok(text) = std::str::from_utf8(payload) else { return };
    let Ok(ServerFrame::PresenceUpdate { payload: presence }) = serde_json::from_str(text) else { return };
    let frame = Utf8Bytes::from(text);
    let conns = route.conns.read().unwrap_or_else(|e| e.into_inner());
    for conn in conns.values().filter(|c| c.user != presence.user_id) {
        conn.deliver_presence(presence.user_id, presence.status, frame.clone());
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
                    send_to_route(route, channel, entry.seq, &Utf8Bytes::from(entry.frame));
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

/// Closes every socket of the route with `code`.
fn close_route(route: &ChannelRoute, code: u16) {
    let conns = route.conns.read().unwrap_or_else(|e| e.into_inner());
    for conn in conns.values() {
        conn.close(code);
    }
}

/// Largest hole filled from Postgres; past that, clients resume with `sync`.
const MAX_GAP_FILL: i64 = 1_000;
