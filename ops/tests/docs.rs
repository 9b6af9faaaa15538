//! The operations docs: the runbook has an entry per alert with what it means, how to check
//! and what to do, plus the operations section; the README points to the operations files.

use ops_checks::repo;

#[test]
fn the_runbook_has_an_entry_per_alert_saying_what_it_means_how_to_check_and_what_to_do() {
    let runbook = repo::read("docs/runbook.md");
    let rules = repo::read("k8s/monitoring/rules/chat.rules.yml");
    let alerts: Vec<&str> = rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")).collect();
    assert!(alerts.len() >= 8, "found only {alerts:?}");
    for alert in alerts {
        let heading = format!("### {alert}\n");
        let start =
            runbook.find(&heading).unwrap_or_else(|| panic!("docs/runbook.md has no `### {alert}` entry"));
        let entry = &runbook[start + heading.len()..];
        let entry = &entry[..entry.find("\n### ").unwrap_or(entry.len())];
        for part in ["**Means:**", "**Check:**", "**Do:**"] {
            assert!(entry.contains(part), "the runbook entry of {alert} lacks {part}");
        }
    }
    for section in
        ["### Rolling deploy", "### Scaling", "### Adding a cell", "### Gateway node ids", "### Secrets"]
    {
        assert!(runbook.contains(section), "docs/runbook.md lacks {section}");
    }
    assert!(runbook.contains("1012"), "the rolling deploy section says gateways close sockets with 1012");
}

#[test]
fn the_readme_ends_with_an_operations_section_pointing_to_the_operations_files() {
    let readme = repo::read("README.md");
    let section = &readme[readme.rfind("\n## ").expect("README has sections")..];
    assert!(section.starts_with("\n## Operations"), "the README's last section should be Operations");
    for target in [
        "docs/runbook.md",
        "docs/metrics.md",
        "k8s/",
        "docker-compose.yml",
        "docker/gateway.Dockerfile",
        "docker/messages.Dockerfile",
    ] {
        assert!(section.contains(target), "the README's Operations section does not point to {target}");
        assert!(repo::root().join(target).exists(), "{target} is missing");
    }
}
