//! Runs the baselines asked for, one after the other (so none measures another's load), each
//! bounded in time; one that fails is recorded as failed and the next still runs.

use crate::baseline::error::BaselineError;
use crate::baseline::figures::{BaselineSetup, Baselines, Outcome};
use crate::baseline::params::{BaselineKind, BaselineParams, BaselineServers};
use crate::baseline::payload::Traffic;
use crate::baseline::{consume, fanout, insert, publish};
use shared::config::WorkerConfig;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Longest one baseline may publish, consume or insert.
pub const BASELINE_LIMIT: Duration = Duration::from_secs(600);
/// After that, how long its set-up and clean-up may still take before it is abandoned.
const OVERRUN: Duration = Duration::from_secs(120);

/// Runs every baseline of `params` on `servers`; `stop` (Ctrl-C) cuts the current one short
/// and skips the rest.
pub async fn run(params: &BaselineParams, servers: &BaselineServers, stop: &CancellationToken) -> Baselines {
    let mut baselines = Baselines { setup: Some(setup(params)), ..Default::default() };
    for kind in &params.kinds {
        let deadline = Instant::now() + BASELINE_LIMIT;
        match kind {
            BaselineKind::Publish => {
                let measured =
                    async { publish::measure(nats_urls(servers, "publish")?, params, deadline, stop).await };
                baselines.publish = Some(outcome(bounded(measured, deadline, stop, "stream").await));
            }
            BaselineKind::Consume => {
                let measured =
                    async { consume::measure(nats_urls(servers, "consume")?, params, deadline, stop).await };
                baselines.consume = Some(outcome(bounded(measured, deadline, stop, "stream").await));
            }
            BaselineKind::Fanout => {
                let measured = fanout::measure::measure(params, deadline, stop);
                baselines.fanout = Some(outcome(bounded(measured, deadline, stop, "server").await));
            }
            BaselineKind::Insert => {
                let measured =
                    async { insert::measure(postgres_url(servers)?, params, deadline, stop).await };
                baselines.insert = Some(outcome(bounded(measured, deadline, stop, "table").await));
            }
        }
    }
    baselines
}

fn setup(params: &BaselineParams) -> BaselineSetup {
    let traffic = Traffic::new("lgb", params.partitions, params.content_bytes);
    BaselineSetup {
        kinds: params.kinds.clone(),
        messages: params.messages,
        inflight: params.inflight,
        ack: params.ack,
        ack_batches: params.ack_batches,
        consumer_memory: params.consumer_memory,
        partitions: params.partitions,
        replicas: params.replicas,
        payload_bytes: traffic.and_then(|t| t.payload_bytes()).unwrap_or(0),
        consume_batch: WorkerConfig::default().batch_max,
        insert_batch_rows: insert::BATCH_ROWS,
        insert_concurrency: params.insert_concurrency,
    }
}

/// Runs `measured` unless stopped already, abandoning it `OVERRUN` past `deadline`.
async fn bounded<T>(
    measured: impl Future<Output = Result<T, BaselineError>>,
    deadline: Instant,
    stop: &CancellationToken,
    scratch: &'static str,
) -> Result<T, BaselineError> {
    if stop.is_cancelled() {
        return Err(BaselineError::Interrupted);
    }
    match tokio::time::timeout_at(deadline + OVERRUN, measured).await {
        Ok(result) => result,
        Err(_) => Err(BaselineError::Overran(OVERRUN.as_secs(), scratch)),
    }
}

fn outcome<T>(result: Result<T, BaselineError>) -> Outcome<T> {
    match result {
        Ok(figures) => Outcome::Measured(figures),
        Err(error) => Outcome::Failed { error: error.to_string() },
    }
}

fn nats_urls<'a>(
    servers: &'a BaselineServers,
    baseline: &'static str,
) -> Result<&'a [String], BaselineError> {
    match servers.nats.is_empty() {
        true => Err(BaselineError::NoServer { baseline, server: "NATS cluster", flag: "--nats" }),
        false => Ok(&servers.nats),
    }
}

fn postgres_url(servers: &BaselineServers) -> Result<&str, BaselineError> {
    let missing = BaselineError::NoServer { baseline: "insert", server: "Postgres", flag: "--postgres" };
    servers.postgres.as_deref().ok_or(missing)
}
