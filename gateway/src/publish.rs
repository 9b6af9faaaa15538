//! Batch publishing into JetStream. Sends from every socket of the gateway queue here; one
//! task takes what is queued, waits at most `publish_linger` (1 ms) or until `publish_batch_max`
//! (100) messages are there, publishes them back to back with one flush, and answers each
//! sender when its PubAck arrives. The window of publishes awaiting a PubAck is bounded
//! (`publish_max_inflight`); past it the task waits, and the queue in front of it fills, which
//! is where senders feel back-pressure.
//!
//! A resend of a message whose first publish the stream has not stored yet (a reconnect or a
//! double click before the PubAck: JetStream refuses it as "in process", error 10158) waits
//! for the first's outcome: it is published again every few milliseconds, up to
//! `publish_ack_timeout`, until the stream answers it as the duplicate of the stored one (its
//! PubAck names the first's sequence) or stores it, if the first was lost.

use crate::metrics::GatewayMetrics;
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::{self, message::PublishMessage, publish::PublishAck};
use bytes::Bytes;
use shared::config::GatewayConfig;
use shared::events::{CHANGE_HEADER, TRACE_HEADER};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Why a publish got no PubAck. Every variant is retryable by the client. The words of the
/// broker are for the log; clients get their code's own text (`shared::protocol`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum PublishFailure {
    #[error("the stream did not confirm the message: {0}")]
    NotConfirmed(String),
    /// A publish of the same message id was still being stored after `publish_ack_timeout`.
    #[error("a publish of the same message id is still in process")]
    InProcess,
    #[error("the gateway is shutting down")]
    ShuttingDown,
}

struct PublishRequest {
    subject: String,
    dedup_key: String,
    /// `traceparent` of the send, carried to the worker in a header.
    trace: String,
    /// A change to a stored message rather than a new one (the `Chat-Change` header).
    change: bool,
    payload: Bytes,
    reply: oneshot::Sender<Result<PublishAck, PublishFailure>>,
}

impl PublishRequest {
    /// A request for the publish of these parts, and the receiver of its answer.
    fn new(
        subject: &str,
        dedup_key: &str,
        payload: &Bytes,
        trace: &str,
        change: bool,
    ) -> (Self, oneshot::Receiver<Result<PublishAck, PublishFailure>>) {
        let (reply, answer) = oneshot::channel();
        let (subject, dedup_key, trace, payload) =
            (subject.to_owned(), dedup_key.to_owned(), trace.to_owned(), payload.clone());
        (Self { subject, dedup_key, trace, change, payload, reply }, answer)
    }
}

/// Handle to the gateway's publish task. Cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    queue: mpsc::Sender<PublishRequest>,
    /// How long a resend waits for its first publish's outcome (`publish_ack_timeout`).
    in_process_wait: std::time::Duration,
}

/// How often a resend whose first publish is in process is published again.
const IN_PROCESS_RETRY: std::time::Duration = std::time::Duration::from_millis(20);

impl Publisher {
    /// Starts the publish task; it stops when `shutdown` is cancelled, after answering every
    /// queued and in-flight publish.
    pub fn start(
        js: jetstream::Context,
        config: &GatewayConfig,
        metrics: Arc<GatewayMetrics>,
        shutdown: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (queue, rx) = mpsc::channel(config.publish_max_inflight);
        let batch_max = config.publish_batch_max.max(1);
        let batcher = Batcher { js, rx, linger: config.publish_linger, batch_max, metrics };
        let publisher = Self { queue, in_process_wait: config.publish_ack_timeout };
        (publisher, tokio::spawn(batcher.run(shutdown)))
    }

    /// Queues a message, in call order, and returns a future of its PubAck (or failure).
    /// Waits while the queue is full: that is the back-pressure a sender feels. A resend whose
    /// first publish is in process is published again until that one's outcome is known.
    pub async fn submit(
        &self,
        subject: String,
        dedup_key: String,
        payload: Bytes,
        trace: String,
        change: bool,
    ) -> impl Future<Output = Result<PublishAck, PublishFailure>> + use<> {
        let request = PublishRequest::new(&subject, &dedup_key, &payload, &trace, change);
        let mut answer = self.enqueue(request).await;
        let publisher = self.clone();
        async move {
            let deadline = tokio::time::Instant::now() + publisher.in_process_wait;
            loop {
                match answer.await {
                    Err(PublishFailure::InProcess) if tokio::time::Instant::now() < deadline => {
                        tokio::time::sleep(IN_PROCESS_RETRY).await;
                        let again = PublishRequest::new(&subject, &dedup_key, &payload, &trace, change);
                        answer = publisher.enqueue(again).await;
                    }
                    outcome => return outcome,
                }
            }
        }
    }

    /// Queues one publish; the future of its answer.
    async fn enqueue(
        &self,
        (request, answer): (PublishRequest, oneshot::Receiver<Result<PublishAck, PublishFailure>>),
    ) -> impl Future<Output = Result<PublishAck, PublishFailure>> + use<> {
        let queued = self.queue.send(request).await.is_ok();
        async move {
            if !queued {
                return Err(PublishFailure::ShuttingDown);
            }
            answer.await.unwrap_or(Err(PublishFailure::ShuttingDown))
        }
    }
}

struct Batcher {
    js: jetstream::Context,
    rx: mpsc::Receiver<PublishRequest>,
    linger: std::time::Duration,
    batch_max: usize,
    metrics: Arc<GatewayMetrics>,
}

impl Batcher {
    async fn run(mut self, shutdown: CancellationToken) {
        // Each PubAck is awaited by a task of its own: an ack future keeps its in-flight permit
        // until it completes, so acks must make progress while this loop waits for a permit.
        let mut awaiting = tokio::task::JoinSet::new();
        let mut batch = Vec::with_capacity(self.batch_max);
        loop {
            while awaiting.try_join_next().is_some() {}
            tokio::select! {
                _ = shutdown.cancelled() => break,
                received = self.rx.recv_many(&mut batch, self.batch_max) => {
                    if received == 0 { break; }
                }
            }
            self.fill_until_linger(&mut batch).await;
            self.publish_batch(&mut batch, &mut awaiting).await;
        }
        // Drain: publish what is queued, then answer everything in flight.
        self.rx.close();
        while self.rx.recv_many(&mut batch, self.batch_max).await > 0 {
            self.publish_batch(&mut batch, &mut awaiting).await;
        }
        while awaiting.join_next().await.is_some() {}
    }

    /// Tops the batch up with what arrives within the linger time.
    async fn fill_until_linger(&mut self, batch: &mut Vec<PublishRequest>) {
        let deadline = tokio::time::Instant::now() + self.linger;
        while batch.len() < self.batch_max {
            let room = self.batch_max - batch.len();
            match tokio::time::timeout_at(deadline, self.rx.recv_many(batch, room)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }

    /// Publishes the batch back to back and flushes once; a task per message answers its
    /// sender when the PubAck comes.
    async fn publish_batch(&self, batch: &mut Vec<PublishRequest>, awaiting: &mut tokio::task::JoinSet<()>) {
        let started = std::time::Instant::now();
        self.metrics.publish_batch_size.observe(batch.len() as f64);
        for request in batch.drain(..) {
            let mut publish = PublishMessage::build()
                .payload(request.payload)
                .message_id(&request.dedup_key)
                .header(TRACE_HEADER, request.trace.as_str());
            if request.change {
                publish = publish.header(CHANGE_HEADER, "1");
            }
            match self.js.send_publish(request.subject, publish).await {
                Ok(ack) => {
                    let metrics = self.metrics.clone();
                    awaiting.spawn(async move {
                        let result = ack.await.map_err(|e| failure(&e, &metrics));
                        let _ = request.reply.send(result);
                    });
                }
                Err(error) => {
                    let _ = request.reply.send(Err(failure(&error, &self.metrics)));
                }
            }
        }
        if let Err(error) = self.js.client().flush().await {
            tracing::warn!(%error, "flushing a publish batch failed");
        }
        self.metrics.publish_flush_seconds.observe(started.elapsed().as_secs_f64());
    }
}

/// What a publish error means for the sender; counted unless it is a resend in process.
fn failure(error: &PublishError, metrics: &GatewayMetrics) -> PublishFailure {
    let in_process = std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<jetstream::Error>())
        .is_some_and(|e| e.error_code() == jetstream::ErrorCode::STREAM_DUPLICATE_MESSAGE_CONFLICT);
    if in_process {
        return PublishFailure::InProcess;
    }
    metrics.puback_error(error.kind() == PublishErrorKind::TimedOut);
    PublishFailure::NotConfirmed(error.to_string())
}
