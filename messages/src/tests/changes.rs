//! `apply_change` against a real Postgres: changes take the channel's next `seq` in order,
//! are checked against what is stored when they come, and are applied once however often
//! they are delivered.

use super::support::{
    TestDb, change, channel, content, counters, edit, events, logged, reaction_add, send, user,
};
use crate::changes::{AppliedChange, Ignored, apply_change};
use crate::persist::{PersistBatch, persist_batch};
use shared::events::{Change, StreamChange, StreamMessage};
use shared::protocol::{ChangeRejection, ServerFrame};
use sqlx::PgPool;

/// Applies `change`; panics on a database error.
async fn apply(db: &PgPool, change: &StreamChange) -> Result<AppliedChange, Ignored> {
    apply_change(db, change).await.expect("no database error")
}

async fn store(db: &PgPool, messages: &[&StreamMessage]) {
    let batch = PersistBatch { messages: messages.iter().map(|m| (*m).clone()).collect() };
    persist_batch(db, &batch).await.expect("stored");
}

fn frame(applied: &AppliedChange) -> ServerFrame {
    serde_json::from_str(&applied.frame).expect("the frame is a server frame")
}

async fn reactions(db: &PgPool, message: &StreamMessage) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM reactions WHERE message_id = $1")
        .bind(message.message_id)
        .fetch_one(db)
        .await
        .expect("reactions read");
    n
}

#[tokio::test]
async fn edits_reactions_and_a_delete_take_the_channels_next_seqs_in_order() {
    let db = TestDb::start().await;
    let (alice, bob) = (user(&db.pool, "alice").await, user(&db.pool, "bob").await);
    let c = channel(&db.pool, &[(&alice, "owner"), (&bob, "member")]).await;
    let (m1, m2) = (send(c, &alice, "m1"), send(c, &bob, "m2"));
    store(&db.pool, &[&m1, &m2]).await;

    let changes = [
        change(&m1, alice.id, "e1", edit("edited")),
        change(&m1, bob.id, "r1", reaction_add("👍")),
        change(&m1, alice.id, "r2", reaction_add("👍")),
        change(&m1, bob.id, "r3", Change::ReactionRemove { emoji: "👍".into() }),
        change(&m1, alice.id, "d1", Change::Delete),
    ];
    let mut applied = Vec::new();
    for change in &changes {
        applied.push(apply(&db.pool, change).await.expect("applied"));
    }

    assert_eq!(applied.iter().map(|a| a.seq.0).collect::<Vec<_>>(), vec![3, 4, 5, 6, 7]);
    assert!(applied.iter().all(|a| a.fresh && a.channel_id == c));
    for a in &applied {
        assert_eq!(frame(a).channel_seq(), Some((c, a.seq)), "{}", a.frame);
    }
    let ServerFrame::MessageUpdated { payload } = frame(&applied[0]) else { panic!("{}", applied[0].frame) };
    assert_eq!((payload.message_id, payload.content.as_str()), (m1.message_id, "edited"));
    let counts: Vec<_> = applied[1..4]
        .iter()
        .map(|a| match frame(a) {
            ServerFrame::ReactionUpdated { payload } => (payload.user_id, payload.added, payload.count),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(counts, vec![(bob.id, true, 1), (alice.id, true, 2), (bob.id, false, 1)]);
    assert!(matches!(frame(&applied[4]), ServerFrame::MessageDeleted { .. }));
    assert_eq!(
        events(&db.pool, c).await,
        logged(&[
            (Some(3), "edit", "e1"),
            (Some(4), "reaction_add", "r1"),
            (Some(5), "reaction_add", "r2"),
            (Some(6), "reaction_remove", "r3"),
            (Some(7), "delete", "d1"),
        ])
    );
    assert_eq!(content(&db.pool, m1.message_id).await, (String::new(), true));
    assert_eq!(reactions(&db.pool, &m1).await, 0, "a delete removes the reactions");

    // Messages and changes number one log; only messages count as messages.
    store(&db.pool, &[&send(c, &bob, "m3")]).await;
    assert_eq!(counters(&db.pool, c).await, (8, 3));
}

#[tokio::test]
async fn an_edit_after_a_delete_is_rejected_without_a_seq_and_judged_once_when_redelivered() {
    let db = TestDb::start().await;
    let alice = user(&db.pool, "alice").await;
    let c = channel(&db.pool, &[(&alice, "owner")]).await;
    let m1 = send(c, &alice, "m1");
    store(&db.pool, &[&m1]).await;
    apply(&db.pool, &change(&m1, alice.id, "d1", Change::Delete)).await.expect("deleted");

    let late_edit = change(&m1, alice.id, "e1", edit("too late"));
    let judged = apply(&db.pool, &late_edit).await;
    assert_eq!(judged, Err(Ignored::Deleted));
    assert_eq!(Ignored::Deleted.rejection(&late_edit.change), Some(ChangeRejection::Deleted));
    // A redelivery is recognised from the log: nothing to tell the author a second time.
    let again = apply(&db.pool, &late_edit).await;
    assert_eq!(again, Err(Ignored::NoOp));
    assert_eq!(Ignored::NoOp.rejection(&late_edit.change), None);

    // What its author wanted holds anyway: a second delete is not rejected.
    let second_delete = change(&m1, alice.id, "d2", Change::Delete);
    assert_eq!(apply(&db.pool, &second_delete).await, Err(Ignored::Deleted));
    assert_eq!(Ignored::Deleted.rejection(&second_delete.change), None);

    assert_eq!(content(&db.pool, m1.message_id).await, (String::new(), true));
    assert_eq!(counters(&db.pool, c).await, (2, 1), "only the delete took a seq");
    assert_eq!(
        events(&db.pool, c).await,
        logged(&[(Some(2), "delete", "d1"), (None, "edit", "e1"), (None, "delete", "d2")])
    );
}

#[tokio::test]
async fn a_redelivered_change_is_returned_as_stored_and_applied_once() {
    let db = TestDb::start().await;
    let (alice, bob) = (user(&db.pool, "alice").await, user(&db.pool, "bob").await);
    let c = channel(&db.pool, &[(&alice, "owner"), (&bob, "member")]).await;
    let m1 = send(c, &alice, "m1");
    store(&db.pool, &[&m1]).await;
    let edit1 = change(&m1, alice.id, "e1", edit("once"));
    let react = change(&m1, bob.id, "r1", reaction_add("🎉"));

    let first = [apply(&db.pool, &edit1).await.unwrap(), apply(&db.pool, &react).await.unwrap()];
    let again = [apply(&db.pool, &edit1).await.unwrap(), apply(&db.pool, &react).await.unwrap()];

    for (first, again) in first.iter().zip(&again) {
        assert!(first.fresh && !again.fresh);
        assert_eq!((again.channel_id, again.seq), (first.channel_id, first.seq));
        assert_eq!(again.frame, first.frame, "the logged frame, re-encoded as it was sent");
    }
    assert_eq!(first.iter().map(|a| a.seq.0).collect::<Vec<_>>(), vec![2, 3]);
    assert_eq!(reactions(&db.pool, &m1).await, 1);
    assert_eq!(counters(&db.pool, c).await.0, 3);
    // The next change takes the very next seq: the redeliveries left no gap.
    let next = apply(&db.pool, &change(&m1, alice.id, "e2", edit("twice"))).await.unwrap();
    assert_eq!(next.seq.0, 4);
    assert_eq!(content(&db.pool, m1.message_id).await, ("twice".into(), false));
}

#[tokio::test]
async fn rights_are_checked_against_the_members_and_roles_stored_now() {
    let db = TestDb::start().await;
    let (alice, bob) = (user(&db.pool, "alice").await, user(&db.pool, "bob").await);
    let (carol, dave) = (user(&db.pool, "carol").await, user(&db.pool, "dave").await);
    let c = channel(&db.pool, &[(&alice, "owner"), (&bob, "member"), (&carol, "admin")]).await;
    let (alices, bobs) = (send(c, &alice, "a1"), send(c, &bob, "b1"));
    store(&db.pool, &[&alices, &bobs]).await;

    let refused = [
        change(&bobs, alice.id, "x1", edit("not mine")),
        change(&alices, bob.id, "x2", Change::Delete),
        change(&alices, dave.id, "x3", reaction_add("👀")),
    ];
    for change in &refused {
        assert_eq!(apply(&db.pool, change).await, Err(Ignored::NotAllowed), "{change:?}");
        assert_eq!(Ignored::NotAllowed.rejection(&change.change), Some(ChangeRejection::Forbidden));
    }
    // An admin may delete anyone's message; a member who left may not react any more.
    assert_eq!(apply(&db.pool, &change(&bobs, carol.id, "d1", Change::Delete)).await.unwrap().seq.0, 3);
    sqlx::query("DELETE FROM channel_members WHERE channel_id = $1 AND user_id = $2")
        .bind(c)
        .bind(bob.id)
        .execute(&db.pool)
        .await
        .unwrap();
    let after_leaving = change(&alices, bob.id, "x4", reaction_add("👍"));
    assert_eq!(apply(&db.pool, &after_leaving).await, Err(Ignored::NotAllowed));

    assert_eq!(counters(&db.pool, c).await.0, 3);
    assert_eq!(content(&db.pool, alices.message_id).await, ("text of a1".into(), false));
    assert_eq!(reactions(&db.pool, &alices).await, 0);
}

#[tokio::test]
async fn a_change_to_what_is_not_there_or_that_changes_nothing_takes_no_seq() {
    let db = TestDb::start().await;
    let alice = user(&db.pool, "alice").await;
    let c = channel(&db.pool, &[(&alice, "owner")]).await;
    let m1 = send(c, &alice, "m1");
    store(&db.pool, &[&m1]).await;
    let never_stored = send(c, &alice, "never");
    let elsewhere = send(shared::ids::ChannelId::new_random(), &alice, "elsewhere");

    let missing_message = change(&never_stored, alice.id, "x1", edit("?"));
    assert_eq!(apply(&db.pool, &missing_message).await, Err(Ignored::NotFound));
    assert_eq!(Ignored::NotFound.rejection(&missing_message.change), Some(ChangeRejection::NotFound));
    let missing_channel = change(&elsewhere, alice.id, "x2", Change::Delete);
    assert_eq!(apply(&db.pool, &missing_channel).await, Err(Ignored::NotFound));
    let nothing_to_remove = change(&m1, alice.id, "x3", Change::ReactionRemove { emoji: "👍".into() });
    assert_eq!(apply(&db.pool, &nothing_to_remove).await, Err(Ignored::NoOp));
    apply(&db.pool, &change(&m1, alice.id, "r1", reaction_add("👍"))).await.unwrap();
    assert_eq!(apply(&db.pool, &change(&m1, alice.id, "r2", reaction_add("👍"))).await, Err(Ignored::NoOp));

    assert_eq!(counters(&db.pool, c).await, (2, 1), "only the first reaction took a seq");
    assert_eq!(
        events(&db.pool, c).await,
        logged(&[
            (None, "edit", "x1"),
            (None, "reaction_remove", "x3"),
            (Some(2), "reaction_add", "r1"),
            (None, "reaction_add", "r2")
        ])
    );
}
