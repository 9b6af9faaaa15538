//! Exact resume. A client sends `sync` with its last seen `seq` per channel; for each channel
//! the gateway holds back live deliveries to that socket, sends the channel's log after the
//! client's `seq` (new messages and changes, up to `sync_backlog_max`), then `sync.done`, then
//! the held live frames it has not sent yet — so nothing is skipped or doubled at the seam.

use crate::conn::ConnHandle;
use crate::metrics::GatewayMetrics;
use crate::store::messages::log_after;
use axum::extract::ws::Utf8Bytes;
use shared::ids::{ChannelId, ChannelSeq};
use shared::protocol::{ErrorCode, ServerFrame, SyncDonePayload, SyncPayload};
use std::sync::Arc;

/// What a sync reads from and reports to.
#[derive(Clone)]
pub struct Syncer {
    db: sqlx::PgPool,
    /// Most messages one channel's backlog sends (`gateway.sync_backlog_max`).
    backlog_max: usize,
    metrics: Arc<GatewayMetrics>,
}

impl Syncer {
    pub fn new(db: sqlx::PgPool, backlog_max: usize, metrics: Arc<GatewayMetrics>) -> Self {
        Self { db, backlog_max, metrics }
    }

    /// Runs one `sync` of a socket, holding one of the socket's two sync places (one running,
    /// one waiting). Syncs of one socket run one after another, and a channel's backlog is read
    /// only once the previous one is written: one backlog at most is in memory per socket.
    pub async fn run(
        self,
        conn: ConnHandle,
        id: Option<String>,
        payload: SyncPayload,
        _place: tokio::sync::OwnedSemaphorePermit,
    ) {
        let _one_at_a_time = conn.sync_lock.lock().await;
        let requested: Vec<(ChannelId, ChannelSeq)> = if payload.channels.is_empty() {
            let mut mine: Vec<ChannelId> = conn.channel_list();
            mine.sort();
            mine.into_iter().map(|c| (c, ChannelSeq(0))).collect()
        } else {
            let mut asked: Vec<_> = payload.channels.into_iter().collect();
            asked.sort();
            asked
        };
        for (channel, after) in requested {
            if conn.is_closing() {
                return;
            }
            if !conn.is_member(channel) {
                let message = format!("you are not a member of channel {channel}");
                conn.deliver_error(id.clone(), ErrorCode::NotAMember, message);
                continue;
            }
            conn.backlog_written().await;
            if let Err(error) = self.sync_channel(&conn, channel, after).await {
                tracing::warn!(%channel, %error, "sync failed");
                conn.release_channel(channel, |_, _| None);
                conn.deliver_error(id.clone(), ErrorCode::Internal, "sync failed; send it again");
            }
        }
    }

    async fn sync_channel(
        &self,
        conn: &ConnHandle,
        channel: ChannelId,
        after: ChannelSeq,
    ) -> Result<(), sqlx::Error> {
        // Hold live deliveries *before* reading the backlog: whatever commits after the read is
        // announced after this point, so it is held, not lost.
        conn.hold_channel(channel);
        let cap = self.backlog_max;
        let mut backlog = log_after(&self.db, channel, after.0, cap as i64 + 1).await?;
        let truncated = backlog.len() > cap;
        backlog.truncate(cap);
        self.metrics.sync_backlog_messages.observe(backlog.len() as f64);
        conn.release_channel(channel, |already, deliver| {
            let mut last = after;
            for entry in backlog {
                last = entry.seq;
                deliver(Some(entry.seq), Utf8Bytes::from(entry.frame));
            }
            let last_seq = last.max(already);
            let done = ServerFrame::SyncDone {
                payload: SyncDonePayload { channel_id: channel, last_seq, truncated },
            };
            deliver(None, Utf8Bytes::from(done.to_json()));
            Some(last)
        });
        Ok(())
    }
}
