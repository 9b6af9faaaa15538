//! The rules of the API's validated strings, as JSON Schemas: what each handler's checks
//! accept, said in the document so that a client generated from it (or a fuzzer reading it)
//! knows them. Fields name them with `#[schema(schema_with = rules::…)]` or
//! `#[param(schema_with = rules::…)]`; `cell/tests/api_fuzz.rs` holds each against the
//! gateway's answers (schema-valid requests accepted, schema-invalid ones refused).
//!
//! The patterns are ECMA-262 regular expressions spelled with `\uXXXX` classes only, which
//! every JSON Schema validator reads alike: a control character is Unicode's `Cc` (Rust's
//! `char::is_control`), whitespace is Unicode's `White_Space` (`char::is_whitespace`, what
//! `str::trim` removes).

use serde_json::{Value, json};
use utoipa::openapi::schema::Schema;

/// The control characters (`Cc`), for a character class.
const CONTROL: &str = r"\u0000-\u001F\u007F-\u009F";
/// The control characters but `\n`.
const CONTROL_BUT_NEWLINE: &str = r"\u0000-\u0009\u000B-\u001F\u007F-\u009F";
/// The control characters but `\t`, `\n` and `\r` (what message content may hold).
const CONTROL_BUT_TEXT: &str = r"\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F";
/// The whitespace characters (`White_Space`).
const WHITESPACE: &str = r"\u0009-\u000D\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";

/// A username (`auth::validate_username`).
const USERNAME: &str = "^[A-Za-z0-9_.-]{3,32}$";

/// Text of characters outside `[banned]` with at least one that is not whitespace either.
fn not_blank(banned: &str) -> String {
    format!("^[^{banned}]*[^{CONTROL}{WHITESPACE}][^{banned}]*$")
}

/// A string parameter whose schema is a rule's. `#[param(schema_with = …)]` would lose the
/// parameter's `required` (utoipa 5.5 sets it only without `schema_with`); a type of its own,
/// `#[param(inline)]`, keeps it.
macro_rules! ruled_string {
    ($(#[$doc:meta])* $name:ident, $rule:ident) => {
        $(#[$doc])*
        #[derive(Debug, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<Schema> {
                $rule().into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

ruled_string!(
    /// A reaction's emoji in a path ([`emoji`]).
    EmojiParam,
    emoji
);
ruled_string!(
    /// The `q` of a message search ([`message_query`]).
    MessageQueryParam,
    message_query
);
ruled_string!(
    /// The `q` of a user search ([`user_query`]).
    UserQueryParam,
    user_query
);

fn schema(value: Value) -> Schema {
    serde_json::from_value(value).expect("the rules are valid schemas")
}

/// `{"type": "string"}`, or `["string", "null"]` where `null` stands for absent.
fn string(nullable: bool) -> Value {
    if nullable { json!(["string", "null"]) } else { json!("string") }
}

/// One line of 1-`max` characters, not blank, no control characters.
fn line(max: usize, nullable: bool, description: &str) -> Schema {
    let pattern = not_blank(CONTROL);
    schema(json!({
        "type": string(nullable), "minLength": 1, "maxLength": max, "pattern": pattern, "description": description
    }))
}

/// 3-32 ASCII letters, digits, `_`, `.`, `-` (`auth::validate_username`).
pub fn username() -> Schema {
    let description = "3-32 ASCII letters, digits, `_`, `.`, `-`; unique in any case.";
    schema(json!({"type": "string", "pattern": USERNAME, "example": "ada", "description": description}))
}

/// An address: up to 254 characters, something before its first `@` and a `.` after it, no
/// whitespace or control characters (`auth::validate_registration`).
pub fn email() -> Schema {
    let part = format!("[^{CONTROL}{WHITESPACE}]");
    let no_at = format!("[^@{CONTROL}{WHITESPACE}]");
    let pattern = format!("^{no_at}+@{part}*\\.{part}*$");
    let description = "An address of up to 254 characters; unique.";
    schema(json!({
        "type": "string", "maxLength": 254, "pattern": pattern, "example": "ada@example.com", "description": description
    }))
}

/// 8-128 characters, any.
pub fn password() -> Schema {
    schema(json!({"type": "string", "minLength": 8, "maxLength": 128, "description": "8-128 characters."}))
}

/// 1-64 characters, not blank, no control characters (`auth::display_name_ok`); `null` as absent.
pub fn display_name() -> Schema {
    line(
        64,
        true,
        "1-64 characters, not blank, no control characters; absent or `null`: the username at \
        registration, unchanged in an update.",
    )
}

/// An `http://` or `https://` URL of up to 500 characters, no control characters; `null`
/// removes the avatar.
pub fn avatar_url() -> Schema {
    let pattern = format!("^https?://[^{CONTROL}]*$");
    let description = "An http(s) URL of up to 500 characters; `null` removes the avatar; absent: unchanged.";
    schema(
        json!({"type": ["string", "null"], "maxLength": 500, "pattern": pattern, "description": description}),
    )
}

/// A channel's name: 1-100 characters, not blank, no control characters.
pub fn channel_name() -> Schema {
    line(100, true, "1-100 characters, not blank, no control characters; absent or `null`: unchanged.")
}

/// A channel's description: 1-1000 characters, not blank, no control characters but newlines.
pub fn channel_description() -> Schema {
    let pattern = not_blank(CONTROL_BUT_NEWLINE);
    let description = "1-1000 characters, not blank, no control characters but newlines; absent or `null`: none \
        (unchanged in an update).";
    schema(json!({
        "type": ["string", "null"], "minLength": 1, "maxLength": 1000, "pattern": pattern, "description": description
    }))
}

/// A message's content (an edit's, as a send's): 1-4000 characters, not blank, no control
/// characters but tab, newline and carriage return (`protocol::validate_content`).
pub fn content() -> Schema {
    let max = shared::protocol::MAX_CONTENT_CHARS;
    let description = format!(
        "The new content: 1-{max} characters, not blank, no control characters but tab, \
        newline and carriage return."
    );
    let pattern = not_blank(CONTROL_BUT_TEXT);
    schema(
        json!({"type": "string", "minLength": 1, "maxLength": max, "pattern": pattern, "description": description}),
    )
}

/// A reaction's emoji: 1-32 characters, no whitespace or control characters
/// (`protocol::validate_emoji`).
pub fn emoji() -> Schema {
    let max = shared::protocol::MAX_EMOJI_CHARS;
    let pattern = format!("^[^{CONTROL}{WHITESPACE}]+$");
    let description =
        format!("The emoji, percent-encoded: 1-{max} characters, no whitespace or control characters.");
    schema(json!({
        "type": "string", "minLength": 1, "maxLength": max, "pattern": pattern, "example": "👍", "description": description
    }))
}

/// An `Idempotency-Key`: 1-64 printable ASCII characters (`ClientMsgId::is_valid`).
pub fn idempotency_key() -> Schema {
    let description =
        "1-64 printable ASCII characters: a retried request with the same key is the same change.";
    schema(
        json!({"type": "string", "pattern": "^[!-~]{1,64}$", "example": "edit-1", "description": description}),
    )
}

/// A user search: 1-32 characters, no control characters, matched against username starts.
pub fn user_query() -> Schema {
    let pattern = format!("^[^{CONTROL}]+$");
    let description = "1-32 characters, no control characters: the start of a username.";
    schema(
        json!({"type": "string", "minLength": 1, "maxLength": 32, "pattern": pattern, "description": description}),
    )
}

/// A message search: 1-200 characters, not blank, no control characters.
pub fn message_query() -> Schema {
    line(
        200,
        false,
        "1-200 characters, not blank, no control characters: words to find (Postgres full text).",
    )
}

/// A public channel search: up to 100 characters, no control characters; blank lists all.
pub fn channel_query() -> Schema {
    let pattern = format!("^[^{CONTROL}]*$");
    let description = "Up to 100 characters the name contains, in any case, no control characters; all public \
        channels when absent or blank.";
    schema(json!({"type": "string", "maxLength": 100, "pattern": pattern, "description": description}))
}

/// A user search's cursor: the last username of the previous page.
pub fn username_cursor() -> Schema {
    let description = "The `next_cursor` of the previous page: a username.";
    schema(json!({"type": "string", "pattern": USERNAME, "description": description}))
}

/// `LoginRequest`: a `password` and a `username` or an `email` (the username wins when both
/// are given).
pub fn login_request() -> Schema {
    let text = json!({"type": "string"});
    let by = |field: &str| {
        json!({
            "type": "object",
            "title": format!("by {field}"),
            "properties": {"username": text, "email": text, "password": text},
            "required": [field, "password"],
            "additionalProperties": false,
        })
    };
    schema(json!({
        "description": "Logs in by `username` or by `email` (the username wins when both are given).",
        "anyOf": [by("username"), by("email")],
    }))
}

/// `CreateChannel`: a `dm` with one other member and nothing else, or a `group` or `public`
/// channel with a name.
pub fn create_channel(max_members: usize) -> Schema {
    let user_id = json!({"type": "string", "format": "uuid"});
    let dm = json!({
        "type": "object",
        "title": "dm",
        "description": "A dm with one other user (answered as it is when it exists).",
        "properties": {
            "type": {"type": "string", "enum": ["dm"]},
            "member_ids": {"type": "array", "items": user_id, "minItems": 1, "maxItems": 1},
        },
        "required": ["type", "member_ids"],
        "additionalProperties": false,
    });
    let named = json!({
        "type": "object",
        "title": "group or public",
        "description": "A group (members only) or a public channel (anyone may join), owned by its creator.",
        "properties": {
            "type": {"type": "string", "enum": ["group", "public"]},
            "name": serde_json::to_value(line(100, false, "1-100 characters, not blank, no control characters.")).unwrap(),
            "description": serde_json::to_value(channel_description()).unwrap(),
            "member_ids": {
                "type": "array",
                "items": user_id,
                "maxItems": max_members,
                "description": "The first members besides the creator.",
            },
        },
        "required": ["type", "name"],
        "additionalProperties": false,
    });
    schema(json!({"oneOf": [dm, named]}))
}

/// The form of an upload: one part, `file`, not empty; its name is kept, its claimed type
/// ignored.
pub fn upload_form() -> Schema {
    let file = json!({
        "type": "string",
        "format": "binary",
        "minLength": 1,
        "description": "The file, not empty; its name is kept, its claimed type ignored.",
    });
    schema(json!({
        "type": "object",
        "description": "One part, `file`.",
        "properties": {"file": file},
        "required": ["file"],
        "additionalProperties": false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(schema: &Schema, text: &str) -> bool {
        let value = serde_json::to_value(schema).unwrap();
        let pattern = value["pattern"].as_str().unwrap();
        // The `\uXXXX` escapes are the only non-portable spelling; `regex` reads them too.
        regex::Regex::new(pattern).unwrap().is_match(text)
    }

    #[test]
    fn the_text_patterns_agree_with_the_handlers_checks() {
        let name = channel_name();
        assert!(matches(&name, "general"));
        assert!(matches(&name, " a "));
        assert!(!matches(&name, "   "));
        assert!(!matches(&name, "\u{3000}\u{00A0}"));
        assert!(!matches(&name, "a\nb"));
        assert!(!matches(&name, "a\u{0085}"));
        assert!(matches(&name, "\u{FEFF}"), "not whitespace to str::trim");
        assert!(matches(&channel_description(), "line\nline"));
        assert!(!matches(&channel_description(), "\n\n"));
        assert!(matches(&content(), "a\tb\r\nc"));
        assert!(!matches(&content(), "a\u{0007}"));
        assert!(matches(&emoji(), "👍🏽"));
        assert!(!matches(&emoji(), "a b"));
        assert!(matches(&email(), "a@b.c"));
        assert!(matches(&email(), "a@b@c.d"), "split at the first @, as the handler does");
        assert!(!matches(&email(), "@b.c"));
        assert!(!matches(&email(), "a@bc"));
        assert!(!matches(&email(), "a @b.c"));
        assert!(matches(&idempotency_key(), "k-1"));
        assert!(!matches(&idempotency_key(), "k 1"));
        for name in ["ada", "a.b-c_d", "ab", "a b", "ädä", &"x".repeat(33), &"x".repeat(32)] {
            let valid = crate::http::auth::validate_username(name).is_ok();
            assert_eq!(matches(&username(), name), valid, "{name}");
            assert_eq!(matches(&username_cursor(), name), valid, "{name}");
        }
        assert!(matches(&avatar_url(), "https://x.test/a.png"));
        assert!(!matches(&avatar_url(), "ftp://x.test/a.png"));
    }

    #[test]
    fn a_message_id_s_pattern_is_the_range_of_i64() {
        use utoipa::PartialSchema;
        let value = serde_json::to_value(shared::ids::MessageId::schema()).unwrap();
        let pattern = regex::Regex::new(value["pattern"].as_str().unwrap()).unwrap();
        let limit = i64::MAX as u64;
        let mut probes = vec![0, 1, 10u64.pow(18) - 1, 10u64.pow(18), limit - 1, limit, limit + 1, u64::MAX];
        // Every digit of the limit one above and one below it, the rest kept.
        let digits = limit.to_string();
        for i in 0..digits.len() {
            for delta in [-1i32, 1] {
                let mut d: Vec<u8> = digits.bytes().collect();
                let digit = (d[i] - b'0') as i32 + delta;
                if (0..=9).contains(&digit) {
                    d[i] = b'0' + digit as u8;
                    probes.push(String::from_utf8(d).unwrap().parse().unwrap());
                }
            }
        }
        for n in probes {
            assert_eq!(pattern.is_match(&n.to_string()), n <= limit, "{n}");
        }
        assert!(pattern.is_match("007"));
        assert!(!pattern.is_match("-1") && !pattern.is_match("1a") && !pattern.is_match(""));
    }

    #[test]
    fn whitespace_is_what_str_trim_removes() {
        let class = format!("^[{WHITESPACE}]$");
        let whitespace = regex::Regex::new(&class).unwrap();
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            assert_eq!(whitespace.is_match(c.encode_utf8(&mut [0; 4])), c.is_whitespace(), "{c:?}");
        }
        let class = format!("^[{CONTROL}]$");
        let control = regex::Regex::new(&class).unwrap();
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            assert_eq!(control.is_match(c.encode_utf8(&mut [0; 4])), c.is_control(), "{c:?}");
        }
    }
}
