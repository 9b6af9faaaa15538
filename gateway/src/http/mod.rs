//! The REST API under `/api/v1`, plus `/health` and `/ready`.

pub mod auth;
pub mod channels;
pub mod health;
pub mod users;

use crate::state::AppState;
use axum::Router;
use axum::routing::{get, post};

pub fn router() -> Router<AppState> {
    let api = Router::new()
        .route("/auth/register", post(auth::register))
        .route("/auth/login", post(auth::login))
        .route("/auth/refresh", post(auth::refresh))
        .route("/auth/logout", post(auth::logout))
        .route("/users/me", get(users::me).patch(users::update_me))
        .route("/users/search", get(users::search))
        .route("/users/{id}", get(users::get))
        .route("/channels", get(channels::list).post(channels::create))
        .route("/channels/{id}", get(channels::get).patch(channels::update).delete(channels::delete))
        .route("/channels/{id}/members", get(channels::members).post(channels::add_member))
        .route("/channels/{id}/members/{user_id}", axum::routing::delete(channels::remove_member))
        .route("/channels/{id}/messages", get(channels::history));
    Router::new()
        .nest("/api/v1", api)
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
}

/// Clamps a client's `limit` to 1..=max, `default` when absent.
pub fn page_limit(limit: Option<i64>, default: i64, max: i64) -> i64 {
    limit.unwrap_or(default).clamp(1, max)
}

/// The cursor of the next page: the key of the last item when the page is full.
pub fn next_cursor<T, C>(items: &[T], limit: i64, key: impl Fn(&T) -> C) -> Option<C> {
    if items.len() as i64 == limit { items.last().map(key) } else { None }
}
