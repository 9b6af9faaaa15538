//! Network policies and services: only the gateway's client port is open to everyone, every
//! scrape target is a named port of a Service that selects the right pods.

use ops_checks::manifests::{name, of_kind, render, selects, workloads};
use serde_norway::Value;

fn port_names(rule: &Value) -> Vec<String> {
    rule["ports"]
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|p| serde_norway::to_string(&p["port"]).unwrap().trim().to_string())
        .collect()
}

#[test]
fn ingress_is_denied_by_default_and_only_the_gateway_client_port_is_open_to_all() {
    for dir in ["k8s/overlays/dev", "k8s/overlays/prod"] {
        let objects = render(dir);
        let policies = of_kind(&objects, "NetworkPolicy");
        let deny = policies
            .iter()
            .find(|p| name(p) == "default-deny-ingress")
            .expect("a default-deny-ingress policy");
        assert!(
            deny["spec"]["podSelector"].as_mapping().is_some_and(|m| m.is_empty())
                && deny["spec"]["ingress"].is_null()
        );
        for policy in &policies {
            for rule in policy["spec"]["ingress"].as_sequence().into_iter().flatten() {
                if rule["from"].is_null() {
                    assert_eq!(
                        name(policy),
                        "gateway",
                        "{dir}: policy {} opens ingress to everyone",
                        name(policy)
                    );
                    assert_eq!(
                        port_names(rule),
                        ["http"],
                        "{dir}: the gateway opens only its client port to everyone"
                    );
                }
            }
        }
    }
}

#[test]
fn gateways_reach_the_upload_store_over_https_and_workers_do_not() {
    for dir in ["k8s/overlays/dev", "k8s/overlays/prod"] {
        let objects = render(dir);
        let policies = of_kind(&objects, "NetworkPolicy");
        let reaches_443 = |policy: &str| {
            let policy = policies.iter().find(|p| name(p) == policy).expect("a policy per workload");
            policy["spec"]["egress"]
                .as_sequence()
                .into_iter()
                .flatten()
                .any(|rule| port_names(rule).contains(&"443".to_string()))
        };
        assert!(reaches_443("gateway"), "{dir}: gateways must reach the S3 upload store on 443");
        assert!(!reaches_443("messages"), "{dir}: workers have no business on 443");
    }
}

#[test]
fn every_server_pod_is_covered_by_a_policy_of_its_own() {
    for dir in ["k8s/overlays/dev", "k8s/overlays/prod"] {
        let objects = render(dir);
        let policies = of_kind(&objects, "NetworkPolicy");
        for workload in workloads(&objects) {
            let labels = &workload["spec"]["template"]["metadata"]["labels"];
            let covered = policies.iter().any(|p| {
                name(p) != "default-deny-ingress" && selects(&p["spec"]["podSelector"]["matchLabels"], labels)
            });
            assert!(covered, "{dir}: no NetworkPolicy allows traffic to {}", name(workload));
        }
    }
}

#[test]
fn every_service_monitor_scrapes_a_named_port_of_a_service_that_selects_pods() {
    let objects = render("k8s/base");
    let services = of_kind(&objects, "Service");
    let monitors = of_kind(&objects, "ServiceMonitor");
    assert_eq!(monitors.len(), 3, "ServiceMonitors for gateway, messages and nats");
    for monitor in monitors {
        let selected: Vec<&&Value> = services
            .iter()
            .filter(|s| selects(&monitor["spec"]["selector"]["matchLabels"], &s["metadata"]["labels"]))
            .collect();
        assert!(!selected.is_empty(), "ServiceMonitor {} selects no Service", name(monitor));
        for endpoint in monitor["spec"]["endpoints"].as_sequence().expect("endpoints") {
            let port = endpoint["port"].as_str().expect("endpoints name their port");
            for service in &selected {
                let ports = service["spec"]["ports"].as_sequence().expect("ports");
                assert!(
                    ports.iter().any(|p| p["name"] == port),
                    "Service {} has no port {port} for ServiceMonitor {}",
                    name(service),
                    name(monitor)
                );
                let pods = workloads(&objects)
                    .into_iter()
                    .filter(|w| {
                        selects(&service["spec"]["selector"], &w["spec"]["template"]["metadata"]["labels"])
                    })
                    .count();
                assert_eq!(
                    pods,
                    1,
                    "Service {} should select the pods of exactly one workload",
                    name(service)
                );
            }
        }
        assert_eq!(monitor["spec"]["jobLabel"], "app.kubernetes.io/name", "the rules expect job=<app name>");
    }
}
