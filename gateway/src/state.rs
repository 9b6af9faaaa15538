//! The gateway's one `AppState`: cheap to clone, everything shared behind one `Arc`. It sits
//! at the bottom of what handlers see and imports only the services it holds; each feature
//! owns its service (sessions, presence, sync, uploads, the limiter, the fan-out). A handler
//! or extractor that needs only one of them can take it alone through `FromRef` (axum's
//! sub-states): the sessions (`AuthUser`), presence and the Postgres pool so far.

use crate::auth::sessions::Sessions;
use crate::live::fanout::Fanout;
use crate::live::presence::Presence;
use crate::live::sync::Syncer;
use crate::metrics::GatewayMetrics;
use crate::publish::Publisher;
use crate::ratelimit::RateLimiter;
use crate::uploads::store::Uploads;
use axum::extract::FromRef;
use shared::config::{CallsConfig, GatewayConfig};
use shared::snowflake::SnowflakeGenerator;
use shared::subjects::Subjects;
use std::ops::Deref;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: GatewayConfig,
    pub calls: CallsConfig,
    pub db: sqlx::PgPool,
    pub redis: deadpool_redis::Pool,
    pub nats: async_nats::Client,
    /// The message stream, to read back the original of a de-duplicated resend.
    pub stream: async_nats::jetstream::stream::Stream,
    pub publisher: Publisher,
    pub fanout: Arc<Fanout>,
    pub sessions: Arc<Sessions>,
    pub presence: Arc<Presence>,
    pub syncer: Syncer,
    pub uploads: Arc<Uploads>,
    pub snowflake: SnowflakeGenerator,
    pub subjects: Subjects,
    pub partitions: u16,
    pub shutdown: CancellationToken,
    pub metrics: Arc<GatewayMetrics>,
    pub limiter: RateLimiter,
    /// One permit per open socket, `max_connections` in all.
    pub connection_permits: Arc<tokio::sync::Semaphore>,
    /// Every upgraded socket's task, so shutdown can wait until each has drained.
    pub sockets: TaskTracker,
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl FromRef<AppState> for Arc<Sessions> {
    fn from_ref(state: &AppState) -> Self {
        state.sessions.clone()
    }
}

impl FromRef<AppState> for Arc<Presence> {
    fn from_ref(state: &AppState) -> Self {
        state.presence.clone()
    }
}

impl FromRef<AppState> for sqlx::PgPool {
    fn from_ref(state: &AppState) -> Self {
        state.db.clone()
    }
}
