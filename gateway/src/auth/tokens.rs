//! Signed access tokens (JWT, EdDSA): issued at login and refresh, verified on every request
//! and socket.

use crate::error::AppError;
use jsonwebtoken::{Algorithm as JwtAlgorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
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

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Sha256;

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
}
