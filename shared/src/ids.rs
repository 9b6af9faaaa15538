//! Newtype identifiers of the domain: users, channels, messages, per-channel sequence numbers
//! and the client's own message ids, so that no function can mix one up with another.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn new_random() -> Self {
                Self(Uuid::new_v4())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// A user account.
    UserId
);
uuid_id!(
    /// A channel: a dm, a group or a public channel.
    ChannelId
);
uuid_id!(
    /// An uploaded file, attachable to its owner's messages.
    UploadId
);

/// A message's Snowflake id. Serialised as a decimal string, because JavaScript numbers lose
/// precision above 2^53.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, sqlx::Type)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    // Decimal digits that parse as an i64 (leading zeros allowed): up to 9223372036854775807.
    schema(
        value_type = String,
        example = "7163478829027872768",
        pattern = r"^0*(?:[0-9]{1,18}|[0-8][0-9]{18}|9[0-1][0-9]{17}|92[0-1][0-9]{16}|922[0-2][0-9]{15}|9223[0-2][0-9]{14}|92233[0-6][0-9]{13}|922337[0-1][0-9]{12}|92233720[0-2][0-9]{10}|922337203[0-5][0-9]{9}|9223372036[0-7][0-9]{8}|92233720368[0-4][0-9]{7}|922337203685[0-3][0-9]{6}|9223372036854[0-6][0-9]{5}|92233720368547[0-6][0-9]{4}|922337203685477[0-4][0-9]{3}|9223372036854775[0-7][0-9]{2}|922337203685477580[0-6]|9223372036854775807)$"
    )
)]
#[sqlx(transparent)]
pub struct MessageId(pub i64);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for MessageId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for MessageId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr<'a> {
            Str(&'a str),
            Owned(String),
            Num(i64),
        }
        let parse = |s: &str| s.parse::<i64>().map(MessageId).map_err(serde::de::Error::custom);
        match Repr::deserialize(d)? {
            Repr::Str(s) => parse(s),
            Repr::Owned(s) => parse(&s),
            Repr::Num(n) => Ok(MessageId(n)),
        }
    }
}

/// A message's position in its channel: 1, 2, 3, … without holes.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
#[sqlx(transparent)]
pub struct ChannelSeq(pub i64);

/// The id a client gives a message it sends: its idempotency key, unique per sender and channel.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
#[sqlx(transparent)]
pub struct ClientMsgId(pub String);

impl ClientMsgId {
    /// Longest client id accepted, in bytes.
    pub const MAX_LEN: usize = 64;

    /// Checks the length and charset: 1–64 printable ASCII characters.
    pub fn is_valid(&self) -> bool {
        (1..=Self::MAX_LEN).contains(&self.0.len()) && self.0.bytes().all(|b| b.is_ascii_graphic())
    }
}

impl fmt::Display for ClientMsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn message_id_round_trips_as_a_string(n in any::<i64>()) {
            let json = serde_json::to_string(&MessageId(n)).unwrap();
            prop_assert_eq!(&json, &format!("\"{n}\""));
            prop_assert_eq!(serde_json::from_str::<MessageId>(&json).unwrap(), MessageId(n));
        }
    }

    #[test]
    fn client_msg_id_rejects_empty_long_and_control_characters() {
        assert!(ClientMsgId("abc-1".into()).is_valid());
        assert!(!ClientMsgId(String::new()).is_valid());
        assert!(!ClientMsgId("x".repeat(65)).is_valid());
        assert!(ClientMsgId("x".repeat(64)).is_valid());
        assert!(!ClientMsgId("a b".into()).is_valid());
        assert!(!ClientMsgId("a\nb".into()).is_valid());
    }
}
