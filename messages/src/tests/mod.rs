//! Tests of the worker's parts against real servers, without a whole cell: `persist_batch`
//! and `apply_change` against Postgres, and one step of the partition loop against a one-node
//! JetStream and Postgres. Inside the crate, so that the step and its `Deps` stay private.

mod changes;
mod persist;
mod step;
mod support;
mod worker;
