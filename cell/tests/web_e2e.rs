//! The web client in a real browser against a live cell: `web/e2e/chat.mjs` drives Debian's
//! Chromium (playwright-core) through two people who register, open a dm and chat both ways,
//! then one goes offline while the other sends 20 messages (past the default send rate of 10 a
//! second: the client resends what the limit refuses, in order) and comes back to all 20, in
//! order, once. The cell runs with the default limits and serves the built client itself
//! (`gateway.web_dir`); `scripts/web.sh` builds it, before the suite's Rust tests. A second
//! run (`web/e2e/history.mjs`) scrolls a long channel through its virtual list.

use shared::local::{CellOptions, TestCell};
use std::path::{Path, PathBuf};
use std::process::Command;

#[tokio::test]
async fn two_people_chat_in_browsers_and_one_gets_all_it_missed_offline_once_in_order() {
    let options = CellOptions {
        raise_limits: false,
        gateway_config: format!("web_dir = {:?}\n", built_client().display().to_string()),
        ..CellOptions::default()
    };
    let cell = TestCell::start(options).await.expect("the cell starts");
    // Screenshots go where CHAT_SCREENSHOTS says (docs/screenshots to renew the README's).
    let shots = std::env::var("CHAT_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| tempfile::tempdir().unwrap().keep());
    let url = cell.gateway_url(0).to_string();
    let log = run_node(&["e2e/chat.mjs", &url, &shots.display().to_string()]);
    assert!(log.contains("web e2e: ok"), "{log}");
}

/// A channel of 300 messages (six pages) opened at its newest and scrolled to its first: every
/// message shows once, in order, and the view keeps its place as each older page is prepended
/// (the virtual list renders only the rows on screen). Raised limits, so the 300 sends are
/// not paced by the send rate. The same script with 10,000 is the benchmark of
/// `docs/benchmarks.md` (frame times).
#[tokio::test]
async fn a_long_channel_scrolls_from_its_newest_message_to_its_first_in_order_keeping_its_place() {
    let options = CellOptions {
        gateway_config: format!("web_dir = {:?}\n", built_client().display().to_string()),
        ..CellOptions::default()
    };
    let cell = TestCell::start(options).await.expect("the cell starts");
    let url = cell.gateway_url(0).to_string();
    let log = run_node(&["e2e/history.mjs", &url, "300"]);
    assert!(log.contains("web history: ok (300 messages"), "{log}");
}

fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../web")
}

/// `web/dist`, which `scripts/web.sh` builds before the suite's Rust tests.
fn built_client() -> PathBuf {
    let dist = std::path::absolute(web_dir().join("dist")).unwrap();
    assert!(
        dist.join("index.html").exists(),
        "no built web client in {}: run scripts/web.sh",
        dist.display()
    );
    dist
}

/// Runs a script of `web/e2e` under Node; its output, once it has exited with success.
fn run_node(args: &[&str]) -> String {
    let output = Command::new("node")
        .current_dir(web_dir())
        .args(args)
        .output()
        .expect("node runs (scripts/setup.sh installs Node.js; apt-get install chromium)");
    let log =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    println!("{log}");
    assert!(output.status.success(), "the browser run failed:\n{log}");
    log
}
