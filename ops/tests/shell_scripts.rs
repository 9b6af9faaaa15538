//! Every shell script the repo keeps (`scripts/`, `chaos/`, `.ci/run`) passes shellcheck with
//! all its checks, the way the workflows' `run:` scripts do through actionlint.

use ops_checks::{repo, tool};

#[test]
fn every_shell_script_passes_shellcheck() {
    let listed = tool::run_ok("git", &["ls-files", "*.sh", ".ci/run"]);
    let mut scripts: Vec<String> = listed.lines().map(str::to_owned).collect();
    // The scripts of the working tree not yet committed, too.
    for dir in ["scripts", "chaos/local", "chaos/game-day"] {
        scripts.extend(repo::files_in(dir, ".sh"));
    }
    scripts.sort();
    scripts.dedup();
    for needed in [".ci/run", "scripts/setup.sh", "chaos/local/run.sh", "chaos/game-day/run.sh"] {
        assert!(scripts.iter().any(|s| s == needed), "{needed} among {scripts:?}");
    }
    let mut args = vec!["--shell=bash"];
    args.extend(scripts.iter().map(String::as_str));
    let output = tool::run("shellcheck", &args);
    assert!(
        output.status.success(),
        "shellcheck:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
