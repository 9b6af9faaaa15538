//! The NATS configs of docker-compose and Kubernetes keep the settings of
//! nats/node.conf.template: its fixed values unchanged, its placeholders filled, and
//! `sync_interval: always` (an fsync before every acknowledgement).

use ops_checks::manifests::{object, render};
use ops_checks::nats_conf::flatten;
use ops_checks::repo;
use std::collections::BTreeMap;

/// Values the template leaves open that every deployment must still set this way.
const REQUIRED_FILLS: [(&str, &str); 2] =
    [("jetstream.sync_interval", "always"), ("cluster.no_advertise", "true")];

fn assert_matches_template(config: &str, origin: &str) {
    let template = flatten(&repo::read("nats/node.conf.template"));
    let settings = flatten(config);
    assert!(template.len() >= 10, "nats/node.conf.template flattened to only {template:?}");
    for (key, value) in &template {
        let actual = settings
            .get(key)
            .unwrap_or_else(|| panic!("{origin} does not set {key} (nats/node.conf.template does)"));
        if !value.contains("{{") {
            assert_eq!(actual, value, "{origin}: {key} differs from nats/node.conf.template");
        }
    }
    for (key, value) in REQUIRED_FILLS {
        assert_eq!(settings.get(key).map(String::as_str), Some(value), "{origin}: {key} must be {value}");
    }
    assert_routes_reach_three_nodes(&settings, origin);
}

fn assert_routes_reach_three_nodes(settings: &BTreeMap<String, String>, origin: &str) {
    let routes: Vec<&str> = settings["cluster.routes"].split_whitespace().collect();
    assert_eq!(routes.len(), 3, "{origin}: the cluster routes should name the 3 nodes: {routes:?}");
    assert!(
        routes.iter().all(|r| r.starts_with("nats://") && r.ends_with(":6222")),
        "{origin}: routes {routes:?}"
    );
}

#[test]
fn the_compose_nats_config_keeps_the_template_settings() {
    assert_matches_template(&repo::read("docker/nats.conf"), "docker/nats.conf");
}

#[test]
fn the_kubernetes_nats_config_keeps_the_template_settings_and_is_what_the_pods_mount() {
    assert_matches_template(&repo::read("k8s/base/nats/nats.conf"), "k8s/base/nats/nats.conf");
    let objects = render("k8s/base");
    let config_map = objects
        .iter()
        .find(|o| o["kind"] == "ConfigMap" && ops_checks::manifests::name(o).starts_with("nats-config"))
        .expect("the render has the nats-config ConfigMap");
    let mounted = config_map["data"]["nats.conf"].as_str().expect("nats-config holds nats.conf");
    assert_eq!(mounted, repo::read("k8s/base/nats/nats.conf"));
    let nats = object(&objects, "StatefulSet", "nats");
    let volumes = nats["spec"]["template"]["spec"]["volumes"].as_sequence().expect("volumes");
    let config_volume = volumes.iter().find(|v| v["name"] == "config").expect("a config volume");
    assert_eq!(config_volume["configMap"]["name"].as_str(), ops_checks::manifests::name(config_map).into());
}

#[test]
fn jetstream_stores_on_the_volume_mounted_at_its_store_dir() {
    let settings = flatten(&repo::read("k8s/base/nats/nats.conf"));
    let objects = render("k8s/base");
    let nats = ops_checks::manifests::container(object(&objects, "StatefulSet", "nats"), "nats");
    let mounts = nats["volumeMounts"].as_sequence().expect("mounts");
    let data = mounts.iter().find(|m| m["name"] == "data").expect("the PVC is mounted");
    assert_eq!(data["mountPath"].as_str(), Some(settings["jetstream.store_dir"].as_str()));
    let compose = flatten(&repo::read("docker/nats.conf"));
    assert_eq!(compose["jetstream.store_dir"], "/data", "the compose volumes are mounted at /data");
}
