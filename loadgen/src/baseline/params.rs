//! What the baselines are asked to do and where: which ones, how many messages, how many in
//! flight, how the consumers ack, how many sockets the fan-out has, and the servers.

use clap::ValueEnum;
use serde::Serialize;

/// One baseline of `--baseline`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BaselineKind {
    /// (a) Raw JetStream publish into a stream configured like the message stream.
    Publish,
    /// (b) The same, plus a plain pull consumer per partition acking like the worker.
    Consume,
    /// (c) A bare tokio-tungstenite broadcast server with the gateway's buffer settings.
    Fanout,
    /// (d) Plain UNNEST inserts of 1,000-row batches into a copy of the messages table.
    Insert,
}

impl BaselineKind {
    /// Whether it needs the NATS cluster (else Postgres).
    pub fn needs_nats(self) -> bool {
        matches!(self, BaselineKind::Publish | BaselineKind::Consume)
    }
}

/// How the consume baseline acknowledges each message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AckMode {
    /// `double_ack`: each ack waits for the server's confirmation on a subscription of its own
    /// (what the worker did before its finisher).
    Double,
    /// `ack`: sent, not confirmed.
    Plain,
    /// A request with `+ACK` to the message's reply subject on the client's one reply
    /// subscription: confirmed like `double`, without a subscription per message (what the
    /// worker does).
    Request,
}

/// How to run the baselines.
#[derive(Debug, Clone)]
pub struct BaselineParams {
    /// Each at most once, in the order publish, consume, fanout, insert.
    pub kinds: Vec<BaselineKind>,
    /// Messages published (a, b) and rows inserted (d).
    pub messages: usize,
    /// Publishes awaiting their PubAck at any time (a, b).
    pub inflight: usize,
    pub ack: AckMode,
    /// Batches per consumer whose acks are in flight at once (b).
    pub ack_batches: usize,
    /// Consumers keep their state in memory instead of on disk (b).
    pub consumer_memory: bool,
    /// Content length of each message: the scenario's `--message-bytes`.
    pub content_bytes: usize,
    pub partitions: u16,
    pub replicas: usize,
    /// Insert loops at once (d).
    pub insert_concurrency: usize,
    /// Sockets of the fan-out server (c).
    pub sockets: usize,
    /// Of those, how many send (c).
    pub senders: usize,
    /// Messages sent to the fan-out server (c).
    pub fanout_messages: usize,
    /// Messages ahead of what reached every socket, at most (c).
    pub fanout_window: usize,
    /// Messages per second over all senders; none: as fast as the window allows (c).
    pub fanout_rate: Option<f64>,
    /// Names the scratch stream and table.
    pub run_id: String,
}

/// Where the baselines run.
#[derive(Debug, Clone, Default)]
pub struct BaselineServers {
    pub nats: Vec<String>,
    pub postgres: Option<String>,
}
