//! The scratch stream of a NATS baseline: `LOADGEN_BASELINE_<run id>_<kind>`, made by
//! `shared::streams::stream_config` from a `NatsConfig` with its own name and subject prefix,
//! so it has the message stream's storage, replicas, retention, age limit, message size limit
//! and duplicate window. Only its `max_bytes` is smaller: JetStream reserves a stream's
//! `max_bytes` on its peers when placing it, and a cluster sized for the cell (20 GB per node,
//! 10 GiB of it the message stream's) has no room for a second 10 GiB; the scratch stream
//! reserves what its messages need, twice over, so nothing is ever discarded. Deleted
//! afterwards, and checked gone.

use crate::baseline::error::BaselineError;
use async_nats::jetstream::{self, context::GetStreamErrorKind, stream::Stream};
use shared::config::NatsConfig;
use std::time::Duration;

/// How long a publish waits for its PubAck before it counts as failed.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// How long creation keeps retrying while a fresh cluster forms.
const CREATE_PATIENCE: Duration = Duration::from_secs(30);
/// Least storage the scratch stream reserves.
const MIN_RESERVE: i64 = 64 << 20;
/// Per message beyond its payload: headers (`Nats-Msg-Id`, `traceparent`), subject, and the
/// store's own record, with room to spare.
const PER_MESSAGE_OVERHEAD: i64 = 512;

/// Bytes the scratch stream reserves for `messages` of `payload_bytes`: twice what they take,
/// at least 64 MiB, at most the message stream's own limit.
pub fn reserve_bytes(messages: usize, payload_bytes: usize, cell_max_bytes: i64) -> i64 {
    let need =
        (messages as i64).saturating_mul(payload_bytes as i64 + PER_MESSAGE_OVERHEAD).saturating_mul(2);
    need.max(MIN_RESERVE).min(cell_max_bytes.max(MIN_RESERVE))
}

/// The cell config the scratch stream is made from: the defaults (those of the message
/// stream) but for its name, subject prefix, partitions and replicas.
pub fn scratch_config(run_id: &str, kind: &str, partitions: u16, replicas: usize) -> NatsConfig {
    NatsConfig {
        subject_prefix: format!("lgb{run_id}{kind}").to_lowercase(),
        stream: format!("LOADGEN_BASELINE_{run_id}_{kind}").to_uppercase(),
        partitions,
        replicas,
        ..NatsConfig::default()
    }
}

/// A JetStream context on the cluster at `urls` keeping at most `inflight` publishes
/// awaiting their PubAck (a publish past that waits for a permit).
pub async fn connect(urls: &[String], inflight: usize) -> Result<jetstream::Context, BaselineError> {
    let client = async_nats::ConnectOptions::new().name("loadgen-baseline").connect(urls).await?;
    Ok(jetstream::ContextBuilder::new()
        .ack_timeout(ACK_TIMEOUT)
        .max_ack_inflight(inflight)
        .backpressure_on_inflight(true)
        .build(client))
}

/// Creates the scratch stream for `messages` of `payload_bytes` (retrying while a fresh
/// cluster forms, as the cell does).
pub async fn create(
    js: &jetstream::Context,
    nats: &NatsConfig,
    messages: usize,
    payload_bytes: usize,
) -> Result<Stream, BaselineError> {
    let mut config = shared::streams::stream_config(nats)?;
    config.max_bytes = reserve_bytes(messages, payload_bytes, config.max_bytes);
    let patience = tokio::time::Instant::now() + CREATE_PATIENCE;
    loop {
        match js.create_stream(config.clone()).await {
            Ok(stream) => return Ok(stream),
            Err(_) if tokio::time::Instant::now() < patience => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(error) => return Err(BaselineError::CreateStream(error.to_string())),
        }
    }
}

/// Waits until the server this client is on routes every one of `subjects` to the stream:
/// a fresh stream's interest reaches the cluster's other servers a moment after its creation
/// returns, and a publish before that finds no responder (`StreamNotFound`). Each probe
/// expects a last sequence the stream cannot have, so the stream answers and stores nothing.
pub async fn await_interest<'a>(
    js: &jetstream::Context,
    subjects: impl Iterator<Item = &'a str>,
    deadline: tokio::time::Instant,
) -> Result<(), BaselineError> {
    use async_nats::jetstream::context::PublishErrorKind;
    use async_nats::jetstream::message::PublishMessage;
    let patience = deadline.min(tokio::time::Instant::now() + CREATE_PATIENCE);
    for subject in subjects {
        loop {
            let probe = PublishMessage::build().payload("probe".into()).expected_last_sequence(u64::MAX);
            let answer = match js.send_publish(subject.to_owned(), probe).await {
                Ok(ack) => ack.await.map(|_| ()),
                Err(error) => Err(error),
            };
            match answer {
                Err(error) if error.kind() == PublishErrorKind::StreamNotFound => {
                    if tokio::time::Instant::now() >= patience {
                        return Err(BaselineError::NoInterest(subject.to_owned()));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                // Stored after all (it should not be): the counts would be off by one.
                Ok(()) => return Err(BaselineError::ProbeStored(subject.to_owned())),
                Err(_) => break,
            }
        }
    }
    Ok(())
}

/// Deletes the scratch stream (its consumers with it); true when the server then says it
/// does not exist.
pub async fn remove(js: &jetstream::Context, name: &str) -> bool {
    // Whether the delete itself answered is not the question; the lookup below is.
    let _ = js.delete_stream(name).await;
    match js.get_stream(name).await {
        Ok(_) => false,
        Err(error) => matches!(
            error.kind(),
            GetStreamErrorKind::JetStream(e) if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_stream_is_the_message_stream_under_another_name() {
        let nats = scratch_config("0a1b2c3d", "publish", 4, 3);
        let config = shared::streams::stream_config(&nats).expect("the definition parses");
        let cell = shared::streams::stream_config(&NatsConfig::default()).expect("parses");
        assert_eq!(config.name, "LOADGEN_BASELINE_0A1B2C3D_PUBLISH");
        assert_eq!(config.subjects, vec!["lgb0a1b2c3dpublish.msg.>".to_string()]);
        assert_eq!((config.storage, config.num_replicas), (cell.storage, cell.num_replicas));
        assert_eq!((config.max_age, config.max_message_size), (cell.max_age, cell.max_message_size));
        assert_eq!((config.retention, config.discard), (cell.retention, cell.discard));
        assert_eq!(config.duplicate_window, cell.duplicate_window);
    }

    #[test]
    fn reserves_what_the_messages_need_within_bounds() {
        let cell = 10 << 30;
        assert_eq!(reserve_bytes(20_000, 400, cell), MIN_RESERVE);
        assert_eq!(reserve_bytes(1_000_000, 488, cell), 2_000_000_000);
        assert_eq!(reserve_bytes(1_000_000, 16 << 20, cell), cell);
    }
}
