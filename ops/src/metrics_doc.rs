//! The metric contract: the tables of `docs/metrics.md`. A row whose first cell is a metric
//! name in backticks declares that metric and its type in the second cell.

use std::collections::BTreeMap;

/// Metric name → type (`counter`, `gauge`, `histogram`), from every table of the document.
pub fn declared_metrics(markdown: &str) -> BTreeMap<String, String> {
    markdown.lines().filter_map(table_row).collect()
}

fn table_row(line: &str) -> Option<(String, String)> {
    let cells: Vec<&str> = line.trim().strip_prefix('|')?.split('|').map(str::trim).collect();
    let name = cells.first()?.strip_prefix('`')?.strip_suffix('`')?;
    let is_name = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    is_name.then(|| (name.to_string(), cells.get(1).copied().unwrap_or("").to_ascii_lowercase()))
}

/// The series names a declared metric is exposed under: a histogram's `_bucket`, `_sum` and
/// `_count`, anything else under its own name.
pub fn exposed_names(name: &str, kind: &str) -> Vec<String> {
    if kind == "histogram" {
        ["_bucket", "_sum", "_count"].iter().map(|suffix| format!("{name}{suffix}")).collect()
    } else {
        vec![name.to_string()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rows_with_a_backticked_name_only() {
        let doc = "| name | type |\n|---|---|\n| `chat_a_total` | Counter | x |\n| plain | gauge |\n";
        let declared = declared_metrics(doc);
        assert_eq!(declared.len(), 1);
        assert_eq!(declared["chat_a_total"], "counter");
        assert_eq!(exposed_names("h", "histogram"), ["h_bucket", "h_sum", "h_count"]);
    }
}
