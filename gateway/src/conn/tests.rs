//! The queue's budgets and the cursors' holds, seen from the socket's handle.

use super::*;
use crate::conn::close::CLOSE_SLOW_CONSUMER;
use crate::conn::queue::Outbound;

fn metrics() -> Arc<GatewayMetrics> {
    Arc::new(GatewayMetrics::register(&mut prometheus_client::registry::Registry::default()))
}

/// The queued frames' lengths and budgets.
fn drain(queue: &mut lane::LaneRx<Outbound>) -> Vec<(usize, bool)> {
    std::iter::from_fn(|| match queue.try_recv()? {
        Outbound::Frame { frame, live } => Some((frame.len(), live)),
        Outbound::Ping | Outbound::Close => None,
    })
    .collect()
}

fn frame(bytes: usize) -> Utf8Bytes {
    Utf8Bytes::from("x".repeat(bytes))
}

#[test]
fn live_frames_past_the_byte_budget_close_the_socket_with_4008() {
    let (conn, mut queue) =
        ConnHandle::new(UserId(uuid::Uuid::new_v4()), uuid::Uuid::new_v4(), 1000, metrics());
    conn.deliver(frame(400));
    conn.deliver(frame(400));
    assert!(!conn.is_closing());
    // Written frames leave the budget.
    let Some(Outbound::Frame { frame: written, .. }) = queue.try_recv() else { panic!("a frame") };
    conn.queue.uncharge(written.len());
    conn.deliver(frame(400));
    assert!(!conn.is_closing(), "800 of 1000 bytes queued");
    conn.deliver(frame(400));
    assert!(conn.is_closing());
    assert_eq!(conn.queue.close_code(), CLOSE_SLOW_CONSUMER);
}

#[test]
fn a_sync_backlog_is_outside_the_budget_but_held_live_messages_are_inside() {
    let channel = ChannelId(uuid::Uuid::new_v4());
    let (conn, mut queue) =
        ConnHandle::new(UserId(uuid::Uuid::new_v4()), uuid::Uuid::new_v4(), 1000, metrics());
    conn.hold_channel(channel);
    conn.deliver_message(channel, ChannelSeq(5), frame(600));
    assert_eq!(conn.queue.live_bytes(), 600);
    conn.release_channel(channel, |_, send| {
        for seq in 1..=5 {
            send(Some(ChannelSeq(seq)), frame(900));
        }
        Some(ChannelSeq(5))
    });
    assert!(!conn.is_closing(), "4500 backlog bytes do not count");
    // The held copy of seq 5 was covered by the backlog: dropped, and its bytes released.
    assert_eq!(conn.queue.live_bytes(), 0);
    let queued: Vec<bool> = drain(&mut queue).into_iter().map(|(_, live)| live).collect();
    assert_eq!(queued, [false; 5]);

    conn.hold_channel(channel);
    conn.deliver_message(channel, ChannelSeq(6), frame(600));
    conn.deliver_message(channel, ChannelSeq(7), frame(600));
    assert!(conn.is_closing(), "held messages beyond the budget: 4008");
}

#[test]
fn a_late_sync_sends_what_came_before_the_first_live_message_and_skips_what_was_sent() {
    let channel = ChannelId(uuid::Uuid::new_v4());
    let (conn, mut queue) =
        ConnHandle::new(UserId(uuid::Uuid::new_v4()), uuid::Uuid::new_v4(), 10_000, metrics());
    // Live delivery started at seq 50 before the client said where it was.
    conn.deliver_message(channel, ChannelSeq(50), frame(50));
    conn.deliver_message(channel, ChannelSeq(51), frame(51));
    assert_eq!(drain(&mut queue), [(50, true), (51, true)]);
    conn.hold_channel(channel);
    conn.release_channel(channel, |_, send| {
        for seq in 11..=53 {
            send(Some(ChannelSeq(seq)), frame(seq as usize));
        }
        Some(ChannelSeq(53))
    });
    let backlog: Vec<usize> = drain(&mut queue).into_iter().map(|(len, _)| len).collect();
    let expected: Vec<usize> = (11..=49).chain(52..=53).collect();
    assert_eq!(backlog, expected, "11..49 were never sent here; 50 and 51 were");
    // Now the socket has 1..=53: a sync from 0 sends nothing again.
    conn.hold_channel(channel);
    conn.release_channel(channel, |_, send| {
        for seq in 1..=53 {
            send(Some(ChannelSeq(seq)), frame(seq as usize));
        }
        Some(ChannelSeq(53))
    });
    assert!(drain(&mut queue).is_empty());
}

#[test]
fn a_channel_named_by_the_first_sync_is_not_released_early() {
    let channel = ChannelId(uuid::Uuid::new_v4());
    let (conn, mut queue) =
        ConnHandle::new(UserId(uuid::Uuid::new_v4()), uuid::Uuid::new_v4(), 1000, metrics());
    conn.hold_until_first_frame(channel);
    conn.release_all_but(&HashSet::from([channel]));
    conn.deliver_message(channel, ChannelSeq(1), frame(300));
    conn.deliver_message(channel, ChannelSeq(2), frame(300));
    assert!(drain(&mut queue).is_empty(), "held for the sync's backlog");
}

#[test]
fn waiting_for_the_first_frame_ends_at_half_the_budget_instead_of_closing() {
    let channel = ChannelId(uuid::Uuid::new_v4());
    let (conn, mut queue) =
        ConnHandle::new(UserId(uuid::Uuid::new_v4()), uuid::Uuid::new_v4(), 1000, metrics());
    conn.hold_until_first_frame(channel);
    conn.deliver_message(channel, ChannelSeq(1), frame(300));
    assert!(queue.try_recv().is_none(), "held");
    conn.deliver_message(channel, ChannelSeq(2), frame(300));
    assert!(!conn.is_closing());
    let queued: Vec<usize> = drain(&mut queue).into_iter().map(|(len, _)| len).collect();
    assert_eq!(queued, [300, 300], "released in order once past half the budget");
    conn.deliver_message(channel, ChannelSeq(3), frame(300));
    assert_eq!(drain(&mut queue), [(300, true)], "no longer held");
}

#[test]
fn a_late_join_sends_what_came_after_the_join_then_the_held_and_a_sync_still_gets_the_history() {
    let channel = ChannelId(uuid::Uuid::new_v4());
    let (conn, mut queue) =
        ConnHandle::new(UserId(uuid::Uuid::new_v4()), uuid::Uuid::new_v4(), 10_000, metrics());
    // Joined at seq 20; 21 and 22 were stored before the route was live, 22 and 23 came live.
    conn.hold_channel(channel);
    conn.deliver_message(channel, ChannelSeq(22), frame(22));
    conn.deliver_message(channel, ChannelSeq(23), frame(23));
    // The socket's first frame does not end a late join's hold.
    conn.release_all_but(&HashSet::new());
    assert!(drain(&mut queue).is_empty());
    conn.release_joined(channel, ChannelSeq(20), |_, send| {
        for seq in 21..=22 {
            send(Some(ChannelSeq(seq)), frame(seq as usize));
        }
        Some(ChannelSeq(22))
    });
    let sent: Vec<usize> = drain(&mut queue).into_iter().map(|(len, _)| len).collect();
    assert_eq!(sent, [21, 22, 23], "in order, 22 once");
    // The history before the join was never sent: a sync from 0 sends it, and only it.
    conn.hold_channel(channel);
    conn.release_channel(channel, |_, send| {
        for seq in 1..=23 {
            send(Some(ChannelSeq(seq)), frame(seq as usize));
        }
        Some(ChannelSeq(23))
    });
    let history: Vec<usize> = drain(&mut queue).into_iter().map(|(len, _)| len).collect();
    assert_eq!(history, (1..=20).collect::<Vec<usize>>());
}
