//! The connection pool and the request path: encode the body, send it on
//! a pooled (or fresh) keep-alive connection, decode the answer or the
//! error body.

use baton_api::{ErrorBody, Route};
use baton_core::{EngineError, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, header};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{HttpTransport, Op};

/// Most idle connections kept for reuse.
const MAX_IDLE: usize = 16;

impl HttpTransport {
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
    pub(super) async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        route: Route,
        path: &str,
        body: Option<&B>,
        op: Op<'_>,
    ) -> Result<T> {
        self.call_as(route, path, body, op, None).await
    }

    /// [`call`](Self::call) naming the caller in the `Baton-Actor` header
    /// (recorded in the audit events of bulk calls).
    pub(super) async fn call_as<B: Serialize, T: DeserializeOwned>(
        &self,
        route: Route,
        path: &str,
        body: Option<&B>,
        op: Op<'_>,
        actor: Option<&str>,
    ) -> Result<T> {
        let method = match route.method() {
            baton_api::Method::Get => hyper::Method::GET,
            baton_api::Method::Post => hyper::Method::POST,
            baton_api::Method::Put => hyper::Method::PUT,
            baton_api::Method::Delete => hyper::Method::DELETE,
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
            if let Some(actor) = actor {
                builder = builder.header("baton-actor", actor);
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

    use baton_api::encode_component as encode;
    use baton_core::{ExecutionId, State};

    use super::*;

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
