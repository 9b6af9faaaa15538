//! Apps of one test process share the servers and nothing else: the same username registers
//! on both, and neither sees the other's channels.

use crate::support::spawn_app;
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::Value;

#[tokio::test]
async fn two_apps_share_the_servers_but_not_their_data() {
    let (one, two) = tokio::join!(spawn_app(), spawn_app());
    assert_eq!(one.config.nats.urls, two.config.nats.urls, "one NATS for the process");
    assert_eq!(one.config.redis.url.expose_secret(), two.config.redis.url.expose_secret(), "one Redis");
    assert_ne!(one.namespace.database, two.namespace.database);
    assert_ne!(one.config.nats.stream, two.config.nats.stream);
    assert_ne!(one.config.nats.subject_prefix, two.config.nats.subject_prefix);

    let alice_one = one.register("alice").await;
    let alice_two = two.register("alice").await;
    assert_ne!(alice_one.user_id, alice_two.user_id);
    alice_one.create_channel("group", "only on one", &[]).await.unwrap();
    let listed: Value =
        alice_two.request(Method::GET, "/channels").send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["channels"], serde_json::json!([]), "the second app sees none of the first's channels");
}
