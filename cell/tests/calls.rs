//! Calls from the clients' side. So far: the ICE servers a client gets for its calls, with a
//! TURN credential of coturn's `use-auth-secret` scheme, checked against the formula a coturn
//! with the same secret applies (username `<expiry>:<user_id>`, password
//! base64(HMAC-SHA1(secret, username))) and against its expiry.

use base64::Engine;
use hmac::{KeyInit, Mac};
use reqwest::Method;
use shared::local::client::{ChatClient, expect};
use shared::local::{CellOptions, TestCell};

const CALLS: &str = r#"
[calls]
stun_urls = ["stun:stun.example.org:3478"]
turn_urls = ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"]
turn_secret = "a secret coturn shares"
turn_credential_ttl = 600
"#;

#[tokio::test]
async fn a_caller_gets_stun_and_turn_servers_with_a_credential_coturn_accepts_until_it_expires() {
    let cell = TestCell::start(CellOptions { extra_config: CALLS.into(), ..Default::default() })
        .await
        .expect("the cell starts");
    let ada = ChatClient::register(&cell.gateway_url(0), "ada").await.unwrap();
    let before = chrono::Utc::now().timestamp();
    let answer =
        expect(ada.request(Method::GET, "/calls/ice-servers").send().await.unwrap(), 200).await.unwrap();
    let after = chrono::Utc::now().timestamp();
    let servers = answer["ice_servers"].as_array().unwrap();
    assert_eq!(servers.len(), 2, "{answer}");
    assert_eq!(servers[0]["urls"], serde_json::json!(["stun:stun.example.org:3478"]));
    assert!(servers[0].get("username").is_none() && servers[0].get("credential").is_none());
    let turn = &servers[1];
    assert_eq!(turn["urls"][1], "turns:turn.example.org:5349");

    let username = turn["username"].as_str().unwrap();
    let (expiry, user) = username.split_once(':').expect("<expiry>:<user_id>");
    assert_eq!(user, ada.user_id.to_string());
    let expiry: i64 = expiry.parse().unwrap();
    assert!((before + 600..=after + 600).contains(&expiry), "expires {expiry}, asked at {before}..{after}");
    let expires_at = chrono::DateTime::parse_from_rfc3339(answer["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(expires_at.timestamp(), expiry);

    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(b"a secret coturn shares").unwrap();
    mac.update(username.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(turn["credential"], expected);

    // Not signed in: nothing.
    let anonymous = reqwest::Client::new().get(format!("{}/api/v1/calls/ice-servers", cell.gateway_url(0)));
    assert_eq!(anonymous.send().await.unwrap().status(), 401);
}

#[tokio::test]
async fn a_cell_without_ice_servers_configured_gives_none() {
    let cell = TestCell::start(CellOptions::default()).await.expect("the cell starts");
    let ada = ChatClient::register(&cell.gateway_url(0), "ada").await.unwrap();
    let answer =
        expect(ada.request(Method::GET, "/calls/ice-servers").send().await.unwrap(), 200).await.unwrap();
    assert_eq!(answer, serde_json::json!({"ice_servers": []}));
}
