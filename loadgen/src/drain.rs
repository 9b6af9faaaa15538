//! `--backlog`: the worker at its own speed. With a local cell, its workers are stopped
//! (SIGTERM, gracefully) before the first send, so every acked send waits in the stream;
//! once the sending ends they are started again and the drain is timed from the worker's
//! first persisted row to the last, read from its `/metrics` every [`POLL`]. What a
//! scenario at an offered rate cannot show (the worker's batches are as small as the traffic
//! is thin) this shows: rows per second with full batches, `seq` numbering and every check
//! included, beside baseline (d) of the same run.

use crate::baseline::figures::{DrainFigures, DrainReading};
use shared::config::NatsConfig;
use shared::local::TestCell;
use shared::local::cell::metric_value;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often the worker's counters and the stream's size are read.
const POLL: Duration = Duration::from_millis(50);
/// How long a stopped worker may take to finish its batch and exit.
const STOP_GRACE: Duration = Duration::from_secs(25);
/// How long a started worker may take to say it is ready.
const READY_WITHIN: Duration = Duration::from_secs(30);
/// How long the drain may take at most.
const DRAIN_WITHIN: Duration = Duration::from_secs(600);

const PERSISTED: &str = "chat_worker_messages_persisted_total";
const BATCHES: &str = "chat_worker_persist_seconds_count";

#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    #[error("starting the worker again: {0}")]
    Start(String),
    #[error("the worker did not get ready within {0:?}")]
    NotReady(Duration),
    #[error("reading the stream: {0}")]
    Stream(String),
    #[error("the drain did not end within {0:?}: {1} of {2} persisted")]
    Timeout(Duration, u64, u64),
    #[error("stopped before the drain ended: {0} of {1} persisted")]
    Stopped(u64, u64),
}

/// Stops every worker of the cell.
pub async fn hold_workers(cell: &mut TestCell) {
    for worker in &mut cell.workers {
        worker.terminate(STOP_GRACE).await;
    }
}

/// Waits for `sending_over`, starts the workers again and times the drain of the stream.
pub async fn drain(
    cell: &mut TestCell,
    sending_over: &Notify,
    stop: &CancellationToken,
) -> Result<DrainFigures, DrainError> {
    tokio::select! {
        _ = sending_over.notified() => {}
        _ = stop.cancelled() => return Err(DrainError::Stopped(0, 0)),
    }
    let backlog = Backlog::connect(cell).await?;
    let started = Instant::now();
    for worker in &mut cell.workers {
        worker.start().map_err(|e| DrainError::Start(e.to_string()))?;
    }
    for worker in &cell.workers {
        if !cell.wait_admin_ready(worker, READY_WITHIN).await {
            return Err(DrainError::NotReady(READY_WITHIN));
        }
    }
    let mut first: Option<DrainReading> = None;
    loop {
        let reading = read(cell).await;
        let stored = backlog.messages().await?;
        if first.is_none() && reading.persisted > 0 {
            first = Some(reading);
        }
        if reading.persisted >= stored && stored > 0 {
            return Ok(DrainFigures::new(stored, started, first.unwrap_or(reading), reading));
        }
        if reading.at.duration_since(started) > DRAIN_WITHIN {
            return Err(DrainError::Timeout(DRAIN_WITHIN, reading.persisted, stored));
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = stop.cancelled() => return Err(DrainError::Stopped(reading.persisted, stored)),
        }
    }
}

/// The workers' persisted rows and persist transactions now, summed.
async fn read(cell: &TestCell) -> DrainReading {
    let (mut persisted, mut batches) = (0, 0);
    for worker in &cell.workers {
        let metrics = cell.metrics(worker).await;
        persisted += metric_value(&metrics, PERSISTED).unwrap_or(0.0) as u64;
        batches += metric_value(&metrics, BATCHES).unwrap_or(0.0) as u64;
    }
    DrainReading { at: Instant::now(), persisted, batches }
}

/// The message stream of the cell, to know how many messages wait in it.
struct Backlog {
    stream: async_nats::jetstream::stream::Stream,
}

impl Backlog {
    async fn connect(cell: &TestCell) -> Result<Self, DrainError> {
        let error = |e: &dyn std::fmt::Display| DrainError::Stream(e.to_string());
        let client = async_nats::ConnectOptions::new()
            .name("loadgen-drain")
            .connect(cell.nats_urls())
            .await
            .map_err(|e| error(&e))?;
        let js = async_nats::jetstream::new(client);
        let stream = js.get_stream(NatsConfig::default().stream).await.map_err(|e| error(&e))?;
        Ok(Self { stream })
    }

    /// Messages in the stream now (every send acked so far: a fresh local cell's stream
    /// holds nothing else).
    async fn messages(&self) -> Result<u64, DrainError> {
        let mut stream = self.stream.clone();
        let info = stream.info().await.map_err(|e| DrainError::Stream(e.to_string()))?;
        Ok(info.state.messages)
    }
}
