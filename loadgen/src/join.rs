//! Gathering the results of a set of tasks that were told to finish, within a grace.

use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// The results of every task of `tasks` that ends within `grace`; the others are aborted.
pub async fn within<T: 'static>(mut tasks: JoinSet<T>, grace: Duration) -> Vec<T> {
    let deadline = Instant::now() + grace;
    let mut results = Vec::with_capacity(tasks.len());
    while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, tasks.join_next()).await {
        results.extend(joined.ok());
    }
    tasks.abort_all();
    results
}
