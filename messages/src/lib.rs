//! Message workers: for every partition of the message stream, pull batches from its durable
//! consumer (pinned to one worker process at a time), persist each batch in one Postgres
//! transaction with contiguous per-channel `seq`, announce the stored messages to the
//! gateways, and only then acknowledge the batch.

mod changes;
mod dead_letter;
mod deliver;
mod metrics;
mod partition;
mod persist;
#[cfg(test)]
mod tests;

pub use changes::{AppliedChange, Ignored, apply_change};
pub use dead_letter::{ERROR_HEADER, REASON_HEADER, SEQUENCE_HEADER, SUBJECT_HEADER};
pub use persist::{PersistBatch, PersistError, PersistedMessage, persist_batch};

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

/// What every partition loop needs.
pub(crate) struct Deps {
    pub nats: async_nats::Client,
    pub js: async_nats::jetstream::Context,
    pub metrics: metrics::WorkerMetrics,
    pub db: sqlx::PgPool,
    pub subjects: shared::subjects::Subjects,
    pub config: Config,
}

/// Runs the workers until `shutdown`, then lets each partition finish and ack its current
/// batch within the grace period.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), WorkerError> {
    let nats = async_nats::ConnectOptions::new()
        .name("messages")
        .retry_on_initial_connect()
        .connect(config.nats.urls.clone())
        .await?;
    let db = shared::db::connect(&config.database).await?;

    let ready_nats = nats.clone();
    let ready_db = db.clone();
    let draining = shutdown.clone();
    // Ready once its streams and consumers are set up and it pulls.
    let pulling = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ready_pulling = pulling.clone();
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

    let js = async_nats::jetstream::new(nats.clone());
    // Set-up waits out a cluster that is forming or has lost its leader, however long that
    // takes (not ready meanwhile); only shutdown ends it.
    let consumers = loop {
        match set_up_streams(&js, &config).await {
            Ok(consumers) => break consumers,
            Err(error) if !shutdown.is_cancelled() => {
                tracing::warn!(%error, "stream set-up failed; retrying")
            }
            Err(_) => {
                admin_stop.cancel();
                return Ok(());
            }
        }
    };
    pulling.store(true, std::sync::atomic::Ordering::Relaxed);
    let deps = Arc::new(Deps {
        nats,
        js,
        metrics,
        db,
        subjects: shared::subjects::Subjects::new(&config.nats.subject_prefix),
        config: config.clone(),
    });
    tracing::info!(partitions = consumers.len(), "message workers pulling");

    let tracker = TaskTracker::new();
    tracker.spawn(sample_lag(
        deps.clone(),
        consumers.iter().map(|(p, c)| (*p, c.clone())).collect(),
        shutdown.clone(),
    ));
    tracker.spawn(dead_letter::count_max_deliveries(
        deps.nats.clone(),
        config.nats.stream.clone(),
        deps.metrics.clone(),
        shutdown.clone(),
    ));
    for (partition, consumer) in consumers {
        tracker.spawn(partition::run(deps.clone(), partition, consumer, shutdown.clone()));
    }
    tracker.close();
    shutdown.cancelled().await;
    if tokio::time::timeout(config.worker.shutdown_grace, tracker.wait()).await.is_err() {
        tracing::warn!("partitions did not finish within the grace period");
    }
    let _ = deps.nats.flush().await;
    deps.db.close().await;
    admin_stop.cancel();
    let _ = admin_task.await;
    Ok(())
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
