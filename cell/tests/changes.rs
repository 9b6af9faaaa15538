//! Messages that change: edits, deletes, reactions, replies and mentions, over sockets and
//! REST, through real servers. Every change takes the next `seq` of its channel, reaches every
//! member live in that order, is refused with a clear error when it is not allowed, and is
//! replayed by `sync`: a client that syncs from 0 ends with exactly the view of the clients
//! that watched it happen, after a random interleaving of every kind of change.

use rand::{RngExt, SeedableRng};
use reqwest::Method;
use serde_json::{Value, json};
use shared::ids::{ChannelId, MessageId, UserId};
use shared::local::client::{ChatClient, ChatSocket, expect};
use shared::local::load::wait_persisted;
use shared::local::{CellOptions, TestCell};
use shared::protocol::{ErrorCode, ErrorPayload, ServerFrame};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// A message as a client holds it after applying what it was sent.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Held {
    content: String,
    edited: bool,
    deleted: bool,
    mentions: Vec<UserId>,
    reactions: BTreeMap<String, BTreeSet<UserId>>,
}

/// One client's view of a channel: its messages, and the `seq`s it got, in arrival order.
#[derive(Debug, Default)]
struct View {
    messages: BTreeMap<MessageId, Held>,
    seqs: Vec<i64>,
}

impl View {
    /// Applies a frame of the channel's log; other frames are ignored.
    fn apply(&mut self, frame: &ServerFrame) {
        let Some((_, seq)) = frame.channel_seq() else { return };
        self.seqs.push(seq.0);
        match frame {
            ServerFrame::MessageNew { payload } => {
                let held = Held {
                    content: payload.content.clone(),
                    edited: payload.edited_at.is_some(),
                    deleted: payload.deleted,
                    mentions: payload.mentions.clone(),
                    reactions: BTreeMap::new(),
                };
                self.messages.insert(payload.message_id, held);
            }
            ServerFrame::MessageUpdated { payload } => {
                let held = self.messages.get_mut(&payload.message_id).expect("an edit follows its message");
                held.content = payload.content.clone();
                held.mentions = payload.mentions.clone();
                held.edited = true;
            }
            ServerFrame::MessageDeleted { payload } => {
                let held = self.messages.get_mut(&payload.message_id).expect("a delete follows its message");
                *held = Held { deleted: true, edited: held.edited, ..Held::default() };
            }
            ServerFrame::ReactionUpdated { payload } => {
                let held =
                    self.messages.get_mut(&payload.message_id).expect("a reaction follows its message");
                let users = held.reactions.entry(payload.emoji.clone()).or_default();
                if payload.added {
                    assert!(users.insert(payload.user_id), "a second reaction of one user: {payload:?}");
                } else {
                    assert!(
                        users.remove(&payload.user_id),
                        "a reaction removed that was not there: {payload:?}"
                    );
                }
                assert_eq!(
                    users.len() as i64,
                    payload.count,
                    "the count is the number of users: {payload:?}"
                );
                if users.is_empty() {
                    held.reactions.remove(&payload.emoji);
                }
            }
            _ => {}
        }
    }

    fn last_seq(&self) -> i64 {
        self.seqs.last().copied().unwrap_or(0)
    }

    /// Every `seq` once, in order, from 1.
    fn assert_contiguous(&self, who: &str) {
        let expected: Vec<i64> = (1..=self.last_seq()).collect();
        assert_eq!(self.seqs, expected, "{who} got every seq once, in order");
    }

    /// Reaction counts per message (what REST history shows).
    fn counts(&self) -> BTreeMap<MessageId, BTreeMap<String, i64>> {
        self.messages
            .iter()
            .map(|(id, held)| {
                (*id, held.reactions.iter().map(|(e, u)| (e.clone(), u.len() as i64)).collect())
            })
            .collect()
    }
}

/// Reads frames until `until` holds, applying them to `view`; returns the other frames.
async fn read_until(
    socket: &mut ChatSocket,
    view: &mut View,
    cell: &TestCell,
    until: impl Fn(&View, &[ServerFrame]) -> bool,
) -> Vec<ServerFrame> {
    let mut others = Vec::new();
    while !until(view, &others) {
        match socket.next_frame(WAIT).await {
            Ok(Some(frame)) if frame.channel_seq().is_some() => view.apply(&frame),
            Ok(Some(frame)) => others.push(frame),
            other => panic!("no frame ({other:?}); view {view:?}, others {others:?}\n{}", cell.logs_tail()),
        }
    }
    others
}

fn answered(frames: &[ServerFrame], id: &str) -> bool {
    frames.iter().any(|f| match f {
        ServerFrame::MessageAck { id: acked, .. } => acked.0 == id,
        ServerFrame::Error { id: Some(refused), .. } => refused == id,
        _ => false,
    })
}

fn error_for<'a>(frames: &'a [ServerFrame], id: &str) -> Option<&'a ErrorPayload> {
    frames.iter().find_map(|f| match f {
        ServerFrame::Error { id: Some(refused), payload } if refused == id => Some(payload),
        _ => None,
    })
}

fn acked_message(frames: &[ServerFrame], id: &str) -> MessageId {
    frames
        .iter()
        .find_map(|f| match f {
            ServerFrame::MessageAck { id: acked, payload } if acked.0 == id => Some(payload.message_id),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no ack for {id}: {frames:?}"))
}

fn path(channel: ChannelId, rest: &str) -> String {
    format!("/channels/{channel}{rest}")
}

#[tokio::test]
async fn edits_deletes_reactions_replies_and_mentions_reach_every_member_in_seq_order() {
    let cell =
        TestCell::start(CellOptions { gateways: 2, ..Default::default() }).await.expect("the cell starts");
    let (alice, bob, channel) = cell.two_members(0, 1).await.unwrap();
    let carol = ChatClient::register(&cell.gateway_url(0), "carol").await.unwrap();
    let dave = ChatClient::register(&cell.gateway_url(0), "dave").await.unwrap();
    let join = json!({"user_id": carol.user_id});
    expect(alice.request(Method::POST, &path(channel, "/members")).json(&join).send().await.unwrap(), 201)
        .await
        .unwrap();
    let mut alice_ws = alice.connect(&cell.ws_url(0)).await.unwrap();
    let mut bob_ws = bob.connect(&cell.ws_url(1)).await.unwrap();
    let mut dave_ws = dave.connect(&cell.ws_url(1)).await.unwrap();
    let (mut alice_view, mut bob_view) = (View::default(), View::default());

    // Two messages, the second mentioning bob and everyone (and an address, which names nobody).
    alice_ws.send_message(channel, "m1", "hello").await.unwrap();
    alice_ws
        .send_message(channel, "m2", "@Bob and @channel: mail alice@example.com, not @nobody")
        .await
        .unwrap();
    let acks = read_until(&mut alice_ws, &mut alice_view, &cell, |v, _| v.last_seq() == 2).await;
    let (m1, m2) = (acked_message(&acks, "m1"), acked_message(&acks, "m2"));
    read_until(&mut bob_ws, &mut bob_view, &cell, |v, _| v.last_seq() == 2).await;
    assert_eq!(bob_view.messages[&m2].mentions, vec![bob.user_id], "@Bob is bob; @nobody is not a member");
    let history = expect(bob.request(Method::GET, &path(channel, "/messages")).send().await.unwrap(), 200)
        .await
        .unwrap();
    let stored_m2 = history["messages"].as_array().unwrap().iter().find(|m| m["client_id"] == "m2").unwrap();
    assert_eq!(stored_m2["mentions_channel"], true);

    // A reply to m1 is stored with it; a reply to a message of no channel of hers is refused.
    let reply = json!({"type": "message.send", "id": "r1",
        "payload": {"channel_id": channel, "content": "re: hello", "reply_to": m1}});
    alice_ws.send_text(reply.to_string()).await.unwrap();
    let stray = json!({"type": "message.send", "id": "r2",
        "payload": {"channel_id": channel, "content": "re: ?", "reply_to": "12345"}});
    alice_ws.send_text(stray.to_string()).await.unwrap();
    let frames = read_until(&mut alice_ws, &mut alice_view, &cell, |v, f| {
        v.last_seq() == 3 && ["r1", "r2"].iter().all(|id| answered(f, id))
    })
    .await;
    assert_eq!(error_for(&frames, "r2").map(|e| e.code), Some(ErrorCode::NotFound));
    let r1 = acked_message(&frames, "r1");

    // Alice edits m1; bob reacts twice with 👍 (the second changes nothing), then alice does.
    alice_ws.edit_message(channel, m1, "e1", "hello, @carol").await.unwrap();
    read_until(&mut alice_ws, &mut alice_view, &cell, |v, _| v.last_seq() == 4).await;
    bob_ws.react(channel, m1, "b1", "👍", true).await.unwrap();
    bob_ws.react(channel, m1, "b2", "👍", true).await.unwrap();
    let frames =
        read_until(&mut bob_ws, &mut bob_view, &cell, |v, f| v.last_seq() == 5 && answered(f, "b2")).await;
    assert!(error_for(&frames, "b2").is_none(), "a repeated reaction is acknowledged: {frames:?}");
    alice_ws.react(channel, m1, "a1", "👍", true).await.unwrap();
    read_until(&mut bob_ws, &mut bob_view, &cell, |v, _| v.last_seq() == 6).await;
    assert_eq!(bob_view.messages[&m1].content, "hello, @carol");
    assert!(bob_view.messages[&m1].edited);
    assert_eq!(
        bob_view.messages[&m1].mentions,
        vec![carol.user_id],
        "an edit's mentions are its new content's"
    );
    assert_eq!(bob_view.messages[&m1].reactions["👍"], BTreeSet::from([alice.user_id, bob.user_id]));

    // What is not allowed gets its own error and changes nothing.
    bob_ws.edit_message(channel, m1, "x1", "bob was here").await.unwrap();
    bob_ws.delete_message(channel, m1, "x2").await.unwrap();
    bob_ws.react(channel, MessageId(12345), "x3", "👍", true).await.unwrap();
    bob_ws
        .send_text(
            json!({"type": "reaction.add", "id": "x4",
        "payload": {"channel_id": channel, "message_id": m1, "emoji": "two words"}})
            .to_string(),
        )
        .await
        .unwrap();
    // Answers come in any order (docs/protocol.md): each is matched by its id.
    let all_answered =
        |_: &View, f: &[ServerFrame]| ["x1", "x2", "x3", "x4"].iter().all(|id| answered(f, id));
    let frames = read_until(&mut bob_ws, &mut bob_view, &cell, all_answered).await;
    assert_eq!(error_for(&frames, "x1").map(|e| e.code), Some(ErrorCode::Forbidden), "edit of another's");
    assert_eq!(error_for(&frames, "x2").map(|e| e.code), Some(ErrorCode::Forbidden), "delete by a member");
    assert_eq!(error_for(&frames, "x3").map(|e| e.code), Some(ErrorCode::NotFound), "no such message");
    assert_eq!(error_for(&frames, "x4").map(|e| e.code), Some(ErrorCode::InvalidPayload), "bad emoji");
    dave_ws.edit_message(channel, m1, "d1", "intruder").await.unwrap();
    dave_ws.react(channel, m1, "d2", "👎", true).await.unwrap();
    let mut dave_view = View::default();
    let frames =
        read_until(&mut dave_ws, &mut dave_view, &cell, |_, f| ["d1", "d2"].iter().all(|id| answered(f, id)))
            .await;
    assert_eq!(error_for(&frames, "d1").map(|e| e.code), Some(ErrorCode::NotAMember));
    assert_eq!(error_for(&frames, "d2").map(|e| e.code), Some(ErrorCode::NotAMember));
    assert!(dave_view.seqs.is_empty(), "a non-member sees none of it");

    // Bob's message, deleted by alice as the channel's owner: gone for everyone, reactions too.
    bob_ws.send_message(channel, "m3", "oops").await.unwrap();
    let frames = read_until(&mut bob_ws, &mut bob_view, &cell, |v, _| v.last_seq() == 7).await;
    let m3 = acked_message(&frames, "m3");
    alice_ws.react(channel, m3, "a2", "🎉", true).await.unwrap();
    alice_ws.delete_message(channel, m3, "a3").await.unwrap();
    read_until(&mut bob_ws, &mut bob_view, &cell, |v, _| v.last_seq() == 9).await;
    assert!(bob_view.messages[&m3].deleted);
    bob_ws.edit_message(channel, m3, "x5", "undo").await.unwrap();
    let frames = read_until(&mut bob_ws, &mut bob_view, &cell, |_, f| answered(f, "x5")).await;
    let refused = error_for(&frames, "x5").expect("an edit of a deleted message is refused");
    assert_eq!((refused.code, refused.retryable), (ErrorCode::NotFound, false));

    // The same over REST: an edit, a reaction removed, the refusals, then one message.
    let m2_path = path(channel, &format!("/messages/{m2}"));
    let edit = alice.request(Method::PATCH, &m2_path).json(&json!({"content": "edited over REST"}));
    let ack = expect(edit.header("Idempotency-Key", "rest-e1").send().await.unwrap(), 202).await.unwrap();
    assert_eq!(
        (ack["status"].as_str(), ack["message_id"].as_str()),
        (Some("stored"), Some(m2.to_string().as_str()))
    );
    let unreact = bob.request(Method::DELETE, &path(channel, &format!("/messages/{m1}/reactions/👍")));
    expect(unreact.send().await.unwrap(), 202).await.unwrap();
    let status = |r: reqwest::Response| r.status().as_u16();
    let by_bob = bob.request(Method::PATCH, &m2_path).json(&json!({"content": "mine now"}));
    assert_eq!(status(by_bob.send().await.unwrap()), 403, "bob edits alice's message");
    assert_eq!(status(bob.request(Method::DELETE, &m2_path).send().await.unwrap()), 403);
    assert_eq!(status(dave.request(Method::GET, &m2_path).send().await.unwrap()), 404, "non-member");
    let missing = path(channel, "/messages/12345/reactions/👍");
    assert_eq!(status(alice.request(Method::POST, &missing).send().await.unwrap()), 404);
    // Changes and sends keep their ids apart: a reaction with the id of alice's send is new.
    alice_ws.react(channel, m2, "m2", "🔥", true).await.unwrap();
    read_until(&mut alice_ws, &mut alice_view, &cell, |v, _| v.last_seq() == 12).await;
    read_until(&mut bob_ws, &mut bob_view, &cell, |v, _| v.last_seq() == 12).await;
    assert_eq!(bob_view.messages[&m2].reactions["🔥"], BTreeSet::from([alice.user_id]));
    let one = expect(
        alice.request(Method::GET, &path(channel, &format!("/messages/{m1}"))).send().await.unwrap(),
        200,
    )
    .await
    .unwrap();
    assert_eq!(one["content"], "hello, @carol");
    assert!(one["edited_at"].is_string());
    assert_eq!(one["reactions"], json!([{"emoji": "👍", "count": 1, "me": true}]), "alice's 👍 is left");

    // History is the current state; unread counts count messages, not changes.
    let history = expect(
        carol.request(Method::GET, &path(channel, "/messages?after_seq=0")).send().await.unwrap(),
        200,
    )
    .await
    .unwrap();
    let by_id: BTreeMap<String, &Value> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["message_id"].as_str().unwrap().to_owned(), m))
        .collect();
    assert_eq!(by_id.len(), 4, "4 messages: {history}");
    assert_eq!(by_id[&m2.to_string()]["content"], "edited over REST");
    assert_eq!(by_id[&m3.to_string()]["deleted"], true);
    assert_eq!(by_id[&m3.to_string()]["content"], "");
    assert_eq!(by_id[&r1.to_string()]["reply_to"], m1.to_string());
    assert_eq!(by_id[&m1.to_string()]["reactions"], json!([{"emoji": "👍", "count": 1, "me": false}]));
    let channels = expect(carol.request(Method::GET, "/channels").send().await.unwrap(), 200).await.unwrap();
    let listed = &channels["channels"][0];
    assert_eq!((listed["last_seq"].as_i64(), listed["unread_count"].as_i64()), (Some(12), Some(4)));

    // Carol syncs from 0 and ends where the others are.
    let mut carol_ws = carol.resume(&cell.ws_url(1), &[(channel, 0)]).await.unwrap();
    let mut carol_view = View::default();
    read_until(&mut carol_ws, &mut carol_view, &cell, |_, f| {
        f.iter().any(|f| matches!(f, ServerFrame::SyncDone { .. }))
    })
    .await;
    for (who, view) in [("alice", &alice_view), ("bob", &bob_view), ("carol", &carol_view)] {
        view.assert_contiguous(who);
    }
    assert_eq!(carol_view.messages, alice_view.messages);
    assert_eq!(carol_view.messages, bob_view.messages);
}

/// What one client did in the random run.
struct Actor {
    client: ChatClient,
    socket: ChatSocket,
    view: View,
    sent: Vec<String>,
    answered: HashSet<String>,
}

/// The convergence test: two clients (on two gateways) apply a random interleaving of
/// sends, edits, deletes and reactions at once; then a third syncs from `seq` 0. All three end
/// with exactly the same messages, and REST history agrees. The seed is printed (and can be
/// set with `CHAT_CONVERGENCE_SEED`) so a failure can be replayed.
#[tokio::test]
async fn a_random_interleaving_of_changes_converges_for_live_and_syncing_clients() {
    let seed: u64 =
        std::env::var("CHAT_CONVERGENCE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    println!("convergence seed {seed}");
    let cell =
        TestCell::start(CellOptions { gateways: 2, ..Default::default() }).await.expect("the cell starts");
    let (alice, bob, channel) = cell.two_members(0, 1).await.unwrap();
    let carol = ChatClient::register(&cell.gateway_url(0), "carol").await.unwrap();
    let join = json!({"user_id": carol.user_id});
    expect(alice.request(Method::POST, &path(channel, "/members")).json(&join).send().await.unwrap(), 201)
        .await
        .unwrap();
    let mut actors = Vec::new();
    for (i, client) in [alice, bob].into_iter().enumerate() {
        let socket = client.connect(&cell.ws_url(i)).await.unwrap();
        actors.push(Actor {
            client,
            socket,
            view: View::default(),
            sent: Vec::new(),
            answered: HashSet::new(),
        });
    }
    const OPS: usize = 80;
    let runs = actors.into_iter().enumerate().map(|(i, mut actor)| async move {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed.wrapping_add(i as u64));
        let name = actor.client.username.clone();
        for op in 0..OPS {
            let id = format!("{name}-{op}");
            let known: Vec<MessageId> = actor.view.messages.keys().copied().collect();
            let target = (!known.is_empty()).then(|| known[rng.random_range(0..known.len())]);
            let emoji = ["👍", "🎉", "❤️"][rng.random_range(0..3usize)];
            let socket = &mut actor.socket;
            let sent = match (rng.random_range(0..100u32), target) {
                (0..30, _) | (_, None) => {
                    socket.send_message(channel, &id, &format!("{name} says {op}")).await
                }
                (30..50, Some(t)) => {
                    socket.edit_message(channel, t, &id, &format!("{name} edited at {op}")).await
                }
                (50..60, Some(t)) => socket.delete_message(channel, t, &id).await,
                (60..85, Some(t)) => socket.react(channel, t, &id, emoji, true).await,
                (_, Some(t)) => socket.react(channel, t, &id, emoji, false).await,
            };
            sent.unwrap();
            actor.sent.push(id);
            // Read for a random moment before the next change, so the two interleave.
            let until = tokio::time::Instant::now() + Duration::from_millis(rng.random_range(0..60));
            while let Ok(frame) = tokio::time::timeout_at(until, actor.socket.next_frame(WAIT)).await {
                match frame.expect("socket open") {
                    Some(frame) if frame.channel_seq().is_some() => actor.view.apply(&frame),
                    Some(ServerFrame::MessageAck { id, .. }) => drop(actor.answered.insert(id.0)),
                    Some(ServerFrame::Error { id: Some(id), payload }) => {
                        assert!(
                            matches!(payload.code, ErrorCode::NotFound | ErrorCode::Forbidden),
                            "only refusals of the target: {payload:?}"
                        );
                        actor.answered.insert(id);
                    }
                    _ => {}
                }
            }
        }
        actor
    });
    let mut actors = futures::future::join_all(runs).await;

    // Everything answered, everything applied: then both live views reach the last seq.
    for actor in &mut actors {
        while actor.answered.len() < actor.sent.len() {
            match actor.socket.next_frame(WAIT).await.expect("socket open") {
                Some(frame) if frame.channel_seq().is_some() => actor.view.apply(&frame),
                Some(ServerFrame::MessageAck { id, .. }) => drop(actor.answered.insert(id.0)),
                Some(ServerFrame::Error { id: Some(id), .. }) => drop(actor.answered.insert(id)),
                Some(_) => {}
                None => panic!(
                    "{} sent {} and got {} answers",
                    actor.client.username,
                    actor.sent.len(),
                    actor.answered.len()
                ),
            }
        }
    }
    assert!(
        wait_persisted(&cell.nats_urls(), "CHAT_MESSAGES", Duration::from_secs(60)).await,
        "the stream is applied"
    );
    let info =
        expect(carol.request(Method::GET, &path(channel, "")).send().await.unwrap(), 200).await.unwrap();
    let last_seq = info["last_seq"].as_i64().unwrap();
    for actor in &mut actors {
        read_until(&mut actor.socket, &mut actor.view, &cell, |v, _| v.last_seq() == last_seq).await;
        actor.view.assert_contiguous(&actor.client.username);
    }
    let mut carol_ws = carol.resume(&cell.ws_url(1), &[(channel, 0)]).await.unwrap();
    let mut carol_view = View::default();
    read_until(&mut carol_ws, &mut carol_view, &cell, |_, f| {
        f.iter().any(|f| matches!(f, ServerFrame::SyncDone { .. }))
    })
    .await;
    carol_view.assert_contiguous("carol");
    let kinds = |view: &View| {
        let edited = view.messages.values().filter(|m| m.edited).count();
        let deleted = view.messages.values().filter(|m| m.deleted).count();
        let reactions: usize = view.messages.values().map(|m| m.reactions.len()).sum();
        (view.messages.len(), edited, deleted, reactions)
    };
    println!(
        "seed {seed}: {last_seq} seqs; (messages, edited, deleted, emoji in use) {:?}",
        kinds(&carol_view)
    );
    assert_eq!(actors[0].view.messages, actors[1].view.messages, "alice and bob agree (seed {seed})");
    assert_eq!(carol_view.messages, actors[0].view.messages, "carol's sync agrees with them (seed {seed})");
    let (messages, edited, deleted, _) = kinds(&carol_view);
    assert!(
        messages > 10 && edited > 0 && deleted > 0,
        "the run exercised every kind: {:?}",
        kinds(&carol_view)
    );

    // And the history API shows the same current state.
    let mut stored: BTreeMap<MessageId, (String, bool, BTreeMap<String, i64>)> = BTreeMap::new();
    let mut after = 0;
    loop {
        let page = expect(
            carol
                .request(Method::GET, &path(channel, &format!("/messages?after_seq={after}&limit=200")))
                .send()
                .await
                .unwrap(),
            200,
        )
        .await
        .unwrap();
        for m in page["messages"].as_array().unwrap() {
            let id = MessageId(m["message_id"].as_str().unwrap().parse().unwrap());
            let counts = m["reactions"]
                .as_array()
                .map(|r| {
                    r.iter()
                        .map(|r| (r["emoji"].as_str().unwrap().to_owned(), r["count"].as_i64().unwrap()))
                        .collect()
                })
                .unwrap_or_default();
            stored.insert(id, (m["content"].as_str().unwrap().to_owned(), m["deleted"] == true, counts));
            after = m["seq"].as_i64().unwrap();
        }
        if page["has_more"] != true {
            break;
        }
    }
    let expected: BTreeMap<MessageId, (String, bool, BTreeMap<String, i64>)> = carol_view
        .messages
        .iter()
        .map(|(id, held)| (*id, (held.content.clone(), held.deleted, carol_view.counts()[id].clone())))
        .collect();
    assert_eq!(stored, expected, "history is the state the log ends in (seed {seed})");
}

/// Puts a change into the stream as a gateway would, past the gateway's own checks: the way a
/// change the gateway found valid reaches a worker after the message or the right is gone.
async fn publish_change(cell: &TestCell, channel: ChannelId, message: MessageId, actor: UserId, id: &str) {
    let change = shared::events::StreamChange {
        channel_id: channel,
        message_id: message,
        actor,
        client_msg_id: shared::ids::ClientMsgId(id.to_owned()),
        change: shared::events::Change::Edit {
            content: "too late".into(),
            mentions: Vec::new(),
            mentions_channel: false,
        },
        created_at: chrono::Utc::now(),
    };
    let nats = async_nats::connect(cell.nats_urls()).await.unwrap();
    let js = async_nats::jetstream::new(nats);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(shared::events::CHANGE_HEADER, "1");
    headers.insert("Nats-Msg-Id", change.dedup_key().as_str());
    let subject = shared::subjects::Subjects::new("chat").publish(channel, cell.options.partitions);
    let payload = serde_json::to_vec(&change).unwrap();
    js.publish_with_headers(subject, headers, payload.into()).await.unwrap().await.unwrap();
}

fn rejection(frames: &[ServerFrame], id: &str) -> Option<shared::protocol::ChangeRejectedPayload> {
    frames.iter().find_map(|f| match f {
        ServerFrame::ChangeRejected { id: rejected, payload } if rejected.0 == id => Some(payload.clone()),
        _ => None,
    })
}

/// A change acknowledged but no longer valid when the worker comes to it (its message deleted,
/// or its author without the right) takes no `seq`, and its author alone is told with
/// `change.rejected`, on whichever gateway their socket is.
#[tokio::test]
async fn an_acknowledged_change_the_worker_cannot_apply_is_told_to_its_author_alone() {
    use shared::protocol::ChangeRejection;
    let cell =
        TestCell::start(CellOptions { gateways: 2, ..Default::default() }).await.expect("the cell starts");
    let (alice, bob, channel) = cell.two_members(0, 1).await.unwrap();
    let mut alice_ws = alice.connect(&cell.ws_url(0)).await.unwrap();
    let mut bob_ws = bob.connect(&cell.ws_url(1)).await.unwrap();
    let (mut alice_view, mut bob_view) = (View::default(), View::default());
    alice_ws.send_message(channel, "m1", "first").await.unwrap();
    alice_ws.send_message(channel, "m2", "second").await.unwrap();
    let acks = read_until(&mut alice_ws, &mut alice_view, &cell, |v, _| v.last_seq() == 2).await;
    let (m1, m2) = (acked_message(&acks, "m1"), acked_message(&acks, "m2"));
    alice_ws.delete_message(channel, m1, "d1").await.unwrap();
    read_until(&mut alice_ws, &mut alice_view, &cell, |v, _| v.last_seq() == 3).await;

    // Alice's edit of m1 comes after its delete; Bob's edit of Alice's m2 was never his to make.
    // Each user's frames come in publish order: Bob's tells after Alice's first, Alice's second
    // after Bob's, so once each has the last one meant for them a stray would have come.
    publish_change(&cell, channel, m1, alice.user_id, "late-edit").await;
    publish_change(&cell, channel, m2, bob.user_id, "not-yours").await;
    publish_change(&cell, channel, m1, alice.user_id, "late-edit-2").await;
    alice_ws.send_message(channel, "m3", "third").await.unwrap();

    let alice_frames = read_until(&mut alice_ws, &mut alice_view, &cell, |v, f| {
        v.last_seq() == 4 && rejection(f, "late-edit-2").is_some()
    })
    .await;
    let bob_frames = read_until(&mut bob_ws, &mut bob_view, &cell, |v, f| {
        v.last_seq() == 4 && rejection(f, "not-yours").is_some()
    })
    .await;
    let told = rejection(&alice_frames, "late-edit");
    assert_eq!(
        told.map(|p| (p.channel_id, p.message_id, p.reason)),
        Some((channel, m1, ChangeRejection::Deleted))
    );
    let told = rejection(&bob_frames, "not-yours");
    assert_eq!(
        told.map(|p| (p.channel_id, p.message_id, p.reason)),
        Some((channel, m2, ChangeRejection::Forbidden))
    );
    assert_eq!(rejection(&alice_frames, "not-yours"), None, "only the author is told");
    assert_eq!(rejection(&bob_frames, "late-edit"), None, "only the author is told");
    // Neither took a `seq`: m3 is 4, and both views hold m2 unchanged.
    assert_eq!(alice_view.seqs, [1, 2, 3, 4]);
    assert_eq!(bob_view.seqs, [1, 2, 3, 4]);
    assert_eq!(bob_view.messages[&m2].content, "second");
    assert!(!bob_view.messages[&m2].edited);
}
