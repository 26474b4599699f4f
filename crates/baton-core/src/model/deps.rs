//! Dependencies: an execution that runs after others of its flow finish.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::state::State;

/// How many upstream executions must complete before a dependent runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DependencyMode {
    /// Every upstream must complete (the default).
    #[default]
    AllOf,
    /// One completed upstream is enough.
    AnyOf,
    /// At least `k` upstreams must complete, `1 <= k <= n`.
    Quorum(u32),
}

/// What a dependent does once its dependencies can no longer be met (too
/// many upstreams finished other than `completed`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamFailure {
    /// It becomes `skipped` (terminal), and its own dependents see an
    /// upstream that did not complete (the default).
    #[default]
    Skip,
    /// It becomes `failed` (terminal) without running.
    Fail,
    /// It runs anyway; its claim carries the upstreams' outcomes.
    Run,
}

impl UpstreamFailure {
    /// The name on the wire: `skip`, `fail` or `run`.
    pub const fn as_str(self) -> &'static str {
        match self {
            UpstreamFailure::Skip => "skip",
            UpstreamFailure::Fail => "fail",
            UpstreamFailure::Run => "run",
        }
    }
}

/// When a dependent runs: its [`DependencyMode`] and what an unmeetable
/// policy does. The default is `all_of` / `skip`.
///
/// Its stored form (SQL column, Valkey field) is text such as `all_of;skip`
/// or `quorum:2;run`:
///
/// ```
/// use baton_core::{DependencyMode, DependencyPolicy, UpstreamFailure};
/// let p = DependencyPolicy::new(DependencyMode::Quorum(2), UpstreamFailure::Run);
/// assert_eq!(p.to_string(), "quorum:2;run");
/// assert_eq!("quorum:2;run".parse::<DependencyPolicy>().unwrap(), p);
/// assert_eq!(DependencyPolicy::default().to_string(), "all_of;skip");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DependencyPolicy {
    /// How many upstreams must complete.
    pub mode: DependencyMode,
    /// What happens when that can no longer be met.
    pub on_upstream_failure: UpstreamFailure,
}

impl DependencyPolicy {
    /// A policy from its two parts.
    pub const fn new(mode: DependencyMode, on_upstream_failure: UpstreamFailure) -> Self {
        DependencyPolicy {
            mode,
            on_upstream_failure,
        }
    }

    /// How many completed upstreams (of `total`) release the dependent.
    pub fn needed(&self, total: u32) -> u32 {
        match self.mode {
            DependencyMode::AllOf => total,
            DependencyMode::AnyOf => total.min(1),
            DependencyMode::Quorum(k) => k,
        }
    }

    /// Checks the policy against `total` dependencies: a quorum needs
    /// `1 <= k <= total`.
    pub fn check(&self, total: usize) -> Result<(), EngineError> {
        if let DependencyMode::Quorum(k) = self.mode
            && (k == 0 || k as usize > total)
        {
            return Err(EngineError::invalid(
                "dependency_policy.k",
                k,
                format!(
                    "a quorum needs between 1 and the number of dependencies ({total}) \
                     upstream executions to complete"
                ),
            ));
        }
        Ok(())
    }
}

impl fmt::Display for DependencyPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mode {
            DependencyMode::AllOf => f.write_str("all_of")?,
            DependencyMode::AnyOf => f.write_str("any_of")?,
            DependencyMode::Quorum(k) => write!(f, "quorum:{k}")?,
        }
        write!(f, ";{}", self.on_upstream_failure.as_str())
    }
}

impl FromStr for DependencyPolicy {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self, EngineError> {
        let bad = || {
            EngineError::invalid(
                "dependency_policy",
                s,
                "expected `all_of`, `any_of` or `quorum:K`, then `;skip`, `;fail` or `;run`",
            )
        };
        let (mode, failure) = s.split_once(';').ok_or_else(bad)?;
        let mode = match mode {
            "all_of" => DependencyMode::AllOf,
            "any_of" => DependencyMode::AnyOf,
            other => {
                let k = other.strip_prefix("quorum:").ok_or_else(bad)?;
                DependencyMode::Quorum(k.parse().map_err(|_| bad())?)
            }
        };
        let on_upstream_failure = match failure {
            "skip" => UpstreamFailure::Skip,
            "fail" => UpstreamFailure::Fail,
            "run" => UpstreamFailure::Run,
            _ => return Err(bad()),
        };
        Ok(DependencyPolicy::new(mode, on_upstream_failure))
    }
}

/// One upstream execution's outcome, as a dependent's claim carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    /// Its state when the dependent was claimed (terminal, unless the
    /// policy released the dependent before every upstream finished).
    pub state: State,
    /// Its result bytes, when it completed with one.
    pub result: Option<Vec<u8>>,
}
