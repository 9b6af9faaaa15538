//! `k8s/base` and both overlays render with `kubectl kustomize` and the render validates
//! against the Kubernetes schemas (kubernetes-validate, strict). kubernetes-validate has no
//! schemas for the CRDs (ServiceMonitor, PrometheusRule; the Argo CD Application is not in the
//! render): it reports them as skipped, and `k8s_monitoring_objects.rs` checks their structure.

use ops_checks::manifests::{KUBERNETES_VERSION, KUSTOMIZATIONS, render};
use ops_checks::{repo, tool};

const CRD_KINDS: [&str; 2] = ["ServiceMonitor", "PrometheusRule"];

#[test]
fn every_kustomization_renders_and_validates_against_the_kubernetes_schemas() {
    for dir in KUSTOMIZATIONS {
        let rendered = tool::run_ok("kubectl", &["kustomize", dir]);
        let file = std::env::temp_dir().join(format!(
            "ops-checks-{}-{}.yaml",
            dir.replace('/', "-"),
            std::process::id()
        ));
        std::fs::write(&file, rendered).expect("write the render to a temporary file");
        let output = tool::run(
            "kubernetes-validate",
            &[
                "--strict",
                "--kubernetes-version",
                KUBERNETES_VERSION,
                file.to_str().expect("utf-8 temp path"),
            ],
        );
        let report =
            format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        let _ = std::fs::remove_file(&file);
        assert!(output.status.success(), "the render of {dir} does not validate:\n{report}");
        for line in report.lines().filter(|line| line.contains("Couldn't find schema")) {
            assert!(
                CRD_KINDS.iter().any(|kind| line.contains(&format!("kind {kind} "))),
                "{dir}: unexpected kind without a schema: {line}"
            );
        }
        let passed = report.lines().filter(|line| line.contains(" passed for resource ")).count();
        assert!(passed >= 15, "{dir}: only {passed} objects validated:\n{report}");
    }
}

#[test]
fn every_rendered_object_has_a_kind_and_a_name_and_none_is_rendered_twice() {
    for dir in KUSTOMIZATIONS {
        let objects = render(dir);
        let mut seen = std::collections::BTreeSet::new();
        for object in &objects {
            let kind = object["kind"].as_str().unwrap_or_else(|| panic!("{dir}: an object without kind"));
            let name =
                object["metadata"]["name"].as_str().unwrap_or_else(|| panic!("{dir}: a {kind} without name"));
            assert!(
                seen.insert((kind.to_string(), name.to_string())),
                "{dir}: {kind}/{name} is rendered twice"
            );
        }
    }
}

#[test]
fn every_yaml_file_under_k8s_parses() {
    let mut checked = 0;
    for dir in [
        "k8s/base",
        "k8s/base/nats",
        "k8s/base/gateway",
        "k8s/base/messages",
        "k8s/overlays/dev",
        "k8s/overlays/prod",
        "k8s/monitoring",
        "k8s/monitoring/rules",
        "k8s/argocd",
    ] {
        for file in repo::files_in(dir, ".yaml").into_iter().chain(repo::files_in(dir, ".yml")) {
            assert!(!repo::yaml_documents(&repo::read(&file), &file).is_empty(), "{file} is empty");
            checked += 1;
        }
    }
    assert!(checked >= 25, "only {checked} YAML files found under k8s/");
}
