//! One step of the partition loop against real JetStream and Postgres: what it stores, what it
//! announces on the delivery subjects, what it dead-letters, and that it acknowledges it all.

use super::support::{change, channel, edit, events, logged, numbered, send, stored, user};
use super::worker::{TestWorker, header};
use async_nats::jetstream::AckKind;
use shared::events::{Change, FRAME_HEADER, SEQ_HEADER, StreamMessage, USER_HEADER};
use shared::protocol::{ChangeRejection, MessageView, ServerFrame};
use std::time::Duration;

/// `(seq header, client id)` of each `message.new` delivery.
fn delivered(deliveries: &[async_nats::Message]) -> Vec<(i64, String)> {
    deliveries
        .iter()
        .map(|d| {
            assert_eq!(header(d, FRAME_HEADER), None, "a message, not a frame");
            let view: MessageView = serde_json::from_slice(&d.payload).expect("a message view");
            let seq: i64 = header(d, SEQ_HEADER).expect("seq header").parse().expect("a number");
            assert_eq!(seq, view.seq.0);
            (seq, view.client_id.0)
        })
        .collect()
}

#[tokio::test]
async fn one_step_stores_a_batch_announces_it_in_seq_order_and_acks_it() {
    let mut worker = TestWorker::start().await;
    let db = worker.db.pool.clone();
    let alice = user(&db, "alice").await;
    let (a, b) = (channel(&db, &[(&alice, "owner")]).await, channel(&db, &[(&alice, "owner")]).await);
    let (mut to_a, mut to_b) = (
        worker.watch(worker.deps.subjects.deliver(a)).await,
        worker.watch(worker.deps.subjects.deliver(b)).await,
    );
    for (c, id) in [(a, "a1"), (b, "b1"), (a, "a2"), (a, "a3"), (b, "b2")] {
        worker.publish(&send(c, &alice, id)).await;
    }

    let batch = worker.pull(5).await;
    worker.step(&batch).await;

    assert_eq!(stored(&db, a).await, numbered(1, &["a1", "a2", "a3"]));
    assert_eq!(stored(&db, b).await, numbered(1, &["b1", "b2"]));
    assert_eq!(delivered(&worker.seen(&mut to_a).await), numbered(1, &["a1", "a2", "a3"]));
    assert_eq!(delivered(&worker.seen(&mut to_b).await), numbered(1, &["b1", "b2"]));
    assert_eq!(worker.pending().await, (0, 0), "everything pulled and acknowledged");
    assert_eq!(worker.deps.metrics.persisted.get(), 5);
}

#[tokio::test]
async fn steps_handed_to_the_finisher_are_announced_in_stream_order_and_all_acked_by_its_close() {
    let mut worker = TestWorker::start().await;
    let db = worker.db.pool.clone();
    let alice = user(&db, "alice").await;
    let c = channel(&db, &[(&alice, "owner")]).await;
    let mut deliveries = worker.watch(worker.deps.subjects.deliver(c)).await;
    let ids: Vec<String> = (1..=9).map(|i| format!("m{i}")).collect();
    for id in &ids {
        worker.publish(&send(c, &alice, id)).await;
    }

    // Three batches stored one after the other, each handed on before the next is stored.
    let finisher = crate::finish::Finisher::start(worker.deps.clone());
    for _ in 0..3 {
        let batch = worker.pull(3).await;
        let finish = crate::partition::step(&worker.deps, shared::subjects::Partition(0), &batch)
            .await
            .expect("step succeeds");
        assert_eq!(finish.acks.len(), 3);
        finisher.hand(finish).await;
    }
    finisher.close().await;

    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(stored(&db, c).await, numbered(1, &ids));
    assert_eq!(delivered(&worker.seen(&mut deliveries).await), numbered(1, &ids));
    assert_eq!(worker.pending().await, (0, 0), "every batch acknowledged once the finisher closed");
}

#[tokio::test]
async fn a_step_dead_letters_what_can_never_be_stored_drops_what_has_no_channel_and_stores_the_rest() {
    let mut worker = TestWorker::start().await;
    let db = worker.db.pool.clone();
    let alice = user(&db, "alice").await;
    let c = channel(&db, &[(&alice, "owner")]).await;
    let mut deliveries = worker.watch(worker.deps.subjects.deliver(c)).await;
    let nul = StreamMessage { content: "nul \u{0} inside".into(), ..send(c, &alice, "nul") };
    let stranger = shared::protocol::SenderView { id: shared::ids::UserId::new_random(), ..alice.clone() };
    let no_such_user = send(c, &stranger, "stranger");
    worker.publish(&send(c, &alice, "g1")).await;
    worker.publish_raw(c, async_nats::HeaderMap::new(), b"not json at all".to_vec()).await;
    worker.publish(&nul).await;
    worker.publish(&send(c, &alice, "g2")).await;
    worker.publish(&no_such_user).await;
    worker.publish(&send(c, &alice, "g3")).await;
    // Its channel is gone: dropped, neither stored nor dead-lettered.
    let gone = shared::ids::ChannelId::new_random();
    worker.publish(&send(gone, &alice, "gone")).await;

    let batch = worker.pull(7).await;
    worker.step(&batch).await;

    assert_eq!(stored(&db, c).await, numbered(1, &["g1", "g2", "g3"]));
    assert_eq!(delivered(&worker.seen(&mut deliveries).await), numbered(1, &["g1", "g2", "g3"]));
    assert_eq!(worker.pending().await, (0, 0), "stored ones acknowledged, dead letters terminated");
    let letters = worker.deps.js.get_stream(&worker.deps.config.nats.dead_letter_stream).await.unwrap();
    let mut found = Vec::new();
    for sequence in 1..=3 {
        let letter = letters.direct_get(sequence).await.expect("three dead letters");
        let reason = letter.headers.get(crate::REASON_HEADER).map(|v| v.to_string());
        let original = letter.headers.get(crate::SEQUENCE_HEADER).map(|v| v.to_string());
        found.push((original.unwrap_or_default(), reason.unwrap_or_default(), letter.payload.to_vec()));
    }
    let payload = |m: &StreamMessage| serde_json::to_vec(m).unwrap();
    assert_eq!(
        found,
        vec![
            ("2".into(), "undecodable".into(), b"not json at all".to_vec()),
            ("3".into(), "rejected".into(), payload(&nul)),
            ("5".into(), "rejected".into(), payload(&no_such_user)),
        ]
    );
    assert!(letters.direct_get(4).await.is_err(), "exactly three dead letters");
    assert_eq!(stored(&db, gone).await, Vec::new());
}

#[tokio::test]
async fn a_step_applies_changes_after_the_sends_before_them_and_tells_the_author_of_a_rejected_one() {
    let mut worker = TestWorker::start().await;
    let db = worker.db.pool.clone();
    let alice = user(&db, "alice").await;
    let c = channel(&db, &[(&alice, "owner")]).await;
    let mut deliveries = worker.watch(worker.deps.subjects.deliver(c)).await;
    let mut to_users = worker.watch(worker.deps.subjects.user_frames()).await;
    let m1 = send(c, &alice, "m1");
    worker.publish(&m1).await;
    worker.publish_change(&change(&m1, alice.id, "e1", edit("edited"))).await;
    worker.publish_change(&change(&m1, alice.id, "d1", Change::Delete)).await;
    worker.publish_change(&change(&m1, alice.id, "e2", edit("too late"))).await;

    let batch = worker.pull(4).await;
    worker.step(&batch).await;

    let seen = worker.seen(&mut deliveries).await;
    assert_eq!(delivered(&seen[..1]), numbered(1, &["m1"]));
    let frames: Vec<_> = seen[1..]
        .iter()
        .map(|d| {
            assert_eq!(header(d, FRAME_HEADER), Some("1"));
            let frame: ServerFrame = serde_json::from_slice(&d.payload).expect("a frame");
            (header(d, SEQ_HEADER).map(str::to_owned), frame.channel_seq().map(|(_, seq)| seq.0), frame)
        })
        .collect();
    assert_eq!(frames.len(), 2, "{frames:?}");
    assert!(
        matches!(&frames[0], (Some(s), Some(2), ServerFrame::MessageUpdated { .. }) if s == "2"),
        "{frames:?}"
    );
    assert!(
        matches!(&frames[1], (Some(s), Some(3), ServerFrame::MessageDeleted { .. }) if s == "3"),
        "{frames:?}"
    );
    let told = worker.seen(&mut to_users).await;
    assert_eq!(told.len(), 1, "one change.rejected");
    assert_eq!(header(&told[0], USER_HEADER), Some(alice.id.to_string().as_str()));
    let ServerFrame::ChangeRejected { id, payload } = serde_json::from_slice(&told[0].payload).unwrap()
    else {
        panic!("not a change.rejected: {:?}", told[0].payload)
    };
    assert_eq!(
        (id.0.as_str(), payload.message_id, payload.reason),
        ("e2", m1.message_id, ChangeRejection::Deleted)
    );
    let expected = [(Some(2), "edit", "e1"), (Some(3), "delete", "d1"), (None, "edit", "e2")];
    assert_eq!(events(&db, c).await, logged(&expected));
    assert_eq!(worker.pending().await, (0, 0));
}

/// A worker that committed a batch and died before acknowledging it: the batch comes again,
/// is announced as stored and acknowledged, and nothing is stored twice.
#[tokio::test]
async fn a_redelivered_batch_that_was_committed_is_announced_again_and_acked_without_storing_twice() {
    let mut worker = TestWorker::start().await;
    let db = worker.db.pool.clone();
    let alice = user(&db, "alice").await;
    let c = channel(&db, &[(&alice, "owner")]).await;
    let sends = [send(c, &alice, "m1"), send(c, &alice, "m2")];
    for message in &sends {
        worker.publish(message).await;
    }
    let first = worker.pull(2).await;
    let batch = crate::persist::PersistBatch { messages: sends.to_vec() };
    crate::persist::persist_batch(&db, &batch).await.expect("committed");
    for message in &first {
        message.ack_with(AckKind::Nak(Some(Duration::from_millis(1)))).await.expect("nak");
    }
    let mut deliveries = worker.watch(worker.deps.subjects.deliver(c)).await;

    let again = worker.pull(2).await;
    assert!(again.iter().all(|m| m.info().unwrap().delivered == 2), "redelivered");
    worker.step(&again).await;

    assert_eq!(stored(&db, c).await, numbered(1, &["m1", "m2"]));
    let seen = worker.seen(&mut deliveries).await;
    assert_eq!(delivered(&seen), numbered(1, &["m1", "m2"]));
    let ids: Vec<_> =
        seen.iter().map(|d| serde_json::from_slice::<MessageView>(&d.payload).unwrap().message_id).collect();
    assert_eq!(ids, sends.iter().map(|m| m.message_id).collect::<Vec<_>>());
    assert_eq!(worker.pending().await, (0, 0));
    assert_eq!((worker.deps.metrics.redeliveries.get(), worker.deps.metrics.persisted.get()), (2, 0));
}
