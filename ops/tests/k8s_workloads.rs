//! Facts about the rendered workloads (gateway, messages, NATS, and dev's Postgres and
//! Redis): non-root, probed, drained within their grace period, each gateway with its own
//! Snowflake node id, images pinned.

use ops_checks::manifests::{
    KUSTOMIZATIONS, container, containers, int, name, name_of, object, render, workloads,
};
use serde_norway::Value;

fn chat_toml(objects: &[Value]) -> toml::Table {
    let config_map = objects
        .iter()
        .find(|o| o["kind"] == "ConfigMap" && name(o).starts_with("chat-config"))
        .expect("the render has the chat-config ConfigMap");
    let text = config_map["data"]["chat.toml"].as_str().expect("chat-config holds chat.toml");
    text.parse().expect("chat.toml is valid TOML")
}

fn setting(config: &toml::Table, section: &str, key: &str) -> i64 {
    config[section][key].as_integer().unwrap_or_else(|| panic!("chat.toml sets [{section}] {key}"))
}

#[test]
fn every_workload_runs_as_non_root_without_privilege_escalation() {
    for dir in KUSTOMIZATIONS {
        for workload in workloads(&render(dir)) {
            let pod = &workload["spec"]["template"]["spec"];
            for c in containers(workload) {
                let non_root = c["securityContext"]["runAsNonRoot"]
                    .as_bool()
                    .or(pod["securityContext"]["runAsNonRoot"].as_bool());
                assert_eq!(non_root, Some(true), "{dir}: {}/{} may run as root", name(workload), name_of(c));
                assert_eq!(
                    c["securityContext"]["allowPrivilegeEscalation"],
                    false,
                    "{dir}: {}/{} allows privilege escalation",
                    name(workload),
                    name_of(c)
                );
            }
        }
    }
}

#[test]
fn every_server_container_has_readiness_and_liveness_probes() {
    for dir in KUSTOMIZATIONS {
        for workload in workloads(&render(dir)) {
            // The exporter sidecar is checked through its scrape (`up`), not by the kubelet.
            for c in containers(workload).iter().filter(|c| c["name"] != "metrics") {
                for probe in ["readinessProbe", "livenessProbe"] {
                    assert!(c[probe].is_mapping(), "{dir}: {}/{} has no {probe}", name(workload), name_of(c));
                }
            }
        }
    }
}

#[test]
fn gateways_and_workers_probe_health_and_readiness_on_the_admin_port_their_config_listens_on() {
    let objects = render("k8s/base");
    let config = chat_toml(&objects);
    for (kind, workload_name, section) in
        [("StatefulSet", "gateway", "gateway"), ("Deployment", "messages", "worker")]
    {
        let c = container(object(&objects, kind, workload_name), workload_name);
        let admin_listen = config[section]["admin_listen"].as_str().expect("admin_listen is set");
        assert_eq!(
            admin_listen, "0.0.0.0:9090",
            "[{section}] admin_listen must listen on all interfaces, port 9090"
        );
        let admin_port =
            c["ports"].as_sequence().unwrap().iter().find(|p| p["name"] == "admin").expect("an admin port");
        assert_eq!(admin_port["containerPort"], 9090, "{workload_name}: admin containerPort");
        for (probe, path) in
            [("readinessProbe", "/ready"), ("livenessProbe", "/health"), ("startupProbe", "/health")]
        {
            assert_eq!(c[probe]["httpGet"]["path"], path, "{workload_name}: {probe} path");
            assert_eq!(c[probe]["httpGet"]["port"], "admin", "{workload_name}: {probe} port");
        }
        let env_config = c["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "CHAT_CONFIG")
            .expect("CHAT_CONFIG set");
        assert_eq!(env_config["value"], "/etc/chat/chat.toml");
    }
    assert_eq!(config["gateway"]["listen"].as_str(), Some("0.0.0.0:8080"));
    assert_eq!(config["log"]["json"].as_bool(), Some(true), "[log] json = true in containers");
}

#[test]
fn termination_grace_covers_the_gateway_drain_and_the_worker_batch() {
    const SOCKET_DRAIN_SECS: i64 = 30;
    let objects = render("k8s/base");
    let config = chat_toml(&objects);
    let gateway = object(&objects, "StatefulSet", "gateway");
    let pre_stop = int(
        &container(gateway, "gateway")["lifecycle"]["preStop"]["sleep"]["seconds"],
        "gateway preStop sleep",
    );
    let needed = pre_stop + SOCKET_DRAIN_SECS + setting(&config, "gateway", "shutdown_grace");
    let grace = int(&gateway["spec"]["template"]["spec"]["terminationGracePeriodSeconds"], "gateway grace");
    assert!(
        grace >= needed,
        "gateway terminationGracePeriodSeconds {grace} < preStop + 30 s drain + shutdown_grace = {needed}"
    );
    let messages = object(&objects, "Deployment", "messages");
    let grace = int(&messages["spec"]["template"]["spec"]["terminationGracePeriodSeconds"], "messages grace");
    assert!(
        grace > setting(&config, "worker", "shutdown_grace"),
        "messages terminationGracePeriodSeconds {grace} <= worker.shutdown_grace"
    );
}

#[test]
fn each_gateway_takes_its_snowflake_node_id_from_its_stateful_set_pod_index() {
    for dir in KUSTOMIZATIONS {
        let objects = render(dir);
        let gateway = object(&objects, "StatefulSet", "gateway");
        let env = container(gateway, "gateway")["env"].as_sequence().expect("gateway env");
        let node_id = env
            .iter()
            .find(|e| e["name"] == "CHAT__GATEWAY__NODE_ID")
            .expect("CHAT__GATEWAY__NODE_ID is set");
        assert_eq!(
            node_id["valueFrom"]["fieldRef"]["fieldPath"], "metadata.labels['apps.kubernetes.io/pod-index']",
            "{dir}"
        );
        let hpa = object(&objects, "HorizontalPodAutoscaler", "gateway");
        assert!(
            int(&hpa["spec"]["maxReplicas"], "gateway maxReplicas") <= 1024,
            "{dir}: node ids are 0–1023"
        );
    }
}

#[test]
fn every_image_is_pinned_to_a_version_and_the_cells_own_come_from_the_release_registry() {
    for dir in KUSTOMIZATIONS {
        for workload in workloads(&render(dir)) {
            for c in containers(workload) {
                let image = c["image"].as_str().expect("an image");
                let tag = image.rsplit_once(':').map(|(_, tag)| tag).unwrap_or("");
                assert!(
                    !tag.is_empty() && tag != "latest" && !tag.contains('/'),
                    "{dir}: image {image} has no version tag"
                );
                if ["gateway", "messages"].contains(&name(workload)) {
                    assert!(
                        image.starts_with("ghcr.io/") && image.contains("/chat-cell-"),
                        "{dir}: {image} is not a release image"
                    );
                }
            }
        }
    }
}
