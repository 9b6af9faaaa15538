//! Coming back after a socket dropped: another gateway, jittered exponential backoff, a
//! bounded number of attempts in a bounded time, and the socket opened to resume (`sync`
//! from the last `seq` the client has).

use shared::ids::ChannelId;
use shared::local::client::{ChatClient, ChatSocket};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Connection attempts after one drop at most.
const MAX_ATTEMPTS: u32 = 12;
/// From the drop to the last attempt at most.
const MAX_TIME: Duration = Duration::from_secs(30);
/// The backoff's first ceiling, doubled each attempt up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// One attempt (TCP, upgrade, the `sync` written) at most.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a client may reconnect: every gateway of the run.
#[derive(Debug, Clone)]
pub struct Redial {
    pub ws_urls: Arc<Vec<String>>,
}

/// How a redial ended: the new socket and its gateway, or none; and the attempts it made.
pub struct Redialed {
    pub socket: Option<(ChatSocket, usize)>,
    pub attempts: u64,
}

impl Redial {
    /// The gateway of attempt `n` after dropping from `from`: the others in turn, `from`
    /// itself only when there is no other.
    pub fn target(&self, from: usize, n: u32) -> usize {
        let len = self.ws_urls.len().max(1);
        match len {
            1 => 0,
            _ => (from + 1 + n as usize % (len - 1)) % len,
        }
    }

    /// Reconnects `client` after a drop from gateway `from`, resuming `channel` after
    /// `last_seq`; gives up after `MAX_ATTEMPTS` or `MAX_TIME`, or at once on `finish`.
    pub async fn redial(
        &self,
        client: &ChatClient,
        from: usize,
        from_seq: &[(ChannelId, i64)],
        finish: &CancellationToken,
    ) -> Redialed {
        let deadline = Instant::now() + MAX_TIME;
        let mut attempts = 0;
        for n in 0..MAX_ATTEMPTS {
            let wait = backoff(n);
            if Instant::now() + wait > deadline {
                break;
            }
            tokio::select! {
                _ = finish.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
            attempts += 1;
            let gateway = self.target(from, n);
            let open = client.resume(&self.ws_urls[gateway], from_seq);
            if let Ok(Ok(socket)) = tokio::time::timeout(ATTEMPT_TIMEOUT, open).await {
                return Redialed { socket: Some((socket, gateway)), attempts };
            }
        }
        Redialed { socket: None, attempts }
    }
}

/// The wait before attempt `n`: full jitter, uniform in [0, min(MAX_BACKOFF, FIRST_BACKOFF ·
/// 2^n)], so the clients of a dead gateway do not all come back in the same millisecond.
pub fn backoff(n: u32) -> Duration {
    let ceiling = FIRST_BACKOFF.saturating_mul(1 << n.min(16)).min(MAX_BACKOFF);
    ceiling.mul_f64(rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_jittered_under_a_doubling_ceiling() {
        for n in 0..20 {
            let ceiling = FIRST_BACKOFF.saturating_mul(1 << n.min(16)).min(MAX_BACKOFF);
            assert!(backoff(n) <= ceiling);
        }
        let waits: Vec<Duration> = (0..20).map(|_| backoff(3)).collect();
        assert!(waits.iter().any(|w| *w != waits[0]), "jittered");
    }

    #[test]
    fn reconnects_go_to_the_other_gateways() {
        let redial = Redial { ws_urls: Arc::new(vec!["a".into(), "b".into(), "c".into()]) };
        let targets: Vec<usize> = (0..4).map(|n| redial.target(1, n)).collect();
        assert_eq!(targets, vec![2, 0, 2, 0]);
        let two = Redial { ws_urls: Arc::new(vec!["a".into(), "b".into()]) };
        assert!((0..5).all(|n| two.target(0, n) == 1));
    }
}
