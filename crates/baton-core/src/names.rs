//! Validated names. A value of these types has passed validation, so backends
//! store it without re-checking and every backend accepts exactly the same set.
//!
//! | type | characters | length (bytes) |
//! |---|---|---|
//! | [`Namespace`], [`Lane`] | `A-Z a-z 0-9 _ - .` | 1–64 |
//! | [`Kind`], [`StepName`], [`StateKey`] | `A-Z a-z 0-9 _ - . :` | 1–128 |
//! | [`TagKey`], [`CapabilityName`], [`SignalName`] | `A-Z a-z 0-9 _ - . :` | 1–64 |
//! | [`WorkerId`], [`NodeId`] | `A-Z a-z 0-9 _ - . : @ /` | 1–128 |
//! | [`IdempotencyKey`], [`ChildKey`] | any printable, no control characters | 1–256 |

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::EngineError;

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:expr, $allowed:expr, $charset_text:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Longest accepted value, in bytes.
            pub const MAX_LEN: usize = $max;

            /// Validates and wraps `value`.
            pub fn new(value: impl Into<String>) -> Result<Self, EngineError> {
                let value = value.into();
                validate(&value, $field, Self::MAX_LEN, $allowed, $charset_text)?;
                Ok($name(value))
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = EngineError;
            fn from_str(s: &str) -> Result<Self, EngineError> {
                $name::new(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

fn validate(
    value: &str,
    field: &'static str,
    max: usize,
    allowed: fn(char) -> bool,
    charset: &str,
) -> Result<(), EngineError> {
    if value.is_empty() {
        return Err(EngineError::invalid(
            field,
            value,
            format!("{field} must not be empty"),
        ));
    }
    if value.len() > max {
        return Err(EngineError::invalid(
            field,
            value,
            format!("{field} is {} bytes long; the limit is {max}", value.len()),
        ));
    }
    if let Some(c) = value.chars().find(|c| !allowed(*c)) {
        return Err(EngineError::invalid(
            field,
            value,
            format!("{field} contains {c:?}; allowed characters are {charset}"),
        ));
    }
    Ok(())
}

fn simple(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

fn with_colon(c: char) -> bool {
    simple(c) || c == ':'
}

fn worker_chars(c: char) -> bool {
    with_colon(c) || matches!(c, '@' | '/')
}

fn printable(c: char) -> bool {
    !c.is_control()
}

name_type!(
    /// A tenant boundary; every read and write is scoped by one.
    ///
    /// ```
    /// use baton_core::Namespace;
    /// assert!(Namespace::new("billing").is_ok());
    /// assert!(Namespace::new("").is_err());
    /// assert!(Namespace::new("has space").is_err());
    /// ```
    Namespace, "namespace", 64, simple, "A-Z a-z 0-9 _ - ."
);
name_type!(
    /// The name of a limit (deployment-wide: a name names one limit, of
    /// one namespace).
    ///
    /// ```
    /// use baton_core::LimitName;
    /// assert!(LimitName::new("per-tenant").is_ok());
    /// assert!(LimitName::new("a/b").is_err());
    /// ```
    LimitName, "limit", 64, simple, "A-Z a-z 0-9 _ - ."
);
name_type!(
    /// A named queue inside a namespace; workers claim from lanes.
    ///
    /// ```
    /// use baton_core::Lane;
    /// assert_eq!(Lane::new("emails").unwrap().as_str(), "emails");
    /// assert!(Lane::new("a/b").is_err());
    /// ```
    Lane, "lane", 64, simple, "A-Z a-z 0-9 _ - ."
);
name_type!(
    /// The handler name of an execution, such as `email.send`.
    ///
    /// ```
    /// use baton_core::Kind;
    /// assert!(Kind::new("email.send").is_ok());
    /// assert!(Kind::new("x".repeat(129)).is_err());
    /// ```
    Kind, "kind", 128, with_colon, "A-Z a-z 0-9 _ - . :"
);
name_type!(
    /// The key of a tag. Tag values are free text up to
    /// [`MAX_TAG_VALUE_LEN`] bytes.
    ///
    /// ```
    /// use baton_core::TagKey;
    /// assert!(TagKey::new("customer").is_ok());
    /// assert!(TagKey::new("no=way").is_err());
    /// ```
    TagKey, "tag key", 64, with_colon, "A-Z a-z 0-9 _ - . :"
);
name_type!(
    /// A capability a worker offers and an execution may require.
    ///
    /// ```
    /// use baton_core::CapabilityName;
    /// assert!(CapabilityName::new("gpu").is_ok());
    /// ```
    CapabilityName, "capability", 64, with_colon, "A-Z a-z 0-9 _ - . :"
);
name_type!(
    /// The name of a checkpointed step of an execution, unique within it.
    ///
    /// ```
    /// use baton_core::StepName;
    /// assert!(StepName::new("charge:card").is_ok());
    /// assert!(StepName::new("no spaces").is_err());
    /// ```
    StepName, "step", 128, with_colon, "A-Z a-z 0-9 _ - . :"
);
name_type!(
    /// The key of an entry of an execution's key-value state.
    ///
    /// ```
    /// use baton_core::StateKey;
    /// assert!(StateKey::new("cursor:page").is_ok());
    /// assert!(StateKey::new("no spaces").is_err());
    /// ```
    StateKey, "state key", 128, with_colon, "A-Z a-z 0-9 _ - . :"
);
name_type!(
    /// The name of a waitpoint a suspended execution waits on, and of the
    /// signals delivered to it.
    ///
    /// ```
    /// use baton_core::SignalName;
    /// assert!(SignalName::new("approval").is_ok());
    /// assert!(SignalName::new("no spaces").is_err());
    /// ```
    SignalName, "signal", 64, with_colon, "A-Z a-z 0-9 _ - . :"
);
name_type!(
    /// The identity of a worker process, recorded on every attempt it makes.
    ///
    /// ```
    /// use baton_core::WorkerId;
    /// assert!(WorkerId::new("host-1/pid-42").is_ok());
    /// ```
    WorkerId, "worker_id", 128, worker_chars, "A-Z a-z 0-9 _ - . : @ /"
);
name_type!(
    /// The identity of one engine process (`baton serve`), under which it
    /// holds partition ownership leases.
    ///
    /// ```
    /// use baton_core::NodeId;
    /// assert!(NodeId::new("host-1:7420/pid-42").is_ok());
    /// ```
    NodeId, "node_id", 128, worker_chars, "A-Z a-z 0-9 _ - . : @ /"
);
name_type!(
    /// A client-chosen key that makes submission idempotent within a
    /// namespace and lane.
    ///
    /// ```
    /// use baton_core::IdempotencyKey;
    /// assert!(IdempotencyKey::new("order-42/charge").is_ok());
    /// assert!(IdempotencyKey::new("line\nbreak").is_err());
    /// ```
    IdempotencyKey, "idempotency_key", 256, printable, "any printable character"
);
name_type!(
    /// A key that deduplicates children among one parent's children: a
    /// second child with the same parent and key answers the first.
    ///
    /// ```
    /// use baton_core::ChildKey;
    /// assert!(ChildKey::new("shard-7").is_ok());
    /// assert!(ChildKey::new("").is_err());
    /// ```
    ChildKey, "child_key", 256, printable, "any printable character"
);
name_type!(
    /// A session: executions that carry the same session (in one namespace)
    /// go to the worker that owns it while its lock is live, so a worker
    /// keeping per-session state in memory sees all of the session's work.
    ///
    /// ```
    /// use baton_core::SessionName;
    /// assert!(SessionName::new("chat/user@42").is_ok());
    /// assert!(SessionName::new("two words").is_err());
    /// ```
    SessionName, "session", 128, worker_chars, "A-Z a-z 0-9 _ - . : @ /"
);

impl NodeId {
    /// A random node id, `node-<16 hex digits>`, for processes that were
    /// given none.
    pub fn generate() -> Self {
        NodeId(format!("node-{:016x}", crate::LeaseToken::random_nonce()))
    }
}

/// Longest accepted tag value, in bytes.
pub const MAX_TAG_VALUE_LEN: usize = 256;
/// Most tags one execution may carry.
pub const MAX_TAGS: usize = 32;
/// Most capabilities one execution may require or one worker may offer.
pub const MAX_CAPABILITIES: usize = 32;

/// Checks a tag value: at most [`MAX_TAG_VALUE_LEN`] bytes, no control
/// characters.
pub fn validate_tag_value(value: &str) -> Result<(), EngineError> {
    if value.len() > MAX_TAG_VALUE_LEN {
        return Err(EngineError::invalid(
            "tag value",
            value,
            format!("tag values are limited to {MAX_TAG_VALUE_LEN} bytes"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(EngineError::invalid(
            "tag value",
            value,
            "tag values must not contain control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field_and_value() {
        let err = Lane::new("bad lane").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("lane"), "{text}");
        assert!(text.contains("bad lane"), "{text}");
        let err = Namespace::new("x".repeat(65)).unwrap_err();
        assert!(err.to_string().contains("limit is 64"), "{err}");
    }

    #[test]
    fn serde_validates() {
        assert!(serde_json::from_str::<Lane>("\"ok\"").is_ok());
        assert!(serde_json::from_str::<Lane>("\"not ok\"").is_err());
    }
}
