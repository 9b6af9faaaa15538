//! Message workers: for every partition of the message stream, pull batches from its durable
//! consumer (pinned to one worker process at a time), persist each batch in one Postgres
//! transaction with contiguous per-channel `seq`, announce the stored messages to the
//! gateways, and only then acknowledge the batch.

mod changes;
mod dead_letter;
mod deliver;
mod deps;
mod finish;
mod metrics;
mod partition;
mod persist;
#[cfg(test)]
mod tests;

pub use changes::{AppliedChange, Ignored, apply_change};
pub use dead_letter::{ERROR_HEADER, REASON_HEADER, SEQUENCE_HEADER, SUBJECT_HEADER};
pub use persist::{PersistBatch, PersistError, PersistedMessage, persist_batch};

use deps::Deps;
use shared::admin::{self, Admin, PoolGauges, ReadyReport};
use shared::config::Config;
use shared::streams;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("connecting to NATS: {0}")]
    Nats(#[from] async_nats::ConnectError),
    #[error(transparent)]
    Streams(#[from] streams::StreamSetupError),
    #[error(transparent)]
    Db(#[from] shared::db::DbSetupError),
    #[error(transparent)]
    Admin(#[from] shared::admin::AdminError),
}

/// Runs the workers until `shutdown`, then lets each partition finish and ack its current
/// batch within the grace period.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), WorkerError> {
    let nats = async_nats::ConnectOptions::new()
        .name("messages")
        .ping_interval(config.nats.ping_interval)
        .retry_on_initial_connect()
        .connect(config.nats.urls.clone())
        .await?;
    let db = shared::db::connect(&config.database, shared::db::Acquire::Untested).await?;
    // Ready once its streams and consumers are set up and it pulls.
    let pulling = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (metrics, admin_stop, admin_task) = serve_admin(&config, &nats, &db, &pulling, &shutdown).await?;
    let js = async_nats::jetstream::new(nats.clone());
    let Some(consumers) = set_up_until_shutdown(&js, &config, &shutdown).await else {
        admin_stop.cancel();
        return Ok(());
    };
    pulling.store(true, std::sync::atomic::Ordering::Relaxed);
    let subjects = shared::subjects::Subjects::new(&config.nats.subject_prefix);
    let deps = Arc::new(Deps { nats, js, metrics, db, subjects, config: config.clone() });
    tracing::info!(partitions = consumers.len(), "message workers pulling");
    let tracker = spawn_partitions(&deps, consumers, &shutdown);
    shutdown.cancelled().await;
    if tokio::time::timeout(config.worker.shutdown_grace, tracker.wait()).await.is_err() {
        tracing::warn!("partitions did not finish within the grace period");
    }
    // Bounded: with NATS gone, a flush waits for a reconnect that never comes.
    if tokio::time::timeout(config.worker.shutdown_grace, deps.nats.flush()).await.is_err() {
        tracing::warn!("NATS did not take the last flush within the grace period");
    }
    deps.db.close().await;
    admin_stop.cancel();
    let _ = admin_task.await;
    Ok(())
}

/// The admin port (`/metrics`, `/health`, `/ready`) and the worker's metrics registered on it.
async fn serve_admin(
    config: &Config,
    nats: &async_nats::Client,
    db: &sqlx::PgPool,
    pulling: &Arc<std::sync::atomic::AtomicBool>,
    shutdown: &CancellationToken,
) -> Result<(metrics::WorkerMetrics, CancellationToken, tokio::task::JoinHandle<()>), WorkerError> {
    let (ready_nats, ready_db, draining, ready_pulling) =
        (nats.clone(), db.clone(), shutdown.clone(), pulling.clone());
    let mut admin = Admin::new(
        "messages",
        Arc::new(move || {
            let (nats, db, draining) = (ready_nats.clone(), ready_db.clone(), draining.is_cancelled());
            let pulling = ready_pulling.load(std::sync::atomic::Ordering::Relaxed);
            Box::pin(async move {
                let checks = vec![
                    ("nats", admin::nats_connected(&nats)),
                    ("postgres", admin::postgres_answers(&db).await),
                    ("pulling", pulling),
                ];
                ReadyReport { checks, draining, ..Default::default() }
            })
        }),
    );
    let metrics = metrics::WorkerMetrics::register(&mut admin.registry);
    let pools = PoolGauges::register(&mut admin.registry);
    let sampled_db = db.clone();
    admin.before_scrape.push(Arc::new(move || pools.set_postgres(&sampled_db)));
    let admin_stop = CancellationToken::new();
    let admin_task = admin::serve(config.worker.admin_listen, admin, admin_stop.clone()).await?;
    Ok((metrics, admin_stop, admin_task))
}

/// Sets up the streams and consumers, waiting out a cluster that is forming or has lost its
/// leader however long that takes (not ready meanwhile); `None` if shutdown came first.
async fn set_up_until_shutdown(
    js: &async_nats::jetstream::Context,
    config: &Config,
    shutdown: &CancellationToken,
) -> Option<Vec<(shared::subjects::Partition, async_nats::jetstream::consumer::PullConsumer)>> {
    loop {
        match set_up_streams(js, config).await {
            Ok(consumers) => return Some(consumers),
            Err(error) if !shutdown.is_cancelled() => {
                tracing::warn!(%error, "stream set-up failed; retrying")
            }
            Err(_) => return None,
        }
    }
}

/// One task per partition, the lag sampler and the dead-letter counter, until `shutdown`.
fn spawn_partitions(
    deps: &Arc<Deps>,
    consumers: Vec<(shared::subjects::Partition, async_nats::jetstream::consumer::PullConsumer)>,
    shutdown: &CancellationToken,
) -> TaskTracker {
    let tracker = TaskTracker::new();
    let lagging = consumers.iter().map(|(p, c)| (*p, c.clone())).collect();
    tracker.spawn(sample_lag(deps.clone(), lagging, shutdown.clone()));
    tracker.spawn(dead_letter::count_max_deliveries(
        deps.nats.clone(),
        deps.config.nats.stream.clone(),
        deps.metrics.clone(),
        shutdown.clone(),
    ));
    for (partition, consumer) in consumers {
        tracker.spawn(partition::run(deps.clone(), partition, consumer, shutdown.clone()));
    }
    tracker.close();
    tracker
}

/// The message stream, the dead-letter stream and every partition's consumer.
async fn set_up_streams(
    js: &async_nats::jetstream::Context,
    config: &Config,
) -> Result<Vec<(shared::subjects::Partition, async_nats::jetstream::consumer::PullConsumer)>, WorkerError> {
    let stream = streams::ensure_stream(js, &config.nats).await?;
    streams::ensure_dead_letter_stream(js, &config.nats).await?;
    Ok(streams::ensure_consumers(&stream, &config.nats, &config.worker).await?)
}

/// How often each partition's consumer lag is read from the server.
const LAG_SAMPLE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Keeps the consumer-lag gauges current until `shutdown`.
async fn sample_lag(
    deps: Arc<Deps>,
    consumers: Vec<(shared::subjects::Partition, async_nats::jetstream::consumer::PullConsumer)>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(LAG_SAMPLE_INTERVAL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        for (partition, consumer) in &consumers {
            if let Ok(info) = consumer.get_info().await {
                deps.metrics.set_lag(*partition, info.num_pending, info.num_ack_pending);
            }
        }
    }
}
