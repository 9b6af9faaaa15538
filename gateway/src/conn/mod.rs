//! A socket as the rest of the gateway sees it: who it is, which channels it may use, its
//! outbound queue and its per-channel cursors. A low floor of its own, so fan-out, sync and
//! presence reach a socket without importing the code that runs it (`crate::ws`).

pub mod close;
pub mod cursors;
pub mod lane;
pub mod queue;

use crate::metrics::GatewayMetrics;
use axum::extract::ws::Utf8Bytes;
use cursors::{BacklogSend, Cursors};
use queue::Queue;
use shared::ids::{ChannelId, ChannelSeq, UserId};
use shared::protocol::{ErrorCode, PresenceStatus, ServerFrame};
use std::collections::{HashMap, HashSet};
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Users whose last told presence a socket remembers, at most.
const MAX_PRESENCE_TOLD: usize = 1024;

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

/// A handle on one socket, cheap to clone.
#[derive(Clone)]
pub struct ConnHandle(Arc<Conn>);

/// One socket.
pub struct Conn {
    pub id: u64,
    pub user: UserId,
    /// The session of the token the socket was opened with (refreshes keep it).
    pub session: uuid::Uuid,
    pub channels: RwLock<HashSet<ChannelId>>,
    pub queue: Queue,
    cursors: Cursors,
    /// A running sync and one waiting, at most.
    pub syncs: Arc<tokio::sync::Semaphore>,
    /// Serialises the socket's syncs.
    pub sync_lock: tokio::sync::Mutex<()>,
    /// The last presence told to this socket per user, so a repeat is not sent again.
    presence_told: Mutex<HashMap<UserId, PresenceStatus>>,
}

impl Deref for ConnHandle {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        &self.0
    }
}

impl ConnHandle {
    /// A socket of `user` in `session` whose live frames may take `queue_max_bytes`, and the
    /// receiving end of its queue, for its writer.
    pub fn new(
        user: UserId,
        session: uuid::Uuid,
        queue_max_bytes: usize,
        metrics: Arc<GatewayMetrics>,
    ) -> (Self, lane::LaneRx<queue::Outbound>) {
        let (queue, rx) = Queue::new(queue_max_bytes, metrics, close::CLOSE_RESTART);
        let conn = Conn {
            id: NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed),
            user,
            session,
            channels: RwLock::default(),
            queue,
            cursors: Cursors::default(),
            syncs: Arc::new(tokio::sync::Semaphore::new(2)),
            sync_lock: tokio::sync::Mutex::default(),
            presence_told: Mutex::default(),
        };
        (Self(Arc::new(conn)), rx)
    }
}

impl Conn {
    /// Queues a live frame (delivery, ack, error); past the byte budget the socket is closed
    /// with 4008 instead of waiting.
    pub fn deliver(&self, frame: Utf8Bytes) {
        self.queue.deliver(frame);
    }

    /// Queues `frame`, encoded, as a live frame.
    pub fn deliver_frame(&self, frame: &ServerFrame) {
        self.deliver(Utf8Bytes::from(frame.to_json()));
    }

    /// Queues an `error` frame answering frame `id`.
    pub fn deliver_error(&self, id: Option<String>, code: ErrorCode, message: impl Into<String>) {
        self.deliver_frame(&ServerFrame::error(id, code, message));
    }

    /// Queues a channel's message unless this socket already got its `seq`; during a sync of
    /// the channel the message is held instead. Called in `seq` order per channel.
    pub fn deliver_message(&self, channel: ChannelId, seq: ChannelSeq, frame: Utf8Bytes) {
        self.cursors.deliver_message(&self.queue, channel, seq, frame);
    }

    /// Starts holding the channel's live messages (a sync is reading its backlog).
    pub fn hold_channel(&self, channel: ChannelId) {
        self.cursors.hold_channel(channel);
    }

    /// Holds the channel's live messages until the socket's first frame (a `sync`, usually),
    /// or until they take half the socket's budget.
    pub fn hold_until_first_frame(&self, channel: ChannelId) {
        self.cursors.hold_until_first_frame(channel);
    }

    /// Ends a sync's hold: `backlog` sends what it has, then the held messages after it go out
    /// (see [`Cursors::release_channel`]).
    pub fn release_channel(
        &self,
        channel: ChannelId,
        backlog: impl FnOnce(ChannelSeq, BacklogSend<'_>) -> Option<ChannelSeq>,
    ) {
        self.cursors.release_channel(&self.queue, channel, ChannelSeq(1), backlog);
    }

    /// Ends a late join's hold: `backlog`, the messages stored after the join at `joined_at`,
    /// then the held messages after it.
    pub fn release_joined(
        &self,
        channel: ChannelId,
        joined_at: ChannelSeq,
        backlog: impl FnOnce(ChannelSeq, BacklogSend<'_>) -> Option<ChannelSeq>,
    ) {
        self.cursors.release_channel(&self.queue, channel, ChannelSeq(joined_at.0 + 1), backlog);
    }

    /// Releases every held channel but those in `keep`, whose holds a sync will release.
    pub fn release_all_but(&self, keep: &HashSet<ChannelId>) {
        self.cursors.release_all_but(&self.queue, keep);
    }

    /// Forgets a channel the socket no longer receives.
    pub fn forget_channel(&self, channel: ChannelId) {
        self.queue.uncharge(self.cursors.forget_channel(channel));
    }

    /// Waits until the socket has written every backlog frame queued so far (or closes).
    pub async fn backlog_written(&self) {
        self.queue.backlog_written().await;
    }

    /// Asks the writer to close the socket with `code` now, dropping what is queued (the
    /// first code asked for wins).
    pub fn close(&self, code: u16) {
        self.queue.close(code);
    }

    /// Whether the socket is closing or closed.
    pub fn is_closing(&self) -> bool {
        self.queue.closing.is_cancelled()
    }

    /// The socket's name among its user's open sockets, unique in the cell.
    pub fn lease_id(&self, node_id: u16) -> String {
        format!("{node_id}:{}", self.id)
    }

    /// Queues a `presence.update` unless it is what this socket was told last about `user`.
    pub fn deliver_presence(&self, user: UserId, status: PresenceStatus, frame: Utf8Bytes) {
        let mut told = self.presence_told.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded: past this many users, start over (a repeat may then be sent again).
        if told.len() >= MAX_PRESENCE_TOLD && !told.contains_key(&user) {
            told.clear();
        }
        if told.insert(user, status) != Some(status) {
            drop(told);
            self.deliver(frame);
        }
    }

    pub fn is_member(&self, channel: ChannelId) -> bool {
        self.channels.read().unwrap_or_else(|e| e.into_inner()).contains(&channel)
    }

    /// The channels the socket may use, now.
    pub fn channel_list(&self) -> Vec<ChannelId> {
        self.channels.read().unwrap_or_else(|e| e.into_inner()).iter().copied().collect()
    }
}

#[cfg(test)]
mod tests;
