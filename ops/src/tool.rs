//! Running the external tools the checks need. A tool that is not installed fails the test
//! with a message saying to run `scripts/setup.sh`: a check never passes without its tool.

use std::process::{Command, Output};

/// Runs `tool args…` in the repository root and returns its output, whatever its exit status.
pub fn run(tool: &str, args: &[&str]) -> Output {
    Command::new(tool).args(args).current_dir(crate::repo::root()).output().unwrap_or_else(|e| {
        panic!("cannot run `{tool}` ({e}): it is installed by scripts/setup.sh — run scripts/setup.sh first")
    })
}

/// Runs `tool args…` and panics with its output unless it exits 0; returns its stdout.
pub fn run_ok(tool: &str, args: &[&str]) -> String {
    let output = run(tool, args);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "`{tool} {}` failed ({}):\n{stdout}\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}
