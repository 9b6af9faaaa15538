//! Opening one dm through the REST API (`POST /api/v1/channels` with `type: dm`), timed, with
//! the retries the protocol asks for: `409 dm_exists` (two creates of one dm at once) and the
//! retryable `429`/`503`, a few times with jittered backoff.

use crate::measure::Latency;
use crate::reconnect::backoff;
use serde_json::{Value, json};
use shared::ids::{ChannelId, UserId};
use shared::local::client::ChatClient;
use std::collections::BTreeMap;
use tokio::time::Instant;

/// Requests for one dm at most.
const MAX_TRIES: u32 = 6;

/// What the opening of dms did, per user, merged at the end.
#[derive(Debug, Clone, Default)]
pub struct OpenTally {
    /// Answered 201: a new dm.
    pub created: u64,
    /// Answered 200: the dm existed already.
    pub existed: u64,
    /// Requests answered otherwise (each counted in `errors`) and tried again.
    pub retries: u64,
    /// Dms not opened after every try.
    pub failed: u64,
    /// Errors by `"<status> <code>"` (`"transport"` when no answer came).
    pub errors: BTreeMap<String, u64>,
    /// Request → answer of each successful request.
    pub latency: Latency,
    pub first_request: Option<Instant>,
    pub last_answer: Option<Instant>,
}

impl OpenTally {
    pub fn merge(&mut self, other: &OpenTally) {
        self.created += other.created;
        self.existed += other.existed;
        self.retries += other.retries;
        self.failed += other.failed;
        for (key, n) in &other.errors {
            *self.errors.entry(key.clone()).or_default() += n;
        }
        self.latency.merge(&other.latency);
        self.first_request = [self.first_request, other.first_request].into_iter().flatten().min();
        self.last_answer = [self.last_answer, other.last_answer].into_iter().flatten().max();
    }
}

/// Opens (finds or creates) the dm of `client` with `peer`; `None` when every try failed.
pub async fn open(client: &ChatClient, peer: UserId, tally: &mut OpenTally) -> Option<ChannelId> {
    for n in 0..MAX_TRIES {
        if n > 0 {
            tally.retries += 1;
            tokio::time::sleep(backoff(n)).await;
        }
        let asked = Instant::now();
        tally.first_request.get_or_insert(asked);
        let answer = request(client, peer).await;
        tally.last_answer = Some(Instant::now());
        match answer {
            Answer::Opened { status, channel } => {
                tally.latency.record(asked.elapsed());
                *if status == 201 { &mut tally.created } else { &mut tally.existed } += 1;
                return Some(channel);
            }
            Answer::Refused { key, retry } => {
                *tally.errors.entry(key).or_default() += 1;
                if !retry {
                    break;
                }
            }
        }
    }
    tally.failed += 1;
    None
}

enum Answer {
    Opened { status: u16, channel: ChannelId },
    Refused { key: String, retry: bool },
}

async fn request(client: &ChatClient, peer: UserId) -> Answer {
    let body = json!({"type": "dm", "member_ids": [peer]});
    let response = match client.request(reqwest::Method::POST, "/channels").json(&body).send().await {
        Ok(response) => response,
        Err(_) => return Answer::Refused { key: "transport".into(), retry: true },
    };
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let channel = serde_json::from_value::<ChannelId>(body["id"].clone());
    match (status, channel) {
        (200 | 201, Ok(channel)) => Answer::Opened { status, channel },
        _ => {
            let code = body["error"]["code"].as_str().unwrap_or("?");
            Answer::Refused { key: format!("{status} {code}"), retry: matches!(status, 409 | 429 | 503) }
        }
    }
}
