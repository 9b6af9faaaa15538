//! Creates or updates the cell's JetStream objects from the definitions in `nats/`: the
//! partitioned message stream and one durable pull consumer per partition, with the names,
//! subjects, replicas and timings that the config sets.

use crate::config::{NatsConfig, WorkerConfig};
use crate::subjects::{Partition, Subjects};
use async_nats::jetstream::{self, consumer::pull, stream};

const STREAM_DEFINITION: &str = include_str!("../../nats/stream-messages.json");
const CONSUMER_DEFINITION: &str = include_str!("../../nats/consumer-partition.json");
const DEAD_LETTER_DEFINITION: &str = include_str!("../../nats/stream-dead-letters.json");

/// Name of the priority group every worker pulls in; the server pins each partition's
/// consumer to one puller of this group.
pub const WORKER_GROUP: &str = "workers";

#[derive(Debug, thiserror::Error)]
pub enum StreamSetupError {
    #[error("definition in nats/ does not parse: {0}")]
    Definition(#[from] serde_json::Error),
    #[error("creating stream: {0}")]
    Stream(#[from] jetstream::context::CreateStreamError),
    #[error("reading stream: {0}")]
    GetStream(#[from] jetstream::context::GetStreamError),
    #[error("creating consumer {name}: {source}")]
    Consumer { name: String, source: jetstream::stream::ConsumerError },
}

/// The message stream's config: `nats/stream-messages.json` with this cell's name, subjects,
/// replicas and duplicate window.
pub fn stream_config(nats: &NatsConfig) -> Result<stream::Config, StreamSetupError> {
    let mut config: stream::Config = serde_json::from_str(STREAM_DEFINITION)?;
    config.name = nats.stream.clone();
    config.subjects = vec![Subjects::new(&nats.subject_prefix).stream_filter()];
    config.num_replicas = nats.replicas;
    config.duplicate_window = nats.duplicate_window;
    Ok(config)
}

/// The dead-letter stream's config: `nats/stream-dead-letters.json` capturing what workers
/// dead-letter and the server's notices of message-stream messages past `max_deliver` (the
/// notice names the stream sequence; the message itself stays in the message stream).
pub fn dead_letter_stream_config(nats: &NatsConfig) -> Result<stream::Config, StreamSetupError> {
    let mut config: stream::Config = serde_json::from_str(DEAD_LETTER_DEFINITION)?;
    config.name = nats.dead_letter_stream.clone();
    config.subjects = vec![
        Subjects::new(&nats.subject_prefix).dead_letter_filter(),
        format!("{MAX_DELIVERIES_ADVISORY}.{}.*", nats.stream),
    ];
    config.num_replicas = nats.replicas;
    Ok(config)
}

/// Prefix of the server's notices that a consumer gave up on a message.
pub const MAX_DELIVERIES_ADVISORY: &str = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES";

/// Durable name of a partition's consumer.
pub fn consumer_name(partition: Partition) -> String {
    format!("persist-p{:03}", partition.0)
}

/// A partition consumer's config: `nats/consumer-partition.json` with its name and filter,
/// and where its state is kept.
pub fn consumer_config(
    nats: &NatsConfig,
    worker: &WorkerConfig,
    partition: Partition,
) -> Result<pull::Config, StreamSetupError> {
    let mut config: pull::Config = serde_json::from_str(CONSUMER_DEFINITION)?;
    config.durable_name = Some(consumer_name(partition));
    config.filter_subject = Subjects::new(&nats.subject_prefix).partition_filter(partition);
    config.ack_wait = worker.redelivery_backoff.first().copied().unwrap_or(config.ack_wait);
    config.backoff = worker.redelivery_backoff.clone();
    config.max_deliver = worker.max_deliver;
    config.priority_timeout = worker.pin_timeout;
    config.num_replicas = nats.replicas;
    config.memory_storage = nats.consumer_state_in_memory;
    Ok(config)
}

/// How long set-up keeps retrying while the cluster is still forming (a fresh cluster
/// refuses R3 placement until every peer has reported in).
const SETUP_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// Creates the stream, or updates it to the current definition, retrying while the cluster
/// forms.
pub async fn ensure_stream(
    js: &jetstream::Context,
    nats: &NatsConfig,
) -> Result<stream::Stream, StreamSetupError> {
    ensure(js, stream_config(nats)?).await
}

/// Creates the dead-letter stream, or updates it to the current definition.
pub async fn ensure_dead_letter_stream(
    js: &jetstream::Context,
    nats: &NatsConfig,
) -> Result<stream::Stream, StreamSetupError> {
    ensure(js, dead_letter_stream_config(nats)?).await
}

async fn ensure(js: &jetstream::Context, config: stream::Config) -> Result<stream::Stream, StreamSetupError> {
    let deadline = tokio::time::Instant::now() + SETUP_PATIENCE;
    loop {
        // Right after a create, the new stream's leader may not answer yet: read it back in
        // the same loop.
        let result = match js.create_or_update_stream(config.clone()).await {
            Ok(_) => js.get_stream(&config.name).await.map_err(StreamSetupError::from),
            Err(error) => Err(error.into()),
        };
        match result {
            Ok(stream) => return Ok(stream),
            Err(error) if tokio::time::Instant::now() < deadline => {
                tracing::info!(%error, "stream not ready yet; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Creates (or updates) every partition's consumer; returns them in partition order.
pub async fn ensure_consumers(
    stream: &stream::Stream,
    nats: &NatsConfig,
    worker: &WorkerConfig,
) -> Result<Vec<(Partition, jetstream::consumer::PullConsumer)>, StreamSetupError> {
    let mut consumers = Vec::with_capacity(nats.partitions as usize);
    for p in 0..nats.partitions {
        let partition = Partition(p);
        let config = consumer_config(nats, worker, partition)?;
        let deadline = tokio::time::Instant::now() + SETUP_PATIENCE;
        let consumer = loop {
            match stream.create_consumer(config.clone()).await {
                Ok(consumer) => break consumer,
                Err(error) if tokio::time::Instant::now() < deadline => {
                    tracing::info!(%error, partition = p, "consumer not created yet; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
                Err(source) => {
                    return Err(StreamSetupError::Consumer { name: consumer_name(partition), source });
                }
            }
        };
        consumers.push((partition, consumer));
    }
    Ok(consumers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_nats::jetstream::consumer::{AckPolicy, PriorityPolicy};

    #[test]
    fn definitions_parse_and_take_the_config() {
        let nats = NatsConfig { subject_prefix: "t1".into(), stream: "T1".into(), ..Default::default() };
        let stream = stream_config(&nats).unwrap();
        assert_eq!(stream.name, "T1");
        assert_eq!(stream.subjects, vec!["t1.msg.>".to_string()]);
        assert_eq!(stream.num_replicas, 3);
        let consumer = consumer_config(&nats, &WorkerConfig::default(), Partition(5)).unwrap();
        assert_eq!(consumer.durable_name.as_deref(), Some("persist-p005"));
        assert_eq!(consumer.filter_subject, "t1.msg.5.*");
        assert_eq!(consumer.ack_policy, AckPolicy::Explicit);
        assert_eq!(consumer.priority_policy, PriorityPolicy::PinnedClient);
        assert_eq!(consumer.priority_groups, vec![WORKER_GROUP.to_string()]);
        // Finite redelivery with backoff: the first wait is the ack wait, and the server
        // requires more deliveries than backoff steps.
        assert_eq!(consumer.ack_wait, consumer.backoff[0]);
        assert!(consumer.max_deliver > consumer.backoff.len() as i64);
        assert!(!consumer.memory_storage, "consumer state on disk unless asked");
        let in_memory = NatsConfig { consumer_state_in_memory: true, ..nats.clone() };
        let consumer = consumer_config(&in_memory, &WorkerConfig::default(), Partition(5)).unwrap();
        assert!(consumer.memory_storage);
        let dead = dead_letter_stream_config(&nats).unwrap();
        assert_eq!(dead.name, "CHAT_DEAD_LETTERS");
        assert_eq!(
            dead.subjects,
            vec!["t1.dead.>".to_string(), "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.T1.*".to_string()]
        );
    }
}
