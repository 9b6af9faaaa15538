//! Abuse resistance from the client's side. Every bad input of the abuse-resistance issue gets
//! its exact answer (an HTTP status, an `error` code or a close code), while a well-behaved
//! pair of clients on the same gateway goes on sending and receiving, in order, during and
//! after each one. And revoking a session (logout, refresh-token reuse, password change,
//! account deletion) closes its sockets at once, on every gateway, with 4003.

use base64::Engine as _;
use shared::ids::ChannelId;
use shared::local::client::{ChatClient, ChatSocket, expect};
use shared::local::{CellOptions, TestCell};
use shared::protocol::{ErrorCode, ServerFrame};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::{self, Message, protocol::frame::Frame, protocol::frame::coding};

const WAIT: Duration = Duration::from_secs(30);

/// The key pair the gateway signs with in this test (kid `k2`), and another one it does not
/// accept. Both are test keys, public here on purpose.
const SIGNING_KEY: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIItdQOthKTTZRXXV+sJ5rdhqyglyXFu+zyxDj3auSHCT
-----END PRIVATE KEY-----
";
const PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAuK8m8JGJnugWQT02cskJ7MaYmHIo+yt56R67/sUUntQ=
-----END PUBLIC KEY-----
";
const FOREIGN_SIGNING_KEY: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIHmHtGsCi/IWLnlPxMK52zmRj2xtrAh/GhNSQ3Qx5Yr4
-----END PRIVATE KEY-----
";

/// A pair of clients that send and receive all along: alice sends a message every 200 ms and
/// waits for its ack and its delivery to her, bob waits for each delivery, both reading
/// at once. Any error, missing ack or missing delivery stops it, and `progressed` reports it.
struct Bystanders {
    delivered: tokio::sync::watch::Receiver<usize>,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<Result<Vec<i64>, String>>,
}

impl Bystanders {
    fn start(mut alice: ChatSocket, mut bob: ChatSocket, channel: ChannelId) -> Self {
        let (progress, delivered) = tokio::sync::watch::channel(0);
        let stop = tokio_util::sync::CancellationToken::new();
        let until = stop.clone();
        let task = tokio::spawn(async move {
            let mut seqs = Vec::new();
            for n in 0.. {
                if until.is_cancelled() {
                    break;
                }
                let id = format!("tick-{n}");
                alice.send_message(channel, &id, "tick").await.map_err(|e| format!("alice: {e}"))?;
                // Both read until the message is theirs: a client that stops reading answers
                // no pings, and this gateway closes a silent peer after 3 s (a fresh cell's
                // first delivery can take longer than that on a loaded machine).
                let (sent, delivered) = tokio::join!(
                    async {
                        let (mut acked, mut delivered) = (false, false);
                        while !(acked && delivered) {
                            match alice.next_frame(WAIT).await {
                                Ok(Some(ServerFrame::MessageAck { id: of, .. })) if of.0 == id => {
                                    acked = true
                                }
                                Ok(Some(ServerFrame::MessageNew { payload })) => {
                                    delivered |= payload.client_id.0 == id
                                }
                                other => return Err(format!("alice waiting for {id}: {other:?}")),
                            }
                        }
                        Ok(())
                    },
                    async {
                        match bob.next_frame(WAIT).await {
                            Ok(Some(ServerFrame::MessageNew { payload })) => Ok(payload.seq.0),
                            other => Err(format!("bob waiting for {id}: {other:?}")),
                        }
                    }
                );
                sent?;
                seqs.push(delivered?);
                progress.send_replace(seqs.len());
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(seqs)
        });
        Self { delivered, stop, task }
    }

    /// Asserts that two more messages went from alice to bob since now.
    async fn progressed(&mut self, after: &str) {
        let from = *self.delivered.borrow();
        let waited = tokio::time::timeout(WAIT, self.delivered.wait_for(|n| *n >= from + 2)).await;
        if !matches!(waited, Ok(Ok(_))) {
            self.stop.cancel();
            let result = (&mut self.task).await;
            panic!("the bystanders stopped after {after}: {result:?}");
        }
    }

    /// Stops them; every message reached bob, in order.
    async fn finish(self) {
        self.stop.cancel();
        let seqs = self.task.await.unwrap().expect("bystanders ran without error");
        assert!(seqs.len() >= 20, "{seqs:?}");
        assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    }
}

/// How a socket ended: the close code and reason, or what happened instead.
async fn end_of(socket: &mut ChatSocket) -> String {
    loop {
        match socket.next_frame(WAIT).await {
            Ok(Some(_)) => continue,
            Ok(None) => return "still open".into(),
            Err(error) => return error.to_string(),
        }
    }
}

/// The next `error` frame on the socket: (id, code, message).
async fn next_error(socket: &mut ChatSocket) -> (Option<String>, ErrorCode, String) {
    loop {
        match socket.next_frame(WAIT).await.unwrap() {
            Some(ServerFrame::Error { id, payload }) => return (id, payload.code, payload.message),
            Some(_) => continue,
            None => panic!("no error frame"),
        }
    }
}

/// The status of a WebSocket handshake with `token` as bearer.
async fn handshake_status(url: &str, token: &str) -> u16 {
    use tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => 101,
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("{other}"),
    }
}

#[derive(serde::Serialize)]
struct Claims {
    sub: String,
    sid: uuid::Uuid,
    iss: &'static str,
    aud: &'static str,
    iat: i64,
    nbf: i64,
    exp: i64,
}

fn claims(user: &ChatClient, exp_in: i64) -> Claims {
    let now = chrono::Utc::now().timestamp();
    Claims {
        sub: user.user_id.to_string(),
        sid: uuid::Uuid::new_v4(),
        iss: "chat-cell",
        aud: "chat",
        iat: now - 600,
        nbf: now - 600,
        exp: now + exp_in,
    }
}

fn signed(claims: &Claims, alg: jsonwebtoken::Algorithm, key: &jsonwebtoken::EncodingKey) -> String {
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = Some("k2".into());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// A token with `alg: none` and no signature.
fn unsigned(claims: &Claims) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(r#"{"alg":"none","typ":"JWT","kid":"k2"}"#);
    format!("{header}.{}.", b64.encode(serde_json::to_vec(claims).unwrap()))
}

/// A cell whose gateways sign with `SIGNING_KEY`, with a short header deadline and
/// `gateway` lines of its own.
async fn hardened_cell(gateways: usize, keys: &tempfile::TempDir, gateway: &str) -> TestCell {
    std::fs::write(keys.path().join("signing.pem"), SIGNING_KEY).unwrap();
    std::fs::write(keys.path().join("signing.kid"), "k2\n").unwrap();
    std::fs::write(keys.path().join("k2.pub"), PUBLIC_KEY).unwrap();
    let options = CellOptions {
        gateways,
        gateway_config: format!("jwt_keys_dir = {:?}\nheader_read_timeout = 2000\n{gateway}", keys.path()),
        // Redis answers late when the suite loads the machine; these tests judge limits, not
        // failing open (`limits.rs` does), so a slow answer must not let a send through.
        extra_config: "[limits]\nauth_per_ip_burst = 100\nredis_timeout = 10000\n\
                       sends_per_user = { count = 200, window_ms = 60000 }\nstrikes_before_close = 3\n"
            .into(),
        ..Default::default()
    };
    TestCell::start(options).await.expect("cell starts")
}

#[tokio::test]
async fn every_bad_input_gets_its_exact_answer_and_hurts_no_one_else() {
    let keys = tempfile::tempdir().unwrap();
    // Pings every second, silent peers closed after 3 s: every socket here reads all along or
    // is used at once.
    let cell = hardened_cell(1, &keys, "ping_interval = 1\nidle_timeout = 3\n").await;
    let ws = cell.ws_url(0);
    let (alice, bob, general) = cell.two_members(0, 0).await.unwrap();
    let mut bystanders =
        Bystanders::start(alice.connect(&ws).await.unwrap(), bob.connect(&ws).await.unwrap(), general);
    bystanders.progressed("start").await;
    let mallory = ChatClient::register(&cell.gateway_url(0), "mallory").await.unwrap();
    let own = mallory.create_channel("group", "mallory's", &[]).await.unwrap();

    // Frames the decoder refuses: the socket gets an `error` naming the frame, and stays.
    let mut socket = mallory.connect(&ws).await.unwrap();
    let deep =
        format!(r#"{{"type":"message.send","id":"d1","payload":{}{}}}"#, "[".repeat(40), "]".repeat(40));
    let too_long = serde_json::json!({"type": "message.send", "id": "l1",
        "payload": {"channel_id": own, "content": "x".repeat(4001)}});
    let unknown = r#"{"type":"message.explode","id":"u1","payload":{}}"#;
    for (text, expected_id, expected_code) in [
        ("{\"type\": \"message.send\", \"id\": ".to_owned(), None, ErrorCode::MalformedFrame),
        (unknown.to_owned(), Some("u1"), ErrorCode::UnknownType),
        (deep, Some("d1"), ErrorCode::MalformedFrame),
        (too_long.to_string(), Some("l1"), ErrorCode::InvalidPayload),
    ] {
        socket.send_text(text.clone()).await.unwrap();
        let (id, code, message) = next_error(&mut socket).await;
        assert_eq!((id.as_deref(), code), (expected_id, expected_code), "{message} for {:.80}", text);
        if expected_id == Some("d1") {
            assert!(message.contains("nested deeper than 32"), "{message}");
        }
        bystanders.progressed(&format!("{text:.40}")).await;
    }
    // A channel that does not exist, and one she is not in: `not_a_member`, nothing stored.
    for channel in [ChannelId::new_random(), general] {
        socket.send_message(channel, "n1", "let me in").await.unwrap();
        assert_eq!(next_error(&mut socket).await.1, ErrorCode::NotAMember);
    }
    let status = mallory.request(reqwest::Method::GET, &format!("/channels/{general}/messages")).send().await;
    // A private channel does not exist for outsiders: 404, not 403.
    assert_eq!(status.unwrap().status(), 404, "history of a channel she is not in");
    socket.send_message(own, "ok-1", "still here").await.unwrap();
    loop {
        match socket.next_frame(WAIT).await.unwrap() {
            Some(ServerFrame::MessageAck { id, .. }) => break assert_eq!(id.0, "ok-1"),
            Some(_) => continue,
            None => panic!("no ack after the bad frames"),
        }
    }
    bystanders.progressed("wrong channels").await;

    // A 20 KiB frame (above the 16 KiB frame limit), and a 70 KiB message in 10 KiB frames
    // (above the 64 KiB message limit): 1009.
    let mut big_frame = mallory.connect(&ws).await.unwrap();
    big_frame.send_text("x".repeat(20 * 1024)).await.unwrap();
    assert!(end_of(&mut big_frame).await.contains("1009"));
    let mut big_message = mallory.connect(&ws).await.unwrap();
    let part = bytes::Bytes::from(vec![b' '; 10 * 1024]);
    for i in 0..7 {
        let opcode = if i == 0 { coding::Data::Text } else { coding::Data::Continue };
        let frame = Frame::message(part.clone(), coding::OpCode::Data(opcode), i == 6);
        if big_message.send_raw(Message::Frame(frame)).await.is_err() {
            break;
        }
    }
    assert!(end_of(&mut big_message).await.contains("1009"));
    bystanders.progressed("oversize frames").await;

    // Tokens: expired, unsigned, signed by a key the gateway does not accept, HS256 made with
    // its public key, garbage: 401 before the upgrade. A valid one made the same way: 101.
    let key = jsonwebtoken::EncodingKey::from_ed_pem(SIGNING_KEY.as_bytes()).unwrap();
    let foreign = jsonwebtoken::EncodingKey::from_ed_pem(FOREIGN_SIGNING_KEY.as_bytes()).unwrap();
    let confused = jsonwebtoken::EncodingKey::from_secret(PUBLIC_KEY.as_bytes());
    let eddsa = jsonwebtoken::Algorithm::EdDSA;
    for (what, token) in [
        ("expired", signed(&claims(&mallory, -120), eddsa, &key)),
        ("alg none", unsigned(&claims(&mallory, 600))),
        ("foreign key", signed(&claims(&mallory, 600), eddsa, &foreign)),
        (
            "HS256 with the public key",
            signed(&claims(&mallory, 600), jsonwebtoken::Algorithm::HS256, &confused),
        ),
        ("garbage", "not.a.token".to_owned()),
    ] {
        assert_eq!(handshake_status(&ws, &token).await, 401, "{what}");
        let me = reqwest::Client::new()
            .get(format!("{}/api/v1/users/me", cell.gateway_url(0)))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), 401, "{what} over REST");
    }
    bystanders.progressed("bad tokens").await;

    // Refresh-token replay: the rotated token used again is refused, and so is the family's
    // live one (the whole login is revoked), and its socket is closed.
    let mut socket = mallory.connect(&ws).await.unwrap();
    let http = reqwest::Client::new();
    let refresh = |token: &str| {
        http.post(format!("{}/api/v1/auth/refresh", cell.gateway_url(0)))
            .json(&serde_json::json!({"refresh_token": token}))
            .send()
    };
    let rotated = expect(refresh(&mallory.refresh_token).await.unwrap(), 200).await.unwrap();
    let replayed = refresh(&mallory.refresh_token).await.unwrap();
    assert_eq!(replayed.status(), 401);
    let body: serde_json::Value = replayed.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_credentials");
    let live = rotated["refresh_token"].as_str().unwrap();
    assert_eq!(refresh(live).await.unwrap().status(), 401, "the family is revoked");
    assert!(end_of(&mut socket).await.contains("4003"), "the family's socket is closed");
    bystanders.progressed("refresh replay").await;

    // Five sockets per user; the sixth: 429 before the upgrade. The five never read, so
    // never answer pings: each is closed with 4000 after the idle timeout.
    let eve = ChatClient::register(&cell.gateway_url(0), "eve").await.unwrap();
    let mut silent = Vec::new();
    for _ in 0..5 {
        silent.push(eve.connect(&ws).await.unwrap());
    }
    assert_eq!(handshake_status(&ws, &eve.access_token).await, 429);
    bystanders.progressed("a sixth socket").await;
    let deadline = Instant::now() + WAIT;
    loop {
        let metrics = cell.metrics(&cell.gateways[0]).await;
        if metrics.contains("chat_gateway_connections_closed_total{code=\"4000\"} 5") {
            break;
        }
        assert!(Instant::now() < deadline, "five silent sockets closed with 4000: {metrics}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    drop(silent);
    bystanders.progressed("silent sockets").await;

    // Flood: 200 sends fit in the window, the rest are refused one by one; after the grace
    // three more refusals close the socket with 4029.
    let flood = eve.create_channel("group", "flood", &[]).await.unwrap();
    let mut flooder = eve.connect(&ws).await.unwrap();
    for i in 0..210 {
        flooder.send_message(flood, &format!("f{i}"), "flood").await.unwrap();
    }
    let (mut acked, mut limited) = (0, 0);
    while acked + limited < 210 {
        match flooder.next_frame(WAIT).await.unwrap() {
            Some(ServerFrame::MessageAck { .. }) => acked += 1,
            Some(ServerFrame::Error { payload, .. }) => {
                assert_eq!(payload.code, ErrorCode::RateLimited);
                assert!(payload.retry_after_ms.is_some());
                limited += 1;
            }
            Some(_) => {}
            None => panic!("flood answers: {acked} acked, {limited} limited"),
        }
    }
    assert_eq!((acked, limited), (200, 10));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for i in 0..3 {
        let _ = flooder.send_message(flood, &format!("g{i}"), "flood").await;
    }
    let end = end_of(&mut flooder).await;
    assert!(end.contains("4029"), "{end}\n{}", cell.logs_tail());
    bystanders.progressed("flood").await;

    // Slowloris: twenty connections trickle a handshake's headers a line every 300 ms; each
    // is cut (the headers deadline is 2 s) long before it could finish.
    let address = cell.gateway_url(0).trim_start_matches("http://").to_owned();
    let slow: Vec<_> = (0..20)
        .map(|_| {
            let address = address.clone();
            tokio::spawn(async move {
                let mut tcp = tokio::net::TcpStream::connect(&address).await.unwrap();
                tcp.write_all(b"GET /ws HTTP/1.1\r\nHost: chat\r\n").await.unwrap();
                for line in 0..100 {
                    let mut byte = [0u8; 1];
                    tokio::select! {
                        read = tcp.read(&mut byte) => return format!("cut after {line} lines: {read:?}"),
                        _ = tokio::time::sleep(Duration::from_millis(300)) => {}
                    }
                    if tcp.write_all(format!("X-Slow-{line}: 1\r\n").as_bytes()).await.is_err() {
                        return format!("cut after {line} lines: write failed");
                    }
                }
                "never cut".to_owned()
            })
        })
        .collect();
    bystanders.progressed("slowloris connections open").await;
    for connection in slow {
        let end = connection.await.unwrap();
        assert!(end.starts_with("cut after"), "{end}");
    }
    bystanders.progressed("slowloris").await;

    let metrics = cell.metrics(&cell.gateways[0]).await;
    // Both of mallory's sockets of the replayed session were closed with 4003.
    for closed in ["{code=\"1009\"} 2", "{code=\"4029\"} 1", "{code=\"4003\"} 2"] {
        assert!(
            metrics.contains(&format!("chat_gateway_connections_closed_total{closed}")),
            "{closed}: {metrics}"
        );
    }
    bystanders.finish().await;
}

/// A new login of `user`: (access token, refresh token).
async fn login(cell: &TestCell, gateway: usize, user: &str, password: &str) -> Result<(String, String), u16> {
    let body = serde_json::json!({"username": user, "password": password});
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/login", cell.gateway_url(gateway)))
        .json(&body)
        .send()
        .await
        .unwrap();
    if response.status() != 200 {
        return Err(response.status().as_u16());
    }
    let session: serde_json::Value = response.json().await.unwrap();
    Ok((session["access_token"].as_str().unwrap().into(), session["refresh_token"].as_str().unwrap().into()))
}

fn as_session(user: &ChatClient, base_url: &str, (access, refresh): &(String, String)) -> ChatClient {
    user.via(base_url).with_tokens(access, refresh)
}

/// Whether the socket still works: a send is acked.
async fn still_works(socket: &mut ChatSocket, channel: ChannelId, id: &str) -> Result<(), String> {
    socket.send_message(channel, id, "still here").await.map_err(|e| e.to_string())?;
    loop {
        match socket.next_frame(WAIT).await {
            Ok(Some(ServerFrame::MessageAck { id: acked, .. })) if acked.0 == id => return Ok(()),
            Ok(Some(_)) => continue,
            other => return Err(format!("{other:?}")),
        }
    }
}

#[tokio::test]
async fn revoking_a_session_closes_its_sockets_on_every_gateway_at_once() {
    let keys = tempfile::tempdir().unwrap();
    let cell = hardened_cell(2, &keys, "").await;
    let (victim, bob, channel) = cell.two_members(0, 1).await.unwrap();
    let gw1 = cell.gateway_url(1);
    // Four logins of the same user: the registration's, and three more.
    let s1 = login(&cell, 0, "alice", "password-alice").await.unwrap();
    let s2 = login(&cell, 0, "alice", "password-alice").await.unwrap();
    let mut s0_socket = victim.connect(&cell.ws_url(0)).await.unwrap();
    let mut s1_socket = as_session(&victim, &gw1, &s1).connect(&cell.ws_url(1)).await.unwrap();
    let mut s2_socket = as_session(&victim, &gw1, &s2).connect(&cell.ws_url(1)).await.unwrap();

    // Logout on gateway 0 closes that session's socket on gateway 1; its access token is
    // refused on both; the other sessions go on.
    let logout = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/logout", cell.gateway_url(0)))
        .json(&serde_json::json!({"refresh_token": s1.1}))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    assert!(end_of(&mut s1_socket).await.contains("4003"));
    for gateway in [0, 1] {
        let me = as_session(&victim, &cell.gateway_url(gateway), &s1);
        assert_eq!(me.request(reqwest::Method::GET, "/users/me").send().await.unwrap().status(), 401);
    }
    assert_eq!(handshake_status(&cell.ws_url(1), &s1.0).await, 401);
    still_works(&mut s0_socket, channel, "s0-after-logout").await.unwrap();
    still_works(&mut s2_socket, channel, "s2-after-logout").await.unwrap();

    // An `auth.refresh` cannot move a socket to another session.
    let frame = serde_json::json!({"type": "auth.refresh", "id": "r1", "payload": {"access_token": s2.0}});
    s0_socket.send_text(frame.to_string()).await.unwrap();
    assert_eq!(next_error(&mut s0_socket).await.1, ErrorCode::Unauthorized);

    // A password change revokes every session: both remaining sockets close; the answer is a
    // new session that works; the old password no longer does.
    let changed = victim
        .request(reqwest::Method::PUT, "/users/me/password")
        .json(&serde_json::json!({"current_password": "password-alice", "new_password": "a new password"}))
        .send()
        .await
        .unwrap();
    let changed = expect(changed, 200).await.unwrap();
    assert!(end_of(&mut s0_socket).await.contains("4003"));
    assert!(end_of(&mut s2_socket).await.contains("4003"));
    assert_eq!(login(&cell, 1, "alice", "password-alice").await, Err(401));
    let s3 = (
        changed["access_token"].as_str().unwrap().to_owned(),
        changed["refresh_token"].as_str().unwrap().to_owned(),
    );
    let s3_client = as_session(&victim, &gw1, &s3);
    let mut s3_socket = s3_client.connect(&cell.ws_url(1)).await.unwrap();
    still_works(&mut s3_socket, channel, "s3").await.unwrap();
    let wrong = s3_client
        .request(reqwest::Method::PUT, "/users/me/password")
        .json(&serde_json::json!({"current_password": "guess", "new_password": "another one"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401, "a wrong current password changes nothing");
    assert!(login(&cell, 0, "alice", "a new password").await.is_ok());

    // Deleting the account closes its last socket, refuses its logins and removes it from
    // its channels; bob, in the same channel, goes on.
    let deleted = s3_client
        .request(reqwest::Method::DELETE, "/users/me")
        .json(&serde_json::json!({"password": "a new password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert!(end_of(&mut s3_socket).await.contains("4003"));
    assert_eq!(login(&cell, 0, "alice", "a new password").await, Err(401));
    let members = expect(
        bob.request(reqwest::Method::GET, &format!("/channels/{channel}/members")).send().await.unwrap(),
        200,
    )
    .await
    .unwrap();
    assert!(!members.to_string().contains(&victim.user_id.to_string()), "{members}");
    let mut bob_socket = bob.connect(&cell.ws_url(1)).await.unwrap();
    still_works(&mut bob_socket, channel, "bob-after").await.unwrap();
}
