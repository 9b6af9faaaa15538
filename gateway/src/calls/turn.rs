//! TURN credentials in coturn's `use-auth-secret` scheme (the "REST API" of
//! draft-uberti-behave-turn-rest): the username is `<expiry>:<user_id>`, with the expiry in
//! Unix seconds, and the password is base64(HMAC-SHA1(secret, username)). Any coturn that
//! shares the secret (`static-auth-secret`) checks them without asking the cell, and refuses
//! them once the expiry has passed.

use base64::Engine;
use hmac::{KeyInit, Mac};
use shared::ids::UserId;

/// The username and password of `user`'s TURN credential that works until `expires`.
pub fn credential(secret: &[u8], user: UserId, expires: i64) -> (String, String) {
    let username = format!("{expires}:{user}");
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_is_the_hmac_sha1_of_its_username_as_coturn_computes_it() {
        let user = UserId("0b6f3c44-1e0c-4b8e-9f0a-6f1d2e3c4b5a".parse().unwrap());
        let (username, password) = credential(b"north", user, 1_700_000_000);
        assert_eq!(username, "1700000000:0b6f3c44-1e0c-4b8e-9f0a-6f1d2e3c4b5a");
        // `printf %s "$username" | openssl dgst -sha1 -hmac north -binary | base64`
        assert_eq!(password, "yCFdH3pLsAfwa0kbBFFTf/7gK98=");
    }
}
