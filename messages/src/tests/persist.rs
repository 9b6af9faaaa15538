//! `persist_batch` against a real Postgres: per-channel `seq`, the dedup key, redeliveries,
//! what it drops or refuses, and the sender's read position.

use super::support::{TestDb, channel, counters, last_read, numbered, send, stored, user};
use crate::persist::{PersistBatch, persist_batch};
use shared::ids::ChannelSeq;

fn batch(messages: &[&shared::events::StreamMessage]) -> PersistBatch {
    PersistBatch { messages: messages.iter().map(|m| (*m).clone()).collect() }
}

#[tokio::test]
async fn a_batch_into_two_channels_takes_contiguous_seqs_per_channel_after_the_stored_ones() {
    let db = TestDb::start().await;
    let alice = user(&db.pool, "alice").await;
    let (a, b) =
        (channel(&db.pool, &[(&alice, "owner")]).await, channel(&db.pool, &[(&alice, "owner")]).await);
    persist_batch(&db.pool, &batch(&[&send(a, &alice, "a1"), &send(a, &alice, "a2")])).await.unwrap();

    let sends = [send(a, &alice, "a3"), send(b, &alice, "b1"), send(a, &alice, "a4"), send(b, &alice, "b2")];
    let rows = persist_batch(&db.pool, &batch(&sends.iter().collect::<Vec<_>>())).await.unwrap();

    assert_eq!(stored(&db.pool, a).await, numbered(1, &["a1", "a2", "a3", "a4"]));
    assert_eq!(stored(&db.pool, b).await, numbered(1, &["b1", "b2"]));
    assert_eq!(counters(&db.pool, a).await, (4, 4), "last_seq and message_count of a");
    assert_eq!(counters(&db.pool, b).await, (2, 2), "last_seq and message_count of b");
    // Returned as stored, every one fresh, by channel then seq.
    let mut expected: Vec<_> = [(a, 3, "a3"), (a, 4, "a4"), (b, 1, "b1"), (b, 2, "b2")].to_vec();
    expected.sort_by_key(|(channel, seq, _)| (*channel, *seq));
    let returned: Vec<_> = rows.iter().map(|r| (r.channel_id, r.seq.0, r.client_msg_id.0.as_str())).collect();
    assert_eq!(returned, expected);
    assert!(rows.iter().all(|r| r.fresh));
}

#[tokio::test]
async fn a_duplicate_within_a_batch_is_stored_once_and_takes_one_seq() {
    let db = TestDb::start().await;
    let alice = user(&db.pool, "alice").await;
    let bob = user(&db.pool, "bob").await;
    let c = channel(&db.pool, &[(&alice, "owner"), (&bob, "member")]).await;
    let first = send(c, &alice, "same");
    // The same dedup key resent past JetStream's window: a new message id, another text.
    let resent = shared::events::StreamMessage { content: "resent".into(), ..send(c, &alice, "same") };
    // Another sender's own "same" is another message.
    let bobs = send(c, &bob, "same");

    let m2 = send(c, &alice, "m2");
    let rows = persist_batch(&db.pool, &batch(&[&first, &m2, &resent, &bobs])).await.unwrap();

    assert_eq!(stored(&db.pool, c).await, numbered(1, &["same", "m2", "same"]));
    assert_eq!(counters(&db.pool, c).await, (3, 3));
    let ids: Vec<_> = rows.iter().map(|r| (r.seq.0, r.message_id, r.content.as_str())).collect();
    assert_eq!(
        ids,
        vec![
            (1, first.message_id, "text of same"),
            (2, m2.message_id, "text of m2"),
            (3, bobs.message_id, "text of same")
        ]
    );
}

#[tokio::test]
async fn a_batch_persisted_twice_is_stored_once_with_its_seqs_and_leaves_no_gap() {
    let db = TestDb::start().await;
    let alice = user(&db.pool, "alice").await;
    let (a, b) =
        (channel(&db.pool, &[(&alice, "owner")]).await, channel(&db.pool, &[(&alice, "owner")]).await);
    let sends = [send(a, &alice, "a1"), send(b, &alice, "b1"), send(a, &alice, "a2")];
    let once = batch(&sends.iter().collect::<Vec<_>>());
    let first = persist_batch(&db.pool, &once).await.unwrap();

    // A redelivery of the whole batch: the stored rows, not fresh, same ids and seqs.
    let again = persist_batch(&db.pool, &once).await.unwrap();
    assert_eq!(again.len(), 3);
    assert!(again.iter().all(|r| !r.fresh));
    let strip = |rows: &[crate::PersistedMessage]| {
        rows.iter().map(|r| (r.message_id, r.channel_id, r.seq, r.content.clone())).collect::<Vec<_>>()
    };
    assert_eq!(strip(&again), strip(&first));
    assert_eq!(counters(&db.pool, a).await, (2, 2));

    // Part of it redelivered with something new: the new one takes the very next seq.
    let mixed = persist_batch(&db.pool, &batch(&[&sends[2], &send(a, &alice, "a3")])).await.unwrap();
    let mixed: Vec<_> = mixed.iter().map(|r| (r.seq, r.fresh)).collect();
    assert_eq!(mixed, vec![(ChannelSeq(2), false), (ChannelSeq(3), true)]);
    assert_eq!(stored(&db.pool, a).await, numbered(1, &["a1", "a2", "a3"]));
    assert_eq!(stored(&db.pool, b).await, numbered(1, &["b1"]));
    assert_eq!(counters(&db.pool, a).await, (3, 3));
}

#[tokio::test]
async fn a_send_into_a_channel_that_is_gone_is_dropped_and_the_rest_of_the_batch_stored() {
    let db = TestDb::start().await;
    let alice = user(&db.pool, "alice").await;
    let c = channel(&db.pool, &[(&alice, "owner")]).await;
    let gone = channel(&db.pool, &[(&alice, "owner")]).await;
    sqlx::query("DELETE FROM channels WHERE id = $1").bind(gone).execute(&db.pool).await.unwrap();
    let never = shared::ids::ChannelId::new_random();

    let sends =
        [send(gone, &alice, "g1"), send(c, &alice, "c1"), send(never, &alice, "n1"), send(c, &alice, "c2")];
    let rows = persist_batch(&db.pool, &batch(&sends.iter().collect::<Vec<_>>())).await.unwrap();

    let returned: Vec<_> = rows.iter().map(|r| (r.channel_id, r.seq.0)).collect();
    assert_eq!(returned, vec![(c, 1), (c, 2)]);
    assert_eq!(stored(&db.pool, c).await, numbered(1, &["c1", "c2"]));
    let (others,): (i64,) = sqlx::query_as("SELECT count(*) FROM messages WHERE channel_id <> $1")
        .bind(c)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(others, 0);
}

/// What the foreign key's `ON DELETE CASCADE` did, the trigger of migration
/// `20261204000001` does: a deleted channel takes its messages and their reactions along, and
/// leaves every other channel's alone.
#[tokio::test]
async fn deleting_a_channel_deletes_its_messages_and_their_reactions_only() {
    let db = TestDb::start().await;
    let alice = user(&db.pool, "alice").await;
    let (doomed, kept) =
        (channel(&db.pool, &[(&alice, "owner")]).await, channel(&db.pool, &[(&alice, "owner")]).await);
    let sends = [send(doomed, &alice, "d1"), send(kept, &alice, "k1"), send(doomed, &alice, "d2")];
    let rows = persist_batch(&db.pool, &batch(&sends.iter().collect::<Vec<_>>())).await.unwrap();
    for row in &rows {
        sqlx::query("INSERT INTO reactions (message_id, user_id, emoji) VALUES ($1, $2, '👍')")
            .bind(row.message_id)
            .bind(alice.id)
            .execute(&db.pool)
            .await
            .unwrap();
    }

    sqlx::query("DELETE FROM channels WHERE id = $1").bind(doomed).execute(&db.pool).await.unwrap();

    assert_eq!(stored(&db.pool, doomed).await, Vec::new());
    assert_eq!(stored(&db.pool, kept).await, numbered(1, &["k1"]));
    let (reactions,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM reactions").fetch_one(&db.pool).await.unwrap();
    assert_eq!(reactions, 1, "only the kept channel's message keeps its reaction");
}

/// The gateway checked membership when it acknowledged the send; an acknowledged message is
/// stored even if its sender left the channel before the worker came to it.
#[tokio::test]
async fn an_acknowledged_send_is_stored_even_if_its_sender_left_the_channel_since() {
    let db = TestDb::start().await;
    let alice = user(&db.pool, "alice").await;
    let bob = user(&db.pool, "bob").await;
    let c = channel(&db.pool, &[(&alice, "owner")]).await;

    persist_batch(&db.pool, &batch(&[&send(c, &bob, "left")])).await.unwrap();

    assert_eq!(stored(&db.pool, c).await, numbered(1, &["left"]));
}

#[tokio::test]
async fn a_batch_postgres_refuses_stores_nothing_and_the_error_is_permanent() {
    let db = TestDb::start().await;
    let alice = user(&db.pool, "alice").await;
    let c = channel(&db.pool, &[(&alice, "owner")]).await;
    let nul = shared::events::StreamMessage { content: "nul \u{0} inside".into(), ..send(c, &alice, "nul") };
    let stranger = shared::protocol::SenderView { id: shared::ids::UserId::new_random(), ..alice.clone() };

    for poison in [nul, send(c, &stranger, "no-such-user")] {
        let error = persist_batch(&db.pool, &batch(&[&send(c, &alice, "good"), &poison])).await.unwrap_err();
        assert!(error.is_permanent(), "{error}");
    }

    assert_eq!(stored(&db.pool, c).await, Vec::new());
    assert_eq!(counters(&db.pool, c).await, (0, 0));
}

#[tokio::test]
async fn each_senders_read_position_moves_to_their_last_new_message_only() {
    let db = TestDb::start().await;
    let (alice, bob, carol) =
        (user(&db.pool, "alice").await, user(&db.pool, "bob").await, user(&db.pool, "carol").await);
    let c = channel(&db.pool, &[(&alice, "owner"), (&bob, "member"), (&carol, "member")]).await;
    let first = [send(c, &alice, "a1"), send(c, &alice, "a2"), send(c, &bob, "b1")];
    persist_batch(&db.pool, &batch(&first.iter().collect::<Vec<_>>())).await.unwrap();

    assert_eq!(last_read(&db.pool, c, alice.id).await, 2);
    assert_eq!(last_read(&db.pool, c, bob.id).await, 3);
    assert_eq!(last_read(&db.pool, c, carol.id).await, 0, "a member who sent nothing");

    // Alice reads on (through the gateway); a redelivery of her messages does not move her back.
    sqlx::query("UPDATE channel_members SET last_read_seq = 3 WHERE channel_id = $1 AND user_id = $2")
        .bind(c)
        .bind(alice.id)
        .execute(&db.pool)
        .await
        .unwrap();
    persist_batch(&db.pool, &batch(&first.iter().collect::<Vec<_>>())).await.unwrap();
    assert_eq!(last_read(&db.pool, c, alice.id).await, 3);
    assert_eq!(last_read(&db.pool, c, bob.id).await, 3);
}
