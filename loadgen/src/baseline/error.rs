//! Why a baseline could not be measured. A failed baseline is reported beside the scenario's
//! figures (which are kept), never in their place.

use shared::streams::StreamSetupError;

#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("no {server} given for the {baseline} baseline ({flag})")]
    NoServer { baseline: &'static str, server: &'static str, flag: &'static str },
    #[error("interrupted before it ran")]
    Interrupted,
    #[error("connecting to NATS: {0}")]
    Connect(#[from] async_nats::ConnectError),
    #[error("reading the cell's stream definitions: {0}")]
    Stream(#[from] StreamSetupError),
    #[error("creating the scratch stream: {0}")]
    CreateStream(String),
    #[error("no stream answered on {0} within the creation patience")]
    NoInterest(String),
    #[error("the stream stored a probe on {0} that expected a last sequence it cannot have")]
    ProbeStored(String),
    #[error("creating the scratch consumer {name}: {reason}")]
    Consumer { name: String, reason: String },
    #[error("pulling from {consumer}: {reason}")]
    Pull { consumer: String, reason: String },
    #[error("no channel id of partition {0} found")]
    NoChannel(u16),
    #[error("encoding a message: {0}")]
    Json(#[from] serde_json::Error),
    #[error("postgres: {0}")]
    Db(#[from] sqlx::Error),
    #[error("still running {0} s past its deadline; its scratch {1} may be left behind")]
    Overran(u64, &'static str),
    #[error("starting the fan-out server {path}: {reason}")]
    ServerStart { path: String, reason: String },
    #[error("opening socket {index} to the fan-out server: {reason}")]
    FanoutConnect { index: usize, reason: String },
    #[error("bad scratch name {0:?}")]
    Name(String),
}
