//! The load generator's errors, one enum for the whole crate.

use shared::local::client::ClientError;

#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    #[error("bad arguments: {0}")]
    Args(String),
    #[error("starting the local cell: {0}")]
    LocalCell(String),
    #[error("talking to the cell: {0}")]
    Client(#[from] ClientError),
    #[error("socket {index} had no sync.done within {secs} s after connecting")]
    NotReady { index: usize, secs: u64 },
    #[error("writing {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("hold: {0}")]
    Holder(String),
    #[error("encoding the result: {0}")]
    Json(#[from] serde_json::Error),
}
