//! The web client in a real browser against a live cell: `web/e2e/chat.mjs` drives Debian's
//! Chromium (playwright-core) through two people who register, open a dm and chat both ways,
//! then one goes offline while the other sends 20 messages (past the default send rate of 10 a
//! second: the client resends what the limit refuses, in order) and comes back to all 20, in
//! order, once. The cell runs with the default limits and serves the built client itself
//! (`gateway.web_dir`); `scripts/web.sh` builds it, before the suite's Rust tests.

use shared::local::{CellOptions, TestCell};
use std::path::Path;
use std::process::Command;

#[tokio::test]
async fn two_people_chat_in_browsers_and_one_gets_all_it_missed_offline_once_in_order() {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web");
    let dist = std::path::absolute(web.join("dist")).unwrap();
    assert!(
        dist.join("index.html").exists(),
        "no built web client in {}: run scripts/web.sh",
        dist.display()
    );
    let options = CellOptions {
        raise_limits: false,
        gateway_config: format!("web_dir = {:?}\n", dist.display().to_string()),
        ..CellOptions::default()
    };
    let cell = TestCell::start(options).await.expect("the cell starts");
    // Screenshots go where CHAT_SCREENSHOTS says (docs/screenshots to renew the README's).
    let shots = std::env::var("CHAT_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| tempfile::tempdir().unwrap().keep());
    let output = Command::new("node")
        .current_dir(&web)
        .arg("e2e/chat.mjs")
        .arg(format!("{}", cell.gateway_url(0)))
        .arg(&shots)
        .output()
        .expect("node runs (scripts/setup.sh installs Node.js; apt-get install chromium)");
    let log =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    println!("{log}");
    assert!(output.status.success(), "the browser run failed:\n{log}");
    assert!(log.contains("web e2e: ok"), "{log}");
}
