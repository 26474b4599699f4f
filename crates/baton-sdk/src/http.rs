//! The HTTP transport: the public API (`docs/HTTP-API.md`) over HTTP/1.1,
//! with a small pool of keep-alive connections. Every body and answer is a
//! `baton-api` type, and errors are read from the error body's `code`,
//! `field` and `state`, never from its message.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use baton_api::{
    BatchBody, BatchCreated, CancelBody, ClaimAnswer, ClaimBody, CompleteBody, ErrorBody, FailBody,
    ListAnswer, ListQuery, RenewAnswer, RenewBody, Route, Snapshot, StatsAnswer, SubmitBody,
    encode_component as encode,
};
use baton_core::{
    Claim, ClaimRequest, CreateOutcome, EngineError, ExecutionId, ExecutionSnapshot, Failure, Lane,
    LeaseToken, ListFilter, ListPage, Namespace, NewExecution, Page, RenewOutcome, RenewRequest,
    Result, StateCounts,
};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, header};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

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

    /// Sends `body` to `route` (its parameter filled with `param`, already
    /// encoded) and decodes the answer as `T`; an error answer becomes the
    /// [`EngineError`] its body describes.
    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        route: Route,
        path: &str,
        body: Option<&B>,
        op: Op<'_>,
    ) -> Result<T> {
        let method = match route.method() {
            baton_api::Method::Get => hyper::Method::GET,
            baton_api::Method::Post => hyper::Method::POST,
        };
        let body = match body {
            Some(b) => Bytes::from(serde_json::to_vec(b).map_err(|e| {
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
            let text: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
            let not_json = |e: serde_json::Error| {
                EngineError::unavailable(format!(
                    "{method} {path} answered {status} with a body that is not JSON ({e})"
                ))
            };
            if !(200..300).contains(&status) {
                return Err(match serde_json::from_slice::<ErrorBody>(text) {
                    Ok(error) => error.into_engine_error(status, op.name, op.id),
                    Err(e) => match serde_json::from_slice::<Value>(text) {
                        Ok(v) => EngineError::unavailable(format!(
                            "{} answered {status}: HTTP {status}: {v}",
                            op.name
                        )),
                        Err(_) => not_json(e),
                    },
                });
            }
            return serde_json::from_slice::<T>(text).map_err(|e| {
                match serde_json::from_slice::<Value>(text) {
                    Ok(v) => bad_answer(route, &v, &e),
                    Err(e) => not_json(e),
                }
            });
        }
    }

    pub(crate) async fn create(&self, items: Vec<NewExecution>) -> Result<Vec<CreateOutcome>> {
        let op = Op {
            name: "submit",
            id: None,
        };
        let executions = items
            .iter()
            .map(SubmitBody::from_new)
            .collect::<Result<_>>()?;
        let route = Route::SubmitBatch;
        let answer: BatchCreated = self
            .call(route, route.path(), Some(&BatchBody { executions }), op)
            .await?;
        Ok(answer
            .results
            .into_iter()
            .map(CreateOutcome::from)
            .collect())
    }

    pub(crate) async fn describe(&self, id: &ExecutionId) -> Result<ExecutionSnapshot> {
        let op = Op {
            name: "describe",
            id: Some(id),
        };
        let route = Route::Describe;
        let path = route.path_with(&encode(&id.to_string()));
        let snap: Snapshot = self.call(route, &path, None::<&()>, op).await?;
        snap.into_snapshot()
    }

    pub(crate) async fn list(&self, filter: &ListFilter, page: Page) -> Result<ListPage> {
        let op = Op {
            name: "list",
            id: None,
        };
        let route = Route::List;
        let query = ListQuery::from_request(filter, page).to_query_string();
        let path = format!("{}?{query}", route.path());
        let answer: ListAnswer = self.call(route, &path, None::<&()>, op).await?;
        answer.into_page()
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
        let route = Route::Cancel;
        let path = route.path_with(&encode(&id.to_string()));
        let snap: Snapshot = self
            .call(route, &path, Some(&CancelBody { reason }), op)
            .await?;
        snap.into_snapshot()
    }

    pub(crate) async fn counts(&self, ns: &Namespace) -> Result<BTreeMap<Lane, StateCounts>> {
        let op = Op {
            name: "stats",
            id: None,
        };
        let route = Route::Stats;
        let path = format!("{}?namespace={}", route.path(), encode(ns.as_str()));
        let answer: StatsAnswer = self.call(route, &path, None::<&()>, op).await?;
        Ok(answer.lanes)
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
            // Only the last lane waits, and only while nothing was claimed,
            // so a worker on several lanes still notices work on the first
            // ones within one long-poll.
            let last = i + 1 == req.lanes.len();
            let wait = if last && out.is_empty() {
                wait
            } else {
                Duration::ZERO
            };
            let route = Route::Claim;
            let path = route.path_with(&encode(lane.as_str()));
            let body = ClaimBody::new(req, max, wait);
            let answer: ClaimAnswer = self.call(route, &path, Some(&body), op).await?;
            for c in answer.claims {
                out.push(c.into_claim()?);
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
        let route = Route::Renew;
        let answer: RenewAnswer = self
            .call(route, route.path(), Some(&RenewBody::from(&req)), op)
            .await?;
        if answer.leases.len() != req.leases.len() {
            return Err(EngineError::corruption(format!(
                "renew answered {} outcomes for {} leases",
                answer.leases.len(),
                req.leases.len()
            )));
        }
        Ok(req
            .leases
            .into_iter()
            .zip(answer.leases)
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
        let route = Route::Complete;
        let path = route.path_with(&encode(&id.to_string()));
        let body = CompleteBody::new(lease, result)?;
        let snap: Snapshot = self.call(route, &path, Some(&body), op).await?;
        snap.into_snapshot()
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
        let route = Route::Fail;
        let path = route.path_with(&encode(&id.to_string()));
        let body = FailBody::new(lease, failure);
        let snap: Snapshot = self.call(route, &path, Some(&body), op).await?;
        snap.into_snapshot()
    }
}

/// An answer of the right status whose body is not the route's answer.
fn bad_answer(route: Route, v: &Value, e: &serde_json::Error) -> EngineError {
    let mut text = v.to_string();
    text.truncate(200);
    EngineError::unavailable(format!(
        "the answer to {route} is not what a Baton server answers ({e}): {text}"
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use baton_core::State;

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
    fn conflict_state_is_read_from_the_state_field() {
        let id = ExecutionId::generate(baton_core::PartitionCount::DEFAULT);
        // The message names another state: only the field counts.
        let body: ErrorBody = serde_json::from_value(serde_json::json!({"error": {
            "code": "conflict",
            "message": "conflict on execution x: cannot cancel: done (the execution is failed)",
            "state": "completed",
        }}))
        .unwrap();
        let e = body.into_engine_error(409, "cancel", Some(&id));
        assert!(matches!(
            e,
            EngineError::Conflict {
                state: State::Completed,
                operation: "cancel",
                ..
            }
        ));
        // Without the field, the message is not read for it.
        let body: ErrorBody = serde_json::from_value(serde_json::json!({"error": {
            "code": "conflict",
            "message": "conflict on execution x: cannot cancel: done (the execution is completed)",
        }}))
        .unwrap();
        let e = body.into_engine_error(409, "cancel", Some(&id));
        assert!(matches!(e, EngineError::Unavailable { .. }), "{e:?}");
    }

    #[test]
    fn invalid_input_names_the_field() {
        let body: ErrorBody = serde_json::from_value(serde_json::json!({"error": {
            "code": "invalid_input",
            "message": "executions[0]: invalid delay_ms \"-5\": must not be negative",
            "field": "executions[0].delay_ms",
        }}))
        .unwrap();
        let e = body.into_engine_error(400, "submit", None);
        assert!(matches!(
            e,
            EngineError::InvalidInput {
                field: "delay_ms",
                ..
            }
        ));
    }
}
