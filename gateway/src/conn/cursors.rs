//! Per channel, where a socket is: the last `seq` it was sent, from which `seq` it has every
//! message, and the live messages held back while a `sync` reads the channel's backlog (or
//! until the socket's first frame), so nothing is skipped or doubled at the seam.

use super::queue::Queue;
use axum::extract::ws::Utf8Bytes;
use shared::ids::{ChannelId, ChannelSeq};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// A socket's cursors, one per channel it was sent something of.
#[derive(Default)]
pub struct Cursors(Mutex<HashMap<ChannelId, Cursor>>);

#[derive(Default)]
struct Cursor {
    last_seq: ChannelSeq,
    /// From this `seq` to `last_seq` the socket has every message of the channel (live
    /// delivery is gap-free; a sync covers from 1); before it nothing is known to be there.
    has_from: Option<ChannelSeq>,
    held: Option<Vec<(ChannelSeq, Utf8Bytes)>>,
    /// The hold only waits for the socket's first frame (no sync is reading the backlog), so
    /// it may end early.
    held_for_first_frame: bool,
}

/// What a sync's backlog is given to send with: `(seq, frame)`, `seq` `None` for frames
/// that are not messages (`sync.done`).
pub type BacklogSend<'a> = &'a mut dyn FnMut(Option<ChannelSeq>, Utf8Bytes);

impl Cursors {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ChannelId, Cursor>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a channel's message unless this socket already got its `seq`; during a sync of
    /// the channel the message is held instead. Called in `seq` order per channel.
    pub fn deliver_message(&self, queue: &Queue, channel: ChannelId, seq: ChannelSeq, frame: Utf8Bytes) {
        let mut cursors = self.lock();
        let cursor = cursors.entry(channel).or_default();
        // Waiting for the first frame is worth at most half the budget: past that the held
        // messages go out, so a busy channel cannot get a reading client closed.
        if cursor.held_for_first_frame && queue.past_half(frame.len()) {
            for (seq, held) in cursor.held.take().unwrap_or_default() {
                cursor.send_held(queue, seq, held);
            }
            cursor.held_for_first_frame = false;
        }
        if let Some(held) = cursor.held.as_mut() {
            // Held frames take the live budget: a hold is memory like the queue.
            if queue.charge(frame.len()) {
                held.push((seq, frame));
            }
            return;
        }
        if seq > cursor.last_seq {
            cursor.last_seq = seq;
            cursor.has_from.get_or_insert(seq);
            queue.deliver(frame);
        }
    }

    /// Starts holding the channel's live messages (a sync is reading its backlog).
    pub fn hold_channel(&self, channel: ChannelId) {
        let mut cursors = self.lock();
        let cursor = cursors.entry(channel).or_default();
        cursor.held.get_or_insert_with(Vec::new);
        cursor.held_for_first_frame = false;
    }

    /// Holds the channel's live messages until the socket's first frame (a `sync`, usually),
    /// or until they take half the socket's budget.
    pub fn hold_until_first_frame(&self, channel: ChannelId) {
        let mut cursors = self.lock();
        let cursor = cursors.entry(channel).or_default();
        cursor.held.get_or_insert_with(Vec::new);
        cursor.held_for_first_frame = true;
    }

    /// Ends a hold: under the cursor lock, `backlog` sends what it has and returns the last
    /// `seq` it covers (`None` if it sent nothing); then the held messages after that go out.
    /// Backlog messages this socket was already sent live are skipped: they are on their way,
    /// in order, and sending them again would double them. The client then has every message
    /// from `covers_from` (1 after a sync, whose client has what it said plus the backlog; the
    /// `seq` after the join when a late join's messages were sent) up to the backlog's last.
    pub fn release_channel(
        &self,
        queue: &Queue,
        channel: ChannelId,
        covers_from: ChannelSeq,
        backlog: impl FnOnce(ChannelSeq, BacklogSend<'_>) -> Option<ChannelSeq>,
    ) {
        let mut cursors = self.lock();
        let cursor = cursors.entry(channel).or_default();
        let held = cursor.held.take().unwrap_or_default();
        cursor.held_for_first_frame = false;
        let already = cursor.last_seq;
        let has_from = cursor.has_from;
        // Skip only what this socket already has; messages before that were never sent here
        // and go out now (after it, if the client synced late).
        let has = move |seq: ChannelSeq| has_from.is_some_and(|from| from <= seq && seq <= already);
        let mut send = |seq: Option<ChannelSeq>, frame| {
            if !seq.is_some_and(has) {
                queue.deliver_backlog(frame);
            }
        };
        // The client now has everything from `covers_from` up to `top`.
        if let Some(top) = backlog(already, &mut send) {
            if has_from.is_none_or(|from| from.0 <= top.0 + 1) {
                cursor.has_from = Some(has_from.map_or(covers_from, |from| from.min(covers_from)));
            }
            cursor.last_seq = top.max(already);
        }
        for (seq, frame) in held {
            cursor.send_held(queue, seq, frame);
        }
    }

    /// Releases every channel held for the first frame but those in `keep`, whose holds a sync
    /// will release (they stop being first-frame holds: no early release before their
    /// backlog). A late join's hold stays until its own backlog is sent.
    pub fn release_all_but(&self, queue: &Queue, keep: &HashSet<ChannelId>) {
        let held: Vec<ChannelId> = {
            let mut cursors = self.lock();
            for channel in keep {
                if let Some(cursor) = cursors.get_mut(channel) {
                    cursor.held_for_first_frame = false;
                }
            }
            cursors
                .iter()
                .filter(|(c, cursor)| {
                    cursor.held.is_some() && cursor.held_for_first_frame && !keep.contains(c)
                })
                .map(|(c, _)| *c)
                .collect()
        };
        for channel in held {
            self.release_channel(queue, channel, ChannelSeq(1), |_, _| None);
        }
    }

    /// Forgets a channel the socket no longer receives; answers the bytes it held.
    pub fn forget_channel(&self, channel: ChannelId) -> usize {
        let forgotten = self.lock().remove(&channel);
        forgotten.and_then(|c| c.held).iter().flatten().map(|(_, f)| f.len()).sum()
    }
}

impl Cursor {
    /// Queues a held (already charged) message unless the socket already got its `seq`.
    fn send_held(&mut self, queue: &Queue, seq: ChannelSeq, frame: Utf8Bytes) {
        if seq > self.last_seq {
            self.last_seq = seq;
            self.has_from.get_or_insert(seq);
            queue.deliver_held(frame);
        } else {
            queue.uncharge(frame.len());
        }
    }
}
