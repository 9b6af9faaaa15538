//! The flags' parsing, defaults and bounds.

use super::*;

fn args(flags: &[&str]) -> Result<Args, clap::Error> {
    Args::try_parse_from(["loadgen"].iter().chain(flags))
}

fn valid(flags: &[&str]) -> bool {
    args(flags).is_ok_and(|a| a.validate().is_ok())
}

#[test]
fn baselines_are_a_comma_list_run_once_each_in_order() {
    let a =
        args(&["--local", "--baseline", "insert,publish,insert", "--baseline", "consume"]).expect("parses");
    use BaselineKind::*;
    assert_eq!(a.baseline_kinds(), vec![Publish, Consume, Insert]);
    assert!(args(&["--local", "--baseline", "publish,bogus"]).is_err());
}

#[test]
fn defaults_are_the_issues() {
    let a = args(&["--local", "--baseline", "consume"]).expect("parses");
    assert_eq!((a.baseline_messages, a.baseline_inflight), (20_000, 1_024));
    assert_eq!(
        (a.baseline_ack, a.baseline_ack_batches, a.baseline_insert_concurrency),
        (AckMode::Request, 8, 1)
    );
    assert!(a.validate().is_ok());
}

#[test]
fn baseline_flags_are_bounded() {
    assert!(!valid(&["--local", "--baseline", "publish", "--baseline-messages", "0"]));
    assert!(!valid(&["--local", "--baseline", "publish", "--baseline-messages", "1000001"]));
    assert!(!valid(&["--local", "--baseline", "publish", "--baseline-inflight", "0"]));
    assert!(!valid(&["--local", "--baseline", "publish", "--baseline-inflight", "10001"]));
    assert!(!valid(&["--local", "--baseline", "insert", "--baseline-insert-concurrency", "17"]));
    assert!(!valid(&["--local", "--baseline", "consume", "--baseline-ack-batches", "0"]));
    assert!(!valid(&["--local", "--baseline", "consume", "--baseline-ack-batches", "65"]));
    assert!(!valid(&["--local", "--baseline", "publish", "--baseline-partitions", "0"]));
    assert!(!valid(&["--local", "--baseline", "publish", "--baseline-replicas", "6"]));
    assert!(valid(&["--local", "--baseline", "publish", "--baseline-inflight", "10000"]));
    assert!(!valid(&["--local", "--baseline", "fanout", "--baseline-sockets", "20001"]));
    assert!(!valid(&["--local", "--baseline", "fanout", "--baseline-fanout-window", "0"]));
    assert!(!valid(&["--local", "--baseline", "fanout", "--baseline-fanout-rate", "0"]));
    let many = ["--baseline-sockets", "20000", "--baseline-fanout-messages", "20000"];
    assert!(!valid(&[&["--local", "--baseline", "fanout"][..], &many].concat()));
}

#[test]
fn fanout_needs_no_server_and_has_the_broadcasts_sockets() {
    let a = args(&["--baseline-only", "--baseline", "fanout", "--members", "1000"]).expect("parses");
    assert!(a.validate().is_ok());
    assert_eq!(a.fanout_sockets(), 1000);
    let kinds = args(&["--local", "--baseline", "insert,fanout,publish"]).expect("parses").baseline_kinds();
    assert_eq!(kinds, [BaselineKind::Publish, BaselineKind::Fanout, BaselineKind::Insert]);
}

#[test]
fn a_baseline_needs_its_server() {
    let g = ["--gateway", "http://127.0.0.1:1"];
    let with = |more: &[&'static str]| valid(&[&g[..], more].concat());
    assert!(!with(&["--baseline", "publish"]));
    assert!(with(&["--baseline", "publish", "--nats", "nats://127.0.0.1:4222"]));
    assert!(!with(&["--baseline", "publish,insert", "--nats", "nats://127.0.0.1:4222"]));
    assert!(with(&["--baseline", "insert", "--postgres", "postgres://u@127.0.0.1/chat"]));
    assert!(!with(&["--nats", "nats://127.0.0.1:4222"]));
    assert!(!with(&["--baseline", "consume", "--nats", "n", "--postgres", "p"]));
    assert!(args(&["--local", "--baseline", "publish", "--nats", "nats://127.0.0.1:4222"]).is_err());
}

#[test]
fn baseline_only_needs_baselines_and_no_gateway() {
    assert!(valid(&["--baseline-only", "--baseline", "insert", "--postgres", "postgres://127.0.0.1/chat"]));
    assert!(valid(&["--local", "--baseline-only", "--baseline", "publish"]));
    assert!(!valid(&["--local", "--baseline-only"]));
    assert!(args(&["--baseline-only", "--gateway", "http://127.0.0.1:1", "--baseline", "publish"]).is_err());
    assert!(args(&["--baseline", "publish"]).is_err(), "a target is still needed");
}

#[test]
fn reconnect_storm_needs_two_gateways_and_a_kill() {
    let storm = ["--scenario", "reconnect-storm"];
    assert!(!valid(&[&["--local"][..], &storm].concat()), "one local gateway is refused");
    assert!(valid(&[&["--local", "--local-gateways", "2"][..], &storm].concat()));
    let remote = ["--gateway", "http://a:1", "--gateway", "http://b:1"];
    assert!(!valid(&[&remote[..], &storm].concat()), "no way to kill");
    assert!(valid(&[&remote[..], &storm, &["--kill-pid", "42"]].concat()));
    assert!(!valid(&[&["--gateway", "http://a:1", "--kill-pid", "42"][..], &storm].concat()));
    let late = ["--local", "--local-gateways", "2", "--duration", "4", "--kill-after", "4"];
    assert!(!valid(&[&late[..], &storm].concat()));
    assert!(!valid(&["--local", "--kill-after", "1"]), "only for reconnect-storm");
}

#[test]
fn hold_is_bounded_per_process_and_per_gateway() {
    let hold = ["--local", "--scenario", "hold", "--rooms", "1000", "--members", "10"];
    assert!(valid(&[&hold[..], &["--sockets-per-user", "1"]].concat()));
    assert!(!valid(&[&hold[..], &["--sockets-per-user", "2"]].concat()), "20,000 in one process");
    let six = ["--sockets-per-user", "10", "--processes", "6", "--local-gateways", "6"];
    assert!(valid(&[&hold[..], &six].concat()), "100,000 over 6 and 6");
    let five_gateways = ["--sockets-per-user", "10", "--processes", "6", "--local-gateways", "5"];
    assert!(!valid(&[&hold[..], &five_gateways].concat()), "20,000 on one gateway");
    assert!(!valid(&[&hold[..], &["--sockets-per-user", "0"]].concat()));
    assert!(!valid(&[&hold[..], &["--duration", "601"]].concat()));
    assert!(!valid(&["--local", "--processes", "2"]), "only for hold");
    let child = Args::try_parse_from(["loadgen", "--hold-child", "/tmp/spec.json"]).expect("parses");
    assert!(child.hold_child.is_some());
}

#[test]
fn dm_storm_opens_each_dm_once() {
    assert!(valid(&["--local", "--scenario", "dm-storm", "--clients", "5", "--dms", "2"]));
    assert!(!valid(&["--local", "--scenario", "dm-storm", "--clients", "4", "--dms", "2"]));
    assert!(!valid(&["--local", "--scenario", "dm-storm", "--dms", "0"]));
}

#[test]
fn passwords_stay_out_of_the_output() {
    assert_eq!(redact("postgres://chat:s3cret@db:5432/chat"), "postgres://chat:***@db:5432/chat");
    assert_eq!(
        redact("postgres://chat@db/chat?password=x&sslmode=off"),
        "postgres://chat@db/chat?password=***&sslmode=off"
    );
    assert_eq!(redact("postgres://db/chat"), "postgres://db/chat");
    let a = args(&["--gateway", "g", "--baseline", "insert", "--postgres", "postgres://u:pw@h/d"])
        .expect("parses");
    let json = serde_json::to_string(&a).expect("serialises");
    assert!(json.contains("postgres://u:***@h/d") && !json.contains("pw@"), "{json}");
}
