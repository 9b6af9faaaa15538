//! Poison messages never block a partition: a message in the stream that does not decode, and
//! one that decodes but that Postgres refuses (a NUL in its text, which a gateway of another
//! version might let through), go to the dead-letter stream with their reason, while the
//! messages around them — in the same partition and channel — are stored with contiguous
//! `seq` and delivered.

use shared::events::StreamMessage;
use shared::ids::{ChannelId, ClientMsgId};
use shared::local::client::ChatSocket;
use shared::local::{CellOptions, TestCell, eventually};
use shared::protocol::{ContentType, SenderView, ServerFrame};
use shared::snowflake::SnowflakeGenerator;
use shared::subjects::Subjects;
use std::collections::HashSet;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn poison_messages_are_dead_lettered_and_the_partition_moves_on() {
    // One partition: every message of the test goes through the same consumer and worker.
    let cell =
        TestCell::start(CellOptions { partitions: 1, ..Default::default() }).await.expect("cell starts");
    let (alice, _bob, channel) = cell.two_members(0, 0).await.unwrap();
    let mut socket = alice.connect(&cell.ws_url(0)).await.unwrap();
    send_and_wait(&mut socket, channel, &["before-1", "before-2"], &cell).await;

    let nats = async_nats::connect(cell.nats_urls()).await.unwrap();
    let js = async_nats::jetstream::new(nats.clone());
    let subject = Subjects::new("chat").publish(channel, 1);
    let sender = SenderView { id: alice.user_id, username: alice.username.clone(), avatar_url: None };
    let ids = SnowflakeGenerator::new(1000).unwrap();
    let message = |client_id: &str, content: &str| StreamMessage {
        message_id: ids.next_id(),
        channel_id: channel,
        sender: sender.clone(),
        client_msg_id: ClientMsgId(client_id.into()),
        content: content.into(),
        content_type: ContentType::Text,
        reply_to: None,
        created_at: chrono::Utc::now(),
        mentions: Vec::new(),
        mentions_channel: false,
        attachments: Vec::new(),
    };
    let poison = serde_json::to_vec(&message("poison", "nul \u{0} inside")).unwrap();
    let good = serde_json::to_vec(&message("direct-good", "fine")).unwrap();
    // All three published before any PubAck is awaited, so they likely share a batch.
    let acks = futures::future::join_all([
        js.publish(subject.clone(), b"not json at all".as_slice().into()).await.unwrap().into_future(),
        js.publish(subject.clone(), poison.clone().into()).await.unwrap().into_future(),
        js.publish(subject.clone(), good.into()).await.unwrap().into_future(),
    ])
    .await;
    assert!(acks.iter().all(Result::is_ok), "{acks:?}");
    send_and_wait(&mut socket, channel, &["after-1", "after-2"], &cell).await;

    // Postgres: everything but the two poison messages, seq contiguous from 1, in stream order.
    let db = sqlx::PgPool::connect(&cell.database_url()).await.unwrap();
    let stored: Vec<(i64, String)> =
        sqlx::query_as("SELECT seq, client_msg_id FROM messages WHERE channel_id = $1 ORDER BY seq")
            .bind(channel)
            .fetch_all(&db)
            .await
            .unwrap();
    let expected = ["before-1", "before-2", "direct-good", "after-1", "after-2"];
    assert_eq!(
        stored,
        expected.iter().enumerate().map(|(i, id)| (i as i64 + 1, id.to_string())).collect::<Vec<_>>()
    );

    // The dead-letter stream: both, with reason, original subject and payload.
    let dead = js.get_stream("CHAT_DEAD_LETTERS").await.unwrap();
    // A direct get may be served by a replica that has not applied the letter yet (seen on a
    // loaded machine: NotFound right after the worker logged it): wait until every replica has.
    eventually(Duration::from_secs(10), "both dead letters readable", || async {
        let mut dead = dead.clone();
        dead.info().await.is_ok_and(|info| info.state.messages >= 2)
            && dead.direct_get(1).await.is_ok()
            && dead.direct_get(2).await.is_ok()
    })
    .await;
    let mut reasons = HashSet::new();
    for sequence in 1..=2 {
        let letter = dead.direct_get(sequence).await.expect("two dead letters");
        let header = |name: &str| letter.headers.get(name).map(|v| v.as_str().to_owned());
        assert_eq!(header(messages::SUBJECT_HEADER).as_deref(), Some(subject.as_str()));
        let reason = header(messages::REASON_HEADER).unwrap();
        match reason.as_str() {
            "undecodable" => assert_eq!(letter.payload.as_ref(), b"not json at all"),
            "rejected" => {
                assert_eq!(letter.payload.as_ref(), poison.as_slice());
                assert!(header(messages::ERROR_HEADER).unwrap().contains("0x00"), "{:?}", letter.headers);
            }
            other => panic!("unexpected reason {other}"),
        }
        reasons.insert(reason);
    }
    assert_eq!(reasons.len(), 2);
    assert!(dead.direct_get(3).await.is_err(), "exactly two dead letters");

    // Nothing of the partition is left pending or unacknowledged.
    let stream = js.get_stream("CHAT_MESSAGES").await.unwrap();
    let mut consumer: async_nats::jetstream::consumer::PullConsumer =
        stream.get_consumer(&shared::streams::consumer_name(shared::subjects::Partition(0))).await.unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let info = consumer.info().await.unwrap();
        if info.num_pending == 0 && info.num_ack_pending == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "partition still busy: {info:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The worker counts them by reason.
    let metrics = cell.metrics(&cell.workers[0]).await;
    for reason in ["undecodable", "rejected"] {
        let line = format!("chat_worker_dead_lettered_total{{reason=\"{reason}\"}} 1");
        assert!(metrics.lines().any(|l| l == line), "no `{line}` in\n{metrics}");
    }
}

/// Sends each id as a message and waits for all their acks and deliveries on the socket.
async fn send_and_wait(socket: &mut ChatSocket, channel: ChannelId, ids: &[&str], cell: &TestCell) {
    for id in ids {
        socket.send_message(channel, id, &format!("text of {id}")).await.unwrap();
    }
    let (mut acked, mut delivered) = (HashSet::new(), HashSet::new());
    let deadline = Instant::now() + WAIT;
    while acked.len() < ids.len() || delivered.len() < ids.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match socket.next_frame(left).await.expect("socket stays open") {
            Some(ServerFrame::MessageAck { id, .. }) => {
                acked.insert(id.0);
            }
            Some(ServerFrame::MessageNew { payload }) if ids.contains(&payload.client_id.0.as_str()) => {
                delivered.insert(payload.client_id.0);
            }
            Some(ServerFrame::MessageNew { .. }) => {}
            Some(other) => panic!("unexpected {other:?}"),
            None => panic!("timed out: acked {acked:?}, delivered {delivered:?}\n{}", cell.logs_tail()),
        }
    }
}
