//! The REST API under `/api/v1`, plus `/health` and `/ready`.

pub mod auth;
pub mod channels;
pub mod health;
pub mod messages;
pub mod search;
pub mod uploads;
pub mod users;

use crate::error::AppError;
use crate::metrics::GatewayMetrics;
use crate::state::AppState;
use axum::Router;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use shared::config::{LimitsConfig, UploadsConfig};
use std::sync::Arc;
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;

/// Where files are uploaded (it has its own body limit and deadline).
pub const UPLOAD_PATH: &str = "/api/v1/upload";

pub fn router(
    limits: &LimitsConfig,
    uploads: &UploadsConfig,
    metrics: Arc<GatewayMetrics>,
) -> Router<AppState> {
    let upload_body_limit = usize::try_from(uploads.max_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(uploads::MULTIPART_OVERHEAD_BYTES);
    let unauthenticated = Router::new()
        .route("/auth/register", post(auth::register))
        .route("/auth/login", post(auth::login))
        .route("/auth/refresh", post(auth::refresh))
        // Checks a password like login does: the same per-IP budget against guessing.
        .route("/users/me/password", axum::routing::put(auth::change_password));
    let unauthenticated = with_per_ip_limit(unauthenticated, limits, metrics);
    let api = Router::new()
        .merge(unauthenticated)
        .route("/auth/logout", post(auth::logout))
        .route("/users/me", get(users::me).patch(users::update_me).delete(auth::delete_me))
        .route("/users/search", get(users::search))
        .route("/users/{id}", get(users::get))
        .route("/channels", get(channels::list).post(channels::create))
        .route("/channels/public", get(channels::public))
        .route("/channels/{id}/join", post(channels::join))
        .route("/channels/{id}/leave", post(channels::leave))
        .route("/channels/{id}/messages/search", get(search::in_channel))
        .route("/search", get(search::everywhere))
        .route("/channels/{id}", get(channels::get).patch(channels::update).delete(channels::delete))
        .route("/channels/{id}/members", get(channels::members).post(channels::add_member))
        .route("/channels/{id}/members/{user_id}", axum::routing::delete(channels::remove_member))
        .route("/channels/{id}/messages", get(channels::history))
        .route(
            "/channels/{id}/messages/{message_id}",
            get(messages::get).patch(messages::edit).delete(messages::delete),
        )
        .route(
            "/channels/{id}/messages/{message_id}/reactions/{emoji}",
            post(messages::react).delete(messages::unreact),
        )
        .route("/channels/{id}/reads", get(channels::reads))
        .route(
            "/upload",
            post(uploads::upload).layer(axum::extract::DefaultBodyLimit::max(upload_body_limit)),
        )
        .route("/upload/{id}", get(uploads::download).delete(uploads::delete))
        .route("/upload/{id}/link", get(uploads::link));
    Router::new()
        .nest("/api/v1", api)
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
}

/// The per-IP token bucket in front of the routes anyone can call, against credential
/// stuffing and sign-up floods; over it: 429 `rate_limited` with `Retry-After`. It keys on
/// the peer address: behind a proxy, limit per client IP at the ingress.
fn with_per_ip_limit(
    routes: Router<AppState>,
    limits: &LimitsConfig,
    metrics: Arc<GatewayMetrics>,
) -> Router<AppState> {
    let config = GovernorConfigBuilder::default()
        .period(std::time::Duration::from_millis(limits.auth_per_ip_refill_ms.max(1)))
        .burst_size(limits.auth_per_ip_burst.max(1))
        .finish()
        .expect("period and burst are above zero");
    let config = Arc::new(config);
    // Forget IPs idle long enough to be full again, so the map stays bounded.
    let limiter = config.limiter().clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            limiter.retain_recent();
        }
    });
    routes.layer(GovernorLayer::new(config).error_handler(move |error| match error {
        tower_governor::GovernorError::TooManyRequests { wait_time, .. } => {
            metrics.rate_limited("auth_per_ip");
            AppError::RateLimited { limit: "auth_per_ip", retry_after_ms: wait_time.max(1) * 1000 }
                .into_response()
        }
        _ => AppError::BadRequest("cannot tell the client's address".into()).into_response(),
    }))
}

/// Clamps a client's `limit` to 1..=max, `default` when absent.
pub fn page_limit(limit: Option<i64>, default: i64, max: i64) -> i64 {
    limit.unwrap_or(default).clamp(1, max)
}

/// The cursor of the next page: the key of the last item when the page is full.
pub fn next_cursor<T, C>(items: &[T], limit: i64, key: impl Fn(&T) -> C) -> Option<C> {
    if items.len() as i64 == limit { items.last().map(key) } else { None }
}
