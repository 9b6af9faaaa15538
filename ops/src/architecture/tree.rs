//! A crate target's module tree: which file holds which module, following `mod x;` from
//! `lib.rs` or `main.rs` to `x.rs` or `x/mod.rs`. Inline `mod x { .. }` blocks belong to their
//! file; a module declared under `#[cfg(test)]` makes its file (and those below) a test file.

use super::Error;
use super::facts::FileFacts;
use std::collections::{BTreeMap, BTreeSet};

/// A module's path below the crate root: `[]` is the root, `["ws", "conn"]` is `ws::conn`.
pub type ModPath = Vec<String>;

/// The modules of one target. File names are relative to `src/`.
#[derive(Debug)]
pub struct ModuleTree {
    /// Each file outside tests → the module it holds.
    pub files: BTreeMap<String, ModPath>,
    /// The files only compiled for tests.
    pub test_files: BTreeSet<String>,
    /// Each module outside tests, inline ones included → the file that holds it.
    pub modules: BTreeMap<ModPath, String>,
}

/// The tree of the target whose root file is `root`; `facts` holds every file of `src/`.
pub fn build(root: &str, facts: &BTreeMap<String, FileFacts>) -> Result<ModuleTree, Error> {
    let mut tree =
        ModuleTree { files: BTreeMap::new(), test_files: BTreeSet::new(), modules: BTreeMap::new() };
    tree.modules.insert(Vec::new(), root.to_string());
    let mut pending = vec![(root.to_string(), ModPath::new(), false)];
    while let Some((file, module, test)) = pending.pop() {
        for decl in &facts[&file].mods {
            let path: ModPath = module.iter().chain(&decl.scope).chain([&decl.name]).cloned().collect();
            let test = test || decl.test;
            let holder = if decl.inline {
                file.clone()
            } else {
                let child = child_file(&file, &decl.scope, &decl.name, facts).ok_or_else(|| {
                    Error::MissingModule { file: file.clone(), line: decl.line, name: decl.name.clone() }
                })?;
                pending.push((child.clone(), path.clone(), test));
                child
            };
            if !test {
                tree.modules.insert(path, holder);
            }
        }
        if test {
            tree.test_files.insert(file);
        } else {
            tree.files.insert(file, module);
        }
    }
    Ok(tree)
}

/// `x.rs` or `x/mod.rs` beside (or, for a non-`mod.rs` file `a.rs`, under `a/`) the declaring file.
fn child_file(
    file: &str,
    scope: &[String],
    name: &str,
    facts: &BTreeMap<String, FileFacts>,
) -> Option<String> {
    let dir = scope.iter().fold(base_dir(file), |dir, inline| join(&dir, inline));
    let candidates = [join(&dir, &format!("{name}.rs")), join(&dir, &format!("{name}/mod.rs"))];
    candidates.into_iter().find(|candidate| facts.contains_key(candidate))
}

/// The directory a file's `mod x;` declarations look in.
fn base_dir(file: &str) -> String {
    let (dir, name) = file.rsplit_once('/').unwrap_or(("", file));
    match name {
        "lib.rs" | "main.rs" | "mod.rs" => dir.to_string(),
        _ => join(dir, name.trim_end_matches(".rs")),
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() { name.to_string() } else { format!("{dir}/{name}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::architecture::facts;

    fn tree(files: &[(&str, &str)]) -> Result<ModuleTree, Error> {
        let facts = files
            .iter()
            .map(|(name, text)| (name.to_string(), facts::collect(&syn::parse_file(text).expect("parses"))))
            .collect();
        build("lib.rs", &facts)
    }

    fn module(segments: &[&str]) -> ModPath {
        segments.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn maps_files_and_inline_modules_to_module_paths() {
        let tree = tree(&[
            ("lib.rs", "mod a;\nmod b;\n#[cfg(test)]\nmod tests;\n"),
            ("a.rs", "mod c;\nmod inline { mod d; }\n"),
            ("a/c.rs", ""),
            ("a/inline/d.rs", ""),
            ("b/mod.rs", "mod e;\n"),
            ("b/e.rs", ""),
            ("tests.rs", ""),
        ])
        .expect("the tree builds");
        assert_eq!(tree.files["a/c.rs"], module(&["a", "c"]));
        assert_eq!(tree.files["b/mod.rs"], module(&["b"]));
        assert_eq!(tree.files["b/e.rs"], module(&["b", "e"]));
        assert_eq!(tree.modules[&module(&["a", "inline"])], "a.rs");
        assert_eq!(tree.modules[&module(&["a", "inline", "d"])], "a/inline/d.rs");
        assert_eq!(tree.test_files.iter().collect::<Vec<_>>(), ["tests.rs"]);
        assert!(!tree.modules.contains_key(&module(&["tests"])));
    }

    #[test]
    fn a_declared_module_without_a_file_is_an_error() {
        let error = tree(&[("lib.rs", "\nmod gone;\n")]).expect_err("gone.rs is missing");
        assert!(matches!(error, Error::MissingModule { line: 2, ref name, .. } if name == "gone"), "{error}");
    }
}
