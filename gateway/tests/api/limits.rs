//! The limits through the same in-process app, each test with limits of its own (their
//! Redis keys are the test's own): a user past the REST limit gets 429 `rate_limited` with
//! `Retry-After` and other users do not; past the per-IP budget the auth routes get 429;
//! past the socket limit the handshake gets 429.

use crate::support::cases::{Case, run_table};
use crate::support::{AppOptions, raised_limits};
use reqwest::Method;
use serde_json::json;
use shared::config::{LimitsConfig, Rate};

/// Limits no test reaches, but for `edit`.
fn limits(edit: impl FnOnce(&mut LimitsConfig)) -> LimitsConfig {
    let mut limits = raised_limits();
    edit(&mut limits);
    limits
}

#[tokio::test]
async fn past_a_limit_the_answer_is_429_with_retry_after_and_only_for_whom_it_is_past() {
    let rest = limits(|l| l.rest_per_user = Rate { count: 3, window_ms: 60_000 });
    let app = AppOptions { limits: Some(rest), ..Default::default() }.spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let me = |name: &str, token: &str| Case::new(name, Method::GET, "/api/v1/users/me").bearer(token);
    let cases = vec![
        me("alice's first request", &alice.access_token).ok(200),
        me("alice's second request", &alice.access_token).ok(200),
        me("alice's third request", &alice.access_token).ok(200),
        me("alice's fourth request", &alice.access_token).fails(429, "rate_limited"),
        Case::new("alice's request elsewhere", Method::GET, "/api/v1/channels")
            .bearer(&alice.access_token)
            .fails(429, "rate_limited"),
        me("bob's first request", &bob.access_token).ok(200),
        Case::new("no token while alice is limited", Method::GET, "/api/v1/users/me")
            .fails(401, "unauthorized"),
    ];
    run_table(&app, "REST per user", &cases).await;
    let (status, headers, _) = me("alice once more", &alice.access_token).send(&app).await.unwrap();
    let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert_eq!(status, 429);
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after} is within the window");
}

#[tokio::test]
async fn the_auth_routes_share_a_per_ip_budget() {
    let per_ip = limits(|l| {
        l.auth_per_ip_burst = 3;
        l.auth_per_ip_refill_ms = 600_000;
    });
    let app = AppOptions { limits: Some(per_ip), ..Default::default() }.spawn().await;
    let alice = app.register("alice").await;
    let login = |name| {
        Case::new(name, Method::POST, "/api/v1/auth/login")
            .json(json!({"username": "alice", "password": "wrong-password"}))
    };
    let cases = vec![
        login("the second auth request").fails(401, "invalid_credentials"),
        login("the third").fails(401, "invalid_credentials"),
        login("the fourth").fails(429, "rate_limited"),
        Case::new("a refresh past the budget", Method::POST, "/api/v1/auth/refresh")
            .json(json!({"refresh_token": alice.refresh_token}))
            .fails(429, "rate_limited"),
        Case::new("an authenticated route, which has its own limit", Method::GET, "/api/v1/users/me")
            .bearer(&alice.access_token)
            .ok(200),
    ];
    run_table(&app, "auth per IP", &cases).await;
}

#[tokio::test]
async fn a_socket_past_the_users_limit_is_refused_before_the_upgrade() {
    let app =
        AppOptions { limits: Some(limits(|l| l.sockets_per_user = 1)), ..Default::default() }.spawn().await;
    let alice = app.register("alice").await;
    let first = alice.connect(&app.ws_url()).await.expect("the first socket opens");
    match alice.connect(&app.ws_url()).await {
        Err(shared::local::client::ClientError::Ws(tokio_tungstenite::tungstenite::Error::Http(
            response,
        ))) => {
            assert_eq!(response.status().as_u16(), 429, "the second socket");
        }
        Err(other) => panic!("the second socket failed otherwise: {other}"),
        Ok(_) => panic!("a second socket opened past sockets_per_user = 1"),
    }
    first.close().await;
}
