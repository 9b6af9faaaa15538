//! The sweeper of uploads no message carries: never attached within a day, or whose request
//! died before its row was written. Every gateway sweeps; rows are locked and locked rows
//! skipped, so gateways never step on each other.

use super::store::Uploads;
use crate::metrics::GatewayMetrics;
use crate::store;
use futures::StreamExt as _;
use shared::ids::UploadId;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Uploads one sweep deletes per transaction, at most, for each reason.
const SWEEP_BATCH: i64 = 100;

/// Store deletions one sweep runs at once.
const SWEEP_DELETES_IN_FLIGHT: usize = 8;

/// How long after its intent an upload's request is surely over, beyond
/// `uploads.request_timeout` (the request's own deadline).
const INTENT_MARGIN: Duration = Duration::from_secs(60);

impl Uploads {
    /// Deletes the files of `ids`; answers those that are gone (a failure is logged, and the
    /// next sweep tries again).
    async fn delete_all(&self, ids: Vec<UploadId>) -> Vec<UploadId> {
        futures::stream::iter(ids)
            .map(|id| async move {
                match self.delete(id).await {
                    Ok(()) => Some(id),
                    Err(error) => {
                        tracing::warn!(%id, %error, "sweep: upload not deleted from the store");
                        None
                    }
                }
            })
            .buffer_unordered(SWEEP_DELETES_IN_FLIGHT)
            .filter_map(std::future::ready)
            .collect()
            .await
    }

    /// One batch of uploads never attached within `unattached_ttl`: their rows marked deleted
    /// (a message attaching one meanwhile waits for the lock, then finds it deleted), with an
    /// intent each, in one transaction; then their files deleted and the intents dropped. A
    /// file whose deletion fails keeps its intent, and the sweep of abandoned uploads deletes
    /// it later. Answers how many went.
    pub async fn sweep_unattached(&self, db: &PgPool) -> Result<usize, sqlx::Error> {
        let mut tx = db.begin().await?;
        let ids = store::uploads::lock_unattached(&mut tx, self.config.unattached_ttl, SWEEP_BATCH).await?;
        store::uploads::mark_swept(&mut tx, &ids).await?;
        tx.commit().await?;
        let gone = self.delete_all(ids.clone()).await;
        store::uploads::forget_intents(db, &gone).await?;
        Ok(ids.len())
    }

    /// One batch of uploads whose request ended without a row (dropped at its deadline, its
    /// gateway killed): their files deleted, their intents dropped. Answers how many went.
    pub async fn sweep_abandoned(&self, db: &PgPool) -> Result<usize, sqlx::Error> {
        let age = self.config.request_timeout + INTENT_MARGIN;
        let mut tx = db.begin().await?;
        let ids = store::uploads::lock_abandoned(&mut tx, age, SWEEP_BATCH).await?;
        let gone = self.delete_all(ids).await;
        store::uploads::forget_intents(&mut *tx, &gone).await?;
        tx.commit().await?;
        Ok(gone.len())
    }
}

impl Uploads {
    /// Sweeps the upload store every `uploads.sweep_interval` (first at a random moment of it,
    /// so the gateways of a cell spread their sweeps), until `shutdown`. Gateways sweep
    /// concurrently without stepping on each other: each locks the rows it deletes, and skips
    /// rows locked by another.
    pub fn sweep(
        self: &Arc<Self>,
        db: PgPool,
        metrics: Arc<GatewayMetrics>,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let uploads = self.clone();
        let every = self.config.sweep_interval.max(Duration::from_secs(1));
        tokio::spawn(async move {
            let first = every.mul_f64(rand::random::<f64>());
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + first, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                uploads.sweep_once(&db, &metrics).await;
            }
        })
    }

    /// One sweep of each kind.
    async fn sweep_once(&self, db: &PgPool, metrics: &GatewayMetrics) {
        for (reason, swept) in
            [("unattached", self.sweep_unattached(db).await), ("abandoned", self.sweep_abandoned(db).await)]
        {
            match swept {
                Ok(0) => {}
                Ok(count) => {
                    tracing::info!(reason, count, "uploads swept");
                    metrics.uploads_swept(reason, count);
                }
                Err(error) => tracing::warn!(reason, %error, "upload sweep failed"),
            }
        }
    }
}
