//! The gateway: REST and WebSocket edge of a chat cell. It authenticates clients, validates
//! and batch-publishes their messages into the partitioned JetStream stream, acks them once
//! stored, and fans committed messages out to the sockets of channel members connected here.

mod auth;
mod changes;
mod error;
mod fanout;
mod http;
mod metrics;
mod presence;
mod publish;
mod ratelimit;
mod reads;
mod serve;
mod sessions;
mod state;
mod store;
mod sync;
mod typing;
mod uploads;
mod ws;

use axum::Router;
use axum::http::HeaderValue;
use publish::Publisher;
use secrecy::ExposeSecret;
use shared::admin::{Admin, PoolGauges, ReadyReport};
use shared::config::Config;
use shared::snowflake::SnowflakeGenerator;
use shared::subjects::Subjects;
use state::{AppState, Inner};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::set_header::SetResponseHeaderLayer;

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
    #[error(transparent)]
    NodeId(#[from] shared::snowflake::NodeIdOutOfRange),
    #[error("serving: {0}")]
    Serve(#[from] std::io::Error),
    #[error(transparent)]
    Admin(#[from] shared::admin::AdminError),
    #[error("access-token keys: {0}")]
    Keys(#[from] auth::KeyError),
    #[error("reading revoked sessions: {0}")]
    Sessions(#[from] sqlx::Error),
    #[error("subscribing: {0}")]
    Subscribe(#[from] async_nats::SubscribeError),
    #[error(transparent)]
    Uploads(#[from] uploads::UploadStoreError),
}

/// Serves on `listener` until `shutdown`, then drains: stops accepting, answers in-flight
/// sends, closes sockets with 1012.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), GatewayError> {
    let nats = async_nats::ConnectOptions::new()
        .name(format!("gateway-{}", config.gateway.node_id))
        .retry_on_initial_connect()
        .connect(config.nats.urls.clone())
        .await?;
    let js = async_nats::jetstream::ContextBuilder::new()
        .ack_timeout(config.gateway.publish_ack_timeout)
        .max_ack_inflight(config.gateway.publish_max_inflight)
        .backpressure_on_inflight(true)
        .build(nats.clone());
    let stream = shared::streams::ensure_stream(&js, &config.nats).await?;
    let db = shared::db::connect(&config.database).await?;
    let mut redis_config = deadpool_redis::Config::from_url(config.redis.url.expose_secret());
    redis_config.pool = Some(deadpool_redis::PoolConfig::new(config.redis.pool_size));
    let redis = redis_config.create_pool(Some(deadpool_redis::Runtime::Tokio1))?;
    let subjects = Subjects::new(&config.nats.subject_prefix);
    let publish_shutdown = CancellationToken::new();

    let admin_stop = CancellationToken::new();
    let admin_state = Arc::new(std::sync::OnceLock::<AppState>::new());
    let for_ready = admin_state.clone();
    let mut admin = Admin::new(
        "gateway",
        Arc::new(move || {
            let state = for_ready.get().cloned();
            Box::pin(async move {
                match state {
                    Some(state) => http::health::readiness(&state).await,
                    None => ReadyReport { checks: vec![("started", false)], ..Default::default() },
                }
            })
        }),
    );
    let pools = PoolGauges::register(&mut admin.registry);
    let metrics = Arc::new(metrics::GatewayMetrics::register(&mut admin.registry));
    let (sampled_db, sampled_redis, sampled_metrics) = (db.clone(), redis.clone(), metrics.clone());
    let draining = shutdown.clone();
    admin.before_scrape.push(Arc::new(move || {
        sampled_metrics.draining.set(i64::from(draining.is_cancelled()));
        pools.set_postgres(&sampled_db);
        let status = sampled_redis.status();
        pools.set("redis", status.size.saturating_sub(status.available), status.available, status.max_size);
    }));
    let admin_task = shared::admin::serve(config.gateway.admin_listen, admin, admin_stop.clone()).await?;

    let (publisher, publish_task) =
        Publisher::start(js, &config.gateway, metrics.clone(), publish_shutdown.clone());
    let fanout =
        fanout::Fanout::new(nats.clone(), db.clone(), subjects.clone(), metrics.clone(), shutdown.clone());
    let membership = tokio::spawn(fanout.clone().follow_membership());
    let user_frames = tokio::spawn(fanout.clone().follow_user_frames());
    let limiter = ratelimit::RateLimiter::new(
        redis.clone(),
        config.limits.clone(),
        &config.nats.subject_prefix,
        metrics.clone(),
    );
    let state = AppState::new(Inner {
        snowflake: SnowflakeGenerator::new(config.gateway.node_id)?,
        tokens: auth::TokenKeys::new(&config.gateway)?,
        config: config.gateway.clone(),
        uploads: uploads::Uploads::open(&config.uploads)?,
        partitions: config.nats.partitions,
        db,
        redis,
        nats: nats.clone(),
        stream,
        publisher,
        fanout,
        subjects,
        shutdown: shutdown.clone(),
        metrics,
        limiter,
        connection_permits: Arc::new(tokio::sync::Semaphore::new(config.gateway.max_connections)),
        sockets: TaskTracker::new(),
        revoked: sessions::RevokedSessions::new(config.gateway.access_token_ttl),
    });
    // Sessions revoked before this gateway started may still have unexpired tokens.
    let revocations = state.follow_revocations().await?;
    let presence_sweep = state.sweep_presence();
    let upload_sweep = state.sweep_uploads();
    let _ = admin_state.set(state.clone());
    let app = router(state.clone());
    tracing::info!(addr = %listener.local_addr()?, "gateway listening");
    // Drain: `/ready` fails and no new connection is accepted from the moment of the signal;
    // each socket goes on working until its moment of the drain window, answers its
    // in-flight sends, and closes with 1012; the publisher outlives them all.
    let gateway = &config.gateway;
    serve::serve(listener, app, gateway.header_read_timeout, gateway.request_timeout, shutdown.clone()).await;
    state.sockets.close();
    let open = state.sockets.len();
    tracing::info!(open, window = ?config.gateway.drain_window, "draining sockets");
    if tokio::time::timeout(config.gateway.shutdown_grace, state.sockets.wait()).await.is_err() {
        tracing::warn!(left = state.sockets.len(), "sockets still open at the end of the grace period");
    }
    publish_shutdown.cancel();
    let _ = tokio::time::timeout(config.gateway.shutdown_grace, publish_task).await;
    membership.abort();
    user_frames.abort();
    revocations.abort();
    presence_sweep.abort();
    upload_sweep.abort();
    let _ = nats.flush().await;
    state.db.close().await;
    admin_stop.cancel();
    let _ = admin_task.await;
    Ok(())
}

/// Largest REST request body, in bytes.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Counts every HTTP response by status (WebSocket upgrades answer 101).
async fn count_requests(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let response = next.run(request).await;
    state.metrics.http_request(response.status().as_u16());
    response
}

/// Answers 408 `request_timeout` to a request (its body included) not answered within
/// `gateway.request_timeout` (`uploads.request_timeout` for an upload). A WebSocket upgrade
/// is answered at once; its socket lives on.
async fn deadline(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let limit =
        match request.method() == axum::http::Method::POST && request.uri().path() == http::UPLOAD_PATH {
            true => state.uploads.config.request_timeout,
            false => state.config.request_timeout,
        };
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => axum::response::IntoResponse::into_response(error::AppError::RequestTimeout),
    }
}

/// Counts an authenticated REST request against its user's limit; 429 past it. Requests
/// without a valid token pass (their handler answers 401, or they are the auth routes).
/// Verifies the token once for the whole request.
async fn limit_rest(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let user =
        auth::bearer_token_of(request.headers()).and_then(|t| state.authenticate(t).ok()).map(|c| c.sub);
    if let Some(user) = user
        && let ratelimit::Verdict::Limited { limit, retry_after_ms } = state.limiter.rest_request(user).await
    {
        return axum::response::IntoResponse::into_response(error::AppError::RateLimited {
            limit,
            retry_after_ms,
        });
    }
    if let Some(user) = user {
        // The handler's `AuthUser` takes it from here instead of verifying the token again.
        request.extensions_mut().insert(auth::AuthUser(user));
    }
    next.run(request).await
}

/// Headers every response carries: HTTPS only, no sniffing, never framed, no referrer.
const SECURITY_HEADERS: [(axum::http::HeaderName, &str); 4] = [
    (axum::http::header::STRICT_TRANSPORT_SECURITY, "max-age=63072000; includeSubDomains"),
    (axum::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (axum::http::header::CONTENT_SECURITY_POLICY, "frame-ancestors 'none'"),
    (axum::http::header::REFERRER_POLICY, "no-referrer"),
];

/// CORS for the REST API: the configured origins (any when none is configured).
fn cors_layer(origins: &[String]) -> tower_http::cors::CorsLayer {
    use tower_http::cors::{AllowOrigin, Any, CorsLayer};
    let allowed: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    let origin = if allowed.is_empty() { AllowOrigin::any() } else { AllowOrigin::list(allowed) };
    CorsLayer::new()
        .allow_origin(origin)
        .allow_methods(Any)
        .allow_headers(Any)
        .max_age(std::time::Duration::from_secs(600))
}

fn router(state: AppState) -> Router {
    let cors = cors_layer(&state.config.allowed_origins);
    let app = http::router(state.limiter.config(), &state.uploads.config, state.metrics.clone())
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), limit_rest))
        .route("/ws", axum::routing::get(ws::upgrade))
        .fallback(|| async { error::AppError::NotFound("route") })
        .method_not_allowed_fallback(|| async { error::AppError::MethodNotAllowed })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(state.clone(), deadline))
        .layer(axum::middleware::from_fn_with_state(state.clone(), count_requests))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(cors);
    let app = SECURITY_HEADERS.into_iter().fold(app, |app, (name, value)| {
        app.layer(SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value)))
    });
    app.with_state(state)
}
