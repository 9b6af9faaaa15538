//! Notification preferences, from the client's side: each member chooses per channel which
//! messages they are told of (`all`, `mentions`, `none`; by default all of a dm's and the
//! mentions of other channels) and may mute a channel until a time; the channel list carries
//! both. Only members read or set them (a private channel is not there for others: 404);
//! bad bodies get 422.

use reqwest::Method;
use serde_json::{Value, json};
use shared::local::client::{ChatClient, expect};
use shared::local::{CellOptions, TestCell};

fn path(channel: impl std::fmt::Display) -> String {
    format!("/channels/{channel}/notifications")
}

async fn listed(client: &ChatClient, channel: impl std::fmt::Display) -> Value {
    let page = expect(client.request(Method::GET, "/channels").send().await.unwrap(), 200).await.unwrap();
    page["channels"].as_array().unwrap().iter().find(|c| c["id"] == channel.to_string()).unwrap().clone()
}

#[tokio::test]
async fn members_choose_what_they_are_told_of_per_channel_and_mute_until_a_time() {
    let cell = TestCell::start(CellOptions::default()).await.expect("the cell starts");
    let (alice, bob, group) = cell.two_members(0, 0).await.unwrap();
    let carol = ChatClient::register(&cell.gateway_url(0), "carol").await.unwrap();
    let dm = json!({"type": "dm", "member_ids": [bob.user_id]});
    let dm =
        expect(alice.request(Method::POST, "/channels").json(&dm).send().await.unwrap(), 201).await.unwrap();
    let dm = dm["id"].as_str().unwrap().to_owned();

    // The defaults: all of a dm, the mentions of a group.
    let get = |client: &ChatClient, channel: &dyn std::fmt::Display| {
        client.request(Method::GET, &path(channel)).send()
    };
    assert_eq!(
        expect(get(&bob, &dm).await.unwrap(), 200).await.unwrap(),
        json!({"level": "all", "default": true})
    );
    assert_eq!(
        expect(get(&bob, &group).await.unwrap(), 200).await.unwrap(),
        json!({"level": "mentions", "default": true})
    );

    // Bob wants everything of the group, and mutes the dm for an hour.
    let all = json!({"level": "all"});
    let set =
        expect(bob.request(Method::PUT, &path(group)).json(&all).send().await.unwrap(), 200).await.unwrap();
    assert_eq!(set, json!({"level": "all", "default": false}));
    let until = (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mute = json!({"muted_until": until});
    let muted =
        expect(bob.request(Method::PUT, &path(&dm)).json(&mute).send().await.unwrap(), 200).await.unwrap();
    assert_eq!((muted["level"].as_str(), muted["default"].as_bool()), (Some("all"), Some(true)));
    let muted_until = chrono::DateTime::parse_from_rfc3339(muted["muted_until"].as_str().unwrap()).unwrap();
    assert_eq!(muted_until, chrono::DateTime::parse_from_rfc3339(&until).unwrap());

    // The list carries the choices; alice's are her own, untouched.
    assert_eq!(listed(&bob, group).await["notify_level"], "all");
    assert!(listed(&bob, &dm).await["muted_until"].is_string());
    assert!(listed(&alice, group).await.get("notify_level").is_none());
    assert_eq!(expect(get(&alice, &group).await.unwrap(), 200).await.unwrap()["default"], true);

    // A mute that has passed is no mute; an empty body puts the defaults back.
    let past = json!({"level": "none", "muted_until": "2020-01-01T00:00:00Z"});
    let now =
        expect(bob.request(Method::PUT, &path(group)).json(&past).send().await.unwrap(), 200).await.unwrap();
    assert_eq!(now, json!({"level": "none", "default": false}));
    let reset = expect(bob.request(Method::PUT, &path(group)).json(&json!({})).send().await.unwrap(), 200)
        .await
        .unwrap();
    assert_eq!(reset, json!({"level": "mentions", "default": true}));

    // Members only: a group carol is not in is not there for her (404), a public channel she
    // has not joined is not hers to set (403); no such channel; a level that is not one.
    assert_eq!(get(&carol, &group).await.unwrap().status(), 404);
    let public = alice.create_channel("public", "lobby", &[]).await.unwrap();
    assert_eq!(get(&carol, &public).await.unwrap().status(), 403);
    let carol_sets = carol.request(Method::PUT, &path(public)).json(&all).send().await.unwrap();
    assert_eq!(carol_sets.status(), 403);
    assert_eq!(get(&bob, &uuid::Uuid::new_v4()).await.unwrap().status(), 404);
    for bad in [json!({"level": "loud"}), json!({"muted_until": "soon"}), json!({"level": "all", "extra": 1})]
    {
        let answer = bob.request(Method::PUT, &path(group)).json(&bad).send().await.unwrap();
        assert_eq!(answer.status(), 422, "{bad}");
    }
}
