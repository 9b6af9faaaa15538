//! The Prometheus rules: promtool accepts them and their unit tests pass, every alert is
//! unit-tested firing, every alert links its runbook entry, and the PrometheusRule that
//! kustomize deploys carries exactly the groups of the plain rules file.

use ops_checks::{manifests, repo, tool};
use serde_norway::Value;

const RULES: &str = "k8s/monitoring/rules/chat.rules.yml";
const RULE_TESTS: &str = "k8s/monitoring/rules/chat.rules.test.yml";
const RUNBOOK_URL_PREFIX: &str = "https://github.com/chat-cell/chat-cell/blob/main/docs/runbook.md#";

fn alerts() -> Vec<Value> {
    let rules = repo::yaml_file(RULES);
    let groups = rules["groups"].as_sequence().expect("groups").clone();
    groups
        .into_iter()
        .flat_map(|g| g["rules"].as_sequence().cloned().unwrap_or_default())
        .filter(|r| r["alert"].is_string())
        .collect()
}

/// GitHub's anchor for a Markdown heading.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn promtool_accepts_the_rules() {
    tool::run_ok("promtool", &["check", "rules", RULES]);
}

#[test]
fn promtool_unit_tests_of_the_rules_pass() {
    tool::run_ok("promtool", &["test", "rules", RULE_TESTS]);
}

#[test]
fn the_slo_alerts_use_the_1h_5m_and_6h_30m_windows_at_14_4x_and_6x() {
    let exprs: Vec<(String, String)> = alerts()
        .iter()
        .map(|a| (a["alert"].as_str().unwrap().to_string(), a["expr"].as_str().unwrap().to_string()))
        .collect();
    let burn = |name: &str| {
        exprs
            .iter()
            .find(|(alert, _)| alert == name)
            .map(|(_, e)| e.clone())
            .unwrap_or_else(|| panic!("no alert {name}"))
    };
    for slo in ["ChatSendErrorBudget", "ChatDeliverLatencyBudget"] {
        let fast = burn(&format!("{slo}FastBurn"));
        assert!(
            fast.contains("ratio_rate1h > (14.4 *") && fast.contains("ratio_rate5m > (14.4 *"),
            "{slo}FastBurn: {fast}"
        );
        let slow = burn(&format!("{slo}SlowBurn"));
        assert!(
            slow.contains("ratio_rate6h > (6 *") && slow.contains("ratio_rate30m > (6 *"),
            "{slo}SlowBurn: {slow}"
        );
    }
    let recording = repo::read(RULES);
    assert!(
        recording.contains(r#"chat_gateway_send_deliver_seconds_bucket{le="0.1"}"#),
        "the latency SLO counts deliveries under 100 ms"
    );
    assert!(
        recording.contains(r#"chat_gateway_sends_total{outcome="failed"}"#),
        "the send SLO counts failed sends"
    );
}

#[test]
fn every_alert_is_unit_tested_firing() {
    let tests = repo::yaml_file(RULE_TESTS);
    let mut fired = std::collections::BTreeSet::new();
    for test in tests["tests"].as_sequence().expect("tests") {
        for case in test["alert_rule_test"].as_sequence().into_iter().flatten() {
            if case["exp_alerts"].as_sequence().is_some_and(|alerts| !alerts.is_empty()) {
                fired.insert(case["alertname"].as_str().unwrap_or_default().to_string());
            }
        }
    }
    for alert in alerts() {
        let name = alert["alert"].as_str().unwrap();
        assert!(fired.contains(name), "{RULE_TESTS} has no test in which {name} fires");
    }
}

#[test]
fn every_alert_has_a_severity_and_a_runbook_url_to_an_entry_of_docs_runbook_md() {
    let runbook = repo::read("docs/runbook.md");
    let anchors: Vec<String> = runbook
        .lines()
        .filter_map(|line| line.trim_start_matches('#').strip_prefix(' ').filter(|_| line.starts_with('#')))
        .map(anchor)
        .collect();
    for alert in alerts() {
        let name = alert["alert"].as_str().unwrap();
        assert!(alert["labels"]["severity"].is_string(), "{name} has no severity label");
        let url = alert["annotations"]["runbook_url"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} has no runbook_url"));
        let target = url
            .strip_prefix(RUNBOOK_URL_PREFIX)
            .unwrap_or_else(|| panic!("{name}: runbook_url {url} is not docs/runbook.md"));
        assert!(anchors.iter().any(|a| a == target), "{name}: docs/runbook.md has no heading for #{target}");
        assert!(alert["annotations"]["summary"].is_string(), "{name} has no summary");
    }
}

#[test]
fn the_prometheus_rule_carries_the_same_groups_as_the_plain_rules_file() {
    let plain = repo::yaml_file(RULES);
    let wrapped = repo::yaml_file("k8s/monitoring/prometheusrule.yaml");
    assert_eq!(wrapped["kind"], "PrometheusRule");
    assert_eq!(wrapped["apiVersion"], "monitoring.coreos.com/v1");
    assert!(
        wrapped["spec"]["groups"] == plain["groups"],
        "k8s/monitoring/prometheusrule.yaml differs from {RULES}: run k8s/monitoring/rules/render-prometheusrule.py"
    );
    let rendered = manifests::render("k8s/base");
    let deployed = manifests::object(&rendered, "PrometheusRule", "chat-cell");
    assert!(
        deployed["spec"]["groups"] == plain["groups"],
        "the rendered PrometheusRule differs from {RULES}"
    );
}
