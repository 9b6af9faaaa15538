//! Secrets of users: Argon2id password hashes, checked off the async runtime and a few at a
//! time, and opaque refresh tokens, stored only as SHA-256 hashes.

use crate::error::AppError;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// Password hashes computed at once, at most: each holds 19 MiB while it runs, and the
/// blocking pool would otherwise run hundreds at once in a burst of logins from many
/// addresses (gigabytes). The others wait their turn, which costs no throughput: the CPU is
/// the bound. (See `crate::memory` for what happens to the blocks once freed.)
static HASHING: LazyLock<tokio::sync::Semaphore> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    tokio::sync::Semaphore::new(cores * 2)
});

/// Runs `work` on the blocking pool once a hashing place is free.
async fn hashing<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, AppError> {
    let _place = HASHING.acquire().await.map_err(|e| AppError::Internal(Box::new(e)))?;
    tokio::task::spawn_blocking(work).await.map_err(|e| AppError::Internal(Box::new(e)))
}

fn argon2() -> Argon2<'static> {
    // OWASP's Argon2id baseline: 19 MiB, 2 passes, 1 lane.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password off the async runtime (tens of milliseconds of CPU).
pub async fn hash_password(password: String) -> Result<String, AppError> {
    hashing(move || argon2().hash_password(password.as_bytes()).map(|h: PasswordHash| h.to_string()))
        .await?
        .map_err(|e| AppError::Internal(e.to_string().into()))
}

/// Checks a password against a stored hash; with no hash (unknown user) it checks against a
/// fixed one, so both answers take about the same time.
pub async fn verify_password(password: String, stored: Option<String>) -> Result<bool, AppError> {
    hashing(move || {
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| DUMMY_HASH.to_string());
        let Ok(hash) = PasswordHash::new(&stored) else { return false };
        argon2().verify_password(password.as_bytes(), &hash).is_ok() && known
    })
    .await
}

/// Argon2id hash of a random password, used to spend the same time on unknown users.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0n6pYdJ3Dkc0Jx6HqD5n3tP0oYbSMGS/bdC4m3Tt6cM";

/// A new opaque refresh token and the hash under which it is stored.
pub fn new_refresh_token() -> (String, Vec<u8>) {
    let bytes: [u8; 32] = rand::random();
    let token = hex::encode(bytes);
    let hash = hash_refresh_token(&token);
    (token, hash)
}

pub fn hash_refresh_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_verify_and_unknown_users_fail() {
        let hash = hash_password("correct horse".into()).await.unwrap();
        assert!(verify_password("correct horse".into(), Some(hash.clone())).await.unwrap());
        assert!(!verify_password("wrong".into(), Some(hash)).await.unwrap());
        assert!(!verify_password("anything".into(), None).await.unwrap());
    }

    #[test]
    fn the_dummy_hash_parses() {
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }
}
