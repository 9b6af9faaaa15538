//! The autoscalers and disruption budgets: gateways on CPU and on 80k connections per pod,
//! workers on consumer lag and never beyond the partition count, NATS keeping its quorum.

use ops_checks::manifests::{int, object, render};
use serde_norway::Value;

fn metric<'a>(hpa: &'a Value, kind: &str) -> &'a Value {
    hpa["spec"]["metrics"]
        .as_sequence()
        .and_then(|metrics| metrics.iter().find(|m| m["type"] == kind))
        .unwrap_or_else(|| {
            panic!("HPA {} has no {kind} metric", hpa["metadata"]["name"].as_str().unwrap_or("?"))
        })
}

#[test]
fn gateways_scale_on_cpu_and_on_80k_connections_per_pod() {
    let objects = render("k8s/base");
    let hpa = object(&objects, "HorizontalPodAutoscaler", "gateway");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["kind"], "StatefulSet");
    assert_eq!(metric(hpa, "Resource")["resource"]["name"], "cpu");
    let pods = &metric(hpa, "Pods")["pods"];
    assert_eq!(pods["metric"]["name"], "chat_gateway_connections");
    assert_eq!(pods["target"]["type"], "AverageValue");
    assert_eq!(pods["target"]["averageValue"], "80000", "the design point is 80k connections per gateway");
}

#[test]
fn workers_scale_on_consumer_lag_up_to_one_per_partition() {
    let objects = render("k8s/base");
    let hpa = object(&objects, "HorizontalPodAutoscaler", "messages");
    assert_eq!(
        metric(hpa, "External")["external"]["metric"]["name"],
        "chat_worker_consumer_pending_messages"
    );
    let config: toml::Table =
        ops_checks::repo::read("k8s/base/config/chat.toml").parse().expect("chat.toml parses");
    let partitions = config["nats"]["partitions"].as_integer().expect("[nats] partitions is set");
    for dir in ["k8s/base", "k8s/overlays/dev", "k8s/overlays/prod"] {
        let objects = render(dir);
        let max = int(
            &object(&objects, "HorizontalPodAutoscaler", "messages")["spec"]["maxReplicas"],
            "maxReplicas",
        );
        assert!(
            max <= partitions,
            "{dir}: {max} workers for {partitions} partitions: the extra ones would own nothing"
        );
    }
}

#[test]
fn nats_runs_three_nodes_on_separate_hosts_and_keeps_two_through_disruptions() {
    for dir in ["k8s/base", "k8s/overlays/dev", "k8s/overlays/prod"] {
        let objects = render(dir);
        let nats = object(&objects, "StatefulSet", "nats");
        assert_eq!(int(&nats["spec"]["replicas"], "nats replicas"), 3, "{dir}: NATS runs 3 nodes");
        assert_eq!(
            object(&objects, "PodDisruptionBudget", "nats")["spec"]["minAvailable"],
            2,
            "{dir}: NATS PDB"
        );
        let claim = &nats["spec"]["volumeClaimTemplates"][0];
        assert_eq!(claim["metadata"]["name"], "data", "{dir}: NATS stores on a PVC named data");
    }
    for dir in ["k8s/base", "k8s/overlays/prod"] {
        let objects = render(dir);
        let anti = &object(&objects, "StatefulSet", "nats")["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"];
        let term = &anti["requiredDuringSchedulingIgnoredDuringExecution"][0];
        assert_eq!(
            term["topologyKey"], "kubernetes.io/hostname",
            "{dir}: NATS nodes must be on separate hosts"
        );
    }
}
