//! Waiting without a worker: suspensions, signals and durable timers.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::model::ExecutionSnapshot;
use crate::names::{IdempotencyKey, SignalName};
use crate::policy::Limits;
use crate::time::Timestamp;

/// How the waitpoints of a suspension combine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitCondition {
    /// Every waitpoint needs a signal (the default).
    #[default]
    All,
    /// One signal to any waitpoint is enough.
    Any,
}

/// What the timeout of a suspension does when it passes first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnTimeout {
    /// The execution runs again (`waiting`); its claim says the wait timed
    /// out. The default, and what a durable sleep does.
    #[default]
    Resume,
    /// The execution fails for good with an error naming the waitpoints.
    Fail,
    /// The execution is cancelled (with its descendants) with a reason
    /// naming the waitpoints.
    Cancel,
}

macro_rules! text_enum {
    ($ty:ident, $field:literal, $($variant:ident => $text:literal),+) => {
        impl $ty {
            /// The name used in the API and in storage.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = EngineError;
            fn from_str(s: &str) -> Result<Self, EngineError> {
                match s {
                    $($text => Ok($ty::$variant),)+
                    other => Err(EngineError::invalid(
                        $field,
                        other,
                        concat!("expected one of", $(" ", $text),+),
                    )),
                }
            }
        }
    };
}

text_enum!(WaitCondition, "condition", All => "all", Any => "any");
text_enum!(OnTimeout, "on_timeout", Resume => "resume", Fail => "fail", Cancel => "cancel");

/// A lease holder's request to suspend: what it waits for and for how long.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SuspendRequest {
    /// The waitpoints (distinct, at most [`MAX_WAITPOINTS`](Self::MAX_WAITPOINTS));
    /// empty for a durable sleep, which then needs a timeout.
    pub waitpoints: Vec<SignalName>,
    /// How the waitpoints combine.
    pub condition: WaitCondition,
    /// How long to wait at most, from the suspend.
    pub timeout: Option<Duration>,
    /// What the timeout does.
    pub on_timeout: OnTimeout,
}

impl SuspendRequest {
    /// Most waitpoints one suspension names.
    pub const MAX_WAITPOINTS: usize = 16;
    /// Longest timeout: 366 days.
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(366 * 24 * 3600);

    /// Waits for a signal on each of `waitpoints` (condition `all`), with
    /// no timeout.
    ///
    /// ```
    /// use baton_core::{SignalName, SuspendRequest, OnTimeout};
    /// use std::time::Duration;
    /// let req = SuspendRequest::signals([SignalName::new("approval")?])
    ///     .with_timeout(Duration::from_secs(3600), OnTimeout::Fail);
    /// assert!(req.validate().is_ok());
    /// # Ok::<(), baton_core::EngineError>(())
    /// ```
    pub fn signals(waitpoints: impl IntoIterator<Item = SignalName>) -> Self {
        SuspendRequest {
            waitpoints: waitpoints.into_iter().collect(),
            condition: WaitCondition::All,
            timeout: None,
            on_timeout: OnTimeout::Resume,
        }
    }

    /// A durable sleep: no waitpoints, resumed when `duration` has passed.
    pub fn sleep(duration: Duration) -> Self {
        SuspendRequest {
            waitpoints: Vec::new(),
            condition: WaitCondition::All,
            timeout: Some(duration),
            on_timeout: OnTimeout::Resume,
        }
    }

    /// Sets the condition.
    pub fn with_condition(mut self, condition: WaitCondition) -> Self {
        self.condition = condition;
        self
    }

    /// Sets the timeout and what it does.
    pub fn with_timeout(mut self, timeout: Duration, on_timeout: OnTimeout) -> Self {
        self.timeout = Some(timeout);
        self.on_timeout = on_timeout;
        self
    }

    /// Checks the waitpoints (distinct, at most
    /// [`MAX_WAITPOINTS`](Self::MAX_WAITPOINTS)) and the timeout (1 ms to
    /// [`MAX_TIMEOUT`](Self::MAX_TIMEOUT); required without waitpoints).
    pub fn validate(&self) -> Result<(), EngineError> {
        if self.waitpoints.len() > Self::MAX_WAITPOINTS {
            return Err(EngineError::invalid(
                "waitpoints",
                self.waitpoints.len(),
                format!(
                    "a suspension names at most {} waitpoints",
                    Self::MAX_WAITPOINTS
                ),
            ));
        }
        let mut seen = BTreeSet::new();
        if let Some(twice) = self.waitpoints.iter().find(|w| !seen.insert(*w)) {
            return Err(EngineError::invalid(
                "waitpoints",
                twice,
                format!("waitpoint {twice} is named twice"),
            ));
        }
        match self.timeout {
            None if self.waitpoints.is_empty() => Err(EngineError::invalid(
                "timeout_ms",
                "null",
                "a suspension without waitpoints is a sleep and needs a timeout",
            )),
            Some(t) if t < Duration::from_millis(1) || t > Self::MAX_TIMEOUT => {
                Err(EngineError::invalid(
                    "timeout_ms",
                    t.as_millis(),
                    format!(
                        "the timeout must be between 1 ms and {} ms",
                        Self::MAX_TIMEOUT.as_millis()
                    ),
                ))
            }
            _ => Ok(()),
        }
    }
}

/// The wait of a `suspended` execution, as stored: the snapshot's
/// `suspension`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suspension {
    /// The waitpoints, in the order the suspend named them.
    pub waitpoints: Vec<SignalName>,
    /// How they combine.
    pub condition: WaitCondition,
    /// When the timeout passes, if there is one.
    pub timeout_at: Option<Timestamp>,
    /// What the timeout does.
    pub on_timeout: OnTimeout,
}

impl Suspension {
    /// A sentence naming what the execution waits for.
    pub fn describe(&self) -> String {
        let names: Vec<&str> = self.waitpoints.iter().map(|w| w.as_str()).collect();
        let what = match (names.len(), self.condition) {
            (0, _) => "a timer".to_string(),
            (1, _) => format!("signal {}", names[0]),
            (_, WaitCondition::All) => format!("signals {} (all of them)", names.join(", ")),
            (_, WaitCondition::Any) => format!("signals {} (any of them)", names.join(", ")),
        };
        match self.timeout_at {
            Some(at) if names.is_empty() => format!("sleeping until {at}"),
            Some(at) => format!(
                "waiting for {what}; at {at} the wait times out and the execution {}",
                match self.on_timeout {
                    OnTimeout::Resume => "runs again",
                    OnTimeout::Fail => "fails",
                    OnTimeout::Cancel => "is cancelled",
                }
            ),
            None => format!("waiting for {what}"),
        }
    }
}

/// A signal to deliver to an execution.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewSignal {
    /// The waitpoint it is for.
    pub name: SignalName,
    /// JSON payload bytes (bounded by [`Limits::max_payload_bytes`]).
    pub payload: Vec<u8>,
    /// Makes delivery idempotent per execution: a signal whose key the
    /// execution already holds is a [`SignalOutcome::Duplicate`].
    pub idempotency_key: Option<IdempotencyKey>,
}

impl NewSignal {
    /// A signal named `name` with `payload` and no idempotency key.
    pub fn new(name: SignalName, payload: impl Into<Vec<u8>>) -> Self {
        NewSignal {
            name,
            payload: payload.into(),
            idempotency_key: None,
        }
    }

    /// Sets the idempotency key.
    pub fn with_idempotency_key(mut self, key: IdempotencyKey) -> Self {
        self.idempotency_key = Some(key);
        self
    }

    /// Checks the payload size.
    pub fn validate(&self, limits: &Limits) -> Result<(), EngineError> {
        limits.check_payload("payload", self.payload.len())
    }
}

/// What a delivered signal did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalOutcome {
    /// Stored, and it completed the wait of the suspended execution, which
    /// is `waiting` now.
    Resumed,
    /// Stored for a later (or the current, still unsatisfied) wait.
    Buffered,
    /// The execution already holds a signal with this idempotency key;
    /// nothing changed.
    Duplicate,
    /// The execution is terminal; nothing was stored.
    Ignored,
}

text_enum!(SignalOutcome, "outcome", Resumed => "resumed", Buffered => "buffered",
    Duplicate => "duplicate", Ignored => "ignored");

/// A signal an execution holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signal {
    /// Its number among the execution's signals, from 1, in arrival order.
    pub seq: u32,
    /// Its waitpoint name.
    pub name: SignalName,
    /// JSON payload bytes.
    pub payload: Vec<u8>,
    /// The key it was delivered with.
    pub idempotency_key: Option<IdempotencyKey>,
    /// When it arrived.
    pub received_at: Timestamp,
    /// The wait (1-based, see [`Claim::waits`](crate::Claim::waits)) that
    /// consumed it; `None` while buffered.
    pub wait: Option<u32>,
}

/// How one ended wait of an execution ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitEnded {
    /// Signals satisfied its condition.
    Signalled,
    /// Its timeout passed first and resumed it.
    TimedOut,
}

text_enum!(WaitEnded, "wait", Signalled => "signalled", TimedOut => "timed_out");

/// The answer of [`EngineBackend::suspend`](crate::EngineBackend::suspend).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SuspendOutcome {
    /// The execution is `suspended`; the lease is dead.
    Suspended(ExecutionSnapshot),
    /// Signals delivered earlier already satisfy the condition: they are
    /// consumed by this wait and answered; the execution stays `running`
    /// and the lease stays valid.
    Satisfied {
        /// The running snapshot.
        snapshot: ExecutionSnapshot,
        /// The signals consumed, oldest first.
        signals: Vec<Signal>,
    },
}

impl SuspendOutcome {
    /// The snapshot either way.
    pub fn snapshot(&self) -> &ExecutionSnapshot {
        match self {
            SuspendOutcome::Suspended(s) | SuspendOutcome::Satisfied { snapshot: s, .. } => s,
        }
    }
}
