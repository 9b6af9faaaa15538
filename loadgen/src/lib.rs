//! The cell's own load generator: builds a scenario of users and channels on a local or remote
//! cell, sends open-loop at a fixed rate over real sockets, measures send→ack and send→deliver
//! latency, and checks every delivery for loss, duplicates and order.

pub mod audit;
pub mod baseline;
pub mod check;
pub mod cli;
pub mod client;
pub mod content;
pub mod delivery;
pub mod dm;
pub mod dm_figures;
pub mod drain;
pub mod error;
pub mod hold;
pub mod hold_figures;
pub mod join;
pub mod kernel;
pub mod live;
pub mod measure;
pub mod proc_stats;
pub mod rate;
pub mod reconnect;
pub mod record;
pub mod report;
pub mod run;
pub mod scenario;
pub mod source;
pub mod storm;

pub use cli::Args;
pub use error::LoadgenError;
pub use report::Summary;
