//! Routing: handler versions ([`Version`], [`VersionRange`]) and session
//! locks ([`SessionLock`]).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::EngineError;
use crate::names::WorkerId;
use crate::time::Timestamp;

/// The version of the handler an execution was written for: one to four
/// dot-separated numbers (`2`, `2.1`, `2.1.7`, `2.1.7.3`), each at most
/// 999,999,999, without leading zeros.
///
/// Versions compare number by number, a missing number counting as 0, so
/// `2.1` equals `2.1.0`; each keeps the text it was given for display.
/// Stored beside it is a [sortable key](Self::sort_key) in which text order
/// is version order, so a claim filters by a range without parsing.
///
/// ```
/// use baton_core::Version;
/// let v: Version = "2.1".parse().unwrap();
/// assert!(v < "2.10".parse().unwrap());
/// assert_eq!(v, "2.1.0".parse().unwrap());
/// assert_eq!(v.to_string(), "2.1");
/// assert!("2.01".parse::<Version>().is_err());
/// assert!("v2".parse::<Version>().is_err());
/// ```
#[derive(Clone)]
pub struct Version {
    text: String,
    parts: [u32; Version::MAX_PARTS],
}

impl Version {
    /// Most numbers in a version.
    pub const MAX_PARTS: usize = 4;
    /// Largest number of one part.
    pub const MAX_PART: u32 = 999_999_999;

    /// Parses `text` (see the type's rules).
    pub fn new(text: &str) -> Result<Self, EngineError> {
        let bad = |why: &str| {
            EngineError::invalid(
                "version",
                text,
                format!("{why}; a version is 1 to 4 dot-separated numbers, like 2 or 2.1.7"),
            )
        };
        let mut parts = [0u32; Self::MAX_PARTS];
        for (n, piece) in text.split('.').enumerate() {
            if n == Self::MAX_PARTS {
                return Err(bad("more than 4 numbers"));
            }
            if piece.is_empty() || !piece.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("each part must be a number"));
            }
            if piece.len() > 1 && piece.starts_with('0') {
                return Err(bad("a number must not have leading zeros"));
            }
            let value: u32 = piece
                .parse()
                .ok()
                .filter(|v| *v <= Self::MAX_PART)
                .ok_or_else(|| bad("a number is at most 999999999"))?;
            parts[n] = value;
        }
        Ok(Version {
            text: text.to_owned(),
            parts,
        })
    }

    /// The version as it was given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// A key whose text order is version order: four 9-digit numbers joined
    /// by dots (`2.1` → `000000002.000000001.000000000.000000000`). SQL
    /// backends store it beside the version and Valkey compares it in Lua.
    pub fn sort_key(&self) -> String {
        let p = &self.parts;
        format!("{:09}.{:09}.{:09}.{:09}", p[0], p[1], p[2], p[3])
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.parts == other.parts
    }
}

impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.parts.cmp(&other.parts)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({:?})", self.text)
    }
}

impl FromStr for Version {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self, EngineError> {
        Version::new(s)
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Version::new(&s).map_err(serde::de::Error::custom)
    }
}

/// The handler versions a claim accepts, both ends inclusive; an open end
/// accepts everything on its side, so the default (both open) accepts
/// every execution.
///
/// An execution without a version is compatible with every range (any
/// handler runs it); one with a version only with ranges that contain it.
///
/// ```
/// use baton_core::{Version, VersionRange};
/// let v = |t: &str| t.parse::<Version>().unwrap();
/// let range = VersionRange::between(Some(v("2")), Some(v("2.999")));
/// assert!(range.accepts(Some(&v("2.4"))));
/// assert!(!range.accepts(Some(&v("3"))));
/// assert!(range.accepts(None));
/// assert!(VersionRange::any().accepts(Some(&v("3"))));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionRange {
    /// Lowest version accepted; `None`: no lower bound.
    pub min: Option<Version>,
    /// Highest version accepted; `None`: no upper bound.
    pub max: Option<Version>,
}

impl VersionRange {
    /// The range that accepts every version.
    pub fn any() -> Self {
        VersionRange::default()
    }

    /// The range from `min` to `max`, both inclusive.
    pub fn between(min: Option<Version>, max: Option<Version>) -> Self {
        VersionRange { min, max }
    }

    /// Whether both ends are open.
    pub fn is_any(&self) -> bool {
        self.min.is_none() && self.max.is_none()
    }

    /// Whether a claim with this range may take an execution of `version`.
    pub fn accepts(&self, version: Option<&Version>) -> bool {
        let Some(v) = version else { return true };
        self.min.as_ref().is_none_or(|min| v >= min) && self.max.as_ref().is_none_or(|max| v <= max)
    }

    /// Rejects a range whose `min` is above its `max` (it accepts nothing
    /// versioned, which is never what a worker means).
    pub fn check(&self) -> Result<(), EngineError> {
        if let (Some(min), Some(max)) = (&self.min, &self.max)
            && min > max
        {
            return Err(EngineError::invalid(
                "versions",
                format!("{min}..{max}"),
                "the lowest version accepted must not be above the highest",
            ));
        }
        Ok(())
    }

    /// The range as text, `min..max` with an open end left empty (`2..`,
    /// `..3.1`, `..`): how the workers registry stores it.
    pub fn to_stored(&self) -> String {
        let end = |v: &Option<Version>| v.as_ref().map(|v| v.to_string()).unwrap_or_default();
        format!("{}..{}", end(&self.min), end(&self.max))
    }

    /// Reads [`to_stored`](Self::to_stored)'s text; empty text is the open
    /// range (a worker recorded before ranges existed).
    pub fn from_stored(ctx: &str, text: &str) -> Result<Self, EngineError> {
        if text.is_empty() {
            return Ok(VersionRange::any());
        }
        let bad = || EngineError::corruption(format!("{ctx}: version range {text:?}"));
        let (min, max) = text.split_once("..").ok_or_else(bad)?;
        let end = |t: &str| -> Result<Option<Version>, EngineError> {
            if t.is_empty() {
                Ok(None)
            } else {
                Version::new(t).map(Some).map_err(|_| bad())
            }
        };
        Ok(VersionRange {
            min: end(min)?,
            max: end(max)?,
        })
    }
}

impl fmt::Display for VersionRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_stored())
    }
}

/// Who owns a session now: the answer an explanation gives for waiting
/// work of a session another worker holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionLock {
    /// The worker whose claims alone take the session's work.
    pub worker_id: WorkerId,
    /// When the lock lapses unless the owner claims or renews more of the
    /// session's work.
    pub expires_at: Timestamp,
}

/// How long a worker keeps a session after its last claim or renew of the
/// session's work when its claim names no other time.
pub const DEFAULT_SESSION_IDLE: Duration = Duration::from_secs(30);
/// Shortest session idle time a claim may ask for.
pub const MIN_SESSION_IDLE: Duration = Duration::from_secs(1);
/// Longest session idle time a claim may ask for.
pub const MAX_SESSION_IDLE: Duration = Duration::from_secs(3600);

#[cfg(test)]
mod tests {
    use super::*;

    fn v(t: &str) -> Version {
        Version::new(t).unwrap()
    }

    #[test]
    fn versions_parse_strictly_and_order_by_number() {
        for bad in [
            "",
            ".",
            "1.",
            ".1",
            "1..2",
            "1.2.3.4.5",
            "01",
            "1.02",
            "-1",
            "1.a",
            "1e3",
            " 1",
            "1000000000",
        ] {
            assert!(Version::new(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(v("0") < v("0.0.0.1"));
        assert!(v("1.9") < v("1.10"));
        assert!(v("2") > v("1.999999999.999999999.999999999"));
        assert_eq!(v("3"), v("3.0.0.0"));
        assert_eq!(v("999999999.0").as_str(), "999999999.0");
        let mut all = vec![v("10"), v("2.1"), v("2"), v("2.0.1"), v("1.10"), v("1.9")];
        let mut by_key = all.clone();
        all.sort();
        by_key.sort_by_key(|x| x.sort_key());
        assert_eq!(all, by_key, "the sort key orders as versions do");
        let text: Vec<&str> = all.iter().map(Version::as_str).collect();
        assert_eq!(text, ["1.9", "1.10", "2", "2.0.1", "2.1", "10"]);
    }

    #[test]
    fn ranges_are_stored_as_text_and_checked() {
        let r = VersionRange::between(Some(v("2")), None);
        assert_eq!(r.to_stored(), "2..");
        assert_eq!(VersionRange::from_stored("w", "2..").unwrap(), r);
        assert_eq!(
            VersionRange::from_stored("w", "").unwrap(),
            VersionRange::any()
        );
        assert_eq!(
            VersionRange::from_stored("w", "..").unwrap(),
            VersionRange::any()
        );
        assert_eq!(
            VersionRange::from_stored("w", "..1.5").unwrap(),
            VersionRange::between(None, Some(v("1.5")))
        );
        assert!(VersionRange::from_stored("w", "2").is_err());
        assert!(VersionRange::from_stored("w", "x..").is_err());
        assert!(
            VersionRange::between(Some(v("2")), Some(v("1")))
                .check()
                .is_err()
        );
        assert!(
            VersionRange::between(Some(v("2")), Some(v("2.0")))
                .check()
                .is_ok()
        );
        let json: Version = serde_json::from_str("\"4.2\"").unwrap();
        assert_eq!(serde_json::to_string(&json).unwrap(), "\"4.2\"");
        assert!(serde_json::from_str::<Version>("\"4.02\"").is_err());
    }
}
