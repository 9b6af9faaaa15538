//! Calls over REST: the ICE servers a client gives its `RTCPeerConnection`.

use crate::auth::extract::AuthUser;
use crate::calls::turn;
use crate::error::ApiResult;
use crate::http::openapi::{RateLimited, Unauthorized};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::Serialize;
use utoipa::ToSchema;

/// One entry of `RTCConfiguration.iceServers`.
#[derive(Debug, Serialize, ToSchema)]
pub struct IceServer {
    pub urls: Vec<String>,
    /// For TURN: `<expiry>:<user_id>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// For TURN: base64(HMAC-SHA1(secret, username)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IceServers {
    /// STUN servers, then TURN servers with the caller's credential; empty when the cell
    /// has none configured (`[calls]`): peers on one network still connect directly.
    pub ice_servers: Vec<IceServer>,
    /// When the TURN credential stops working; absent without TURN servers. Ask again
    /// before a call that starts after it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// The STUN and TURN servers for the caller's calls, with a short-lived TURN credential of
/// coturn's `use-auth-secret` scheme (`calls.turn_secret`, `calls.turn_credential_ttl`).
#[utoipa::path(
    get,
    path = "/calls/ice-servers",
    tag = "calls",
    operation_id = "ice_servers",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The ICE servers", body = IceServers),
        (status = 401, response = Unauthorized),
        (status = 429, response = RateLimited),
    )
)]
pub async fn ice_servers(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
) -> ApiResult<Json<IceServers>> {
    let calls = &state.calls;
    let mut ice_servers = Vec::new();
    if !calls.stun_urls.is_empty() {
        ice_servers.push(IceServer { urls: calls.stun_urls.clone(), username: None, credential: None });
    }
    let mut expires_at = None;
    if let (Some(secret), false) = (&calls.turn_secret, calls.turn_urls.is_empty()) {
        let expires = Utc::now() + calls.turn_credential_ttl;
        let (username, password) =
            turn::credential(secret.expose_secret().as_bytes(), me, expires.timestamp());
        ice_servers.push(IceServer {
            urls: calls.turn_urls.clone(),
            username: Some(username),
            credential: Some(password),
        });
        expires_at = Some(expires);
    }
    Ok(Json(IceServers { ice_servers, expires_at }))
}
