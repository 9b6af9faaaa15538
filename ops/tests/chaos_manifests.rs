//! The Chaos Mesh manifests (`chaos/`) and the k6-operator TestRun (`k6/testrun.yaml`):
//! they validate strictly against the CRDs vendored in `chaos/crds/` (`validate.py`, which
//! refuses unknown fields too, and a broken manifest is refused by it); the game-day Workflow
//! names only templates it has, uses every one, and runs each fault exactly as its standalone
//! twin in `chaos/experiments/`; and every selector picks pods the dev cell really has.

use ops_checks::manifests::{KUBERNETES_VERSION, of_kind, render};
use ops_checks::{repo, tool};
use serde_norway::Value;
use std::collections::BTreeSet;

const WORKFLOW: &str = "chaos/game-day/workflow.yaml";

/// Every manifest validated against the vendored CRDs as it is (the nightly Schedule only as
/// rendered: its workflow is copied in by its kustomization).
fn manifests() -> Vec<String> {
    let mut files = repo::files_in("chaos/experiments", ".yaml");
    files.extend(
        ["chaos/game-day/workflow.yaml", "chaos/schedule/partition.yaml", "k6/testrun.yaml"]
            .map(String::from),
    );
    files
}

fn validate(paths: &[&str]) -> (bool, String) {
    let mut args = vec!["chaos/crds/validate.py"];
    args.extend_from_slice(paths);
    let output = tool::run("python3", &args);
    let report =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), report)
}

#[test]
fn every_chaos_manifest_and_the_k6_testrun_validate_strictly_against_the_vendored_crds() {
    let files = manifests();
    assert!(files.len() >= 12, "the experiments, the workflow, the schedule and the TestRun: {files:?}");
    let (ok, report) = validate(&files.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "the manifests do not validate:\n{report}");
    // The kustomizations' renders (namespace and labels added) validate as well: the Chaos
    // Mesh objects against the vendored CRDs, the others (the checker's NetworkPolicies)
    // against the Kubernetes schemas.
    for dir in ["chaos", "chaos/schedule"] {
        let (crds, core): (Vec<Value>, Vec<Value>) = render(dir)
            .into_iter()
            .partition(|o| o["apiVersion"].as_str().is_some_and(|v| v.starts_with("chaos-mesh.org/")));
        assert!(!crds.is_empty() && !core.is_empty(), "{dir}: chaos objects and the checker's access");
        let file = |part: &str, objects: &[Value]| {
            let path = std::env::temp_dir().join(format!(
                "ops-chaos-{}-{part}-{}.yaml",
                dir.replace('/', "-"),
                std::process::id()
            ));
            let text: Vec<String> = objects.iter().map(|o| serde_norway::to_string(o).unwrap()).collect();
            std::fs::write(&path, text.join("---\n")).unwrap();
            path
        };
        let (crds, core) = (file("crds", &crds), file("core", &core));
        let (ok, report) = validate(&[crds.to_str().unwrap()]);
        assert!(ok, "the render of {dir} does not validate:\n{report}");
        let output = tool::run(
            "kubernetes-validate",
            &["--strict", "--kubernetes-version", KUBERNETES_VERSION, core.to_str().unwrap()],
        );
        let report =
            format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        let _ = (std::fs::remove_file(&crds), std::fs::remove_file(&core));
        assert!(output.status.success() && !report.contains("Couldn't find schema"), "{dir}:\n{report}");
    }
}

#[test]
fn a_manifest_with_an_unknown_field_or_a_bad_enum_is_refused_naming_both() {
    let broken = repo::read("chaos/experiments/nats-partition.yaml")
        .replace("direction: both", "direction: sideways")
        .replace("  duration: 30s", "  duraton: 30s");
    let file = std::env::temp_dir().join(format!("ops-chaos-broken-{}.yaml", std::process::id()));
    std::fs::write(&file, broken).unwrap();
    let (ok, report) = validate(&[file.to_str().unwrap()]);
    let _ = std::fs::remove_file(&file);
    assert!(!ok, "the broken manifest was accepted:\n{report}");
    assert!(
        report.contains("spec.direction") && report.contains("sideways"),
        "the bad enum is named:\n{report}"
    );
    assert!(report.contains("'duraton' was unexpected"), "the unknown field is named:\n{report}");
}

fn workflow_templates() -> Vec<Value> {
    let workflow = repo::yaml_file(WORKFLOW);
    workflow["spec"]["templates"].as_sequence().expect("templates").clone()
}

fn template_name(template: &Value) -> &str {
    template["name"].as_str().expect("a template has a name")
}

#[test]
fn the_workflow_reaches_every_template_it_has_and_names_no_other() {
    let workflow = repo::yaml_file(WORKFLOW);
    let templates = workflow_templates();
    let names: BTreeSet<&str> = templates.iter().map(template_name).collect();
    assert_eq!(names.len(), templates.len(), "template names are unique");
    let mut reached = BTreeSet::new();
    let mut todo = vec![workflow["spec"]["entry"].as_str().expect("an entry").to_owned()];
    while let Some(name) = todo.pop() {
        assert!(names.contains(name.as_str()), "{name} is named but not defined");
        if !reached.insert(name.clone()) {
            continue;
        }
        let template = templates.iter().find(|t| template_name(t) == name).unwrap();
        let children = template["children"].as_sequence().into_iter().flatten();
        let branches =
            template["conditionalBranches"].as_sequence().into_iter().flatten().map(|b| &b["target"]);
        todo.extend(children.chain(branches).map(|c| c.as_str().expect("a template name").to_owned()));
    }
    let unreached: Vec<&&str> = names.iter().filter(|n| !reached.contains(**n)).collect();
    assert!(unreached.is_empty(), "templates the workflow never runs: {unreached:?}");
    // The checker's failure fails the run: its non-zero exit leads to a task that exits 1.
    let checker = templates.iter().find(|t| template_name(t) == "checker").expect("a checker task");
    assert!(checker["task"]["container"]["image"].as_str().unwrap().contains("chat-cell-loadgen"));
    let branch = &checker["conditionalBranches"][0];
    assert_eq!(branch["expression"].as_str(), Some("exitCode != 0"));
}

/// The checker audits the cell's stores (Postgres from the cell's own secret, every NATS
/// node), and the NetworkPolicies that let it reach them select its pod's label and the pods
/// of the dev cell's NATS and Postgres.
#[test]
fn the_checker_audits_postgres_and_the_stream_and_may_reach_them() {
    let templates = workflow_templates();
    let checker = templates.iter().find(|t| template_name(t) == "checker").expect("a checker task");
    let args: Vec<&str> = checker["task"]["container"]["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(args.contains(&"--audit") && args.contains(&"--postgres=$(DATABASE_URL)"), "{args:?}");
    assert_eq!(args.iter().filter(|a| a.starts_with("--nats=nats://nats-")).count(), 3, "{args:?}");
    let env = &checker["task"]["container"]["env"][0];
    assert_eq!(env["name"].as_str(), Some("DATABASE_URL"));
    let dev = render("k8s/overlays/dev");
    let secret = &env["valueFrom"]["secretKeyRef"];
    let secrets = of_kind(&dev, "Secret");
    let named = secrets.iter().find(|s| s["metadata"]["name"] == secret["name"]).expect("the cell's secret");
    let key = secret["key"].as_str().unwrap();
    assert!(!named["stringData"][key].is_null() || !named["data"][key].is_null(), "{key} in {named:?}");

    let label = checker["task"]["labels"]["app.kubernetes.io/name"].as_str().expect("the checker's label");
    let policies = render("chaos");
    let policies = of_kind(&policies, "NetworkPolicy");
    for app in ["nats", "postgres"] {
        let policy = policies
            .iter()
            .find(|p| p["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"].as_str() == Some(app))
            .unwrap_or_else(|| panic!("a policy letting the checker reach {app}"));
        let from = &policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"];
        assert_eq!(from["app.kubernetes.io/name"].as_str(), Some(label));
        // The port is named as the dev cell's pods name it.
        let port = policy["spec"]["ingress"][0]["ports"][0]["port"].as_str().unwrap();
        let pods = dev.iter().filter(|o| matches!(o["kind"].as_str(), Some("StatefulSet" | "Deployment")));
        let named = pods
            .filter(|w| {
                w["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"].as_str() == Some(app)
            })
            .flat_map(|w| {
                w["spec"]["template"]["spec"]["containers"].as_sequence().cloned().unwrap_or_default()
            })
            .flat_map(|c| c["ports"].as_sequence().cloned().unwrap_or_default())
            .any(|p| p["name"].as_str() == Some(port));
        assert!(named, "{app} pods have a port named {port}");
    }
}

/// The chaos kinds a workflow template can embed, with their field names.
const CHAOS_FIELDS: [(&str, &str); 4] = [
    ("PodChaos", "podChaos"),
    ("NetworkChaos", "networkChaos"),
    ("StressChaos", "stressChaos"),
    ("IOChaos", "ioChaos"),
];

#[test]
fn each_fault_of_the_workflow_is_its_standalone_experiment_with_a_deadline_for_a_duration() {
    let mut faults = 0;
    for template in workflow_templates() {
        let kind = template["templateType"].as_str().unwrap();
        let Some((_, field)) = CHAOS_FIELDS.iter().find(|(k, _)| *k == kind) else { continue };
        let name = template_name(&template);
        let twin = repo::yaml_file(&format!("chaos/experiments/{name}.yaml"));
        assert_eq!(twin["kind"].as_str(), Some(kind), "{name}: same kind");
        let mut spec = twin["spec"].clone();
        let duration = spec.as_mapping_mut().unwrap().remove("duration");
        assert_eq!(
            &template[*field], &spec,
            "{name}: the workflow's fault differs from chaos/experiments/{name}.yaml"
        );
        if let Some(duration) = duration {
            assert_eq!(
                template["deadline"], duration,
                "{name}: the workflow holds it as long as the experiment"
            );
        }
        faults += 1;
    }
    assert!(faults >= 8, "the game day runs every experiment: {faults}");
    assert_eq!(faults, repo::files_in("chaos/experiments", ".yaml").len(), "and no experiment is left out");
}

/// Every `app.kubernetes.io/name` and StatefulSet pod name a selector names, anywhere in `value`.
fn selected(value: &Value, found: &mut BTreeSet<String>) {
    match value {
        Value::Mapping(map) => {
            for (key, item) in map {
                match key.as_str() {
                    // The labels a Task gives its own pod: set, not selected.
                    Some("labels") => continue,
                    Some("app.kubernetes.io/name") => found.insert(format!("app={}", item.as_str().unwrap())),
                    Some("statefulset.kubernetes.io/pod-name") => {
                        found.insert(format!("pod={}", item.as_str().unwrap()))
                    }
                    _ => false,
                };
                selected(item, found);
            }
        }
        Value::Sequence(items) => items.iter().for_each(|item| selected(item, found)),
        _ => {}
    }
}

#[test]
fn every_selector_picks_pods_the_dev_cell_has_in_the_namespace_the_kustomizations_use() {
    let objects = render("k8s/overlays/dev");
    let namespace = of_kind(&objects, "Namespace")[0]["metadata"]["name"].as_str().unwrap().to_owned();
    let mut apps = BTreeSet::new();
    let mut pods = BTreeSet::new();
    for workload in
        objects.iter().filter(|o| matches!(o["kind"].as_str(), Some("StatefulSet" | "Deployment")))
    {
        let labels = &workload["spec"]["template"]["metadata"]["labels"];
        apps.insert(format!("app={}", labels["app.kubernetes.io/name"].as_str().unwrap()));
        if workload["kind"].as_str() == Some("StatefulSet") {
            let name = workload["metadata"]["name"].as_str().unwrap();
            let replicas = workload["spec"]["replicas"].as_i64().unwrap_or(1);
            pods.extend((0..replicas).map(|i| format!("pod={name}-{i}")));
        }
    }
    let mut found = BTreeSet::new();
    for file in manifests().iter().filter(|f| f.starts_with("chaos/")) {
        selected(&repo::yaml_file(file), &mut found);
    }
    for name in &found {
        assert!(
            apps.contains(name) || pods.contains(name),
            "{name} is selected but the dev cell has no such pods"
        );
    }
    assert!(found.contains("pod=nats-0") && found.contains("app=postgres"), "{found:?}");
    for dir in ["chaos", "chaos/schedule"] {
        let kustomization = repo::yaml_file(&format!("{dir}/kustomization.yaml"));
        assert_eq!(
            kustomization["namespace"].as_str(),
            Some(namespace.as_str()),
            "{dir} targets the dev cell"
        );
    }
    let workflow = repo::read(WORKFLOW);
    assert!(
        workflow.contains(&format!("gateway.{namespace}.svc")),
        "the status check asks the dev cell's gateway"
    );
}

#[test]
fn the_nightly_schedule_runs_the_game_day_workflow_itself_and_applies_no_workflow_now() {
    let rendered = tool::run_ok("kubectl", &["kustomize", "chaos/schedule"]);
    let objects = repo::yaml_documents(&rendered, "the render of chaos/schedule");
    let nightly = objects
        .iter()
        .find(|o| o["kind"].as_str() == Some("Schedule") && o["spec"]["type"].as_str() == Some("Workflow"))
        .expect("a Schedule of type Workflow");
    assert_eq!(
        nightly["spec"]["workflow"],
        repo::yaml_file(WORKFLOW)["spec"],
        "the nightly run is the game day"
    );
    assert_eq!(nightly["spec"]["concurrencyPolicy"].as_str(), Some("Forbid"), "never two game days at once");
    assert!(of_kind(&objects, "Workflow").is_empty(), "applying the schedules starts nothing at once");
}
