//! A socket's read loop: one `select!` over the socket's frames, the checks of its sends in
//! the order they were read, their answers as the stream confirms them, and its timers (ping, idle, token expiry, lease renewal, the
//! drain of a shutdown, the grace for a first frame, the flush of read positions and
//! presence choices). Each frame is
//! handed to [`Frames`], whose answer — a [`Flow`] — says what the loop does next.

use super::frames::{Flow, Frames};
use crate::conn::ConnHandle;
use crate::conn::close::{CLOSE_IDLE, CLOSE_NORMAL, CLOSE_RESTART, CLOSE_TOKEN_EXPIRED};
use crate::live::reads::READ_FLUSH;
use crate::state::AppState;
use axum::extract::ws::WebSocket;
use futures::StreamExt;
use futures::stream::SplitStream;
use shared::protocol::SenderView;
use tokio::time::{Instant, Sleep};

/// How long live messages wait for a new socket's first frame (a `sync`, typically).
pub(super) const FIRST_FRAME_GRACE: std::time::Duration = std::time::Duration::from_secs(1);
/// Sends and changes of one socket read and not answered yet (checks out, or awaiting their
/// PubAck), at most; past that the socket is not read.
const MAX_PENDING_SENDS_PER_SOCKET: usize = 256;

/// Reads and handles the socket's frames until the peer closes, the socket is closed under
/// it, or the gateway drains (at a random moment of the drain window, so that clients
/// reconnect elsewhere spread out); then answers every send still in flight. Returns the
/// close code to end with.
pub async fn read_loop(
    mut stream: SplitStream<WebSocket>,
    conn: &ConnHandle,
    state: &AppState,
    sender: &SenderView,
    expires: i64,
    resume: bool,
) -> u16 {
    let mut frames = Frames::new(conn, state, sender);
    let first_frame_grace = tokio::time::sleep(FIRST_FRAME_GRACE);
    let drain = drain_moment(state);
    let lease = conn.lease_id(state.config.node_id);
    let mut renew_lease = interval_after_first_tick(state.limiter.config().socket_lease / 3).await;
    let mut ping = interval_after_first_tick(state.config.ping_interval).await;
    let idle = tokio::time::sleep(state.config.idle_timeout);
    let mut written_at_last_look = 0;
    // The socket lives on its access token: past its `exp`, unless an `auth.refresh` came
    // with a newer one, it is closed with 4001.
    let token_expiry = tokio::time::sleep_until(instant_of(expires));
    // Read positions and presence choices wait up to `READ_FLUSH` and go out together: a
    // timer armed by the first of them, so an idle socket has no timer running.
    let flush = tokio::time::sleep(std::time::Duration::ZERO);
    let mut flush_armed = false;
    tokio::pin!(first_frame_grace, drain, idle, token_expiry, flush);
    let code = loop {
        let flow = tokio::select! {
            _ = conn.queue.closing.cancelled() => Flow::Close(CLOSE_NORMAL),
            _ = &mut flush, if flush_armed => {
                flush_armed = false;
                frames.flush()
            }
            _ = ping.tick() => frames.ping(),
            _ = &mut token_expiry => Flow::Close(CLOSE_TOKEN_EXPIRED),
            _ = &mut idle => {
                // The writer got frames out since the last look: a slow link, not a dead peer.
                let written = conn.queue.frames_written();
                if written == written_at_last_look {
                    Flow::Close(CLOSE_IDLE)
                } else {
                    written_at_last_look = written;
                    idle.as_mut().reset(Instant::now() + state.config.idle_timeout);
                    Flow::Continue
                }
            }
            _ = renew_lease.tick() => frames.renew_lease(&lease).await,
            _ = &mut drain => Flow::Close(CLOSE_RESTART),
            _ = &mut first_frame_grace, if frames.awaiting_first_frame && !resume => frames.first_frame_grace_over(),
            Some(checked) = frames.checks.next(), if !frames.checks.is_empty() => frames.checked(checked).await,
            Some(answer) = frames.pending.next(), if !frames.pending.is_empty() => frames.answer(answer),
            message = stream.next(), if frames.in_flight() < MAX_PENDING_SENDS_PER_SOCKET => {
                // Anything from the peer, a pong included, shows it is alive.
                idle.as_mut().reset(Instant::now() + state.config.idle_timeout);
                frames.message(message).await
            }
        };
        match flow {
            Flow::Continue => {}
            Flow::Flush => arm_flush(flush.as_mut(), &mut flush_armed),
            Flow::Refreshed { exp } => token_expiry.as_mut().reset(instant_of(exp)),
            Flow::Close(code) => break code,
        }
    };
    // Boxed: its future is as large as the rest of the loop's, and runs once.
    Box::pin(frames.finish()).await;
    code
}

/// Resolves at the socket's moment of a shutdown's drain window: a random one, so that the
/// clients of a draining gateway reconnect elsewhere spread out.
async fn drain_moment(state: &AppState) {
    let (shutdown, window) = (state.shutdown.clone(), state.config.drain_window);
    shutdown.cancelled().await;
    tokio::time::sleep(window.mul_f64(rand::random::<f64>())).await;
}

/// An interval whose first tick (at once) is taken already.
async fn interval_after_first_tick(period: std::time::Duration) -> tokio::time::Interval {
    let mut interval = tokio::time::interval(period);
    interval.tick().await;
    interval
}

/// Starts the timer of pending reads and presence choices unless it is running.
fn arm_flush(flush: std::pin::Pin<&mut Sleep>, armed: &mut bool) {
    if !std::mem::replace(armed, true) {
        flush.reset(Instant::now() + READ_FLUSH);
    }
}

/// The moment of a token's `exp` (Unix seconds), as a timer deadline.
fn instant_of(exp: i64) -> Instant {
    let left = exp.saturating_sub(chrono::Utc::now().timestamp()).max(0);
    Instant::now() + std::time::Duration::from_secs(left as u64)
}
