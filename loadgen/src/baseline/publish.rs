//! (a) Raw JetStream publish: the baseline's messages published into a scratch stream
//! configured like the message stream, exactly `inflight` awaiting their PubAck at any time
//! (a publish waits for a free slot, as the gateway's publisher does past its window). Measures
//! msg/s from the first publish to the last PubAck, and each PubAck's latency.

use crate::baseline::error::BaselineError;
use crate::baseline::figures::PublishFigures;
use crate::baseline::params::BaselineParams;
use crate::baseline::payload::Traffic;
use crate::baseline::scratch;
use crate::baseline::sent::SentTimes;
use crate::measure::Latency;
use async_nats::jetstream::{self, context::PublishError, publish::PublishAck};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// One PubAck as its task hands it back: the answer, its latency, when it came.
type Answer = (Result<PublishAck, PublishError>, Duration, Instant);

/// What a publish loop did.
#[derive(Debug, Default)]
pub struct PublishRun {
    pub first: Option<Instant>,
    pub last_ack: Option<Instant>,
    pub published: u64,
    pub acked: u64,
    pub failed: u64,
    /// Why they failed, by the client's error kind.
    pub errors: BTreeMap<String, u64>,
    pub duplicates: u64,
    pub puback: Latency,
    /// The stream sequence of each acked publish.
    pub sequences: Vec<u64>,
}

impl PublishRun {
    fn record(&mut self, joined: Result<Answer, tokio::task::JoinError>) {
        match joined {
            Ok((Ok(ack), latency, at)) => {
                self.acked += 1;
                self.duplicates += u64::from(ack.duplicate);
                self.sequences.push(ack.sequence);
                self.puback.record(latency);
                self.last_ack = self.last_ack.max(Some(at));
            }
            Ok((Err(error), _, _)) => self.fail(error.kind().to_string()),
            Err(_) => self.fail("task lost".to_owned()),
        }
    }

    fn fail(&mut self, why: String) {
        self.failed += 1;
        *self.errors.entry(why).or_default() += 1;
    }

    /// Seconds from the first publish to the last PubAck.
    pub fn elapsed_s(&self) -> f64 {
        match (self.first, self.last_ack) {
            (Some(first), Some(last)) => last.duration_since(first).as_secs_f64(),
            _ => 0.0,
        }
    }

    pub fn figures(&self, stream: &str, messages: usize) -> PublishFigures {
        let elapsed_s = self.elapsed_s();
        PublishFigures {
            stream: stream.to_owned(),
            messages: messages as u64,
            published: self.published,
            acked: self.acked,
            failed: self.failed,
            errors: self.errors.clone(),
            duplicates: self.duplicates,
            elapsed_s,
            msg_per_s: if elapsed_s > 0.0 { self.acked as f64 / elapsed_s } else { 0.0 },
            puback_ms: self.puback.percentiles(),
            stream_deleted: false,
        }
    }
}

/// Publishes messages `0..n` of `traffic`, `inflight` at most awaiting their PubAck, until
/// done, `deadline` or `stop`; notes each publish's instant in `sent`. Starts once the stream
/// answers on every subject (not timed).
pub async fn publish_all(
    js: &jetstream::Context,
    traffic: &Traffic,
    n: usize,
    inflight: usize,
    sent: &SentTimes,
    deadline: Instant,
    stop: &CancellationToken,
) -> Result<PublishRun, BaselineError> {
    // The context allows as many in flight as this; its own permit is given back before this
    // one, so a publish never waits inside the client call and the latency starts at the wire.
    scratch::await_interest(js, traffic.subjects(), deadline).await?;
    let slots = Arc::new(Semaphore::new(inflight));
    let mut acks: JoinSet<Answer> = JoinSet::new();
    let mut run = PublishRun::default();
    for i in 0..n {
        let slot = tokio::select! {
            _ = stop.cancelled() => break,
            slot = tokio::time::timeout_at(deadline, slots.clone().acquire_owned()) => slot,
        };
        let Ok(Ok(slot)) = slot else { break };
        while let Some(joined) = acks.try_join_next() {
            run.record(joined);
        }
        let (subject, message) = traffic.publish(i)?;
        sent.mark(i);
        let at = Instant::now();
        run.first.get_or_insert(at);
        match js.send_publish(subject, message).await {
            Ok(ack) => {
                run.published += 1;
                acks.spawn(async move {
                    let answer = ack.await;
                    drop(slot);
                    (answer, at.elapsed(), Instant::now())
                });
            }
            Err(error) => run.fail(error.kind().to_string()),
        }
    }
    while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, acks.join_next()).await {
        run.record(joined);
    }
    for _ in 0..acks.len() {
        run.fail("no PubAck by the deadline".to_owned());
    }
    acks.abort_all();
    Ok(run)
}

/// Runs baseline (a) on the cluster at `urls`.
pub async fn measure(
    urls: &[String],
    params: &BaselineParams,
    deadline: Instant,
    stop: &CancellationToken,
) -> Result<PublishFigures, BaselineError> {
    let nats = scratch::scratch_config(&params.run_id, "publish", params.partitions, params.replicas);
    let js = scratch::connect(urls, params.inflight).await?;
    let traffic = Traffic::new(&nats.subject_prefix, params.partitions, params.content_bytes)?;
    let run = match scratch::create(&js, &nats, params.messages, traffic.payload_bytes()?).await {
        Ok(_) => {
            let sent = SentTimes::new(params.messages);
            publish_all(&js, &traffic, params.messages, params.inflight, &sent, deadline, stop).await
        }
        Err(error) => Err(error),
    };
    let deleted = scratch::remove(&js, &nats.stream).await;
    let mut figures = run?.figures(&nats.stream, params.messages);
    figures.stream_deleted = deleted;
    Ok(figures)
}
