//! The HTTP transport: the public API (`HTTP-API.md`) over HTTP/1.1, with a
//! small pool of keep-alive connections.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use baton_core::{
    Backoff, CapabilityName, Claim, ClaimRequest, CreateOutcome, EngineError, ExecutionId,
    ExecutionSnapshot, Failure, IdempotencyKey, Kind, Lane, LeaseToken, ListFilter, ListPage,
    Namespace, NewExecution, Page, RenewOutcome, RenewRequest, RenewStatus, Result, RetryPolicy,
    State, StateCounts, TagKey, Timestamp, WorkerId,
};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, header};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// Most idle connections kept for reuse.
const MAX_IDLE: usize = 16;

pub(crate) struct HttpTransport {
    authority: String,
    base_path: String,
    token: Option<String>,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

impl fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpTransport")
            .field("authority", &self.authority)
            .field("base_path", &self.base_path)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// What the caller knows about a request, to turn an error body into the
/// right [`EngineError`].
#[derive(Clone, Copy)]
struct Op<'a> {
    name: &'static str,
    id: Option<&'a ExecutionId>,
}

impl HttpTransport {
    /// Parses `http://host[:port][/prefix]`.
    pub(crate) fn new(url: &str, token: Option<String>) -> Result<Self> {
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(EngineError::Configuration {
                message: format!(
                    "{url:?} is not an http:// URL; https is not built in, so put a TLS-terminating proxy next to the worker or use plain http on a private network"
                ),
            });
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(EngineError::Configuration {
                message: format!("{url:?} names no host; write it as http://HOST:PORT"),
            });
        }
        let authority = if authority.contains(':') {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Ok(HttpTransport {
            authority,
            base_path: path.to_owned(),
            token,
            idle: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn with_token(&self, token: Option<String>) -> Self {
        HttpTransport {
            authority: self.authority.clone(),
            base_path: self.base_path.clone(),
            token,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn checkout(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().ok()?;
        while let Some(sender) = idle.pop() {
            if sender.is_ready() {
                return Some(sender);
            }
        }
        None
    }

    fn checkin(&self, sender: SendRequest<Full<Bytes>>) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
            && sender.is_ready()
        {
            idle.push(sender);
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>> {
        let stream = tokio::net::TcpStream::connect(&self.authority)
            .await
            .map_err(|e| {
                EngineError::unavailable(format!("cannot connect to {}: {e}", self.authority))
            })?;
        // Requests are small and latency matters more than packet count.
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| {
                EngineError::unavailable(format!("HTTP handshake with {}: {e}", self.authority))
            })?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        op: Op<'_>,
    ) -> Result<(u16, Value)> {
        let body = match body {
            Some(v) => Bytes::from(serde_json::to_vec(v).map_err(|e| {
                EngineError::invalid("request", "", format!("cannot encode JSON: {e}"))
            })?),
            None => Bytes::new(),
        };
        // A pooled connection may have been closed by the server while idle;
        // hyper then reports the request as cancelled (never sent), and it is
        // safe to send it again on a fresh connection.
        let mut pooled = self.checkout();
        loop {
            let reused = pooled.is_some();
            let mut sender = match pooled.take() {
                Some(s) => s,
                None => self.connect().await?,
            };
            let mut builder = Request::builder()
                .method(method.clone())
                .uri(format!("{}{path}", self.base_path))
                .header(header::HOST, &self.authority)
                .header(header::ACCEPT, "application/json");
            if !body.is_empty() {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
            }
            if let Some(t) = &self.token {
                builder = builder.header(header::AUTHORIZATION, format!("Bearer {t}"));
            }
            let req = builder.body(Full::new(body.clone())).map_err(|e| {
                EngineError::invalid("request", path, format!("cannot build the request: {e}"))
            })?;
            let resp = match sender.send_request(req).await {
                Ok(r) => r,
                Err(e) if reused && e.is_canceled() => continue,
                Err(e) => {
                    return Err(EngineError::unavailable(format!(
                        "{method} {path} on {}: {e}",
                        self.authority
                    )));
                }
            };
            let status = resp.status().as_u16();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| {
                    EngineError::unavailable(format!("reading the answer to {method} {path}: {e}"))
                })?
                .to_bytes();
            self.checkin(sender);
            let value: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).map_err(|e| {
                    EngineError::unavailable(format!(
                        "{method} {path} answered {status} with a body that is not JSON ({e})"
                    ))
                })?
            };
            if (200..300).contains(&status) {
                return Ok((status, value));
            }
            return Err(error_from_body(status, &value, op));
        }
    }

    async fn post(&self, path: &str, body: Value, op: Op<'_>) -> Result<Value> {
        Ok(self.request(Method::POST, path, Some(&body), op).await?.1)
    }

    async fn get(&self, path: &str, op: Op<'_>) -> Result<Value> {
        Ok(self.request(Method::GET, path, None, op).await?.1)
    }

    pub(crate) async fn create(&self, items: Vec<NewExecution>) -> Result<Vec<CreateOutcome>> {
        let op = Op {
            name: "submit",
            id: None,
        };
        let executions: Vec<Value> = items.iter().map(submit_body).collect::<Result<_>>()?;
        let answer = self
            .post(
                "/v1/executions/batch",
                json!({"executions": executions}),
                op,
            )
            .await?;
        decode(&answer["results"], "results")
    }

    pub(crate) async fn describe(&self, id: &ExecutionId) -> Result<ExecutionSnapshot> {
        let op = Op {
            name: "describe",
            id: Some(id),
        };
        let v = self
            .get(&format!("/v1/executions/{}", encode(&id.to_string())), op)
            .await?;
        snapshot_from_json(v)
    }

    pub(crate) async fn list(&self, filter: &ListFilter, page: Page) -> Result<ListPage> {
        let mut q = vec![
            ("namespace", filter.namespace.to_string()),
            ("limit", page.limit.to_string()),
        ];
        if let Some(l) = &filter.lane {
            q.push(("lane", l.to_string()));
        }
        if let Some(s) = filter.state {
            q.push(("state", s.to_string()));
        }
        if let Some(k) = &filter.kind {
            q.push(("kind", k.to_string()));
        }
        if let Some((k, v)) = &filter.tag {
            q.push(("tag", format!("{k}:{v}")));
        }
        if let Some(c) = page.cursor {
            q.push(("cursor", c.to_string()));
        }
        let query: Vec<String> = q
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        let op = Op {
            name: "list",
            id: None,
        };
        let v = self
            .get(&format!("/v1/executions?{}", query.join("&")), op)
            .await?;
        let items = match v.get("items") {
            Some(Value::Array(items)) => items
                .iter()
                .cloned()
                .map(snapshot_from_json)
                .collect::<Result<Vec<_>>>()?,
            _ => return Err(bad_answer("items", &v)),
        };
        let next_cursor = match v.get("next_cursor") {
            Some(Value::String(c)) => Some(c.parse()?),
            _ => None,
        };
        Ok(ListPage { items, next_cursor })
    }

    pub(crate) async fn cancel(
        &self,
        id: &ExecutionId,
        reason: Option<String>,
    ) -> Result<ExecutionSnapshot> {
        let op = Op {
            name: "cancel",
            id: Some(id),
        };
        let v = self
            .post(
                &format!("/v1/executions/{}/cancel", encode(&id.to_string())),
                json!({"reason": reason}),
                op,
            )
            .await?;
        snapshot_from_json(v)
    }

    pub(crate) async fn counts(&self, ns: &Namespace) -> Result<BTreeMap<Lane, StateCounts>> {
        let op = Op {
            name: "stats",
            id: None,
        };
        let v = self
            .get(&format!("/v1/stats?namespace={}", encode(ns.as_str())), op)
            .await?;
        decode(&v["lanes"], "lanes")
    }

    pub(crate) async fn claim(&self, req: &ClaimRequest, wait: Duration) -> Result<Vec<Claim>> {
        let op = Op {
            name: "claim",
            id: None,
        };
        // The route names one lane; a multi-lane worker asks each in turn.
        let mut out = Vec::new();
        let mut max = req.max;
        for (i, lane) in req.lanes.iter().enumerate() {
            // Only the last lane waits, so a worker on several lanes still
            // notices work on the first ones within one long-poll.
            let wait_ms = if i + 1 == req.lanes.len() {
                wait.as_millis() as u64
            } else {
                0
            };
            let body = json!({
                "namespace": req.namespace.as_str(),
                "worker_id": req.worker_id.as_str(),
                "capabilities": req.capabilities.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
                "max": max,
                "lease_ms": req.lease_ttl.as_millis() as u64,
                "wait_ms": if out.is_empty() { wait_ms } else { 0 },
            });
            let v = self
                .post(
                    &format!("/v1/lanes/{}/claim", encode(lane.as_str())),
                    body,
                    op,
                )
                .await?;
            let docs: Vec<ClaimDoc> = decode(&v["claims"], "claims")?;
            for d in docs {
                out.push(d.into_claim()?);
            }
            max = req.max.saturating_sub(out.len());
            if max == 0 {
                break;
            }
        }
        Ok(out)
    }

    pub(crate) async fn renew(&self, req: RenewRequest) -> Result<Vec<RenewOutcome>> {
        let op = Op {
            name: "renew",
            id: None,
        };
        let tokens: Vec<String> = req.leases.iter().map(|l| l.to_string()).collect();
        let v = self
            .post(
                "/v1/leases/renew",
                json!({
                    "worker_id": req.worker_id.as_str(),
                    "lease_ms": req.lease_ttl.as_millis() as u64,
                    "leases": tokens,
                }),
                op,
            )
            .await?;
        let docs: Vec<RenewDoc> = decode(&v["leases"], "leases")?;
        if docs.len() != req.leases.len() {
            return Err(EngineError::corruption(format!(
                "renew answered {} outcomes for {} leases",
                docs.len(),
                req.leases.len()
            )));
        }
        Ok(req
            .leases
            .into_iter()
            .zip(docs)
            .map(|(lease, d)| RenewOutcome {
                lease,
                status: d.status,
                expires_at: d.expires_at,
            })
            .collect())
    }

    pub(crate) async fn complete(
        &self,
        lease: &LeaseToken,
        result: &[u8],
    ) -> Result<ExecutionSnapshot> {
        let id = lease.execution_id();
        let op = Op {
            name: "complete",
            id: Some(id),
        };
        let v = self
            .post(
                &format!("/v1/executions/{}/complete", encode(&id.to_string())),
                json!({"lease": lease.to_string(), "result": baton_core::api::bytes_json(result)}),
                op,
            )
            .await?;
        snapshot_from_json(v)
    }

    pub(crate) async fn fail(
        &self,
        lease: &LeaseToken,
        failure: Failure,
    ) -> Result<ExecutionSnapshot> {
        let id = lease.execution_id();
        let op = Op {
            name: "fail",
            id: Some(id),
        };
        let mut body = json!({
            "lease": lease.to_string(),
            "error": failure.error,
            "retryable": failure.retryable,
        });
        if let (Some(d), Some(obj)) = (failure.retry_after, body.as_object_mut()) {
            obj.insert("retry_after_ms".into(), json!(d.as_millis() as u64));
        }
        let v = self
            .post(
                &format!("/v1/executions/{}/fail", encode(&id.to_string())),
                body,
                op,
            )
            .await?;
        snapshot_from_json(v)
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn bad_answer(field: &str, v: &Value) -> EngineError {
    let mut text = v.to_string();
    text.truncate(200);
    EngineError::unavailable(format!(
        "the server's answer has no valid {field:?} field (is this a Baton server?): {text}"
    ))
}

fn decode<T: serde::de::DeserializeOwned>(v: &Value, field: &str) -> Result<T> {
    T::deserialize(v).map_err(|e| {
        let mut err = bad_answer(field, v);
        if let EngineError::Unavailable { message } = &mut err {
            message.push_str(&format!(" ({e})"));
        }
        err
    })
}

/// Payload bytes as the JSON value the HTTP API carries.
fn payload_json(bytes: &[u8]) -> Result<Value> {
    serde_json::from_slice(bytes).map_err(|e| {
        EngineError::invalid(
            "payload",
            String::from_utf8_lossy(bytes),
            format!("over HTTP a payload must be JSON ({e})"),
        )
    })
}

fn submit_body(n: &NewExecution) -> Result<Value> {
    let tags: Map<String, Value> = n
        .tags
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.clone())))
        .collect();
    Ok(json!({
        "namespace": n.namespace.as_str(),
        "lane": n.lane.as_str(),
        "kind": n.kind.as_str(),
        "payload": payload_json(&n.payload)?,
        "priority": n.priority,
        "delay_ms": n.delay_ms,
        "run_at": n.run_at,
        "deadline": n.deadline,
        "max_attempts": n.retry.max_attempts,
        "backoff": n.retry.backoff,
        "idempotency_key": n.idempotency_key.as_ref().map(|k| k.as_str()),
        "tags": tags,
        "capabilities": n.required_capabilities.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        "parent": n.parent.as_ref().map(|p| p.to_string()),
    }))
}

fn error_from_body(status: u16, v: &Value, op: Op<'_>) -> EngineError {
    let code = v["error"]["code"].as_str().unwrap_or("");
    let message = v["error"]["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("HTTP {status}: {v}"));
    match (code, op.id) {
        ("not_found", Some(id)) => EngineError::NotFound { id: id.clone() },
        ("lease_lost", Some(id)) => EngineError::LeaseLost {
            id: id.clone(),
            reason: message,
        },
        ("conflict", Some(id)) => EngineError::Conflict {
            id: id.clone(),
            operation: op.name,
            // The body carries the state only inside the message, as
            // "(the execution is <state>)".
            state: message
                .rsplit("(the execution is ")
                .next()
                .and_then(|s| s.trim_end_matches(')').parse().ok())
                .unwrap_or(State::Failed),
            reason: message,
        },
        ("invalid_input", _) => EngineError::InvalidInput {
            field: "request",
            value: String::new(),
            reason: message,
        },
        ("unsupported", _) => EngineError::Unsupported {
            operation: op.name,
            backend: "http",
        },
        ("unauthorized", _) => EngineError::Configuration {
            message: format!("{message} (set the client's API token)"),
        },
        ("corruption", _) => EngineError::corruption(message),
        ("configuration", _) => EngineError::Configuration { message },
        _ => EngineError::unavailable(format!("{} answered {status}: {message}", op.name)),
    }
}

#[derive(Deserialize)]
struct LeaseDoc {
    token: LeaseToken,
    expires_at: Timestamp,
}

#[derive(Deserialize)]
struct ClaimDoc {
    id: ExecutionId,
    namespace: Namespace,
    lane: Lane,
    kind: Kind,
    payload: Value,
    attempt: u32,
    lease: LeaseDoc,
    #[serde(default)]
    deadline: Option<Timestamp>,
    #[serde(default)]
    tags: BTreeMap<TagKey, String>,
}

impl ClaimDoc {
    fn into_claim(self) -> Result<Claim> {
        Ok(Claim {
            id: self.id,
            namespace: self.namespace,
            lane: self.lane,
            kind: self.kind,
            payload: json_bytes(&self.payload)?,
            attempt: self.attempt,
            lease: self.lease.token,
            lease_expires_at: self.lease.expires_at,
            deadline: self.deadline,
            tags: self.tags,
        })
    }
}

#[derive(Deserialize)]
struct RenewDoc {
    status: RenewStatus,
    #[serde(default)]
    expires_at: Option<Timestamp>,
}

#[derive(Deserialize)]
struct SnapshotDoc {
    id: ExecutionId,
    namespace: Namespace,
    lane: Lane,
    kind: Kind,
    state: State,
    priority: i32,
    payload: Value,
    #[serde(default)]
    tags: BTreeMap<TagKey, String>,
    attempts: u32,
    max_attempts: u32,
    #[serde(default)]
    backoff: Option<Backoff>,
    created_at: Timestamp,
    updated_at: Timestamp,
    run_at: Option<Timestamp>,
    deadline: Option<Timestamp>,
    result: Option<Value>,
    last_error: Option<String>,
    cancel_reason: Option<String>,
    #[serde(default)]
    finished_at: Option<Timestamp>,
    #[serde(default)]
    worker_id: Option<WorkerId>,
    #[serde(default)]
    lease_expires_at: Option<Timestamp>,
    #[serde(default)]
    idempotency_key: Option<IdempotencyKey>,
    #[serde(default)]
    capabilities: BTreeSet<CapabilityName>,
    #[serde(default)]
    parent: Option<ExecutionId>,
}

fn json_bytes(v: &Value) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| EngineError::corruption(format!("cannot encode JSON: {e}")))
}

fn snapshot_from_json(v: Value) -> Result<ExecutionSnapshot> {
    let d: SnapshotDoc = decode(&v, "snapshot")?;
    // JSON null and "no result" look the same on the wire; a completed
    // execution always has a result.
    let result = match (d.result, d.state) {
        (Some(r), _) => Some(json_bytes(&r)?),
        (None, State::Completed) => Some(b"null".to_vec()),
        (None, _) => None,
    };
    Ok(ExecutionSnapshot {
        id: d.id,
        namespace: d.namespace,
        lane: d.lane,
        kind: d.kind,
        state: d.state,
        priority: d.priority,
        payload: json_bytes(&d.payload)?,
        tags: d.tags,
        attempts: d.attempts,
        retry: RetryPolicy {
            max_attempts: d.max_attempts,
            backoff: d.backoff.unwrap_or_default(),
        },
        idempotency_key: d.idempotency_key,
        required_capabilities: d.capabilities,
        parent: d.parent,
        created_at: d.created_at,
        updated_at: d.updated_at,
        run_at: d.run_at,
        deadline: d.deadline,
        finished_at: d.finished_at,
        worker_id: d.worker_id,
        lease_expires_at: d.lease_expires_at,
        result,
        last_error: d.last_error,
        cancel_reason: d.cancel_reason,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn urls_are_parsed() {
        let t = HttpTransport::new("http://127.0.0.1:7420/", None).unwrap();
        assert_eq!(
            (t.authority.as_str(), t.base_path.as_str()),
            ("127.0.0.1:7420", "")
        );
        let t = HttpTransport::new("http://baton/api", None).unwrap();
        assert_eq!(
            (t.authority.as_str(), t.base_path.as_str()),
            ("baton:80", "/api")
        );
        assert!(HttpTransport::new("https://baton", None).is_err());
        assert!(HttpTransport::new("http:///x", None).is_err());
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode("{p:3}-ab c"), "%7Bp%3A3%7D-ab%20c");
    }

    #[test]
    fn conflict_state_is_read_from_the_message() {
        let id = ExecutionId::generate(baton_core::PartitionCount::DEFAULT);
        let body = json!({"error": {"code": "conflict", "message": "conflict on execution x: cannot cancel: done (the execution is completed)"}});
        let e = error_from_body(
            409,
            &body,
            Op {
                name: "cancel",
                id: Some(&id),
            },
        );
        assert!(matches!(
            e,
            EngineError::Conflict {
                state: State::Completed,
                ..
            }
        ));
    }
}
