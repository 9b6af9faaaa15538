//! A steady, pipelined send load from many clients over several gateways, and the checker that
//! counts what a fault cost. Each client keeps per-channel `last_seq`, resends unacknowledged
//! sends with the same `id` after a retryable error or a reconnect, and resumes with `sync`
//! when its gateway goes away. The fault tests and, later, the chaos runner drive faults under
//! this load and assert `lost = duplicated = reordered = 0`.

use super::cell::TestCell;
use super::client::{ChatClient, ChatSocket, ClientError};
use crate::ids::{ChannelId, MessageId, UserId};
use crate::protocol::ServerFrame;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub clients: usize,
    pub channels: usize,
    /// Sends of one client awaiting their ack, at most.
    pub window: usize,
    /// Pause between two sends of one client.
    pub interval: Duration,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self { clients: 20, channels: 10, window: 16, interval: Duration::from_millis(25) }
    }
}

/// What one client did and saw.
#[derive(Debug)]
pub struct ClientRecord {
    pub user: UserId,
    pub channels: Vec<ChannelId>,
    /// Client id → the channel and the message id its ack named.
    pub acked: HashMap<String, (ChannelId, MessageId)>,
    /// Sends never acknowledged (failed for good, or still pending at the end).
    pub unacked: Vec<String>,
    /// Per channel, the `seq`s of `message.new` in arrival order.
    pub seen: HashMap<ChannelId, Vec<i64>>,
    pub reconnects: usize,
    pub resends: usize,
    /// The longest stretch between two of its acks while the load was sending: how long a
    /// fault kept this client from getting anything acked.
    pub longest_ack_gap: Duration,
    /// When its last ack came.
    last_ack: Option<tokio::time::Instant>,
}

/// A running load.
pub struct Load {
    stop: CancellationToken,
    finish: CancellationToken,
    drained: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<ClientRecord>>,
    pub channels: Vec<ChannelId>,
}

impl Load {
    /// Registers the clients, puts each in two channels, connects each to a gateway (round
    /// robin) and starts sending.
    pub async fn start(cell: &TestCell, options: LoadOptions) -> Result<Self, ClientError> {
        let base = cell.gateway_url(0);
        let mut users = Vec::with_capacity(options.clients);
        for i in 0..options.clients {
            users.push(ChatClient::register(&base, &format!("load{i:04}")).await?);
        }
        let channel_count = options.channels.max(1);
        let member_of = |i: usize| [i % channel_count, (i + 1) % channel_count];
        let mut channels = Vec::with_capacity(channel_count);
        for c in 0..channel_count {
            let members: Vec<UserId> =
                (0..users.len()).filter(|i| member_of(*i).contains(&c)).map(|i| users[i].user_id).collect();
            channels.push(users[0].create_channel("group", &format!("load-{c}"), &members).await?);
        }
        let ws_urls: Vec<String> = (0..cell.gateways.len()).map(|g| cell.ws_url(g)).collect();
        let stop = CancellationToken::new();
        let finish = CancellationToken::new();
        let drained = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::with_capacity(users.len());
        for (i, user) in users.into_iter().enumerate() {
            let mut mine: Vec<ChannelId> = member_of(i).iter().map(|c| channels[*c]).collect();
            mine.dedup();
            let record = ClientRecord {
                user: user.user_id,
                channels: mine.clone(),
                acked: HashMap::new(),
                unacked: Vec::new(),
                seen: HashMap::new(),
                reconnects: 0,
                resends: 0,
                longest_ack_gap: Duration::ZERO,
                last_ack: None,
            };
            let client = LoadClient {
                index: i,
                user,
                channels: mine,
                ws_urls: ws_urls.clone(),
                options: options.clone(),
                stop: stop.clone(),
                finish: finish.clone(),
                drained: drained.clone(),
                record,
                pending: BTreeMap::new(),
                next: 0,
            };
            tasks.push(tokio::spawn(client.run()));
        }
        Ok(Self { stop, finish, drained, tasks, channels })
    }

    /// Stops new sends and waits (at most `settle`) until every client has an answer for
    /// each of its sends; returns how many clients drained.
    pub async fn stop_sending(&self, settle: Duration) -> usize {
        self.stop.cancel();
        let deadline = tokio::time::Instant::now() + settle;
        while self.drained.load(Ordering::Relaxed) < self.tasks.len()
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.drained.load(Ordering::Relaxed)
    }

    /// Has every client catch up with a last `sync` and returns what each did and saw.
    /// Call once the cell is quiet (everything acked is persisted).
    pub async fn finish(self, settle: Duration) -> Vec<ClientRecord> {
        self.stop.cancel();
        self.finish.cancel();
        let mut records = Vec::with_capacity(self.tasks.len());
        for task in self.tasks {
            if let Ok(Ok(record)) = tokio::time::timeout(settle, task).await {
                records.push(record);
            }
        }
        records
    }
}

/// Waits until every partition consumer of the stream has nothing pending or unacknowledged
/// (all acked messages are persisted), seen twice in a row 200 ms apart; false after `timeout`.
/// During a leader election the server's consumer list can leave out a consumer that has no
/// leader yet, so the list must hold as many consumers as the stream counts.
pub async fn wait_persisted(nats_urls: &[String], stream: &str, timeout: Duration) -> bool {
    let Ok(client) = async_nats::connect(nats_urls.to_vec()).await else { return false };
    let js = async_nats::jetstream::new(client);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut quiet_in_a_row = 0;
    while tokio::time::Instant::now() < deadline {
        if consumers_quiet(&js, stream).await {
            quiet_in_a_row += 1;
            if quiet_in_a_row == 2 {
                return true;
            }
        } else {
            quiet_in_a_row = 0;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// Whether every consumer of the stream (as many as the stream counts) has nothing pending
/// or unacknowledged.
async fn consumers_quiet(js: &async_nats::jetstream::Context, stream: &str) -> bool {
    let Ok(mut stream) = js.get_stream(stream).await else { return false };
    let Ok(info) = stream.info().await else { return false };
    let expected = info.state.consumer_count;
    let mut consumers = stream.consumers();
    let mut seen = 0;
    while let Some(info) = futures::StreamExt::next(&mut consumers).await {
        match info {
            Ok(info) if info.num_pending == 0 && info.num_ack_pending == 0 => seen += 1,
            _ => return false,
        }
    }
    seen == expected && expected > 0
}

/// Where each `Nats-Msg-Id` of `keys` sits in the stream (its sequence), or `None` when no
/// message of the stream carries it: tells a message lost by JetStream from one the workers
/// never stored. Reads the stream message by message (direct gets), so keep it for failures.
pub async fn find_in_stream(
    nats_urls: &[String],
    stream: &str,
    keys: &[String],
) -> Result<Vec<(String, Option<u64>)>, String> {
    let client = async_nats::connect(nats_urls.to_vec()).await.map_err(|e| e.to_string())?;
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream(stream).await.map_err(|e| e.to_string())?;
    let info = stream.info().await.map_err(|e| e.to_string())?;
    let (first, last) = (info.state.first_sequence, info.state.last_sequence);
    let mut found: HashMap<&str, u64> = HashMap::new();
    for sequence in first..=last {
        let Ok(message) = stream.direct_get(sequence).await else { continue };
        let id = message.headers.get("Nats-Msg-Id").map(|v| v.as_str().to_owned());
        if let Some(key) = id.and_then(|id| keys.iter().find(|k| **k == id)) {
            found.insert(key, sequence);
        }
    }
    Ok(keys.iter().map(|k| (k.clone(), found.get(k.as_str()).copied())).collect())
}

struct LoadClient {
    index: usize,
    user: ChatClient,
    channels: Vec<ChannelId>,
    ws_urls: Vec<String>,
    options: LoadOptions,
    stop: CancellationToken,
    finish: CancellationToken,
    drained: Arc<AtomicUsize>,
    record: ClientRecord,
    /// Sends awaiting an ack: client id → (channel, content, whether to resend).
    pending: BTreeMap<String, (ChannelId, String, bool)>,
    next: usize,
}

/// How long a client keeps resending and catching up after the load stops.
const SETTLE: Duration = Duration::from_secs(90);
/// How long the final catch-up `sync` may take to be answered, past `SETTLE` if need be: the
/// catch-up is what the verdict judges, and when the workers' catching up took the settle
/// time a client would otherwise leave with it sent and unanswered.
const FINAL_SYNC_WAIT: Duration = Duration::from_secs(30);

impl LoadClient {
    async fn run(mut self) -> ClientRecord {
        let mut attempt = self.index;
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let url = &self.ws_urls[attempt % self.ws_urls.len()];
            let resume: Vec<(ChannelId, i64)> =
                self.channels.iter().map(|c| (*c, self.last_seq(*c))).collect();
            match self.user.resume(url, &resume).await {
                Ok(socket) => match self.session(socket, &mut deadline).await {
                    Ok(()) => break,
                    Err(_) => self.record.reconnects += 1,
                },
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() > d) {
                break;
            }
            attempt += 1;
        }
        self.record.unacked = self.pending.keys().cloned().collect();
        self.record
    }

    /// One connection (resumed with `sync` already sent): resend what is pending, then send and read. `Ok` when the
    /// load has stopped and this client has settled.
    async fn session(
        &mut self,
        mut socket: ChatSocket,
        deadline: &mut Option<tokio::time::Instant>,
    ) -> Result<(), ClientError> {
        let mut syncs_pending = self.channels.len();
        for (id, (channel, content, _)) in self.pending.clone() {
            socket.send_message(channel, &id, &content).await?;
            self.record.resends += 1;
        }
        let mut tick = tokio::time::interval(self.options.interval);
        let mut final_sync_sent = false;
        let mut drained = false;
        loop {
            if self.stop.is_cancelled() && deadline.is_none() {
                *deadline = Some(tokio::time::Instant::now() + SETTLE);
            }
            let stopping = self.stop.is_cancelled();
            if stopping && self.pending.is_empty() && !drained {
                drained = true;
                self.drained.fetch_add(1, Ordering::Relaxed);
            }
            if self.finish.is_cancelled() && self.pending.is_empty() && syncs_pending == 0 {
                if final_sync_sent {
                    return Ok(());
                }
                // Catch up with anything whose delivery is still on its way.
                let resume: Vec<(ChannelId, i64)> =
                    self.channels.iter().map(|c| (*c, self.last_seq(*c))).collect();
                socket.sync(&resume).await?;
                syncs_pending = self.channels.len();
                final_sync_sent = true;
                *deadline = deadline.map(|d| d.max(tokio::time::Instant::now() + FINAL_SYNC_WAIT));
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() > d) {
                return Ok(());
            }
            tokio::select! {
                _ = tick.tick() => {
                    let resend: Vec<String> = self.pending.iter().filter(|(_, p)| p.2).map(|(id, _)| id.clone()).collect();
                    for id in resend {
                        if let Some(p) = self.pending.get_mut(&id) {
                            p.2 = false;
                            let (channel, content) = (p.0, p.1.clone());
                            socket.send_message(channel, &id, &content).await?;
                            self.record.resends += 1;
                        }
                    }
                    if !stopping && self.pending.len() < self.options.window {
                        let id = format!("c{}-{}", self.index, self.next);
                        let channel = self.channels[self.next % self.channels.len()];
                        let content = format!("load message {id}");
                        self.next += 1;
                        self.pending.insert(id.clone(), (channel, content.clone(), false));
                        socket.send_message(channel, &id, &content).await?;
                    }
                }
                frame = socket.next_frame(Duration::from_secs(5)) => match frame? {
                    Some(ServerFrame::MessageAck { id, payload }) => {
                        self.acked(id.0, payload.channel_id, payload.message_id, stopping)
                    }
                    Some(ServerFrame::Error { id: Some(id), payload }) => {
                        if let Some(p) = self.pending.get_mut(&id) {
                            if payload.retryable { p.2 = true } else { self.pending.remove(&id); }
                        }
                    }
                    Some(ServerFrame::MessageNew { payload }) => {
                        self.record.seen.entry(payload.channel_id).or_default().push(payload.seq.0);
                    }
                    Some(ServerFrame::SyncDone { .. }) => syncs_pending = syncs_pending.saturating_sub(1),
                    // Other errors, and live state the checker does not follow.
                    Some(_) | None => {}
                },
            }
        }
    }

    /// An ack of `id`: recorded, and the wait since the previous one measured while sending.
    fn acked(&mut self, id: String, channel: ChannelId, message: MessageId, stopping: bool) {
        if self.pending.remove(&id).is_some() {
            self.record.acked.insert(id, (channel, message));
        }
        let now = tokio::time::Instant::now();
        if let Some(last) = self.record.last_ack.replace(now)
            && !stopping
        {
            self.record.longest_ack_gap = self.record.longest_ack_gap.max(now - last);
        }
    }

    fn last_seq(&self, channel: ChannelId) -> i64 {
        self.record.seen.get(&channel).and_then(|s| s.iter().max()).copied().unwrap_or(0)
    }
}

/// What a fault cost, by the checker's count.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub acked: usize,
    /// The sum of the three kinds of loss below.
    pub lost: usize,
    /// Acked but not in Postgres.
    pub lost_acked: usize,
    /// The `Nats-Msg-Id`s of those, to look up in the stream (see [`find_in_stream`]).
    pub lost_acked_keys: Vec<String>,
    /// Holes in a channel's stored `seq`.
    pub holes: usize,
    /// Stored messages a client of the channel never saw.
    pub unseen: usize,
    /// Stored twice, or seen twice by one client.
    pub duplicated: usize,
    /// Seen by a client after a later `seq` of the same channel.
    pub reordered: usize,
    /// Sends never acked (allowed: they failed visibly).
    pub unacked: usize,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "acked {} / lost {} / duplicated {} / reordered {} (unacked {}; lost: {} acked not stored, {} holes, {} unseen)",
            self.acked,
            self.lost,
            self.duplicated,
            self.reordered,
            self.unacked,
            self.lost_acked,
            self.holes,
            self.unseen
        )
    }
}

/// Checks the records against Postgres.
pub async fn check(db: &sqlx::PgPool, records: &[ClientRecord]) -> Result<Report, sqlx::Error> {
    let rows: Vec<(ChannelId, i64, UserId, String)> =
        sqlx::query_as("SELECT channel_id, seq, sender_id, client_msg_id FROM messages")
            .fetch_all(db)
            .await?;
    let mut report = Report::default();
    let mut stored: HashMap<(UserId, String), usize> = HashMap::new();
    let mut seqs: HashMap<ChannelId, Vec<i64>> = HashMap::new();
    for (channel, seq, sender, client_id) in rows {
        *stored.entry((sender, client_id)).or_default() += 1;
        seqs.entry(channel).or_default().push(seq);
    }
    report.duplicated += stored.values().map(|n| n - 1).sum::<usize>();
    for list in seqs.values_mut() {
        list.sort_unstable();
        let last = list.last().copied().unwrap_or(0);
        report.holes += (last as usize).saturating_sub(list.len());
    }
    for record in records {
        report.acked += record.acked.len();
        report.unacked += record.unacked.len();
        for (id, (channel, _)) in &record.acked {
            if !stored.contains_key(&(record.user, id.clone())) {
                report.lost_acked += 1;
                report.lost_acked_keys.push(crate::events::dedup_key(
                    record.user,
                    *channel,
                    &crate::ids::ClientMsgId(id.clone()),
                ));
            }
        }
        for channel in &record.channels {
            let seen = record.seen.get(channel).map(Vec::as_slice).unwrap_or_default();
            report.reordered += seen.windows(2).filter(|w| w[1] < w[0]).count();
            let mut distinct = seen.to_vec();
            distinct.sort_unstable();
            let before = distinct.len();
            distinct.dedup();
            report.duplicated += before - distinct.len();
            let last = seqs.get(channel).and_then(|s| s.last()).copied().unwrap_or(0);
            report.unseen += (last as usize).saturating_sub(distinct.iter().filter(|s| **s <= last).count());
        }
    }
    report.lost = report.lost_acked + report.holes + report.unseen;
    Ok(report)
}
