//! Liveness and readiness.

use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

/// Alive: the process answers.
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready: NATS connected, Postgres and Redis answer, not shutting down.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let nats = state.nats.connection_state() == async_nats::connection::State::Connected;
    let postgres = sqlx::query("SELECT 1").execute(&state.db).await.is_ok();
    let redis = match state.redis.get().await {
        Ok(mut conn) => deadpool_redis::redis::cmd("PING").query_async::<String>(&mut conn).await.is_ok(),
        Err(_) => false,
    };
    let draining = state.shutdown.is_cancelled();
    let ready = nats && postgres && redis && !draining;
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (
        status,
        Json(
            json!({"ready": ready, "nats": nats, "postgres": postgres, "redis": redis, "draining": draining}),
        ),
    )
}
