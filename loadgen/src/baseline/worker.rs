//! What the local cell's workers did during the scenario, read from their `/metrics`: rows
//! stored, persist transactions and the seconds spent in them, so the worker's rows per second
//! of persisting can be set beside (d). At a low offered rate the worker's batches are small,
//! and so is that figure: the mean batch is reported with it.

use crate::baseline::figures::WorkerPersist;
use shared::local::TestCell;
use shared::local::cell::metric_value;

const PERSISTED: &str = "chat_worker_messages_persisted_total";
const BATCHES: &str = "chat_worker_persist_seconds_count";
const SECONDS: &str = "chat_worker_persist_seconds_sum";

/// The workers' figures summed over their `/metrics` texts; none if no worker persisted.
pub fn persist_figures(metrics: &[String]) -> Option<WorkerPersist> {
    let sum = |series: &str| metrics.iter().filter_map(|m| metric_value(m, series)).sum::<f64>();
    let (persisted, batches, persist_s) = (sum(PERSISTED), sum(BATCHES), sum(SECONDS));
    (persisted > 0.0 && batches > 0.0 && persist_s > 0.0).then(|| WorkerPersist {
        persisted: persisted as u64,
        batches: batches as u64,
        persist_s,
        rows_per_persist_s: persisted / persist_s,
        mean_batch: persisted / batches,
    })
}

/// Reads every worker of the local cell.
pub async fn scrape(cell: &TestCell) -> Option<WorkerPersist> {
    let mut texts = Vec::with_capacity(cell.workers.len());
    for worker in &cell.workers {
        texts.push(cell.metrics(worker).await);
    }
    persist_figures(&texts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_the_workers() {
        let a = format!("{PERSISTED} 300\n{BATCHES} 10\n{SECONDS} 0.5\n");
        let b = format!("{PERSISTED} 100\n{BATCHES} 10\n{SECONDS} 0.5\n");
        let figures = persist_figures(&[a, b, String::new()]).expect("persisted");
        assert_eq!(figures.persisted, 400);
        assert_eq!(figures.rows_per_persist_s, 400.0);
        assert_eq!(figures.mean_batch, 20.0);
        assert_eq!(persist_figures(&[String::new()]), None);
    }
}
