//! Architecture checks of the workspace's Rust crates, read from their parsed sources (`syn`):
//! imports between the files of a crate, and between its top-level modules, form no circle
//! (mini-redis's modules form a DAG), and no file or function grows past a size limit.
//! `ops/tests/architecture.rs` applies them to the crates; the edge rules are in [`resolve`].

mod cfg;
mod facts;
mod functions;
mod graph;
mod report;
mod resolve;
mod tree;

pub use functions::Function;
pub use report::{Cycle, LongFile, LongFunction, Step, listing};
pub use resolve::Evidence;

use resolve::Edges;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use tree::ModuleTree;

/// Why a crate's sources could not be analysed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{file}:{line}: cannot parse: {message}")]
    Parse { file: String, line: usize, message: String },
    #[error("{file}:{line}: `mod {name};` has neither {name}.rs nor {name}/mod.rs")]
    MissingModule { file: String, line: usize, name: String },
    #[error("{krate} has neither src/lib.rs nor src/main.rs")]
    NoRoot { krate: String },
}

/// A crate's `src/` tree, parsed: its files (named from the repository root, `gateway/src/ws.rs`)
/// and the module tree of its library and of its binary.
pub struct Crate {
    sources: BTreeMap<String, Source>,
    targets: Vec<Target>,
}

struct Source {
    lines: usize,
    functions: Vec<Function>,
}

struct Target {
    label: String,
    tree: ModuleTree,
    edges: Edges,
}

impl Crate {
    /// The crate in directory `name` of the repository.
    pub fn read(name: &str) -> Result<Self, Error> {
        let root = crate::repo::root();
        let mut files = BTreeMap::new();
        read_tree(&root, &format!("{name}/src"), &mut files)?;
        Self::from_sources(name, files)
    }

    /// The crate `name` made of `files` (path from the repository root → text), e.g. in memory.
    pub fn from_sources(name: &str, files: BTreeMap<String, String>) -> Result<Self, Error> {
        let mut facts = BTreeMap::new();
        let mut sources = BTreeMap::new();
        for (file, text) in files {
            let syntax = syn::parse_file(&text).map_err(|e| Error::Parse {
                file: file.clone(),
                line: e.span().start().line,
                message: e.to_string(),
            })?;
            facts.insert(file.clone(), facts::collect(&syntax));
            sources.insert(
                file,
                Source { lines: text.lines().count(), functions: functions::functions(&syntax) },
            );
        }
        let mut targets = Vec::new();
        for (root, label) in [("lib.rs", name.to_string()), ("main.rs", format!("{name} bin"))] {
            let root = format!("{name}/src/{root}");
            if facts.contains_key(&root) {
                let tree = tree::build(&root, &facts)?;
                let edges = resolve::edges(&tree, &facts);
                targets.push(Target { label, tree, edges });
            }
        }
        if targets.is_empty() {
            return Err(Error::NoRoot { krate: name.to_string() });
        }
        Ok(Crate { sources, targets })
    }

    /// Every set of files that import each other in a circle.
    pub fn file_cycles(&self) -> Vec<Cycle> {
        self.targets
            .iter()
            .flat_map(|t| cycles_of(&t.label, "files", t.tree.files.keys().cloned(), &t.edges))
            .collect()
    }

    /// Every set of top-level modules (`ws` for `ws.rs`, `ws/mod.rs` and `ws/read.rs`; `crate`
    /// for the root file) that import each other in a circle.
    pub fn module_cycles(&self) -> Vec<Cycle> {
        self.targets
            .iter()
            .flat_map(|t| {
                cycles_of(&t.label, "top-level modules", t.tree.files.values().map(top_level), &collapse(t))
            })
            .collect()
    }

    /// The source files, test files left out, of more than `max` lines, by name.
    pub fn long_files(&self, max: usize) -> Vec<LongFile> {
        self.non_test_sources()
            .filter(|(_, source)| source.lines > max)
            .map(|(file, source)| LongFile { file: file.clone(), lines: source.lines })
            .collect()
    }

    /// The functions of more than `max` lines, by file and line.
    pub fn long_functions(&self, max: usize) -> Vec<LongFunction> {
        self.non_test_sources()
            .flat_map(|(file, source)| source.functions.iter().map(move |function| (file, function)))
            .filter(|(_, function)| function.lines > max)
            .map(|(file, function)| LongFunction { file: file.clone(), function: function.clone() })
            .collect()
    }

    fn non_test_sources(&self) -> impl Iterator<Item = (&String, &Source)> {
        self.sources
            .iter()
            .filter(|(file, _)| !self.targets.iter().any(|t| t.tree.test_files.contains(*file)))
    }
}

/// The top-level module a module is part of.
fn top_level(module: &tree::ModPath) -> String {
    module.first().cloned().unwrap_or_else(|| "crate".to_string())
}

/// A target's file edges between top-level modules, each with its first evidence.
fn collapse(target: &Target) -> Edges {
    let mut edges = Edges::new();
    for ((from, to), evidence) in &target.edges {
        let (from, to) = (top_level(&target.tree.files[from]), top_level(&target.tree.files[to]));
        if from != to {
            let entry = edges.entry((from, to)).or_insert_with(|| evidence.clone());
            if (&evidence.file, evidence.line) < (&entry.file, entry.line) {
                *entry = evidence.clone();
            }
        }
    }
    edges
}

/// The cycles among `nodes` along `edges`, reported as cycles of `of`.
fn cycles_of(
    target: &str,
    of: &'static str,
    nodes: impl Iterator<Item = String>,
    edges: &Edges,
) -> Vec<Cycle> {
    let mut graph: graph::Graph = nodes.map(|node| (node, BTreeSet::new())).collect();
    for (from, to) in edges.keys() {
        graph.entry(from.clone()).or_default().insert(to.clone());
    }
    graph::cycles(&graph)
        .into_iter()
        .map(|members| {
            let way_round = graph::cycle_through(&graph, &members, &members[0]);
            let edges = edges
                .iter()
                .filter(|((from, to), _)| members.contains(from) && members.contains(to))
                .map(|((from, to), evidence)| Step {
                    from: from.clone(),
                    to: to.clone(),
                    evidence: evidence.clone(),
                })
                .collect();
            Cycle { target: target.to_string(), of, members, way_round, edges }
        })
        .collect()
}

/// Every `.rs` file under `root/dir`, named from `root`.
fn read_tree(root: &Path, dir: &str, files: &mut BTreeMap<String, String>) -> Result<(), Error> {
    let entries = std::fs::read_dir(root.join(dir)).map_err(io(dir))?;
    for entry in entries {
        let entry = entry.map_err(io(dir))?;
        let name = format!("{dir}/{}", entry.file_name().to_string_lossy());
        if entry.file_type().map_err(io(&name))?.is_dir() {
            read_tree(root, &name, files)?;
        } else if name.ends_with(".rs") {
            files.insert(name.clone(), std::fs::read_to_string(entry.path()).map_err(io(&name))?);
        }
    }
    Ok(())
}

fn io(path: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_string(), source }
}

#[cfg(test)]
mod tests;
