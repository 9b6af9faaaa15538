//! A change to a stored message (edit, delete, reaction): what a client's change frame asks
//! for, and what a gateway puts into the stream for the worker to apply. It lives with the
//! protocol because [`ClientFrame::into_change`](super::ClientFrame::into_change) makes it;
//! `events` re-exports it for the stream's side.

use crate::ids::UserId;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    Edit {
        content: String,
        #[serde(default)]
        mentions: Vec<UserId>,
        #[serde(default)]
        mentions_channel: bool,
    },
    Delete,
    ReactionAdd {
        emoji: String,
    },
    ReactionRemove {
        emoji: String,
    },
}

impl Change {
    /// The name stored in `channel_events.kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Change::Edit { .. } => "edit",
            Change::Delete => "delete",
            Change::ReactionAdd { .. } => "reaction_add",
            Change::ReactionRemove { .. } => "reaction_remove",
        }
    }
}
