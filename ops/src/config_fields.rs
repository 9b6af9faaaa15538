//! The config keys the processes accept, read from `shared/src/config.rs` (the sections are
//! the fields of `Config`, the keys the fields of each section's struct), so that config files
//! and `CHAT__SECTION__KEY` variables can be checked for typos without building the crates.

use std::collections::{BTreeMap, BTreeSet};

/// Section → its keys.
pub fn accepted_keys(config_rs: &str) -> BTreeMap<String, BTreeSet<String>> {
    let structs = struct_fields(config_rs);
    let root = structs.get("Config").expect("shared/src/config.rs defines `pub struct Config`");
    root.iter()
        .map(|(section, type_name)| {
            let keys =
                structs.get(type_name).map(|fields| fields.keys().cloned().collect()).unwrap_or_default();
            (section.clone(), keys)
        })
        .collect()
}

/// Struct name → (field name → field type), for every `pub struct X { pub field: Type, … }`.
fn struct_fields(source: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut structs = BTreeMap::new();
    let mut current: Option<(String, BTreeMap<String, String>)> = None;
    for line in source.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("pub struct ") {
            if let Some(name) = rest.strip_suffix('{').map(str::trim) {
                current = Some((name.to_string(), BTreeMap::new()));
            }
        } else if line == "}" {
            if let Some((name, fields)) = current.take() {
                structs.insert(name, fields);
            }
        } else if let (Some((_, fields)), Some(field)) = (current.as_mut(), line.strip_prefix("pub "))
            && let Some((name, type_name)) = field.split_once(':')
        {
            fields.insert(name.trim().to_string(), type_name.trim().trim_end_matches(',').to_string());
        }
    }
    structs
}

/// The `(section, key)` a `CHAT__SECTION__KEY` variable sets, if it is one.
pub fn env_var_key(variable: &str) -> Option<(String, String)> {
    let (section, key) = variable.strip_prefix("CHAT__")?.split_once("__")?;
    Some((section.to_ascii_lowercase(), key.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sections_and_their_keys() {
        let source = "pub struct Config {\n    pub nats: NatsConfig,\n}\n\npub struct NatsConfig {\n    /// doc\n    pub urls: Vec<String>,\n    pub partitions: u16,\n}\n";
        let keys = accepted_keys(source);
        assert_eq!(keys["nats"].iter().collect::<Vec<_>>(), ["partitions", "urls"]);
        assert_eq!(
            env_var_key("CHAT__GATEWAY__JWT_KEYS_DIR"),
            Some(("gateway".into(), "jwt_keys_dir".into()))
        );
    }
}
