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
    ];
    let summary = run(&flags).await.expect("the run completes");
    assert_eq!((summary.sockets, summary.senders), (9, 9));
    assert_eq!(summary.expected_deliveries, summary.acked * 3);
    assert_all_acked_and_clean(&summary);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_to_six_loses_nothing() {
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
async fn later_scenarios_say_they_are_not_implemented() {
    let result = run(&["--gateway", "http://127.0.0.1:9", "--scenario", "dm-storm"]).await;
    assert!(matches!(result, Err(LoadgenError::Unimplemented("dm-storm"))));
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
