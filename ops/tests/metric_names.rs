//! The metric contract of docs/metrics.md holds everywhere a name is written: in the dashboard
//! and rule expressions, the autoscalers, the prometheus-adapter rules, and the names the
//! processes register. A typo anywhere fails here.

use ops_checks::metrics_doc::{declared_metrics, exposed_names};
use ops_checks::promql::metric_names;
use ops_checks::{manifests, repo};
use std::collections::BTreeSet;

const DASHBOARDS: &str = "k8s/monitoring/dashboards";

fn known_series() -> BTreeSet<String> {
    let declared = declared_metrics(&repo::read("docs/metrics.md"));
    assert!(declared.len() >= 30, "docs/metrics.md declares only {} metrics", declared.len());
    declared.iter().flat_map(|(name, kind)| exposed_names(name, kind)).collect()
}

fn assert_known(expr: &str, origin: &str, known: &BTreeSet<String>) {
    for name in metric_names(expr) {
        assert!(known.contains(&name), "{origin}: `{name}` is not in docs/metrics.md (expression: {expr})");
    }
}

fn dashboard_exprs(dashboard: &serde_json::Value, out: &mut Vec<String>) {
    match dashboard {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::String(expr)) = map.get("expr") {
                out.push(expr.clone());
            }
            map.values().for_each(|v| dashboard_exprs(v, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

#[test]
fn dashboards_are_valid_grafana_json_with_unique_panel_ids() {
    let files = repo::files_in(DASHBOARDS, ".json");
    assert!(!files.is_empty(), "no dashboards in {DASHBOARDS}");
    for file in files {
        let dashboard: serde_json::Value =
            serde_json::from_str(&repo::read(&file)).unwrap_or_else(|e| panic!("{file} is not JSON: {e}"));
        for key in ["uid", "title", "panels", "schemaVersion"] {
            assert!(dashboard.get(key).is_some(), "{file} has no {key}");
        }
        let mut ids = BTreeSet::new();
        for panel in dashboard["panels"].as_array().expect("panels") {
            assert!(
                ids.insert(panel["id"].as_i64().expect("panel id")),
                "{file}: panel id {} is used twice",
                panel["id"]
            );
            assert!(panel["gridPos"].is_object(), "{file}: panel {} has no gridPos", panel["title"]);
            if panel["type"] != "row" {
                assert!(
                    panel["targets"].as_array().is_some_and(|t| !t.is_empty()),
                    "{file}: panel {} has no query",
                    panel["title"]
                );
            }
        }
    }
}

#[test]
fn dashboard_queries_use_only_documented_metrics() {
    let known = known_series();
    for file in repo::files_in(DASHBOARDS, ".json") {
        let dashboard: serde_json::Value = serde_json::from_str(&repo::read(&file)).expect("JSON");
        let mut exprs = Vec::new();
        dashboard_exprs(&dashboard, &mut exprs);
        assert!(exprs.len() >= 20, "{file} has only {} queries", exprs.len());
        for expr in exprs {
            assert_known(&expr, &file, &known);
        }
    }
}

#[test]
fn rule_expressions_use_only_documented_metrics() {
    let known = known_series();
    let rules = repo::yaml_file("k8s/monitoring/rules/chat.rules.yml");
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            if let Some(record) = rule["record"].as_str() {
                assert!(known.contains(record), "recording rule {record} is not in docs/metrics.md");
            }
            assert_known(rule["expr"].as_str().expect("expr"), "k8s/monitoring/rules/chat.rules.yml", &known);
        }
    }
}

#[test]
fn autoscaler_and_prometheus_adapter_metrics_are_documented() {
    let known = known_series();
    let adapter = repo::yaml_file("k8s/monitoring/prometheus-adapter-rules.yaml");
    for section in ["rules", "externalRules"] {
        for rule in adapter[section].as_sequence().expect("adapter rules") {
            let query = rule["metricsQuery"]
                .as_str()
                .expect("metricsQuery")
                .replace("<<.LabelMatchers>>", "")
                .replace("<<.GroupBy>>", "pod");
            assert_known(&query, "prometheus-adapter-rules.yaml", &known);
            assert_known(
                rule["name"]["as"].as_str().expect("name.as"),
                "prometheus-adapter-rules.yaml",
                &known,
            );
        }
    }
    let served: Vec<&str> = ["rules", "externalRules"]
        .iter()
        .flat_map(|s| adapter[*s].as_sequence().unwrap().iter())
        .filter_map(|r| r["name"]["as"].as_str())
        .collect();
    for hpa in manifests::of_kind(&manifests::render("k8s/base"), "HorizontalPodAutoscaler") {
        for metric in hpa["spec"]["metrics"].as_sequence().expect("metrics") {
            let name =
                metric["pods"]["metric"]["name"].as_str().or(metric["external"]["metric"]["name"].as_str());
            if let Some(name) = name {
                assert!(
                    served.contains(&name),
                    "HPA {} scales on {name}, which prometheus-adapter-rules.yaml does not serve",
                    manifests::name(hpa)
                );
            }
        }
    }
}

/// `registry.register("name", …)` and `register_with_unit("name", …, Unit::Seconds, …)` in the
/// processes' sources, as exposed: counters get `_total`, a unit its suffix.
fn registered_names(source: &str) -> Vec<String> {
    let mut names = Vec::new();
    for call in ["register(", "register_with_unit("] {
        for (at, _) in source.match_indices(call) {
            let args = source[at + call.len()..].trim_start();
            let literal = args.strip_prefix('"').and_then(|rest| rest.split_once('"')).map(|(name, _)| name);
            names.extend(literal.filter(|name| name.starts_with("chat_")).map(String::from));
        }
    }
    names
}

#[test]
fn the_processes_register_only_documented_metric_names() {
    let declared = declared_metrics(&repo::read("docs/metrics.md"));
    let mut checked = 0;
    for dir in ["shared/src", "gateway/src", "messages/src"] {
        let mut stack = vec![repo::root().join(dir)];
        while let Some(path) = stack.pop() {
            if path.is_dir() {
                stack.extend(std::fs::read_dir(&path).expect("list").filter_map(|e| Some(e.ok()?.path())));
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let source = std::fs::read_to_string(&path).expect("read source");
                for name in registered_names(&source) {
                    let exposed = [name.clone(), format!("{name}_total"), format!("{name}_seconds")];
                    assert!(
                        exposed.iter().any(|n| declared.contains_key(n)),
                        "{}: registers `{name}`, not in docs/metrics.md",
                        path.display()
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 0, "found no metric registrations in the processes' sources");
}
