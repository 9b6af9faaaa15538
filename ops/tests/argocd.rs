//! The Argo CD Application deploys the prod overlay into the namespace that overlay renders
//! for, and leaves the replica counts to the HPAs.

use ops_checks::manifests::{of_kind, render, workloads};
use ops_checks::repo;

#[test]
fn the_application_syncs_the_prod_overlay_into_its_namespace() {
    let application = repo::yaml_file("k8s/argocd/application.yaml");
    assert_eq!(application["apiVersion"], "argoproj.io/v1alpha1");
    assert_eq!(application["kind"], "Application");
    let path = application["spec"]["source"]["path"].as_str().expect("spec.source.path");
    assert_eq!(path, "k8s/overlays/prod");
    assert!(repo::root().join(path).join("kustomization.yaml").is_file(), "{path} is not a kustomization");
    let namespace = application["spec"]["destination"]["namespace"].as_str().expect("destination namespace");
    let overlay: serde_norway::Value = repo::yaml_file("k8s/overlays/prod/kustomization.yaml");
    assert_eq!(overlay["namespace"].as_str(), Some(namespace), "the overlay renders for another namespace");
    let automated = &application["spec"]["syncPolicy"]["automated"];
    assert_eq!(automated["prune"], true);
    assert_eq!(automated["selfHeal"], true);
}

#[test]
fn the_application_ignores_the_replicas_of_every_autoscaled_workload() {
    let application = repo::yaml_file("k8s/argocd/application.yaml");
    let ignored = application["spec"]["ignoreDifferences"].as_sequence().expect("ignoreDifferences");
    let prod = render("k8s/overlays/prod");
    for hpa in of_kind(&prod, "HorizontalPodAutoscaler") {
        let target = &hpa["spec"]["scaleTargetRef"];
        assert!(
            ignored.iter().any(|i| i["kind"] == target["kind"]
                && i["name"] == target["name"]
                && i["jsonPointers"][0] == "/spec/replicas"),
            "Argo CD would reset the replicas the HPA sets on {:?}",
            target["name"]
        );
        assert!(
            workloads(&prod)
                .iter()
                .any(|w| w["kind"] == target["kind"] && w["metadata"]["name"] == target["name"]),
            "the HPA targets a workload that is not rendered"
        );
    }
}
