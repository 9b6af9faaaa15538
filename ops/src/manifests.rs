//! The rendered Kubernetes manifests (`kubectl kustomize`), and lookups into them.

use serde_norway::Value;

/// `k8s/base` and the overlays, as rendered and applied.
pub const KUSTOMIZATIONS: [&str; 3] = ["k8s/base", "k8s/overlays/dev", "k8s/overlays/prod"];

/// The Kubernetes version the manifests target and are validated against.
pub const KUBERNETES_VERSION: &str = "1.32.0";

/// The objects `kubectl kustomize <dir>` renders.
pub fn render(dir: &str) -> Vec<Value> {
    let yaml = crate::tool::run_ok("kubectl", &["kustomize", dir]);
    crate::repo::yaml_documents(&yaml, &format!("the render of {dir}"))
}

/// The rendered object of `kind` named `name`; panics if there is none.
pub fn object<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    find(objects, kind, name).unwrap_or_else(|| panic!("the render has no {kind} named {name}"))
}

/// The rendered object of `kind` named `name`, if any.
pub fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objects.iter().find(|o| o["kind"].as_str() == Some(kind) && o["metadata"]["name"].as_str() == Some(name))
}

/// Every rendered object of `kind`.
pub fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"].as_str() == Some(kind)).collect()
}

/// The StatefulSets and Deployments.
pub fn workloads(objects: &[Value]) -> Vec<&Value> {
    objects.iter().filter(|o| matches!(o["kind"].as_str(), Some("StatefulSet" | "Deployment"))).collect()
}

/// The pod template's containers of a workload.
pub fn containers(workload: &Value) -> &[Value] {
    workload["spec"]["template"]["spec"]["containers"].as_sequence().map(Vec::as_slice).unwrap_or_default()
}

/// A workload's container named `name`.
pub fn container<'a>(workload: &'a Value, name: &str) -> &'a Value {
    containers(workload).iter().find(|c| c["name"].as_str() == Some(name)).unwrap_or_else(|| {
        panic!("{} has no container {name}", workload["metadata"]["name"].as_str().unwrap_or("?"))
    })
}

/// `metadata.name`, for messages.
pub fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or("<unnamed>")
}

/// A container's (or any item's) `name`, for messages.
pub fn name_of(item: &Value) -> &str {
    item["name"].as_str().unwrap_or("<unnamed>")
}

/// A YAML integer as i64, or panics with `what`.
pub fn int(value: &Value, what: &str) -> i64 {
    value.as_i64().unwrap_or_else(|| panic!("{what} should be an integer, is {value:?}"))
}

/// Whether every label of `selector` (a `matchLabels` map) is among `labels`.
pub fn selects(selector: &Value, labels: &Value) -> bool {
    selector
        .as_mapping()
        .is_some_and(|wanted| wanted.iter().all(|(key, value)| labels.get(key) == Some(value)))
}
