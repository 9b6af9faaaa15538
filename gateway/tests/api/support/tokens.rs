//! The app's token keys, and tokens forged with them or without: expired, not yet valid, for
//! another audience or issuer, signed by a key the app does not accept, `alg: none`, HS256
//! keyed with the public key.

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// The key pair every test app signs with (kid `test`); made for these tests only.
const SIGNING_KEY: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJieDxzexRs6vyYQypirOpn+qblG7MbY+GsujLBhmnUw
-----END PRIVATE KEY-----
";
const PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEA0KfURrxRiGGnhI8mO8xJ8hm8qf1u0CbRDDlmzSTZMGg=
-----END PUBLIC KEY-----
";
/// A key no test app accepts.
const FOREIGN_SIGNING_KEY: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIN684LKFC/8bujFPFKjCjfb4d6PMOWaaQykMaVl0cFa5
-----END PRIVATE KEY-----
";
pub const KEY_ID: &str = "test";

/// Writes the app's key directory under `dir`; returns it.
pub fn write_key_dir(dir: &Path) -> PathBuf {
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).expect("the key directory");
    std::fs::write(keys.join("signing.pem"), SIGNING_KEY).expect("signing.pem");
    std::fs::write(keys.join("signing.kid"), KEY_ID).expect("signing.kid");
    std::fs::write(keys.join(format!("{KEY_ID}.pub")), PUBLIC_KEY).expect("the public key");
    keys
}

/// Claims the app accepts, for `sub`, in session `sid`, valid for `exp_in` seconds from now.
pub fn claims(sub: &str, sid: &str, exp_in: i64) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"sub": sub, "sid": sid, "iss": "chat-cell", "aud": "chat", "iat": now, "nbf": now, "exp": now + exp_in})
}

/// `claims` signed with the app's key (EdDSA, kid `test`).
pub fn signed(claims: &Value) -> String {
    sign(claims, SIGNING_KEY, Some(KEY_ID))
}

/// `claims` signed with a key the app does not know, under `kid`.
pub fn signed_by_foreign_key(claims: &Value, kid: &str) -> String {
    sign(claims, FOREIGN_SIGNING_KEY, Some(kid))
}

fn sign(claims: &Value, pem: &str, kid: Option<&str>) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = kid.map(str::to_owned);
    let key = EncodingKey::from_ed_pem(pem.as_bytes()).expect("an Ed25519 key");
    jsonwebtoken::encode(&header, claims, &key).expect("the token encodes")
}

/// `claims` with `alg: none` and no signature.
pub fn unsigned(claims: &Value) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(json!({"alg": "none", "typ": "JWT", "kid": KEY_ID}).to_string());
    format!("{header}.{}.", b64.encode(claims.to_string()))
}

/// `claims` as HS256 keyed with the app's public key: the classic algorithm confusion.
pub fn hs256_with_public_key(claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(KEY_ID.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(PUBLIC_KEY.as_bytes()))
        .expect("the token encodes")
}

/// A valid token whose claims were changed after signing (`sub` swapped for `other`).
pub fn tampered(token: &str, other: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut payload: Value = serde_json::from_slice(&b64.decode(&parts[1]).expect("base64")).expect("json");
    payload["sub"] = json!(other);
    parts[1] = b64.encode(payload.to_string());
    parts.join(".")
}
