//! Dead letters: a message the worker can never persist (its payload does not decode, or
//! Postgres refuses it alone in its own transaction) is copied into the dead-letter stream
//! with the reason, then terminated, so it never blocks its partition. The server's own
//! notices of messages past `max_deliver` land in the same stream by subject; the worker only
//! counts them. An operator inspects and replays from there (docs/runbook.md).

use crate::metrics::{DeadLetterReason, WorkerMetrics};
use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, Message};
use futures::StreamExt;
use shared::streams::MAX_DELIVERIES_ADVISORY;
use tokio_util::sync::CancellationToken;

/// Headers of a dead letter.
pub const REASON_HEADER: &str = "Chat-Dead-Reason";
pub const ERROR_HEADER: &str = "Chat-Dead-Error";
pub const SUBJECT_HEADER: &str = "Chat-Original-Subject";
pub const SEQUENCE_HEADER: &str = "Chat-Original-Sequence";

#[derive(Debug, thiserror::Error)]
#[error("dead-lettering stream message {sequence}: {source}")]
pub struct DeadLetterError {
    sequence: u64,
    source: async_nats::Error,
}

/// Stores `message` in the dead-letter stream (awaiting the stream's PubAck), counts it, and
/// terminates it in its consumer. Idempotent: the copy's `Nats-Msg-Id` is the original's
/// stream sequence, so a retry after a failed term stores nothing twice.
pub async fn dead_letter(
    js: &jetstream::Context,
    subject: String,
    metrics: &WorkerMetrics,
    message: &Message,
    reason: DeadLetterReason,
    error: &str,
) -> Result<(), DeadLetterError> {
    let sequence = message.info().map(|info| info.stream_sequence).unwrap_or_default();
    let fail = |source: async_nats::Error| DeadLetterError { sequence, source };
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", format!("dead:{sequence}").as_str());
    headers.insert(REASON_HEADER, reason.as_str());
    headers.insert(ERROR_HEADER, error.chars().take(200).collect::<String>().as_str());
    headers.insert(SUBJECT_HEADER, message.subject.as_str());
    headers.insert(SEQUENCE_HEADER, sequence.to_string().as_str());
    let ack = js
        .publish_with_headers(subject, headers, message.payload.clone())
        .await
        .map_err(|e| fail(e.into()))?;
    ack.await.map_err(|e| fail(e.into()))?;
    tracing::error!(sequence, subject = %message.subject, reason = reason.as_str(), %error, "message dead-lettered");
    metrics.dead_lettered(reason);
    message.ack_with(AckKind::Term).await.map_err(fail)?;
    Ok(())
}

/// Counts the server's notices that a message of `stream` went past `max_deliver`, until
/// `shutdown`. One worker of the queue group counts each notice.
pub async fn count_max_deliveries(
    nats: async_nats::Client,
    stream: String,
    metrics: WorkerMetrics,
    shutdown: CancellationToken,
) {
    let subject = format!("{MAX_DELIVERIES_ADVISORY}.{stream}.*");
    let mut notices = match nats.queue_subscribe(subject, "workers-dead-letters".into()).await {
        Ok(notices) => notices,
        Err(error) => {
            tracing::warn!(%error, "cannot follow max-deliveries notices");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            notice = notices.next() => match notice {
                Some(notice) => {
                    tracing::error!(notice = %String::from_utf8_lossy(&notice.payload), "message past max_deliver");
                    metrics.dead_lettered(DeadLetterReason::MaxDeliver);
                }
                None => return,
            },
        }
    }
}
