//! Limits: how many executions of one key may run at once, and how many
//! may start in a window. See
//! [`AdminBackend::set_limit`](crate::AdminBackend::set_limit).

use std::time::Duration;

use crate::error::EngineError;
use crate::names::{Lane, LimitName, Namespace, TagKey};
use crate::time::Timestamp;

/// What a limit counts an execution under.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LimitKey {
    /// The value of one of its tags (`tag:tenant` counts the executions
    /// tagged `tenant=acme` under `acme`); an execution without the tag is
    /// not limited by it.
    Tag(TagKey),
    /// Its kind.
    Kind,
    /// Its lane.
    Lane,
}

impl std::fmt::Display for LimitKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LimitKey::Tag(k) => write!(f, "tag:{k}"),
            LimitKey::Kind => f.write_str("kind"),
            LimitKey::Lane => f.write_str("lane"),
        }
    }
}

impl std::str::FromStr for LimitKey {
    type Err = EngineError;

    /// `tag:<key>`, `kind` or `lane`.
    ///
    /// ```
    /// use baton_core::LimitKey;
    /// let key: LimitKey = "tag:tenant".parse().unwrap();
    /// assert_eq!(key.to_string(), "tag:tenant");
    /// assert!("color".parse::<LimitKey>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "kind" => Ok(LimitKey::Kind),
            "lane" => Ok(LimitKey::Lane),
            _ => match s.strip_prefix("tag:") {
                Some(tag) => TagKey::new(tag).map(LimitKey::Tag).map_err(|e| {
                    EngineError::invalid("key", s, format!("the tag key is not valid: {e}"))
                }),
                None => Err(EngineError::invalid(
                    "key",
                    s,
                    "a limit counts by \"tag:<key>\", \"kind\" or \"lane\"",
                )),
            },
        }
    }
}

/// At most `count` claims of one key in any window of `per`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Claims allowed in a window (1..=[`Rate::MAX_COUNT`]).
    pub count: u32,
    /// The window's length ([`Rate::MIN_PER`]..=[`Rate::MAX_PER`], whole
    /// milliseconds).
    pub per: Duration,
}

impl Rate {
    /// The most claims a window may allow: each is remembered until it
    /// leaves the window.
    pub const MAX_COUNT: u32 = 10_000;
    /// The shortest window.
    pub const MIN_PER: Duration = Duration::from_millis(1);
    /// The longest window: a day.
    pub const MAX_PER: Duration = Duration::from_secs(86_400);
}

/// A named limit of one namespace (and optionally one lane): claims take an
/// execution only while every limit that covers it has room for its key.
///
/// A *fair* limit also shares claims out between its keys: work of a key
/// that submitted a lot waits its turn behind the others instead of ahead
/// of them (see [`fair`](Self::fair)). A limit may be fair only, with
/// neither cap nor rate.
///
/// ```
/// use baton_core::{Limit, LimitKey, Rate};
/// use std::time::Duration;
/// let limit = Limit {
///     name: "per-tenant".parse().unwrap(),
///     namespace: "shop".parse().unwrap(),
///     lane: None,
///     key: "tag:tenant".parse().unwrap(),
///     max_running: Some(5),
///     rate: Some(Rate { count: 100, per: Duration::from_secs(1) }),
///     fair: true,
/// };
/// assert!(limit.check().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limit {
    /// Its name, unique in the deployment.
    pub name: LimitName,
    /// The namespace whose executions it covers.
    pub namespace: Namespace,
    /// The one lane it covers; `None`: every lane of the namespace.
    pub lane: Option<Lane>,
    /// What it counts executions under.
    pub key: LimitKey,
    /// How many executions of one key may run at once (0 holds the key's
    /// work back entirely); `None`: no cap.
    pub max_running: Option<u32>,
    /// How many claims of one key a window allows; `None`: no rate.
    pub rate: Option<Rate>,
    /// Whether claims take turns between its keys. Each execution entering
    /// `waiting` in a lane the limit covers is given a turn: right after
    /// the key's own waiting work at its priority, and never before the
    /// lane's current head — so a key with a deep backlog is served one
    /// execution per round while others have work, and a key that arrives
    /// late starts at the head rather than behind everyone. Priority still
    /// comes first: turns order work within one priority. An execution
    /// without the key's tag takes turns as the key `""`. When several fair
    /// limits cover a lane, the first by name decides; work already
    /// waiting when a fair limit is set keeps its place.
    pub fair: bool,
}

impl Limit {
    /// The most limits a deployment may hold: a claim in a limited lane
    /// reads those of its namespace.
    pub const MAX_LIMITS: usize = 100;
    /// The largest cap a limit may name.
    pub const MAX_RUNNING: u32 = 1_000_000;

    /// `InvalidInput` unless the limit names a cap, a rate or fairness (or
    /// several), each within bounds.
    pub fn check(&self) -> Result<(), EngineError> {
        if !self.holds_back() && !self.fair {
            return Err(EngineError::invalid(
                "max_running",
                "null",
                format!(
                    "limit {} names neither max_running nor rate and is not fair; \
                     give a cap, a rate or fair (or several)",
                    self.name
                ),
            ));
        }
        if let Some(max) = self.max_running.filter(|m| *m > Self::MAX_RUNNING) {
            return Err(EngineError::invalid(
                "max_running",
                max.to_string(),
                format!("a cap is at most {}", Self::MAX_RUNNING),
            ));
        }
        if let Some(rate) = self.rate {
            if rate.count == 0 || rate.count > Rate::MAX_COUNT {
                return Err(EngineError::invalid(
                    "rate.count",
                    rate.count.to_string(),
                    format!("a rate allows 1..={} claims per window", Rate::MAX_COUNT),
                ));
            }
            if rate.per < Rate::MIN_PER
                || rate.per > Rate::MAX_PER
                || !rate.per.subsec_nanos().is_multiple_of(1_000_000)
            {
                return Err(EngineError::invalid(
                    "rate.per_ms",
                    format!("{:?}", rate.per),
                    "a rate's window is 1 ms..=1 day, in whole milliseconds",
                ));
            }
        }
        Ok(())
    }

    /// Whether the limit may hold work back (it names a cap or a rate): a
    /// limit that is only fair orders work but never keeps it waiting, so
    /// claims in its lanes take the path of claims without limits.
    pub fn holds_back(&self) -> bool {
        self.max_running.is_some() || self.rate.is_some()
    }

    /// Whether the limit covers work of `lane` (its own lane, or every lane
    /// when it names none).
    pub fn covers(&self, lane: &Lane) -> bool {
        self.lane.as_ref().is_none_or(|l| l == lane)
    }
}

/// How one key of a limit stands now, as
/// [`limit_usage`](crate::AdminBackend::limit_usage) reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitUsage {
    /// The limit.
    pub name: LimitName,
    /// The key's value (a tag's value, a kind, a lane).
    pub key_value: String,
    /// Executions of the key running now.
    pub running: u64,
    /// Claims of the key in the rate's window ending now (0 without a
    /// rate).
    pub window_claims: u32,
}

/// Why a limit holds a waiting execution back, for
/// [`explain`](crate::AdminBackend::explain).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitedBy {
    /// The limit without room.
    pub limit: LimitName,
    /// The key the execution counts under.
    pub key_value: String,
    /// Executions of the key running now.
    pub running: u64,
    /// The limit's cap, when the cap is what is full.
    pub max_running: Option<u32>,
    /// When the rate's window has room again, when the rate is what is
    /// full (`None` when the cap is: room comes when a run ends).
    pub until: Option<Timestamp>,
}
