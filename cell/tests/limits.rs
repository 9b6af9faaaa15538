//! Limits shared by every gateway of a cell (Redis sliding windows): a user's sends and REST
//! requests count the same whichever gateway they hit; past a limit the answer is exact
//! (`rate_limited` with `retry_after_ms` for that frame only, 429 with `Retry-After`, 429
//! before the upgrade for one socket too many); a client that keeps hammering is closed with
//! 4029; a well-behaved client on the same gateway never notices; a socket reads on while its
//! sends' checks wait for Redis, and publishes them in its order; and with Redis gone, the
//! limits fail open and chat goes on.

use shared::ids::ChannelId;
use shared::local::cell::{Backend, Servers, metric_value};
use shared::local::client::{ChatSocket, ClientError};
use shared::local::{CellOptions, TestCell};
use shared::protocol::{ErrorCode, ServerFrame};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite;

const WAIT: Duration = Duration::from_secs(30);

/// A cell of two gateways with small limits and windows long enough that no test races them.
async fn limited_cell(limits: &str) -> TestCell {
    let options = CellOptions {
        gateways: 2,
        backend: Backend::Local,
        extra_config: format!("[limits]\n{limits}"),
        ..Default::default()
    };
    TestCell::start(options).await.expect("cell starts")
}

#[derive(Debug, Default, PartialEq)]
struct Answers {
    acked: Vec<String>,
    limited: Vec<(String, u64)>,
    closed: Option<String>,
    /// `seq` of the deliveries that came meanwhile.
    delivered: Vec<i64>,
}

/// Sends each id and collects the answer to every one (or the close that ended the socket).
async fn send_all(socket: &mut ChatSocket, channel: ChannelId, ids: &[&str]) -> Answers {
    for id in ids {
        socket.send_message(channel, id, "hello").await.unwrap();
    }
    let mut answers = Answers::default();
    let deadline = Instant::now() + WAIT;
    while answers.acked.len() + answers.limited.len() < ids.len() {
        match socket.next_frame(deadline.saturating_duration_since(Instant::now())).await {
            Ok(Some(ServerFrame::MessageAck { id, .. })) => answers.acked.push(id.0),
            Ok(Some(ServerFrame::Error { id, payload })) => {
                assert_eq!(payload.code, ErrorCode::RateLimited, "{payload:?}");
                assert!(payload.retryable);
                answers.limited.push((id.unwrap(), payload.retry_after_ms.unwrap()));
            }
            Ok(Some(ServerFrame::MessageNew { payload })) => answers.delivered.push(payload.seq.0),
            Ok(Some(_)) => {}
            Ok(None) => panic!("no answer: {answers:?}"),
            Err(error) => {
                answers.closed = Some(error.to_string());
                break;
            }
        }
    }
    // Acks of pipelined sends may come in any order.
    answers.acked.sort();
    answers
}

#[tokio::test]
async fn sends_are_limited_per_user_across_gateways_and_hammering_closes_with_4029() {
    let cell =
        limited_cell("sends_per_user = { count = 5, window_ms = 60000 }\nstrikes_before_close = 3\n").await;
    let (alice, bob, channel) = cell.two_members(0, 1).await.unwrap();
    let mut alice_0 = alice.connect(&cell.ws_url(0)).await.unwrap();
    let mut alice_1 = alice.via(&cell.gateway_url(1)).connect(&cell.ws_url(1)).await.unwrap();
    let mut bob_1 = bob.connect(&cell.ws_url(1)).await.unwrap();

    let first = send_all(&mut alice_0, channel, &["a0", "a1", "a2"]).await;
    assert_eq!(first.acked, ["a0", "a1", "a2"]);
    // Two more fit in alice's window, counted together over both gateways; the third does not.
    let second = send_all(&mut alice_1, channel, &["b0", "b1", "b2"]).await;
    assert_eq!(second.acked, ["b0", "b1"]);
    assert_eq!(second.limited.len(), 1);
    let (id, retry_after_ms) = &second.limited[0];
    assert_eq!(id, "b2");
    assert!((1..=60_000).contains(retry_after_ms), "{retry_after_ms}");

    // Bob, on the same gateway, is not slowed: his sends go through and he sees everything.
    let bobs = send_all(&mut bob_1, channel, &["c0", "c1", "c2"]).await;
    assert_eq!(bobs.acked, ["c0", "c1", "c2"]);

    // Alice keeps hammering after being told (past the grace for sends already in flight):
    // three more refusals are three strikes in a row, and the socket is closed.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let hammer = send_all(&mut alice_1, channel, &["b3", "b4", "b5"]).await;
    assert_eq!(hammer.limited.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), ["b3", "b4", "b5"]);
    let closed = match hammer.closed {
        Some(closed) => closed,
        None => format!("{:?}", alice_1.next_frame(WAIT).await),
    };
    assert!(closed.contains("4029"), "closed with 4029, got {closed}");

    // Bob still receives: alice's five stored messages and his own three, in order.
    let mut seen = bobs.delivered;
    while seen.len() < 8 {
        match bob_1.next_frame(WAIT).await.unwrap() {
            Some(ServerFrame::MessageNew { payload }) => seen.push(payload.seq.0),
            Some(_) => {}
            None => panic!("bob got {seen:?}"),
        }
    }
    assert_eq!(seen, (1..=8).collect::<Vec<_>>());
    // The gateway counts a close once its side of the socket is done, a moment after the
    // client has read the close frame.
    let closed_4029 = "chat_gateway_connections_closed_total{code=\"4029\"} 1";
    shared::local::eventually(WAIT, "the 4029 close counted", || async {
        cell.metrics(&cell.gateways[1]).await.contains(closed_4029)
    })
    .await;
    let metrics = cell.metrics(&cell.gateways[1]).await;
    assert!(metrics.contains("chat_gateway_rate_limited_total{limit=\"sends_per_user\"} 4"), "{metrics}");
    assert!(metrics.contains("chat_gateway_connections_closed_total{code=\"4029\"} 1"), "{metrics}");
}

#[tokio::test]
async fn rest_requests_and_sockets_are_limited_per_user_across_gateways() {
    let cell = limited_cell("rest_per_user = { count = 4, window_ms = 60000 }\nsockets_per_user = 2\n").await;
    let (carol, dave, _) = cell.two_members(0, 1).await.unwrap();
    let carol_1 = carol.via(&cell.gateway_url(1));
    let me =
        |client: &shared::local::client::ChatClient| client.request(reqwest::Method::GET, "/users/me").send();
    // Creating the channel was carol's first request; three more fit, over both gateways.
    for client in [&carol, &carol_1, &carol_1] {
        assert_eq!(me(client).await.unwrap().status(), 200);
    }
    let refused = me(&carol_1).await.unwrap();
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(me(&dave).await.unwrap().status(), 200, "another user is not limited");

    // Two sockets, on either gateway; the third is refused before the upgrade.
    let first = carol.connect(&cell.ws_url(0)).await.unwrap();
    let _second = carol_1.connect(&cell.ws_url(1)).await.unwrap();
    match carol.connect(&cell.ws_url(0)).await {
        Err(ClientError::Ws(tungstenite::Error::Http(response))) => assert_eq!(response.status(), 429),
        other => panic!("a third socket: {:?}", other.map(|_| "connected")),
    }
    // Closing one gives its place back.
    first.close().await;
    let deadline = Instant::now() + WAIT;
    while carol.connect(&cell.ws_url(0)).await.is_err() {
        assert!(Instant::now() < deadline, "the closed socket's place came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn without_redis_the_limits_fail_open_and_chat_goes_on() {
    let mut cell = limited_cell("sends_per_user = { count = 2, window_ms = 60000 }\n").await;
    let (alice, _bob, channel) = cell.two_members(0, 0).await.unwrap();
    let mut socket = alice.connect(&cell.ws_url(0)).await.unwrap();
    let Servers::Local { redis, .. } = &mut cell.servers else { unreachable!("local backend") };
    redis.process.as_mut().unwrap().kill9();

    // Past the limit of 2, yet all are stored: the limiter cannot answer and fails open.
    let answers = send_all(&mut socket, channel, &["r0", "r1", "r2", "r3"]).await;
    assert_eq!(answers.acked, ["r0", "r1", "r2", "r3"]);
    let admin = cell.admin_url(&cell.gateways[0]);
    let metrics = cell.metrics(&cell.gateways[0]).await;
    let errors = metric_value(&metrics, "chat_gateway_rate_limiter_errors_total").unwrap();
    assert!(errors >= 4.0, "every send's limiter call failed open: {errors}");
    // Still ready (Redis is reported, not required).
    let ready = reqwest::get(format!("{admin}/ready")).await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["redis"], false);
}

#[tokio::test]
async fn a_socket_reads_on_while_its_sends_wait_for_the_limiter_and_publishes_them_in_its_order() {
    // A limiter timeout far past the test's waits: a stopped Redis is waited for, not failed
    // open.
    let cell = limited_cell("redis_timeout = 600000\n").await;
    let (alice, _bob, channel) = cell.two_members(0, 0).await.unwrap();
    let mut socket = alice.connect(&cell.ws_url(0)).await.unwrap();
    let Servers::Local { redis, .. } = &cell.servers else { unreachable!("local backend") };
    let redis = redis.process.as_ref().unwrap();
    redis.signal(nix::sys::signal::Signal::SIGSTOP);

    for (id, content) in [("w0", "first"), ("w1", "second"), ("w2", "third")] {
        socket.send_message(channel, id, content).await.unwrap();
    }
    // Read after the sends, answered while their rate checks wait for Redis.
    let refresh = r#"{"type":"auth.refresh","id":"r","payload":{"access_token":"not-a-token"}}"#;
    socket.send_text(refresh.to_owned()).await.unwrap();
    loop {
        match socket.next_frame(WAIT).await.unwrap() {
            Some(ServerFrame::Error { id: Some(id), payload }) if id == "r" => {
                assert_eq!(payload.code, ErrorCode::Unauthorized);
                break;
            }
            Some(ServerFrame::MessageAck { id, .. }) => panic!("{id:?} acked while Redis is stopped"),
            Some(_) => {}
            None => panic!("the refresh was not answered while the sends waited"),
        }
    }
    redis.signal(nix::sys::signal::Signal::SIGCONT);

    // Then each is published, in the order sent.
    let (mut acked, mut delivered) = (Vec::new(), Vec::new());
    while acked.len() < 3 || delivered.len() < 3 {
        match socket.next_frame(WAIT).await.unwrap() {
            Some(ServerFrame::MessageAck { id, .. }) => acked.push(id.0),
            Some(ServerFrame::MessageNew { payload }) => delivered.push((payload.seq.0, payload.content)),
            Some(ServerFrame::Error { payload, .. }) => panic!("{payload:?}"),
            Some(_) => {}
            None => panic!("not all answered: acked {acked:?}, delivered {delivered:?}"),
        }
    }
    acked.sort();
    assert_eq!(acked, ["w0", "w1", "w2"]);
    delivered.sort();
    let contents: Vec<&str> = delivered.iter().map(|(_, c)| c.as_str()).collect();
    assert_eq!(contents, ["first", "second", "third"], "stored in the order sent: {delivered:?}");
}

/// Opens a WebSocket as `client`, with an `Origin` header when given.
async fn connect_from(
    client: &shared::local::client::ChatClient,
    url: &str,
    origin: Option<&str>,
) -> Result<(), tungstenite::Error> {
    use tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request()?;
    request.headers_mut().insert("authorization", format!("Bearer {}", client.access_token).parse().unwrap());
    if let Some(origin) = origin {
        request.headers_mut().insert("origin", origin.parse().unwrap());
    }
    tokio_tungstenite::connect_async(request).await.map(|_| ())
}

fn status_of(result: Result<(), tungstenite::Error>) -> u16 {
    match result {
        Ok(()) => 101,
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("{other}"),
    }
}

/// The default, with `allowed_origins` unset: a page of another site may neither open a socket
/// (403) nor get a CORS answer; a page of the gateway's own origin and a client without
/// `Origin` may open one. With `["*"]` every origin may.
#[tokio::test]
async fn by_default_only_the_gateways_own_origin_may_open_a_socket() {
    let cell = TestCell::start(CellOptions { backend: Backend::Local, ..Default::default() }).await.unwrap();
    let (alice, _, _) = cell.two_members(0, 0).await.unwrap();
    let ws = cell.ws_url(0);
    let own = cell.gateway_url(0);
    assert_eq!(status_of(connect_from(&alice, &ws, Some("http://evil.test")).await), 403);
    assert_eq!(status_of(connect_from(&alice, &ws, Some(&own)).await), 101, "{own}");
    assert_eq!(status_of(connect_from(&alice, &ws, None).await), 101);
    let preflight = |origin: &'static str| {
        reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, format!("{own}/api/v1/users/me"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .send()
    };
    let answer = preflight("http://evil.test").await.unwrap();
    assert!(answer.headers().get("access-control-allow-origin").is_none(), "{:?}", answer.headers());

    let options = CellOptions {
        backend: Backend::Local,
        gateway_config: "allowed_origins = [\"*\"]\n".into(),
        ..Default::default()
    };
    let open = TestCell::start(options).await.unwrap();
    let (alice, _, _) = open.two_members(0, 0).await.unwrap();
    assert_eq!(status_of(connect_from(&alice, &open.ws_url(0), Some("http://evil.test")).await), 101);
    assert!(open.gateway_log(0).contains("any origin"), "the start log says every origin is accepted");
    assert!(cell.gateway_log(0).contains("the gateway's own origin"), "and which ones by default");
}

#[tokio::test]
async fn per_ip_auth_limit_origin_allowlist_connection_cap_headers_and_dead_peers() {
    let options = CellOptions {
        backend: Backend::Local,
        gateway_config: "ping_interval = 1\nidle_timeout = 3\nmax_connections = 3\n\
                         allowed_origins = [\"https://chat.example\"]\n"
            .into(),
        extra_config: "[limits]\nauth_per_ip_burst = 3\nauth_per_ip_refill_ms = 60000\n".into(),
        ..Default::default()
    };
    let cell = TestCell::start(options).await.expect("cell starts");
    let base = cell.gateway_url(0);
    // Two registrations and a login use the IP's burst of 3; the next is refused.
    let (alice, bob, _) = cell.two_members(0, 0).await.unwrap();
    let http = reqwest::Client::new();
    let login = serde_json::json!({"username": "alice", "password": "password-alice"});
    let ok = http.post(format!("{base}/api/v1/auth/login")).json(&login).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let refused = http.post(format!("{base}/api/v1/auth/login")).json(&login).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // Authenticated routes are not behind the per-IP limit; every answer has the headers.
    let me = alice.request(reqwest::Method::GET, "/users/me").send().await.unwrap();
    assert_eq!(me.status(), 200);
    assert_eq!(me.headers()["x-content-type-options"], "nosniff");
    assert_eq!(me.headers()["content-security-policy"], "frame-ancestors 'none'");
    assert!(me.headers().contains_key("strict-transport-security"));

    // Origins: another site's page may not open a socket; the allowed one and non-browser
    // clients (no Origin) may.
    let ws = cell.ws_url(0);
    assert_eq!(status_of(connect_from(&alice, &ws, Some("https://evil.example")).await), 403);
    // Three sockets fill the gateway; the fourth gets 503 before the upgrade.
    let mut silent = alice.connect(&ws).await.unwrap();
    let mut bob_ws = bob.connect(&ws).await.unwrap();
    let third = tokio::spawn({
        let (alice, ws) = (alice.clone(), ws.clone());
        async move { alice.connect(&ws).await.map(|s| s.close()) }
    });
    let third = third.await.unwrap().unwrap();
    assert_eq!(status_of(connect_from(&bob, &ws, Some("https://chat.example")).await), 503);
    third.await;

    // A peer that stops answering (no pong) is closed with 4000 after idle_timeout (later if
    // frames, such as a presence update, were written to it meanwhile); bob, who reads (and so
    // answers pings), stays. Silent is read only once the gateway closed it: reading answers
    // pings.
    let reading = tokio_util::sync::CancellationToken::new();
    let bob_reader = tokio::spawn({
        let reading = reading.clone();
        async move {
            while !reading.is_cancelled() {
                bob_ws.next_frame(Duration::from_millis(200)).await?;
            }
            Ok::<_, ClientError>(bob_ws)
        }
    });
    let deadline = Instant::now() + WAIT;
    while !cell
        .metrics(&cell.gateways[0])
        .await
        .contains("chat_gateway_connections_closed_total{code=\"4000\"}")
    {
        assert!(Instant::now() < deadline, "the silent socket was closed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let silent_end = loop {
        match silent.next_frame(WAIT).await {
            Ok(Some(_)) => continue,
            Ok(None) => break "still open".to_owned(),
            Err(error) => break error.to_string(),
        }
    };
    assert_ne!(silent_end, "still open");
    // Its client may see the close frame or, having queued pongs to a closed socket, a broken
    // pipe first: the gateway's count tells the code.
    let metrics = cell.metrics(&cell.gateways[0]).await;
    assert!(metrics.contains("chat_gateway_connections_closed_total{code=\"4000\"} 1"), "{metrics}");
    reading.cancel();
    let bob_ws = bob_reader.await.unwrap();
    assert!(bob_ws.is_ok(), "bob's socket stayed open: {:?}", bob_ws.err());
}

#[tokio::test]
async fn a_socket_is_closed_with_4001_when_its_token_expires_unless_refreshed() {
    // Tokens live 6 s: alice's first expires at about t0 + 6 s, the one she gets at t0 + 4 s
    // at about t0 + 10 s; the checks run at t0 + 7.5 s.
    let options = CellOptions { gateway_config: "access_token_ttl = 6\n".into(), ..Default::default() };
    let cell = TestCell::start(options).await.expect("cell starts");
    let (alice, bob, channel) = cell.two_members(0, 0).await.unwrap();
    let t0 = tokio::time::Instant::now();
    let mut lapsing = alice.connect(&cell.ws_url(0)).await.unwrap();
    let mut refreshed = alice.connect(&cell.ws_url(0)).await.unwrap();

    // Another user's token is refused; a fresh one of alice's (from the REST refresh) is taken.
    let refresh = serde_json::json!({"type": "auth.refresh", "id": "r0", "payload": {"access_token": bob.access_token}});
    refreshed.send_text(refresh.to_string()).await.unwrap();
    match refreshed.next_frame(WAIT).await.unwrap() {
        Some(ServerFrame::Error { id, payload }) => {
            assert_eq!((id.as_deref(), payload.code), (Some("r0"), ErrorCode::Unauthorized));
        }
        other => panic!("{other:?}"),
    }
    tokio::time::sleep_until(t0 + Duration::from_secs(4)).await;
    let body = serde_json::json!({"refresh_token": alice.refresh_token});
    let session = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/refresh", cell.gateway_url(0)))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(session.status(), 200);
    let session: serde_json::Value = session.json().await.unwrap();
    let token = session["access_token"].as_str().unwrap();
    let refresh = serde_json::json!({"type": "auth.refresh", "id": "r1", "payload": {"access_token": token}});
    refreshed.send_text(refresh.to_string()).await.unwrap();
    match refreshed.next_frame(WAIT).await.unwrap() {
        Some(ServerFrame::AuthRefreshed { id, payload }) => {
            assert_eq!(id.as_deref(), Some("r1"));
            assert!(payload.expires_at > chrono::Utc::now(), "{payload:?}");
        }
        other => panic!("{other:?}"),
    }

    // Past the first token's expiry the other socket is closed; the refreshed one still sends.
    tokio::time::sleep_until(t0 + Duration::from_millis(7500)).await;
    let end = loop {
        match lapsing.next_frame(WAIT).await {
            Ok(Some(_)) => continue,
            Ok(None) => break "still open".to_owned(),
            Err(error) => break error.to_string(),
        }
    };
    assert!(end.contains("4001"), "{end}");
    let answers = send_all(&mut refreshed, channel, &["after-expiry"]).await;
    assert_eq!(answers.acked, ["after-expiry"]);
}
