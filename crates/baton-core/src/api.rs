//! The JSON shapes of the public API (`../shared/HTTP-API.md`), built in one
//! place so the HTTP server and the CLI's `--json` output agree.

use serde_json::{Map, Value, json};

use crate::model::{AttemptRecord, CreateOutcome, ExecutionSnapshot, StateCounts};
use crate::state::State;

/// Payload or result bytes as JSON: the JSON value they hold, or a string
/// when they are not JSON (bytes submitted by a non-HTTP client).
///
/// ```
/// use baton_core::api::bytes_json;
/// assert_eq!(bytes_json(br#"{"a":1}"#), serde_json::json!({"a": 1}));
/// assert_eq!(bytes_json(b"plain text"), serde_json::json!("plain text"));
/// ```
pub fn bytes_json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// The snapshot object of `GET /v1/executions/{id}`: every field the contract
/// names, plus `finished_at`, `worker_id`, `lease_expires_at`,
/// `idempotency_key`, `capabilities`, `backoff` and `parent`.
pub fn snapshot_json(s: &ExecutionSnapshot) -> Value {
    let tags: Map<String, Value> = s
        .tags
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.clone())))
        .collect();
    json!({
        "id": s.id.to_string(),
        "namespace": s.namespace.as_str(),
        "lane": s.lane.as_str(),
        "kind": s.kind.as_str(),
        "state": s.state,
        "priority": s.priority,
        "payload": bytes_json(&s.payload),
        "tags": tags,
        "attempts": s.attempts,
        "max_attempts": s.retry.max_attempts,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "run_at": s.run_at,
        "deadline": s.deadline,
        "result": s.result.as_deref().map(bytes_json),
        "last_error": s.last_error,
        "cancel_reason": s.cancel_reason,
        "finished_at": s.finished_at,
        "worker_id": s.worker_id.as_ref().map(|w| w.as_str()),
        "lease_expires_at": s.lease_expires_at,
        "idempotency_key": s.idempotency_key.as_ref().map(|k| k.as_str()),
        "capabilities": s.required_capabilities.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        "backoff": s.retry.backoff,
        "parent": s.parent.as_ref().map(|p| p.to_string()),
    })
}

/// One item of a submit answer: `{"id", "state", "created"}`.
pub fn create_json(o: &CreateOutcome) -> Value {
    json!({"id": o.id.to_string(), "state": o.state, "created": o.created})
}

/// Per-state counts of one lane, every state present.
pub fn counts_json(c: &StateCounts) -> Value {
    let map: Map<String, Value> = State::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), json!(c.get(*s))))
        .collect();
    Value::Object(map)
}

/// One attempt: `{"number", "worker_id", "started_at", "ended_at", "outcome",
/// "error"}`.
pub fn attempt_json(a: &AttemptRecord) -> Value {
    json!({
        "number": a.number,
        "worker_id": a.worker_id.as_str(),
        "started_at": a.started_at,
        "ended_at": a.ended_at,
        "outcome": a.outcome,
        "error": a.error,
    })
}

/// [`snapshot_json`] plus `attempt_history`, the attempts oldest first.
pub fn snapshot_with_attempts_json(s: &ExecutionSnapshot, attempts: &[AttemptRecord]) -> Value {
    let mut doc = snapshot_json(s);
    if let Some(obj) = doc.as_object_mut() {
        obj.insert(
            "attempt_history".into(),
            Value::Array(attempts.iter().map(attempt_json).collect()),
        );
    }
    doc
}
