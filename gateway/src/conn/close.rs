//! The close codes a socket can end with, and the reason sent beside each.

/// Close code of an orderly end.
pub const CLOSE_NORMAL: u16 = 1000;
/// The peer closed without a code (recorded, never sent).
pub const CLOSE_NO_STATUS: u16 = 1005;
/// The connection ended without a close frame (recorded, never sent).
pub const CLOSE_ABNORMAL: u16 = 1006;
/// Close code for a message above the size limit.
pub const CLOSE_TOO_BIG: u16 = 1009;
/// Close code for sockets that would miss deliveries of a channel: a hole in its live
/// deliveries could not be filled from the database. The client resumes with `sync`.
pub const CLOSE_DELIVERIES_MISSED: u16 = 1011;
/// Close code when the gateway shuts down ("service restart").
pub const CLOSE_RESTART: u16 = 1012;
/// Close code for a peer that went silent (not even a pong) for `idle_timeout`.
pub const CLOSE_IDLE: u16 = 4000;
/// Close code for a socket whose access token expired without an `auth.refresh`.
pub const CLOSE_TOKEN_EXPIRED: u16 = 4001;
/// Close code of a socket whose session was revoked: log in again.
pub const CLOSE_SESSION_REVOKED: u16 = 4003;
/// Close code for a socket that could not keep up with its deliveries.
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;
/// Close code for a client that kept sending past a rate limit after being told.
pub const CLOSE_RATE_LIMITED: u16 = 4029;

/// Whether `code` is sent in a close frame: 1005 and 1006 only describe a close that came
/// without a code.
pub fn is_sent(code: u16) -> bool {
    !matches!(code, CLOSE_NO_STATUS | CLOSE_ABNORMAL)
}

/// The reason sent with close `code`.
pub fn reason(code: u16) -> &'static str {
    match code {
        CLOSE_SLOW_CONSUMER => "slow consumer",
        CLOSE_RESTART => "service restart",
        CLOSE_TOO_BIG => "message too big",
        CLOSE_RATE_LIMITED => "rate limited",
        CLOSE_IDLE => "idle timeout",
        CLOSE_TOKEN_EXPIRED => "token expired",
        CLOSE_DELIVERIES_MISSED => "deliveries missed",
        CLOSE_SESSION_REVOKED => "session revoked",
        _ => "",
    }
}
