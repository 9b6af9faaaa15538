//! The router alone, without a listener: `gateway::Gateway::start` brings the services up and
//! its `router()` is driven through `tower::ServiceExt::oneshot`, one request at a time, as
//! axum's examples test an app. What it answers must be what the served app answers over
//! HTTP (the other tables here), so this checks the seam: no layer depends on the listener
//! but the peer address, which a request driven this way carries as an extension.

use crate::support::AppOptions;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use std::net::SocketAddr;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// A request as a client at 127.0.0.1 sends it.
fn request(method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    let body = match body {
        Some(body) => {
            builder = builder.header("content-type", "application/json");
            Body::from(body.to_string())
        }
        None => Body::empty(),
    };
    let mut request = builder.body(body).expect("a request");
    request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40_000))));
    request
}

/// The status and JSON body of `request` through `router`.
async fn call(router: &axum::Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = router.clone().oneshot(request).await.expect("the router answers");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("the body");
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_router_answers_in_process_as_the_served_app_does() {
    let (config, _namespace, _dir) = AppOptions::default().config().await;
    let shutdown = CancellationToken::new();
    let gateway = gateway::Gateway::start(config, shutdown.clone()).await.expect("the gateway starts");
    let router = gateway.router();

    let (status, body) = call(&router, request(Method::GET, "/health", None, None)).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let (status, body) = call(&router, request(Method::GET, "/api/v1/nope", None, None)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    let (status, body) = call(&router, request(Method::GET, "/api/v1/users/me", None, None)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")));

    // Register (the per-IP limit reads the peer address from the extension), then use the token.
    let credentials = json!({"email": "r@example.test", "username": "router", "password": "password-router"});
    let register = request(Method::POST, "/api/v1/auth/register", None, Some(credentials));
    let (status, body) = call(&router, register).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token = body["access_token"].as_str().expect("an access token").to_owned();
    let (status, me) = call(&router, request(Method::GET, "/api/v1/users/me", Some(&token), None)).await;
    assert_eq!((status, me["username"].as_str()), (StatusCode::OK, Some("router")));
    let channel = json!({"type": "group", "name": ""});
    let (status, body) =
        call(&router, request(Method::POST, "/api/v1/channels", Some(&token), Some(channel))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    shutdown.cancel();
    gateway.stop().await;
}
