//! Finding things, through real servers: public channels listed, joined and left; a removed
//! member's sockets stop getting the channel at once and their `sync` of it is refused; a
//! member whose gateway hears of the join late misses nothing, and a send that comes before
//! the membership change is taken; full-text search within a channel and across the caller's channels, never beyond them.

use reqwest::Method;
use serde_json::Value;
use shared::ids::{ChannelId, MessageId};
use shared::local::client::{ChatClient, ChatSocket, expect};
use shared::local::{CellOptions, TestCell};
use shared::protocol::{ErrorCode, ServerFrame};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn path(channel: ChannelId, rest: &str) -> String {
    format!("/channels/{channel}{rest}")
}

async fn get(client: &ChatClient, path: &str) -> Value {
    expect(client.request(Method::GET, path).send().await.unwrap(), 200).await.unwrap()
}

async fn status(request: reqwest::RequestBuilder) -> u16 {
    request.send().await.unwrap().status().as_u16()
}

/// Reads until a frame matches `wanted`; returns the `message.new` contents seen on the way.
async fn read_until(
    socket: &mut ChatSocket,
    cell: &TestCell,
    mut wanted: impl FnMut(&ServerFrame) -> bool,
) -> Vec<(ChannelId, String)> {
    let mut seen = Vec::new();
    loop {
        match socket.next_frame(WAIT).await {
            Ok(Some(frame)) => {
                if let ServerFrame::MessageNew { payload } = &frame {
                    seen.push((payload.channel_id, payload.content.clone()));
                }
                if wanted(&frame) {
                    return seen;
                }
            }
            other => panic!("no frame ({other:?}); seen {seen:?}\n{}", cell.logs_tail()),
        }
    }
}

fn is_new(content: &'static str) -> impl Fn(&ServerFrame) -> bool {
    move |f| matches!(f, ServerFrame::MessageNew { payload } if payload.content == content)
}

/// Sends `sync` for the channel until the gateway refuses it with `not_a_member` (the
/// membership change reaches the socket's gateway over NATS).
async fn until_sync_refused(
    socket: &mut ChatSocket,
    channel: ChannelId,
    cell: &TestCell,
) -> Vec<(ChannelId, String)> {
    let mut seen = Vec::new();
    for _ in 0..50 {
        socket.sync(&[(channel, 0)]).await.unwrap();
        let refused = |f: &ServerFrame| matches!(f, ServerFrame::Error { payload, .. } if payload.code == ErrorCode::NotAMember);
        let done = |f: &ServerFrame| matches!(f, ServerFrame::SyncDone { .. });
        let mut answer = None;
        seen.extend(
            read_until(socket, cell, |f| {
                if refused(f) || done(f) {
                    answer = Some(refused(f));
                }
                refused(f) || done(f)
            })
            .await,
        );
        if answer == Some(true) {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the sync was never refused\n{}", cell.logs_tail());
}

#[tokio::test]
async fn public_channels_are_listed_joined_and_left_and_a_removed_member_stops_receiving_at_once() {
    let cell =
        TestCell::start(CellOptions { gateways: 2, ..Default::default() }).await.expect("the cell starts");
    let alice = ChatClient::register(&cell.gateway_url(0), "alice").await.unwrap();
    let bob = ChatClient::register(&cell.gateway_url(1), "bob").await.unwrap();
    let rust = alice.create_channel("public", "Rust Lovers", &[]).await.unwrap();
    let percent = alice.create_channel("public", "random_100%", &[]).await.unwrap();
    let secret = alice.create_channel("group", "rust secrets", &[]).await.unwrap();
    let both = alice.create_channel("group", "alice and bob", &[bob.user_id]).await.unwrap();

    // Listing: by name, any case, LIKE's wildcards literal, never a private channel.
    let listed = |page: &Value| -> Vec<String> {
        page["channels"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_owned()).collect()
    };
    let found = get(&bob, "/channels/public?q=RUST").await;
    assert_eq!(listed(&found), vec![rust.to_string()], "{found}");
    assert!(found["channels"][0].get("role").is_none(), "bob is not in it yet");
    assert_eq!(listed(&get(&bob, "/channels/public?q=0%25").await), vec![percent.to_string()]);
    assert!(listed(&get(&bob, "/channels/public?q=_").await).contains(&percent.to_string()));
    assert_eq!(listed(&get(&bob, "/channels/public?q=rando_").await), Vec::<String>::new(), "_ is literal");
    let mut all = listed(&get(&bob, "/channels/public").await);
    all.sort();
    let mut expected = vec![rust.to_string(), percent.to_string()];
    expected.sort();
    assert_eq!(all, expected);
    let too_long = format!("/channels/public?q={}", "x".repeat(101));
    assert_eq!(status(bob.request(Method::GET, &too_long)).await, 422);

    // Joining: a public channel (again is fine), not a private one; the owner cannot leave.
    let joined =
        expect(bob.request(Method::POST, &path(rust, "/join")).send().await.unwrap(), 201).await.unwrap();
    assert_eq!(joined["role"], "member");
    assert_eq!(status(bob.request(Method::POST, &path(rust, "/join"))).await, 200);
    assert_eq!(
        status(bob.request(Method::POST, &path(secret, "/join"))).await,
        404,
        "a private channel is not known"
    );
    assert_eq!(status(alice.request(Method::POST, &path(rust, "/leave"))).await, 409);

    // A joined channel is delivered live, on the other gateway too.
    let mut bob_ws = bob.connect(&cell.ws_url(1)).await.unwrap();
    let mut alice_ws = alice.connect(&cell.ws_url(0)).await.unwrap();
    alice_ws.send_message(rust, "w1", "welcome bob").await.unwrap();
    read_until(&mut bob_ws, &cell, is_new("welcome bob")).await;

    // Leaving stops it: the sync of it is refused, history too.
    assert_eq!(status(bob.request(Method::POST, &path(rust, "/leave"))).await, 204);
    until_sync_refused(&mut bob_ws, rust, &cell).await;
    assert_eq!(status(bob.request(Method::GET, &path(rust, "/messages"))).await, 403);

    // Removed by the owner: at once, nothing more of the channel reaches bob's socket.
    expect(bob.request(Method::POST, &path(rust, "/join")).send().await.unwrap(), 201).await.unwrap();
    alice_ws.send_message(rust, "w2", "welcome back").await.unwrap();
    read_until(&mut bob_ws, &cell, is_new("welcome back")).await;
    let remove = alice.request(Method::DELETE, &path(rust, &format!("/members/{}", bob.user_id)));
    assert_eq!(status(remove).await, 204);
    let seen = until_sync_refused(&mut bob_ws, rust, &cell).await;
    alice_ws.send_message(rust, "w3", "after the removal").await.unwrap();
    alice_ws.send_message(both, "w4", "marker").await.unwrap();
    let mut seen_after = read_until(&mut bob_ws, &cell, is_new("marker")).await;
    seen_after.extend(seen);
    assert!(
        !seen_after.contains(&(rust, "after the removal".to_owned())),
        "a removed member got it: {seen_after:?}"
    );
    bob_ws.send_message(rust, "b1", "still here?").await.unwrap();
    let refused = |f: &ServerFrame| matches!(f, ServerFrame::Error { id: Some(id), payload } if id == "b1" && payload.code == ErrorCode::NotAMember);
    read_until(&mut bob_ws, &cell, refused).await;
}

/// Sends `content` into `channel` (as ids `<id>0`, `<id>1`, …) until the socket's gateway,
/// which learns of the membership over NATS, takes it (`not_a_member` before); returns the
/// `message.new`s read meanwhile.
async fn send_once_a_member(
    socket: &mut ChatSocket,
    channel: ChannelId,
    (id, content): (&str, &str),
    cell: &TestCell,
) -> Vec<(ChannelId, String)> {
    let mut seen = Vec::new();
    for attempt in 0..100 {
        let id = format!("{id}{attempt}");
        socket.send_message(channel, &id, content).await.unwrap();
        let mut was_refused = false;
        seen.extend(
            read_until(socket, cell, |f| match f {
                ServerFrame::MessageAck { id: of, .. } => of.0 == id,
                ServerFrame::Error { id: Some(of), payload } if *of == id => {
                    assert_eq!(payload.code, ErrorCode::NotAMember, "{f:?}");
                    was_refused = true;
                    true
                }
                _ => false,
            })
            .await,
        );
        if !was_refused {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never a member of {channel}\n{}", cell.logs_tail());
}

/// A member added while connected, whose gateway learns of it only after the channel's first
/// message was stored and announced (its gateway frozen meanwhile, so it had no route to hear
/// it), still gets that message live, before the next one, without a `sync`: the gateway
/// reads what the channel stored after the join before it forwards the live messages.
#[tokio::test]
async fn a_member_whose_gateway_hears_of_the_join_late_gets_what_was_sent_meanwhile_first() {
    use nix::sys::signal::Signal;
    let cell =
        TestCell::start(CellOptions { gateways: 2, ..Default::default() }).await.expect("the cell starts");
    let alice = ChatClient::register(&cell.gateway_url(0), "alice").await.unwrap();
    let bob = ChatClient::register(&cell.gateway_url(1), "bob").await.unwrap();
    let mut alice_ws = alice.connect(&cell.ws_url(0)).await.unwrap();
    let mut bob_ws = bob.connect(&cell.ws_url(1)).await.unwrap();

    let frozen = cell.gateways[1].process.as_ref().expect("gateway 1 runs");
    frozen.signal(Signal::SIGSTOP);
    let late = alice.create_channel("group", "late", &[bob.user_id]).await.unwrap();
    let first = "sent before bob's gateway knew";
    let mut seen_by_alice = send_once_a_member(&mut alice_ws, late, ("a", first), &cell).await;
    if !seen_by_alice.iter().any(|(_, content)| content == first) {
        seen_by_alice.extend(read_until(&mut alice_ws, &cell, is_new(first)).await);
    }
    frozen.signal(Signal::SIGCONT);

    let mut seen = send_once_a_member(&mut bob_ws, late, ("b", "bob's first"), &cell).await;
    if !seen.iter().any(|(_, content)| content == "bob's first") {
        seen.extend(read_until(&mut bob_ws, &cell, is_new("bob's first")).await);
    }
    let in_late: Vec<&str> = seen.iter().filter(|(c, _)| *c == late).map(|(_, m)| m.as_str()).collect();
    assert_eq!(in_late, [first, "bob's first"], "{}", cell.logs_tail());
}

/// A channel whose membership change never reaches the sender's gateway (its rows written
/// straight into Postgres, as if the announcement were lost): a send into it is taken all the
/// same — the socket asks the database, joins the channel and gets its own message live —
/// while a send into a channel the user is not in is still refused.
#[tokio::test]
async fn a_send_before_the_membership_change_arrives_is_taken_and_its_socket_joins_the_channel() {
    let cell = TestCell::start(CellOptions::default()).await.expect("the cell starts");
    let alice = ChatClient::register(&cell.gateway_url(0), "alice").await.unwrap();
    let bob = ChatClient::register(&cell.gateway_url(0), "bob").await.unwrap();
    let mut alice_ws = alice.connect(&cell.ws_url(0)).await.unwrap();
    let db = sqlx::PgPool::connect(&cell.database_url()).await.unwrap();
    let unannounced = ChannelId(uuid::Uuid::new_v4());
    sqlx::query("INSERT INTO channels (id, kind, name, creator_id) VALUES ($1, 'group', 'unannounced', $2)")
        .bind(unannounced)
        .bind(alice.user_id)
        .execute(&db)
        .await
        .unwrap();
    sqlx::query("INSERT INTO channel_members (channel_id, user_id, role) VALUES ($1, $2, 'owner')")
        .bind(unannounced)
        .bind(alice.user_id)
        .execute(&db)
        .await
        .unwrap();

    alice_ws.send_message(unannounced, "u1", "before any announcement").await.unwrap();
    read_until(&mut alice_ws, &cell, is_new("before any announcement")).await;

    let bobs = bob.create_channel("group", "bob alone", &[]).await.unwrap();
    alice_ws.send_message(bobs, "u2", "not mine").await.unwrap();
    let refused = |f: &ServerFrame| matches!(f, ServerFrame::Error { id: Some(id), payload } if id == "u2" && payload.code == ErrorCode::NotAMember);
    let seen = read_until(&mut alice_ws, &cell, refused).await;
    assert!(!seen.iter().any(|(channel, _)| *channel == bobs), "{seen:?}");
}

/// Sends `content`s over `socket` and waits until each came back as `message.new`; returns
/// their ids in order.
async fn send_all(
    socket: &mut ChatSocket,
    channel: ChannelId,
    contents: &[&str],
    cell: &TestCell,
) -> Vec<MessageId> {
    for (i, content) in contents.iter().enumerate() {
        socket.send_message(channel, &format!("{channel}-{i}-{}", content.len()), content).await.unwrap();
    }
    let mut ids = vec![None; contents.len()];
    while ids.iter().any(Option::is_none) {
        match socket.next_frame(WAIT).await {
            Ok(Some(ServerFrame::MessageNew { payload })) if payload.channel_id == channel => {
                if let Some(i) = contents.iter().position(|c| *c == payload.content) {
                    ids[i] = Some(payload.message_id);
                }
            }
            Ok(Some(_)) => {}
            other => panic!("no frame ({other:?})\n{}", cell.logs_tail()),
        }
    }
    ids.into_iter().map(Option::unwrap).collect()
}

#[tokio::test]
async fn search_finds_current_messages_in_the_callers_channels_only() {
    let cell = TestCell::start(CellOptions::default()).await.expect("the cell starts");
    let (alice, bob, shared_channel) = cell.two_members(0, 0).await.unwrap();
    let carol = ChatClient::register(&cell.gateway_url(0), "carol").await.unwrap();
    let private = alice.create_channel("group", "alice and carol", &[carol.user_id]).await.unwrap();
    let mut alice_ws = alice.connect(&cell.ws_url(0)).await.unwrap();
    let texts = ["The quick brown fox", "quick thinking", "a lazy dog", "quick, delete me"];
    let ids = send_all(&mut alice_ws, shared_channel, &texts, &cell).await;
    send_all(&mut alice_ws, private, &["a quick secret"], &cell).await;
    alice_ws.delete_message(shared_channel, ids[3], "del").await.unwrap();
    alice_ws.edit_message(shared_channel, ids[2], "edit", "a sleepy cat").await.unwrap();
    read_until(&mut alice_ws, &cell, |f| matches!(f, ServerFrame::MessageUpdated { .. })).await;

    let contents = |page: &Value| -> Vec<String> {
        page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["content"].as_str().unwrap().to_owned())
            .collect()
    };
    let in_shared = |q: &str| path(shared_channel, &format!("/messages/search?q={q}"));
    // Newest first; any case; a deleted message matches nothing.
    assert_eq!(
        contents(&get(&bob, &in_shared("QUICK")).await),
        vec!["quick thinking", "The quick brown fox"]
    );
    assert_eq!(
        contents(&get(&bob, &in_shared("%22brown%20fox%22")).await),
        vec!["The quick brown fox"],
        "a phrase"
    );
    assert_eq!(contents(&get(&bob, &in_shared("quick%20-fox")).await), vec!["quick thinking"], "-excluded");
    // The current content: the edit is found, what it replaced is not.
    assert_eq!(contents(&get(&bob, &in_shared("dog")).await), Vec::<String>::new());
    assert_eq!(contents(&get(&bob, &in_shared("cat")).await), vec!["a sleepy cat"]);
    // Across channels: only the caller's.
    assert_eq!(contents(&get(&bob, "/search?q=quick").await), vec!["quick thinking", "The quick brown fox"]);
    assert_eq!(
        contents(&get(&alice, "/search?q=quick").await),
        vec!["a quick secret", "quick thinking", "The quick brown fox"]
    );
    assert_eq!(contents(&get(&carol, "/search?q=quick").await), vec!["a quick secret"]);
    // Pages by cursor.
    let first = get(&alice, "/search?q=quick&limit=2").await;
    assert_eq!(contents(&first), vec!["a quick secret", "quick thinking"]);
    let cursor = first["next_cursor"].as_str().expect("a full page has a cursor").to_owned();
    let second = get(&alice, &format!("/search?q=quick&limit=2&cursor={cursor}")).await;
    assert_eq!(contents(&second), vec!["The quick brown fox"]);
    assert!(second["next_cursor"].is_null());
    // Refusals: a channel the caller is not in, an empty or over-long query.
    let outsider = path(private, "/messages/search?q=quick");
    assert_eq!(status(bob.request(Method::GET, &outsider)).await, 404);
    assert_eq!(status(bob.request(Method::GET, "/search?q=%20")).await, 422);
    assert_eq!(status(bob.request(Method::GET, &format!("/search?q={}", "x".repeat(201)))).await, 422);
    assert_eq!(status(bob.request(Method::GET, "/search")).await, 400, "q is required");
}
