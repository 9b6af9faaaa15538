//! One socket's life after the upgrade: its writer started, presence told, the read loop run
//! to its end, its lease given back, what is queued written, then the close frame; and the
//! registration that unregisters it however the connection ends.

use super::read::read_loop;
use super::write::write_loop;
use crate::conn::ConnHandle;
use crate::conn::close::{self, CLOSE_ABNORMAL, CLOSE_NO_STATUS, CLOSE_NORMAL, CLOSE_RESTART};
use crate::conn::lane::LaneRx;
use crate::conn::queue::Outbound;
use crate::state::AppState;
use axum::extract::ws::{Message, WebSocket};
use futures::stream::{SplitSink, SplitStream};
use shared::protocol::SenderView;

/// How long a closing socket may take to write what is queued before its close frame.
const FLUSH_BEFORE_CLOSE: std::time::Duration = std::time::Duration::from_secs(5);

/// Unregisters the socket from the fanout however the connection ends, even if the upgrade
/// never completes.
pub struct Registration {
    state: AppState,
    conn: ConnHandle,
    /// The socket's entry among its user's open sockets, given back at the end.
    lease: String,
    /// Its place among the gateway's `max_connections`.
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Registration {
    pub fn new(
        state: AppState,
        conn: ConnHandle,
        lease: String,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> Self {
        Self { state, conn, lease, _permit: permit }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.state.fanout.unregister(&self.conn);
        self.conn.queue.closing.cancel();
        // Normally given back by `serve`; here when the upgrade never completed.
        if !self.lease.is_empty() {
            let (state, user, lease) = (self.state.clone(), self.conn.user, std::mem::take(&mut self.lease));
            let sockets = state.sockets.clone();
            sockets.spawn(async move { state.limiter.release_socket(user, &lease).await });
        }
    }
}

/// Runs an upgraded socket, split into its two halves, until it closes. The halves, not the
/// socket, come in: the socket itself would stay in this future's state for its whole life.
pub async fn serve(
    (sink, stream): (SplitSink<WebSocket, Message>, SplitStream<WebSocket>),
    mut registration: Registration,
    outbound: LaneRx<Outbound>,
    sender: SenderView,
    expires: i64,
    resume: bool,
) {
    let conn = registration.conn.clone();
    let state = registration.state.clone();
    state.metrics.connections_opened.inc();
    state.metrics.connections.inc();
    let mut writer = tokio::spawn(write_loop(sink, outbound, conn.clone()));
    let channels = conn.channel_list();
    let (presence, user) = (state.presence.clone(), conn.user);
    // Online (or away, as chosen) to everyone who shares a channel.
    tokio::spawn(async move { presence.announce(user, &channels).await });
    let code = read_loop(stream, &conn, &state, &sender, expires, resume).await;
    // The socket's place among its user's goes back before the close frame: a client that
    // reconnects at once finds it free.
    let lease = std::mem::take(&mut registration.lease);
    state.limiter.release_socket(conn.user, &lease).await;
    state.presence.socket_closed(&conn);
    // Every send of the socket is answered by now; those answers go out before the close.
    conn.queue.finish(code);
    if tokio::time::timeout(FLUSH_BEFORE_CLOSE, &mut writer).await.is_err() {
        conn.close(code);
        let _ = writer.await;
    }
    drop(registration);
    state.metrics.connections.dec();
    let code = conn.queue.close_code();
    state.metrics.closed(code);
    // The gateway's own verdicts (idle, slow, rate limited, revoked, a hole) say why a client
    // went away; ordinary ends and restarts would only fill the log.
    if matches!(code, CLOSE_NORMAL | CLOSE_NO_STATUS | CLOSE_ABNORMAL | CLOSE_RESTART) {
        tracing::debug!(conn = conn.id, user = %conn.user, code, "socket closed");
    } else {
        tracing::info!(conn = conn.id, user = %conn.user, code, reason = close::reason(code), "socket closed");
    }
}
