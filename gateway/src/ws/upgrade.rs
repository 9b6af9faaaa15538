//! The WebSocket endpoint `GET /ws`. The access token is checked before the upgrade (401
//! otherwise), from `Authorization: Bearer` or, for browsers, the subprotocol list
//! `chat.v1, bearer.<token>`; then the origin, the gateway's and the user's socket caps, and
//! the socket is registered with the fan-out before it is upgraded, so it misses nothing.

use super::socket::{self, Registration};
use crate::auth::extract::bearer_token;
use crate::conn::ConnHandle;
use crate::error::AppError;
use crate::state::AppState;
use crate::store;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::Response;
use futures::StreamExt;
use shared::protocol;

/// Bytes a socket reads into at a time (see the upgrade's buffer settings).
const READ_BUFFER_BYTES: usize = 2 * 1024;

/// The access token of a WebSocket handshake.
pub struct HandshakeToken(String);

impl FromRequestParts<AppState> for HandshakeToken {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, AppError> {
        if let Some(token) = bearer_token(parts) {
            return Ok(Self(token.to_owned()));
        }
        parts
            .headers
            .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .find_map(|p| p.trim().strip_prefix(protocol::BEARER_SUBPROTOCOL_PREFIX))
            .map(|t| Self(t.to_owned()))
            .ok_or(AppError::Unauthorized)
    }
}

/// The query of `GET /ws`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct UpgradeOptions {
    /// The client will send a `sync` as its first frame: live messages wait for it however
    /// long it takes (bounded by half the socket's budget), instead of for
    /// [`super::read::FIRST_FRAME_GRACE`]. What a resuming client should ask for: a late first frame can
    /// then never put live messages before its backlog.
    #[serde(default)]
    pub resume: bool,
}

/// `GET /ws`: authenticates, registers the socket's channels, then upgrades.
pub async fn upgrade(
    State(state): State<AppState>,
    HandshakeToken(token): HandshakeToken,
    headers: axum::http::HeaderMap,
    options: Result<axum::extract::Query<UpgradeOptions>, axum::extract::rejection::QueryRejection>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, AppError> {
    let claims = state.sessions.authenticate(&token)?;
    let axum::extract::Query(options) =
        options.map_err(|r| AppError::Rejected { status: r.status(), message: r.body_text() })?;
    let (user, session, expires) = (claims.sub, claims.sid, claims.exp);
    let ws = ws.map_err(|r| AppError::Rejected { status: r.status(), message: r.body_text() })?;
    check_origin(&state, &headers)?;
    let permit = state.connection_permits.clone().try_acquire_owned().map_err(|_| AppError::Unavailable)?;
    let sender = store::users::sender_view(&state.db, user).await?.ok_or(AppError::Unauthorized)?;
    let (conn, outbound) =
        ConnHandle::new(user, session, state.config.socket_queue_bytes, state.metrics.clone());
    let registration = register(&state, &conn, permit).await?;
    let sockets = state.sockets.clone();
    Ok(ws
        .protocols([protocol::SUBPROTOCOL])
        .max_message_size(state.config.max_ws_message_bytes)
        .max_frame_size(state.config.max_ws_frame_bytes)
        // Small buffers: memory per connection is what lets a gateway hold 80k sockets. The
        // read buffer is zero-filled to its size on the first read, so all of it is resident
        // for the socket's life: 2 KiB holds several frames of a pipelining client per read,
        // and a larger frame grows it as needed.
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(8 * 1024)
        .max_write_buffer_size(64 * 1024)
        .on_upgrade(move |socket| {
            // A task of its own, so the socket's one long-lived task holds its own state only,
            // not axum's upgrade future around it.
            let halves = socket.split();
            sockets.spawn(socket::serve(halves, registration, outbound, sender, expires, options.resume));
            std::future::ready(())
        }))
}

/// Refuses a page of another site than the gateway's own and the configured ones (cross-site
/// WebSocket hijacking; `crate::origins`).
fn check_origin(state: &AppState, headers: &axum::http::HeaderMap) -> Result<(), AppError> {
    let header = |name| headers.get(name).and_then(|v: &axum::http::HeaderValue| v.to_str().ok());
    let (origin, host) = (header(axum::http::header::ORIGIN), header(axum::http::header::HOST));
    match crate::origins::allows(&state.config, origin, host) {
        true => Ok(()),
        false => Err(AppError::Forbidden("origin not allowed")),
    }
}

/// Takes the socket's place among its user's, registers it with the fan-out and joins it to
/// the user's channels, so it gets every delivery announced from now on.
async fn register(
    state: &AppState,
    conn: &ConnHandle,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Result<Registration, AppError> {
    let (user, session) = (conn.user, conn.session);
    let lease = conn.lease_id(state.config.node_id);
    if !state.limiter.lease_socket(user, &lease).await {
        state.metrics.rate_limited("sockets_per_user");
        return Err(AppError::RateLimited { limit: "sockets_per_user", retry_after_ms: 1000 });
    }
    state.fanout.register(conn);
    // A revocation that came after the token was checked found no socket to close.
    if state.sessions.revoked.contains(session) {
        state.fanout.unregister(conn);
        state.limiter.release_socket(user, &lease).await;
        return Err(AppError::Unauthorized);
    }
    let registration = Registration::new(state.clone(), conn.clone(), lease, permit);
    let channels = store::channels::member_channel_ids(&state.db, user).await?;
    // Live messages wait for the client's first frame: if it is a `sync`, its backlog goes
    // out first, so a resuming client never sees a live message before the ones it missed.
    for channel in &channels {
        conn.hold_until_first_frame(*channel);
    }
    state.fanout.join(conn, channels).await;
    Ok(registration)
}
