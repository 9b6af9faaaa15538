//! The gateway's one `AppState`: cheap to clone, everything shared behind one `Arc`.

use crate::auth::Claims;
use crate::auth::TokenKeys;
use crate::error::AppError;
use crate::fanout::Fanout;
use crate::metrics::GatewayMetrics;
use crate::publish::Publisher;
use crate::ratelimit::RateLimiter;
use crate::sessions::RevokedSessions;
use shared::config::GatewayConfig;
use shared::events::{MembershipChange, MembershipEvent};
use shared::ids::{ChannelId, ChannelSeq, UserId};
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
    pub uploads: crate::uploads::Uploads,
    pub db: sqlx::PgPool,
    pub redis: deadpool_redis::Pool,
    pub nats: async_nats::Client,
    /// The message stream, to read back the original of a de-duplicated resend.
    pub stream: async_nats::jetstream::stream::Stream,
    pub publisher: Publisher,
    pub fanout: Arc<Fanout>,
    pub tokens: TokenKeys,
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
    pub revoked: RevokedSessions,
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }

    /// The claims of a valid access token whose session was not revoked.
    pub fn authenticate(&self, token: &str) -> Result<Claims, AppError> {
        let claims = self.tokens.verify(token)?;
        if self.revoked.contains(claims.sid) {
            return Err(AppError::Unauthorized);
        }
        Ok(claims)
    }

    /// Tells every gateway of the cell that `user` joined or left `channel`.
    pub async fn announce_membership(
        &self,
        channel: ChannelId,
        user: UserId,
        change: MembershipChange,
        last_seq: ChannelSeq,
    ) {
        let event = MembershipEvent { channel_id: channel, user_id: user, change, last_seq };
        let Ok(payload) = serde_json::to_vec(&event) else { return };
        if let Err(error) = self.nats.publish(self.subjects.membership(), payload.into()).await {
            tracing::warn!(%error, "membership change not announced");
        }
    }
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
