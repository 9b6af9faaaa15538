//! Liveness and readiness, on the client port as well as the admin port.

use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use shared::admin::{self, ReadyReport};

/// Alive: the process answers.
#[utoipa::path(
    get,
    path = "/health",
    tag = "health",
    responses((status = 200, description = "Alive", body = Value, example = json!({"status": "ok"})))
)]
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready: NATS connected, Postgres answers, not draining. Redis is reported but not required:
/// without it the rate limits fail open and chat goes on, so a Redis outage must not take
/// every gateway out of its load balancer.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "health",
    responses(
        (status = 200, description = "Ready: each check by name", body = Value, example = json!(
            {"ready": true, "nats": true, "postgres": true, "redis": true, "draining": false}
        )),
        (status = 503, description = "Not ready, or draining", body = Value, example = json!(
            {"ready": false, "nats": true, "postgres": false, "redis": true, "draining": false}
        )),
    )
)]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let report = readiness(&state).await;
    let status = if report.ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(report.to_json()))
}

pub async fn readiness(state: &AppState) -> ReadyReport {
    let redis = match state.redis.get().await {
        Ok(mut conn) => deadpool_redis::redis::cmd("PING").query_async::<String>(&mut conn).await.is_ok(),
        Err(_) => false,
    };
    ReadyReport {
        checks: vec![
            ("nats", admin::nats_connected(&state.nats)),
            ("postgres", admin::postgres_answers(&state.db).await),
        ],
        optional: vec![("redis", redis)],
        draining: state.shutdown.is_cancelled(),
    }
}
