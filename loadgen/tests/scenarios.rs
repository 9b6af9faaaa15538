//! Each scenario, short, against a local cell started by `loadgen --local` itself: the
//! verdict is clean and every scheduled send was acked (no timing is asserted). Needs the
//! `gateway` and `messages` binaries (`cargo build --workspace --bins`, as scripts/test.sh does).

use clap::Parser;
use loadgen::{Args, LoadgenError, Summary};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A whole test: starting the cell, the run, the settle and the cell's stop.
const TEST_LIMIT: Duration = Duration::from_secs(180);

async fn run(flags: &[&str]) -> Result<Summary, LoadgenError> {
    let args = Args::parse_from(["loadgen"].iter().chain(flags));
    tokio::time::timeout(TEST_LIMIT, loadgen::run::run(args, CancellationToken::new()))
        .await
        .expect("the run ends within its limit")
}

fn assert_all_acked_and_clean(summary: &Summary) {
    assert!(summary.verdict.clean(), "{summary}");
    assert!(summary.scheduled > 0, "{summary}");
    assert_eq!(summary.acked, summary.scheduled, "{summary}");
    assert_eq!(summary.skipped_window_full + summary.failed + summary.unacked, 0, "{summary}");
    assert!(summary.settled, "{summary}");
    assert_eq!(summary.delivered, summary.expected_deliveries, "{summary}");
    assert!(summary.errors.is_empty(), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairs_of_four_clients_lose_nothing() {
    let summary =
        run(&["--local", "--scenario", "pairs", "--clients", "4", "--rate", "100", "--duration", "2"])
            .await
            .expect("the run completes");
    assert_eq!((summary.sockets, summary.senders), (4, 4));
    assert_eq!(summary.expected_deliveries, summary.acked * 2);
    assert_all_acked_and_clean(&summary);
    assert!(!summary.processes.is_empty(), "the local gateway is measured");
}

/// `--backlog`: the workers are held back while the pairs send, then started; every acked
/// send waits in the stream and is persisted and delivered by the drain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_is_drained_whole_once_the_workers_start() {
    let flags =
        ["--local", "--backlog", "--scenario", "pairs", "--clients", "4", "--rate", "200", "--duration", "2"];
    let summary = run(&flags).await.expect("the run completes");
    assert_all_acked_and_clean(&summary);
    let drain = match &summary.drain {
        Some(loadgen::baseline::figures::Outcome::Measured(drain)) => *drain,
        other => panic!("the drain was not measured: {other:?}\n{summary}"),
    };
    assert_eq!((drain.backlog, drain.persisted), (summary.acked, summary.acked), "{summary}");
    assert!(drain.batches > 0 && drain.total_s >= drain.first_row_s, "{summary}");
    assert!(summary.to_string().contains("drain "), "{summary}");
}

#[tokio::test]
async fn a_backlog_needs_a_local_cell_and_sends() {
    let remote = Args::parse_from(["loadgen", "--backlog", "--gateway", "http://127.0.0.1:1"]);
    assert!(remote.validate().is_err(), "--backlog needs --local");
    for scenario in ["hold", "dm-storm"] {
        let args = Args::parse_from(["loadgen", "--local", "--backlog", "--scenario", scenario]);
        assert!(args.validate().is_err(), "--backlog with {scenario}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_rooms_of_three_lose_nothing() {
    let flags = [
        "--local",
        "--scenario",
        "rooms",
        "--rooms",
        "3",
        "--members",
        "3",
        "--rate",
        "90",
        "--duration",
        "2",
        "--audit",
    ];
    let summary = run(&flags).await.expect("the run completes");
    assert_eq!((summary.sockets, summary.senders), (9, 9));
    assert_eq!(summary.expected_deliveries, summary.acked * 3);
    assert_all_acked_and_clean(&summary);
    let audit = audited(&summary);
    assert_eq!(
        (audit.channels as u64, audit.acked, audit.stored),
        (3, summary.acked, summary.acked),
        "{summary}"
    );
}

/// The audit's figures of a run, which must be clean.
fn audited(summary: &Summary) -> loadgen::audit::Audit {
    let audit = match &summary.audit {
        Some(loadgen::baseline::figures::Outcome::Measured(audit)) => audit.clone(),
        other => panic!("the audit did not run: {other:?}\n{summary}"),
    };
    assert!(audit.clean() && summary.clean(), "{summary}");
    assert!(summary.to_string().contains("audit OK"), "{summary}");
    audit
}

/// The audit against a remote cell's stores: clean after the run; then a stored row deleted
/// behind the cell's back is found as an acked send not stored, a hole in its channel's `seq`s
/// and a stream message Postgres does not hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_finds_a_row_missing_from_postgres() {
    let mut cell = shared::local::TestCell::start(Default::default()).await.expect("the cell starts");
    let (gateway, postgres, nats) = (cell.gateway_url(0), cell.database_url(), cell.nats_urls()[0].clone());
    let flags =
        ["--gateway", &gateway, "--scenario", "pairs", "--clients", "4", "--rate", "60", "--duration", "2"];
    let audit_flags = ["--audit", "--postgres", &postgres, "--nats", &nats];
    let summary = run(&[&flags[..], &audit_flags[..]].concat()).await.expect("the run completes");
    assert_all_acked_and_clean(&summary);
    assert_eq!(audited(&summary).stored, summary.acked, "{summary}");

    let db = sqlx::PgPool::connect(&postgres).await.unwrap();
    let rows: Vec<(shared::ids::ChannelId, String)> =
        sqlx::query_as("SELECT channel_id, client_msg_id FROM messages").fetch_all(&db).await.unwrap();
    let mut acked = loadgen::audit::Acked::new();
    for (channel, id) in &rows {
        acked
            .entry(*channel)
            .or_default()
            .insert(loadgen::record::send_key(id).expect("a loadgen client id"));
    }
    sqlx::query("DELETE FROM messages WHERE message_id = (SELECT min(message_id) FROM messages)")
        .execute(&db)
        .await
        .unwrap();
    let stores = loadgen::audit::Stores {
        postgres,
        nats: cell.nats_urls(),
        subject_prefix: "chat".into(),
        stream: "CHAT_MESSAGES".into(),
        wait: std::time::Duration::from_secs(2),
    };
    let audit = loadgen::audit::audit(&stores, &acked).await.expect("the stores are read");
    cell.stop().await;
    assert_eq!((audit.acked_not_stored, audit.seq_holes, audit.stored_twice, audit.seq_reused), (1, 1, 0, 0));
    assert_eq!(audit.stored + 1, audit.in_stream, "{audit:?}");
    assert!(!audit.clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_to_six_loses_nothing_with_members_added_after_creation() {
    let out = std::env::temp_dir().join(format!("loadgen-broadcast-{}.json", std::process::id()));
    let out_flag = out.display().to_string();
    let flags = [
        "--local",
        "--scenario",
        "broadcast",
        "--members",
        "6",
        "--senders",
        "1",
        // Two named at the channel's creation, three added one by one after it.
        "--create-with",
        "2",
        "--rate",
        "50",
        "--duration",
        "2",
        "--out",
        &out_flag,
    ];
    let summary = run(&flags).await.expect("the run completes");
    assert_eq!((summary.sockets, summary.senders), (6, 1));
    assert_eq!(summary.expected_deliveries, summary.acked * 6);
    assert_all_acked_and_clean(&summary);
    summary.write_json(&out).expect("the result is written");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("readable")).expect("JSON");
    assert_eq!(json["scenario"], "broadcast");
    assert_eq!(json["verdict"]["lost"], 0);
    let _ = std::fs::remove_file(&out);
}

#[tokio::test]
async fn the_audit_needs_the_stores_and_a_scenario_that_records_acks() {
    let remote = Args::parse_from(["loadgen", "--audit", "--gateway", "http://127.0.0.1:1"]);
    assert!(matches!(remote.validate(), Err(LoadgenError::Args(ref e)) if e.contains("--postgres")));
    for scenario in ["hold", "dm-storm"] {
        let args = Args::parse_from(["loadgen", "--local", "--audit", "--scenario", scenario]);
        assert!(args.validate().is_err(), "--audit with {scenario}");
    }
}

#[tokio::test]
async fn storms_refuse_what_they_cannot_do() {
    let one_gateway = run(&["--local", "--scenario", "reconnect-storm"]).await;
    assert!(
        matches!(one_gateway, Err(LoadgenError::Args(ref e)) if e.contains("2 gateways")),
        "{one_gateway:?}"
    );
    let no_kill = run(&[
        "--gateway",
        "http://127.0.0.1:9",
        "--gateway",
        "http://127.0.0.1:10",
        "--scenario",
        "reconnect-storm",
    ])
    .await;
    assert!(matches!(no_kill, Err(LoadgenError::Args(ref e)) if e.contains("--kill-pid")), "{no_kill:?}");
    let dm_twice = run(&["--local", "--scenario", "dm-storm", "--clients", "4", "--dms", "2"]).await;
    assert!(matches!(dm_twice, Err(LoadgenError::Args(_))), "{dm_twice:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_gateways_clients_reconnect_and_miss_nothing() {
    let flags = [
        "--local",
        "--local-gateways",
        "2",
        "--scenario",
        "reconnect-storm",
        "--rooms",
        "3",
        "--members",
        "4",
        "--rate",
        "60",
        "--duration",
        "4",
        "--audit",
    ];
    let summary = run(&flags).await.expect("the run completes");
    assert_eq!((summary.sockets, summary.senders), (12, 12));
    let storm = summary.storm.as_ref().expect("reconnect-storm figures");
    let killed = storm.killed.as_ref().expect("a gateway was killed");
    assert!(killed.error.is_none(), "{summary}");
    assert!(killed.sockets.is_some_and(|n| n > 0), "the killed gateway held sockets: {summary}");
    assert!(storm.sockets_dropped >= killed.sockets.unwrap_or(0) as u64, "{summary}");
    assert!(storm.reconnects >= storm.sockets_dropped && summary.reconnects > 0, "{summary}");
    assert_eq!(storm.gave_up, 0, "{summary}");
    assert_eq!(storm.caught_up, storm.sockets_dropped, "every client caught up: {summary}");
    assert_eq!(storm.catch_up_ms.count, storm.caught_up, "{summary}");
    assert_eq!(summary.expected_deliveries, summary.acked * 4);
    assert_all_acked_and_clean(&summary);
    // The resends of the killed gateway's unanswered sends were stored once each.
    assert_eq!(audited(&summary).stored, summary.acked, "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dm_storm_opens_every_dm_and_delivers_its_first_messages() {
    let flags = [
        "--local",
        "--local-gateways",
        "2",
        "--scenario",
        "dm-storm",
        "--clients",
        "8",
        "--dms",
        "3",
        "--dm-messages",
        "2",
    ];
    let summary = run(&flags).await.expect("the run completes");
    assert_eq!(summary.sockets, 8);
    let dm = summary.dm.as_ref().expect("dm-storm figures");
    assert_eq!((dm.planned, dm.opened, dm.failed), (24, 24, 0), "{summary}");
    assert_eq!(dm.created + dm.existed, 24, "{summary}");
    assert_eq!(dm.create_ms.count, 24, "{summary}");
    assert_eq!(summary.scheduled, 48, "{summary}");
    assert_eq!(summary.expected_deliveries, summary.acked * 2);
    assert_all_acked_and_clean(&summary);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairs_over_two_gateways_given_by_url() {
    let options = shared::local::CellOptions { gateways: 2, ..Default::default() };
    let mut cell = shared::local::TestCell::start(options).await.expect("the cell starts");
    let (g0, g1) = (cell.gateway_url(0), cell.gateway_url(1));
    let pid = cell.gateways[0].process.as_ref().map(|p| p.pid().to_string()).expect("a running gateway");
    let flags = [
        "--gateway",
        &g0,
        "--gateway",
        &g1,
        "--pid",
        &pid,
        "--scenario",
        "pairs",
        "--clients",
        "6",
        "--rate",
        "60",
        "--duration",
        "2",
    ];
    let summary = run(&flags).await;
    cell.stop().await;
    let summary = summary.expect("the run completes");
    assert_eq!(summary.targets, vec![g0, g1]);
    assert_eq!(summary.processes.len(), 1);
    assert!(summary.processes[0].after.rss_kib.is_some(), "{summary}");
    assert_all_acked_and_clean(&summary);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_sockets_over_two_gateways_and_two_holders_all_stay_open() {
    let flags = [
        "--local",
        "--local-gateways",
        "2",
        "--scenario",
        "hold",
        "--rooms",
        "3",
        "--members",
        "2",
        "--sockets-per-user",
        "3",
        "--processes",
        "2",
        "--duration",
        "2",
        "--child-bin",
        env!("CARGO_BIN_EXE_loadgen"),
    ];
    let summary = run(&flags).await.expect("the run completes");
    let hold = summary.hold.as_ref().expect("hold figures");
    assert_eq!((summary.sockets, hold.users), (18, 6), "{summary}");
    assert_eq!((hold.opened, hold.failed, hold.held), (18, 0, 18), "{summary}");
    assert!(hold.dropped.is_empty(), "{summary}");
    let on_gateways: Vec<usize> = hold.gateways.iter().map(|g| g.sockets).collect();
    assert_eq!(on_gateways, [9, 9], "{summary}");
    let by_holders: Vec<usize> = hold.holders.iter().map(|h| h.sockets).collect();
    assert_eq!(by_holders, [9, 9], "{summary}");
    assert!(hold.gateways.iter().all(|g| g.rss_held_kib.is_some()), "{summary}");
    assert!(hold.kernel_held.tcp_inuse >= hold.kernel_before.tcp_inuse, "{summary}");
    assert!(summary.clean(), "{summary}");
}
