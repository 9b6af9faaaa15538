//! The WebSocket protocol, v1: client → server frames, server → client frames, and the message
//! object that both `message.new` and the history API return. Frames are JSON text
//! `{type, id?, payload}`; see `docs/protocol.md`.
//!
//! Inside, imports point one way: `decode` reads `client` frames, whose checks answer with
//! `server`'s error codes; `client` and `server` share `view`; `change`,
//! `filename` and `mentions` stand alone. This module only declares them, re-exports them (every item keeps
//! its `shared::protocol::X` path) and holds the constants of both directions.

mod change;
mod client;
mod decode;
mod filename;
mod mentions;
mod server;
mod view;

pub use change::Change;
pub use client::{
    AuthRefreshPayload, ChangeFrame, ClientFrame, EditPayload, FrameError, MAX_ATTACHMENTS,
    MAX_CONTENT_CHARS, MAX_EMOJI_CHARS, MAX_JSON_DEPTH, MAX_SYNC_CHANNELS, MAX_TOKEN_BYTES, MessageRef,
    PresenceSetPayload, ReactionPayload, ReadPayload, SendPayload, SyncPayload, TypingPayload,
    validate_content, validate_emoji,
};
pub use decode::{frame_id, json_depth_exceeds};
pub use filename::clean_filename;
pub use mentions::parse_mentions;
pub use server::{
    AckPayload, AckStatus, AuthRefreshedPayload, ChangeRejectedPayload, ChangeRejection, ErrorCode,
    ErrorPayload, MessageDeletedPayload, MessageUpdatedPayload, ReactionUpdatedPayload, ReadUpdatedPayload,
    ServerFrame, SyncDonePayload, TypingUpdatePayload,
};
pub use view::{
    AttachmentView, ContentType, MessageView, PresenceStatus, PresenceView, ReactionCount, SenderView,
};

/// Subprotocol a browser offers (with `bearer.<token>`) and the server answers with.
pub const SUBPROTOCOL: &str = "chat.v1";
/// Prefix of the subprotocol entry that carries a browser's access token.
pub const BEARER_SUBPROTOCOL_PREFIX: &str = "bearer.";
