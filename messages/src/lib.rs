//! Message workers: for every partition of the message stream, pull batches from its durable
//! consumer (pinned to one worker process at a time), persist each batch in one Postgres
//! transaction with contiguous per-channel `seq`, announce the stored messages to the
//! gateways, and only then acknowledge the batch.

mod deliver;
mod partition;
mod persist;

pub use persist::{PersistBatch, PersistError, PersistedMessage, persist_batch};

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
}

/// What every partition loop needs.
pub(crate) struct Deps {
    pub nats: async_nats::Client,
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
    let js = async_nats::jetstream::new(nats.clone());
    let stream = streams::ensure_stream(&js, &config.nats).await?;
    let consumers = streams::ensure_consumers(&stream, &config.nats, &config.worker).await?;
    let deps = Arc::new(Deps {
        nats,
        db,
        subjects: shared::subjects::Subjects::new(&config.nats.subject_prefix),
        config: config.clone(),
    });
    tracing::info!(partitions = consumers.len(), "message workers pulling");

    let tracker = TaskTracker::new();
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
    Ok(())
}
