//! (b) Publish and consume: the publishes of (a) into a scratch stream of their own while one
//! plain pull consumer per partition, made from the cell's partition consumer definition,
//! pulls the way the worker does (in the `workers` group, `max_messages_per_batch` of the
//! worker's batch, whatever has arrived taken as one batch) and acks each message the way the
//! worker does: every message of a batch acked at once, `double` (`double_ack`, each waiting for
//! the server's confirmation on a reply subscription of its own) as the worker of this tree
//! does, `request` (each a request on the client's one reply subscription, also confirmed) or
//! `plain` (not confirmed); `ack_batches` batches acking at once while the next is taken (1: the
//! next batch waits for the acks of the last, as in this tree's worker).
//! Nothing is decoded or stored: what is left is the broker's cost of delivering and acking.
//! Checks every acked publish was consumed exactly once.

use crate::baseline::error::BaselineError;
use crate::baseline::figures::ConsumeFigures;
use crate::baseline::ledger::reconcile;
use crate::baseline::params::{AckMode, BaselineParams};
use crate::baseline::payload::{Traffic, index_of};
use crate::baseline::publish::{PublishRun, publish_all};
use crate::baseline::scratch;
use crate::baseline::sent::SentTimes;
use crate::measure::Latency;
use async_nats::jetstream::consumer::{PullConsumer, pull};
use async_nats::jetstream::{self, AckKind, Message, stream::Stream};
use futures::StreamExt;
use shared::config::{NatsConfig, WorkerConfig};
use shared::streams::{WORKER_GROUP, consumer_config};
use shared::subjects::Partition;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long a pull request waits on the server before it is renewed (the worker's).
const PULL_EXPIRY: Duration = Duration::from_secs(5);
/// Times a consumer re-opens its pull after it ended or was refused, at most.
const MAX_PULLS: usize = 20;
/// How long consumer creation keeps retrying while the stream's replicas settle.
const CREATE_PATIENCE: Duration = Duration::from_secs(30);
/// How long the consumer tasks may take to hand back their records once told to stop.
const FINISH_GRACE: Duration = Duration::from_secs(10);
/// How often the end of the consumption is looked for.
const POLL: Duration = Duration::from_millis(10);

/// What one consumer, or one of its ack rounds, did.
#[derive(Debug, Default)]
struct ConsumerRecord {
    sequences: Vec<u64>,
    latency: Latency,
    acks_failed: u64,
    pull_errors: u64,
    last_ack: Option<Instant>,
}

impl ConsumerRecord {
    fn merge(&mut self, other: ConsumerRecord) {
        self.sequences.extend(other.sequences);
        self.latency.merge(&other.latency);
        self.acks_failed += other.acks_failed;
        self.pull_errors += other.pull_errors;
        self.last_ack = self.last_ack.max(other.last_ack);
    }
}

/// How a consumer acks, shared by its ack rounds.
struct Acker {
    client: async_nats::Client,
    mode: AckMode,
    sent: Arc<SentTimes>,
    /// Acks done over all consumers.
    acked: Arc<AtomicU64>,
}

impl Acker {
    /// Acks every message of a batch at once, as the worker does after its commit.
    async fn ack_batch(self: Arc<Self>, messages: Vec<Message>) -> ConsumerRecord {
        let mut record = ConsumerRecord::default();
        let acks = futures::future::join_all(messages.iter().map(|m| self.ack(m))).await;
        let now = Instant::now();
        let mut acked = 0;
        for (message, result) in messages.iter().zip(acks) {
            if result.is_err() {
                record.acks_failed += 1;
                continue;
            }
            acked += 1;
            if let Ok(info) = message.info() {
                record.sequences.push(info.stream_sequence);
            }
            if let Some(latency) = published_index(message).and_then(|i| self.sent.since(i, now)) {
                record.latency.record(latency);
            }
        }
        if acked > 0 {
            record.last_ack = Some(now);
            self.acked.fetch_add(acked, Ordering::Relaxed);
        }
        record
    }

    async fn ack(&self, message: &Message) -> Result<(), async_nats::Error> {
        match self.mode {
            AckMode::Double => message.double_ack().await,
            AckMode::Plain => message.ack().await,
            AckMode::Request => {
                let reply = message.reply.clone().ok_or("a message without a reply subject")?;
                self.client.request(reply, AckKind::Ack.into()).await?;
                Ok(())
            }
        }
    }
}

/// One consumer's task: what it pulls from and how it acks.
struct Puller {
    consumer: PullConsumer,
    batch: usize,
    /// Batches whose acks are in flight at once, at most.
    ack_batches: usize,
    acker: Arc<Acker>,
    done: CancellationToken,
}

impl Puller {
    /// Pulls and acks until `done`, re-opening the pull a bounded number of times; then lets
    /// the acks in flight finish.
    async fn run(self) -> ConsumerRecord {
        let mut record = ConsumerRecord::default();
        let mut acking = JoinSet::new();
        for _ in 0..MAX_PULLS {
            let pull = self.consumer.stream().group(WORKER_GROUP).max_messages_per_batch(self.batch);
            let pull = pull.expires(PULL_EXPIRY).heartbeat(PULL_EXPIRY / 2).messages();
            let messages = tokio::select! {
                _ = self.done.cancelled() => break,
                messages = pull => messages,
            };
            let Ok(messages) = messages else {
                record.pull_errors += 1;
                continue;
            };
            if self.take_batches(messages, &mut acking, &mut record).await {
                break;
            }
        }
        let drained = Instant::now() + FINISH_GRACE / 2;
        while let Ok(Some(joined)) = tokio::time::timeout_at(drained, acking.join_next()).await {
            record.merge(joined.unwrap_or_default());
        }
        record
    }

    /// Takes whatever has arrived as one batch and hands it to an ack round, until the pull
    /// ends (false) or `done` (true).
    async fn take_batches(
        &self,
        messages: pull::Stream,
        acking: &mut JoinSet<ConsumerRecord>,
        record: &mut ConsumerRecord,
    ) -> bool {
        let mut batches = messages.ready_chunks(self.batch);
        loop {
            let batch = tokio::select! {
                _ = self.done.cancelled() => return true,
                batch = batches.next() => batch,
            };
            let Some(batch) = batch else { return false };
            // Stream statuses (missed heartbeats and the like) are not messages.
            let messages: Vec<Message> = batch.into_iter().filter_map(Result::ok).collect();
            while acking.len() >= self.ack_batches {
                if let Some(joined) = acking.join_next().await {
                    record.merge(joined.unwrap_or_default());
                }
            }
            acking.spawn(self.acker.clone().ack_batch(messages));
            while let Some(joined) = acking.try_join_next() {
                record.merge(joined.unwrap_or_default());
            }
        }
    }
}

fn published_index(message: &Message) -> Option<usize> {
    let headers = message.headers.as_ref()?;
    index_of(headers.get(async_nats::header::NATS_MESSAGE_ID)?.as_str())
}

/// Runs baseline (b) on the cluster at `urls`.
pub async fn measure(
    urls: &[String],
    params: &BaselineParams,
    deadline: Instant,
    stop: &CancellationToken,
) -> Result<ConsumeFigures, BaselineError> {
    let mut nats = scratch::scratch_config(&params.run_id, "consume", params.partitions, params.replicas);
    nats.consumer_state_in_memory = params.consumer_memory;
    let js = scratch::connect(urls, params.inflight).await?;
    let traffic = Traffic::new(&nats.subject_prefix, params.partitions, params.content_bytes)?;
    let figures = match scratch::create(&js, &nats, params.messages, traffic.payload_bytes()?).await {
        Ok(stream) => consume(&js, &stream, &nats, &traffic, params, deadline, stop).await,
        Err(error) => Err(error),
    };
    let deleted = scratch::remove(&js, &nats.stream).await;
    let mut figures = figures?;
    figures.publish.stream_deleted = deleted;
    Ok(figures)
}

/// Starts the consumers, publishes, waits until every acked publish is acked by a consumer
/// (or the deadline), and accounts for every message.
async fn consume(
    js: &jetstream::Context,
    stream: &Stream,
    nats: &NatsConfig,
    traffic: &Traffic,
    params: &BaselineParams,
    deadline: Instant,
    stop: &CancellationToken,
) -> Result<ConsumeFigures, BaselineError> {
    let consumers = create_consumers(stream, nats).await?;
    let count = consumers.len();
    let sent = Arc::new(SentTimes::new(params.messages));
    let acked = Arc::new(AtomicU64::new(0));
    let acker =
        Arc::new(Acker { client: js.client(), mode: params.ack, sent: sent.clone(), acked: acked.clone() });
    let done = CancellationToken::new();
    let (batch, ack_batches) = (WorkerConfig::default().batch_max, params.ack_batches);
    let mut tasks = JoinSet::new();
    for consumer in consumers {
        let (acker, done) = (acker.clone(), done.clone());
        tasks.spawn(Puller { consumer, batch, ack_batches, acker, done }.run());
    }
    let run = publish_all(js, traffic, params.messages, params.inflight, &sent, deadline, stop).await;
    if let Ok(run) = &run {
        while acked.load(Ordering::Relaxed) < run.acked && Instant::now() < deadline && !stop.is_cancelled() {
            tokio::time::sleep(POLL).await;
        }
    }
    done.cancel();
    let records = crate::join::within(tasks, FINISH_GRACE).await;
    // Plain acks are only queued by the client: let them reach the server before the stream goes.
    let _ = js.client().flush().await;
    Ok(figures(&run?, &records, &nats.stream, params, count))
}

/// One consumer per partition from the cell's partition consumer definition, under scratch
/// durable names.
async fn create_consumers(stream: &Stream, nats: &NatsConfig) -> Result<Vec<PullConsumer>, BaselineError> {
    let mut consumers = Vec::with_capacity(nats.partitions as usize);
    for p in 0..nats.partitions {
        let mut config = consumer_config(nats, &WorkerConfig::default(), Partition(p))?;
        let name = format!("lgb-p{p:03}");
        config.durable_name = Some(name.clone());
        let patience = Instant::now() + CREATE_PATIENCE;
        let consumer = loop {
            match stream.create_consumer(config.clone()).await {
                Ok(consumer) => break consumer,
                Err(_) if Instant::now() < patience => tokio::time::sleep(Duration::from_millis(500)).await,
                Err(error) => return Err(BaselineError::Consumer { name, reason: error.to_string() }),
            }
        };
        consumers.push(consumer);
    }
    Ok(consumers)
}

fn figures(
    run: &PublishRun,
    records: &[ConsumerRecord],
    stream: &str,
    params: &BaselineParams,
    consumers: usize,
) -> ConsumeFigures {
    let mut latency = Latency::default();
    let mut consumed = Vec::new();
    for record in records {
        latency.merge(&record.latency);
        consumed.extend(&record.sequences);
    }
    let ledger = reconcile(&run.sequences, &consumed);
    let last = records.iter().filter_map(|r| r.last_ack).max();
    let elapsed_s = run.first.zip(last).map_or(0.0, |(first, last)| last.duration_since(first).as_secs_f64());
    ConsumeFigures {
        publish: run.figures(stream, params.messages),
        ack: params.ack,
        ack_batches: params.ack_batches,
        consumers,
        pull_errors: records.iter().map(|r| r.pull_errors).sum(),
        acks_failed: records.iter().map(|r| r.acks_failed).sum(),
        ledger,
        elapsed_s,
        consumed_per_s: if elapsed_s > 0.0 { ledger.consumed as f64 / elapsed_s } else { 0.0 },
        latency_ms: latency.percentiles(),
    }
}
