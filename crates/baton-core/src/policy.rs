//! Policies: retry and backoff, lease TTL bounds and size limits.
//!
//! The retry schedule is computed here, once, and every backend calls the same
//! function (the Valkey Lua port mirrors it step for step), so a failure
//! produces the same `run_at` on every backend. Jitter is deterministic: it is
//! derived from the execution id and the attempt number, not from a random
//! generator, which keeps describe snapshots identical across backends and
//! still spreads retries of different executions apart.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::id::ExecutionId;

/// Exponential backoff between attempts.
///
/// The base delay before attempt `n + 1` (after attempt `n` failed) is
/// `initial * multiplier^(n-1)`, capped at `max`. With `jitter`, the delay is
/// drawn deterministically from `[base/2, base]` ("equal jitter").
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Backoff {
    /// Delay after the first failed attempt, in milliseconds.
    pub initial_ms: u64,
    /// Upper bound of any delay, in milliseconds.
    pub max_ms: u64,
    /// Growth factor per attempt, at least 1.0.
    pub multiplier: f64,
    /// Spread delays over `[base/2, base]` so that executions failing together
    /// do not retry together.
    pub jitter: bool,
}

impl Eq for Backoff {}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial_ms: 1_000,
            max_ms: 60_000,
            multiplier: 2.0,
            jitter: true,
        }
    }
}

impl Backoff {
    /// Longest delay any backoff may reach: 30 days.
    pub const MAX_DELAY_MS: u64 = 30 * 24 * 3_600_000;

    /// No delay at all: a failed attempt is retried at once.
    pub const NONE: Backoff = Backoff {
        initial_ms: 0,
        max_ms: 0,
        multiplier: 1.0,
        jitter: false,
    };

    /// Checks the ranges: `initial_ms <= max_ms <= 30 days`,
    /// `1.0 <= multiplier <= 100.0`.
    pub fn validate(&self) -> Result<(), EngineError> {
        if self.max_ms > Self::MAX_DELAY_MS {
            return Err(EngineError::invalid(
                "backoff.max_ms",
                self.max_ms,
                format!("must be at most {} (30 days)", Self::MAX_DELAY_MS),
            ));
        }
        if self.initial_ms > self.max_ms {
            return Err(EngineError::invalid(
                "backoff.initial_ms",
                self.initial_ms,
                format!("must not exceed backoff.max_ms ({})", self.max_ms),
            ));
        }
        if !self.multiplier.is_finite() || !(1.0..=100.0).contains(&self.multiplier) {
            return Err(EngineError::invalid(
                "backoff.multiplier",
                self.multiplier,
                "must be between 1.0 and 100.0",
            ));
        }
        Ok(())
    }

    /// The delay after attempt `attempt` (1-based) failed, for execution `id`.
    ///
    /// Exactly reproducible: integer arithmetic and IEEE multiplications only,
    /// so the Lua port computes the same milliseconds.
    ///
    /// ```
    /// use baton_core::{Backoff, ExecutionId, PartitionCount};
    /// let id = ExecutionId::generate(PartitionCount::DEFAULT);
    /// let b = Backoff { initial_ms: 100, max_ms: 1_000, multiplier: 2.0, jitter: false };
    /// let delays: Vec<u64> = (1..=6).map(|n| b.delay_ms(&id, n)).collect();
    /// assert_eq!(delays, [100, 200, 400, 800, 1_000, 1_000]);
    /// ```
    pub fn delay_ms(&self, id: &ExecutionId, attempt: u32) -> u64 {
        let max = self.max_ms as f64;
        let mut b = self.initial_ms as f64;
        let mut i = 1;
        while i < attempt && b < max {
            b *= self.multiplier;
            i += 1;
        }
        let base = if b >= max {
            self.max_ms
        } else {
            b.floor() as u64
        };
        if !self.jitter || base == 0 {
            return base;
        }
        let r = jitter_draw(id, attempt);
        base - (base * r) / 131_072
    }
}

/// A number in `0..65536` derived from the id's last two bytes and the attempt:
/// `(seed + attempt * 40503) mod 65536`.
fn jitter_draw(id: &ExecutionId, attempt: u32) -> u64 {
    let bytes = id.uuid().into_bytes();
    let seed = u64::from(u16::from_be_bytes([bytes[14], bytes[15]]));
    (seed + u64::from(attempt) * 40_503) % 65_536
}

/// How often an execution is attempted and how long to wait in between.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Total attempts allowed, including the first; at least 1.
    pub max_attempts: u32,
    /// Delay between attempts.
    pub backoff: Backoff,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            backoff: Backoff::default(),
        }
    }
}

impl RetryPolicy {
    /// Upper bound of `max_attempts`.
    pub const MAX_ATTEMPTS: u32 = 1_000;

    /// A policy of `max_attempts` with the default backoff.
    pub fn attempts(max_attempts: u32) -> Self {
        RetryPolicy {
            max_attempts,
            ..RetryPolicy::default()
        }
    }

    /// Checks `1 <= max_attempts <= 1000` and the backoff.
    pub fn validate(&self) -> Result<(), EngineError> {
        if self.max_attempts == 0 || self.max_attempts > Self::MAX_ATTEMPTS {
            return Err(EngineError::invalid(
                "max_attempts",
                self.max_attempts,
                format!("must be between 1 and {}", Self::MAX_ATTEMPTS),
            ));
        }
        self.backoff.validate()
    }

    /// What happens after attempt `attempt` of `id` failed.
    ///
    /// `retryable` is the failure's own verdict; `retry_after` overrides the
    /// backoff delay when the worker asked for a specific one.
    ///
    /// ```
    /// use baton_core::{ExecutionId, PartitionCount, RetryDecision, RetryPolicy};
    /// let id = ExecutionId::generate(PartitionCount::DEFAULT);
    /// let p = RetryPolicy::attempts(2);
    /// assert!(matches!(p.decide(&id, 1, true, None), RetryDecision::RetryAfter(_)));
    /// assert_eq!(p.decide(&id, 2, true, None), RetryDecision::GiveUp);
    /// assert_eq!(p.decide(&id, 1, false, None), RetryDecision::GiveUp);
    /// ```
    pub fn decide(
        &self,
        id: &ExecutionId,
        attempt: u32,
        retryable: bool,
        retry_after: Option<Duration>,
    ) -> RetryDecision {
        if !retryable || attempt >= self.max_attempts {
            return RetryDecision::GiveUp;
        }
        let ms = match retry_after {
            Some(d) => d.as_millis().min(u128::from(Backoff::MAX_DELAY_MS)) as u64,
            None => self.backoff.delay_ms(id, attempt),
        };
        RetryDecision::RetryAfter(Duration::from_millis(ms))
    }
}

/// The verdict of [`RetryPolicy::decide`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryDecision {
    /// Run again after this delay (zero: eligible at once, state `waiting`;
    /// otherwise `delayed`).
    RetryAfter(Duration),
    /// No further attempt: the execution becomes `failed`.
    GiveUp,
}

/// Bounds a backend enforces on every request. Configurable per backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest payload (and result) accepted, in bytes. Default 1 MiB.
    pub max_payload_bytes: usize,
    /// Most items in one create, claim or renew batch. Default 1000.
    pub max_batch: usize,
    /// Longest error or cancel-reason text stored, in bytes; longer text is
    /// truncated at a character boundary. Default 16 KiB.
    pub max_error_bytes: usize,
    /// Shortest lease a worker may ask for. Default 100 ms.
    pub min_lease: Duration,
    /// Longest lease a worker may ask for. Default 24 hours.
    pub max_lease: Duration,
    /// Most descendants one cancel visits in its own atomic unit (and one
    /// step of the cascade pass); a bigger subtree is finished by the
    /// scheduler's cascade pass in steps of this size. Default 500.
    pub cascade_budget: usize,
    /// Most executions one execution may depend on. Default 100.
    pub max_dependencies: usize,
    /// Most buffered signals (delivered, not yet consumed by a wait) one
    /// execution holds; a signal beyond it is refused as a conflict.
    /// Default 100.
    pub max_signals: usize,
    /// Most waits (suspensions) one execution may end; a suspend beyond it
    /// is refused as a conflict. Default 1000.
    pub max_waits: usize,
    /// Most steps one execution records; a new step beyond it is refused
    /// as a conflict. Default 1000.
    pub max_steps: usize,
    /// Most keys one execution's key-value state holds; a new key beyond
    /// it is refused as a conflict. Default 100.
    pub max_state_keys: usize,
    /// Largest state value, custom status or progress frame, in bytes.
    /// Default 64 KiB.
    pub max_value_bytes: usize,
    /// Most progress frames one execution keeps: appending beyond it
    /// drops the oldest. Default 1000.
    pub max_progress_frames: usize,
    /// How long the worker registry lists a worker after its last claim or
    /// renew. Default 60 s.
    pub worker_ttl: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_payload_bytes: 1024 * 1024,
            max_batch: 1000,
            max_error_bytes: 16 * 1024,
            min_lease: Duration::from_millis(100),
            max_lease: Duration::from_secs(24 * 3600),
            cascade_budget: 500,
            max_dependencies: 100,
            max_signals: 100,
            max_waits: 1000,
            max_steps: 1000,
            max_state_keys: 100,
            max_value_bytes: 64 * 1024,
            max_progress_frames: 1000,
            worker_ttl: Duration::from_secs(60),
        }
    }
}

impl Limits {
    /// Checks a payload or result size.
    pub fn check_payload(&self, field: &'static str, len: usize) -> Result<(), EngineError> {
        if len > self.max_payload_bytes {
            return Err(EngineError::invalid(
                field,
                format!("{len} bytes"),
                format!(
                    "{field} exceeds the limit of {} bytes; store large data elsewhere and pass a reference",
                    self.max_payload_bytes
                ),
            ));
        }
        Ok(())
    }

    /// Checks the size of a state value, a custom status or a progress
    /// frame ([`max_value_bytes`](Self::max_value_bytes)).
    pub fn check_value(&self, field: &'static str, len: usize) -> Result<(), EngineError> {
        if len > self.max_value_bytes {
            return Err(EngineError::invalid(
                field,
                format!("{len} bytes"),
                format!(
                    "{field} exceeds the limit of {} bytes; keep large data elsewhere and store a reference",
                    self.max_value_bytes
                ),
            ));
        }
        Ok(())
    }

    /// Checks a batch size (`1..=max_batch`).
    pub fn check_batch(&self, field: &'static str, len: usize) -> Result<(), EngineError> {
        if len == 0 || len > self.max_batch {
            return Err(EngineError::invalid(
                field,
                len,
                format!("a batch must hold between 1 and {} items", self.max_batch),
            ));
        }
        Ok(())
    }

    /// Checks a lease TTL against `min_lease..=max_lease`.
    pub fn check_lease(&self, ttl: Duration) -> Result<(), EngineError> {
        if ttl < self.min_lease || ttl > self.max_lease {
            return Err(EngineError::invalid(
                "lease_ms",
                ttl.as_millis(),
                format!(
                    "a lease must last between {} and {} ms",
                    self.min_lease.as_millis(),
                    self.max_lease.as_millis()
                ),
            ));
        }
        Ok(())
    }

    /// Checks free text a caller stores, a failure's `error` or a cancel
    /// `reason` (`field`): it must not hold a NUL character, which Postgres
    /// cannot store in text, so that every backend refuses the same text.
    /// Every backend calls it in `fail` and `cancel` before reading or
    /// changing anything; the text is then clipped with
    /// [`clip_text`](Self::clip_text).
    ///
    /// # Errors
    /// `InvalidInput` naming `field` when the text holds a NUL.
    ///
    /// ```
    /// let limits = baton_core::Limits::default();
    /// assert!(limits.check_text("error", "disk full").is_ok());
    /// assert!(limits.check_text("reason", "a\0b").is_err());
    /// ```
    pub fn check_text(&self, field: &'static str, text: &str) -> Result<(), EngineError> {
        if text.contains('\0') {
            return Err(EngineError::invalid(
                field,
                text.replace('\0', "\\u0000"),
                "text must not contain the NUL character (U+0000)",
            ));
        }
        Ok(())
    }

    /// Truncates error or reason text to `max_error_bytes`.
    pub fn clip_text(&self, mut text: String) -> String {
        if text.len() > self.max_error_bytes {
            let mut cut = self.max_error_bytes;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::PartitionCount;

    #[test]
    fn jitter_stays_within_half_and_full_base() {
        let b = Backoff {
            initial_ms: 1_000,
            max_ms: 60_000,
            multiplier: 2.0,
            jitter: true,
        };
        for _ in 0..200 {
            let id = ExecutionId::generate(PartitionCount::DEFAULT);
            for n in 1..10u32 {
                let base = (1_000u64 << (n - 1)).min(60_000);
                let d = b.delay_ms(&id, n);
                assert!(
                    d >= base / 2 && d <= base,
                    "attempt {n}: {d} not in [{}, {base}]",
                    base / 2
                );
                assert_eq!(d, b.delay_ms(&id, n), "not deterministic");
            }
        }
    }

    #[test]
    fn huge_attempt_numbers_cap_at_max() {
        let b = Backoff {
            initial_ms: 1,
            max_ms: 5_000,
            multiplier: 1.5,
            jitter: false,
        };
        let id = ExecutionId::generate(PartitionCount::DEFAULT);
        assert_eq!(b.delay_ms(&id, 1_000), 5_000);
        assert_eq!(Backoff::NONE.delay_ms(&id, 7), 0);
    }

    #[test]
    fn validation_names_the_field() {
        let err = RetryPolicy::attempts(0).validate().unwrap_err();
        assert!(err.to_string().contains("max_attempts"), "{err}");
        let bad = Backoff {
            multiplier: 0.5,
            ..Backoff::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("multiplier")
        );
        let bad = Backoff {
            initial_ms: 10,
            max_ms: 5,
            ..Backoff::default()
        };
        assert!(bad.validate().is_err());
    }
}
