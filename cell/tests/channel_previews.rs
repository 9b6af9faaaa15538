//! The channel list previews each channel's newest message: who sent it, when, and the start
//! of its content, so a client's sidebar can show it (and sort by it) without a history call
//! per channel, on every page of the list. Through real servers: sends over a socket, the list
//! over REST.

use reqwest::Method;
use serde_json::Value;
use shared::ids::ChannelId;
use shared::local::client::{ChatClient, expect};
use shared::local::{CellOptions, TestCell, eventually};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// `channel` as `client`'s `GET /channels` lists it.
async fn listed(client: &ChatClient, channel: ChannelId) -> Value {
    let page = expect(client.request(Method::GET, "/channels").send().await.unwrap(), 200).await.unwrap();
    page["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == channel.to_string())
        .unwrap_or_else(|| panic!("{channel} in {page}"))
        .clone()
}

/// The preview once it names the message with `seq`.
async fn preview_at(client: &ChatClient, channel: ChannelId, seq: i64) -> Value {
    eventually(WAIT, &format!("the preview of seq {seq}"), || async {
        listed(client, channel).await["last_message"]["seq"] == seq
    })
    .await;
    listed(client, channel).await["last_message"].clone()
}

#[tokio::test]
async fn the_channel_list_previews_each_channels_newest_message_as_it_is_now() {
    let cell = TestCell::start(CellOptions::default()).await.expect("the cell starts");
    let (alice, bob, channel) = cell.two_members(0, 0).await.unwrap();
    assert!(listed(&bob, channel).await.get("last_message").is_none(), "no message, no preview");

    let mut socket = alice.connect(&cell.ws_url(0)).await.unwrap();
    socket.send_message(channel, "p1", "first").await.unwrap();
    let long: String = "ünïcödé ".repeat(30); // 240 characters, 330 bytes
    socket.send_message(channel, "p2", &long).await.unwrap();
    let preview = preview_at(&bob, channel, 2).await;
    assert_eq!(preview["sender"]["id"], alice.user_id.to_string());
    assert_eq!(preview["sender"]["username"], alice.username);
    assert_eq!(preview["content_type"], "text");
    assert_eq!(
        preview["content"].as_str().unwrap(),
        long.chars().take(100).collect::<String>(),
        "100 characters"
    );
    assert!(preview["created_at"].is_string() && preview["message_id"].is_string(), "{preview}");
    assert!(preview.get("deleted").is_none(), "{preview}");

    // An edit takes a seq but is no message: the preview is the message, as edited.
    let message = preview["message_id"].as_str().unwrap().to_owned();
    let path = format!("/channels/{channel}/messages/{message}");
    let edit = serde_json::json!({"content": "edited"});
    expect(alice.request(Method::PATCH, &path).json(&edit).send().await.unwrap(), 202).await.unwrap();
    eventually(WAIT, "the edit in the preview", || async {
        listed(&bob, channel).await["last_message"]["content"] == "edited"
    })
    .await;
    assert_eq!(listed(&bob, channel).await["last_message"]["seq"], 2);

    // Deleted: the preview says so and carries no content.
    expect(alice.request(Method::DELETE, &path).send().await.unwrap(), 202).await.unwrap();
    eventually(WAIT, "the delete in the preview", || async {
        listed(&bob, channel).await["last_message"]["deleted"] == true
    })
    .await;
    let deleted = listed(&bob, channel).await["last_message"].clone();
    assert_eq!((deleted["seq"].as_i64(), deleted["content"].as_str()), (Some(2), Some("")), "{deleted}");

    // A newer message takes its place.
    socket.send_message(channel, "p3", "third").await.unwrap();
    assert_eq!(preview_at(&bob, channel, 5).await["content"], "third");
}

/// The list pages by channel id: each page holds the next channels after the cursor, each
/// with its preview, and the pages together hold each channel once.
#[tokio::test]
async fn the_channel_list_pages_by_id_with_previews_on_every_page() {
    let cell = TestCell::start(CellOptions::default()).await.expect("the cell starts");
    let (alice, bob, first) = cell.two_members(0, 0).await.unwrap();
    let mut channels = vec![first];
    for name in ["second", "third"] {
        channels.push(alice.create_channel("group", name, &[bob.user_id]).await.unwrap());
    }
    let mut socket = alice.connect(&cell.ws_url(0)).await.unwrap();
    for (i, channel) in channels.iter().enumerate() {
        socket.send_message(*channel, &format!("c{i}"), &format!("in {i}")).await.unwrap();
    }
    for channel in &channels {
        preview_at(&bob, *channel, 1).await;
    }
    let page = |query: String| {
        let bob = &bob;
        async move {
            expect(bob.request(Method::GET, &format!("/channels?{query}")).send().await.unwrap(), 200)
                .await
                .unwrap()
        }
    };
    let one = page("limit=2".into()).await;
    let cursor = one["next_cursor"].as_str().expect("a next page").to_owned();
    let two = page(format!("limit=2&cursor={cursor}")).await;
    assert!(two.get("next_cursor").is_none_or(Value::is_null), "{two}");
    let listed: Vec<&Value> =
        one["channels"].as_array().unwrap().iter().chain(two["channels"].as_array().unwrap()).collect();
    let ids: Vec<String> = listed.iter().map(|c| c["id"].as_str().unwrap().to_owned()).collect();
    let mut expected: Vec<String> = channels.iter().map(|c| c.to_string()).collect();
    expected.sort();
    assert_eq!(ids, expected, "each channel once, by id");
    assert!(
        listed.iter().all(|c| c["last_message"]["content"].as_str().unwrap().starts_with("in ")),
        "{listed:?}"
    );
}
