//! One dm-storm user: opens its dms over REST while its socket loop sends the first messages
//! into each as soon as it is opened, and follows every dm it is in as the protocol says a
//! client should: a live `seq` past a hole asks for a `sync` of what is missing, and when
//! told to catch up it lists its channels and syncs those it is behind in.

use super::open::{self, OpenTally};
use crate::client::{Controls, READ_SLICE};
use crate::content::{content, scheduled_offset};
use crate::measure::Tally;
use crate::record::{Seen, SocketRecord, client_id, send_key};
use shared::ids::{ChannelId, UserId};
use shared::local::client::{ChatClient, ChatSocket, ClientError, expect};
use shared::protocol::{MessageView, ServerFrame};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often one send refused with `not_a_member` (the dm's membership not yet at the
/// sender's gateway) is written again, and after how long.
const NOT_A_MEMBER_TRIES: u32 = 40;
const NOT_A_MEMBER_PAUSE: Duration = Duration::from_millis(25);

/// How long an opener may take to hand back its tally once the run ends.
const OPENER_GRACE: Duration = Duration::from_secs(1);

/// One user of the storm: who it is, where its socket is, whom it opens dms with.
pub struct DmUser {
    pub index: usize,
    pub client: ChatClient,
    /// `(index, user id)` of each peer, in the order the dms are opened.
    pub peers: Vec<(usize, UserId)>,
    pub messages: usize,
    pub message_bytes: usize,
}

/// What one user did and saw.
pub struct UserResult {
    /// One per channel the user knows of.
    pub records: Vec<SocketRecord>,
    pub tally: Tally,
    pub open: OpenTally,
    pub follow: FollowTally,
    /// `(channel, peer index)` of each dm it opened.
    pub opened: Vec<(ChannelId, usize)>,
}

/// How the user kept up with its dms.
#[derive(Debug, Clone, Copy, Default)]
pub struct FollowTally {
    pub not_a_member_resends: u64,
    pub gap_syncs: u64,
    pub catch_up_syncs: u64,
    pub delivered_by_sync: u64,
}

impl FollowTally {
    pub fn merge(&mut self, o: &FollowTally) {
        self.not_a_member_resends += o.not_a_member_resends;
        self.gap_syncs += o.gap_syncs;
        self.catch_up_syncs += o.catch_up_syncs;
        self.delivered_by_sync += o.delivered_by_sync;
    }
}

/// When the storm starts, when the run's contents count from, and the tokens of the user.
#[derive(Clone)]
pub struct Timing {
    pub epoch: Instant,
    pub start: Instant,
    /// Cancelled when the driver asks every user to list its channels and sync behind ones.
    pub catch_up: CancellationToken,
    /// Users whose dms are all opened and whose first messages are all written.
    pub users_done: Arc<AtomicUsize>,
}

struct ChannelState {
    record: SocketRecord,
    last_seq: i64,
    /// While a sync asked for after a hole runs: deliveries below this `seq` are its backlog.
    syncing_below: Option<i64>,
}

struct PendingSend {
    channel: ChannelId,
    at: Instant,
    tries: u32,
}

struct UserLoop {
    index: usize,
    epoch: Instant,
    message_bytes: usize,
    channels: HashMap<ChannelId, ChannelState>,
    pending: HashMap<String, PendingSend>,
    /// Sends to write again, and when.
    again: Vec<(Instant, String)>,
    next_send: u64,
    tally: Tally,
    follow: FollowTally,
    controls: Controls,
}

/// Runs the user until `finish`: its opener task, and its socket.
pub async fn run(user: DmUser, mut socket: ChatSocket, timing: Timing, controls: Controls) -> UserResult {
    let (opened_tx, mut opened_rx) = mpsc::channel(user.peers.len().max(1));
    let opener = tokio::spawn(open_all(user.client.clone(), user.peers.clone(), timing.start, opened_tx));
    let mut state = UserLoop {
        index: user.index,
        epoch: timing.epoch,
        message_bytes: user.message_bytes,
        channels: HashMap::new(),
        pending: HashMap::new(),
        again: Vec::new(),
        next_send: 0,
        tally: Tally::default(),
        follow: FollowTally::default(),
        controls: controls.clone(),
    };
    let mut opened = Vec::new();
    let (mut opening, mut caught_up) = (true, false);
    loop {
        let again = state.again.iter().map(|(at, _)| *at).min();
        let step = tokio::select! {
            biased;
            _ = controls.finish.cancelled() => break,
            next = opened_rx.recv(), if opening => match next {
                Some((channel, peer)) => {
                    opened.push((channel, peer));
                    state.send_first(&mut socket, channel, user.messages).await
                }
                None => {
                    opening = false;
                    timing.users_done.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
            },
            _ = tokio::time::sleep_until(again.unwrap_or_else(Instant::now)), if again.is_some() => {
                state.write_again(&mut socket).await
            }
            _ = timing.catch_up.cancelled(), if !caught_up => {
                caught_up = true;
                state.catch_up(&user.client, &mut socket).await
            }
            frame = socket.next_frame(READ_SLICE) => match frame {
                Ok(Some(frame)) => state.on_frame(&mut socket, frame).await,
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            },
        };
        if step.is_err() {
            state.tally.count_error("socket_closed");
            break;
        }
    }
    let open = finish_opener(opener).await;
    state.tally.unacked = state.pending.len() as u64;
    socket.close().await;
    let records = state.channels.into_values().map(|c| c.record).collect();
    UserResult { records, tally: state.tally, open, follow: state.follow, opened }
}

/// The opener's tally; an opener still at work when the run ends (past the storm's limit)
/// is stopped, and what it did is lost with it.
async fn finish_opener(mut opener: tokio::task::JoinHandle<OpenTally>) -> OpenTally {
    match tokio::time::timeout(OPENER_GRACE, &mut opener).await {
        Ok(tally) => tally.unwrap_or_default(),
        Err(_) => {
            opener.abort();
            OpenTally::default()
        }
    }
}

/// Opens each dm in turn from `start`, handing each opened one to the socket loop.
async fn open_all(
    client: ChatClient,
    peers: Vec<(usize, UserId)>,
    start: Instant,
    opened: mpsc::Sender<(ChannelId, usize)>,
) -> OpenTally {
    tokio::time::sleep_until(start).await;
    let mut tally = OpenTally::default();
    for (peer, peer_id) in peers {
        if let Some(channel) = open::open(&client, peer_id, &mut tally).await {
            let _ = opened.send((channel, peer)).await;
        }
    }
    tally
}

impl UserLoop {
    fn channel(&mut self, channel: ChannelId) -> &mut ChannelState {
        let index = self.index;
        self.channels.entry(channel).or_insert_with(|| ChannelState {
            record: SocketRecord::new(index, channel),
            last_seq: 0,
            syncing_below: None,
        })
    }

    /// The first `messages` messages of a dm just opened, pipelined.
    async fn send_first(
        &mut self,
        socket: &mut ChatSocket,
        channel: ChannelId,
        messages: usize,
    ) -> Result<(), ClientError> {
        self.channel(channel);
        for _ in 0..messages {
            let id = client_id(self.index, self.next_send);
            self.next_send += 1;
            let at = Instant::now();
            self.pending.insert(id.clone(), PendingSend { channel, at, tries: 1 });
            self.tally.scheduled += 1;
            self.tally.sent += 1;
            self.controls.progress.sent();
            self.write(socket, &id).await?;
        }
        Ok(())
    }

    async fn write(&self, socket: &mut ChatSocket, id: &str) -> Result<(), ClientError> {
        let Some(send) = self.pending.get(id) else { return Ok(()) };
        let text = content(send.at.duration_since(self.epoch), self.message_bytes);
        socket.send_message(send.channel, id, &text).await
    }

    /// Writes again the sends whose pause after `not_a_member` is over.
    async fn write_again(&mut self, socket: &mut ChatSocket) -> Result<(), ClientError> {
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = self.again.drain(..).partition(|(at, _)| *at <= now);
        self.again = later;
        for (_, id) in due {
            self.follow.not_a_member_resends += 1;
            self.write(socket, &id).await?;
        }
        Ok(())
    }

    async fn on_frame(&mut self, socket: &mut ChatSocket, frame: ServerFrame) -> Result<(), ClientError> {
        match frame {
            ServerFrame::MessageAck { id, .. } => {
                if let Some(send) = self.pending.remove(&id.0) {
                    self.tally.ack.record(send.at.elapsed());
                    self.tally.acked += 1;
                    self.channel(send.channel).record.acked.extend(send_key(&id.0));
                    self.controls.progress.acked(2);
                }
            }
            ServerFrame::MessageNew { payload } => return self.on_delivery(socket, &payload).await,
            ServerFrame::SyncDone { payload } => self.channel(payload.channel_id).syncing_below = None,
            ServerFrame::Error { id, payload } => {
                let code = serde_json::to_value(payload.code).ok();
                let code = code.as_ref().and_then(|c| c.as_str()).unwrap_or("unknown").to_owned();
                self.on_error(id, &code);
            }
            _ => {}
        }
        Ok(())
    }

    /// A refused send: `not_a_member` is tried again shortly (the dm's membership is on its
    /// way to the gateway); anything else fails it.
    fn on_error(&mut self, id: Option<String>, code: &str) {
        let Some(id) = id else {
            self.tally.count_error(code);
            return;
        };
        match self.pending.get_mut(&id) {
            Some(send) if code == "not_a_member" && send.tries < NOT_A_MEMBER_TRIES => {
                send.tries += 1;
                self.again.push((Instant::now() + NOT_A_MEMBER_PAUSE, id));
            }
            Some(_) => {
                self.pending.remove(&id);
                self.tally.count_error(code);
                self.tally.failed += 1;
                self.controls.progress.failed();
            }
            None => self.tally.count_error(code),
        }
    }

    async fn on_delivery(
        &mut self,
        socket: &mut ChatSocket,
        message: &MessageView,
    ) -> Result<(), ClientError> {
        let seq = message.seq.0;
        let key = send_key(&message.client_id.0).unwrap_or(-message.message_id.0);
        let state = self.channel(message.channel_id);
        let backlog = state.syncing_below.is_some_and(|below| seq < below);
        state.record.seen.push(Seen { seq, key, backlog });
        let hole = state.syncing_below.is_none() && seq > state.last_seq + 1;
        let from = state.last_seq;
        if hole {
            state.syncing_below = Some(seq);
        }
        state.last_seq = state.last_seq.max(seq);
        self.tally.delivered += 1;
        self.follow.delivered_by_sync += u64::from(backlog);
        self.controls.progress.delivered();
        if let Some(scheduled) = scheduled_offset(&message.content) {
            self.tally.deliver.record(self.epoch.elapsed().saturating_sub(scheduled));
        }
        if hole {
            self.follow.gap_syncs += 1;
            socket.sync(&[(message.channel_id, from)]).await?;
        }
        Ok(())
    }

    /// Lists the user's channels and syncs every one whose `last_seq` is past what it has
    /// (a dm whose messages all went by before its membership reached this socket's gateway).
    async fn catch_up(&mut self, client: &ChatClient, socket: &mut ChatSocket) -> Result<(), ClientError> {
        let listed = client.request(reqwest::Method::GET, "/channels?limit=500").send().await?;
        let listed = expect(listed, 200).await?;
        let channels = listed["channels"].as_array().cloned().unwrap_or_default();
        for channel in channels {
            let Ok(id) = serde_json::from_value::<ChannelId>(channel["id"].clone()) else { continue };
            let top = channel["last_seq"].as_i64().unwrap_or(0);
            let state = self.channel(id);
            if top > state.last_seq && state.syncing_below.is_none() {
                state.syncing_below = Some(i64::MAX);
                let from = state.last_seq;
                self.follow.catch_up_syncs += 1;
                socket.sync(&[(id, from)]).await?;
            }
        }
        Ok(())
    }
}
