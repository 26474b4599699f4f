//! Waiting without a worker: release, suspend, signals.

use std::time::Duration;

use baton_core::{
    ExecutionSnapshot, IdempotencyKey, LeaseToken, NewSignal, OnTimeout, Result, Signal,
    SignalName, SignalOutcome, State, SuspendRequest, Suspension, Timestamp, WaitCondition,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::{JsonText, Snapshot, check_json, raw_bytes};

/// The body of `POST /v1/executions/{id}/release`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseBody {
    /// The lease handed back.
    pub lease: LeaseToken,
}

/// The body of `POST /v1/executions/{id}/suspend`.
///
/// ```
/// use baton_api::SuspendBody;
/// let body: SuspendBody = serde_json::from_str(
///     r#"{"lease": "{p:1}-019ab1c2-7d3e-7f00-8a1b-2c3d4e5f6071.1.00000000000000ff", "waitpoints": ["approval"]}"#,
/// ).unwrap();
/// let (_, request) = body.into_request();
/// assert_eq!(request.waitpoints[0].as_str(), "approval");
/// assert_eq!(request.timeout, None);
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuspendBody {
    /// The lease of the running attempt that suspends.
    pub lease: LeaseToken,
    /// The waitpoints; empty (or absent) for a durable sleep.
    #[serde(default)]
    pub waitpoints: Vec<SignalName>,
    /// `all` (the default) or `any`.
    #[serde(default)]
    pub condition: WaitCondition,
    /// How long to wait at most, in milliseconds; required for a sleep.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// `resume` (the default), `fail` or `cancel`.
    #[serde(default)]
    pub on_timeout: OnTimeout,
}

impl SuspendBody {
    /// The body of `request` under `lease`.
    pub fn new(lease: &LeaseToken, request: &SuspendRequest) -> Self {
        SuspendBody {
            lease: lease.clone(),
            waitpoints: request.waitpoints.clone(),
            condition: request.condition,
            timeout_ms: request
                .timeout
                .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
            on_timeout: request.on_timeout,
        }
    }

    /// The lease and the request (checked by the backend).
    pub fn into_request(self) -> (LeaseToken, SuspendRequest) {
        let mut request = SuspendRequest::signals(self.waitpoints).with_condition(self.condition);
        request.timeout = self.timeout_ms.map(Duration::from_millis);
        request.on_timeout = self.on_timeout;
        (self.lease, request)
    }
}

/// One waitpoint of a suspend answer, with the token a third party
/// presents to signal it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitpointBody {
    /// The waitpoint.
    pub name: SignalName,
    /// A signed token for `POST /v1/executions/{id}/signals/{name}`
    /// without the API token; `null` when the server has no waitpoint
    /// secret.
    pub token: Option<String>,
}

/// The answer of a suspend: `suspended` (the lease is dead) with the
/// waitpoints and their tokens, or `running` (the lease is kept) with the
/// signals that already satisfied it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SuspendAnswer {
    /// `suspended`, or `running` when signals already satisfied the wait.
    pub state: State,
    /// The waitpoints, each with its token; empty when `running`.
    #[serde(default)]
    pub waitpoints: Vec<WaitpointBody>,
    /// The signals this wait consumed when `running`; empty otherwise.
    #[serde(default)]
    pub signals: Vec<SignalBody>,
    /// The snapshot after the call.
    pub execution: Snapshot,
}

/// The body of `POST /v1/executions/{id}/signals/{name}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalRequestBody {
    /// Any JSON value, stored exactly as sent; `null` when absent.
    #[serde(default)]
    pub payload: Option<Box<RawValue>>,
    /// Makes the delivery idempotent for this execution.
    #[serde(default)]
    pub idempotency_key: Option<IdempotencyKey>,
}

impl SignalRequestBody {
    /// The body delivering `payload` bytes (their JSON text, or a JSON
    /// string when they are not JSON) with `key`.
    ///
    /// # Errors
    /// `InvalidInput` for JSON that [`check_json`] refuses.
    pub fn new(payload: &[u8], key: Option<IdempotencyKey>) -> Result<Self> {
        let payload = JsonText::from_bytes(payload);
        check_json("payload", payload.get())?;
        Ok(SignalRequestBody {
            payload: Some(payload.into_raw()),
            idempotency_key: key,
        })
    }

    /// The signal named `name` this body delivers.
    ///
    /// # Errors
    /// `InvalidInput` (field `payload`) for JSON that [`check_json`]
    /// refuses.
    pub fn into_signal(self, name: SignalName) -> Result<NewSignal> {
        if let Some(p) = &self.payload {
            check_json("payload", p.get())?;
        }
        let mut signal = NewSignal::new(name, raw_bytes(self.payload));
        signal.idempotency_key = self.idempotency_key;
        Ok(signal)
    }
}

/// The answer of a signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalAnswer {
    /// `resumed`, `buffered`, `duplicate` or `ignored`.
    pub outcome: SignalOutcome,
}

/// One signal an execution holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignalBody {
    /// Its number among the execution's signals, from 1.
    pub seq: u32,
    /// The waitpoint it is for.
    pub name: SignalName,
    /// The payload, as the text stored.
    pub payload: JsonText,
    /// The key it was delivered with.
    #[serde(default)]
    pub idempotency_key: Option<IdempotencyKey>,
    /// When it arrived.
    pub received_at: Timestamp,
    /// The wait that consumed it (1-based); `null` while buffered.
    #[serde(default)]
    pub wait: Option<u32>,
}

impl From<&Signal> for SignalBody {
    fn from(s: &Signal) -> Self {
        SignalBody {
            seq: s.seq,
            name: s.name.clone(),
            payload: JsonText::from_bytes(&s.payload),
            idempotency_key: s.idempotency_key.clone(),
            received_at: s.received_at,
            wait: s.wait,
        }
    }
}

impl SignalBody {
    /// The `baton-core` signal.
    pub fn into_signal(self) -> Signal {
        Signal {
            seq: self.seq,
            name: self.name,
            payload: self.payload.into_bytes(),
            idempotency_key: self.idempotency_key,
            received_at: self.received_at,
            wait: self.wait,
        }
    }
}

/// The answer of `GET /v1/executions/{id}/signals`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignalsAnswer {
    /// The signals, oldest first.
    pub items: Vec<SignalBody>,
}

/// A snapshot's `suspension`: the wait of a suspended execution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuspensionBody {
    /// The waitpoints; empty for a sleep.
    pub waitpoints: Vec<SignalName>,
    /// `all` or `any`.
    pub condition: WaitCondition,
    /// When the wait times out, if ever.
    #[serde(default)]
    pub timeout_at: Option<Timestamp>,
    /// What the timeout does.
    pub on_timeout: OnTimeout,
}

impl From<&Suspension> for SuspensionBody {
    fn from(s: &Suspension) -> Self {
        SuspensionBody {
            waitpoints: s.waitpoints.clone(),
            condition: s.condition,
            timeout_at: s.timeout_at,
            on_timeout: s.on_timeout,
        }
    }
}

impl SuspensionBody {
    /// The `baton-core` suspension.
    pub fn into_suspension(self) -> Suspension {
        Suspension {
            waitpoints: self.waitpoints,
            condition: self.condition,
            timeout_at: self.timeout_at,
            on_timeout: self.on_timeout,
        }
    }
}

/// The suspension of a snapshot for the wire, `None` unless suspended.
pub(crate) fn suspension_of(s: &ExecutionSnapshot) -> Option<SuspensionBody> {
    s.suspension.as_ref().map(SuspensionBody::from)
}
