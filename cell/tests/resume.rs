//! Exact resume: a client that reconnects and sends `sync` with its last seen `seq` gets
//! exactly what it missed, in order, then `sync.done`, then live messages — nothing skipped or
//! doubled at the seam, even while messages keep arriving during the sync.

use shared::ids::{ChannelId, ChannelSeq};
use shared::local::cell::{Backend, Servers, metric_value};
use shared::local::client::{ChatClient, ChatSocket};
use shared::local::{CellOptions, TestCell};
use shared::protocol::{ErrorCode, ServerFrame, SyncDonePayload};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// A frame of interest, in arrival order.
#[derive(Debug, PartialEq)]
enum Seen {
    Message(ChannelId, i64),
    Done(SyncDonePayload),
    Error(ErrorCode),
}

/// Reads frames until `until` holds for what was seen, ignoring acks.
async fn watch(socket: &mut ChatSocket, cell: &TestCell, until: impl Fn(&[Seen]) -> bool) -> Vec<Seen> {
    let mut seen = Vec::new();
    while !until(&seen) {
        match socket.next_frame(WAIT).await.expect("socket open") {
            Some(ServerFrame::MessageNew { payload }) => {
                seen.push(Seen::Message(payload.channel_id, payload.seq.0))
            }
            Some(ServerFrame::SyncDone { payload }) => seen.push(Seen::Done(payload)),
            Some(ServerFrame::Error { payload, .. }) => seen.push(Seen::Error(payload.code)),
            Some(_) => {}
            None => panic!("timed out; seen {seen:?}\n{}", cell.logs_tail()),
        }
    }
    seen
}

async fn send_all(socket: &mut ChatSocket, channel: ChannelId, ids: std::ops::Range<usize>) {
    for i in ids {
        socket.send_message(channel, &format!("r-{i}"), &format!("message {i}")).await.unwrap();
    }
}

fn has_message(seen: &[Seen], channel: ChannelId, seq: i64) -> bool {
    seen.contains(&Seen::Message(channel, seq))
}

#[tokio::test]
async fn a_reconnecting_client_gets_exactly_what_it_missed_while_live_traffic_continues() {
    let cell = TestCell::start(CellOptions::default()).await.expect("the cell starts");
    let (alice, bob, channel) = cell.two_members(0, 0).await.unwrap();
    let mut alice_ws = alice.connect(&cell.ws_url(0)).await.unwrap();

    let mut bob_ws = bob.connect(&cell.ws_url(0)).await.unwrap();
    send_all(&mut alice_ws, channel, 0..5).await;
    watch(&mut bob_ws, &cell, |s| has_message(s, channel, 5)).await;
    let last_seen = bob_ws.last_seq[&channel];
    assert_eq!(last_seen, ChannelSeq(5));
    bob_ws.close().await;

    send_all(&mut alice_ws, channel, 5..15).await;
    watch(&mut alice_ws, &cell, |s| has_message(s, channel, 15)).await;

    // Bob comes back and syncs while alice keeps sending.
    let mut bob_ws = bob.resume(&cell.ws_url(0), &[(channel, last_seen.0)]).await.unwrap();
    send_all(&mut alice_ws, channel, 15..25).await;
    let seen = watch(&mut bob_ws, &cell, |s| {
        has_message(s, channel, 25) && s.iter().any(|f| matches!(f, Seen::Done(_)))
    })
    .await;

    let seqs: Vec<i64> =
        seen.iter().filter_map(|f| if let Seen::Message(_, seq) = f { Some(*seq) } else { None }).collect();
    assert_eq!(seqs, (6..=25).collect::<Vec<_>>(), "every missed and live message once, in order");
    let done_at = seen.iter().position(|f| matches!(f, Seen::Done(_))).unwrap();
    let Seen::Done(done) = &seen[done_at] else { unreachable!() };
    assert_eq!(done.channel_id, channel);
    assert!(!done.truncated);
    assert!(done.last_seq.0 >= 15, "the backlog covers what was missed: {done:?}");
    assert_eq!(done_at as i64, done.last_seq.0 - 5, "sync.done follows exactly the backlog");
}

/// A socket opened with `?resume=true` holds live messages until its first frame however late
/// it comes, so a slow client's `sync` still puts the backlog first; a plain socket gets its
/// live messages after the first-frame grace even if it never sends anything.
#[tokio::test]
async fn a_resuming_socket_holds_live_messages_until_its_late_sync() {
    let cell = TestCell::start(CellOptions::default()).await.expect("the cell starts");
    let (alice, bob, channel) = cell.two_members(0, 0).await.unwrap();
    let mut alice_ws = alice.connect(&cell.ws_url(0)).await.unwrap();
    send_all(&mut alice_ws, channel, 0..3).await;
    watch(&mut alice_ws, &cell, |s| has_message(s, channel, 3)).await;

    // A plain socket that says nothing still gets live traffic, after the grace.
    let mut plain = bob.connect(&cell.ws_url(0)).await.unwrap();
    let mut resuming = bob.connect(&format!("{}?resume=true", cell.ws_url(0))).await.unwrap();
    send_all(&mut alice_ws, channel, 3..5).await;
    let live = watch(&mut plain, &cell, |s| has_message(s, channel, 5)).await;
    assert_eq!(live, vec![Seen::Message(channel, 4), Seen::Message(channel, 5)], "only live ones, unasked");

    // Well past the grace, the resuming socket syncs from the start: backlog first, whole.
    tokio::time::sleep(Duration::from_secs(2)).await;
    resuming.sync(&[(channel, 0)]).await.unwrap();
    let seen = watch(&mut resuming, &cell, |s| s.iter().any(|f| matches!(f, Seen::Done(_)))).await;
    let expected: Vec<Seen> = (1..=5).map(|seq| Seen::Message(channel, seq)).collect();
    assert_eq!(seen[..5], expected[..], "the backlog, in order, with nothing live before it: {seen:?}");
    assert_eq!(seen.len(), 6, "then sync.done, and the held live messages are not doubled: {seen:?}");

    // A bad value for the option is refused at the handshake.
    assert!(bob.connect(&format!("{}?resume=maybe", cell.ws_url(0))).await.is_err());
}

#[tokio::test]
async fn sync_caps_the_backlog_covers_all_channels_and_refuses_others_channels() {
    let options = CellOptions { gateway_config: "sync_backlog_max = 5".into(), ..Default::default() };
    let cell = TestCell::start(options).await.expect("the cell starts");
    let alice = ChatClient::register(&cell.gateway_url(0), "alice").await.unwrap();
    let bob = ChatClient::register(&cell.gateway_url(0), "bob").await.unwrap();
    let carol = ChatClient::register(&cell.gateway_url(0), "carol").await.unwrap();
    let busy = alice.create_channel("group", "busy", &[bob.user_id]).await.unwrap();
    let quiet = alice.create_channel("group", "quiet", &[bob.user_id]).await.unwrap();
    let private = carol.create_channel("group", "private", &[]).await.unwrap();

    let mut alice_ws = alice.connect(&cell.ws_url(0)).await.unwrap();
    send_all(&mut alice_ws, busy, 0..12).await;
    send_all(&mut alice_ws, quiet, 12..14).await;
    watch(&mut alice_ws, &cell, |s| has_message(s, busy, 12) && has_message(s, quiet, 2)).await;

    let mut bob_ws = bob.connect(&cell.ws_url(0)).await.unwrap();
    bob_ws.sync(&[(busy, 0)]).await.unwrap();
    let seen = watch(&mut bob_ws, &cell, |s| s.iter().any(|f| matches!(f, Seen::Done(_)))).await;
    let mut expected: Vec<Seen> = (1..=5).map(|seq| Seen::Message(busy, seq)).collect();
    expected.push(Seen::Done(SyncDonePayload { channel_id: busy, last_seq: ChannelSeq(5), truncated: true }));
    assert_eq!(seen, expected, "at most the cap, then truncated: page the rest over REST");

    bob_ws.sync(&[(private, 0)]).await.unwrap();
    let seen = watch(&mut bob_ws, &cell, |s| !s.is_empty()).await;
    assert_eq!(seen, [Seen::Error(ErrorCode::NotAMember)]);

    // No channels: all of bob's, from the start — but never twice on one socket: what this
    // socket already got of the busy channel is not sent again.
    bob_ws.sync(&[]).await.unwrap();
    let seen =
        watch(&mut bob_ws, &cell, |s| s.iter().filter(|f| matches!(f, Seen::Done(_))).count() == 2).await;
    let mut channels = [busy, quiet];
    channels.sort();
    let mut expected = Vec::new();
    for channel in channels {
        let count = if channel == busy { 5 } else { 2 };
        if channel == quiet {
            expected.extend((1..=count).map(|seq| Seen::Message(channel, seq)));
        }
        let done =
            SyncDonePayload { channel_id: channel, last_seq: ChannelSeq(count), truncated: channel == busy };
        expected.push(Seen::Done(done));
    }
    assert_eq!(seen, expected);
}

/// Stores messages with `seqs` in the channel behind the workers' back (no delivery is
/// announced) and returns the last one as history has it.
async fn store_quietly(
    db: &sqlx::PgPool,
    sender: &ChatClient,
    channel: ChannelId,
    seqs: std::ops::RangeInclusive<i64>,
) -> shared::protocol::MessageView {
    let last = *seqs.end();
    for seq in seqs {
        sqlx::query(
            "INSERT INTO messages (message_id, channel_id, seq, ordinal, sender_id, client_msg_id, content, created_at)
             VALUES ($1, $2, $3, $3, $4, $5, 'stored quietly', now())",
        )
        .bind(1_000 + seq)
        .bind(channel)
        .bind(seq)
        .bind(sender.user_id)
        .bind(format!("g-{seq}"))
        .execute(db)
        .await
        .unwrap();
    }
    sqlx::query("UPDATE channels SET last_seq = $2, message_count = $2 WHERE id = $1")
        .bind(channel)
        .bind(last)
        .execute(db)
        .await
        .unwrap();
    sender.history_after(channel, last - 1).await.unwrap().remove(0)
}

/// Announces the delivery of `message` as a worker does.
async fn announce(cell: &TestCell, channel: ChannelId, message: &shared::protocol::MessageView) {
    let nats = async_nats::connect(cell.nats_urls()).await.unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(shared::events::SEQ_HEADER, message.seq.0.to_string().as_str());
    let subject = shared::subjects::Subjects::new("chat").deliver(channel);
    nats.publish_with_headers(subject, headers, serde_json::to_vec(message).unwrap().into()).await.unwrap();
    nats.flush().await.unwrap();
}

/// Alice and Bob in a channel, both connected to gateway 0, Bob having seen message 1; then
/// messages 2..=4 stored behind the workers' back, none of them announced yet.
struct Hole {
    bob: ChatClient,
    channel: ChannelId,
    alice_ws: ChatSocket,
    bob_ws: ChatSocket,
    /// Message 4, to announce: 2 and 3 are then a hole in Bob's deliveries.
    fourth: shared::protocol::MessageView,
}

impl Hole {
    async fn open(cell: &TestCell) -> Self {
        let (alice, bob, channel) = cell.two_members(0, 0).await.unwrap();
        let mut alice_ws = alice.connect(&cell.ws_url(0)).await.unwrap();
        let mut bob_ws = bob.connect(&cell.ws_url(0)).await.unwrap();
        send_all(&mut alice_ws, channel, 0..1).await;
        watch(&mut bob_ws, cell, |s| has_message(s, channel, 1)).await;
        let db = sqlx::PgPool::connect(&cell.database_url()).await.unwrap();
        let fourth = store_quietly(&db, &alice, channel, 2..=4).await;
        db.close().await;
        Hole { bob, channel, alice_ws, bob_ws, fourth }
    }
}

#[tokio::test]
async fn a_hole_in_live_deliveries_is_filled_from_postgres_before_anything_later() {
    let cell = TestCell::start(CellOptions::default()).await.expect("the cell starts");
    let Hole { channel, mut alice_ws, mut bob_ws, fourth, .. } = Hole::open(&cell).await;
    // Only 4's delivery is announced: 2 and 3 were "lost".
    announce(&cell, channel, &fourth).await;

    let seen = watch(&mut bob_ws, &cell, |s| has_message(s, channel, 4)).await;
    assert_eq!(seen, [2, 3, 4].map(|seq| Seen::Message(channel, seq)), "the hole is filled first, in order");

    send_all(&mut alice_ws, channel, 1..2).await;
    let seen = watch(&mut bob_ws, &cell, |s| has_message(s, channel, 5)).await;
    assert_eq!(seen, [Seen::Message(channel, 5)]);
}

/// A hole the gateway cannot read back (Postgres is down) is never skipped: the channel's
/// sockets are closed with 1011 before anything later reaches them, and a resume fills it.
#[tokio::test]
async fn a_hole_that_cannot_be_filled_closes_the_channels_sockets_and_sync_fills_it() {
    let options = CellOptions { backend: Backend::Local, ..CellOptions::default() };
    let mut cell = TestCell::start(options).await.expect("the cell starts");
    let Hole { bob, channel, fourth, mut bob_ws, .. } = Hole::open(&cell).await;
    let Servers::Local { postgres, .. } = &mut cell.servers else { unreachable!("local backend") };
    postgres.process.as_mut().unwrap().kill9();
    announce(&cell, channel, &fourth).await;

    let mut seen = Vec::new();
    let closed = loop {
        match bob_ws.next_frame(WAIT).await {
            Ok(Some(ServerFrame::MessageNew { payload })) => seen.push(payload.seq.0),
            Ok(Some(_)) => {}
            Ok(None) => panic!("not closed; seen {seen:?}\n{}", cell.logs_tail()),
            Err(error) => break error.to_string(),
        }
    };
    assert!(closed.contains("1011 deliveries missed"), "closed: {closed}");
    assert_eq!(seen, Vec::<i64>::new(), "nothing past the hole went out");

    let Servers::Local { postgres, .. } = &mut cell.servers else { unreachable!("local backend") };
    postgres.restart().await.unwrap();
    let mut bob_ws = bob.resume(&cell.ws_url(0), &[(channel, 1)]).await.unwrap();
    let seen = watch(&mut bob_ws, &cell, |s| s.iter().any(|f| matches!(f, Seen::Done(_)))).await;
    let messages: Vec<&Seen> = seen.iter().filter(|f| matches!(f, Seen::Message(..))).collect();
    assert_eq!(messages, [2, 3, 4].map(|seq| Seen::Message(channel, seq)).iter().collect::<Vec<_>>());
    let metrics = cell.metrics(&cell.gateways[0]).await;
    assert_eq!(metric_value(&metrics, "chat_gateway_gap_fills_failed_total"), Some(1.0));
}
