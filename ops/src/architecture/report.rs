//! What the checks find, each kind with the `Display` line (or lines) the test failures print.

use super::functions::Function;
use super::resolve::Evidence;
use std::fmt;

/// A strongly connected set of files (or top-level modules) of a target: each reaches every
/// other through imports.
#[derive(Debug, PartialEq, Eq)]
pub struct Cycle {
    /// The crate, or `crate bin` for the binary's tree beside a library.
    pub target: String,
    /// `files` or `top-level modules`.
    pub of: &'static str,
    /// Every member, sorted.
    pub members: Vec<String>,
    /// A shortest way from the first member back to it: `[a, b, .., a]`.
    pub way_round: Vec<String>,
    /// Every edge between two members, sorted: what to cut from.
    pub edges: Vec<Step>,
}

/// An edge and the path that made it.
#[derive(Debug, PartialEq, Eq)]
pub struct Step {
    pub from: String,
    pub to: String,
    pub evidence: Evidence,
}

/// A source file over the line limit.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LongFile {
    pub file: String,
    pub lines: usize,
}

/// A function over the line limit.
#[derive(Debug, PartialEq, Eq)]
pub struct LongFunction {
    pub file: String,
    pub function: Function,
}

impl fmt::Display for Cycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (count, of, target) = (self.members.len(), self.of, &self.target);
        writeln!(f, "{target}: {count} {of} import each other in a circle: {}", self.members.join(", "))?;
        writeln!(f, "    one way round: {}", self.way_round.join(" → "))?;
        writeln!(f, "    the {} imports among them (the first path written for each):", self.edges.len())?;
        for step in &self.edges {
            let Evidence { file, line, text } = &step.evidence;
            writeln!(f, "      {} → {}   `{text}` at {file}:{line}", step.from, step.to)?;
        }
        Ok(())
    }
}

impl fmt::Display for LongFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} lines", self.file, self.lines)
    }
}

impl fmt::Display for LongFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Function { name, line, lines } = &self.function;
        write!(f, "{}:{line} `{name}`: {lines} lines", self.file)
    }
}

/// Each item's display, one after the other, each ending its line.
pub fn listing<T: fmt::Display>(items: &[T]) -> String {
    items.iter().map(|item| format!("{}\n", item.to_string().trim_end())).collect()
}
