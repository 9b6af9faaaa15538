//! The gateway in-process (`support::spawn_app`), driven over real HTTP and WebSocket: the
//! REST API's authentication, validation, authorization, routing and limits tables, and
//! WebSocket smoke tests. The servers are shared by the tests of one process, each test in a
//! namespace of its own (`isolation`); the end-to-end tests of whole cells are in `cell/tests`.

mod authentication;
mod authorization;
mod isolation;
mod limits;
mod router;
mod routing;
mod support;
mod validation;
mod websocket;
