//! What every request gets whatever its route: unknown routes 404, wrong methods 405, bodies
//! over 64 KiB 413, bodies that are not JSON 415, malformed JSON 400, JSON of the wrong shape
//! or nested too deep 422 — each with the JSON error body.

use crate::support::cases::{Case, run_table};
use crate::support::spawn_app;
use reqwest::Method;
use serde_json::json;

/// JSON arrays nested `depth` levels deep.
fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

#[tokio::test]
async fn unknown_routes_wrong_methods_and_bad_bodies_get_the_json_error_body() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let channel = alice.create_channel("group", "general", &[]).await.unwrap();
    let token = alice.access_token.clone();
    let c = format!("/api/v1/channels/{channel}");
    let register = |name| Case::new(name, Method::POST, "/api/v1/auth/register");
    let patch_me = |name| Case::new(name, Method::PATCH, "/api/v1/users/me").bearer(&token);
    let json = Some("application/json");
    // A PATCH body of exactly `len` bytes: `{"display_name":"ddd…"}`.
    let body_of =
        |len: usize| json!({"display_name": "d".repeat(len - r#"{"display_name":""}"#.len())}).to_string();
    let cases = vec![
        Case::new("an unknown route under the API", Method::GET, "/api/v1/nope")
            .fails(404, "not_found")
            .saying("route"),
        Case::new("an unknown route outside it", Method::GET, "/nope")
            .fails(404, "not_found")
            .saying("route"),
        Case::new("the root", Method::GET, "/").fails(404, "not_found"),
        Case::new("an unknown auth route", Method::POST, "/api/v1/auth/nope").fails(404, "not_found"),
        Case::new("an unknown channel sub-route, with a token", Method::GET, format!("{c}/nope"))
            .bearer(&token)
            .fails(404, "not_found")
            .saying("route"),
        Case::new("past a member's path", Method::GET, format!("{c}/members/{}/x", alice.user_id))
            .bearer(&token)
            .fails(404, "not_found"),
        Case::new("PUT on login", Method::PUT, "/api/v1/auth/login").fails(405, "method_not_allowed"),
        Case::new("GET on register", Method::GET, REGISTER_PATH).fails(405, "method_not_allowed"),
        Case::new("GET on logout", Method::GET, "/api/v1/auth/logout").fails(405, "method_not_allowed"),
        Case::new("DELETE on the channel list", Method::DELETE, "/api/v1/channels")
            .bearer(&token)
            .fails(405, "method_not_allowed"),
        Case::new("PUT on a channel", Method::PUT, c.clone()).bearer(&token).fails(405, "method_not_allowed"),
        Case::new("POST on my profile", Method::POST, "/api/v1/users/me")
            .bearer(&token)
            .fails(405, "method_not_allowed"),
        Case::new("POST on the socket", Method::POST, "/ws").fails(405, "method_not_allowed"),
        Case::new("POST on health", Method::POST, "/health").fails(405, "method_not_allowed"),
        register("a register body of 70 KiB")
            .json(json!({"email": "h@example.test", "username": "huge", "password": "x".repeat(70 * 1024)}))
            .fails(413, "too_large"),
        Case::new("a channel body of 70 KiB", Method::POST, "/api/v1/channels")
            .bearer(&token)
            .json(json!({"type": "group", "name": "x", "description": "d".repeat(70 * 1024)}))
            .fails(413, "too_large"),
        patch_me("a body of 64 KiB and one byte").raw(json, body_of(64 * 1024 + 1)).fails(413, "too_large"),
        patch_me("a body of exactly 64 KiB").raw(json, body_of(64 * 1024)).fails(422, "invalid_display_name"),
        register("malformed JSON").raw(json, "{").fails(400, "bad_request"),
        register("an empty JSON body").raw(json, "").fails(400, "bad_request"),
        register("JSON followed by garbage")
            .raw(json, r#"{"email": "g@example.test", "username": "garbage", "password": "password-g"} x"#)
            .fails(400, "bad_request"),
        register("a JSON array").raw(json, "[1, 2]").fails(422, "bad_request"),
        register("JSON null").raw(json, "null").fails(422, "bad_request"),
        register("no Content-Type").raw(None, r#"{"username": "x"}"#).fails(415, "unsupported_media_type"),
        register("text/plain")
            .raw(Some("text/plain"), r#"{"username": "x"}"#)
            .fails(415, "unsupported_media_type"),
        register("JSON with a charset")
            .raw(
                Some("application/json; charset=utf-8"),
                r#"{"email": "c@example.test", "username": "x", "password": "password-x"}"#,
            )
            .fails(422, "invalid_username"),
        register("JSON nested 40 levels").raw(json, nested(40)).fails(422, "too_deep"),
        register("JSON nested 32 levels").raw(json, nested(32)).fails(422, "bad_request"),
        patch_me("a PATCH without a body").fails(415, "unsupported_media_type"),
        Case::new("a socket request that is not an upgrade", Method::GET, "/ws")
            .bearer(&token)
            .fails(400, "bad_request"),
        Case::new("a query that does not parse", Method::GET, "/api/v1/channels?limit=ten")
            .bearer(&token)
            .fails(400, "bad_request"),
    ];
    run_table(&app, "routing and bodies", &cases).await;
}

const REGISTER_PATH: &str = "/api/v1/auth/register";
