//! The cell end to end, through real servers and the real binaries, talking as clients do:
//! register → channel → send (pipelined) → ack → receive → history, across gateways and
//! workers, with the idempotency, authorization and stream-layout checks of the contract.

use futures::StreamExt;
use serde_json::json;
use shared::ids::{ChannelId, ChannelSeq};
use shared::local::client::{ChatClient, ChatSocket, expect};
use shared::local::{CellOptions, TestCell};
use shared::protocol::{AckStatus, ErrorCode, MessageView, ServerFrame};
use shared::subjects::Partition;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

async fn cell(gateways: usize, workers: usize) -> TestCell {
    TestCell::start(CellOptions { gateways, workers, ..Default::default() }).await.expect("the cell starts")
}

/// Two users (on gateways `ga` and `gb`) in one new group channel.
async fn two_members(cell: &TestCell, ga: usize, gb: usize) -> (ChatClient, ChatClient, ChannelId) {
    cell.two_members(ga, gb).await.expect("two members in a channel")
}

/// What a socket received until it had `acks` acks and `news` deliveries.
#[derive(Default)]
struct Received {
    acks: HashMap<String, shared::protocol::AckPayload>,
    news: Vec<MessageView>,
    errors: Vec<(Option<String>, ErrorCode)>,
}

async fn receive(socket: &mut ChatSocket, acks: usize, news: usize, cell: &TestCell) -> Received {
    let mut received = Received::default();
    let deadline = Instant::now() + WAIT;
    while received.acks.len() < acks || received.news.len() < news {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = socket.next_frame(left).await.expect("socket stays open");
        match frame {
            Some(ServerFrame::MessageAck { id, payload }) => {
                received.acks.insert(id.0, payload);
            }
            Some(ServerFrame::MessageNew { payload }) => received.news.push(payload),
            Some(ServerFrame::Error { id, payload }) => received.errors.push((id, payload.code)),
            Some(other) => panic!("unexpected {other:?}"),
            None => panic!(
                "timed out with {} acks, {} deliveries, errors {:?}\n{}",
                received.acks.len(),
                received.news.len(),
                received.errors,
                cell.logs_tail()
            ),
        }
    }
    received
}

fn seqs(messages: &[MessageView]) -> Vec<i64> {
    messages.iter().map(|m| m.seq.0).collect()
}

fn client_ids(messages: &[MessageView]) -> Vec<String> {
    messages.iter().map(|m| m.client_id.0.clone()).collect()
}

#[tokio::test]
async fn pipelined_sends_are_acked_then_delivered_in_order_and_kept_in_history() {
    let cell = cell(1, 1).await;
    let (alice, bob, channel) = two_members(&cell, 0, 0).await;
    let mut alice_ws = alice.connect(&cell.ws_url(0)).await.unwrap();
    let mut bob_ws = bob.connect(&cell.ws_url(0)).await.unwrap();

    let sent: Vec<String> = (0..200).map(|i| format!("m-{i:03}")).collect();
    let started = Instant::now();
    for id in &sent {
        alice_ws.send_message(channel, id, &format!("hello {id}")).await.unwrap();
    }
    let alice_got = receive(&mut alice_ws, 200, 200, &cell).await;
    let acked_in = started.elapsed();
    let bob_got = receive(&mut bob_ws, 0, 200, &cell).await;
    println!(
        "200 pipelined sends acked and delivered in {acked_in:?} ({:.0} msg/s)",
        200.0 / acked_in.as_secs_f64()
    );

    assert!(alice_got.errors.is_empty(), "errors: {:?}", alice_got.errors);
    for id in &sent {
        let ack = &alice_got.acks[id];
        assert_eq!(ack.status, AckStatus::Stored);
        assert_eq!(ack.channel_id, channel);
    }
    let expected_seqs: Vec<i64> = (1..=200).collect();
    assert_eq!(seqs(&bob_got.news), expected_seqs, "bob sees seq 1..200 in order");
    assert_eq!(client_ids(&bob_got.news), sent, "in the order alice sent them");
    assert_eq!(seqs(&alice_got.news), expected_seqs, "the sender's own socket gets them too");
    for message in &bob_got.news {
        assert_eq!(message.message_id, alice_got.acks[&message.client_id.0].message_id);
        assert_eq!(message.sender.id, alice.user_id);
        assert_eq!(message.sender.username, "alice");
        assert_eq!(message.content, format!("hello {}", message.client_id.0));
    }
    assert_eq!(bob_ws.last_seq[&channel], ChannelSeq(200));

    let history = bob.history_after(channel, 0).await.unwrap();
    assert_eq!(history, bob_got.news, "history returns the same 200 messages in the same order");

    // Rows inserted by one transaction share their xmin: fewer transactions than messages
    // means the worker persisted batches, not rows one by one.
    let db = sqlx::PgPool::connect(&cell.database_url()).await.unwrap();
    let (rows, transactions): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT xmin::text) FROM messages WHERE channel_id = $1")
            .bind(channel)
            .fetch_one(&db)
            .await
            .unwrap();
    println!("200 messages persisted in {transactions} transactions");
    assert_eq!(rows, 200);
    assert!(transactions < rows, "batches of more than one message per transaction");

    let listed =
        expect(alice.request(reqwest::Method::GET, "/channels").send().await.unwrap(), 200).await.unwrap();
    assert_eq!(listed["channels"][0]["last_seq"], 200);
}

/// The answers a socket got for `id` until it had `count` of them: the message id of each ack,
/// or the code and words of each error (deliveries and other frames skipped).
async fn answers(
    socket: &mut ChatSocket,
    id: &str,
    count: usize,
    cell: &TestCell,
) -> Vec<Result<shared::ids::MessageId, (ErrorCode, String)>> {
    let mut answers = Vec::new();
    let deadline = Instant::now() + WAIT;
    while answers.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        match socket.next_frame(left).await.expect("socket stays open") {
            Some(ServerFrame::MessageAck { id: acked, payload }) if acked.0 == id => {
                answers.push(Ok(payload.message_id))
            }
            Some(ServerFrame::Error { id: Some(failed), payload }) if failed == id => {
                answers.push(Err((payload.code, payload.message)))
            }
            Some(_) => {}
            None => {
                panic!("{} answers of {count} for {id}: {answers:?}\n{}", answers.len(), cell.logs_tail())
            }
        }
    }
    answers
}

/// Resends of an id before its first send is acknowledged (a double click, a reconnect on a
/// second socket) wait for the first's outcome: each is acked with the first's message id,
/// none is told the send failed (the stream's "in process" refusal never reaches a client),
/// and the message is stored and delivered once.
#[tokio::test]
async fn resends_of_an_id_in_flight_are_all_acked_as_the_first() {
    let cell = cell(1, 1).await;
    let (alice, bob, channel) = two_members(&cell, 0, 0).await;
    let ws = cell.ws_url(0);
    let (mut one, mut two) = (alice.connect(&ws).await.unwrap(), alice.connect(&ws).await.unwrap());
    let mut bob_ws = bob.connect(&ws).await.unwrap();

    for _ in 0..4 {
        one.send_message(channel, "double-click", "hello").await.unwrap();
    }
    let first = answers(&mut one, "double-click", 4, &cell).await;
    for _ in 0..3 {
        one.send_message(channel, "two-sockets", "again").await.unwrap();
        two.send_message(channel, "two-sockets", "again").await.unwrap();
    }
    let mut second = answers(&mut one, "two-sockets", 3, &cell).await;
    second.extend(answers(&mut two, "two-sockets", 3, &cell).await);
    for (answers, what) in [(&first, "one socket"), (&second, "two sockets")] {
        let ids: Vec<_> = answers.iter().map(|a| a.as_ref().ok().copied()).collect();
        assert!(
            ids.iter().all(|id| id.is_some() && *id == ids[0]),
            "{what}: every answer the first's ack: {answers:?}"
        );
    }

    // A later send, whose delivery shows that nothing else was stored before it.
    one.send_message(channel, "after", "later").await.unwrap();
    let got = receive(&mut bob_ws, 0, 3, &cell).await;
    assert_eq!(client_ids(&got.news), ["double-click", "two-sockets", "after"], "each stored once");
    assert_eq!(seqs(&got.news), [1, 2, 3]);
    assert_eq!(got.news[0].message_id, first[0].clone().unwrap());
    assert_eq!(got.news[1].message_id, second[0].clone().unwrap());
}

#[tokio::test]
async fn a_resent_client_id_is_stored_once_even_past_jetstream_dedup() {
    let cell = cell(1, 1).await;
    let (alice, bob, channel) = two_members(&cell, 0, 0).await;
    let mut alice_ws = alice.connect(&cell.ws_url(0)).await.unwrap();
    let mut bob_ws = bob.connect(&cell.ws_url(0)).await.unwrap();

    alice_ws.send_message(channel, "same-id", "first").await.unwrap();
    let first = receive(&mut alice_ws, 1, 1, &cell).await;
    alice_ws.send_message(channel, "same-id", "first").await.unwrap();
    let again = receive(&mut alice_ws, 1, 0, &cell).await;
    assert_eq!(again.acks["same-id"].status, AckStatus::Stored, "a resend is acked again");
    assert_eq!(
        again.acks["same-id"].message_id, first.acks["same-id"].message_id,
        "with the same message id"
    );

    // Beyond JetStream's duplicate window the database's unique key still holds: publish the
    // same client message straight into the stream under another Nats-Msg-Id.
    let history = bob.history_after(channel, 0).await.unwrap();
    let stored = &history[0];
    let nats = async_nats::connect(cell.nats_urls()).await.unwrap();
    let js = async_nats::jetstream::new(nats);
    let replay = shared::events::StreamMessage {
        message_id: shared::ids::MessageId(stored.message_id.0 + 1),
        channel_id: channel,
        sender: stored.sender.clone(),
        client_msg_id: stored.client_id.clone(),
        content: "first".into(),
        content_type: shared::protocol::ContentType::Text,
        reply_to: None,
        created_at: stored.created_at,
        mentions: Vec::new(),
        mentions_channel: false,
        attachments: Vec::new(),
    };
    let subject = shared::subjects::Subjects::new("chat").publish(channel, cell.options.partitions);
    js.publish(subject, serde_json::to_vec(&replay).unwrap().into()).await.unwrap().await.unwrap();

    // A later message proves the worker got past the replay.
    alice_ws.send_message(channel, "after", "second").await.unwrap();
    let got = receive(&mut bob_ws, 0, 2, &cell).await;
    assert_eq!(client_ids(&got.news), ["same-id", "after"]);
    assert_eq!(seqs(&got.news), [1, 2], "the replay took no seq");
    let history = bob.history_after(channel, 0).await.unwrap();
    assert_eq!(client_ids(&history), ["same-id", "after"]);
    assert_eq!(history[0].message_id, stored.message_id, "the first stored id stays");
}

#[tokio::test]
async fn bad_frames_and_non_members_get_error_frames_and_the_socket_stays_open() {
    let cell = cell(1, 1).await;
    let (alice, _bob, channel) = two_members(&cell, 0, 0).await;
    let carol = ChatClient::register(&cell.gateway_url(0), "carol").await.unwrap();
    let mut carol_ws = carol.connect(&cell.ws_url(0)).await.unwrap();

    carol_ws.send_message(channel, "c1", "let me in").await.unwrap();
    carol_ws.send_text("{not json".into()).await.unwrap();
    carol_ws.send_text(json!({"type": "nope", "id": "u1", "payload": {}}).to_string()).await.unwrap();
    let too_long = json!({"type": "message.send", "id": "c2",
        "payload": {"channel_id": channel, "content": "x".repeat(4001)}});
    carol_ws.send_text(too_long.to_string()).await.unwrap();
    let mut codes = Vec::new();
    while codes.len() < 4 {
        match carol_ws.next_frame(WAIT).await.unwrap() {
            Some(ServerFrame::Error { id, payload }) => codes.push((id, payload.code)),
            other => panic!("expected an error frame, got {other:?}"),
        }
    }
    assert_eq!(
        codes,
        [
            (Some("c1".into()), ErrorCode::NotAMember),
            (None, ErrorCode::MalformedFrame),
            (Some("u1".into()), ErrorCode::UnknownType),
            (Some("c2".into()), ErrorCode::InvalidPayload),
        ]
    );

    // A message above the size limit closes that socket with 1009; others are not affected.
    let mut oversize_ws = carol.connect(&cell.ws_url(0)).await.unwrap();
    oversize_ws.send_text("x".repeat(70 * 1024)).await.unwrap();
    match oversize_ws.next_frame(WAIT).await {
        Err(shared::local::client::ClientError::Status { body, .. }) => {
            assert!(body.contains("1009"), "{body}")
        }
        other => panic!("expected close 1009, got {other:?}"),
    }

    // Still open: once alice adds carol, carol's send on the same socket goes through.
    let add = json!({"user_id": carol.user_id});
    let path = format!("/channels/{channel}/members");
    expect(alice.request(reqwest::Method::POST, &path).json(&add).send().await.unwrap(), 201).await.unwrap();
    // Membership changes reach the gateway as events; until then the send is refused.
    let deadline = Instant::now() + WAIT;
    loop {
        carol_ws.send_message(channel, "c3", "hi all").await.unwrap();
        match carol_ws.next_frame(WAIT).await.unwrap() {
            Some(ServerFrame::MessageAck { id, .. }) if id.0 == "c3" => break,
            Some(ServerFrame::Error { payload, .. }) if payload.code == ErrorCode::NotAMember => {
                assert!(Instant::now() < deadline, "carol's membership never reached her socket");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("expected an ack or not_a_member, got {other:?}\n{}", cell.logs_tail()),
        }
    }
}

#[tokio::test]
async fn the_handshake_needs_a_valid_token_and_browsers_can_send_it_as_a_subprotocol() {
    use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};
    let cell = cell(1, 1).await;
    let alice = ChatClient::register(&cell.gateway_url(0), "alice").await.unwrap();

    let status_of = |result: Result<_, tungstenite::Error>| match result {
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => 101,
    };
    let mut bad = cell.ws_url(0).into_client_request().unwrap();
    bad.headers_mut().insert("authorization", "Bearer not.a.token".parse().unwrap());
    assert_eq!(status_of(tokio_tungstenite::connect_async(bad).await), 401);
    let none = cell.ws_url(0).into_client_request().unwrap();
    assert_eq!(status_of(tokio_tungstenite::connect_async(none).await), 401);
    let mut forged = alice.clone();
    forged.access_token = format!("{}x", alice.access_token);
    assert!(forged.connect(&cell.ws_url(0)).await.is_err());

    // A plain GET with a valid token is not an upgrade: a JSON error, not a socket.
    let plain = reqwest::Client::new()
        .get(format!("{}/ws", cell.gateway_url(0)))
        .bearer_auth(&alice.access_token)
        .send()
        .await
        .unwrap();
    assert!(plain.status().is_client_error());
    let body: serde_json::Value = plain.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_request");

    let mut browser = cell.ws_url(0).into_client_request().unwrap();
    let protocols = format!("chat.v1, bearer.{}", alice.access_token);
    browser.headers_mut().insert("sec-websocket-protocol", protocols.parse().unwrap());
    let (_, response) = tokio_tungstenite::connect_async(browser).await.expect("browser handshake");
    assert_eq!(response.headers()["sec-websocket-protocol"], "chat.v1");
}

#[tokio::test]
async fn with_two_gateways_and_two_workers_a_message_crosses_gateways_in_order() {
    let cell = cell(2, 2).await;
    let (alice, bob, channel) = two_members(&cell, 0, 1).await;
    // More channels, likely on other partitions, so both workers may have work.
    let mut channels = vec![channel];
    while channels.len() < 4 {
        channels.push(alice.create_channel("group", "more", &[bob.user_id]).await.unwrap());
    }
    let mut alice_ws = alice.connect(&cell.ws_url(0)).await.unwrap();
    let mut bob_ws = bob.connect(&cell.ws_url(1)).await.unwrap();
    let sent: Vec<(ChannelId, String)> =
        (0..100).map(|i| (channels[i % channels.len()], format!("x-{i:03}"))).collect();
    for (channel, id) in &sent {
        alice_ws.send_message(*channel, id, id).await.unwrap();
    }
    let alice_got = receive(&mut alice_ws, 100, 100, &cell).await;
    assert!(alice_got.errors.is_empty(), "{:?}", alice_got.errors);
    let bob_got = receive(&mut bob_ws, 0, 100, &cell).await;
    for channel in &channels {
        let mine: Vec<&MessageView> = bob_got.news.iter().filter(|m| m.channel_id == *channel).collect();
        let expected: Vec<String> =
            sent.iter().filter(|(c, _)| c == channel).map(|(_, id)| id.clone()).collect();
        assert_eq!(mine.iter().map(|m| m.client_id.0.clone()).collect::<Vec<_>>(), expected);
        assert_eq!(
            mine.iter().map(|m| m.seq.0).collect::<Vec<_>>(),
            (1..=expected.len() as i64).collect::<Vec<_>>()
        );
    }
}

#[tokio::test]
async fn the_stream_is_replicated_on_three_nodes_and_partitioned_by_channel() {
    let cell = cell(1, 1).await;
    let (alice, _bob, channel) = two_members(&cell, 0, 0).await;
    let mut alice_ws = alice.connect(&cell.ws_url(0)).await.unwrap();
    alice_ws.send_message(channel, "p1", "where do I go").await.unwrap();
    receive(&mut alice_ws, 1, 1, &cell).await;

    let nats = async_nats::connect(cell.nats_urls()).await.unwrap();
    let js = async_nats::jetstream::new(nats);
    let mut stream = js.get_stream("CHAT_MESSAGES").await.unwrap();
    let info = stream.info().await.unwrap().clone();
    assert_eq!(info.config.num_replicas, 3);
    let cluster = info.cluster.expect("clustered stream");
    let mut peers: Vec<String> = cluster.replicas.iter().map(|p| p.name.clone()).collect();
    peers.push(cluster.leader.expect("a leader"));
    peers.sort();
    assert_eq!(peers, ["n1", "n2", "n3"], "one replica on each node");

    let consumers: Vec<_> = stream.consumers().map(|c| c.unwrap()).collect().await;
    assert_eq!(consumers.len(), cell.options.partitions as usize, "one consumer per partition");
    for consumer in &consumers {
        let p: u16 = consumer.name.trim_start_matches("persist-p").parse().unwrap();
        assert_eq!(consumer.config.filter_subject, format!("chat.msg.{p}.*"));
        assert_eq!(consumer.config.num_replicas, 3);
    }
    let partition = Partition::of(channel, cell.options.partitions);
    let subject = format!("chat.msg.{}.{channel}", partition.0);
    let stored = stream.info_with_subjects(subject.clone()).await.unwrap().next().await;
    assert_eq!(stored.map(|r| r.unwrap()), Some((subject, 1)), "the message sits on its partition's subject");
}

#[tokio::test]
async fn a_full_publish_window_waits_and_still_acks_everything() {
    // 8 publishes in flight at most, far below what one pipelined client sends.
    let options = CellOptions { gateway_config: "publish_max_inflight = 8".into(), ..Default::default() };
    let cell = TestCell::start(options).await.expect("the cell starts");
    let (alice, _bob, channel) = two_members(&cell, 0, 0).await;
    let mut alice_ws = alice.connect(&cell.ws_url(0)).await.unwrap();
    for i in 0..200 {
        alice_ws.send_message(channel, &format!("w-{i}"), "through a narrow window").await.unwrap();
    }
    let got = receive(&mut alice_ws, 200, 200, &cell).await;
    assert!(got.errors.is_empty(), "{:?}", got.errors);
    assert_eq!(seqs(&got.news), (1..=200).collect::<Vec<_>>());
}
