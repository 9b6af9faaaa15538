//! Starting and stopping a gateway: connect to NATS, Postgres and Redis, serve the admin
//! port, build the services and the state that holds them, serve clients until the shutdown
//! signal, then drain — stop accepting, let every socket answer its in-flight sends and close
//! with 1012, and only then stop the publisher.

use crate::app;
use crate::auth::sessions::{RevokedSessions, Sessions};
use crate::auth::tokens::{KeyError, TokenKeys};
use crate::live::fanout::Fanout;
use crate::live::presence::Presence;
use crate::live::sync::Syncer;
use crate::metrics::GatewayMetrics;
use crate::publish::Publisher;
use crate::ratelimit::RateLimiter;
use crate::serve;
use crate::state::{AppState, Inner};
use crate::uploads::store::{UploadStoreError, Uploads};
use secrecy::ExposeSecret;
use shared::admin::{Admin, PoolGauges, ReadyReport};
use shared::config::Config;
use shared::snowflake::SnowflakeGenerator;
use shared::subjects::Subjects;
use std::sync::{Arc, OnceLock};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("connecting to NATS: {0}")]
    Nats(#[from] async_nats::ConnectError),
    #[error(transparent)]
    Streams(#[from] shared::streams::StreamSetupError),
    #[error(transparent)]
    Db(#[from] shared::db::DbSetupError),
    #[error("redis: {0}")]
    Redis(#[from] deadpool_redis::CreatePoolError),
    #[error("redis: {0}")]
    RedisUrl(#[from] deadpool_redis::redis::RedisError),
    #[error(transparent)]
    NodeId(#[from] shared::snowflake::NodeIdOutOfRange),
    #[error("serving: {0}")]
    Serve(#[from] std::io::Error),
    #[error(transparent)]
    Admin(#[from] shared::admin::AdminError),
    #[error("access-token keys: {0}")]
    Keys(#[from] KeyError),
    #[error("reading revoked sessions: {0}")]
    Sessions(#[from] sqlx::Error),
    #[error(transparent)]
    Uploads(#[from] UploadStoreError),
}

/// The servers a gateway talks to.
struct Connections {
    nats: async_nats::Client,
    js: async_nats::jetstream::Context,
    stream: async_nats::jetstream::stream::Stream,
    db: sqlx::PgPool,
    redis: deadpool_redis::Pool,
}

/// The admin port: `/metrics`, `/health`, `/ready`; ready once the state is set.
struct AdminPort {
    task: JoinHandle<()>,
    stop: CancellationToken,
    state: Arc<OnceLock<AppState>>,
    metrics: Arc<GatewayMetrics>,
}

/// The tasks that run beside the sockets until shutdown.
struct Background {
    publisher: JoinHandle<()>,
    publisher_stop: CancellationToken,
    followers: Vec<JoinHandle<()>>,
}

/// Serves on `listener` until `shutdown`, then drains: stops accepting, answers in-flight
/// sends, closes sockets with 1012.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), GatewayError> {
    Gateway::start(config, shutdown).await?.serve(listener).await
}

/// A gateway whose services run and whose admin port answers, before it serves clients: its
/// [`router`](Gateway::router) can be driven in-process (`tower::ServiceExt::oneshot`), and
/// [`serve`](Gateway::serve) serves it on a listener until the shutdown signal.
pub struct Gateway {
    config: Config,
    state: AppState,
    background: Background,
    admin: AdminPort,
    shutdown: CancellationToken,
}

impl Gateway {
    /// Connects, serves the admin port and starts the services; `shutdown` ends them.
    pub async fn start(config: Config, shutdown: CancellationToken) -> Result<Self, GatewayError> {
        let connections = connect(&config).await?;
        let admin = serve_admin(&config, &connections, &shutdown).await?;
        let (state, background) = build(&config, connections, admin.metrics.clone(), &shutdown).await?;
        let _ = admin.state.set(state.clone());
        Ok(Self { config, state, background, admin, shutdown })
    }

    /// The whole HTTP application (REST, `/ws`, every layer). Requests driven through it
    /// without [`serve`](Gateway::serve) carry no peer address: give them a
    /// `ConnectInfo<SocketAddr>` extension, which the per-IP limits need.
    pub fn router(&self) -> axum::Router {
        app::router(self.state.clone())
    }

    /// Serves on `listener` until the shutdown signal, then drains.
    pub async fn serve(self, listener: TcpListener) -> Result<(), GatewayError> {
        tracing::info!(addr = %listener.local_addr()?, "gateway listening");
        tracing::info!(accepted = %crate::origins::describe(&self.state.config), "browser origins");
        // Drain: `/ready` fails and no new connection is accepted from the moment of the
        // signal; each socket goes on working until its moment of the drain window, answers
        // its in-flight sends, and closes with 1012; the publisher outlives them all.
        let gateway = &self.config.gateway;
        let (read, request) = (gateway.header_read_timeout, gateway.request_timeout);
        serve::serve(listener, self.router(), read, request, self.shutdown.clone()).await;
        self.stop().await;
        Ok(())
    }

    /// Drains and stops everything (the shutdown signal must have come, or sockets are
    /// waited for until the grace ends).
    pub async fn stop(self) {
        drain(&self.state, self.background).await;
        self.admin.stop.cancel();
        let _ = self.admin.task.await;
    }
}

async fn connect(config: &Config) -> Result<Connections, GatewayError> {
    let nats = async_nats::ConnectOptions::new()
        .name(format!("gateway-{}", config.gateway.node_id))
        .ping_interval(config.nats.ping_interval)
        .retry_on_initial_connect()
        .connect(config.nats.urls.clone())
        .await?;
    let js = async_nats::jetstream::ContextBuilder::new()
        .ack_timeout(config.gateway.publish_ack_timeout)
        .max_ack_inflight(config.gateway.publish_max_inflight)
        .backpressure_on_inflight(true)
        .build(nats.clone());
    let stream = shared::streams::ensure_stream(&js, &config.nats).await?;
    let db = shared::db::connect(&config.database, shared::db::Acquire::Tested).await?;
    let mut redis_config = deadpool_redis::Config::from_url(config.redis.url.expose_secret());
    redis_config.pool = Some(deadpool_redis::PoolConfig::new(config.redis.pool_size));
    let redis = redis_config.create_pool(Some(deadpool_redis::Runtime::Tokio1))?;
    Ok(Connections { nats, js, stream, db, redis })
}

async fn serve_admin(
    config: &Config,
    connections: &Connections,
    shutdown: &CancellationToken,
) -> Result<AdminPort, GatewayError> {
    let state = Arc::new(OnceLock::<AppState>::new());
    let for_ready = state.clone();
    let mut admin = Admin::new(
        "gateway",
        Arc::new(move || {
            let state = for_ready.get().cloned();
            Box::pin(async move {
                match state {
                    Some(state) => crate::http::health::readiness(&state).await,
                    None => ReadyReport { checks: vec![("started", false)], ..Default::default() },
                }
            })
        }),
    );
    let pools = PoolGauges::register(&mut admin.registry);
    let metrics = Arc::new(GatewayMetrics::register(&mut admin.registry));
    let (db, redis, sampled, draining) =
        (connections.db.clone(), connections.redis.clone(), metrics.clone(), shutdown.clone());
    admin.before_scrape.push(Arc::new(move || {
        sampled.draining.set(i64::from(draining.is_cancelled()));
        pools.set_postgres(&db);
        let status = redis.status();
        pools.set("redis", status.size.saturating_sub(status.available), status.available, status.max_size);
    }));
    let stop = CancellationToken::new();
    let task = shared::admin::serve(config.gateway.admin_listen, admin, stop.clone()).await?;
    Ok(AdminPort { task, stop, state, metrics })
}

/// The services, the state holding them, and the tasks that follow the cell.
async fn build(
    config: &Config,
    c: Connections,
    metrics: Arc<GatewayMetrics>,
    shutdown: &CancellationToken,
) -> Result<(AppState, Background), GatewayError> {
    // What can refuse to start comes first, before any task is spawned.
    let snowflake = SnowflakeGenerator::new(config.gateway.node_id)?;
    let tokens = TokenKeys::new(&config.gateway)?;
    let uploads = Arc::new(Uploads::open(&config.uploads)?);
    let subjects = Subjects::new(&config.nats.subject_prefix);
    let publisher_stop = CancellationToken::new();
    let (publisher, publisher_task) =
        Publisher::start(c.js, &config.gateway, metrics.clone(), publisher_stop.clone());
    let fanout =
        Fanout::new(c.nats.clone(), c.db.clone(), subjects.clone(), metrics.clone(), shutdown.clone());
    let limiter = RateLimiter::new(
        config.redis.url.expose_secret(),
        config.limits.clone(),
        &config.nats.subject_prefix,
        metrics.clone(),
    )?;
    let sockets = TaskTracker::new();
    let sessions = Sessions::new(
        tokens,
        RevokedSessions::new(config.gateway.access_token_ttl),
        c.nats.clone(),
        subjects.clone(),
        c.db.clone(),
        fanout.clone(),
    );
    let presence = Presence::new(
        c.redis.clone(),
        limiter.clone(),
        c.nats.clone(),
        subjects.clone(),
        c.db.clone(),
        sockets.clone(),
        config.gateway.presence_max_members,
    );
    let followers = vec![
        tokio::spawn(log_end("membership", fanout.clone().follow_membership())),
        tokio::spawn(log_end("user frames", fanout.clone().follow_user_frames())),
        // Sessions revoked before this gateway started may still have unexpired tokens.
        sessions.follow_revocations(shutdown.clone()).await?,
        presence.sweep(shutdown.clone()),
        uploads.sweep(c.db.clone(), metrics.clone(), shutdown.clone()),
    ];
    let state = AppState::new(Inner {
        snowflake,
        config: config.gateway.clone(),
        calls: config.calls.clone(),
        syncer: Syncer::new(c.db.clone(), config.gateway.sync_backlog_max, metrics.clone()),
        uploads,
        partitions: config.nats.partitions,
        db: c.db,
        redis: c.redis,
        nats: c.nats,
        stream: c.stream,
        publisher,
        fanout,
        sessions,
        presence,
        subjects,
        shutdown: shutdown.clone(),
        metrics,
        limiter,
        connection_permits: Arc::new(tokio::sync::Semaphore::new(config.gateway.max_connections)),
        sockets,
    });
    Ok((state, Background { publisher: publisher_task, publisher_stop, followers }))
}

/// Runs a follower of the cell; one that cannot subscribe says so.
async fn log_end(what: &'static str, follow: impl Future<Output = Result<(), async_nats::SubscribeError>>) {
    if let Err(error) = follow.await {
        tracing::error!(%error, what, "not following the cell");
    }
}

/// After the server stopped accepting: waits for every socket to drain (within the grace),
/// then stops the publisher and the followers, flushes NATS and closes the Postgres pool.
async fn drain(state: &AppState, background: Background) {
    let config = &state.config;
    state.sockets.close();
    let open = state.sockets.len();
    tracing::info!(open, window = ?config.drain_window, "draining sockets");
    if tokio::time::timeout(config.shutdown_grace, state.sockets.wait()).await.is_err() {
        tracing::warn!(left = state.sockets.len(), "sockets still open at the end of the grace period");
    }
    background.publisher_stop.cancel();
    let _ = tokio::time::timeout(config.shutdown_grace, background.publisher).await;
    for follower in background.followers {
        follower.abort();
    }
    // Bounded: with NATS gone, a flush waits for a reconnect that never comes.
    if tokio::time::timeout(config.shutdown_grace, state.nats.flush()).await.is_err() {
        tracing::warn!("NATS did not take the last flush within the grace period");
    }
    state.db.close().await;
}
