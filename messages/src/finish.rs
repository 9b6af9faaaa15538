//! The second half of a partition's step, off its persist loop: announcing what a step
//! committed, in stream order, then acknowledging the step's messages. A partition hands each
//! step's [`Finish`] to its [`Finisher`], one task that takes them in order, so announcements
//! keep the stream's order while the loop already persists the next batch, and the acks of
//! several batches are in flight at once. Nothing is acknowledged before it is committed and
//! announced; an ack lost on the way means a redelivery, which is skipped as stored.

use crate::changes::AppliedChange;
use crate::deliver::{announce, announce_change, announce_rejection};
use crate::deps::Deps;
use crate::persist::PersistedMessage;
use async_nats::jetstream::{AckKind, Message};
use shared::events::{StreamChange, StreamMessage};
use shared::protocol::ChangeRejection;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Finished steps waiting for the finisher, at most; past that the partition loop waits.
const QUEUED_FINISHES: usize = 4;
/// Batches whose acks are in flight at once, at most.
const ACKING_BATCHES: usize = 8;

/// What one step committed, to be told to the gateways in this order.
pub enum Announcement {
    /// A run of new messages, as stored (the decoded batch, its rows, the trace of each by
    /// dedup key).
    Messages { batch: Vec<StreamMessage>, persisted: Vec<PersistedMessage>, traces: HashMap<String, String> },
    /// A change that took a `seq`.
    Change { applied: AppliedChange, trace: Option<String> },
    /// A change that was not applied, told to its author.
    Rejection { change: StreamChange, reason: ChangeRejection },
}

/// The rest of one step: what to announce, then which messages to acknowledge (every message
/// of the batch but the dead-lettered ones, which the step terminated).
#[derive(Default)]
pub struct Finish {
    pub announcements: Vec<Announcement>,
    pub acks: Vec<Message>,
}

/// Announces a finished step and flushes once, then acknowledges its messages: the two halves
/// the finisher runs, in one go (the tests of a step).
#[cfg(test)]
pub async fn finish(deps: &Deps, finish: Finish) {
    announce_all(deps, &finish.announcements).await;
    acknowledge(&deps.nats, &finish.acks).await;
}

async fn announce_all(deps: &Deps, announcements: &[Announcement]) {
    for announcement in announcements {
        let announced = match announcement {
            Announcement::Messages { batch, persisted, traces } => {
                announce(&deps.nats, &deps.subjects, batch, persisted, traces).await
            }
            Announcement::Change { applied, trace } => {
                announce_change(&deps.nats, &deps.subjects, applied, trace.as_deref()).await
            }
            Announcement::Rejection { change, reason } => {
                announce_rejection(&deps.nats, &deps.subjects, change, *reason).await
            }
        };
        // Committed: gateways fill what they missed from Postgres (and a rejection is best
        // effort), so the messages are still acknowledged rather than stored again.
        if let Err(error) = announced {
            tracing::warn!(%error, "announcing failed");
        }
    }
    if let Err(error) = deps.nats.flush().await {
        tracing::warn!(%error, "flushing announcements failed");
    }
}

/// Every message is acknowledged on its own (ack policy "explicit": a cumulative ack would
/// also acknowledge a message lost on its way to this worker), each as a request on the
/// client's one reply subscription, all in flight at once (`double_ack` would subscribe and
/// unsubscribe once per message, which the cluster's routes carry to every node).
async fn acknowledge(nats: &async_nats::Client, messages: &[Message]) {
    let acks = messages
        .iter()
        .filter_map(|m| m.reply.clone())
        .map(|reply| nats.request(reply, bytes::Bytes::from(AckKind::Ack)));
    let acks = futures::future::join_all(acks).await;
    if let Some(error) = acks.into_iter().find_map(Result::err) {
        tracing::warn!(%error, "ack not confirmed; the message may be redelivered and skipped as stored");
    }
}

/// One partition's finishing task and the queue in front of it.
pub struct Finisher {
    queue: mpsc::Sender<Finish>,
    task: tokio::task::JoinHandle<()>,
}

impl Finisher {
    pub fn start(deps: Arc<Deps>) -> Self {
        let (queue, finishes) = mpsc::channel(QUEUED_FINISHES);
        Self { queue, task: tokio::spawn(run(deps, finishes)) }
    }

    /// Queues a step's finish behind the earlier ones; waits while the queue is full.
    pub async fn hand(&self, finish: Finish) {
        if let Err(mpsc::error::SendError(finish)) = self.queue.send(finish).await {
            // The task only ends once this handle is closed, or if it panicked: the step's
            // messages stay unacknowledged and are redelivered, then skipped as stored.
            tracing::error!(
                acks = finish.acks.len(),
                "finisher gone; the step's messages will be redelivered"
            );
        }
    }

    /// Finishes everything queued (announced and acknowledged), then ends the task.
    pub async fn close(self) {
        drop(self.queue);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "finisher failed");
        }
    }
}

async fn run(deps: Arc<Deps>, mut finishes: mpsc::Receiver<Finish>) {
    let mut acking = JoinSet::new();
    while let Some(Finish { announcements, acks }) = finishes.recv().await {
        announce_all(&deps, &announcements).await;
        while acking.len() >= ACKING_BATCHES {
            acking.join_next().await;
        }
        let nats = deps.nats.clone();
        acking.spawn(async move { acknowledge(&nats, &acks).await });
        while acking.try_join_next().is_some() {}
    }
    while acking.join_next().await.is_some() {}
}
