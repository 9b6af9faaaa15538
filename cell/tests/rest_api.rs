//! The REST contract of `docs/protocol.md`, through a real cell: auth with rotating refresh
//! tokens, profiles, channels with roles, and history paging. Each assertion names the exact
//! status and error code a client gets.

use reqwest::Method;
use serde_json::{Value, json};
use shared::local::client::{ChatClient, expect};
use shared::local::{CellOptions, TestCell};
use shared::protocol::ServerFrame;
use std::time::Duration;

async fn cell() -> TestCell {
    TestCell::start(CellOptions::default()).await.expect("the cell starts")
}

/// The status and error code of a failed call.
async fn error_of(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body["error"]["code"].as_str().unwrap_or_default().to_owned())
}

async fn post(url: String, body: Value) -> reqwest::Response {
    reqwest::Client::new().post(url).json(&body).send().await.unwrap()
}

#[tokio::test]
async fn register_login_refresh_rotation_and_logout() {
    let cell = cell().await;
    let base = cell.gateway_url(0);
    let alice = ChatClient::register(&base, "alice").await.unwrap();

    let again = json!({"email": "other@example.test", "username": "ALICE", "password": "password-x"});
    assert_eq!(
        error_of(post(format!("{base}/api/v1/auth/register"), again).await).await,
        (409, "username_taken".into())
    );
    let bad_email = json!({"email": "nope", "username": "zed", "password": "password-x"});
    assert_eq!(
        error_of(post(format!("{base}/api/v1/auth/register"), bad_email).await).await,
        (422, "invalid_email".into())
    );
    let short = json!({"email": "z@example.test", "username": "zed", "password": "short"});
    assert_eq!(
        error_of(post(format!("{base}/api/v1/auth/register"), short).await).await,
        (422, "invalid_password".into())
    );
    let malformed = reqwest::Client::new()
        .post(format!("{base}/api/v1/auth/register"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(malformed).await.0, 400);

    let by_email = json!({"email": "alice@example.test", "password": "password-alice"});
    let session = expect(post(format!("{base}/api/v1/auth/login"), by_email).await, 200).await.unwrap();
    assert_eq!(session["user"]["username"], "alice");
    assert_eq!(session["token_type"], "Bearer");
    assert_eq!(session["expires_in"], 900);
    let wrong = json!({"username": "alice", "password": "password-wrong"});
    assert_eq!(
        error_of(post(format!("{base}/api/v1/auth/login"), wrong).await).await,
        (401, "invalid_credentials".into())
    );
    let unknown = json!({"username": "nobody", "password": "password-wrong"});
    assert_eq!(
        error_of(post(format!("{base}/api/v1/auth/login"), unknown).await).await,
        (401, "invalid_credentials".into())
    );

    // Refresh rotates; using a rotated token again revokes the whole family.
    let refresh = |token: &str| post(format!("{base}/api/v1/auth/refresh"), json!({"refresh_token": token}));
    let rotated = expect(refresh(&alice.refresh_token).await, 200).await.unwrap();
    let next = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(next, alice.refresh_token);
    assert_eq!(error_of(refresh(&alice.refresh_token).await).await, (401, "invalid_credentials".into()));
    assert_eq!(error_of(refresh(&next).await).await.0, 401, "the replay revoked the successor too");

    // Logout revokes the session's refresh token.
    let other = session["refresh_token"].as_str().unwrap().to_owned();
    let logout = post(format!("{base}/api/v1/auth/logout"), json!({"refresh_token": other})).await;
    assert_eq!(logout.status().as_u16(), 204);
    assert_eq!(error_of(refresh(&other).await).await.0, 401);

    let anonymous = reqwest::get(format!("{base}/api/v1/users/me")).await.unwrap();
    assert_eq!(error_of(anonymous).await, (401, "unauthorized".into()));

    // Every error has the JSON body, routing and size errors too.
    assert_eq!(
        error_of(reqwest::get(format!("{base}/api/v1/nope")).await.unwrap()).await,
        (404, "not_found".into())
    );
    let wrong_method = reqwest::Client::new().put(format!("{base}/api/v1/auth/login")).send().await.unwrap();
    assert_eq!(error_of(wrong_method).await, (405, "method_not_allowed".into()));
    let huge = json!({"email": "h@example.test", "username": "huge", "password": "x".repeat(70 * 1024)});
    assert_eq!(
        error_of(post(format!("{base}/api/v1/auth/register"), huge).await).await,
        (413, "too_large".into())
    );
}

#[tokio::test]
async fn profiles_are_private_where_they_should_be_and_searchable() {
    let cell = cell().await;
    let base = cell.gateway_url(0);
    let alice = ChatClient::register(&base, "alice").await.unwrap();
    let bob = ChatClient::register(&base, "bob").await.unwrap();

    let me = expect(alice.request(Method::GET, "/users/me").send().await.unwrap(), 200).await.unwrap();
    assert_eq!(me["email"], "alice@example.test");
    let patch = json!({"display_name": "Alice A.", "avatar_url": "https://img.example/a.png"});
    let updated = expect(alice.request(Method::PATCH, "/users/me").json(&patch).send().await.unwrap(), 200)
        .await
        .unwrap();
    assert_eq!(updated["display_name"], "Alice A.");
    let bad = json!({"avatar_url": "javascript:alert(1)"});
    assert_eq!(
        error_of(alice.request(Method::PATCH, "/users/me").json(&bad).send().await.unwrap()).await,
        (422, "invalid_avatar_url".into())
    );

    let seen =
        expect(bob.request(Method::GET, &format!("/users/{}", alice.user_id)).send().await.unwrap(), 200)
            .await
            .unwrap();
    assert_eq!(seen["display_name"], "Alice A.");
    assert!(seen.get("email").is_none(), "no one else sees alice's email");

    let found =
        expect(bob.request(Method::GET, "/users/search?q=AL").send().await.unwrap(), 200).await.unwrap();
    let names: Vec<&str> =
        found["users"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["alice"]);
}

#[tokio::test]
async fn channels_enforce_roles_and_history_pages_both_ways() {
    let cell = cell().await;
    let base = cell.gateway_url(0);
    let alice = ChatClient::register(&base, "alice").await.unwrap();
    let bob = ChatClient::register(&base, "bob").await.unwrap();
    let carol = ChatClient::register(&base, "carol").await.unwrap();

    // A dm is found, not created twice.
    let dm = json!({"type": "dm", "member_ids": [bob.user_id]});
    let first =
        expect(alice.request(Method::POST, "/channels").json(&dm).send().await.unwrap(), 201).await.unwrap();
    let back = json!({"type": "dm", "member_ids": [alice.user_id]});
    let second =
        expect(bob.request(Method::POST, "/channels").json(&back).send().await.unwrap(), 200).await.unwrap();
    assert_eq!(first["id"], second["id"]);
    let crowded = json!({"type": "dm", "member_ids": [bob.user_id, carol.user_id]});
    assert_eq!(
        error_of(alice.request(Method::POST, "/channels").json(&crowded).send().await.unwrap()).await,
        (422, "invalid_members".into())
    );
    let named_dm = json!({"type": "dm", "name": "us", "member_ids": [carol.user_id]});
    assert_eq!(
        error_of(alice.request(Method::POST, "/channels").json(&named_dm).send().await.unwrap()).await,
        (422, "dm_immutable".into())
    );
    let dm_id = first["id"].as_str().unwrap().to_owned();
    let leave_dm = format!("/channels/{dm_id}/members/{}", bob.user_id);
    assert_eq!(
        error_of(bob.request(Method::DELETE, &leave_dm).send().await.unwrap()).await,
        (409, "dm_immutable".into())
    );
    let nameless = json!({"type": "group", "member_ids": []});
    assert_eq!(
        error_of(alice.request(Method::POST, "/channels").json(&nameless).send().await.unwrap()).await,
        (422, "invalid_name".into())
    );

    let group = alice.create_channel("group", "team", &[bob.user_id]).await.unwrap();
    let public = alice.create_channel("public", "lobby", &[]).await.unwrap();
    let path = |c, rest: &str| format!("/channels/{c}{rest}");

    // Visibility: a private channel does not exist for outsiders; a public one does.
    assert_eq!(
        error_of(carol.request(Method::GET, &path(group, "")).send().await.unwrap()).await,
        (404, "not_found".into())
    );
    expect(carol.request(Method::GET, &path(public, "")).send().await.unwrap(), 200).await.unwrap();
    assert_eq!(
        error_of(carol.request(Method::GET, &path(public, "/messages")).send().await.unwrap()).await,
        (403, "forbidden".into())
    );
    // Anyone may join a public channel themself, but not as admin, and not into a private one.
    let as_admin = json!({"user_id": carol.user_id, "role": "admin"});
    assert_eq!(
        error_of(
            carol.request(Method::POST, &path(public, "/members")).json(&as_admin).send().await.unwrap()
        )
        .await
        .0,
        403
    );
    let join = json!({"user_id": carol.user_id});
    expect(carol.request(Method::POST, &path(public, "/members")).json(&join).send().await.unwrap(), 201)
        .await
        .unwrap();
    expect(carol.request(Method::GET, &path(public, "/messages")).send().await.unwrap(), 200).await.unwrap();
    assert_eq!(
        error_of(carol.request(Method::POST, &path(group, "/members")).json(&join).send().await.unwrap())
            .await
            .0,
        404
    );

    // Rights: members read, owners and admins manage.
    let rename = json!({"name": "renamed"});
    assert_eq!(
        error_of(bob.request(Method::PATCH, &path(group, "")).json(&rename).send().await.unwrap()).await,
        (403, "forbidden".into())
    );
    let renamed =
        expect(alice.request(Method::PATCH, &path(group, "")).json(&rename).send().await.unwrap(), 200)
            .await
            .unwrap();
    assert_eq!(renamed["name"], "renamed");
    let add_carol = json!({"user_id": carol.user_id});
    assert_eq!(
        error_of(bob.request(Method::POST, &path(group, "/members")).json(&add_carol).send().await.unwrap())
            .await
            .0,
        403
    );
    let promote = json!({"user_id": carol.user_id, "role": "admin"});
    expect(alice.request(Method::POST, &path(group, "/members")).json(&promote).send().await.unwrap(), 201)
        .await
        .unwrap();
    assert_eq!(
        error_of(
            alice.request(Method::POST, &path(group, "/members")).json(&add_carol).send().await.unwrap()
        )
        .await,
        (409, "already_member".into())
    );
    let members =
        expect(bob.request(Method::GET, &path(group, "/members")).send().await.unwrap(), 200).await.unwrap();
    let mut roles: Vec<(String, String)> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["username"].as_str().unwrap().to_owned(), m["role"].as_str().unwrap().to_owned()))
        .collect();
    roles.sort();
    assert_eq!(
        roles,
        [("alice".into(), "owner".into()), ("bob".into(), "member".into()), ("carol".into(), "admin".into())]
    );
    // An admin removes a member but not the owner; the owner cannot leave.
    assert_eq!(
        error_of(
            carol
                .request(Method::DELETE, &path(group, &format!("/members/{}", alice.user_id)))
                .send()
                .await
                .unwrap()
        )
        .await
        .0,
        403
    );
    assert_eq!(
        error_of(
            alice
                .request(Method::DELETE, &path(group, &format!("/members/{}", alice.user_id)))
                .send()
                .await
                .unwrap()
        )
        .await,
        (409, "owner_cannot_leave".into())
    );

    // History: 5 messages, paged forwards and backwards.
    let mut ws = alice.connect(&cell.ws_url(0)).await.unwrap();
    for i in 1..=5 {
        ws.send_message(group, &format!("h{i}"), &format!("message {i}")).await.unwrap();
    }
    let mut delivered = 0;
    while delivered < 5 {
        if let Some(ServerFrame::MessageNew { .. }) = ws.next_frame(Duration::from_secs(30)).await.unwrap() {
            delivered += 1;
        }
    }
    let seqs = |page: &Value| -> Vec<i64> {
        page["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_i64().unwrap()).collect()
    };
    let page = async |query: &str| {
        let url = path(group, &format!("/messages?{query}"));
        let page = expect(bob.request(Method::GET, &url).send().await.unwrap(), 200).await.unwrap();
        (seqs(&page), page["has_more"].clone())
    };
    assert_eq!(page("after_seq=1&limit=3").await, (vec![2, 3, 4], json!(true)));
    assert_eq!(page("before_seq=3&limit=5").await, (vec![2, 1], json!(false)));
    assert_eq!(
        page("after_seq=1&before_seq=5&limit=2").await,
        (vec![2, 3], json!(true)),
        "between, oldest first"
    );
    assert_eq!(page("after_seq=1&before_seq=5").await, (vec![2, 3, 4], json!(false)));
    let latest =
        expect(bob.request(Method::GET, &path(group, "/messages?limit=2")).send().await.unwrap(), 200)
            .await
            .unwrap();
    assert_eq!(seqs(&latest), [5, 4]);
    assert_eq!(
        latest["messages"][0]["message_id"].as_str().map(|s| s.parse::<i64>().is_ok()),
        Some(true),
        "ids are decimal strings"
    );
    assert_eq!(
        error_of(bob.request(Method::GET, &path(group, "/messages?limit=201")).send().await.unwrap()).await,
        (422, "invalid_limit".into())
    );

    // Removing bob ends his access; deleting is the owner's alone.
    expect(
        alice
            .request(Method::DELETE, &path(group, &format!("/members/{}", bob.user_id)))
            .send()
            .await
            .unwrap(),
        204,
    )
    .await
    .unwrap();
    assert_eq!(
        error_of(bob.request(Method::GET, &path(group, "/messages")).send().await.unwrap()).await.0,
        404
    );
    assert_eq!(error_of(carol.request(Method::DELETE, &path(group, "")).send().await.unwrap()).await.0, 403);
    expect(alice.request(Method::DELETE, &path(group, "")).send().await.unwrap(), 204).await.unwrap();
    assert_eq!(error_of(alice.request(Method::GET, &path(group, "")).send().await.unwrap()).await.0, 404);
}
