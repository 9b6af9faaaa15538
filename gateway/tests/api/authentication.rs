//! Every authenticated route, with every kind of bad credential: 401 `unauthorized`, before
//! anything else about the request is looked at. The routes come from a table that must name
//! every operation the OpenAPI document says needs a token, so a new route is covered or
//! this fails.

use crate::support::cases::{Case, run_table};
use crate::support::{TestApp, spawn_app, tokens};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// An authenticated route: its method, its path as the OpenAPI document writes it, the
/// path to call, and a body it would accept.
struct Route {
    method: Method,
    template: &'static str,
    path: String,
    body: Option<Value>,
    multipart: bool,
}

fn route(method: Method, template: &'static str, path: String) -> Route {
    Route { method, template, path, body: None, multipart: false }
}

/// Every authenticated route, called on things that exist (alice's channel, bob).
fn routes(channel: &str, bob: &str) -> Vec<Route> {
    let (get, post, patch, put, delete) =
        (Method::GET, Method::POST, Method::PATCH, Method::PUT, Method::DELETE);
    let c = |suffix: &str| format!("/api/v1/channels/{channel}{suffix}");
    let upload = format!("/api/v1/upload/{}", uuid::Uuid::new_v4());
    let with = |mut r: Route, body: Value| {
        r.body = Some(body);
        r
    };
    vec![
        route(get.clone(), "/api/v1/users/me", "/api/v1/users/me".into()),
        with(
            route(patch.clone(), "/api/v1/users/me", "/api/v1/users/me".into()),
            json!({"display_name": "A"}),
        ),
        with(
            route(delete.clone(), "/api/v1/users/me", "/api/v1/users/me".into()),
            json!({"password": "password-alice"}),
        ),
        with(
            route(put.clone(), "/api/v1/users/me/password", "/api/v1/users/me/password".into()),
            json!({"current_password": "password-alice", "new_password": "password-new"}),
        ),
        route(get.clone(), "/api/v1/users/search", "/api/v1/users/search?q=bo".into()),
        route(get.clone(), "/api/v1/users/{id}", format!("/api/v1/users/{bob}")),
        route(get.clone(), "/api/v1/channels", "/api/v1/channels".into()),
        with(
            route(post.clone(), "/api/v1/channels", "/api/v1/channels".into()),
            json!({"type": "group", "name": "x"}),
        ),
        route(get.clone(), "/api/v1/channels/public", "/api/v1/channels/public".into()),
        route(get.clone(), "/api/v1/search", "/api/v1/search?q=hello".into()),
        route(get.clone(), "/api/v1/channels/{id}", c("")),
        with(route(patch.clone(), "/api/v1/channels/{id}", c("")), json!({"name": "renamed"})),
        route(delete.clone(), "/api/v1/channels/{id}", c("")),
        route(post.clone(), "/api/v1/channels/{id}/join", c("/join")),
        route(post.clone(), "/api/v1/channels/{id}/leave", c("/leave")),
        route(get.clone(), "/api/v1/channels/{id}/members", c("/members")),
        with(route(post.clone(), "/api/v1/channels/{id}/members", c("/members")), json!({"user_id": bob})),
        route(delete.clone(), "/api/v1/channels/{id}/members/{user_id}", c(&format!("/members/{bob}"))),
        route(get.clone(), "/api/v1/channels/{id}/reads", c("/reads")),
        route(get.clone(), "/api/v1/channels/{id}/notifications", c("/notifications")),
        with(route(put, "/api/v1/channels/{id}/notifications", c("/notifications")), json!({"level": "all"})),
        route(get.clone(), "/api/v1/calls/ice-servers", "/api/v1/calls/ice-servers".into()),
        route(get.clone(), "/api/v1/channels/{id}/messages", c("/messages")),
        route(get.clone(), "/api/v1/channels/{id}/messages/search", c("/messages/search?q=hello")),
        route(get.clone(), "/api/v1/channels/{id}/messages/{message_id}", c("/messages/1")),
        with(
            route(patch, "/api/v1/channels/{id}/messages/{message_id}", c("/messages/1")),
            json!({"content": "x"}),
        ),
        route(delete.clone(), "/api/v1/channels/{id}/messages/{message_id}", c("/messages/1")),
        route(
            post.clone(),
            "/api/v1/channels/{id}/messages/{message_id}/reactions/{emoji}",
            c("/messages/1/reactions/%F0%9F%91%8D"),
        ),
        route(
            delete.clone(),
            "/api/v1/channels/{id}/messages/{message_id}/reactions/{emoji}",
            c("/messages/1/reactions/%F0%9F%91%8D"),
        ),
        Route { multipart: true, ..route(post, "/api/v1/upload", "/api/v1/upload".into()) },
        route(get.clone(), "/api/v1/upload/{id}", upload.clone()),
        route(delete, "/api/v1/upload/{id}", upload.clone()),
        route(get.clone(), "/api/v1/upload/{id}/link", format!("{upload}/link")),
        // Not a REST route, but refused the same way before the upgrade is looked at.
        route(get, "/ws", "/ws".into()),
    ]
}

/// A form with one small `file` part.
const FORM: &str =
    "--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nhello\r\n--x--\r\n";

/// Every kind of credential the app must refuse, as the whole `Authorization` header (none
/// for the first). `user` and `session` are alice's; `valid` is her live token.
fn bad_credentials(
    user: &str,
    valid: &str,
    revoked: &str,
    deleted: &str,
) -> Vec<(&'static str, Option<String>)> {
    let session = uuid::Uuid::new_v4().to_string();
    let claims = tokens::claims(user, &session, 900);
    let with = |key: &str, value: Value| {
        let mut c = claims.clone();
        c[key] = value;
        c
    };
    let now = chrono::Utc::now().timestamp();
    let bearer = |t: String| Some(format!("Bearer {t}"));
    vec![
        ("no Authorization header", None),
        ("an empty bearer token", Some("Bearer ".into())),
        ("garbage", bearer("not-a-token".into())),
        ("three dots", bearer("..".into())),
        ("another scheme", Some("Basic YWxpY2U6cGFzc3dvcmQtYWxpY2U=".into())),
        ("the token without its scheme", Some(valid.to_owned())),
        ("expired past the leeway", bearer(tokens::signed(&with("exp", json!(now - 120))))),
        ("not valid yet", bearer(tokens::signed(&with("nbf", json!(now + 120))))),
        ("another audience", bearer(tokens::signed(&with("aud", json!("elsewhere"))))),
        ("another issuer", bearer(tokens::signed(&with("iss", json!("elsewhere"))))),
        (
            "no subject",
            bearer(tokens::signed(&{
                let mut c = claims.clone();
                c.as_object_mut().map(|c| c.remove("sub"));
                c
            })),
        ),
        ("a foreign key under the app's kid", bearer(tokens::signed_by_foreign_key(&claims, tokens::KEY_ID))),
        ("a foreign key under an unknown kid", bearer(tokens::signed_by_foreign_key(&claims, "k9"))),
        ("alg none", bearer(tokens::unsigned(&claims))),
        ("HS256 keyed with the public key", bearer(tokens::hs256_with_public_key(&claims))),
        ("claims changed after signing", bearer(tokens::tampered(valid, &uuid::Uuid::new_v4().to_string()))),
        ("a logged-out session's token", bearer(revoked.to_owned())),
        ("a deleted user's token", bearer(deleted.to_owned())),
    ]
}

/// The operations of the OpenAPI document that take a bearer token, as `METHOD path`.
async fn secured_operations(app: &TestApp) -> BTreeSet<String> {
    let document: Value =
        app.client.get(app.url("/api/v1/openapi.json")).send().await.unwrap().json().await.unwrap();
    let mut secured = BTreeSet::new();
    for (path, operations) in document["paths"].as_object().expect("paths") {
        for (method, operation) in operations.as_object().expect("operations") {
            let schemes = operation["security"].as_array().cloned().unwrap_or_default();
            if schemes.iter().any(|s| s.get("bearer").is_some()) {
                secured.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    secured
}

/// A second session of `user` (a login), logged out: its access token.
async fn logged_out_token(app: &TestApp, username: &str) -> String {
    let login = json!({"username": username, "password": format!("password-{username}")});
    let session: Value = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&login)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let logout = json!({"refresh_token": session["refresh_token"]});
    let answer = app.client.post(app.url("/api/v1/auth/logout")).json(&logout).send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 204);
    session["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn every_authenticated_route_refuses_every_kind_of_bad_credential() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let gone = app.register("gone").await;
    let channel = alice.create_channel("group", "general", &[bob.user_id]).await.unwrap();
    let deleted = gone.request(Method::DELETE, "/users/me").json(&json!({"password": "password-gone"}));
    assert_eq!(deleted.send().await.unwrap().status().as_u16(), 204);
    let revoked = logged_out_token(&app, "alice").await;

    let routes = routes(&channel.to_string(), &bob.user_id.to_string());
    let listed: BTreeSet<String> = routes
        .iter()
        .filter(|r| r.template != "/ws")
        .map(|r| format!("{} {}", r.method, r.template))
        .collect();
    let documented = secured_operations(&app).await;
    assert_eq!(
        documented.difference(&listed).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "routes that take a token and have no row in this table"
    );
    assert_eq!(listed.difference(&documented).collect::<Vec<_>>(), Vec::<&String>::new(), "rows of no route");

    let credentials =
        bad_credentials(&alice.user_id.to_string(), &alice.access_token, &revoked, &gone.access_token);
    let mut cases = Vec::new();
    for route in &routes {
        for (name, authorization) in &credentials {
            let mut case =
                Case::new(*name, route.method.clone(), route.path.clone()).fails(401, "unauthorized");
            if let Some(authorization) = authorization {
                case = case.authorization(authorization.clone());
            }
            if let Some(body) = &route.body {
                case = case.json(body.clone());
            }
            if route.multipart {
                case = case.raw(Some("multipart/form-data; boundary=x"), FORM);
            }
            cases.push(case);
        }
    }
    run_table(&app, "bad credentials", &cases).await;

    // The same requests with alice's own token get past authentication: the table's 401s
    // are about the credentials, not the requests.
    let me =
        Case::new("alice's own token", Method::GET, "/api/v1/users/me").bearer(&alice.access_token).ok(200);
    run_table(&app, "a good credential", &[me]).await;
}
