//! Any message content: the mention parser never panics, and every name it returns is a
//! registrable username (3–32 of ASCII letters, digits, `_`, `.`, `-`, lowercase) written
//! after an `@` in the content, each once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::protocol::parse_mentions;

fuzz_target!(|content: &str| {
    let (names, _everyone) = parse_mentions(content);
    let lower = content.to_ascii_lowercase();
    for (i, name) in names.iter().enumerate() {
        assert!((3..=32).contains(&name.len()), "{name:?}");
        assert!(
            name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c)),
            "{name:?}"
        );
        assert!(lower.contains(&format!("@{name}")), "{name:?} is written in {content:?}");
        assert!(!names[..i].contains(name), "{name:?} twice");
    }
});
