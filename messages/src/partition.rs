//! One partition's loop: pull from its consumer in the `workers` priority group (the server
//! pins the partition to one worker process at a time, which keeps per-channel order with
//! several workers), take whatever has arrived as one batch, and run [`step`] on it.

use crate::Deps;
use crate::deliver::announce;
use crate::persist::{PersistBatch, persist_batch};
use async_nats::jetstream::{AckKind, Message, consumer::PullConsumer};
use futures::StreamExt;
use shared::events::StreamMessage;
use shared::streams::WORKER_GROUP;
use shared::subjects::Partition;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long a pull request waits on the server before it is renewed; well below the pin
/// timeout, so a live worker never loses its pin between pulls.
const PULL_EXPIRY: Duration = Duration::from_secs(5);

pub async fn run(deps: Arc<Deps>, partition: Partition, consumer: PullConsumer, shutdown: CancellationToken) {
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
                backoff.wait(&shutdown).await;
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
            while let Err(error) = step(&deps, &messages).await {
                tracing::warn!(partition = partition.0, %error, "persisting batch failed; retrying");
                for message in &messages {
                    let _ = message.ack_with(AckKind::Progress).await;
                }
                if shutdown.is_cancelled() {
                    return;
                }
                backoff.wait(&shutdown).await;
            }
            backoff.reset();
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Persist(#[from] crate::persist::PersistError),
}

/// Persists one fetched batch in one transaction, announces it, then acknowledges it. Order
/// of effects: write (with the dedup key) → commit → announce → ack; never ack first.
pub async fn step(deps: &Deps, messages: &[Message]) -> Result<(), StepError> {
    let mut batch = PersistBatch { messages: Vec::with_capacity(messages.len()) };
    for message in messages {
        match serde_json::from_slice::<StreamMessage>(&message.payload) {
            Ok(decoded) => batch.messages.push(decoded),
            Err(error) => {
                // Gateways only publish what they encoded themselves; anything else never
                // becomes valid, so it is terminated rather than redelivered forever.
                tracing::error!(subject = %message.subject, %error, "undecodable message terminated");
                let _ = message.ack_with(AckKind::Term).await;
            }
        }
    }
    let persisted = persist_batch(&deps.db, &batch).await?;
    tracing::debug!(
        batch = batch.messages.len(),
        stored = persisted.iter().filter(|p| p.fresh).count(),
        "batch persisted"
    );
    if let Err(error) = announce(&deps.nats, &deps.subjects, &batch.messages, &persisted).await {
        // Stored and committed: gateways fill what they missed from Postgres, so the batch is
        // still acknowledged rather than stored again.
        tracing::warn!(%error, "announcing deliveries failed");
    }
    // Every message is acknowledged on its own (ack policy "explicit"): a cumulative ack
    // would also acknowledge a message lost on its way to this worker. Double acks, all in
    // flight at once: each waits for the server to confirm.
    let acks = futures::future::join_all(messages.iter().map(|m| m.double_ack())).await;
    if let Some(error) = acks.into_iter().find_map(Result::err) {
        tracing::warn!(%error, "ack not confirmed; the message may be redelivered and skipped as stored");
    }
    Ok(())
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
