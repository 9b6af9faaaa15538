//! NATS server config files (`nats/node.conf.template` and the configs rendered from it),
//! flattened to `block.key → value` so that key settings can be compared.

use std::collections::BTreeMap;

/// `server_name`, `jetstream.sync_interval`, `cluster.routes` (items joined by spaces), …
/// Comments are dropped and quotes around values removed.
pub fn flatten(conf: &str) -> BTreeMap<String, String> {
    let mut settings = BTreeMap::new();
    let mut blocks: Vec<String> = Vec::new();
    let mut list: Option<(String, Vec<String>)> = None;
    for line in conf.lines().map(strip_comment).filter(|line| !line.is_empty()) {
        if let Some((key, items)) = list.as_mut() {
            if line == "]" {
                settings.insert(key.clone(), items.join(" "));
                list = None;
            } else {
                items.push(unquote(line.trim_end_matches(',')).to_string());
            }
        } else if line == "}" {
            blocks.pop();
        } else if let Some(block) = line.strip_suffix('{') {
            blocks.push(block.trim().trim_end_matches(':').trim().to_string());
        } else if let Some((key, value)) = line.split_once(':').or_else(|| line.split_once('=')) {
            let key = qualified(&blocks, key.trim());
            match value.trim() {
                "[" => list = Some((key, Vec::new())),
                value => {
                    settings.insert(key, unquote(value).to_string());
                }
            }
        }
    }
    settings
}

fn strip_comment(line: &str) -> &str {
    line.split_once('#').map_or(line, |(before, _)| before).trim()
}

fn unquote(value: &str) -> &str {
    value.trim().trim_matches('"')
}

fn qualified(blocks: &[String], key: &str) -> String {
    blocks.iter().map(String::as_str).chain([key]).collect::<Vec<_>>().join(".")
}

#[cfg(test)]
mod tests {
    use super::flatten;

    #[test]
    fn flattens_blocks_lists_and_strips_comments_and_quotes() {
        let conf =
            "a: 1 # one\njetstream {\n  store_dir: \"/d\"\n}\ncluster {\n  routes: [\n    x\n    y\n  ]\n}\n";
        let settings = flatten(conf);
        assert_eq!(settings["a"], "1");
        assert_eq!(settings["jetstream.store_dir"], "/d");
        assert_eq!(settings["cluster.routes"], "x y");
    }
}
