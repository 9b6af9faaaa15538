//! The metric names a PromQL expression reads, so dashboards and rules can be checked against
//! the metric table in `docs/metrics.md`. Not a PromQL parser: it drops what cannot hold a
//! metric name (strings, label matchers, ranges, grouping label lists, numbers, durations,
//! function names and keywords) and keeps the identifiers left.

use std::collections::BTreeSet;

const KEYWORDS: [&str; 12] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "atan2",
];
const GROUPING: [&str; 6] = ["by", "without", "on", "ignoring", "group_left", "group_right"];

/// The metric (and recording rule) names `expr` reads.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let bare = drop_grouping_lists(&drop_enclosed(&drop_strings(expr)));
    let chars: Vec<char> = bare.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let start = i;
        if chars[i].is_ascii_digit() || chars[i] == '.' {
            i = skip_while(&chars, i, |c| c.is_ascii_alphanumeric() || c == '.' || c == '_');
        } else if is_name_start(chars[i]) {
            i = skip_while(&chars, i, is_name_char);
            let word: String = chars[start..i].iter().collect();
            let calls_function = next_non_space(&chars, i) == Some('(');
            if !calls_function && !KEYWORDS.contains(&word.as_str()) && !word.eq_ignore_ascii_case("inf") {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

fn skip_while(chars: &[char], mut i: usize, keep: impl Fn(char) -> bool) -> usize {
    while i < chars.len() && keep(chars[i]) {
        i += 1;
    }
    i
}

fn next_non_space(chars: &[char], i: usize) -> Option<char> {
    chars[i..].iter().copied().find(|c| !c.is_whitespace())
}

/// Replaces every quoted string ("…", '…', `…`) with a space.
fn drop_strings(expr: &str) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in expr.chars() {
        match quote {
            Some(_) if escaped => escaped = false,
            Some(_) if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if matches!(c, '"' | '\'' | '`') => {
                quote = Some(c);
                out.push(' ');
            }
            None => out.push(c),
        }
    }
    out
}

/// Drops label matchers `{…}` and ranges or subqueries `[…]`.
fn drop_enclosed(expr: &str) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut depth = 0usize;
    for c in expr.chars() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Drops the label lists of `by (…)`, `on (…)`, `group_left (…)` and the like.
fn drop_grouping_lists(expr: &str) -> String {
    let mut out = expr.to_string();
    for word in GROUPING {
        let mut from = 0;
        while let Some(at) = find_word(&out, word, from) {
            let after = at + word.len();
            let rest = &out[after..];
            if rest.trim_start().starts_with('(') {
                // The keyword goes too, so that `sum by (le) (…)` reads as the call `sum (…)`.
                let close = rest.find(')').map_or(out.len(), |c| after + c + 1);
                out.replace_range(at..close, " ");
            }
            from = at + 1;
        }
    }
    out
}

/// Where `word` stands alone in `text`, searching from byte `from`.
fn find_word(text: &str, word: &str, mut from: usize) -> Option<usize> {
    while let Some(offset) = text[from..].find(word) {
        let at = from + offset;
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        if !before.is_some_and(is_name_char) && !after.is_some_and(is_name_char) {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::metric_names;

    fn names(expr: &str) -> Vec<String> {
        metric_names(expr).into_iter().collect()
    }

    #[test]
    fn keeps_metric_names_and_drops_functions_labels_ranges_and_keywords() {
        let expr = r#"histogram_quantile(0.99, sum by (le, pod) (rate(chat_x_seconds_bucket{ns="$n", le=~"0.1|inf"}[$__rate_interval])))"#;
        assert_eq!(names(expr), ["chat_x_seconds_bucket"]);
    }

    #[test]
    fn reads_both_sides_of_binary_operators_and_recording_rules() {
        let expr =
            "a_total > (14.4 * 0.001) and on (namespace) chat:b:ratio_rate5m unless c offset 15m or up == 0";
        assert_eq!(names(expr), ["a_total", "c", "chat:b:ratio_rate5m", "up"]);
    }

    #[test]
    fn ignores_numbers_with_exponents_and_durations() {
        assert_eq!(names("x > 1e3 and y offset 1h30m"), ["x", "y"]);
    }
}
