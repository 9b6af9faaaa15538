//! What a socket does with each frame it reads: decode it, then one short handler per frame
//! kind, in the manner of mini-redis's `Command::from_frame(..).apply(..)`. A handler answers
//! on the socket's queue and says, as a [`Flow`], what the read loop does next.

use super::checks::{Checked, Checks};
use super::send::{LimitCheck, SendLimits, change_answer, start_send};
use crate::changes;
use crate::conn::ConnHandle;
use crate::conn::close::{CLOSE_ABNORMAL, CLOSE_NO_STATUS, CLOSE_RATE_LIMITED, CLOSE_TOO_BIG};
use crate::live::presence::PendingPresence;
use crate::live::reads::PendingReads;
use crate::live::typing::TypingThrottle;
use crate::metrics::SendOutcome;
use crate::state::AppState;
use axum::extract::ws::{Message, Utf8Bytes};
use futures::stream::FuturesUnordered;
use shared::ids::{ChannelId, ClientMsgId};
use shared::protocol::{
    self, AuthRefreshPayload, ChangeFrame, ClientFrame, ErrorCode, PresenceSetPayload, ReadPayload,
    SendPayload, SenderView, ServerFrame, SyncPayload, TypingPayload,
};
use std::collections::HashSet;
use std::pin::Pin;

/// What the read loop does after a frame.
pub enum Flow {
    /// Reads on.
    Continue,
    /// Reads on; read positions or presence choices wait for the flush timer.
    Flush,
    /// Reads on; the socket now lives until the new token's `exp` (Unix seconds).
    Refreshed { exp: i64 },
    /// Closes the socket with this code.
    Close(u16),
}

/// The answer of a frame bound for the stream, once the stream has it (or not).
type Answer = Pin<Box<dyn Future<Output = Utf8Bytes> + Send>>;

const NOT_A_MEMBER: &str = "you are not a member of that channel";

/// One socket's frame handling and what it keeps between frames.
pub struct Frames<'a> {
    conn: &'a ConnHandle,
    state: &'a AppState,
    sender: &'a SenderView,
    /// Sends and changes published (in the order they were read), awaiting their answers,
    /// which come as the stream confirms them.
    pub(super) pending: FuturesUnordered<Answer>,
    /// Until the socket's first frame, live messages are held (see `Conn::hold_until_first_frame`).
    pub(super) awaiting_first_frame: bool,
    /// Sends and changes read, whose checks are out (taken in read order by the read loop).
    pub(super) checks: Checks<'a>,
    /// Rate-limited frames in a row after being told; past the configured number the
    /// socket is closed.
    limits: SendLimits,
    reads: PendingReads,
    presence: PendingPresence,
    typing: TypingThrottle,
}

impl<'a> Frames<'a> {
    pub fn new(conn: &'a ConnHandle, state: &'a AppState, sender: &'a SenderView) -> Self {
        Self {
            conn,
            state,
            sender,
            pending: FuturesUnordered::new(),
            awaiting_first_frame: true,
            checks: Checks::new(state, conn),
            limits: SendLimits::default(),
            reads: PendingReads::default(),
            presence: PendingPresence::default(),
            typing: TypingThrottle::default(),
        }
    }

    /// What came from the peer: a text frame is handled; anything else is answered or ends
    /// the socket.
    pub async fn message(&mut self, message: Option<Result<Message, axum::Error>>) -> Flow {
        match message {
            Some(Ok(Message::Text(text))) => self.text(text).await,
            Some(Ok(Message::Binary(_))) => {
                self.state.metrics.frame_in("binary");
                self.refuse(ServerFrame::error(None, ErrorCode::MalformedFrame, "frames are JSON text"));
                Flow::Continue
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => Flow::Continue,
            Some(Ok(Message::Close(frame))) => Flow::Close(frame.map_or(CLOSE_NO_STATUS, |f| f.code)),
            None => Flow::Close(CLOSE_ABNORMAL),
            Some(Err(error)) => {
                tracing::debug!(conn = self.conn.id, %error, "socket read failed");
                let too_big = matches!(
                    error.into_inner().downcast_ref::<tungstenite::Error>(),
                    Some(tungstenite::Error::Capacity(_))
                );
                Flow::Close(if too_big { CLOSE_TOO_BIG } else { CLOSE_ABNORMAL })
            }
        }
    }

    /// A text frame: decoded, counted, then handled by its kind.
    async fn text(&mut self, text: Utf8Bytes) -> Flow {
        let frame = ClientFrame::decode(&text);
        self.state.metrics.frame_in(frame.as_ref().map_or("invalid", kind));
        if std::mem::take(&mut self.awaiting_first_frame) {
            self.first_frame(frame.as_ref().ok());
        }
        match frame {
            Ok(frame) => self.handle(frame).await,
            Err(error) => {
                if text.contains(r#""message.send""#) {
                    self.state.metrics.send(SendOutcome::Rejected);
                }
                self.refuse(ServerFrame::error(protocol::frame_id(&text), error.code(), error.to_string()));
                Flow::Continue
            }
        }
    }

    /// The socket's first frame ends the hold of live messages, but for the channels it
    /// syncs (their holds end with their backlog).
    fn first_frame(&self, frame: Option<&ClientFrame>) {
        let syncing: HashSet<ChannelId> = match frame {
            Some(ClientFrame::Sync { payload, .. }) if payload.channels.is_empty() => {
                self.conn.channels.read().unwrap_or_else(|e| e.into_inner()).clone()
            }
            Some(ClientFrame::Sync { payload, .. }) => payload.channels.keys().copied().collect(),
            _ => HashSet::new(),
        };
        self.conn.release_all_but(&syncing);
    }

    async fn handle(&mut self, frame: ClientFrame) -> Flow {
        match frame {
            ClientFrame::MessageSend { id, payload } => self.send(id, payload),
            frame @ (ClientFrame::MessageEdit { .. }
            | ClientFrame::MessageDelete { .. }
            | ClientFrame::ReactionAdd { .. }
            | ClientFrame::ReactionRemove { .. }) => match frame.into_change() {
                Some(change) => self.change(change),
                None => Flow::Continue,
            },
            ClientFrame::AuthRefresh { id, payload } => self.refresh(id, payload),
            ClientFrame::MessageRead { id, payload } => self.read(id, payload),
            ClientFrame::PresenceSet { payload, .. } => self.presence_set(payload),
            ClientFrame::TypingStart { id, payload } => Box::pin(self.typing_start(id, payload)).await,
            ClientFrame::Sync { id, payload } => self.sync(id, payload),
        }
    }

    /// `message.send`: the send goes through its checks (see [`Checks`]; the database says
    /// whether a sender the socket does not know as a member is one); refused or published in
    /// its turn, by [`Frames::checked`].
    fn send(&mut self, id: ClientMsgId, payload: SendPayload) -> Flow {
        let member = self.conn.is_member(payload.channel_id);
        self.checks.send(id, payload, member);
        Flow::Continue
    }

    /// An edit, delete or reaction goes through its checks, like a send.
    fn change(&mut self, frame: ChangeFrame) -> Flow {
        let ChangeFrame { id, channel_id: channel, message_id: message, change } = frame;
        let member = self.conn.is_member(channel);
        self.checks.change(id, (channel, message), change, member);
        Flow::Continue
    }

    /// Answers a frame refused as it was read (a non-member's read position or typing signal),
    /// or one that could not be read: at once, or after the sends and changes read before it
    /// whose checks are still out.
    fn refuse(&mut self, answer: ServerFrame) {
        match self.checks.is_empty() {
            true => self.conn.deliver_frame(&answer),
            false => self.checks.refused(answer),
        }
    }

    /// The next send or change in read order whose checks are done: published (its answer
    /// comes when the stream has it), or refused.
    pub async fn checked(&mut self, checked: Checked) -> Flow {
        let (state, conn) = (self.state, self.conn);
        match checked {
            Checked::Refused(answer) => conn.deliver_frame(&answer),
            Checked::Limited { id, send, limit, retry_after_ms } => {
                if send {
                    state.metrics.send(SendOutcome::Rejected);
                }
                if let LimitCheck::Close = self.limits.refused(state, conn, &id, limit, retry_after_ms) {
                    return Flow::Close(CLOSE_RATE_LIMITED);
                }
            }
            Checked::Send { id, counted, payload, checked } => {
                self.limits.passed(counted);
                match checked {
                    Ok(checked) => {
                        // Boxed, as every await below that holds a large future: inline, it
                        // would size the read loop's future, which every idle socket keeps.
                        let answer =
                            Box::pin(start_send(state, conn, self.sender, id, payload, checked)).await;
                        self.pending.push(Box::pin(answer));
                    }
                    Err(refused) => {
                        state.metrics.send(SendOutcome::Rejected);
                        conn.deliver_frame(&refused.frame(&id));
                    }
                }
            }
            Checked::Change { id, counted, channel, message, prepared } => {
                self.limits.passed(counted);
                match prepared {
                    Ok(change) => {
                        let published = Box::pin(changes::publish(
                            state,
                            conn.user,
                            id.clone(),
                            channel,
                            message,
                            change,
                        ))
                        .await;
                        self.pending.push(Box::pin(change_answer(published, id, channel, message)));
                    }
                    Err(refused) => conn.deliver_frame(&refused.frame(&id)),
                }
            }
        }
        Flow::Continue
    }

    /// Sends and changes read and not answered yet: checks out, or published.
    pub fn in_flight(&self) -> usize {
        self.checks.len() + self.pending.len()
    }

    /// `auth.refresh`: a newer token of the same user and session extends the socket's life.
    fn refresh(&mut self, id: Option<String>, payload: AuthRefreshPayload) -> Flow {
        let (frame, flow) = match self.state.sessions.authenticate(&payload.access_token) {
            Ok(claims) if claims.sub == self.conn.user && claims.sid == self.conn.session => {
                let expires_at = chrono::DateTime::from_timestamp(claims.exp, 0).unwrap_or_default();
                let payload = protocol::AuthRefreshedPayload { expires_at };
                (ServerFrame::AuthRefreshed { id, payload }, Flow::Refreshed { exp: claims.exp })
            }
            _ => {
                let message = "invalid, expired or another user's token";
                (ServerFrame::error(id, ErrorCode::Unauthorized, message), Flow::Continue)
            }
        };
        self.conn.deliver_frame(&frame);
        flow
    }

    /// `message.read`: the position waits for the next flush.
    fn read(&mut self, id: Option<String>, payload: ReadPayload) -> Flow {
        if !self.conn.is_member(payload.channel_id) {
            self.refuse(ServerFrame::error(id, ErrorCode::NotAMember, NOT_A_MEMBER));
            return Flow::Continue;
        }
        self.reads.add(payload.channel_id, payload.seq);
        Flow::Flush
    }

    /// `presence.set`: the choice waits for the next flush (the last one wins).
    fn presence_set(&mut self, payload: PresenceSetPayload) -> Flow {
        self.presence.set(payload.status);
        Flow::Flush
    }

    /// `typing.start`: published, at most once per `TYPING_REPUBLISH` per channel.
    async fn typing_start(&mut self, id: Option<String>, payload: TypingPayload) -> Flow {
        if self.conn.is_member(payload.channel_id) {
            self.typing
                .start(&self.state.nats, &self.state.subjects, self.conn.user, payload.channel_id)
                .await;
        } else {
            self.refuse(ServerFrame::error(id, ErrorCode::NotAMember, NOT_A_MEMBER));
        }
        Flow::Continue
    }

    /// `sync`: runs on its own task, one at a time per socket and one waiting at most.
    fn sync(&mut self, id: Option<String>, payload: SyncPayload) -> Flow {
        match self.conn.syncs.clone().try_acquire_owned() {
            Ok(place) => {
                let syncer = self.state.syncer.clone();
                tokio::spawn(syncer.run(self.conn.clone(), id, payload, place));
            }
            Err(_) => {
                let frame = ServerFrame::rate_limited(id, "syncs_per_socket", 1000);
                self.conn.deliver_frame(&frame);
            }
        }
        Flow::Continue
    }

    /// Writes pending read positions and presence choices, in the background.
    pub fn flush(&mut self) -> Flow {
        let receipts = self.state.config.receipts_max_members;
        self.reads.flush(&self.state.db, &self.state.fanout, self.conn.user, receipts);
        self.presence.flush(&self.state.presence, self.conn);
        Flow::Continue
    }

    /// Time for a ping.
    pub fn ping(&self) -> Flow {
        self.conn.queue.ping();
        Flow::Continue
    }

    /// Renews the socket's lease among its user's (never refused to a socket that holds it).
    /// (`&mut`: a `&Frames` held across an await would need `Frames: Sync`, which its
    /// pending answers are not.)
    pub async fn renew_lease(&mut self, lease: &str) -> Flow {
        Box::pin(self.state.limiter.lease_socket(self.conn.user, lease)).await;
        Flow::Continue
    }

    /// No first frame came within the grace: the held live messages go out.
    pub fn first_frame_grace_over(&mut self) -> Flow {
        self.awaiting_first_frame = false;
        self.conn.release_all_but(&HashSet::new());
        Flow::Continue
    }

    /// A send's or change's answer, now that the stream has it (or not).
    pub fn answer(&self, answer: Utf8Bytes) -> Flow {
        self.conn.deliver(answer);
        Flow::Continue
    }

    /// Answers what is in flight before the socket goes, where the socket is still there,
    /// and writes what is pending: every send and change read is checked, then published or
    /// refused, then answered.
    pub async fn finish(mut self) {
        use futures::StreamExt as _;
        while let Some(checked) = self.checks.next().await {
            // Closing already: a last strike changes nothing.
            let _ = self.checked(checked).await;
        }
        while let Some(answer) = self.pending.next().await {
            self.conn.deliver(answer);
        }
        self.flush();
    }
}

/// The name of a frame's kind, as counted.
fn kind(frame: &ClientFrame) -> &'static str {
    match frame {
        ClientFrame::MessageSend { .. } => "message.send",
        ClientFrame::Sync { .. } => "sync",
        ClientFrame::AuthRefresh { .. } => "auth.refresh",
        ClientFrame::MessageRead { .. } => "message.read",
        ClientFrame::TypingStart { .. } => "typing.start",
        ClientFrame::PresenceSet { .. } => "presence.set",
        ClientFrame::MessageEdit { .. } => "message.edit",
        ClientFrame::MessageDelete { .. } => "message.delete",
        ClientFrame::ReactionAdd { .. } => "reaction.add",
        ClientFrame::ReactionRemove { .. } => "reaction.remove",
    }
}
