//! One channel's route on this gateway: its local sockets, and what is sent to all of them —
//! each frame built once and shared by every socket.

use super::typing::TypingSet;
use crate::conn::ConnHandle;
use axum::extract::ws::Utf8Bytes;
use shared::ids::{ChannelId, ChannelSeq, UserId};
use shared::protocol::{ServerFrame, TypingUpdatePayload};
use std::collections::HashMap;
use std::sync::RwLock;
use tokio_util::sync::CancellationToken;

/// One channel's local sockets and its subscription.
pub struct ChannelRoute {
    pub conns: RwLock<HashMap<u64, ConnHandle>>,
    /// Cancelled when the last local socket of the channel leaves: ends the subscription.
    pub stop: CancellationToken,
}

impl ChannelRoute {
    pub fn new(stop: CancellationToken) -> Self {
        Self { conns: RwLock::default(), stop }
    }

    fn conns(&self) -> std::sync::RwLockReadGuard<'_, HashMap<u64, ConnHandle>> {
        self.conns.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends message `seq` of `channel` to every socket (each skips it if it has it).
    pub fn send_message(&self, channel: ChannelId, seq: ChannelSeq, frame: &Utf8Bytes) {
        for conn in self.conns().values() {
            conn.deliver_message(channel, seq, frame.clone());
        }
    }

    /// Tells the route's sockets who is typing now, after `changed` started or stopped. A
    /// socket of the only user who changed sees no difference (typers never see themselves)
    /// and gets nothing.
    pub fn send_typing(&self, channel: ChannelId, typing: &TypingSet, changed: &[UserId]) {
        let frame_for = |recipient: UserId| {
            let payload = TypingUpdatePayload { channel_id: channel, users: typing.users_but(recipient) };
            Utf8Bytes::from(ServerFrame::TypingUpdate { payload }.to_json())
        };
        // The frame of everyone not typing, built once.
        let shared = frame_for(UserId(uuid::Uuid::nil()));
        for conn in self.conns().values() {
            if changed == [conn.user] {
                continue;
            }
            conn.deliver(if typing.contains(conn.user) { frame_for(conn.user) } else { shared.clone() });
        }
    }

    /// Sends a `presence.update` to the route's sockets but the user's own; each socket drops
    /// it if it says what it was told last.
    pub fn send_presence(&self, payload: &[u8]) {
        let Ok(text) = std::str::from_utf8(payload) else { return };
        let Ok(ServerFrame::PresenceUpdate { payload: presence }) = serde_json::from_str(text) else {
            return;
        };
        let frame = Utf8Bytes::from(text);
        for conn in self.conns().values().filter(|c| c.user != presence.user_id) {
            conn.deliver_presence(presence.user_id, presence.status, frame.clone());
        }
    }

    /// Sends a `receipt.updated` (its frame as published) to the route's sockets but the
    /// reader's own, which have `read.updated`.
    pub fn send_receipt(&self, reader: UserId, frame: &[u8]) {
        let Ok(text) = std::str::from_utf8(frame) else { return };
        let frame = Utf8Bytes::from(text);
        for conn in self.conns().values().filter(|c| c.user != reader) {
            conn.deliver(frame.clone());
        }
    }

    /// Closes every socket of the route with `code`.
    pub fn close_all(&self, code: u16) {
        for conn in self.conns().values() {
            conn.close(code);
        }
    }
}
