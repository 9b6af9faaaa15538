//! Strongly connected components (Tarjan) of a small directed graph of named nodes, and a
//! shortest cycle through one node of a component, to show a reader one way round it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Node → the nodes it has an edge to.
pub type Graph = BTreeMap<String, BTreeSet<String>>;

/// The components of more than one node, each sorted, in order of their first node.
pub fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    let mut tarjan =
        Tarjan { graph, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), found: Vec::new() };
    for node in graph.keys() {
        if !tarjan.index.contains_key(node.as_str()) {
            tarjan.connect(node);
        }
    }
    let mut components: Vec<Vec<String>> = tarjan
        .found
        .into_iter()
        .filter(|component| component.len() > 1)
        .map(|component| {
            let mut names: Vec<String> = component.into_iter().map(str::to_string).collect();
            names.sort();
            names
        })
        .collect();
    components.sort();
    components
}

struct Tarjan<'g> {
    graph: &'g Graph,
    index: BTreeMap<&'g str, usize>,
    low: BTreeMap<&'g str, usize>,
    stack: Vec<&'g str>,
    found: Vec<Vec<&'g str>>,
}

impl<'g> Tarjan<'g> {
    fn connect(&mut self, node: &'g str) {
        let index = self.index.len();
        self.index.insert(node, index);
        self.low.insert(node, index);
        self.stack.push(node);
        for next in self.graph.get(node).into_iter().flatten() {
            let next = next.as_str();
            if !self.index.contains_key(next) {
                self.connect(next);
                self.lower(node, self.low[next]);
            } else if self.stack.contains(&next) {
                self.lower(node, self.index[next]);
            }
        }
        if self.low[node] == index {
            let at = self.stack.iter().rposition(|&n| n == node).expect("node is on the stack");
            self.found.push(self.stack.split_off(at));
        }
    }

    fn lower(&mut self, node: &'g str, to: usize) {
        let low = self.low.get_mut(node).expect("node was indexed");
        *low = (*low).min(to);
    }
}

/// A shortest cycle from `start` back to it inside `component`: `[start, b, .., start]`.
pub fn cycle_through(graph: &Graph, component: &[String], start: &str) -> Vec<String> {
    let inside: BTreeSet<&str> = component.iter().map(String::as_str).collect();
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for next in graph.get(node).into_iter().flatten().map(String::as_str) {
            if next == start {
                return walk_back(&came_from, start, node);
            }
            if inside.contains(next) && !came_from.contains_key(next) {
                came_from.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    vec![start.to_string()]
}

fn walk_back(came_from: &BTreeMap<&str, &str>, start: &str, last: &str) -> Vec<String> {
    let mut path = vec![start.to_string(), last.to_string()];
    let mut node = last;
    while node != start {
        node = came_from[node];
        path.push(node.to_string());
    }
    path.reverse();
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &str)]) -> Graph {
        let mut graph = Graph::new();
        for (from, to) in edges {
            graph.entry(from.to_string()).or_default().insert(to.to_string());
            graph.entry(to.to_string()).or_default();
        }
        graph
    }

    #[test]
    fn finds_each_cycle_and_ignores_a_dag() {
        let g = graph(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "e"), ("e", "d"), ("x", "a")]);
        assert_eq!(cycles(&g), [vec!["a", "b", "c"], vec!["d", "e"]]);
        assert!(cycles(&graph(&[("a", "b"), ("b", "c"), ("a", "c")])).is_empty());
    }

    #[test]
    fn a_cycle_through_a_node_is_a_shortest_one() {
        let g = graph(&[("a", "b"), ("b", "c"), ("c", "a"), ("a", "c")]);
        let component = cycles(&g).remove(0);
        assert_eq!(cycle_through(&g, &component, "a"), ["a", "c", "a"]);
        assert_eq!(cycle_through(&g, &component, "b"), ["b", "c", "a", "b"]);
    }
}
