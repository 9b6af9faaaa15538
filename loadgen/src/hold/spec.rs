//! What the run hands a holder process (its sockets, as a JSON file) and what the holder says
//! back (one JSON line on its stdout when its sockets are open, one when they are closed).

use crate::hold::plan::Placement;
use serde::{Deserialize, Serialize};
use shared::ids::ChannelId;
use std::collections::BTreeMap;

/// A holder's sockets and how to open them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HolderSpec {
    /// WebSocket URL of each gateway, by index.
    pub ws_urls: Vec<String>,
    /// Every user of the scenario, by index (a holder opens sockets of many users).
    pub users: Vec<HeldUser>,
    /// The holder's sockets.
    pub sockets: Vec<Placement>,
    /// Sockets the holder opens at once.
    pub concurrency: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeldUser {
    pub access_token: String,
    /// The user's channel: each socket syncs it before it counts as open.
    pub channel: ChannelId,
}

/// A holder's report once its sockets are open (or failed to open).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Opened {
    pub opened: usize,
    pub failed: usize,
    /// Failures by error, the first few kinds.
    pub errors: BTreeMap<String, usize>,
    /// Seconds from the first connect to the last socket's `sync.done`.
    pub open_s: f64,
    /// The holder's own RSS before its first socket, KiB.
    pub rss_before_kib: u64,
}

/// A holder's report once told to let go: how many of its sockets were still open.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Released {
    /// Sockets open until the end of the hold.
    pub held: usize,
    /// Sockets that ended during the hold, by reason.
    pub dropped: BTreeMap<String, usize>,
    /// Frames the held sockets received during the hold (presence of their neighbours,
    /// mostly), pings not counted.
    pub frames: u64,
}

/// Errors counted by kind, at most this many kinds kept (the rest as `other`).
pub const MAX_ERROR_KINDS: usize = 8;

/// Counts `error` in `errors`, keeping at most [`MAX_ERROR_KINDS`] kinds.
pub fn count_error(errors: &mut BTreeMap<String, usize>, error: String) {
    let key =
        if errors.contains_key(&error) || errors.len() < MAX_ERROR_KINDS { error } else { "other".into() };
    *errors.entry(key).or_default() += 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds_are_bounded() {
        let mut errors = BTreeMap::new();
        for i in 0..20 {
            count_error(&mut errors, format!("e{}", i % 10));
        }
        assert_eq!(errors.len(), MAX_ERROR_KINDS + 1);
        assert_eq!(errors["e0"], 2);
        assert_eq!(errors["other"], 4);
        assert_eq!(errors.values().sum::<usize>(), 20);
    }
}
