//! One socket's loop: sends at its scheduled times (skipping when the window is full), reads
//! acks, deliveries and errors, and keeps what the checker needs.

use crate::content::{content, scheduled_offset};
use crate::error::LoadgenError;
use crate::measure::{Progress, Tally};
use crate::rate::Schedule;
use crate::scenario::Member;
use shared::ids::ChannelId;
use shared::local::client::ChatSocket;
use shared::protocol::{MessageView, ServerFrame};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long a new socket may take to answer its first `sync` with `sync.done`.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest wait for one frame before the loop looks at its tokens again.
const READ_SLICE: Duration = Duration::from_millis(200);

/// What one socket did and saw, for the measures and the checker.
#[derive(Debug)]
pub struct SocketRecord {
    pub index: usize,
    pub channel: ChannelId,
    /// The message ids of this socket's acked sends.
    pub acked: Vec<i64>,
    /// `(seq, message id)` of each `message.new` of the channel, in arrival order.
    pub seen: Vec<(i64, i64)>,
    pub tally: Tally,
}

/// How a socket sends: its schedule (none for receivers), window and message size.
#[derive(Debug, Clone, Copy)]
pub struct SendPlan {
    pub schedule: Option<Schedule>,
    pub window: usize,
    pub message_bytes: usize,
    /// The instant scheduled times in message contents are counted from.
    pub epoch: Instant,
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

/// The state of one running socket.
struct SocketLoop {
    record: SocketRecord,
    members: usize,
    plan: SendPlan,
    /// Client id → scheduled time of each send awaiting its answer.
    pending: HashMap<String, Instant>,
    progress: Arc<Progress>,
}

/// Runs one socket until `finish`; sends stop at the schedule's end or at `stop`.
pub async fn run(
    member: Member,
    mut socket: ChatSocket,
    plan: SendPlan,
    progress: Arc<Progress>,
    stop: CancellationToken,
    finish: CancellationToken,
) -> SocketRecord {
    let record = SocketRecord {
        index: member.index,
        channel: member.channel,
        acked: Vec::new(),
        seen: Vec::new(),
        tally: Tally::default(),
    };
    let mut state =
        SocketLoop { record, members: member.channel_size, plan, pending: HashMap::new(), progress };
    let mut k = 0;
    let mut due = plan.schedule.and_then(|s| s.at(0));
    loop {
        let sending = due.filter(|_| !stop.is_cancelled());
        tokio::select! {
            biased;
            _ = finish.cancelled() => break,
            _ = tokio::time::sleep_until(sending.unwrap_or_else(Instant::now)), if sending.is_some() => {
                if let Err(e) = state.send(&mut socket, due.unwrap_or_else(Instant::now), k).await {
                    let _ = e;
                    state.closed();
                    break;
                }
                k += 1;
                due = plan.schedule.and_then(|s| s.at(k));
            }
            frame = socket.next_frame(READ_SLICE) => match frame {
                Ok(Some(frame)) => state.on_frame(frame),
                Ok(None) => {}
                Err(e) => {
                    let _ = e;
                    state.closed();
                    break;
                }
            },
        }
    }
    state.record.tally.unacked = state.pending.len() as u64;
    socket.close().await;
    state.record
}

impl SocketLoop {
    /// Send `k`, due at `at`: skipped when the window is full, never delayed.
    async fn send(
        &mut self,
        socket: &mut ChatSocket,
        at: Instant,
        k: u64,
    ) -> Result<(), shared::local::client::ClientError> {
        self.record.tally.scheduled += 1;
        if self.pending.len() >= self.plan.window {
            self.record.tally.skipped_window_full += 1;
            return Ok(());
        }
        let id = format!("s{}-{k}", self.record.index);
        let content = content(at.duration_since(self.plan.epoch), self.plan.message_bytes);
        socket.send_message(self.record.channel, &id, &content).await?;
        self.pending.insert(id, at);
        self.record.tally.sent += 1;
        self.progress.sent();
        Ok(())
    }

    fn on_frame(&mut self, frame: ServerFrame) {
        match frame {
            ServerFrame::MessageAck { id, payload } => {
                if let Some(at) = self.pending.remove(&id.0) {
                    self.record.tally.ack.record(at.elapsed());
                    self.record.tally.acked += 1;
                    self.record.acked.push(payload.message_id.0);
                    self.progress.acked(self.members);
                }
            }
            ServerFrame::MessageNew { payload } if payload.channel_id == self.record.channel => {
                self.on_delivery(&payload);
            }
            ServerFrame::Error { id, payload } => {
                let code = serde_json::to_value(payload.code).ok();
                let code = code.as_ref().and_then(|c| c.as_str()).unwrap_or("unknown");
                self.record.tally.count_error(code);
                if id.and_then(|id| self.pending.remove(&id)).is_some() {
                    self.record.tally.failed += 1;
                    self.progress.failed();
                }
            }
            _ => {}
        }
    }

    fn on_delivery(&mut self, message: &MessageView) {
        self.record.seen.push((message.seq.0, message.message_id.0));
        self.record.tally.delivered += 1;
        self.progress.delivered();
        if let Some(scheduled) = scheduled_offset(&message.content) {
            let now = self.plan.epoch.elapsed();
            self.record.tally.deliver.record(now.saturating_sub(scheduled));
        }
    }

    fn closed(&mut self) {
        self.record.tally.count_error("socket_closed");
    }
}
