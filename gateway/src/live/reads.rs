//! Read receipts. `message.read {channel_id, seq}` moves the reader's position in a channel
//! forward (never backwards, never past the channel's last `seq`); the reader's sockets, on
//! every gateway, get `read.updated` so their other devices clear the same unread badge, and
//! in a channel of at most `gateway.receipts_max_members` members the others' sockets get
//! `receipt.updated` ("seen by"), on the channel's delivery subject like presence.
//! A socket's reads are coalesced: it keeps the highest `seq` per channel and writes them
//! every `READ_FLUSH`, so a client marking every message it shows costs Postgres one
//! statement per half second at most. Senders' own messages count as read (the worker moves
//! their position when it stores them).

use super::fanout::Fanout;
use crate::store::channels::ReadMoved;
use shared::ids::{ChannelId, ChannelSeq, UserId};
use shared::protocol::{ReadUpdatedPayload, ServerFrame};
use std::collections::HashMap;
use std::sync::Arc;

/// How long a socket gathers read positions (and presence choices) before writing them.
pub const READ_FLUSH: std::time::Duration = std::time::Duration::from_millis(500);

/// A socket's reads not written yet: the highest `seq` per channel.
#[derive(Default)]
pub struct PendingReads(HashMap<ChannelId, ChannelSeq>);

impl PendingReads {
    pub fn add(&mut self, channel: ChannelId, seq: ChannelSeq) {
        let highest = self.0.entry(channel).or_insert(seq);
        *highest = (*highest).max(seq);
    }

    /// Writes what is pending, in the background.
    pub fn flush(
        &mut self,
        db: &sqlx::PgPool,
        fanout: &Arc<Fanout>,
        user: UserId,
        receipts_max_members: u32,
    ) {
        if self.0.is_empty() {
            return;
        }
        let reads: Vec<(ChannelId, ChannelSeq)> = self.0.drain().collect();
        tokio::spawn(store(db.clone(), fanout.clone(), user, reads, receipts_max_members));
    }
}

async fn store(
    db: sqlx::PgPool,
    fanout: Arc<Fanout>,
    user: UserId,
    reads: Vec<(ChannelId, ChannelSeq)>,
    receipts_max_members: u32,
) {
    let moved = match crate::store::channels::mark_read(&db, user, &reads).await {
        Ok(moved) => moved,
        Err(error) => return tracing::warn!(%error, %user, "read positions not stored"),
    };
    // The update returns each channel's member count: receipts cost no second statement.
    for ReadMoved { channel_id, last_read_seq, member_count } in moved {
        let payload = ReadUpdatedPayload { channel_id, user_id: user, last_read_seq };
        fanout.send_to_user(user, &ServerFrame::ReadUpdated { payload: payload.clone() }).await;
        if i64::from(member_count) <= i64::from(receipts_max_members) {
            fanout.publish_receipt(channel_id, user, &ServerFrame::ReceiptUpdated { payload }).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_reads_keep_the_highest_seq_per_channel() {
        let (a, b) = (ChannelId::new_random(), ChannelId::new_random());
        let mut pending = PendingReads::default();
        pending.add(a, ChannelSeq(5));
        pending.add(a, ChannelSeq(3));
        pending.add(b, ChannelSeq(1));
        pending.add(a, ChannelSeq(7));
        let mut reads: Vec<_> = pending.0.into_iter().collect();
        reads.sort_by_key(|(_, seq)| *seq);
        assert_eq!(reads, [(b, ChannelSeq(1)), (a, ChannelSeq(7))]);
    }
}
