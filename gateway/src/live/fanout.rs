//! Delivery to sockets. The gateway holds one core NATS subscription per channel that has a
//! member connected here, and fans each delivery out in-process to that channel's sockets —
//! not one subscription per socket. It follows membership changes so that a user added to or
//! removed from a channel starts or stops receiving it at once. Typing signals share the
//! channel's subscription (`super::typing`, `super::forward`), and frames for one user's sockets (read
//! positions) come on a subject every gateway follows.

use super::forward::forward;
use super::joined;
use super::route::ChannelRoute;
use crate::conn::ConnHandle;
use crate::metrics::GatewayMetrics;
use axum::extract::ws::Utf8Bytes;
use futures::StreamExt;
use shared::events::{MembershipChange, MembershipEvent, RECEIPT_HEADER, USER_HEADER, publish_on_channel};
use shared::ids::{ChannelId, ChannelSeq, UserId};
use shared::protocol::ServerFrame;
use shared::subjects::Subjects;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
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

    /// Sends frames published for one user ([`Fanout::send_to_user`]) to their sockets here,
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

    /// Tells every gateway of the cell that `user` joined or left `channel`.
    pub async fn announce_membership(
        &self,
        channel: ChannelId,
        user: UserId,
        change: MembershipChange,
        last_seq: ChannelSeq,
    ) {
        let event = MembershipEvent { channel_id: channel, user_id: user, change, last_seq };
        let Ok(payload) = serde_json::to_vec(&event) else { return };
        if let Err(error) = self.nats.publish(self.subjects.membership(), payload.into()).await {
            tracing::warn!(%error, "membership change not announced");
        }
    }

    /// Sends `frame` to every socket of `user`, on every gateway of the cell.
    pub async fn send_to_user(&self, user: UserId, frame: &ServerFrame) {
        if let Err(error) = shared::events::publish_to_user(&self.nats, &self.subjects, user, frame).await {
            tracing::warn!(%error, %user, "frame for a user's sockets not published");
        }
    }

    /// Publishes a read receipt of `reader` on `channel`'s delivery subject: every gateway
    /// with sockets in the channel hands it to them (core NATS; a socket not connected now
    /// reads positions from `GET /channels/{id}/reads`).
    pub async fn publish_receipt(&self, channel: ChannelId, reader: UserId, frame: &ServerFrame) {
        let receipt = publish_on_channel(
            &self.nats,
            &self.subjects,
            channel,
            RECEIPT_HEADER,
            reader,
            frame.to_json().into(),
        );
        if let Err(error) = receipt.await {
            tracing::debug!(%error, %channel, "receipt not published");
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
                MembershipChange::Joined => self.join_late(&conn, event.channel_id, event.last_seq).await,
                MembershipChange::Left => self.leave(&conn, event.channel_id),
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

    /// Stops a socket using and receiving `channel`, which its user left.
    pub fn leave(&self, conn: &ConnHandle, channel: ChannelId) {
        conn.channels.write().unwrap_or_else(|e| e.into_inner()).remove(&channel);
        self.unroute(conn.id, channel);
        conn.forget_channel(channel);
    }

    /// Lets an open socket use and receive `channel`, which its user joined when its last
    /// `seq` was `joined_at`; what the channel stored since comes first (`super::joined`).
    /// From the membership change, or from a socket whose send came first.
    pub async fn join_late(self: &Arc<Self>, conn: &ConnHandle, channel: ChannelId, joined_at: ChannelSeq) {
        let added = conn.channels.write().unwrap_or_else(|e| e.into_inner()).insert(channel);
        if !added {
            return;
        }
        // Live messages wait from here until the catch-up has sent what came before them.
        conn.hold_channel(channel);
        self.route(conn, channel).await;
        let _ = self.nats.flush().await;
        tokio::spawn(joined::catch_up(conn.clone(), self.db.clone(), channel, joined_at));
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
                    Arc::new(ChannelRoute::new(self.shutdown.child_token()))
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
