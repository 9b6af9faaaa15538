//! The WebSocket endpoint `GET /ws`. The access token is checked before the upgrade (401
//! otherwise), from `Authorization: Bearer` or, for browsers, the subprotocol list
//! `chat.v1, bearer.<token>`. Each socket has a reader (decodes frames, validates, publishes,
//! answers acks as PubAcks arrive, pipelined) and a writer fed by one queue bounded in bytes; a
//! socket whose live frames overflow it is closed with 4008 so it never slows anyone else
//! down. The backlog of a `sync` (itself capped at `sync_backlog_max` messages, one sync at a
//! time per socket) is queued outside that budget, so a large resume over a slow link does not
//! get a healthy client cut off by the live messages arriving meanwhile.

use crate::auth::bearer_token;
use crate::error::AppError;
use crate::publish::PublishFailure;
use crate::state::AppState;
use crate::store;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::Response;
use futures::stream::{FuturesUnordered, SplitSink};
use futures::{SinkExt, StreamExt};
use shared::events::StreamMessage;
use shared::ids::{ChannelId, ChannelSeq, UserId};
use shared::protocol::{
    self, AckPayload, AckStatus, ClientFrame, ErrorCode, SendPayload, SenderView, ServerFrame,
};
use std::collections::HashMap;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Close code for a socket that could not keep up with its deliveries.
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;
/// Close code for a message above the size limit.
pub const CLOSE_TOO_BIG: u16 = 1009;
/// Close code when the gateway shuts down ("service restart").
pub const CLOSE_RESTART: u16 = 1012;
/// How long live messages wait for a new socket's first frame (a `sync`, typically).
const FIRST_FRAME_GRACE: std::time::Duration = std::time::Duration::from_secs(1);
/// Sends of one socket awaiting their PubAck, at most; past that the socket is not read.
const MAX_PENDING_SENDS_PER_SOCKET: usize = 256;

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

/// A socket as the rest of the gateway sees it: who it is, which channels it may use, and
/// its outbound queue.
#[derive(Clone)]
pub struct ConnHandle {
    pub id: u64,
    pub user: UserId,
    pub channels: Arc<RwLock<HashSet<ChannelId>>>,
    outbound: mpsc::UnboundedSender<Outbound>,
    /// Bytes of live frames queued or held and not yet written; bounded by `queue_max_bytes`.
    live_bytes: Arc<AtomicUsize>,
    queue_max_bytes: usize,
    pub closing: CancellationToken,
    close_code: Arc<AtomicU16>,
    /// Per channel: the last `seq` sent to this socket, and live messages held during a sync.
    cursors: Arc<Mutex<HashMap<ChannelId, Cursor>>>,
    /// Serialises the socket's syncs.
    pub sync_lock: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Default)]
struct Cursor {
    last_seq: ChannelSeq,
    held: Option<Vec<(ChannelSeq, Utf8Bytes)>>,
}

/// A frame on its way to the writer, and whose budget it is charged to.
pub struct Outbound {
    frame: Utf8Bytes,
    live: bool,
}

impl ConnHandle {
    fn new(user: UserId, queue_max_bytes: usize) -> (Self, mpsc::UnboundedReceiver<Outbound>) {
        // Unbounded as a channel, bounded in bytes by `live_bytes` (live frames) and by the
        // sync backlog cap (backlog frames).
        let (outbound, rx) = mpsc::unbounded_channel();
        let conn = Self {
            id: NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed),
            user,
            channels: Arc::new(RwLock::new(HashSet::new())),
            outbound,
            live_bytes: Arc::default(),
            queue_max_bytes,
            closing: CancellationToken::new(),
            close_code: Arc::new(AtomicU16::new(CLOSE_RESTART)),
            cursors: Arc::default(),
            sync_lock: Arc::default(),
        };
        (conn, rx)
    }

    /// Charges `bytes` of live frames to the socket's budget; past it, closes the socket with
    /// 4008 and says no.
    fn charge(&self, bytes: usize) -> bool {
        let before = self.live_bytes.fetch_add(bytes, Ordering::Relaxed);
        if before + bytes > self.queue_max_bytes {
            self.live_bytes.fetch_sub(bytes, Ordering::Relaxed);
            self.close(CLOSE_SLOW_CONSUMER);
            return false;
        }
        true
    }

    /// Queues a live frame (delivery, ack, error); past the byte budget the socket is closed
    /// with 4008 instead of waiting.
    pub fn deliver(&self, frame: Utf8Bytes) {
        if self.charge(frame.len()) {
            let _ = self.outbound.send(Outbound { frame, live: true });
        }
    }

    /// Queues a frame of a sync's backlog, outside the live budget.
    fn deliver_backlog(&self, frame: Utf8Bytes) {
        let _ = self.outbound.send(Outbound { frame, live: false });
    }

    /// Moves a held frame (already charged) to the queue.
    fn deliver_held(&self, frame: Utf8Bytes) {
        let _ = self.outbound.send(Outbound { frame, live: true });
    }

    /// Queues a channel's message unless this socket already got its `seq`; during a sync of
    /// the channel the message is held instead. Called in `seq` order per channel.
    pub fn deliver_message(&self, channel: ChannelId, seq: ChannelSeq, frame: Utf8Bytes) {
        let mut cursors = self.cursors.lock().unwrap_or_else(|e| e.into_inner());
        let cursor = cursors.entry(channel).or_default();
        if let Some(held) = cursor.held.as_mut() {
            // Held frames take the live budget: a hold is memory like the queue.
            if self.charge(frame.len()) {
                held.push((seq, frame));
            }
            return;
        }
        if seq > cursor.last_seq {
            cursor.last_seq = seq;
            self.deliver(frame);
        }
    }

    /// Starts holding the channel's live messages (a sync is reading its backlog).
    pub fn hold_channel(&self, channel: ChannelId) {
        let mut cursors = self.cursors.lock().unwrap_or_else(|e| e.into_inner());
        cursors.entry(channel).or_default().held.get_or_insert_with(Vec::new);
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
        let already = cursor.last_seq;
        let mut send = |seq: Option<ChannelSeq>, frame| {
            if seq.is_none_or(|seq| seq > already) {
                self.deliver_backlog(frame);
            }
        };
        let mut last = backlog(already, &mut send).map_or(already, |last| last.max(already));
        for (seq, frame) in held {
            if seq > last {
                last = seq;
                self.deliver_held(frame);
            } else {
                self.live_bytes.fetch_sub(frame.len(), Ordering::Relaxed);
            }
        }
        cursor.last_seq = last;
    }

    /// Releases every held channel but those in `keep` (a sync is about to release them).
    pub fn release_all_but(&self, keep: &HashSet<ChannelId>) {
        let held: Vec<ChannelId> = {
            let cursors = self.cursors.lock().unwrap_or_else(|e| e.into_inner());
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

    /// Asks the writer to close the socket with `code` (the first code asked for wins).
    pub fn close(&self, code: u16) {
        if !self.closing.is_cancelled() {
            self.close_code.store(code, Ordering::Relaxed);
            self.closing.cancel();
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

/// `GET /ws`: authenticates, registers the socket's channels, then upgrades.
pub async fn upgrade(
    State(state): State<AppState>,
    HandshakeToken(token): HandshakeToken,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, AppError> {
    let user = state.tokens.verify(&token)?.sub;
    let ws = ws.map_err(|r| AppError::Rejected { status: r.status(), message: r.body_text() })?;
    let sender = store::users::sender_view(&state.db, user).await?.ok_or(AppError::Unauthorized)?;
    let (conn, outbound) = ConnHandle::new(user, state.config.socket_queue_bytes);
    state.fanout.register(&conn);
    let registration = Registration { state: state.clone(), conn: conn.clone() };
    let channels = store::channels::member_channel_ids(&state.db, user).await?;
    // Live messages wait for the client's first frame: if it is a `sync`, its backlog goes
    // out first, so a resuming client never sees a live message before the ones it missed.
    for channel in &channels {
        conn.hold_channel(*channel);
    }
    state.fanout.join(&conn, channels).await;
    Ok(ws
        .protocols([protocol::SUBPROTOCOL])
        .max_message_size(state.config.max_ws_message_bytes)
        // Browsers send a message as one frame: a frame may be as large as a message.
        .max_frame_size(state.config.max_ws_message_bytes)
        .write_buffer_size(16 * 1024)
        .on_upgrade(move |socket| serve(socket, registration, outbound, sender)))
}

/// Unregisters the socket from the fanout however the connection ends, even if the upgrade
/// never completes.
struct Registration {
    state: AppState,
    conn: ConnHandle,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.state.fanout.unregister(&self.conn);
        self.conn.closing.cancel();
    }
}

async fn serve(
    socket: WebSocket,
    registration: Registration,
    outbound: mpsc::UnboundedReceiver<Outbound>,
    sender: SenderView,
) {
    let conn = registration.conn.clone();
    let state = registration.state.clone();
    let (sink, stream) = socket.split();
    let writer = tokio::spawn(write_loop(sink, outbound, conn.clone()));
    let shutdown = state.shutdown.clone();
    tokio::select! {
        _ = read_loop(stream, &conn, &state, &sender) => {}
        _ = shutdown.cancelled() => conn.close(CLOSE_RESTART),
    }
    conn.close(1000);
    drop(registration);
    let _ = writer.await;
}

async fn read_loop(
    mut stream: futures::stream::SplitStream<WebSocket>,
    conn: &ConnHandle,
    state: &AppState,
    sender: &SenderView,
) {
    let mut pending = FuturesUnordered::new();
    let first_frame_grace = tokio::time::sleep(FIRST_FRAME_GRACE);
    tokio::pin!(first_frame_grace);
    let mut awaiting_first_frame = true;
    loop {
        tokio::select! {
            _ = conn.closing.cancelled() => break,
            _ = &mut first_frame_grace, if awaiting_first_frame => {
                awaiting_first_frame = false;
                conn.release_all_but(&HashSet::new());
            }
            Some(answer) = pending.next(), if !pending.is_empty() => conn.deliver(answer),
            frame = stream.next(), if pending.len() < MAX_PENDING_SENDS_PER_SOCKET => {
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Binary(_))) => {
                        conn.deliver(error_frame(None, ErrorCode::MalformedFrame, "frames are JSON text"));
                        continue;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Err(error)) => {
                        tracing::debug!(conn = conn.id, %error, "socket read failed");
                        if matches!(error.into_inner().downcast_ref::<tungstenite::Error>(), Some(tungstenite::Error::Capacity(_))) {
                            conn.close(CLOSE_TOO_BIG);
                        }
                        break;
                    }
                };
                let frame = ClientFrame::decode(&text);
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
                        if let Some(send) = start_send(state, conn, sender, id, payload).await {
                            pending.push(send);
                        }
                    }
                    Ok(ClientFrame::Sync { id, payload }) => {
                        tokio::spawn(crate::sync::run(state.clone(), conn.clone(), id, payload));
                    }
                    Err(error) => conn.deliver(error_frame(protocol::frame_id(&text), error.code(), error.to_string())),
                }
            }
        }
    }
    // Answer what is in flight before the socket goes, where the socket is still there.
    while let Some(answer) = pending.next().await {
        conn.deliver(answer);
    }
}

/// Validates a send and queues its publish, in the socket's frame order; the returned future
/// yields the `message.ack` or `error` frame. Invalid sends are answered at once.
async fn start_send(
    state: &AppState,
    conn: &ConnHandle,
    sender: &SenderView,
    id: shared::ids::ClientMsgId,
    payload: SendPayload,
) -> Option<impl Future<Output = Utf8Bytes> + use<>> {
    if !conn.is_member(payload.channel_id) {
        conn.deliver(error_frame(Some(id.0), ErrorCode::NotAMember, "you are not a member of that channel"));
        return None;
    }
    let message = StreamMessage {
        message_id: state.snowflake.next_id(),
        channel_id: payload.channel_id,
        sender: sender.clone(),
        client_msg_id: id,
        content: payload.content,
        content_type: payload.content_type,
        reply_to: payload.reply_to,
        // Postgres keeps microseconds: live and stored copies must be equal.
        created_at: chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 6),
    };
    let subject = state.subjects.publish(message.channel_id, state.partitions);
    let dedup_key = message.dedup_key();
    let encoded = serde_json::to_vec(&message).unwrap_or_default();
    let published = state.publisher.submit(subject, dedup_key, encoded.into()).await;
    let stream = state.stream.clone();
    Some(async move {
        let frame = match published.await {
            Ok(ack) => {
                // A resend within the duplicate window: answer with the id stored first.
                let message_id = match ack.duplicate {
                    true => original_message_id(&stream, ack.sequence).await.unwrap_or(message.message_id),
                    false => message.message_id,
                };
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
                let code = match failure {
                    PublishFailure::NotConfirmed(_) => ErrorCode::PublishFailed,
                    PublishFailure::ShuttingDown => ErrorCode::Unavailable,
                };
                ServerFrame::error(Some(message.client_msg_id.0), code, failure.to_string())
            }
        };
        Utf8Bytes::from(frame.to_json())
    })
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
        let Some(Outbound { frame, live }) = frame else { break };
        let bytes = frame.len();
        // A peer that stops reading blocks this send; closing must still get through.
        tokio::select! {
            biased;
            _ = conn.closing.cancelled() => break,
            sent = sink.send(Message::Text(frame)) => if sent.is_err() { return },
        }
        // Written (into the socket's buffer): no longer the gateway's memory.
        if live {
            conn.live_bytes.fetch_sub(bytes, Ordering::Relaxed);
        }
    }
    let code = conn.close_code.load(Ordering::Relaxed);
    let reason = match code {
        CLOSE_SLOW_CONSUMER => "slow consumer",
        CLOSE_RESTART => "service restart",
        CLOSE_TOO_BIG => "message too big",
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

    fn frame(bytes: usize) -> Utf8Bytes {
        Utf8Bytes::from("x".repeat(bytes))
    }

    #[test]
    fn live_frames_past_the_byte_budget_close_the_socket_with_4008() {
        let (conn, mut queue) = ConnHandle::new(UserId(uuid::Uuid::new_v4()), 1000);
        conn.deliver(frame(400));
        conn.deliver(frame(400));
        assert!(!conn.closing.is_cancelled());
        // Written frames leave the budget.
        let written = queue.try_recv().unwrap();
        conn.live_bytes.fetch_sub(written.frame.len(), Ordering::Relaxed);
        conn.deliver(frame(400));
        assert!(!conn.closing.is_cancelled(), "800 of 1000 bytes queued");
        conn.deliver(frame(400));
        assert!(conn.closing.is_cancelled());
        assert_eq!(conn.close_code.load(Ordering::Relaxed), CLOSE_SLOW_CONSUMER);
    }

    #[test]
    fn a_sync_backlog_is_outside_the_budget_but_held_live_messages_are_inside() {
        let channel = ChannelId(uuid::Uuid::new_v4());
        let (conn, mut queue) = ConnHandle::new(UserId(uuid::Uuid::new_v4()), 1000);
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
        let queued: Vec<bool> = std::iter::from_fn(|| queue.try_recv().ok()).map(|o| o.live).collect();
        assert_eq!(queued, [false; 5]);

        conn.hold_channel(channel);
        conn.deliver_message(channel, ChannelSeq(6), frame(600));
        conn.deliver_message(channel, ChannelSeq(7), frame(600));
        assert!(conn.closing.is_cancelled(), "held messages beyond the budget: 4008");
    }
}
