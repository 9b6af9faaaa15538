//! The images: multi-stage builds of one binary each (`cargo build --release --locked -p …`
//! with cache mounts), run as non-root on a distroless base, with their ports exposed and a
//! HEALTHCHECK through the binary's `healthcheck` sub-command. (No Docker engine here: the
//! Dockerfiles are checked as text, not built.)

use ops_checks::repo;

/// Process, its Dockerfile, the ports it exposes: the long-running services.
const IMAGES: [(&str, &str, &[&str]); 2] = [
    ("gateway", "docker/gateway.Dockerfile", &["8080", "9090"]),
    ("messages", "docker/messages.Dockerfile", &["9090"]),
];

/// Every image built from this repository: the services, and loadgen, a one-shot job (the
/// Chaos Mesh game day's checker) with no port and no health check.
const BUILT: [(&str, &str); 3] = [
    ("gateway", "docker/gateway.Dockerfile"),
    ("messages", "docker/messages.Dockerfile"),
    ("loadgen", "docker/loadgen.Dockerfile"),
];

/// The Dockerfile's instructions, continuation lines joined, comments dropped.
fn instructions(dockerfile: &str) -> Vec<String> {
    let text = repo::read(dockerfile);
    let joined = text
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("\\\n", " ");
    joined.lines().map(str::trim).filter(|line| !line.is_empty()).map(String::from).collect()
}

fn with_keyword<'a>(instructions: &'a [String], keyword: &str) -> Vec<&'a String> {
    instructions.iter().filter(|i| i.split_whitespace().next() == Some(keyword)).collect()
}

#[test]
fn each_image_builds_its_binary_in_a_rust_stage_with_cache_mounts() {
    for (process, dockerfile) in BUILT {
        let all = instructions(dockerfile);
        let stages = with_keyword(&all, "FROM");
        assert_eq!(stages.len(), 2, "{dockerfile}: a builder and a runtime stage");
        assert!(
            stages[0].starts_with("FROM rust:1.95-bookworm AS builder"),
            "{dockerfile}: builder is {}",
            stages[0]
        );
        let build =
            with_keyword(&all, "RUN").into_iter().find(|r| r.contains("cargo build")).expect("a cargo build");
        assert!(
            build.contains(&format!("cargo build --release --locked -p {process}")),
            "{dockerfile}: {build}"
        );
        for cache in ["target=/usr/local/cargo/registry", "target=/src/target"] {
            assert!(
                build.contains(&format!("--mount=type=cache,{cache}")),
                "{dockerfile}: no cache mount {cache}"
            );
        }
        assert!(
            all.iter()
                .any(|i| i.starts_with("COPY --from=builder")
                    && i.ends_with(&format!("/usr/local/bin/{process}"))),
            "{dockerfile}: the binary is not copied to /usr/local/bin/{process}"
        );
    }
}

#[test]
fn each_image_runs_as_non_root_exposes_its_ports_and_checks_its_health() {
    for (process, dockerfile, ports) in IMAGES {
        let all = instructions(dockerfile);
        let runtime = with_keyword(&all, "FROM")[1];
        assert_eq!(
            runtime.as_str(),
            "FROM gcr.io/distroless/cc-debian12:nonroot",
            "{dockerfile}: runtime base"
        );
        assert_eq!(
            with_keyword(&all, "USER"),
            [&"USER nonroot:nonroot".to_string()],
            "{dockerfile}: runs as nonroot"
        );
        let exposed: Vec<&str> =
            with_keyword(&all, "EXPOSE").iter().flat_map(|e| e.split_whitespace().skip(1)).collect();
        assert_eq!(exposed, ports, "{dockerfile}: exposed ports");
        let healthcheck = with_keyword(&all, "HEALTHCHECK");
        assert_eq!(healthcheck.len(), 1, "{dockerfile}: one HEALTHCHECK");
        assert!(
            healthcheck[0].ends_with(&format!(r#"CMD ["/usr/local/bin/{process}", "healthcheck"]"#)),
            "{dockerfile}: {}",
            healthcheck[0]
        );
        assert_eq!(
            with_keyword(&all, "ENTRYPOINT"),
            [&format!(r#"ENTRYPOINT ["/usr/local/bin/{process}"]"#)],
            "{dockerfile}: entrypoint"
        );
    }
}

#[test]
fn the_loadgen_image_runs_as_non_root_with_no_port_and_loadgen_as_its_entrypoint() {
    let dockerfile = "docker/loadgen.Dockerfile";
    let all = instructions(dockerfile);
    assert_eq!(with_keyword(&all, "FROM")[1].as_str(), "FROM gcr.io/distroless/cc-debian12:nonroot");
    assert_eq!(
        with_keyword(&all, "USER"),
        [&"USER nonroot:nonroot".to_string()],
        "{dockerfile}: runs as nonroot"
    );
    assert!(with_keyword(&all, "EXPOSE").is_empty(), "{dockerfile}: a job serves nothing");
    assert_eq!(with_keyword(&all, "ENTRYPOINT"), [&r#"ENTRYPOINT ["/usr/local/bin/loadgen"]"#.to_string()]);
}

#[test]
fn the_build_context_keeps_what_cargo_needs_and_drops_build_output() {
    let ignored: Vec<String> = repo::read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    for needed in ["target/", ".git/"] {
        assert!(ignored.iter().any(|l| l == needed), ".dockerignore should drop {needed}");
    }
    let members = repo::read("Cargo.toml");
    for kept in ["nats", "migrations", "Cargo.lock", "shared", "gateway", "messages", "cell", "ops"] {
        assert!(
            !ignored.iter().any(|l| l.trim_end_matches('/') == kept),
            ".dockerignore drops {kept}, which the build needs"
        );
        assert!(kept.contains('.') || repo::root().join(kept).exists(), "{kept} is missing");
    }
    assert!(members.contains("\"ops\""), "ops is a workspace member");
}
