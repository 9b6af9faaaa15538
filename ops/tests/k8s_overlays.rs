//! What sets the overlays apart: prod runs more of everything with sized resources and takes
//! its secrets from outside git; dev fills every secret in and runs its own datastores.

use ops_checks::manifests::{containers, find, int, name, name_of, object, of_kind, render, workloads};
use serde_norway::Value;

const EXTERNAL_SECRETS: [&str; 3] = ["chat-datastores", "chat-jwt", "chat-uploads"];

fn replicas(objects: &[Value], kind: &str, workload: &str) -> i64 {
    int(&object(objects, kind, workload)["spec"]["replicas"], workload)
}

fn hpa_min(objects: &[Value], hpa: &str) -> i64 {
    int(&object(objects, "HorizontalPodAutoscaler", hpa)["spec"]["minReplicas"], hpa)
}

fn referenced_secrets(objects: &[Value]) -> std::collections::BTreeSet<String> {
    let mut secrets = std::collections::BTreeSet::new();
    for workload in workloads(objects) {
        let volumes = workload["spec"]["template"]["spec"]["volumes"].as_sequence().into_iter().flatten();
        for volume in volumes {
            if let Some(secret) = volume["secret"]["secretName"].as_str() {
                secrets.insert(secret.to_string());
            }
        }
        for c in containers(workload) {
            for env in c["env"].as_sequence().into_iter().flatten() {
                if let Some(secret) = env["valueFrom"]["secretKeyRef"]["name"].as_str() {
                    secrets.insert(secret.to_string());
                }
            }
        }
    }
    secrets
}

#[test]
fn prod_runs_more_gateways_and_workers_than_dev() {
    let (dev, prod) = (render("k8s/overlays/dev"), render("k8s/overlays/prod"));
    for (kind, workload) in [("StatefulSet", "gateway"), ("Deployment", "messages")] {
        assert!(
            replicas(&prod, kind, workload) > replicas(&dev, kind, workload),
            "prod should run more {workload} replicas than dev"
        );
        assert!(
            hpa_min(&prod, workload) > hpa_min(&dev, workload),
            "prod's {workload} HPA minimum should exceed dev's"
        );
    }
    assert!(replicas(&dev, "StatefulSet", "gateway") <= 2, "dev runs 1–2 gateways");
}

#[test]
fn prod_containers_request_cpu_and_memory_and_limit_memory() {
    for workload in workloads(&render("k8s/overlays/prod")) {
        for c in containers(workload) {
            let resources = &c["resources"];
            for (part, resource) in [("requests", "cpu"), ("requests", "memory"), ("limits", "memory")] {
                assert!(
                    !resources[part][resource].is_null(),
                    "prod {}/{} has no {part}.{resource}",
                    name(workload),
                    name_of(c)
                );
            }
        }
    }
}

#[test]
fn prod_renders_no_secret_and_expects_exactly_the_documented_external_ones() {
    let prod = render("k8s/overlays/prod");
    let rendered: Vec<&str> = of_kind(&prod, "Secret").into_iter().map(name).collect();
    assert!(rendered.is_empty(), "prod renders Secrets {rendered:?}: its secrets come from outside git");
    let referenced: Vec<String> = referenced_secrets(&prod).into_iter().collect();
    assert_eq!(
        referenced, EXTERNAL_SECRETS,
        "prod workloads should read exactly the Secrets documented in docs/runbook.md#secrets"
    );
    let runbook = ops_checks::repo::read("docs/runbook.md");
    for secret in EXTERNAL_SECRETS {
        assert!(runbook.contains(secret), "docs/runbook.md does not tell how to create {secret}");
    }
}

#[test]
fn dev_renders_every_secret_its_workloads_read_with_no_placeholder_left() {
    let dev = render("k8s/overlays/dev");
    for secret in referenced_secrets(&dev) {
        let object = find(&dev, "Secret", &secret)
            .unwrap_or_else(|| panic!("dev reads Secret {secret} but does not render it"));
        let text = serde_norway::to_string(object).expect("serialise");
        assert!(!text.contains("CHANGE-ME"), "dev Secret {secret} still holds a placeholder");
    }
}

#[test]
fn dev_runs_its_own_postgres_and_redis_and_the_datastore_urls_point_at_them() {
    let dev = render("k8s/overlays/dev");
    object(&dev, "StatefulSet", "postgres");
    object(&dev, "Deployment", "redis");
    object(&dev, "Service", "postgres");
    object(&dev, "Service", "redis");
    let urls = &object(&dev, "Secret", "chat-datastores")["stringData"];
    assert!(
        urls["database-url"].as_str().is_some_and(|url| url.contains("@postgres:5432/")),
        "dev database-url"
    );
    assert!(
        urls["redis-url"].as_str().is_some_and(|url| url.starts_with("redis://redis:6379")),
        "dev redis-url"
    );
    for prod_only in ["postgres", "redis"] {
        assert!(
            find(&render("k8s/overlays/prod"), "Service", prod_only).is_none(),
            "prod must not run its own {prod_only}"
        );
    }
}
