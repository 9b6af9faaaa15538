//! The GitHub workflows: actionlint accepts them (with shellcheck on the `run:` scripts), CI
//! runs what the brief of each job says, and the release builds the Dockerfiles that exist.

use ops_checks::{repo, tool};
use serde_norway::Value;

fn workflow(file: &str) -> Value {
    repo::yaml_file(&format!(".github/workflows/{file}"))
}

fn job_text(workflow: &Value, job: &str) -> String {
    let job = &workflow["jobs"][job];
    assert!(job.is_mapping(), "no job {job:?}");
    serde_norway::to_string(job).expect("serialise the job")
}

#[test]
fn actionlint_accepts_every_workflow() {
    let files = repo::files_in(".github/workflows", ".yml");
    assert!(files.len() >= 2, "expected ci.yml and release.yml, found {files:?}");
    let shellcheck = tool::run("shellcheck", &["--version"]);
    assert!(shellcheck.status.success(), "shellcheck is missing: run scripts/setup.sh");
    let mut args = vec!["-no-color"];
    args.extend(files.iter().map(String::as_str));
    tool::run_ok("actionlint", &args);
}

#[test]
fn ci_formats_lints_tests_with_coverage_renders_k8s_and_lints_workflows() {
    let ci = workflow("ci.yml");
    let triggers = &ci["on"];
    assert!(
        triggers["push"].is_mapping() && triggers.get("pull_request").is_some(),
        "CI runs on push and pull_request"
    );
    assert!(job_text(&ci, "fmt").contains("cargo fmt --all --check"));
    assert!(
        job_text(&ci, "clippy").contains("cargo clippy --workspace --all-targets --locked -- -D warnings")
    );
    let test = job_text(&ci, "test");
    for part in [
        "scripts/test.sh",
        "cargo llvm-cov",
        "taiki-e/install-action",
        "CHAT_TEST_BACKEND: docker",
        "actions/upload-artifact",
        "GITHUB_STEP_SUMMARY",
    ] {
        assert!(test.contains(part), "the test job lacks {part}");
    }
    let kustomize = job_text(&ci, "kustomize");
    for dir in ops_checks::manifests::KUSTOMIZATIONS {
        assert!(kustomize.contains(dir), "the kustomize job does not render {dir}");
    }
    assert!(kustomize.contains("kubernetes-validate"));
    assert!(job_text(&ci, "actionlint").contains("actionlint"));
}

#[test]
fn every_action_is_pinned_at_least_to_a_major_version() {
    for file in repo::files_in(".github/workflows", ".yml") {
        for line in
            repo::read(&file).lines().filter_map(|l| l.trim().trim_start_matches("- ").strip_prefix("uses: "))
        {
            let (_, version) =
                line.split_once('@').unwrap_or_else(|| panic!("{file}: `{line}` is not pinned"));
            let pinned = version.starts_with('v') && version[1..].starts_with(|c: char| c.is_ascii_digit())
                || version.len() == 40
                || line.starts_with("dtolnay/rust-toolchain@");
            assert!(pinned, "{file}: `{line}` is not pinned to a version");
        }
    }
}

#[test]
fn the_release_pushes_the_three_images_to_ghcr_from_their_dockerfiles_on_version_tags() {
    let release = workflow("release.yml");
    assert_eq!(release["on"]["push"]["tags"][0], "v*");
    let matrix: Vec<&str> = release["jobs"]["image"]["strategy"]["matrix"]["process"]
        .as_sequence()
        .expect("process matrix")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(matrix, ["gateway", "messages", "loadgen"]);
    let job = job_text(&release, "image");
    assert!(
        job.contains("docker/build-push-action")
            && job.contains("registry: ghcr.io")
            && job.contains("push: true")
    );
    assert!(job.contains("file: docker/${{ matrix.process }}.Dockerfile"));
    for process in matrix {
        assert!(
            repo::root().join(format!("docker/{process}.Dockerfile")).is_file(),
            "no Dockerfile for {process}"
        );
    }
    assert_eq!(release["permissions"]["packages"], "write");
}
