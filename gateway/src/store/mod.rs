//! Postgres queries of the gateway, one module per table family. Handlers call these; no SQL
//! lives in handlers.

pub mod channels;
pub mod messages;
pub mod tokens;
pub mod users;
