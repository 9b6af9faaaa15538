//! Every config key the deployments set, in TOML files or as `CHAT__SECTION__KEY` variables,
//! is one the processes read (a field in shared/src/config.rs): a misspelt key would be
//! silently ignored by the processes, so it fails here.

use ops_checks::config_fields::{accepted_keys, env_var_key};
use ops_checks::manifests::{KUSTOMIZATIONS, containers, render, workloads};
use ops_checks::repo;
use std::collections::{BTreeMap, BTreeSet};

const CONFIG_FILES: [&str; 2] = ["docker/chat.toml", "k8s/base/config/chat.toml"];

fn accepted() -> BTreeMap<String, BTreeSet<String>> {
    let keys = accepted_keys(&repo::read("shared/src/config.rs"));
    assert!(
        keys.len() >= 5 && keys.values().all(|k| !k.is_empty()),
        "could not read the config sections: {keys:?}"
    );
    keys
}

fn assert_accepted(section: &str, key: &str, origin: &str, accepted: &BTreeMap<String, BTreeSet<String>>) {
    let keys = accepted
        .get(section)
        .unwrap_or_else(|| panic!("{origin}: no config section [{section}] in shared/src/config.rs"));
    assert!(
        keys.contains(key),
        "{origin}: [{section}] has no key `{key}` in shared/src/config.rs (it has {keys:?})"
    );
}

#[test]
fn every_key_of_the_config_files_is_read_by_the_processes() {
    let accepted = accepted();
    for file in CONFIG_FILES {
        let config: toml::Table =
            repo::read(file).parse().unwrap_or_else(|e| panic!("{file} is not TOML: {e}"));
        for (section, table) in &config {
            let table = table.as_table().unwrap_or_else(|| panic!("{file}: {section} is not a [section]"));
            for key in table.keys() {
                assert_accepted(section, key, file, &accepted);
            }
        }
    }
}

#[test]
fn every_chat_variable_of_compose_and_kubernetes_is_read_by_the_processes() {
    let accepted = accepted();
    let mut variables = Vec::new();
    let compose = repo::yaml_file("docker-compose.yml");
    for service in compose["services"].as_mapping().expect("services").values() {
        for name in service["environment"].as_mapping().into_iter().flat_map(|env| env.keys()) {
            variables
                .push((name.as_str().expect("variable name").to_string(), "docker-compose.yml".to_string()));
        }
    }
    for dir in KUSTOMIZATIONS {
        for workload in workloads(&render(dir)) {
            for c in containers(workload) {
                for env in c["env"].as_sequence().into_iter().flatten() {
                    variables.push((env["name"].as_str().expect("env name").to_string(), dir.to_string()));
                }
            }
        }
    }
    let mut checked = 0;
    for (variable, origin) in variables {
        if let Some((section, key)) = env_var_key(&variable) {
            assert_accepted(&section, &key, &format!("{origin} ({variable})"), &accepted);
            checked += 1;
        }
    }
    assert!(checked >= 10, "found only {checked} CHAT__ variables");
}
