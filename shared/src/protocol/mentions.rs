//! Mentions in a message's content: the `@username`s and `@channel` the gateway resolves to
//! members before a send or an edit goes into the stream.

/// The `@username`s of a message's content (lowercased, each once), and whether it mentions
/// `@channel` (or `@everyone`): everybody in the channel. Usernames follow the registration
/// rule (3–32 of ASCII letters, digits, `_`, `.`, `-`); a mention must start the content or
/// follow a character that cannot be in a username, so `mail@example.com` mentions nobody.
pub fn parse_mentions(content: &str) -> (Vec<String>, bool) {
    let is_name = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    let mut names: Vec<String> = Vec::new();
    let mut everyone = false;
    let mut previous: Option<char> = None;
    for (at, c) in content.char_indices() {
        let starts = c == '@' && !previous.is_some_and(is_name);
        previous = Some(c);
        if !starts {
            continue;
        }
        let rest = &content[at + 1..];
        let end = rest.find(|c: char| !is_name(c)).unwrap_or(rest.len());
        // A sentence's full stop is not part of the name.
        let name = rest[..end].trim_end_matches('.').to_ascii_lowercase();
        match name.as_str() {
            "channel" | "everyone" => everyone = true,
            _ if (3..=32).contains(&name.len()) && !names.contains(&name) => names.push(name),
            _ => {}
        }
    }
    (names, everyone)
}
