//! Revoked sessions. A session is one login: a refresh-token family, named by the `sid` of
//! its access tokens. Logout, the reuse of a rotated refresh token, a password change and
//! account deletion revoke sessions; every gateway of the cell learns it over NATS, refuses
//! the sessions' access tokens from then on (they would otherwise work until their `exp`)
//! and closes their sockets at once with 4003. A gateway that starts later reads the
//! sessions revoked within one access-token lifetime from Postgres.

use super::tokens::{Claims, TokenKeys};
use crate::conn::close::CLOSE_SESSION_REVOKED;
use crate::error::AppError;
use crate::live::fanout::Fanout;
use futures::StreamExt;
use shared::events::SessionsRevoked;
use shared::ids::UserId;
use shared::subjects::Subjects;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How often a gateway re-reads the recently revoked sessions from Postgres.
const REREAD_REVOKED: Duration = Duration::from_secs(30);

/// Sessions revoked while their access tokens may still be unexpired.
pub struct RevokedSessions {
    /// Each until the last access token it could have has expired.
    until: Mutex<HashMap<Uuid, Instant>>,
    /// An access token's lifetime plus the verification leeway.
    keep: Duration,
}

impl RevokedSessions {
    pub fn new(access_ttl: Duration) -> Self {
        Self { until: Mutex::default(), keep: access_ttl + Duration::from_secs(60) }
    }

    /// How far back revocations still matter.
    pub fn window(&self) -> Duration {
        self.keep
    }

    pub fn insert(&self, sessions: impl IntoIterator<Item = Uuid>) {
        let now = Instant::now();
        let mut until = self.until.lock().unwrap_or_else(|e| e.into_inner());
        until.retain(|_, expires| *expires > now);
        until.extend(sessions.into_iter().map(|session| (session, now + self.keep)));
    }

    pub fn contains(&self, session: Uuid) -> bool {
        let until = self.until.lock().unwrap_or_else(|e| e.into_inner());
        until.get(&session).is_some_and(|expires| *expires > Instant::now())
    }
}

/// The access tokens this gateway takes: signed by a key it knows, of a session not revoked;
/// and the revocations of the cell.
pub struct Sessions {
    pub tokens: TokenKeys,
    pub revoked: RevokedSessions,
    nats: async_nats::Client,
    subjects: Subjects,
    db: sqlx::PgPool,
    /// To close the sockets of a revoked session.
    fanout: Arc<Fanout>,
}

impl Sessions {
    pub fn new(
        tokens: TokenKeys,
        revoked: RevokedSessions,
        nats: async_nats::Client,
        subjects: Subjects,
        db: sqlx::PgPool,
        fanout: Arc<Fanout>,
    ) -> Arc<Self> {
        Arc::new(Self { tokens, revoked, nats, subjects, db, fanout })
    }

    /// The claims of a valid access token whose session was not revoked.
    pub fn authenticate(&self, token: &str) -> Result<Claims, AppError> {
        let claims = self.tokens.verify(token)?;
        if self.revoked.contains(claims.sid) {
            return Err(AppError::Unauthorized);
        }
        Ok(claims)
    }

    /// Refuses `sessions` of `user` here at once, and tells every other gateway. Not async:
    /// a handler cancelled after its commit still revokes (the publish runs on its own).
    pub fn revoke(&self, user: UserId, sessions: Vec<Uuid>) {
        if sessions.is_empty() {
            return;
        }
        let event = SessionsRevoked { user_id: user, sessions };
        self.apply_revocation(&event);
        let Ok(payload) = serde_json::to_vec(&event) else { return };
        let (nats, subject) = (self.nats.clone(), self.subjects.sessions_revoked());
        tokio::spawn(async move {
            if let Err(error) = nats.publish(subject, payload.into()).await {
                tracing::warn!(%error, "session revocation not announced; other gateways read it from Postgres");
            }
        });
    }

    fn apply_revocation(&self, event: &SessionsRevoked) {
        self.revoked.insert(event.sessions.iter().copied());
        for conn in self.fanout.sockets_of(event.user_id) {
            if event.sessions.contains(&conn.session) {
                conn.close(CLOSE_SESSION_REVOKED);
            }
        }
    }

    /// Follows the cell's revocations until shutdown: subscribes first, then reads what was
    /// revoked before (so nothing falls in between), and reads it again every
    /// `REREAD_REVOKED` (so nothing lost while NATS reconnected stays missed).
    pub async fn follow_revocations(
        self: &Arc<Self>,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<tokio::task::JoinHandle<()>, sqlx::Error> {
        let revocations = self.nats.subscribe(self.subjects.sessions_revoked()).await;
        let mut revocations = revocations.map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
        self.revoked.insert(crate::store::tokens::recently_revoked(&self.db, self.revoked.window()).await?);
        let sessions = self.clone();
        Ok(tokio::spawn(async move {
            let mut reread = tokio::time::interval(REREAD_REVOKED);
            reread.tick().await;
            loop {
                let message = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = reread.tick() => {
                        match crate::store::tokens::recently_revoked(&sessions.db, sessions.revoked.window()).await {
                            Ok(revoked) => sessions.revoked.insert(revoked),
                            Err(error) => tracing::warn!(%error, "revoked sessions not re-read"),
                        }
                        continue;
                    }
                    message = revocations.next() => message,
                };
                let Some(message) = message else { return };
                match serde_json::from_slice::<SessionsRevoked>(&message.payload) {
                    Ok(event) => sessions.apply_revocation(&event),
                    Err(error) => tracing::warn!(%error, "undecodable session revocation"),
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoked_sessions_are_remembered_for_a_token_lifetime_only() {
        let revoked = RevokedSessions::new(Duration::ZERO);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        revoked.insert([a]);
        assert!(revoked.contains(a));
        assert!(!revoked.contains(b));
        let revoked = RevokedSessions { keep: Duration::ZERO, ..RevokedSessions::new(Duration::ZERO) };
        revoked.insert([a]);
        assert!(!revoked.contains(a), "past its keep");
        std::thread::sleep(Duration::from_millis(2));
        revoked.insert([b]);
        assert!(!revoked.until.lock().unwrap().contains_key(&a), "dropped on the next insert");
    }
}
