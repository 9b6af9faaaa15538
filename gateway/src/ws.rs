//! The WebSocket endpoint `GET /ws`. The access token is checked before the upgrade (401
//! otherwise), from `Authorization: Bearer` or, for browsers, the subprotocol list
//! `chat.v1, bearer.<token>`. Each socket has a reader (decodes frames, validates, publishes,
//! answers acks as PubAcks arrive, pipelined) and a writer fed by one queue bounded in bytes; a
//! socket whose live frames overflow it is closed with 4008 so it never slows anyone else
//! down. The backlog of a `sync` (itself capped at `sync_backlog_max` messages, one sync at a
//! time per socket) is queued outside that budget, so a large resume over a slow link does not
//! get a healthy client cut off by the live messages arriving meanwhile.

use crate::auth::bearer_token;
use crate::changes;
use crate::error::AppError;
use crate::metrics::{GatewayMetrics, SendOutcome};
use crate::publish::PublishFailure;
use crate::ratelimit::Verdict;
use crate::state::AppState;
use crate::store;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::Response;
use futures::stream::{FuturesUnordered, SplitSink};
use futures::{SinkExt, StreamExt};
use shared::events::{StreamMessage, new_traceparent, trace_id};
use shared::ids::{ChannelId, ChannelSeq, UserId};
use shared::protocol::{
    self, AckPayload, AckStatus, AttachmentView, ChangeFrame, ClientFrame, ContentType, ErrorCode,
    SendPayload, SenderView, ServerFrame,
};
use std::collections::HashMap;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Close code for a socket that could not keep up with its deliveries.
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;
/// Close code for a message above the size limit.
pub const CLOSE_TOO_BIG: u16 = 1009;
/// How long after its first `rate_limited` answer a client may still have sends in flight
/// that do not count as strikes.
const STRIKE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);
/// Close code for a client that kept sending past a rate limit after being told.
pub const CLOSE_RATE_LIMITED: u16 = 4029;
/// Close code for a socket whose access token expired without an `auth.refresh`.
pub const CLOSE_TOKEN_EXPIRED: u16 = 4001;
/// Close code for a peer that went silent (not even a pong) for `idle_timeout`.
pub const CLOSE_IDLE: u16 = 4000;
/// Close code of an orderly end.
const CLOSE_NORMAL: u16 = 1000;
/// Close code for sockets that would miss deliveries of a channel: a hole in its live
/// deliveries could not be filled from the database. The client resumes with `sync`.
pub const CLOSE_DELIVERIES_MISSED: u16 = 1011;
/// How long a closing socket may take to write what is queued before its close frame.
const FLUSH_BEFORE_CLOSE: std::time::Duration = std::time::Duration::from_secs(5);
/// Close code when the gateway shuts down ("service restart").
pub const CLOSE_RESTART: u16 = 1012;
/// The peer closed without a code (recorded, never sent).
const CLOSE_NO_STATUS: u16 = 1005;
/// The connection ended without a close frame (recorded, never sent).
const CLOSE_ABNORMAL: u16 = 1006;
/// How long live messages wait for a new socket's first frame (a `sync`, typically).
const FIRST_FRAME_GRACE: std::time::Duration = std::time::Duration::from_secs(1);
/// Users whose last told presence a socket remembers, at most.
const MAX_PRESENCE_TOLD: usize = 1024;
/// Sends of one socket awaiting their PubAck, at most; past that the socket is not read.
const MAX_PENDING_SENDS_PER_SOCKET: usize = 256;

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

/// A socket as the rest of the gateway sees it: who it is, which channels it may use, and
/// its outbound queue.
#[derive(Clone)]
pub struct ConnHandle {
    pub id: u64,
    pub user: UserId,
    /// The session of the token the socket was opened with (refreshes keep it).
    pub session: uuid::Uuid,
    pub channels: Arc<RwLock<HashSet<ChannelId>>>,
    outbound: mpsc::UnboundedSender<Outbound>,
    metrics: Arc<GatewayMetrics>,
    /// Bytes of live frames queued or held and not yet written; bounded by `queue_max_bytes`.
    live_bytes: Arc<AtomicUsize>,
    /// Bytes of sync backlog queued and not yet written; a sync reads the next channel's
    /// backlog only once this is 0, so one backlog at most is in memory.
    backlog_bytes: Arc<AtomicUsize>,
    /// Woken by the writer when `backlog_bytes` comes back to 0.
    backlog_drained: Arc<tokio::sync::Notify>,
    /// Frames the writer has written, so silence on the socket can be told from a slow link.
    written: Arc<AtomicU64>,
    /// Set when the socket is closing in order: nothing more is queued.
    finishing: Arc<AtomicBool>,
    /// A running sync and one waiting, at most.
    pub syncs: Arc<tokio::sync::Semaphore>,
    queue_max_bytes: usize,
    pub closing: CancellationToken,
    close_code: Arc<AtomicU16>,
    /// Per channel: the last `seq` sent to this socket, and live messages held during a sync.
    cursors: Arc<Mutex<HashMap<ChannelId, Cursor>>>,
    /// Serialises the socket's syncs.
    pub sync_lock: Arc<tokio::sync::Mutex<()>>,
    /// The last presence told to this socket per user, so a repeat is not sent again.
    presence_told: Arc<Mutex<HashMap<UserId, shared::protocol::PresenceStatus>>>,
}

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

/// What the writer gets: a frame (and whose budget it is charged to), or the end of the
/// socket, after everything queued before it.
pub enum Outbound {
    Frame { frame: Utf8Bytes, live: bool },
    Ping,
    Close,
}

impl ConnHandle {
    fn new(
        user: UserId,
        session: uuid::Uuid,
        queue_max_bytes: usize,
        metrics: Arc<GatewayMetrics>,
    ) -> (Self, mpsc::UnboundedReceiver<Outbound>) {
        // Unbounded as a channel, bounded in bytes by `live_bytes` (live frames) and by the
        // sync backlog cap (backlog frames).
        let (outbound, rx) = mpsc::unbounded_channel();
        let conn = Self {
            id: NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed),
            user,
            session,
            channels: Arc::new(RwLock::new(HashSet::new())),
            outbound,
            metrics,
            live_bytes: Arc::default(),
            backlog_bytes: Arc::default(),
            backlog_drained: Arc::default(),
            written: Arc::default(),
            finishing: Arc::default(),
            syncs: Arc::new(tokio::sync::Semaphore::new(2)),
            queue_max_bytes,
            closing: CancellationToken::new(),
            close_code: Arc::new(AtomicU16::new(CLOSE_RESTART)),
            cursors: Arc::default(),
            sync_lock: Arc::default(),
            presence_told: Arc::default(),
        };
        (conn, rx)
    }

    /// Charges `bytes` of live frames to the socket's budget; past it, closes the socket with
    /// 4008 and says no.
    fn charge(&self, bytes: usize) -> bool {
        if self.finishing.load(Ordering::Relaxed) {
            return false;
        }
        let max = self.queue_max_bytes;
        let charged = self.live_bytes.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |queued| {
            (queued + bytes <= max).then_some(queued + bytes)
        });
        if charged.is_err() {
            self.close(CLOSE_SLOW_CONSUMER);
            return false;
        }
        true
    }

    /// Queues a live frame (delivery, ack, error); past the byte budget the socket is closed
    /// with 4008 instead of waiting.
    pub fn deliver(&self, frame: Utf8Bytes) {
        if self.charge(frame.len()) {
            let _ = self.outbound.send(Outbound::Frame { frame, live: true });
        }
    }

    /// Queues a frame of a sync's backlog, outside the live budget (counted apart).
    fn deliver_backlog(&self, frame: Utf8Bytes) {
        self.backlog_bytes.fetch_add(frame.len(), Ordering::Relaxed);
        let _ = self.outbound.send(Outbound::Frame { frame, live: false });
    }

    /// Waits until the socket has written every backlog frame queued so far (or closes).
    pub async fn backlog_written(&self) {
        loop {
            // Registered before the check, so a wake-up between the two is not missed.
            let drained = self.backlog_drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self.backlog_bytes.load(Ordering::Relaxed) == 0 {
                return;
            }
            tokio::select! {
                _ = drained => {}
                _ = self.closing.cancelled() => return,
            }
        }
    }

    /// Moves a held frame (already charged) to the queue.
    fn deliver_held(&self, frame: Utf8Bytes) {
        let _ = self.outbound.send(Outbound::Frame { frame, live: true });
    }

    /// Queues a channel's message unless this socket already got its `seq`; during a sync of
    /// the channel the message is held instead. Called in `seq` order per channel.
    pub fn deliver_message(&self, channel: ChannelId, seq: ChannelSeq, frame: Utf8Bytes) {
        let mut cursors = self.cursors.lock().unwrap_or_else(|e| e.into_inner());
        let cursor = cursors.entry(channel).or_default();
        // Waiting for the first frame is worth at most half the budget: past that the held
        // messages go out, so a busy channel cannot get a reading client closed.
        if cursor.held_for_first_frame
            && self.live_bytes.load(Ordering::Relaxed) + frame.len() > self.queue_max_bytes / 2
        {
            for (seq, held) in cursor.held.take().unwrap_or_default() {
                self.send_held(cursor, seq, held);
            }
            cursor.held_for_first_frame = false;
        }
        if let Some(held) = cursor.held.as_mut() {
            // Held frames take the live budget: a hold is memory like the queue.
            if self.charge(frame.len()) {
                held.push((seq, frame));
            }
            return;
        }
        if seq > cursor.last_seq {
            cursor.last_seq = seq;
            cursor.has_from.get_or_insert(seq);
            self.deliver(frame);
        }
    }

    /// Starts holding the channel's live messages (a sync is reading its backlog).
    pub fn hold_channel(&self, channel: ChannelId) {
        let mut cursors = self.cursors.lock().unwrap_or_else(|e| e.into_inner());
        let cursor = cursors.entry(channel).or_default();
        cursor.held.get_or_insert_with(Vec::new);
        cursor.held_for_first_frame = false;
    }

    /// Holds the channel's live messages until the socket's first frame (a `sync`, usually),
    /// or until they take half the socket's budget.
    pub fn hold_until_first_frame(&self, channel: ChannelId) {
        let mut cursors = self.cursors.lock().unwrap_or_else(|e| e.into_inner());
        let cursor = cursors.entry(channel).or_default();
        cursor.held.get_or_insert_with(Vec::new);
        cursor.held_for_first_frame = true;
    }

    /// Queues a held (already charged) message unless the socket already got its `seq`.
    fn send_held(&self, cursor: &mut Cursor, seq: ChannelSeq, frame: Utf8Bytes) {
        if seq > cursor.last_seq {
            cursor.last_seq = seq;
            cursor.has_from.get_or_insert(seq);
            self.deliver_held(frame);
        } else {
            self.live_bytes.fetch_sub(frame.len(), Ordering::Relaxed);
        }
    }

    /// Ends a hold: under the cursor lock, `backlog` sends what it has and returns the last
    /// `seq` it covers (`None` if it sent nothing); then the held messages after that go out.
    /// Backlog messages this socket was already sent live are skipped: they are on their way,
    /// in order, and sending them again would double them.
    pub fn release_channel(
        &self,
        channel: ChannelId,
        backlog: impl FnOnce(ChannelSeq, &mut dyn FnMut(Option<ChannelSeq>, Utf8Bytes)) -> Option<ChannelSeq>,
    ) {
        let mut cursors = self.cursors.lock().unwrap_or_else(|e| e.into_inner());
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
                self.deliver_backlog(frame);
            }
        };
        // The client now has everything up to `top` (what it said it had, then the backlog).
        if let Some(top) = backlog(already, &mut send) {
            if has_from.is_none_or(|from| from.0 <= top.0 + 1) {
                cursor.has_from = Some(ChannelSeq(1));
            }
            cursor.last_seq = top.max(already);
        }
        for (seq, frame) in held {
            self.send_held(cursor, seq, frame);
        }
    }

    /// Releases every held channel but those in `keep`, whose holds a sync will release (they
    /// stop being first-frame holds: no early release before their backlog).
    pub fn release_all_but(&self, keep: &HashSet<ChannelId>) {
        let held: Vec<ChannelId> = {
            let mut cursors = self.cursors.lock().unwrap_or_else(|e| e.into_inner());
            for channel in keep {
                if let Some(cursor) = cursors.get_mut(channel) {
                    cursor.held_for_first_frame = false;
                }
            }
            cursors
                .iter()
                .filter(|(c, cursor)| cursor.held.is_some() && !keep.contains(c))
                .map(|(c, _)| *c)
                .collect()
        };
        for channel in held {
            self.release_channel(channel, |_, _| None);
        }
    }

    /// Forgets a channel the socket no longer receives.
    pub fn forget_channel(&self, channel: ChannelId) {
        let forgotten = self.cursors.lock().unwrap_or_else(|e| e.into_inner()).remove(&channel);
        let held: usize = forgotten.and_then(|c| c.held).iter().flatten().map(|(_, f)| f.len()).sum();
        self.live_bytes.fetch_sub(held, Ordering::Relaxed);
    }

    /// Closes the socket with `code` once everything queued so far is written (unless it is
    /// being closed already).
    fn finish(&self, code: u16) {
        if !self.closing.is_cancelled() {
            self.close_code.store(code, Ordering::Relaxed);
            self.finishing.store(true, Ordering::Relaxed);
            let _ = self.outbound.send(Outbound::Close);
        }
    }

    /// Asks the writer to close the socket with `code` now, dropping what is queued (the
    /// first code asked for wins).
    pub fn close(&self, code: u16) {
        if !self.closing.is_cancelled() {
            self.close_code.store(code, Ordering::Relaxed);
            self.closing.cancel();
            if code == CLOSE_SLOW_CONSUMER {
                self.metrics.slow_consumer_closes.inc();
            }
        }
    }

    /// The socket's name among its user's open sockets, unique in the cell.
    fn lease_id(&self, node_id: u16) -> String {
        format!("{node_id}:{}", self.id)
    }

    /// Queues a `presence.update` unless it is what this socket was told last about `user`.
    pub fn deliver_presence(&self, user: UserId, status: shared::protocol::PresenceStatus, frame: Utf8Bytes) {
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
}

/// The access token of a WebSocket handshake.
pub struct HandshakeToken(String);

impl FromRequestParts<AppState> for HandshakeToken {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, AppError> {
        if let Some(token) = bearer_token(parts) {
            return Ok(Self(token.to_owned()));
        }
        parts
            .headers
            .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .find_map(|p| p.trim().strip_prefix(protocol::BEARER_SUBPROTOCOL_PREFIX))
            .map(|t| Self(t.to_owned()))
            .ok_or(AppError::Unauthorized)
    }
}

/// The query of `GET /ws`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct UpgradeOptions {
    /// The client will send a `sync` as its first frame: live messages wait for it however
    /// long it takes (bounded by half the socket's budget), instead of for
    /// [`FIRST_FRAME_GRACE`]. What a resuming client should ask for: a late first frame can
    /// then never put live messages before its backlog.
    #[serde(default)]
    pub resume: bool,
}

/// `GET /ws`: authenticates, registers the socket's channels, then upgrades.
pub async fn upgrade(
    State(state): State<AppState>,
    HandshakeToken(token): HandshakeToken,
    headers: axum::http::HeaderMap,
    options: Result<axum::extract::Query<UpgradeOptions>, axum::extract::rejection::QueryRejection>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, AppError> {
    let claims = state.authenticate(&token)?;
    let axum::extract::Query(options) =
        options.map_err(|r| AppError::Rejected { status: r.status(), message: r.body_text() })?;
    let (user, session, expires) = (claims.sub, claims.sid, claims.exp);
    let ws = ws.map_err(|r| AppError::Rejected { status: r.status(), message: r.body_text() })?;
    if let Some(origin) = parts_origin(&headers)
        && !state.config.allowed_origins.is_empty()
        && !state.config.allowed_origins.iter().any(|allowed| allowed == origin)
    {
        // Cross-site WebSocket hijacking: a page of another site may not open a socket.
        return Err(AppError::Forbidden("origin not allowed"));
    }
    let permit = state.connection_permits.clone().try_acquire_owned().map_err(|_| AppError::Unavailable)?;
    let sender = store::users::sender_view(&state.db, user).await?.ok_or(AppError::Unauthorized)?;
    let (conn, outbound) =
        ConnHandle::new(user, session, state.config.socket_queue_bytes, state.metrics.clone());
    let lease = conn.lease_id(state.config.node_id);
    if !state.limiter.lease_socket(user, &lease).await {
        state.metrics.rate_limited("sockets_per_user");
        return Err(AppError::RateLimited { limit: "sockets_per_user", retry_after_ms: 1000 });
    }
    state.fanout.register(&conn);
    // A revocation that came after the token was checked found no socket to close.
    if state.revoked.contains(session) {
        state.fanout.unregister(&conn);
        state.limiter.release_socket(user, &lease).await;
        return Err(AppError::Unauthorized);
    }
    let registration = Registration { state: state.clone(), conn: conn.clone(), lease, _permit: permit };
    let channels = store::channels::member_channel_ids(&state.db, user).await?;
    // Live messages wait for the client's first frame: if it is a `sync`, its backlog goes
    // out first, so a resuming client never sees a live message before the ones it missed.
    for channel in &channels {
        conn.hold_until_first_frame(*channel);
    }
    state.fanout.join(&conn, channels).await;
    let sockets = state.sockets.clone();
    Ok(ws
        .protocols([protocol::SUBPROTOCOL])
        .max_message_size(state.config.max_ws_message_bytes)
        .max_frame_size(state.config.max_ws_frame_bytes)
        // Small buffers: memory per connection is what lets a gateway hold 80k sockets.
        .read_buffer_size(8 * 1024)
        .write_buffer_size(8 * 1024)
        .max_write_buffer_size(64 * 1024)
        .on_upgrade(move |socket| {
            sockets.track_future(serve(socket, registration, outbound, sender, expires, options.resume))
        }))
}

fn parts_origin(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers.get(axum::http::header::ORIGIN)?.to_str().ok()
}

/// Unregisters the socket from the fanout however the connection ends, even if the upgrade
/// never completes.
struct Registration {
    state: AppState,
    conn: ConnHandle,
    /// The socket's entry among its user's open sockets, given back at the end.
    lease: String,
    /// Its place among the gateway's `max_connections`.
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.state.fanout.unregister(&self.conn);
        self.conn.closing.cancel();
        // Normally given back by `serve`; here when the upgrade never completed.
        if !self.lease.is_empty() {
            let (state, user, lease) = (self.state.clone(), self.conn.user, std::mem::take(&mut self.lease));
            let sockets = state.sockets.clone();
            sockets.spawn(async move { state.limiter.release_socket(user, &lease).await });
        }
    }
}

async fn serve(
    socket: WebSocket,
    mut registration: Registration,
    outbound: mpsc::UnboundedReceiver<Outbound>,
    sender: SenderView,
    expires: i64,
    resume: bool,
) {
    let conn = registration.conn.clone();
    let state = registration.state.clone();
    state.metrics.connections_opened.inc();
    state.metrics.connections.inc();
    let (sink, stream) = socket.split();
    let mut writer = tokio::spawn(write_loop(sink, outbound, conn.clone()));
    let channels: Vec<ChannelId> =
        conn.channels.read().unwrap_or_else(|e| e.into_inner()).iter().copied().collect();
    let (announce, user) = (state.clone(), conn.user);
    // Online (or away, as chosen) to everyone who shares a channel.
    tokio::spawn(async move { announce.announce_presence(user, &channels).await });
    let code = read_loop(stream, &conn, &state, &sender, expires, resume).await;
    // The socket's place among its user's goes back before the close frame: a client that
    // reconnects at once finds it free.
    let lease = std::mem::take(&mut registration.lease);
    state.limiter.release_socket(conn.user, &lease).await;
    state.socket_closed_presence(&conn);
    // Every send of the socket is answered by now; those answers go out before the close.
    conn.finish(code);
    if tokio::time::timeout(FLUSH_BEFORE_CLOSE, &mut writer).await.is_err() {
        conn.close(code);
        let _ = writer.await;
    }
    drop(registration);
    state.metrics.connections.dec();
    state.metrics.closed(conn.close_code.load(Ordering::Relaxed));
}

/// Reads and handles the socket's frames until the peer closes, the socket is closed under
/// it, or the gateway drains (at a random moment of the drain window, so that clients
/// reconnect elsewhere spread out); then answers every send still in flight. Returns the
/// close code to end with.
async fn read_loop(
    mut stream: futures::stream::SplitStream<WebSocket>,
    conn: &ConnHandle,
    state: &AppState,
    sender: &SenderView,
    expires: i64,
    resume: bool,
) -> u16 {
    let mut pending: FuturesUnordered<std::pin::Pin<Box<dyn Future<Output = Utf8Bytes> + Send>>> =
        FuturesUnordered::new();
    let first_frame_grace = tokio::time::sleep(FIRST_FRAME_GRACE);
    tokio::pin!(first_frame_grace);
    let mut awaiting_first_frame = true;
    let shutdown = state.shutdown.clone();
    let drain_window = state.config.drain_window;
    let drain = async move {
        shutdown.cancelled().await;
        tokio::time::sleep(drain_window.mul_f64(rand::random::<f64>())).await;
    };
    tokio::pin!(drain);
    let mut code = CLOSE_NORMAL;
    let lease = conn.lease_id(state.config.node_id);
    let mut renew_lease = tokio::time::interval(state.limiter.config().socket_lease / 3);
    renew_lease.tick().await;
    // Rate-limited frames in a row after being told; past the configured number the socket
    // is closed.
    let mut limits = SendLimits::default();
    let mut ping = tokio::time::interval(state.config.ping_interval);
    ping.tick().await;
    let idle = tokio::time::sleep(state.config.idle_timeout);
    tokio::pin!(idle);
    let mut written_at_last_look = 0;
    // The socket lives on its access token: past its `exp`, unless an `auth.refresh` came
    // with a newer one, it is closed with 4001.
    let token_expiry = tokio::time::sleep_until(instant_of(expires));
    tokio::pin!(token_expiry);
    // Read positions and presence choices wait up to `READ_FLUSH` and go out together: a
    // timer armed by the first of them, so an idle socket has no timer running.
    let mut reads = crate::reads::PendingReads::default();
    let mut presence = crate::presence::PendingPresence::default();
    let flush = tokio::time::sleep(std::time::Duration::ZERO);
    tokio::pin!(flush);
    let mut flush_armed = false;
    let mut typing = crate::typing::TypingThrottle::default();
    loop {
        tokio::select! {
            _ = conn.closing.cancelled() => break,
            _ = &mut flush, if flush_armed => {
                flush_armed = false;
                reads.flush(state, conn.user);
                presence.flush(state, conn);
            }
            _ = ping.tick() => {
                let _ = conn.outbound.send(Outbound::Ping);
            }
            _ = &mut token_expiry => {
                code = CLOSE_TOKEN_EXPIRED;
                break;
            }
            _ = &mut idle => {
                // The writer got frames out since the last look: a slow link, not a dead peer.
                let written = conn.written.load(Ordering::Relaxed);
                if written != written_at_last_look {
                    written_at_last_look = written;
                    idle.as_mut().reset(tokio::time::Instant::now() + state.config.idle_timeout);
                    continue;
                }
                code = CLOSE_IDLE;
                break;
            }
            _ = renew_lease.tick() => {
                // Renewing never refuses a socket that holds its lease.
                state.limiter.lease_socket(conn.user, &lease).await;
            }
            _ = &mut drain => {
                code = CLOSE_RESTART;
                break;
            }
            _ = &mut first_frame_grace, if awaiting_first_frame && !resume => {
                awaiting_first_frame = false;
                conn.release_all_but(&HashSet::new());
            }
            Some(answer) = pending.next(), if !pending.is_empty() => conn.deliver(answer),
            frame = stream.next(), if pending.len() < MAX_PENDING_SENDS_PER_SOCKET => {
                // Anything from the peer, a pong included, shows it is alive.
                idle.as_mut().reset(tokio::time::Instant::now() + state.config.idle_timeout);
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Binary(_))) => {
                        state.metrics.frame_in("binary");
                        conn.deliver(error_frame(None, ErrorCode::MalformedFrame, "frames are JSON text"));
                        continue;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(frame))) => {
                        code = frame.map_or(CLOSE_NO_STATUS, |f| f.code);
                        break;
                    }
                    None => {
                        code = CLOSE_ABNORMAL;
                        break;
                    }
                    Some(Err(error)) => {
                        tracing::debug!(conn = conn.id, %error, "socket read failed");
                        let too_big = matches!(
                            error.into_inner().downcast_ref::<tungstenite::Error>(),
                            Some(tungstenite::Error::Capacity(_))
                        );
                        code = if too_big { CLOSE_TOO_BIG } else { CLOSE_ABNORMAL };
                        break;
                    }
                };
                let frame = ClientFrame::decode(&text);
                state.metrics.frame_in(match &frame {
                    Ok(ClientFrame::MessageSend { .. }) => "message.send",
                    Ok(ClientFrame::Sync { .. }) => "sync",
                    Ok(ClientFrame::AuthRefresh { .. }) => "auth.refresh",
                    Ok(ClientFrame::MessageRead { .. }) => "message.read",
                    Ok(ClientFrame::TypingStart { .. }) => "typing.start",
                    Ok(ClientFrame::PresenceSet { .. }) => "presence.set",
                    Ok(ClientFrame::MessageEdit { .. }) => "message.edit",
                    Ok(ClientFrame::MessageDelete { .. }) => "message.delete",
                    Ok(ClientFrame::ReactionAdd { .. }) => "reaction.add",
                    Ok(ClientFrame::ReactionRemove { .. }) => "reaction.remove",
                    Err(_) => "invalid",
                });
                if std::mem::take(&mut awaiting_first_frame) {
                    let syncing: HashSet<ChannelId> = match &frame {
                        Ok(ClientFrame::Sync { payload, .. }) if payload.channels.is_empty() => {
                            conn.channels.read().unwrap_or_else(|e| e.into_inner()).clone()
                        }
                        Ok(ClientFrame::Sync { payload, .. }) => payload.channels.keys().copied().collect(),
                        _ => HashSet::new(),
                    };
                    conn.release_all_but(&syncing);
                }
                match frame {
                    Ok(ClientFrame::MessageSend { id, payload }) => {
                        // Membership first: only sends that would be published count against a
                        // window.
                        if !conn.is_member(payload.channel_id) {
                            state.metrics.send(SendOutcome::Rejected);
                            let message = "you are not a member of that channel";
                            conn.deliver(error_frame(Some(id.0), ErrorCode::NotAMember, message));
                            continue;
                        }
                        match limits.check(state, conn, &id, payload.channel_id).await {
                            LimitCheck::Pass => {}
                            LimitCheck::Refused => {
                                state.metrics.send(SendOutcome::Rejected);
                                continue;
                            }
                            LimitCheck::Close => {
                                code = CLOSE_RATE_LIMITED;
                                break;
                            }
                        }
                        let checked = changes::bounded(async {
                            if let Some(reply_to) = payload.reply_to {
                                changes::check_reply(state, payload.channel_id, reply_to).await?;
                            }
                            let attachments = changes::attachments(state, conn.user, &payload.attachments).await?;
                            let mentions = changes::mentions(state, payload.channel_id, &payload.content).await?;
                            Ok(SendChecked { mentions, attachments })
                        });
                        match checked.await {
                            Ok(checked) => {
                                let answer = start_send(state, conn, sender, id, payload, checked).await;
                                pending.push(Box::pin(answer));
                            }
                            Err(refused) => {
                                state.metrics.send(SendOutcome::Rejected);
                                conn.deliver(Utf8Bytes::from(refused.frame(&id).to_json()));
                            }
                        }
                    }
                    Ok(frame @ (ClientFrame::MessageEdit { .. }
                    | ClientFrame::MessageDelete { .. }
                    | ClientFrame::ReactionAdd { .. }
                    | ClientFrame::ReactionRemove { .. })) => {
                        let Some(ChangeFrame { id, channel_id: channel, message_id: message, change }) = frame.into_change()
                        else {
                            continue;
                        };
                        if !conn.is_member(channel) {
                            let text = "you are not a member of that channel";
                            conn.deliver(error_frame(Some(id.0), ErrorCode::NotAMember, text));
                            continue;
                        }
                        match limits.check(state, conn, &id, channel).await {
                            LimitCheck::Pass => {}
                            LimitCheck::Refused => continue,
                            LimitCheck::Close => {
                                code = CLOSE_RATE_LIMITED;
                                break;
                            }
                        }
                        match changes::prepare(state, conn.user, channel, message, change).await {
                            Ok(change) => {
                                let published = changes::publish(state, conn.user, id.clone(), channel, message, change).await;
                                pending.push(Box::pin(change_answer(published, id, channel, message)));
                            }
                            Err(refused) => conn.deliver(Utf8Bytes::from(refused.frame(&id).to_json())),
                        }
                    }
                    Ok(ClientFrame::AuthRefresh { id, payload }) => {
                        let frame = match state.authenticate(&payload.access_token) {
                            Ok(claims) if claims.sub == conn.user && claims.sid == conn.session => {
                                token_expiry.as_mut().reset(instant_of(claims.exp));
                                let expires_at = chrono::DateTime::from_timestamp(claims.exp, 0).unwrap_or_default();
                                ServerFrame::AuthRefreshed { id, payload: protocol::AuthRefreshedPayload { expires_at } }
                            }
                            _ => ServerFrame::error(id, ErrorCode::Unauthorized, "invalid, expired or another user's token"),
                        };
                        conn.deliver(Utf8Bytes::from(frame.to_json()));
                    }
                    Ok(ClientFrame::MessageRead { id, payload }) => {
                        if conn.is_member(payload.channel_id) {
                            reads.add(payload.channel_id, payload.seq);
                            arm_flush(flush.as_mut(), &mut flush_armed);
                        } else {
                            conn.deliver(error_frame(id, ErrorCode::NotAMember, "you are not a member of that channel"));
                        }
                    }
                    Ok(ClientFrame::PresenceSet { payload, .. }) => {
                        presence.set(payload.status);
                        arm_flush(flush.as_mut(), &mut flush_armed);
                    }
                    Ok(ClientFrame::TypingStart { id, payload }) => {
                        if conn.is_member(payload.channel_id) {
                            typing.start(state, conn.user, payload.channel_id).await;
                        } else {
                            conn.deliver(error_frame(id, ErrorCode::NotAMember, "you are not a member of that channel"));
                        }
                    }
                    Ok(ClientFrame::Sync { id, payload }) => match conn.syncs.clone().try_acquire_owned() {
                        Ok(permit) => {
                            tokio::spawn(crate::sync::run(state.clone(), conn.clone(), id, payload, permit));
                        }
                        Err(_) => {
                            let frame = ServerFrame::rate_limited(id, "syncs_per_socket", 1000);
                            conn.deliver(Utf8Bytes::from(frame.to_json()));
                        }
                    },
                    Err(error) => {
                        if text.contains(r#""message.send""#) {
                            state.metrics.send(SendOutcome::Rejected);
                        }
                        conn.deliver(error_frame(protocol::frame_id(&text), error.code(), error.to_string()));
                    }
                }
            }
        }
    }
    // Answer what is in flight before the socket goes, where the socket is still there.
    while let Some(answer) = pending.next().await {
        conn.deliver(answer);
    }
    reads.flush(state, conn.user);
    presence.flush(state, conn);
    code
}

/// What the checks of a send found: the members its content mentions (and whether it says
/// `@channel`), and its attachments described.
struct SendChecked {
    mentions: (Vec<UserId>, bool),
    attachments: Vec<AttachmentView>,
}

/// Queues the publish of a send (its sender a member, within limits), in the socket's frame
/// order; the returned future yields the `message.ack` or `error` frame.
async fn start_send(
    state: &AppState,
    conn: &ConnHandle,
    sender: &SenderView,
    id: shared::ids::ClientMsgId,
    payload: SendPayload,
    SendChecked { mentions: (mentions, mentions_channel), attachments }: SendChecked,
) -> impl Future<Output = Utf8Bytes> + use<> {
    let received = std::time::Instant::now();
    let message = StreamMessage {
        message_id: state.snowflake.next_id(),
        channel_id: payload.channel_id,
        sender: sender.clone(),
        client_msg_id: id,
        content: payload.content,
        content_type: ContentType::of(&attachments),
        reply_to: payload.reply_to,
        // Postgres keeps microseconds: live and stored copies must be equal.
        created_at: chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 6),
        mentions,
        mentions_channel,
        attachments,
    };
    let subject = state.subjects.publish(message.channel_id, state.partitions);
    let dedup_key = message.dedup_key();
    let encoded = serde_json::to_vec(&message).unwrap_or_default();
    let trace = new_traceparent();
    tracing::debug!(trace_id = trace_id(&trace), conn = conn.id, "send published");
    let published = state.publisher.submit(subject, dedup_key, encoded.into(), trace, false).await;
    let stream = state.stream.clone();
    let metrics = state.metrics.clone();
    async move {
        let result = published.await;
        metrics.send_ack_seconds.observe(received.elapsed().as_secs_f64());
        let frame = match result {
            Ok(ack) => {
                // A resend within the duplicate window: answer with the id stored first.
                let message_id = match ack.duplicate {
                    true => original_message_id(&stream, ack.sequence).await.unwrap_or(message.message_id),
                    false => message.message_id,
                };
                metrics.send(if ack.duplicate { SendOutcome::Duplicate } else { SendOutcome::Acked });
                ServerFrame::MessageAck {
                    id: message.client_msg_id,
                    payload: AckPayload {
                        status: AckStatus::Stored,
                        message_id,
                        channel_id: message.channel_id,
                    },
                }
            }
            Err(failure) => {
                metrics.send(SendOutcome::Failed);
                ServerFrame::error(
                    Some(message.client_msg_id.0),
                    publish_failure_code(&failure),
                    failure.to_string(),
                )
            }
        };
        Utf8Bytes::from(frame.to_json())
    }
}

/// The answer to a change once the stream has it (or not): `message.ack` naming the changed
/// message, or a retryable `error`.
async fn change_answer(
    published: impl Future<Output = Result<async_nats::jetstream::publish::PublishAck, PublishFailure>>,
    id: shared::ids::ClientMsgId,
    channel_id: ChannelId,
    message_id: shared::ids::MessageId,
) -> Utf8Bytes {
    let frame = match published.await {
        Ok(_) => ServerFrame::MessageAck {
            id,
            payload: AckPayload { status: AckStatus::Stored, message_id, channel_id },
        },
        Err(failure) => ServerFrame::error(Some(id.0), publish_failure_code(&failure), failure.to_string()),
    };
    Utf8Bytes::from(frame.to_json())
}

fn publish_failure_code(failure: &PublishFailure) -> ErrorCode {
    match failure {
        PublishFailure::NotConfirmed(_) => ErrorCode::PublishFailed,
        PublishFailure::ShuttingDown => ErrorCode::Unavailable,
    }
}

/// The send limits of one socket: the shared windows (per user, per channel) and the strikes
/// that close a socket which keeps sending after being told.
#[derive(Default)]
struct SendLimits {
    strikes: u32,
    told_at: Option<std::time::Instant>,
}

enum LimitCheck {
    Pass,
    /// Refused with `rate_limited` (already told).
    Refused,
    /// Too many strikes: close with 4029.
    Close,
}

impl SendLimits {
    /// Counts a frame that goes into the stream (a send or a change) against the limits.
    async fn check(
        &mut self,
        state: &AppState,
        conn: &ConnHandle,
        id: &shared::ids::ClientMsgId,
        channel: ChannelId,
    ) -> LimitCheck {
        let Verdict::Limited { limit, retry_after_ms } = state.limiter.send(conn.user, channel).await else {
            self.strikes = 0;
            self.told_at = None;
            return LimitCheck::Pass;
        };
        let frame = ServerFrame::rate_limited(Some(id.0.clone()), limit, retry_after_ms);
        conn.deliver(Utf8Bytes::from(frame.to_json()));
        // A strike is a send past the sender's own limit arriving after the first refusal
        // could have been read (not a burst in flight, not other users filling the channel's
        // window).
        let told = *self.told_at.get_or_insert_with(std::time::Instant::now);
        if limit == "sends_per_user" && told.elapsed() >= STRIKE_GRACE {
            self.strikes += 1;
            if self.strikes >= state.limiter.config().strikes_before_close {
                return LimitCheck::Close;
            }
        }
        LimitCheck::Refused
    }
}

/// The id of the message stored at `sequence` of the stream (the PubAck of a duplicate names
/// the original's sequence).
async fn original_message_id(
    stream: &async_nats::jetstream::stream::Stream,
    sequence: u64,
) -> Option<shared::ids::MessageId> {
    let stored = stream.direct_get(sequence).await.ok()?;
    serde_json::from_slice::<StreamMessage>(&stored.payload).ok().map(|m| m.message_id)
}

/// Starts the timer of pending reads and presence choices unless it is running.
fn arm_flush(flush: std::pin::Pin<&mut tokio::time::Sleep>, armed: &mut bool) {
    if !std::mem::replace(armed, true) {
        flush.reset(tokio::time::Instant::now() + crate::reads::READ_FLUSH);
    }
}

/// The moment of a token's `exp` (Unix seconds), as a timer deadline.
fn instant_of(exp: i64) -> tokio::time::Instant {
    let left = exp.saturating_sub(chrono::Utc::now().timestamp()).max(0);
    tokio::time::Instant::now() + std::time::Duration::from_secs(left as u64)
}

pub fn error_frame(id: Option<String>, code: ErrorCode, message: impl Into<String>) -> Utf8Bytes {
    Utf8Bytes::from(ServerFrame::error(id, code, message).to_json())
}

/// Writes queued frames until the socket is closed; then sends the close frame.
async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut outbound: mpsc::UnboundedReceiver<Outbound>,
    conn: ConnHandle,
) {
    loop {
        let frame = tokio::select! {
            biased;
            _ = conn.closing.cancelled() => break,
            frame = outbound.recv() => frame,
        };
        let (frame, live) = match frame {
            Some(Outbound::Frame { frame, live }) => (frame, live),
            Some(Outbound::Ping) => {
                tokio::select! {
                    biased;
                    _ = conn.closing.cancelled() => break,
                    sent = sink.send(Message::Ping(Default::default())) => if sent.is_err() { return },
                }
                continue;
            }
            Some(Outbound::Close) | None => break,
        };
        let bytes = frame.len();
        let frame_text = frame.clone();
        // A peer that stops reading blocks this send; closing must still get through.
        tokio::select! {
            biased;
            _ = conn.closing.cancelled() => break,
            sent = sink.send(Message::Text(frame)) => if sent.is_err() { return },
        }
        conn.metrics.frame_out(&frame_text);
        // Written (into the socket's buffer): no longer the gateway's memory.
        if live {
            conn.live_bytes.fetch_sub(bytes, Ordering::Relaxed);
        } else if conn.backlog_bytes.fetch_sub(bytes, Ordering::Relaxed) == bytes {
            conn.backlog_drained.notify_waiters();
        }
        conn.written.fetch_add(1, Ordering::Relaxed);
    }
    let code = conn.close_code.load(Ordering::Relaxed);
    // 1005 and 1006 only describe a close that came without a code; they are never sent.
    if matches!(code, CLOSE_NO_STATUS | CLOSE_ABNORMAL) {
        return;
    }
    let reason = match code {
        CLOSE_SLOW_CONSUMER => "slow consumer",
        CLOSE_RESTART => "service restart",
        CLOSE_TOO_BIG => "message too big",
        CLOSE_RATE_LIMITED => "rate limited",
        CLOSE_IDLE => "idle timeout",
        CLOSE_TOKEN_EXPIRED => "token expired",
        CLOSE_DELIVERIES_MISSED => "deliveries missed",
        crate::sessions::CLOSE_SESSION_REVOKED => "session revoked",
        _ => "",
    };
    let close = Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from_static(reason) }));
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        let _ = sink.send(close).await;
        let _ = sink.close().await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> Arc<GatewayMetrics> {
        Arc::new(GatewayMetrics::register(&mut prometheus_client::registry::Registry::default()))
    }

    /// The queued frames' lengths and budgets.
    fn drain(queue: &mut mpsc::UnboundedReceiver<Outbound>) -> Vec<(usize, bool)> {
        std::iter::from_fn(|| match queue.try_recv().ok()? {
            Outbound::Frame { frame, live } => Some((frame.len(), live)),
            Outbound::Ping | Outbound::Close => None,
        })
        .collect()
    }

    fn frame(bytes: usize) -> Utf8Bytes {
        Utf8Bytes::from("x".repeat(bytes))
    }

    #[test]
    fn live_frames_past_the_byte_budget_close_the_socket_with_4008() {
        let (conn, mut queue) =
            ConnHandle::new(UserId(uuid::Uuid::new_v4()), uuid::Uuid::new_v4(), 1000, metrics());
        conn.deliver(frame(400));
        conn.deliver(frame(400));
        assert!(!conn.closing.is_cancelled());
        // Written frames leave the budget.
        let Ok(Outbound::Frame { frame: written, .. }) = queue.try_recv() else { panic!("a frame") };
        conn.live_bytes.fetch_sub(written.len(), Ordering::Relaxed);
        conn.deliver(frame(400));
        assert!(!conn.closing.is_cancelled(), "800 of 1000 bytes queued");
        conn.deliver(frame(400));
        assert!(conn.closing.is_cancelled());
        assert_eq!(conn.close_code.load(Ordering::Relaxed), CLOSE_SLOW_CONSUMER);
    }

    #[test]
    fn a_sync_backlog_is_outside_the_budget_but_held_live_messages_are_inside() {
        let channel = ChannelId(uuid::Uuid::new_v4());
        let (conn, mut queue) =
            ConnHandle::new(UserId(uuid::Uuid::new_v4()), uuid::Uuid::new_v4(), 1000, metrics());
        conn.hold_channel(channel);
        conn.deliver_message(channel, ChannelSeq(5), frame(600));
        assert_eq!(conn.live_bytes.load(Ordering::Relaxed), 600);
        conn.release_channel(channel, |_, send| {
            for seq in 1..=5 {
                send(Some(ChannelSeq(seq)), frame(900));
            }
            Some(ChannelSeq(5))
        });
        assert!(!conn.closing.is_cancelled(), "4500 backlog bytes do not count");
        // The held copy of seq 5 was covered by the backlog: dropped, and its bytes released.
        assert_eq!(conn.live_bytes.load(Ordering::Relaxed), 0);
        let queued: Vec<bool> = drain(&mut queue).into_iter().map(|(_, live)| live).collect();
        assert_eq!(queued, [false; 5]);

        conn.hold_channel(channel);
        conn.deliver_message(channel, ChannelSeq(6), frame(600));
        conn.deliver_message(channel, ChannelSeq(7), frame(600));
        assert!(conn.closing.is_cancelled(), "held messages beyond the budget: 4008");
    }

    #[test]
    fn a_late_sync_sends_what_came_before_the_first_live_message_and_skips_what_was_sent() {
        let channel = ChannelId(uuid::Uuid::new_v4());
        let (conn, mut queue) =
            ConnHandle::new(UserId(uuid::Uuid::new_v4()), uuid::Uuid::new_v4(), 10_000, metrics());
        // Live delivery started at seq 50 before the client said where it was.
        conn.deliver_message(channel, ChannelSeq(50), frame(50));
        conn.deliver_message(channel, ChannelSeq(51), frame(51));
        assert_eq!(drain(&mut queue), [(50, true), (51, true)]);
        conn.hold_channel(channel);
        conn.release_channel(channel, |_, send| {
            for seq in 11..=53 {
                send(Some(ChannelSeq(seq)), frame(seq as usize));
            }
            Some(ChannelSeq(53))
        });
        let backlog: Vec<usize> = drain(&mut queue).into_iter().map(|(len, _)| len).collect();
        let expected: Vec<usize> = (11..=49).chain(52..=53).collect();
        assert_eq!(backlog, expected, "11..49 were never sent here; 50 and 51 were");
        // Now the socket has 1..=53: a sync from 0 sends nothing again.
        conn.hold_channel(channel);
        conn.release_channel(channel, |_, send| {
            for seq in 1..=53 {
                send(Some(ChannelSeq(seq)), frame(seq as usize));
            }
            Some(ChannelSeq(53))
        });
        assert!(drain(&mut queue).is_empty());
    }

    #[test]
    fn a_channel_named_by_the_first_sync_is_not_released_early() {
        let channel = ChannelId(uuid::Uuid::new_v4());
        let (conn, mut queue) =
            ConnHandle::new(UserId(uuid::Uuid::new_v4()), uuid::Uuid::new_v4(), 1000, metrics());
        conn.hold_until_first_frame(channel);
        conn.release_all_but(&HashSet::from([channel]));
        conn.deliver_message(channel, ChannelSeq(1), frame(300));
        conn.deliver_message(channel, ChannelSeq(2), frame(300));
        assert!(drain(&mut queue).is_empty(), "held for the sync's backlog");
    }

    #[test]
    fn waiting_for_the_first_frame_ends_at_half_the_budget_instead_of_closing() {
        let channel = ChannelId(uuid::Uuid::new_v4());
        let (conn, mut queue) =
            ConnHandle::new(UserId(uuid::Uuid::new_v4()), uuid::Uuid::new_v4(), 1000, metrics());
        conn.hold_until_first_frame(channel);
        conn.deliver_message(channel, ChannelSeq(1), frame(300));
        assert!(queue.try_recv().is_err(), "held");
        conn.deliver_message(channel, ChannelSeq(2), frame(300));
        assert!(!conn.closing.is_cancelled());
        let queued: Vec<usize> = drain(&mut queue).into_iter().map(|(len, _)| len).collect();
        assert_eq!(queued, [300, 300], "released in order once past half the budget");
        conn.deliver_message(channel, ChannelSeq(3), frame(300));
        assert_eq!(drain(&mut queue), [(300, true)], "no longer held");
    }
}
