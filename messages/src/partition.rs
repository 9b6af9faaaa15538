//! One partition's loop: pull from its consumer in the `workers` priority group (the server
//! pins the partition to one worker process at a time, which keeps per-channel order with
//! several workers), take whatever has arrived as one batch, and run [`step`] on it; the
//! step's [`Finish`] (announce, then acknowledge) goes to the partition's [`Finisher`], so the
//! loop persists the next batch while the last one is announced and acknowledged.

use crate::changes::apply_change;
use crate::dead_letter::dead_letter;
use crate::deps::Deps;
use crate::finish::{Announcement, Finish, Finisher};
use crate::metrics::DeadLetterReason;
use crate::persist::{PersistBatch, PersistedMessage, persist_batch};
use async_nats::jetstream::{AckKind, Message, consumer::PullConsumer};
use futures::StreamExt;
use shared::events::{CHANGE_HEADER, StreamChange, StreamMessage, TRACE_HEADER};
use shared::streams::WORKER_GROUP;
use shared::subjects::Partition;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long a pull request waits on the server before it is renewed; well below the pin
/// timeout, so a live worker never loses its pin between pulls.
const PULL_EXPIRY: Duration = Duration::from_secs(5);

pub async fn run(deps: Arc<Deps>, partition: Partition, consumer: PullConsumer, shutdown: CancellationToken) {
    let finisher = Finisher::start(deps.clone());
    pull_until_shutdown(&deps, partition, &consumer, &finisher, &shutdown).await;
    // What was committed is announced and acknowledged before the partition stops.
    finisher.close().await;
}

async fn pull_until_shutdown(
    deps: &Deps,
    partition: Partition,
    consumer: &PullConsumer,
    finisher: &Finisher,
    shutdown: &CancellationToken,
) {
    let mut backoff = Backoff::default();
    while !shutdown.is_cancelled() {
        let messages = consumer
            .stream()
            .group(WORKER_GROUP)
            .max_messages_per_batch(deps.config.worker.batch_max)
            .expires(PULL_EXPIRY)
            .heartbeat(PULL_EXPIRY / 2)
            .messages()
            .await;
        let messages = match messages {
            Ok(messages) => messages,
            Err(error) => {
                tracing::warn!(partition = partition.0, %error, "cannot pull; retrying");
                backoff.wait(shutdown).await;
                continue;
            }
        };
        let mut batches = messages.ready_chunks(deps.config.worker.batch_max);
        loop {
            let batch = tokio::select! {
                _ = shutdown.cancelled() => return,
                batch = batches.next() => batch,
            };
            let Some(batch) = batch else { break };
            let (messages, errors): (Vec<_>, Vec<_>) = batch.into_iter().partition(Result::is_ok);
            for error in errors.into_iter().filter_map(Result::err) {
                tracing::debug!(partition = partition.0, %error, "pull stream status");
            }
            let messages: Vec<Message> = messages.into_iter().filter_map(Result::ok).collect();
            if messages.is_empty() {
                continue;
            }
            // A step that fails is retried until it succeeds or shutdown: the batch stays
            // unacknowledged, so nothing after it in the partition gets ahead of it.
            let finish = loop {
                match step(deps, partition, &messages).await {
                    Ok(finish) => break finish,
                    Err(error) => {
                        tracing::warn!(partition = partition.0, %error, "persisting batch failed; retrying");
                    }
                }
                for message in &messages {
                    let _ = message.ack_with(AckKind::Progress).await;
                }
                if shutdown.is_cancelled() {
                    return;
                }
                backoff.wait(shutdown).await;
            };
            backoff.reset();
            finisher.hand(finish).await;
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Persist(#[from] crate::persist::PersistError),
    #[error(transparent)]
    DeadLetter(#[from] crate::dead_letter::DeadLetterError),
}

/// Stores one fetched batch, in stream order: each run of new messages is persisted in one
/// transaction, each change (edit, delete, reaction) in one of its own after the messages
/// before it. Returns what is left to do, in order: announce, then acknowledge (see
/// [`crate::finish`]): write (with the dedup key) → commit → announce → ack, never ack
/// first. Anything that can never be stored goes to the dead-letter stream (see
/// [`persist_isolating`]); any other failure is returned and the batch retried (what was
/// committed is skipped as stored, and announced again by the retry's finish).
pub async fn step(deps: &Deps, partition: Partition, messages: &[Message]) -> Result<Finish, StepError> {
    let dead_letters = deps.subjects.dead_letter(partition);
    let mut finish = Finish::default();
    let mut run: Vec<(&Message, StreamMessage)> = Vec::new();
    for message in messages {
        if message.info().is_ok_and(|info| info.delivered > 1) {
            deps.metrics.redeliveries.inc();
        }
        let is_change = message.headers.as_ref().is_some_and(|h| h.get(CHANGE_HEADER).is_some());
        let decoded = match is_change {
            true => serde_json::from_slice::<StreamChange>(&message.payload).map(Entry::Change),
            false => serde_json::from_slice::<StreamMessage>(&message.payload).map(Entry::Message),
        };
        match decoded {
            Ok(Entry::Message(decoded)) => run.push((message, decoded)),
            Ok(Entry::Change(change)) => {
                persist_run(deps, &dead_letters, std::mem::take(&mut run), &mut finish).await?;
                apply_one(deps, &dead_letters, message, change, &mut finish).await?;
            }
            // Gateways only publish what they encoded themselves; anything else never
            // becomes valid.
            Err(error) => {
                let reason = DeadLetterReason::Undecodable;
                dead_letter(
                    &deps.js,
                    dead_letters.clone(),
                    &deps.metrics,
                    message,
                    reason,
                    &error.to_string(),
                )
                .await?;
            }
        }
    }
    persist_run(deps, &dead_letters, run, &mut finish).await?;
    Ok(finish)
}

enum Entry {
    Message(StreamMessage),
    Change(StreamChange),
}

/// Persists a run of new messages in one transaction; their announcement and acks go into
/// `finish`.
async fn persist_run(
    deps: &Deps,
    dead_letters: &str,
    run: Vec<(&Message, StreamMessage)>,
    finish: &mut Finish,
) -> Result<(), StepError> {
    if run.is_empty() {
        return Ok(());
    }
    let (sources, messages): (Vec<&Message>, Vec<StreamMessage>) = run.into_iter().unzip();
    let batch = PersistBatch { messages };
    let started = std::time::Instant::now();
    let (persisted, sources, batch) = persist_isolating(deps, dead_letters, sources, batch).await?;
    deps.metrics.persist_seconds.observe(started.elapsed().as_secs_f64());
    deps.metrics.persist_batch_size.observe(batch.messages.len() as f64);
    let fresh = persisted.iter().filter(|p| p.fresh).count();
    deps.metrics.persisted.inc_by(fresh as u64);
    tracing::debug!(batch = batch.messages.len(), stored = fresh, "batch persisted");
    // The trace of each message, from its publish to its delivery.
    let traces: std::collections::HashMap<String, String> = sources
        .iter()
        .zip(&batch.messages)
        .filter_map(|(message, decoded)| Some((decoded.dedup_key(), trace_of(message)?.to_owned())))
        .collect();
    finish.acks.extend(sources.into_iter().cloned());
    finish.announcements.push(Announcement::Messages { batch: batch.messages, persisted, traces });
    Ok(())
}

/// Applies one change in its own transaction; its announcement (if it took a `seq`, or its
/// rejection) and its ack go into `finish`. A change Postgres refuses outright is
/// dead-lettered.
async fn apply_one(
    deps: &Deps,
    dead_letters: &str,
    source: &Message,
    change: StreamChange,
    finish: &mut Finish,
) -> Result<(), StepError> {
    match apply_change(&deps.db, &change).await {
        Ok(Ok(applied)) => {
            if applied.fresh {
                deps.metrics.change(change.change.kind(), "applied");
            }
            let trace = trace_of(source).map(str::to_owned);
            finish.announcements.push(Announcement::Change { applied, trace });
        }
        Ok(Err(ignored)) => {
            tracing::debug!(channel = %change.channel_id, reason = ignored.as_str(), "change ignored");
            deps.metrics.change(change.change.kind(), ignored.as_str());
            if let Some(reason) = ignored.rejection(&change.change) {
                finish.announcements.push(Announcement::Rejection { change, reason });
            }
        }
        Err(error) if error.is_permanent() => {
            let reason = DeadLetterReason::Rejected;
            dead_letter(&deps.js, dead_letters.to_owned(), &deps.metrics, source, reason, &error.to_string())
                .await?;
            return Ok(());
        }
        Err(error) => return Err(error.into()),
    }
    finish.acks.push(source.clone());
    Ok(())
}

fn trace_of(message: &Message) -> Option<&str> {
    Some(message.headers.as_ref()?.get(TRACE_HEADER)?.as_str())
}

/// Persists the batch in one transaction. If Postgres refuses its data, persists the messages
/// one by one, in stream order, each in its own transaction, and dead-letters each one it
/// refuses alone; the rest keep their order and get their `seq`. `sources` are the stream
/// messages of `batch`, in the same order. Returns what is stored and the messages kept (all
/// but the dead-lettered ones), sources and decoded alike.
async fn persist_isolating<'a>(
    deps: &Deps,
    dead_letters: &str,
    sources: Vec<&'a Message>,
    batch: PersistBatch,
) -> Result<(Vec<PersistedMessage>, Vec<&'a Message>, PersistBatch), StepError> {
    match persist_batch(&deps.db, &batch).await {
        Ok(persisted) => return Ok((persisted, sources, batch)),
        Err(error) if !error.is_permanent() => return Err(error.into()),
        Err(error) => {
            tracing::warn!(%error, batch = batch.messages.len(), "batch refused; persisting one by one")
        }
    }
    let batch_len = sources.len();
    let mut persisted = Vec::with_capacity(batch_len);
    let mut kept_sources = Vec::with_capacity(batch_len);
    let mut kept = PersistBatch { messages: Vec::with_capacity(batch_len) };
    let mut refused = Vec::new();
    for (message, decoded) in sources.into_iter().zip(batch.messages) {
        let alone = PersistBatch { messages: vec![decoded] };
        // Keeps the batch's messages from being redelivered while they go one by one.
        let _ = message.ack_with(AckKind::Progress).await;
        match persist_batch(&deps.db, &alone).await {
            Ok(rows) => {
                persisted.extend(rows);
                kept_sources.push(message);
                kept.messages.extend(alone.messages);
            }
            Err(error) if error.is_permanent() => refused.push((message, error)),
            Err(error) => return Err(error.into()),
        }
    }
    // Every message of a batch refused alone: the fault is in the schema or a query (a bad
    // deploy), not in the messages. Retried, never dead-lettered wholesale. (What was stored
    // above is committed; the retry skips it as stored.)
    if batch_len > 1 && kept_sources.is_empty() {
        let (_, error) = refused.swap_remove(0);
        tracing::error!(%error, batch = batch_len, "every message of the batch refused; retrying, not dead-lettering");
        return Err(error.into());
    }
    for (message, error) in refused {
        let reason = DeadLetterReason::Rejected;
        dead_letter(&deps.js, dead_letters.to_owned(), &deps.metrics, message, reason, &error.to_string())
            .await?;
    }
    persisted.sort_by_key(|r| (r.channel_id, r.seq));
    Ok((persisted, kept_sources, kept))
}

/// Exponential backoff between retries, 100 ms up to 5 s.
#[derive(Default)]
struct Backoff {
    attempt: u32,
}

impl Backoff {
    async fn wait(&mut self, shutdown: &CancellationToken) {
        let delay = Duration::from_millis(100 * 2u64.pow(self.attempt.min(6))).min(Duration::from_secs(5));
        self.attempt += 1;
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(delay) => {}
        }
    }

    fn reset(&mut self) {
        self.attempt = 0;
    }
}
