//! Same-run baselines (issue 14): what the cell's own servers do without the cell in the way,
//! measured after the scenario on the same NATS cluster and Postgres, so the scenario's figures
//! can be read as ratios of them. (a) `publish`: raw JetStream publishes of a chat message's
//! bytes into a scratch stream configured like the message stream, a fixed number in flight;
//! (b) `consume`: the same with a plain pull consumer per partition acking the way the worker
//! does; (c) `fanout`: a bare tokio-tungstenite broadcast server of its own, with the
//! gateway's buffer settings, and sockets to it, for the fan-out and memory figures; (d) `insert`: plain `UNNEST` inserts of 1,000-row batches into a scratch copy of the
//! `messages` table. Every scratch object is removed afterwards.

pub mod consume;
pub mod display;
pub mod error;
pub mod fanout;
pub mod figures;
pub mod insert;
pub mod ledger;
pub mod params;
pub mod payload;
pub mod publish;
pub mod runner;
pub mod scratch;
pub mod sent;
pub mod worker;

pub use error::BaselineError;
pub use figures::Baselines;
pub use params::{AckMode, BaselineKind, BaselineParams, BaselineServers};
