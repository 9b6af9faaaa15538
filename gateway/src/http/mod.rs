//! The REST API under `/api/v1`, plus `/health` and `/ready`, and its OpenAPI document.

pub mod auth;
pub mod calls;
pub mod channels;
pub mod health;
pub mod members;
pub mod messages;
pub mod openapi;
pub mod paging;
pub mod preferences;
pub mod search;
pub mod uploads;
pub mod users;

use crate::error::AppError;
use crate::metrics::GatewayMetrics;
use crate::state::AppState;
use axum::Router;
use axum::response::IntoResponse;
use shared::config::{LimitsConfig, UploadsConfig};
use std::sync::Arc;
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The REST routes, each registered once with `routes!` so that it is in the OpenAPI document
/// too (see `openapi`), plus the document and Swagger UI.
pub fn router(
    limits: &LimitsConfig,
    uploads: &UploadsConfig,
    metrics: Arc<GatewayMetrics>,
) -> Router<AppState> {
    let (routes, document) = routes_and_document(limits, uploads, metrics);
    routes.merge(openapi::serve(document))
}

/// The OpenAPI document the gateway serves (`gateway openapi` prints it; the web client's API
/// types are generated from it). Inside a Tokio runtime: the router it comes from spawns a task.
pub fn document() -> utoipa::openapi::OpenApi {
    let metrics = Arc::new(GatewayMetrics::register(&mut Default::default()));
    routes_and_document(&LimitsConfig::default(), &UploadsConfig::default(), metrics).1
}

fn routes_and_document(
    limits: &LimitsConfig,
    uploads: &UploadsConfig,
    metrics: Arc<GatewayMetrics>,
) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let unauthenticated = OpenApiRouter::new()
        .routes(routes!(auth::register))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        // Checks a password like login does: the same per-IP budget against guessing.
        .routes(routes!(auth::change_password));
    let unauthenticated = with_per_ip_limit(unauthenticated, limits, metrics);
    let api = OpenApiRouter::new()
        .merge(unauthenticated)
        .routes(routes!(auth::logout))
        .routes(routes!(users::me, users::update_me, auth::delete_me))
        .routes(routes!(users::search))
        .routes(routes!(users::get))
        .routes(routes!(channels::list, channels::create))
        .routes(routes!(channels::public))
        .routes(routes!(members::join))
        .routes(routes!(members::leave))
        .routes(routes!(search::in_channel))
        .routes(routes!(search::everywhere))
        .routes(routes!(channels::get, channels::update, channels::delete))
        .routes(routes!(members::list, members::add_member))
        .routes(routes!(members::remove_member))
        .routes(routes!(channels::history))
        .routes(routes!(messages::get, messages::edit, messages::delete))
        .routes(routes!(messages::react, messages::unreact))
        .routes(routes!(members::reads))
        .routes(routes!(preferences::get, preferences::set))
        .routes(routes!(calls::ice_servers))
        .merge(upload_routes(uploads));
    let (routes, mut document) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .nest("/api/v1", api)
        .routes(routes!(health::health))
        .routes(routes!(health::ready))
        .split_for_parts();
    openapi::complete(&mut document);
    (routes, document)
}

/// Where files are uploaded (it has its own body limit and deadline).
pub const UPLOAD_PATH: &str = "/api/v1/upload";

/// `/upload`: the `POST` with a body limit of its own (`uploads.max_bytes` and the form's
/// overhead; the global one is 64 KiB), reading and deleting.
fn upload_routes(config: &UploadsConfig) -> OpenApiRouter<AppState> {
    let body_limit = usize::try_from(config.max_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(uploads::MULTIPART_OVERHEAD_BYTES);
    OpenApiRouter::new()
        .routes(routes!(uploads::upload))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .routes(routes!(uploads::download, uploads::delete))
        .routes(routes!(uploads::link))
}

/// The per-IP token bucket in front of the routes anyone can call, against credential
/// stuffing and sign-up floods; over it: 429 `rate_limited` with `Retry-After`. It keys on
/// the peer address: behind a proxy, limit per client IP at the ingress.
fn with_per_ip_limit(
    routes: OpenApiRouter<AppState>,
    limits: &LimitsConfig,
    metrics: Arc<GatewayMetrics>,
) -> OpenApiRouter<AppState> {
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
