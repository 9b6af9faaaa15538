//! The gateway: REST and WebSocket edge of a chat cell. It authenticates clients, validates
//! and batch-publishes their messages into the partitioned JetStream stream, acks them once
//! stored, and fans committed messages out to the sockets of channel members connected here.
//!
//! The modules, from the top down (each imports only those below it; `docs/architecture.md`
//! draws them): `run` starts and stops a gateway; `app` is the HTTP application; `http` (REST
//! handlers) and `ws` (sockets) serve requests; `changes` checks and publishes sends and
//! changes; `state` holds the services; `auth`, `calls`, `live`, `uploads` are the features'
//! services;
//! `conn` is a socket's handle; `publish`, `ratelimit`, `store`, `serve`, `origins`, `error`
//! and `metrics` are the floor.

mod app;
mod auth;
mod calls;
mod changes;
mod conn;
mod error;
mod http;
mod live;
pub mod memory;
mod metrics;
mod origins;
mod publish;
mod ratelimit;
mod run;
mod serve;
mod state;
mod store;
mod uploads;
mod web;
mod ws;

pub use http::document as openapi_document;
pub use run::{Gateway, GatewayError, run};
