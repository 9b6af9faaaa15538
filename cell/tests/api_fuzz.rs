//! The REST contract held against the gateway by a fuzzer no one here wrote: schemathesis
//! (pinned in `scripts/setup.sh`) reads `/api/v1/openapi.json` and sends what it allows and
//! what it forbids to a live cell, every check on, with a fixed seed and budget. Any finding
//! fails the test: a server error, a status or body or header the document does not list, a
//! schema-valid request refused, a schema-invalid one accepted, an operation that ignores
//! its token, a resource still there after its `DELETE`.
//!
//! The fuzzer is a user of its own with some data to start from (a group with a member and
//! two messages, a public channel, an upload): the document's `links` lead it from the lists
//! to the operations on one channel, message, member or upload.

use reqwest::Method;
use serde_json::Value;
use shared::ids::UserId;
use shared::local::client::{ChatClient, expect};
use shared::local::{CellOptions, TestCell};
use shared::protocol::ServerFrame;
use std::process::Command;
use std::time::Duration;

/// The run's fixed seed: the same cases every time, so a failure reproduces.
const SEED: &str = "20261207";
/// Cases per operation and phase.
const MAX_EXAMPLES: &str = "30";

#[tokio::test]
async fn schemathesis_finds_nothing_the_document_does_not_say() {
    let cell = TestCell::start(CellOptions::default()).await.expect("the cell starts");
    let base = cell.gateway_url(0);
    let (fuzzer, users) = seed(&cell).await;

    let report = tempfile::tempdir().unwrap();
    let config = report.path().join("schemathesis.toml");
    std::fs::write(&config, config_of(&users)).unwrap();
    let output = Command::new("st")
        .current_dir(report.path()) // its cache (.schemathesis/) goes with the report
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(format!("{base}/api/v1/openapi.json"))
        .args(["--checks", "all", "--max-examples", MAX_EXAMPLES, "--seed", SEED, "--workers", "1"])
        .args(["--header", &format!("Authorization: Bearer {}", fuzzer.access_token)])
        .args(["--report", "junit", "--report-dir"])
        .arg(report.path())
        .args(["--output-truncate", "true"])
        .env("NO_COLOR", "1")
        .output()
        .expect("schemathesis runs (scripts/setup.sh installs it)");
    let log =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let cases = log.lines().skip_while(|l| !l.starts_with("Test cases:")).nth(1).unwrap_or_default().trim();
    println!("schemathesis {MAX_EXAMPLES} examples per operation, seed {SEED}: {cases}");
    assert!(output.status.success(), "schemathesis found what the document does not say:\n{log}");
    assert!(cases.contains("generated"), "no cases ran:\n{log}");
    assert!(!log.contains("Tested: 0"), "no operation was tested:\n{log}");
}

/// The run's configuration: user ids in bodies (`add_member`'s `user_id`, `create_channel`'s
/// `member_ids`) drawn from the users that exist. A schema cannot say which ids exist; a
/// made-up one is refused with 422 `unknown_user`, which the fuzzer counts as a schema-valid
/// request refused. Its coverage phase still makes up one for `create_channel` (the longest
/// `member_ids`, 1,000 of one id), so that operation alone may answer 422 to a valid request.
fn config_of(users: &[UserId]) -> String {
    let ids: Vec<String> = users.iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        r#"[dictionaries.users]
values = [{}]

[parameters]
"body.user_id" = {{ dictionary = "users" }}
"body.member_ids[*]" = {{ dictionary = "users" }}

[[operations]]
include-operation-id = "create_channel"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429"]
"#,
        ids.join(", ")
    )
}

/// The fuzzer's account and what it starts from: a group it owns with another member and two
/// messages in it, a public channel, an upload. Also the ids of the users.
async fn seed(cell: &TestCell) -> (ChatClient, Vec<UserId>) {
    let base = cell.gateway_url(0);
    let fuzzer = ChatClient::register(&base, "fuzzer").await.unwrap();
    let other = ChatClient::register(&base, "other").await.unwrap();
    let group = fuzzer.create_channel("group", "seeded group", &[other.user_id]).await.unwrap();
    fuzzer.create_channel("public", "seeded public", &[]).await.unwrap();
    let mut socket = fuzzer.connect(&cell.ws_url(0)).await.unwrap();
    for (id, text) in [("seed-1", "hello there"), ("seed-2", "a second message")] {
        socket.send_message(group, id, text).await.unwrap();
        loop {
            match socket.next_frame(Duration::from_secs(10)).await.unwrap() {
                Some(ServerFrame::MessageAck { .. }) => break,
                Some(_) => continue,
                None => panic!("no ack for {id}"),
            }
        }
    }
    socket.close().await;
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(b"seed".to_vec()).file_name("seed.txt"));
    let upload = fuzzer.request(Method::POST, "/upload").multipart(form).send().await.unwrap();
    let upload: Value = expect(upload, 201).await.unwrap();
    assert!(upload["id"].is_string());
    let users = vec![fuzzer.user_id, other.user_id];
    (fuzzer, users)
}
