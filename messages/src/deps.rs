//! What every partition loop needs: the servers, the metrics and the config.

use crate::metrics;
use shared::config::Config;

/// What every partition loop needs.
pub struct Deps {
    pub nats: async_nats::Client,
    pub js: async_nats::jetstream::Context,
    pub metrics: metrics::WorkerMetrics,
    pub db: sqlx::PgPool,
    pub subjects: shared::subjects::Subjects,
    pub config: Config,
}
