//! One socket's loop: sends at its scheduled times (skipping when the window is full), reads
//! acks, deliveries and errors, and keeps what the checker needs. With a [`Redial`] a socket
//! that drops is opened again on another gateway, resumed with `sync` from the last `seq`
//! seen, and its unacked sends are written again with the same client ids.

use crate::content::{content, scheduled_offset};
use crate::delivery;
use crate::error::LoadgenError;
use crate::measure::Progress;
use crate::rate::Schedule;
use crate::reconnect::Redial;
use crate::record::{Seen, SocketRecord, client_id, send_key};
use crate::scenario::Member;
use shared::ids::ChannelSeq;
use shared::local::client::{ChatClient, ChatSocket, ClientError};
use shared::protocol::ServerFrame;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long a new socket may take to answer its first `sync` with `sync.done`.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest wait for one frame before the loop looks at its tokens again.
pub const READ_SLICE: Duration = Duration::from_millis(200);

/// How a socket sends: its schedule (none for receivers), window and message size.
#[derive(Debug, Clone, Copy)]
pub struct SendPlan {
    pub schedule: Option<Schedule>,
    pub window: usize,
    pub message_bytes: usize,
    /// The instant scheduled times in message contents are counted from.
    pub epoch: Instant,
}

/// What every socket task of a run shares: the progress counters, Ctrl-C (`stop`: no more
/// sends) and the end of the run (`finish`).
#[derive(Debug, Clone)]
pub struct Controls {
    pub progress: Arc<Progress>,
    pub stop: CancellationToken,
    pub finish: CancellationToken,
}

impl Controls {
    /// Fresh progress counters and a fresh finish signal, stopped by `stop` (Ctrl-C).
    pub fn new(stop: &CancellationToken) -> Self {
        Self { progress: Arc::new(Progress::default()), stop: stop.clone(), finish: CancellationToken::new() }
    }
}

/// Opens the member's socket with a `sync` of its channel and waits for `sync.done`, so live
/// deliveries are flowing before the load starts.
pub async fn connect(member: &Member) -> Result<ChatSocket, LoadgenError> {
    let mut socket = member.client.resume(&member.ws_url, &[(member.channel, 0)]).await?;
    let deadline = Instant::now() + READY_TIMEOUT;
    let not_ready = LoadgenError::NotReady { index: member.index, secs: READY_TIMEOUT.as_secs() };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match socket.next_frame(left).await? {
            Some(ServerFrame::SyncDone { .. }) => return Ok(socket),
            Some(_) => continue,
            None => return Err(not_ready),
        }
    }
}

/// A send awaiting its answer: when it was due, and its number (resends go in that order).
#[derive(Debug, Clone, Copy)]
struct Pending {
    at: Instant,
    k: u64,
}

/// A client between a drop and being caught up again.
#[derive(Debug)]
struct Recovering {
    dropped_at: Instant,
    /// `sync.done` of the channel came on the new socket.
    synced: bool,
    /// Sends unacked at the drop, not answered yet.
    outstanding: HashSet<String>,
}

/// The state of one running socket.
struct SocketLoop {
    record: SocketRecord,
    members: usize,
    plan: SendPlan,
    /// Client id → the send awaiting its answer.
    pending: HashMap<String, Pending>,
    progress: Arc<Progress>,
    /// The gateway the socket is on now.
    gateway: usize,
    /// The highest `seq` of the channel the client has, over all its sockets.
    last_seq: i64,
    recovering: Option<Recovering>,
}

/// What the loop does after a frame: nothing, or `sync` again from a `seq` (a truncated
/// backlog).
type SyncAgain = Option<i64>;

/// Runs one socket until `finish`; sends stop at the schedule's end or at `stop`. Without
/// `redial` a socket that drops stays closed.
pub async fn run(
    member: Member,
    mut socket: ChatSocket,
    plan: SendPlan,
    redial: Option<Redial>,
    controls: Controls,
) -> SocketRecord {
    let Controls { progress, stop, finish } = controls;
    let mut state = SocketLoop {
        record: SocketRecord::new(member.index, member.channel),
        members: member.channel_size,
        plan,
        pending: HashMap::new(),
        progress,
        gateway: member.gateway,
        last_seq: 0,
        recovering: None,
    };
    let mut k = 0;
    let mut due = plan.schedule.and_then(|s| s.at(0));
    loop {
        let sending = due.filter(|_| !stop.is_cancelled());
        let alive = tokio::select! {
            biased;
            _ = finish.cancelled() => break,
            _ = tokio::time::sleep_until(sending.unwrap_or_else(Instant::now)), if sending.is_some() => {
                let sent = state.send(&mut socket, due.unwrap_or_else(Instant::now), k).await;
                k += 1;
                due = plan.schedule.and_then(|s| s.at(k));
                sent.is_ok()
            }
            text = socket.next_text(READ_SLICE) => match text {
                Ok(Some(text)) => match state.on_text(&mut socket, &text) {
                    Ok(Some(from)) => socket.sync(&[(state.record.channel, from)]).await.is_ok(),
                    Ok(None) => true,
                    Err(_) => false,
                },
                Ok(None) => true,
                Err(_) => false,
            },
        };
        if !alive {
            match state.recover(&member.client, redial.as_ref(), &finish).await {
                Some(again) => socket = again,
                None => break,
            }
        }
    }
    state.record.tally.unacked = state.pending.len() as u64;
    socket.close().await;
    state.record
}

impl SocketLoop {
    /// Send `k`, due at `at`: skipped when the window is full, never delayed.
    async fn send(&mut self, socket: &mut ChatSocket, at: Instant, k: u64) -> Result<(), ClientError> {
        self.record.tally.scheduled += 1;
        if self.pending.len() >= self.plan.window {
            self.record.tally.skipped_window_full += 1;
            return Ok(());
        }
        let id = client_id(self.record.index, k);
        // Pending from here: if the write fails, the resend after the reconnect sends it.
        self.pending.insert(id.clone(), Pending { at, k });
        self.record.tally.sent += 1;
        self.progress.sent();
        let content = content(at.duration_since(self.plan.epoch), self.plan.message_bytes);
        socket.send_message(self.record.channel, &id, &content).await
    }

    /// A text frame: a `message.new` read for what the checker needs ([`delivery`]), any
    /// other frame decoded in full.
    fn on_text(&mut self, socket: &mut ChatSocket, text: &str) -> Result<SyncAgain, ClientError> {
        if let Some(message) = delivery::parse(text) {
            socket.saw(message.channel_id, ChannelSeq(message.seq));
            if message.channel_id == self.record.channel {
                self.on_delivery(message.seq, message.message_id, &message.client_id, &message.content);
            }
            return Ok(None);
        }
        Ok(socket.decode(text)?.and_then(|frame| self.on_frame(frame)))
    }

    fn on_frame(&mut self, frame: ServerFrame) -> SyncAgain {
        match frame {
            ServerFrame::MessageAck { id, .. } => {
                if let Some(sent) = self.pending.remove(&id.0) {
                    self.record.tally.ack.record(sent.at.elapsed());
                    self.record.tally.acked += 1;
                    self.record.acked.extend(send_key(&id.0));
                    self.progress.acked(self.members);
                    self.answered(&id.0);
                }
            }
            ServerFrame::MessageNew { payload } if payload.channel_id == self.record.channel => {
                self.on_delivery(payload.seq.0, payload.message_id.0, &payload.client_id.0, &payload.content);
            }
            ServerFrame::SyncDone { payload } if payload.channel_id == self.record.channel => {
                if payload.truncated {
                    return Some(payload.last_seq.0);
                }
                if let Some(recovering) = self.recovering.as_mut() {
                    recovering.synced = true;
                }
                self.check_caught_up();
            }
            ServerFrame::Error { id, payload } => {
                let code = serde_json::to_value(payload.code).ok();
                let code = code.as_ref().and_then(|c| c.as_str()).unwrap_or("unknown");
                self.record.tally.count_error(code);
                if let Some(id) = id
                    && self.pending.remove(&id).is_some()
                {
                    self.record.tally.failed += 1;
                    self.progress.failed();
                    self.answered(&id);
                }
            }
            _ => {}
        }
        None
    }

    fn on_delivery(&mut self, seq: i64, message_id: i64, client_id: &str, content: &str) {
        let key = send_key(client_id).unwrap_or(-message_id);
        self.record.seen.push(Seen { seq, key, backlog: false });
        self.last_seq = self.last_seq.max(seq);
        self.record.tally.delivered += 1;
        self.progress.delivered();
        if let Some(scheduled) = scheduled_offset(content) {
            let now = self.plan.epoch.elapsed();
            self.record.tally.deliver.record(now.saturating_sub(scheduled));
        }
    }

    /// A send that was unacked at a drop has its answer.
    fn answered(&mut self, id: &str) {
        if let Some(recovering) = self.recovering.as_mut()
            && recovering.outstanding.remove(id)
        {
            self.check_caught_up();
        }
    }

    fn check_caught_up(&mut self) {
        if let Some(r) = &self.recovering
            && r.synced
            && r.outstanding.is_empty()
        {
            self.record.tally.recovery.caught_up_after(r.dropped_at.elapsed());
            self.recovering = None;
        }
    }

    /// After the socket dropped: with `redial`, a new socket resumed on another gateway with
    /// the unacked sends written again; `None` (the client stops) without, or when no socket
    /// could be opened within the bounds.
    async fn recover(
        &mut self,
        client: &ChatClient,
        redial: Option<&Redial>,
        finish: &CancellationToken,
    ) -> Option<ChatSocket> {
        let Some(redial) = redial else {
            self.record.tally.count_error("socket_closed");
            return None;
        };
        loop {
            self.dropped();
            let from = [(self.record.channel, self.last_seq)];
            let redialed = redial.redial(client, self.gateway, &from, finish).await;
            let recovery = &mut self.record.tally.recovery;
            recovery.attempts += redialed.attempts;
            let Some((mut socket, gateway)) = redialed.socket else {
                recovery.gave_up += u64::from(!finish.is_cancelled());
                self.recovering = None;
                return None;
            };
            recovery.reconnects += 1;
            self.gateway = gateway;
            if self.resend(&mut socket).await.is_ok() {
                return Some(socket);
            }
        }
    }

    /// Counts a drop; the clock to caught up starts at the first drop not recovered from.
    fn dropped(&mut self) {
        self.record.tally.recovery.dropped += 1;
        let unacked = self.pending.keys().cloned();
        match self.recovering.as_mut() {
            Some(recovering) => {
                recovering.synced = false;
                recovering.outstanding.extend(unacked);
            }
            None => {
                let outstanding = unacked.collect();
                self.recovering = Some(Recovering { dropped_at: Instant::now(), synced: false, outstanding });
            }
        }
    }

    /// Writes every unacked send again, in the order they were first sent, with the same
    /// client id and content: the cell stores each once, and its ack counts once.
    async fn resend(&mut self, socket: &mut ChatSocket) -> Result<(), ClientError> {
        let mut unacked: Vec<(String, Pending)> =
            self.pending.iter().map(|(id, p)| (id.clone(), *p)).collect();
        unacked.sort_by_key(|(_, p)| p.k);
        for (id, sent) in unacked {
            let content = content(sent.at.duration_since(self.plan.epoch), self.plan.message_bytes);
            socket.send_message(self.record.channel, &id, &content).await?;
            self.record.tally.recovery.resends += 1;
        }
        Ok(())
    }
}
