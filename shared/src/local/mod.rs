//! The cell's servers as local processes, for the cell runner and the integration tests: a
//! 3-node NATS JetStream cluster, Postgres, Redis, and the cell's own gateway and worker
//! binaries. Each piece is a handle that stops its process when dropped. The fault driver of
//! the delivery tests uses the same handles (kill -9, SIGSTOP/SIGCONT, restart). In-process
//! tests share one NATS node, Postgres and Redis per test process instead (`test_servers`).

pub mod cell;
pub mod client;
pub mod containers;
pub mod load;
pub mod nats;
pub mod netns;
pub mod postgres;
pub mod process;
pub mod redis;
pub mod s3;
pub mod test_servers;

pub use cell::{CellOptions, TestCell};
pub use process::free_port;
pub use test_servers::{Namespace, TestServers, test_servers};

/// Waits until `check` returns true, polling every 50 ms, or panics after `timeout` with
/// `what` — for eventual conditions in tests, never `sleep` then assert.
pub async fn eventually<F, Fut>(timeout: std::time::Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
