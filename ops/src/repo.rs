//! Files of the repository, read relative to its root, and YAML documents parsed from them.

use serde_norway::Value;
use std::path::{Path, PathBuf};

/// The repository's root directory (this crate lives in `ops/`). Read at run time first
/// (cargo and nextest set `CARGO_MANIFEST_DIR` for the tests they run): a target directory
/// shared by clones at other paths can hand this crate's build to another clone's tests.
pub fn root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    let manifest = manifest.unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    Path::new(&manifest).parent().expect("ops/ has a parent").to_path_buf()
}

/// A repository file's text; panics naming the file when it cannot be read.
pub fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every document of a (multi-document) YAML text, with `<<` merge keys applied.
pub fn yaml_documents(text: &str, origin: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|document| {
            let mut value: Value = serde::Deserialize::deserialize(document)
                .unwrap_or_else(|e| panic!("{origin} is not valid YAML: {e}"));
            value.apply_merge().unwrap_or_else(|e| panic!("{origin}: bad merge key: {e}"));
            value
        })
        .filter(|value| !value.is_null())
        .collect()
}

/// A repository YAML file holding one document.
pub fn yaml_file(relative: &str) -> Value {
    let mut documents = yaml_documents(&read(relative), relative);
    assert_eq!(documents.len(), 1, "{relative} should hold exactly one YAML document");
    documents.remove(0)
}

/// The files directly in a repository directory whose names end with `suffix`, sorted.
pub fn files_in(relative_dir: &str, suffix: &str) -> Vec<String> {
    let dir = root().join(relative_dir);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    let mut files: Vec<String> = entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(suffix))
        .map(|name| format!("{relative_dir}/{name}"))
        .collect();
    files.sort();
    files
}
