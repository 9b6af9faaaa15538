//! Authentication: Argon2id password hashes, signed access tokens (JWT), opaque refresh tokens
//! (stored only as SHA-256 hashes), and the `AuthUser` extractor that guards every route.

use crate::error::AppError;
use crate::state::AppState;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm as JwtAlgorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shared::config::GatewayConfig;
use shared::ids::UserId;
use std::collections::HashMap;
use std::time::Duration;

/// The claims of an access token.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: UserId,
    /// The session (refresh-token family) the token belongs to; revoking it refuses the
    /// token before its `exp`.
    pub sid: uuid::Uuid,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
}

/// Signs and checks access tokens: EdDSA (Ed25519) only — the algorithm is pinned, so `none`,
/// HS256 made with a public key or any other algorithm is refused — and every token names its
/// signing key (`kid`). Keys come from `gateway.jwt_keys_dir`: `signing.pem` (PKCS#8 private
/// key) and `signing.kid` sign; every `<kid>.pub` (SPKI public key) verifies. Rotation: put a
/// new pair in, keep the old `<kid>.pub` until the last token it signed has expired. Without
/// a directory the built-in development keys are used (and the gateway says so).
pub struct TokenKeys {
    encoding: EncodingKey,
    key_id: String,
    decoding: HashMap<String, DecodingKey>,
    validation: Validation,
    issuer: String,
    audience: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("reading {path}: {source}")]
    Read { path: std::path::PathBuf, source: std::io::Error },
    #[error("key {name}: {source}")]
    Key { name: String, source: jsonwebtoken::errors::Error },
    #[error("no public key {0}.pub for the signing key: tokens would not verify")]
    NoPublicKey(String),
    #[error("the public key {0}.pub does not verify what signing.pem signs")]
    Mismatch(String),
}

/// Development keys, used when no `gateway.jwt_keys_dir` is configured. Never in production:
/// anyone can read them here.
const DEV_KEY_ID: &str = "dev";
const DEV_SIGNING_KEY: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIHmHtGsCi/IWLnlPxMK52zmRj2xtrAh/GhNSQ3Qx5Yr4
-----END PRIVATE KEY-----
";
const DEV_PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAis0kQtRcVQaw06coNTtCkCXm796797s1+zmGqhJ9VzA=
-----END PUBLIC KEY-----
";

impl TokenKeys {
    pub fn new(config: &GatewayConfig) -> Result<Self, KeyError> {
        let (signing, key_id, public) = match &config.jwt_keys_dir {
            Some(dir) => read_key_dir(dir)?,
            None => {
                tracing::warn!("no gateway.jwt_keys_dir: signing tokens with the built-in development key");
                (
                    DEV_SIGNING_KEY.as_bytes().to_vec(),
                    DEV_KEY_ID.to_owned(),
                    vec![(DEV_KEY_ID.to_owned(), DEV_PUBLIC_KEY.as_bytes().to_vec())],
                )
            }
        };
        let key = |name: String| move |source| KeyError::Key { name, source };
        let encoding = EncodingKey::from_ed_pem(&signing).map_err(key("signing.pem".into()))?;
        let mut decoding = HashMap::new();
        for (kid, pem) in public {
            let parsed = DecodingKey::from_ed_pem(&pem).map_err(key(format!("{kid}.pub")))?;
            decoding.insert(kid, parsed);
        }
        let mut validation = Validation::new(JwtAlgorithm::EdDSA);
        validation.set_issuer(&[&config.jwt_issuer]);
        validation.set_audience(&[&config.jwt_audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 30;
        let keys = Self {
            encoding,
            key_id,
            decoding,
            validation,
            issuer: config.jwt_issuer.clone(),
            audience: config.jwt_audience.clone(),
            access_ttl: config.access_token_ttl,
            refresh_ttl: config.refresh_token_ttl,
        };
        // A pair that does not match would lock every client out: refuse to start instead.
        if !keys.decoding.contains_key(&keys.key_id) {
            return Err(KeyError::NoPublicKey(keys.key_id));
        }
        let probe = keys
            .issue(UserId(uuid::Uuid::nil()), uuid::Uuid::nil())
            .map_err(|_| KeyError::Mismatch(keys.key_id.clone()))?;
        keys.verify(&probe).map_err(|_| KeyError::Mismatch(keys.key_id.clone()))?;
        Ok(keys)
    }

    pub fn issue(&self, user: UserId, session: uuid::Uuid) -> Result<String, AppError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user,
            sid: session,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            nbf: now,
            exp: now + self.access_ttl.as_secs() as i64,
        };
        let mut header = Header::new(JwtAlgorithm::EdDSA);
        header.kid = Some(self.key_id.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding).map_err(|e| AppError::Internal(Box::new(e)))
    }

    /// The claims of a valid token: EdDSA, signed by a key this gateway accepts (by `kid`),
    /// issuer and audience right, within `nbf`..`exp` (30 s leeway).
    pub fn verify(&self, token: &str) -> Result<Claims, AppError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AppError::Unauthorized)?;
        if header.alg != JwtAlgorithm::EdDSA {
            return Err(AppError::Unauthorized);
        }
        let key = header.kid.and_then(|kid| self.decoding.get(&kid)).ok_or(AppError::Unauthorized)?;
        jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map(|data| data.claims)
            .map_err(|_| AppError::Unauthorized)
    }
}

/// `signing.pem`, `signing.kid` and every `<kid>.pub` of the key directory.
type KeyFiles = (Vec<u8>, String, Vec<(String, Vec<u8>)>);

fn read_key_dir(dir: &std::path::Path) -> Result<KeyFiles, KeyError> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|source| KeyError::Read { path, source })
    };
    let signing = read("signing.pem")?;
    let key_id = String::from_utf8_lossy(&read("signing.kid")?).trim().to_owned();
    let entries = std::fs::read_dir(dir).map_err(|source| KeyError::Read { path: dir.to_owned(), source })?;
    let mut public = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(kid) = name.strip_suffix(".pub") {
            public.push((kid.to_owned(), read(&name)?));
        }
    }
    Ok((signing, key_id, public))
}

fn argon2() -> Argon2<'static> {
    // OWASP's Argon2id baseline: 19 MiB, 2 passes, 1 lane.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password off the async runtime (tens of milliseconds of CPU).
pub async fn hash_password(password: String) -> Result<String, AppError> {
    tokio::task::spawn_blocking(move || {
        argon2().hash_password(password.as_bytes()).map(|h: PasswordHash| h.to_string())
    })
    .await
    .map_err(|e| AppError::Internal(Box::new(e)))?
    .map_err(|e| AppError::Internal(e.to_string().into()))
}

/// Checks a password against a stored hash; with no hash (unknown user) it checks against a
/// fixed one, so both answers take about the same time.
pub async fn verify_password(password: String, stored: Option<String>) -> Result<bool, AppError> {
    tokio::task::spawn_blocking(move || {
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| DUMMY_HASH.to_string());
        let Ok(hash) = PasswordHash::new(&stored) else { return false };
        argon2().verify_password(password.as_bytes(), &hash).is_ok() && known
    })
    .await
    .map_err(|e| AppError::Internal(Box::new(e)))
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

/// The user a request acts for, from its `Authorization: Bearer` access token.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser(pub UserId);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        // Verified once per request: the REST rate limit already did it.
        if let Some(user) = parts.extensions.get::<AuthUser>() {
            return Ok(*user);
        }
        let token = bearer_token(parts).ok_or(AppError::Unauthorized)?;
        Ok(AuthUser(state.authenticate(token)?.sub))
    }
}

/// `Option<AuthUser>`: none without an `Authorization` header; an invalid token is still 401.
impl axum::extract::OptionalFromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Option<Self>, AppError> {
        match parts.extensions.get::<AuthUser>().is_some() || bearer_token(parts).is_some() {
            true => {
                <AuthUser as FromRequestParts<AppState>>::from_request_parts(parts, state).await.map(Some)
            }
            false => Ok(None),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    bearer_token_of(&parts.headers)
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer_token_of(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Another Ed25519 pair, as an operator would make one (`openssl genpkey -algorithm ed25519`).
    const OTHER_SIGNING_KEY: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIItdQOthKTTZRXXV+sJ5rdhqyglyXFu+zyxDj3auSHCT
-----END PRIVATE KEY-----
";
    const OTHER_PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAuK8m8JGJnugWQT02cskJ7MaYmHIo+yt56R67/sUUntQ=
-----END PUBLIC KEY-----
";

    fn dev_keys() -> TokenKeys {
        TokenKeys::new(&GatewayConfig::default()).unwrap()
    }

    /// Keys from a directory: `signing` as (kid, private PEM), `public` as (kid, PEM) files.
    fn keys_from(signing: (&str, &str), public: &[(&str, &str)]) -> Result<TokenKeys, KeyError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("signing.pem"), signing.1).unwrap();
        std::fs::write(dir.path().join("signing.kid"), format!("{}\n", signing.0)).unwrap();
        for (kid, pem) in public {
            std::fs::write(dir.path().join(format!("{kid}.pub")), pem).unwrap();
        }
        let config = GatewayConfig { jwt_keys_dir: Some(dir.path().to_owned()), ..Default::default() };
        TokenKeys::new(&config)
    }

    fn other_keys() -> TokenKeys {
        keys_from(("k2", OTHER_SIGNING_KEY), &[("k2", OTHER_PUBLIC_KEY)]).unwrap()
    }

    /// A token with this header over valid claims, signed (HS256) with `secret` or unsigned.
    fn forged(header: &str, secret: Option<&[u8]>) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let claims = dev_keys()
            .issue(UserId::new_random(), uuid::Uuid::new_v4())
            .unwrap()
            .split('.')
            .nth(1)
            .unwrap()
            .to_owned();
        let signed = format!("{}.{claims}", b64.encode(header));
        let signature = match secret {
            Some(secret) => {
                use hmac::{KeyInit as _, Mac as _};
                let mut mac = hmac::Hmac::<Sha256>::new_from_slice(secret).unwrap();
                mac.update(signed.as_bytes());
                b64.encode(mac.finalize().into_bytes())
            }
            None => String::new(),
        };
        format!("{signed}.{signature}")
    }

    #[test]
    fn tokens_name_their_key_and_verify_only_with_it() {
        let user = UserId::new_random();
        let token = dev_keys().issue(user, uuid::Uuid::new_v4()).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!((header.alg, header.kid.as_deref()), (JwtAlgorithm::EdDSA, Some("dev")));
        assert_eq!(dev_keys().verify(&token).unwrap().sub, user);
        assert!(other_keys().verify(&token).is_err(), "signed by a key this gateway does not accept");
        assert!(dev_keys().verify(&other_keys().issue(user, uuid::Uuid::new_v4()).unwrap()).is_err());
    }

    #[test]
    fn after_a_rotation_tokens_of_the_old_key_still_verify() {
        let rotated =
            keys_from(("k2", OTHER_SIGNING_KEY), &[("k2", OTHER_PUBLIC_KEY), ("dev", DEV_PUBLIC_KEY)]);
        let rotated = rotated.unwrap();
        let user = UserId::new_random();
        assert_eq!(rotated.verify(&dev_keys().issue(user, uuid::Uuid::new_v4()).unwrap()).unwrap().sub, user);
        let new = rotated.issue(user, uuid::Uuid::new_v4()).unwrap();
        assert_eq!(jsonwebtoken::decode_header(&new).unwrap().kid.as_deref(), Some("k2"));
        assert!(dev_keys().verify(&new).is_err(), "gateways without the new key refuse it");
    }

    #[test]
    fn unsigned_hmac_unknown_kid_and_expired_tokens_are_refused() {
        let keys = dev_keys();
        assert!(keys.verify(&forged(r#"{"alg":"none","typ":"JWT"}"#, None)).is_err());
        // HS256 "signed" with the public key, the classic algorithm confusion.
        let confused = forged(r#"{"alg":"HS256","typ":"JWT","kid":"dev"}"#, Some(DEV_PUBLIC_KEY.as_bytes()));
        assert!(keys.verify(&confused).is_err());
        let token = keys.issue(UserId::new_random(), uuid::Uuid::new_v4()).unwrap();
        let (_, rest) = token.split_once('.').unwrap();
        use base64::Engine as _;
        let unknown_kid =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"EdDSA","kid":"k9"}"#);
        assert!(keys.verify(&format!("{unknown_kid}.{rest}")).is_err());
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: UserId::new_random(),
            sid: uuid::Uuid::new_v4(),
            iss: "chat-cell".into(),
            aud: "chat".into(),
            iat: now - 3600,
            nbf: now - 3600,
            exp: now - 60,
        };
        let mut header = Header::new(JwtAlgorithm::EdDSA);
        header.kid = Some("dev".into());
        let expired = jsonwebtoken::encode(&header, &claims, &keys.encoding).unwrap();
        assert!(keys.verify(&expired).is_err(), "expired past the 30 s leeway");
    }

    #[test]
    fn a_signing_key_without_its_public_key_refuses_to_start() {
        assert!(matches!(keys_from(("k2", OTHER_SIGNING_KEY), &[]), Err(KeyError::NoPublicKey(_))));
        let mismatched = keys_from(("k2", OTHER_SIGNING_KEY), &[("k2", DEV_PUBLIC_KEY)]);
        assert!(matches!(mismatched, Err(KeyError::Mismatch(_))));
    }

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
