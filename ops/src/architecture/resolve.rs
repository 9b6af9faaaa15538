//! The edges between the files of a target. Each `use` leaf and each written path is made
//! absolute: `crate::` from the root, `self::` from the module it is written in, `super::` from
//! its parent, a first segment naming a child module or a name a `use` of the same module
//! brought in (`use crate::store;` then `store::channels::f`) through that. It then points to the
//! file of the longest module prefix of that absolute path. A path naming a module itself
//! (`use crate::store;`) only binds a name; the paths through that name are the edges.

use super::facts::FileFacts;
use super::tree::{ModPath, ModuleTree};
use std::collections::{BTreeMap, BTreeSet};

/// Where an edge was written: the first such place in the file, by line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence {
    pub file: String,
    pub line: usize,
    pub text: String,
}

/// (from file, to file) → the first path that made the edge.
pub type Edges = BTreeMap<(String, String), Evidence>;

/// Names a chain of `use` renames is followed through before giving up (`use a as b; use b as a;`).
const ALIAS_DEPTH: usize = 8;

/// The file-to-file edges of a target, self-edges left out.
pub fn edges(tree: &ModuleTree, facts: &BTreeMap<String, FileFacts>) -> Edges {
    let resolver = Resolver::new(tree, facts);
    let mut edges = Edges::new();
    for (file, module) in &tree.files {
        let scoped = |scope: &[String]| -> ModPath { module.iter().chain(scope).cloned().collect() };
        let uses = facts[file].uses.iter().map(|u| (scoped(&u.scope), &u.segments, u.glob, u.line));
        let paths = facts[file].paths.iter().map(|p| (scoped(&p.scope), &p.segments, false, p.line));
        for (scope, segments, glob, line) in uses.chain(paths) {
            let Some(target) = resolver.file_of(&scope, segments, glob) else { continue };
            if target != file {
                let evidence = Evidence { file: file.clone(), line, text: segments.join("::") };
                let entry = edges.entry((file.clone(), target.clone())).or_insert_with(|| evidence.clone());
                if (evidence.line, &evidence.text) < (entry.line, &entry.text) {
                    *entry = evidence;
                }
            }
        }
    }
    edges
}

struct Resolver<'t> {
    tree: &'t ModuleTree,
    children: BTreeMap<ModPath, BTreeSet<String>>,
    aliases: BTreeMap<ModPath, BTreeMap<String, Vec<String>>>,
}

impl<'t> Resolver<'t> {
    fn new(tree: &'t ModuleTree, facts: &BTreeMap<String, FileFacts>) -> Self {
        let mut children: BTreeMap<ModPath, BTreeSet<String>> = BTreeMap::new();
        for module in tree.modules.keys() {
            if let Some((name, parent)) = module.split_last() {
                children.entry(parent.to_vec()).or_default().insert(name.clone());
            }
        }
        let mut aliases: BTreeMap<ModPath, BTreeMap<String, Vec<String>>> = BTreeMap::new();
        for (file, module) in &tree.files {
            for leaf in &facts[file].uses {
                if let Some(alias) = &leaf.alias {
                    let scope = module.iter().chain(&leaf.scope).cloned().collect();
                    aliases.entry(scope).or_default().insert(alias.clone(), leaf.segments.clone());
                }
            }
        }
        Resolver { tree, children, aliases }
    }

    /// The file holding what `segments`, written in module `scope`, points into; `None` outside
    /// the crate, or when the path names a module itself (unless it is a glob's prefix).
    fn file_of(&self, scope: &[String], segments: &[String], glob: bool) -> Option<&'t String> {
        let absolute = self.absolute(scope, segments, 0)?;
        let known = (0..=absolute.len()).rev().find(|&n| self.tree.modules.contains_key(&absolute[..n]))?;
        if known == absolute.len() && !glob {
            return None;
        }
        self.tree.modules.get(&absolute[..known])
    }

    /// `segments` as a path from the crate root, if it starts inside the crate.
    fn absolute(&self, scope: &[String], segments: &[String], depth: usize) -> Option<ModPath> {
        let (first, rest) = segments.split_first()?;
        let mut base: ModPath = match first.as_str() {
            "crate" => Vec::new(),
            "self" => scope.to_vec(),
            "super" => {
                let supers = segments.iter().take_while(|s| *s == "super").count();
                let parent = scope.get(..scope.len().checked_sub(supers)?)?;
                return Some(parent.iter().chain(&segments[supers..]).cloned().collect());
            }
            name if self.children.get(scope).is_some_and(|c| c.contains(name)) => {
                scope.iter().chain([first]).cloned().collect()
            }
            name if depth < ALIAS_DEPTH => {
                let target = self.aliases.get(scope)?.get(name)?;
                self.absolute(scope, target, depth + 1)?
            }
            _ => return None,
        };
        base.extend(rest.iter().cloned());
        Some(base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::architecture::{facts, tree};

    fn edges_of(files: &[(&str, &str)]) -> Vec<(String, String, String)> {
        let facts: BTreeMap<String, FileFacts> = files
            .iter()
            .map(|(name, text)| (name.to_string(), facts::collect(&syn::parse_file(text).expect("parses"))))
            .collect();
        let tree = tree::build("lib.rs", &facts).expect("the tree builds");
        edges(&tree, &facts).into_iter().map(|((from, to), evidence)| (from, to, evidence.text)).collect()
    }

    fn edge(from: &str, to: &str, text: &str) -> (String, String, String) {
        (from.into(), to.into(), text.into())
    }

    #[test]
    fn paths_resolve_to_the_file_of_their_longest_module_prefix() {
        let files = [
            ("lib.rs", "mod ws;\nmod state;\npub struct Config;\n"),
            ("ws/mod.rs", "pub mod conn;\npub struct Hub;\n"),
            ("ws/conn.rs", "pub struct ConnHandle;\n"),
            ("state.rs", "use crate::ws::conn::ConnHandle;\nfn f(_: crate::ws::Hub, _: crate::Config) {}\n"),
        ];
        assert_eq!(
            edges_of(&files),
            [
                edge("state.rs", "lib.rs", "crate::Config"),
                edge("state.rs", "ws/conn.rs", "crate::ws::conn::ConnHandle"),
                edge("state.rs", "ws/mod.rs", "crate::ws::Hub"),
            ]
        );
    }

    #[test]
    fn super_resolves_to_the_parent_and_self_to_the_module_itself() {
        let files = [
            ("lib.rs", "mod store;\n"),
            ("store/mod.rs", "mod users;\nfn like_literal() {}\nfn g() { self::users::find(); }\n"),
            ("store/users.rs", "pub fn find() { super::like_literal(); }\n"),
        ];
        assert_eq!(
            edges_of(&files),
            [
                edge("store/mod.rs", "store/users.rs", "self::users::find"),
                edge("store/users.rs", "store/mod.rs", "super::like_literal"),
            ]
        );
    }

    #[test]
    fn a_module_import_binds_a_name_and_the_paths_through_it_are_the_edges() {
        let files = [
            ("lib.rs", "mod store;\nmod http;\nfn run() { http::serve(); }\n"),
            ("store/mod.rs", "pub mod channels;\n"),
            ("store/channels.rs", "pub fn mark_read() {}\n"),
            ("http.rs", "use crate::store;\npub fn serve() { store::channels::mark_read(); }\n"),
        ];
        assert_eq!(
            edges_of(&files),
            [
                edge("http.rs", "store/channels.rs", "store::channels::mark_read"),
                edge("lib.rs", "http.rs", "http::serve")
            ]
        );
    }

    #[test]
    fn globs_point_into_their_prefix_and_outside_paths_and_tests_point_nowhere() {
        let files = [
            ("lib.rs", "mod a;\nmod b;\nuse std::io::Read;\n"),
            ("a.rs", "pub use crate::b::*;\nfn f() { shared::x::y(); }\n"),
            ("b.rs", "#[cfg(test)]\nmod tests {\n    use crate::a::f;\n}\n"),
        ];
        assert_eq!(edges_of(&files), [edge("a.rs", "b.rs", "crate::b")]);
    }
}
