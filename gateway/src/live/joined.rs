//! A channel joined by a socket already open: what the channel stored after the join and
//! before this gateway's route carried it live (sent while the membership change travelled to
//! this gateway, or before its subscription was made) is read from Postgres and sent first,
//! then the live messages held meanwhile — so a member added to a channel misses nothing of
//! it and gets it in order, without a `sync`.

use crate::conn::ConnHandle;
use crate::store::messages::log_after;
use axum::extract::ws::Utf8Bytes;
use shared::ids::{ChannelId, ChannelSeq};
use std::time::Duration;

/// Most messages a late join reads; past that the client sees a hole and syncs, as after any
/// hole the gateway cannot fill.
const CATCH_UP_MAX: i64 = 1_000;
/// How long the read may take. Live messages are held meanwhile, in the socket's budget.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(3);

/// Reads what `channel` stored after `joined_at` and sends it, then what was held (the
/// channel is held, `ConnHandle::hold_channel`, before the socket joins its route). Call once
/// the route's subscription is made (whatever commits after the read is announced after it,
/// so it is held, not lost). One after another with the socket's syncs, so a sync's backlog
/// and this one never interleave. Nothing is sent if the socket left the channel meanwhile;
/// if the read fails the held messages go out alone, and the client, seeing a hole, syncs.
pub async fn catch_up(conn: ConnHandle, db: sqlx::PgPool, channel: ChannelId, joined_at: ChannelSeq) {
    let _one_at_a_time = conn.sync_lock.lock().await;
    let read =
        tokio::time::timeout(CATCH_UP_TIMEOUT, log_after(&db, channel, joined_at.0, CATCH_UP_MAX)).await;
    let backlog = match read {
        Ok(Ok(backlog)) => backlog,
        Ok(Err(error)) => {
            tracing::warn!(%channel, %error, "a late join's messages not read; the client syncs");
            Vec::new()
        }
        Err(_) => {
            tracing::warn!(%channel, "a late join's messages not read in time; the client syncs");
            Vec::new()
        }
    };
    conn.release_joined(channel, joined_at, |_, deliver| {
        // Checked under the cursors' lock: a socket that left meanwhile is sent nothing.
        if !conn.is_member(channel) {
            return None;
        }
        let last = backlog.last().map(|entry| entry.seq);
        for entry in backlog {
            deliver(Some(entry.seq), Utf8Bytes::from(entry.frame));
        }
        last
    });
}
