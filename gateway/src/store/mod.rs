//! Postgres queries of the gateway, one module per table family. Handlers call these; no SQL
//! lives in handlers.

pub mod channels;
pub mod messages;
pub mod preferences;
pub mod tokens;
pub mod uploads;
pub mod users;

/// `text` lowercased, with `LIKE`'s wildcards (`%`, `_`) and its escape (backslash) made literal.
pub fn like_literal(text: &str) -> String {
    text.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}
