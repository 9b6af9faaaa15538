//! A worker of one partition without a whole cell: its own Postgres and one-node NATS, the
//! streams and the partition's consumer set up by the worker's own code (R1, one partition),
//! a pull like the partition loop's, and an observer of what the worker announces on core NATS.

use super::support::{TestDb, TestNats, WAIT};
use crate::deps::Deps;
use crate::metrics::WorkerMetrics;
use async_nats::jetstream::{Message, consumer::PullConsumer, consumer::pull};
use futures::StreamExt;
use shared::config::Config;
use shared::events::{CHANGE_HEADER, StreamChange, StreamMessage};
use shared::ids::ChannelId;
use shared::streams::WORKER_GROUP;
use shared::subjects::{Partition, Subjects};
use std::sync::Arc;
use std::time::Duration;

/// Header of the message an observer publishes after the step: everything announced before it
/// has arrived once it has.
const END_HEADER: &str = "Test-End";

pub struct TestWorker {
    pub deps: Arc<Deps>,
    pub consumer: PullConsumer,
    pulls: pull::Stream,
    /// A client of its own that watches core NATS subjects.
    observer: async_nats::Client,
    pub db: TestDb,
    _nats: TestNats,
}

impl TestWorker {
    pub async fn start() -> Self {
        let (db, nats) = tokio::join!(TestDb::start(), TestNats::start());
        let mut config = Config::default();
        config.nats.urls = vec![nats.url.clone()];
        config.nats.partitions = 1;
        config.nats.replicas = 1;
        let client = async_nats::connect(&nats.url).await.expect("connects to NATS");
        let js = async_nats::jetstream::new(client.clone());
        let (_, consumer) = crate::set_up_streams(&js, &config).await.expect("streams set up").remove(0);
        // As the partition loop pulls (the consumer is pinned to one puller of the group).
        let pulls = consumer
            .stream()
            .group(WORKER_GROUP)
            .max_messages_per_batch(config.worker.batch_max)
            .expires(Duration::from_secs(5))
            .heartbeat(Duration::from_millis(2500))
            .messages()
            .await
            .expect("pulls");
        let metrics = WorkerMetrics::register(&mut prometheus_client::registry::Registry::default());
        let subjects = Subjects::new(&config.nats.subject_prefix);
        let observer = async_nats::connect(&nats.url).await.expect("connects to NATS");
        let deps = Arc::new(Deps { nats: client, js, metrics, db: db.pool.clone(), subjects, config });
        Self { deps, consumer, pulls, observer, db, _nats: nats }
    }

    /// Publishes raw bytes into the stream as a gateway would for `channel`, with `headers`.
    pub async fn publish_raw(&self, channel: ChannelId, headers: async_nats::HeaderMap, payload: Vec<u8>) {
        let subject = self.deps.subjects.publish(channel, self.deps.config.nats.partitions);
        let ack =
            self.deps.js.publish_with_headers(subject, headers, payload.into()).await.expect("published");
        ack.await.expect("stored by the stream");
    }

    pub async fn publish(&self, message: &StreamMessage) {
        let payload = serde_json::to_vec(message).expect("encodes");
        self.publish_raw(message.channel_id, async_nats::HeaderMap::new(), payload).await;
    }

    pub async fn publish_change(&self, change: &StreamChange) {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(CHANGE_HEADER, "1");
        let payload = serde_json::to_vec(change).expect("encodes");
        self.publish_raw(change.channel_id, headers, payload).await;
    }

    /// The next `n` messages of the partition, as the partition loop gets them.
    pub async fn pull(&mut self, n: usize) -> Vec<Message> {
        let mut batch = Vec::with_capacity(n);
        while batch.len() < n {
            match tokio::time::timeout(WAIT, self.pulls.next()).await {
                Ok(Some(Ok(message))) => batch.push(message),
                Ok(Some(Err(status))) => tracing::debug!(%status, "pull status"),
                Ok(None) | Err(_) => panic!("pulled {} of {n} messages", batch.len()),
            }
        }
        batch
    }

    /// One step of the partition loop over `batch`, and its finish (announce, acknowledge).
    pub async fn step(&self, batch: &[Message]) {
        let finish = crate::partition::step(&self.deps, Partition(0), batch).await.expect("step succeeds");
        crate::finish::finish(&self.deps, finish).await;
    }

    /// The consumer's `(num_pending, num_ack_pending)`: not yet delivered, and delivered but
    /// neither acknowledged nor terminated.
    pub async fn pending(&self) -> (u64, usize) {
        let info = self.consumer.get_info().await.expect("consumer info");
        (info.num_pending, info.num_ack_pending)
    }

    /// Starts watching a core NATS subject (the subscription is on the server on return).
    pub async fn watch(&self, subject: String) -> Watch {
        let subscriber = self.observer.subscribe(subject.clone()).await.expect("subscribes");
        self.observer.flush().await.expect("flushed");
        Watch { subject, subscriber }
    }

    /// Everything `watch` got since it started, up to now: the worker's client publishes an end
    /// mark after what it announced, which arrives after all of it.
    pub async fn seen(&self, watch: &mut Watch) -> Vec<async_nats::Message> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(END_HEADER, "1");
        self.deps.nats.publish_with_headers(watch.subject.clone(), headers, "".into()).await.expect("end");
        self.deps.nats.flush().await.expect("flushed");
        let mut seen = Vec::new();
        loop {
            let message = tokio::time::timeout(WAIT, watch.subscriber.next()).await;
            let message = message.ok().flatten().expect("the end mark arrives");
            if message.headers.as_ref().is_some_and(|h| h.get(END_HEADER).is_some()) {
                return seen;
            }
            seen.push(message);
        }
    }
}

pub struct Watch {
    subject: String,
    subscriber: async_nats::Subscriber,
}

/// A header's value.
pub fn header<'a>(message: &'a async_nats::Message, name: &str) -> Option<&'a str> {
    Some(message.headers.as_ref()?.get(name)?.as_str())
}
