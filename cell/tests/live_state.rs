//! Live state that is not a message, from the clients' side: read receipts (a reader's other
//! devices follow, positions never move backwards, unread counts and who-read-what over
//! REST) and typing indicators (told to the channel's other members, ended when the typer
//! goes quiet, never stored) and presence (online while any device is, away by choice,
//! offline with a last-seen time, told only to those who share a channel) and the receipts of
//! others in small channels ("seen by").

use shared::ids::{ChannelId, ChannelSeq};
use shared::local::client::{ChatClient, ChatSocket, expect};
use shared::local::{CellOptions, TestCell};
use shared::protocol::{ErrorCode, PresenceStatus, PresenceView, ServerFrame, TypingUpdatePayload};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// The next frame that `pick` accepts, skipping others.
async fn next_matching<T>(socket: &mut ChatSocket, mut pick: impl FnMut(ServerFrame) -> Option<T>) -> T {
    loop {
        match socket.next_frame(WAIT).await.unwrap() {
            Some(frame) => {
                if let Some(found) = pick(frame) {
                    return found;
                }
            }
            None => panic!("nothing came"),
        }
    }
}

async fn read(socket: &mut ChatSocket, channel: ChannelId, seq: i64) {
    let frame = serde_json::json!({"type": "message.read", "payload": {"channel_id": channel, "seq": seq}});
    socket.send_text(frame.to_string()).await.unwrap();
}

async fn read_updated(socket: &mut ChatSocket) -> (ChannelId, i64) {
    next_matching(socket, |frame| match frame {
        ServerFrame::ReadUpdated { payload } => Some((payload.channel_id, payload.last_read_seq.0)),
        _ => None,
    })
    .await
}

/// The caller's `(last_read_seq, unread_count)` of `channel` in `GET /channels`.
async fn unread(client: &ChatClient, channel: ChannelId) -> (i64, i64) {
    let page =
        expect(client.request(reqwest::Method::GET, "/channels").send().await.unwrap(), 200).await.unwrap();
    let entry = page["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == channel.to_string())
        .unwrap_or_else(|| panic!("{channel} in {page}"))
        .clone();
    (entry["last_read_seq"].as_i64().unwrap(), entry["unread_count"].as_i64().unwrap())
}

#[tokio::test]
async fn read_positions_follow_the_reader_across_devices_and_never_move_back() {
    let cell = TestCell::start(CellOptions { gateways: 2, ..Default::default() }).await.expect("cell starts");
    let (alice, bob, channel) = cell.two_members(0, 1).await.unwrap();
    let mut alice_ws = alice.connect(&cell.ws_url(0)).await.unwrap();
    // Bob on two devices, one per gateway.
    let mut phone = bob.connect(&cell.ws_url(1)).await.unwrap();
    let mut laptop = bob.via(&cell.gateway_url(0)).connect(&cell.ws_url(0)).await.unwrap();
    for i in 0..5 {
        alice_ws.send_message(channel, &format!("m{i}"), "hello").await.unwrap();
    }
    for device in [&mut phone, &mut laptop] {
        let last = next_matching(device, |frame| match frame {
            ServerFrame::MessageNew { payload } if payload.seq.0 == 5 => Some(payload.seq),
            _ => None,
        })
        .await;
        assert_eq!(last, ChannelSeq(5));
    }
    // Her own messages count as read for alice; bob has read nothing yet.
    assert_eq!(unread(&alice, channel).await, (5, 0));
    assert_eq!(unread(&bob, channel).await, (0, 5));

    // Bob reads up to 3 on his phone: both devices hear of it.
    read(&mut phone, channel, 3).await;
    assert_eq!(read_updated(&mut phone).await, (channel, 3));
    assert_eq!(read_updated(&mut laptop).await, (channel, 3));
    assert_eq!(unread(&bob, channel).await, (3, 2));

    // An older position from the laptop does not move it back (and tells no one); a position
    // past the end stops at the channel's last seq.
    read(&mut laptop, channel, 2).await;
    read(&mut laptop, channel, 99).await;
    assert_eq!(read_updated(&mut phone).await, (channel, 5));
    assert_eq!(read_updated(&mut laptop).await, (channel, 5));
    assert_eq!(unread(&bob, channel).await, (5, 0));

    // Members see how far each has read; others do not see the channel at all.
    let reads = expect(
        alice.request(reqwest::Method::GET, &format!("/channels/{channel}/reads")).send().await.unwrap(),
        200,
    )
    .await
    .unwrap();
    let mut positions: Vec<(String, i64)> = reads["reads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["user_id"].as_str().unwrap().to_owned(), r["last_read_seq"].as_i64().unwrap()))
        .collect();
    positions.sort();
    let mut expected = vec![(alice.user_id.to_string(), 5), (bob.user_id.to_string(), 5)];
    expected.sort();
    assert_eq!(positions, expected);
    let carol = ChatClient::register(&cell.gateway_url(0), "carol").await.unwrap();
    let outsider =
        carol.request(reqwest::Method::GET, &format!("/channels/{channel}/reads")).send().await.unwrap();
    assert_eq!(outsider.status(), 404);
    let mut carol_ws = carol.connect(&cell.ws_url(0)).await.unwrap();
    let frame =
        serde_json::json!({"type": "message.read", "id": "r1", "payload": {"channel_id": channel, "seq": 1}});
    carol_ws.send_text(frame.to_string()).await.unwrap();
    let refused = next_matching(&mut carol_ws, |frame| match frame {
        ServerFrame::Error { id, payload } => Some((id, payload.code)),
        _ => None,
    })
    .await;
    assert_eq!(refused, (Some("r1".to_owned()), ErrorCode::NotAMember));
}

async fn typing(socket: &mut ChatSocket, channel: ChannelId) {
    let frame = serde_json::json!({"type": "typing.start", "payload": {"channel_id": channel}});
    socket.send_text(frame.to_string()).await.unwrap();
}

async fn typing_update(socket: &mut ChatSocket) -> TypingUpdatePayload {
    next_matching(socket, |frame| match frame {
        ServerFrame::TypingUpdate { payload } => Some(payload),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn typing_is_told_to_the_other_members_and_ends_when_the_typer_goes_quiet() {
    let cell = TestCell::start(CellOptions { gateways: 2, ..Default::default() }).await.expect("cell starts");
    let (alice, bob, channel) = cell.two_members(0, 1).await.unwrap();
    let carol = ChatClient::register(&cell.gateway_url(0), "carol").await.unwrap();
    expect(
        alice
            .request(reqwest::Method::POST, &format!("/channels/{channel}/members"))
            .json(&serde_json::json!({"user_id": carol.user_id}))
            .send()
            .await
            .unwrap(),
        201,
    )
    .await
    .unwrap();
    let mut alice_ws = alice.connect(&cell.ws_url(0)).await.unwrap();
    let mut bob_ws = bob.connect(&cell.ws_url(1)).await.unwrap();
    let mut carol_ws = carol.connect(&cell.ws_url(0)).await.unwrap();

    // Alice types (repeating, as clients do): bob on the other gateway and carol on hers see
    // her, once; then bob types too.
    typing(&mut alice_ws, channel).await;
    typing(&mut alice_ws, channel).await;
    for socket in [&mut bob_ws, &mut carol_ws] {
        let update = typing_update(socket).await;
        assert_eq!((update.channel_id, update.users), (channel, vec![alice.user_id]));
    }
    typing(&mut bob_ws, channel).await;
    let update = typing_update(&mut carol_ws).await;
    let mut both = vec![alice.user_id, bob.user_id];
    both.sort();
    assert_eq!(update.users, both);
    // Alice sees bob, never herself.
    assert_eq!(typing_update(&mut alice_ws).await.users, vec![bob.user_id]);

    // Both go quiet: the list empties (alice's and bob's expire about together, so carol may
    // see one or two updates on the way).
    let mut users = update.users;
    while !users.is_empty() {
        users = typing_update(&mut carol_ws).await.users;
    }

    // Nothing of it was stored: the channel has no messages.
    let history = expect(
        carol.request(reqwest::Method::GET, &format!("/channels/{channel}/messages")).send().await.unwrap(),
        200,
    )
    .await
    .unwrap();
    assert_eq!(history["messages"].as_array().map(Vec::len), Some(0), "{history}");

    // Someone outside the channel cannot type in it.
    let dave = ChatClient::register(&cell.gateway_url(0), "dave").await.unwrap();
    let mut dave_ws = dave.connect(&cell.ws_url(0)).await.unwrap();
    let frame = serde_json::json!({"type": "typing.start", "id": "t1", "payload": {"channel_id": channel}});
    dave_ws.send_text(frame.to_string()).await.unwrap();
    let refused = next_matching(&mut dave_ws, |frame| match frame {
        ServerFrame::Error { id, payload } => Some((id, payload.code)),
        _ => None,
    })
    .await;
    assert_eq!(refused, (Some("t1".to_owned()), ErrorCode::NotAMember));
}

async fn presence_update(socket: &mut ChatSocket) -> PresenceView {
    next_matching(socket, |frame| match frame {
        ServerFrame::PresenceUpdate { payload } => Some(payload),
        _ => None,
    })
    .await
}

async fn status_over_rest(client: &ChatClient, user: shared::ids::UserId) -> serde_json::Value {
    expect(client.request(reqwest::Method::GET, &format!("/users/{user}")).send().await.unwrap(), 200)
        .await
        .unwrap()
}

#[tokio::test]
async fn presence_follows_every_device_and_is_told_to_those_who_share_a_channel() {
    let cell = TestCell::start(CellOptions { gateways: 2, ..Default::default() }).await.expect("cell starts");
    let (alice, bob, _) = cell.two_members(0, 1).await.unwrap();
    let mut alice_ws = alice.connect(&cell.ws_url(0)).await.unwrap().with_presence();
    assert_eq!(status_over_rest(&alice, bob.user_id).await["status"], "offline");

    // Bob comes online on his phone (other gateway): alice hears it.
    let mut phone = bob.connect(&cell.ws_url(1)).await.unwrap();
    let update = presence_update(&mut alice_ws).await;
    assert_eq!((update.user_id, update.status), (bob.user_id, PresenceStatus::Online));
    // He steps away; then his laptop connects too: still away, and nothing new is told.
    let away = serde_json::json!({"type": "presence.set", "payload": {"status": "away"}});
    phone.send_text(away.to_string()).await.unwrap();
    assert_eq!(presence_update(&mut alice_ws).await.status, PresenceStatus::Away);
    assert_eq!(status_over_rest(&alice, bob.user_id).await["status"], "away");
    let laptop = bob.via(&cell.gateway_url(0)).connect(&cell.ws_url(0)).await.unwrap();

    // The phone goes: the laptop keeps him present. Then the laptop goes: offline, with
    // when he was last seen, live and over REST.
    phone.close().await;
    laptop.close().await;
    let update = presence_update(&mut alice_ws).await;
    assert_eq!(update.status, PresenceStatus::Offline, "{update:?}");
    let seen = update.last_seen_at.expect("last seen");
    assert!(seen <= chrono::Utc::now());
    let rest = status_over_rest(&alice, bob.user_id).await;
    assert_eq!(rest["status"], "offline");
    assert_eq!(
        rest["last_seen_at"].as_str().map(|s| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap()),
        Some(seen)
    );

    // Carol shares no channel with bob: she is never told about him.
    let carol = ChatClient::register(&cell.gateway_url(0), "carol").await.unwrap();
    let mut carol_ws = carol.connect(&cell.ws_url(0)).await.unwrap().with_presence();
    let _phone = bob.connect(&cell.ws_url(1)).await.unwrap();
    // Back, still away as he chose.
    assert_eq!(presence_update(&mut alice_ws).await.status, PresenceStatus::Away);
    match carol_ws.next_frame(Duration::from_secs(2)).await.unwrap() {
        None => {}
        Some(frame) => panic!("carol was told {frame:?}"),
    }
}

/// A gateway killed with `kill -9` announces nothing; its users are announced offline by
/// another gateway's sweep once their socket leases run out (3 s here, 60 s by default).
#[tokio::test]
async fn the_users_of_a_crashed_gateway_are_announced_offline() {
    let options = CellOptions {
        gateways: 2,
        extra_config: "[limits]\nsocket_lease = 3\n".into(),
        ..Default::default()
    };
    let mut cell = TestCell::start(options).await.expect("cell starts");
    let (alice, bob, _) = cell.two_members(0, 1).await.unwrap();
    let mut alice_ws = alice.connect(&cell.ws_url(0)).await.unwrap().with_presence();
    let _bob_ws = bob.connect(&cell.ws_url(1)).await.unwrap();
    let update = presence_update(&mut alice_ws).await;
    assert_eq!((update.user_id, update.status), (bob.user_id, PresenceStatus::Online));

    cell.gateways[1].kill9();
    let update = presence_update(&mut alice_ws).await;
    assert_eq!((update.user_id, update.status), (bob.user_id, PresenceStatus::Offline), "{update:?}");
    assert_eq!(status_over_rest(&alice, bob.user_id).await["status"], "offline");
    // Alice, on the live gateway, renews her lease: well past a lease, she is still online.
    assert_eq!(status_over_rest(&bob.via(&cell.gateway_url(0)), alice.user_id).await["status"], "online");
}

/// Presence goes out only over channels of at most `gateway.presence_max_members` members (3
/// here): a channel's members come and go, each transition told to all of them, so a large
/// channel would cost the square of its members. The counts follow members as they are
/// added at creation and removed.
#[tokio::test]
async fn presence_is_told_over_small_channels_only() {
    let options = CellOptions { gateway_config: "presence_max_members = 3".into(), ..Default::default() };
    let cell = TestCell::start(options).await.expect("cell starts");
    let url = cell.gateway_url(0);
    let alice = ChatClient::register(&url, "alice").await.unwrap();
    let [bob, carol, dave, erin] =
        ["bob", "carol", "dave", "erin"].map(|name| ChatClient::register(&url, name));
    let (bob, carol, dave, erin) = tokio::try_join!(bob, carol, dave, erin).unwrap();
    alice.create_channel("group", "small", &[bob.user_id]).await.unwrap();
    let big =
        alice.create_channel("group", "big", &[carol.user_id, dave.user_id, erin.user_id]).await.unwrap();
    let mut alice_ws = alice.connect(&cell.ws_url(0)).await.unwrap().with_presence();

    // Carol shares only the channel of 4 with alice, bob the channel of 2: alice hears bob.
    let _carol_ws = carol.connect(&cell.ws_url(0)).await.unwrap();
    let _bob_ws = bob.connect(&cell.ws_url(0)).await.unwrap();
    let update = presence_update(&mut alice_ws).await;
    assert_eq!((update.user_id, update.status), (bob.user_id, PresenceStatus::Online), "carol's was told");
    while let Some(frame) = alice_ws.next_frame(Duration::from_secs(2)).await.unwrap() {
        assert!(!matches!(frame, ServerFrame::PresenceUpdate { .. }), "alice was told {frame:?}");
    }

    // Erin leaves the channel of 4: at 3 it is small enough, and dave is heard.
    let path = format!("/channels/{big}/members/{}", erin.user_id);
    expect(alice.request(reqwest::Method::DELETE, &path).send().await.unwrap(), 204).await.unwrap();
    let _dave_ws = dave.connect(&cell.ws_url(0)).await.unwrap();
    let update = presence_update(&mut alice_ws).await;
    assert_eq!((update.user_id, update.status), (dave.user_id, PresenceStatus::Online));
}

/// The `(channel, user, last_read_seq)` of the next `receipt.updated`, whatever its channel:
/// a receipt that should not have come is the one returned, and fails the comparison.
async fn receipt(socket: &mut ChatSocket) -> (ChannelId, shared::ids::UserId, i64) {
    next_matching(socket, |frame| match frame {
        ServerFrame::ReceiptUpdated { payload } => {
            Some((payload.channel_id, payload.user_id, payload.last_read_seq.0))
        }
        _ => None,
    })
    .await
}

/// Frames up to `channel`'s next `typing.update`: the barrier after which a receipt published
/// before it would have arrived (both go over the channel's delivery subject).
async fn until_typing(socket: &mut ChatSocket, channel: ChannelId) -> Vec<ServerFrame> {
    let mut before = Vec::new();
    loop {
        match socket.next_frame(WAIT).await.unwrap().expect("the typing update comes") {
            ServerFrame::TypingUpdate { payload } if payload.channel_id == channel => return before,
            frame => before.push(frame),
        }
    }
}

/// Read receipts of others ("seen by") go to the other members of channels of at most
/// `gateway.receipts_max_members` members (2 here), across gateways, each way; never to the
/// reader's own sockets (they have `read.updated`), never over a larger channel (a message
/// read by all N members would cost N² frames).
#[tokio::test]
async fn members_of_small_channels_are_told_how_far_the_others_have_read() {
    let options =
        CellOptions { gateways: 2, gateway_config: "receipts_max_members = 2".into(), ..Default::default() };
    let cell = TestCell::start(options).await.expect("cell starts");
    let (alice, bob, small) = cell.two_members(0, 1).await.unwrap();
    let carol = ChatClient::register(&cell.gateway_url(0), "carol").await.unwrap();
    let dave = ChatClient::register(&cell.gateway_url(0), "dave").await.unwrap();
    let big = alice.create_channel("group", "big", &[carol.user_id, dave.user_id]).await.unwrap();
    let mut alice_ws = alice.connect(&cell.ws_url(0)).await.unwrap();
    let mut bob_ws = bob.connect(&cell.ws_url(1)).await.unwrap();
    let mut carol_ws = carol.connect(&cell.ws_url(0)).await.unwrap();
    alice_ws.send_message(small, "s1", "to bob").await.unwrap();
    alice_ws.send_message(big, "b1", "to all").await.unwrap();
    // Carol reads first, in the channel of 3; then bob, in the channel of 2.
    for (socket, channel) in [(&mut carol_ws, big), (&mut bob_ws, small)] {
        next_matching(socket, |f| matches!(f, ServerFrame::MessageNew { .. }).then_some(())).await;
        read(socket, channel, 1).await;
        assert_eq!(read_updated(socket).await, (channel, 1));
    }
    // Alice's first receipt is bob's, from the other gateway: carol's was not sent.
    assert_eq!(receipt(&mut alice_ws).await, (small, bob.user_id, 1));

    // The other way: bob writes, alice reads; bob hears it, alice's own socket does not.
    bob_ws.send_message(small, "s2", "to alice").await.unwrap();
    next_matching(&mut alice_ws, |f| matches!(f, ServerFrame::MessageNew { .. }).then_some(())).await;
    read(&mut alice_ws, small, 2).await;
    assert_eq!(receipt(&mut bob_ws).await, (small, alice.user_id, 2));
    assert_eq!(read_updated(&mut alice_ws).await, (small, 2));
    // Bob types once he has alice's receipt: by his typing, alice would have her own too.
    bob_ws
        .send_text(serde_json::json!({"type": "typing.start", "payload": {"channel_id": small}}).to_string())
        .await
        .unwrap();
    let before = until_typing(&mut alice_ws, small).await;
    assert!(
        !before.iter().any(|f| matches!(f, ServerFrame::ReceiptUpdated { .. })),
        "alice was told: {before:?}"
    );
}
