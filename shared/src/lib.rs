//! Types and clients shared by every process of a chat cell: ids, protocol frames, config,
//! NATS subjects and stream definitions, database setup, telemetry and shutdown. With the
//! `local` feature it also starts the cell's servers as local processes for the cell runner
//! and the integration tests.

pub mod admin;
pub mod config;
pub mod db;
pub mod events;
pub mod ids;
pub mod protocol;
pub mod rlimit;
pub mod shutdown;
pub mod snowflake;
pub mod streams;
pub mod subjects;
pub mod telemetry;

#[cfg(feature = "local")]
pub mod local;
