//! Payloads and results come back as the JSON text sent, byte for byte:
//! generated JSON values (numbers of any size, every escape, deep nesting,
//! odd whitespace) round-trip through submit, claim, complete and describe
//! on SQLite; JSON Baton refuses is refused at submit and at complete with a
//! `400` naming the field.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use baton_api::MAX_JSON_DEPTH;
use baton_server::{AppState, ServerConfig, router};
use serde::Deserialize;
use serde_json::value::RawValue;
use tower::ServiceExt;

/// A small deterministic generator (xorshift64*), so a failure reproduces.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn space(&mut self) -> &'static str {
        ["", "", " ", "\n", "\t ", "  \r\n"][self.below(6)]
    }

    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }

    fn number(&mut self) -> String {
        let mut s = String::new();
        if self.below(3) == 0 {
            s.push('-');
        }
        let len = 1 + self.below(40);
        if len == 1 || self.below(5) == 0 {
            s.push_str(&self.digits(1));
        } else {
            s.push(char::from(b'1' + self.below(9) as u8));
            s.push_str(&self.digits(len - 1));
        }
        if self.below(3) == 0 {
            s.push('.');
            let frac = 1 + self.below(30);
            s.push_str(&self.digits(frac));
            if self.below(2) == 0 {
                s.push_str("000");
            }
        }
        if self.below(3) == 0 {
            s.push_str(self.pick(&["e", "E"]));
            s.push_str(self.pick(&["", "+", "-"]));
            let exp = 1 + self.below(4);
            s.push_str(&self.digits(exp));
        }
        s
    }

    fn string(&mut self) -> String {
        let mut s = String::from("\"");
        for _ in 0..self.below(12) {
            s.push_str(self.pick(&[
                "a",
                "Z",
                " ",
                "é",
                "😀",
                "\u{FFFF}",
                "\\n",
                "\\\"",
                "\\\\",
                "\\/",
                "\\b",
                "\\f",
                "\\r",
                "\\t",
                "\\u0000",
                "\\u001f",
                "\\u00e9",
                "\\uFFFF",
                "\\ud83d\\ude00",
                "\\uD834\\uDD1E",
                "\\\\ud800",
                "[",
                "}",
                ":",
                ",",
            ]));
        }
        s.push('"');
        s
    }

    fn value(&mut self, depth: usize) -> String {
        let choice = if depth >= MAX_JSON_DEPTH {
            self.below(4)
        } else {
            self.below(7)
        };
        match choice {
            0 => self.number(),
            1 => self.string(),
            2 => self.pick(&["true", "false", "null"]).to_owned(),
            3 => self.number(),
            4 => {
                let n = self.below(4);
                let items: Vec<String> = (0..n)
                    .map(|_| {
                        let sp = self.space();
                        format!("{sp}{}{}", self.value(depth + 1), self.space())
                    })
                    .collect();
                format!("[{}{}]", items.join(","), self.space())
            }
            5 => {
                let n = self.below(4);
                let items: Vec<String> = (0..n)
                    .map(|_| {
                        let key = self.string();
                        let sp = self.space();
                        format!("{sp}{key}{sp}:{}{}", self.space(), self.value(depth + 1))
                    })
                    .collect();
                format!("{{{}{}}}", items.join(","), self.space())
            }
            _ => {
                // A chain straight down to the deepest nesting allowed.
                let levels = MAX_JSON_DEPTH - depth;
                let inner = self.number();
                format!("{}{inner}{}", "[".repeat(levels), "]".repeat(levels))
            }
        }
    }
}

/// The listed edge cases, then generated values.
fn values() -> Vec<String> {
    let mut out: Vec<String> = [
        "123456789012345678901234567890",
        "-9223372036854775809",
        "18446744073709551616",
        "1e400",
        "-1e400",
        "[1.7976931348623157e309]",
        "4.9e-325",
        "1.50",
        "0.1000000000000000055511151231257827",
        "-0",
        "\"\\ud83d\\ude00\"",
        "\"\\u0000\"",
        "{\"a\":1,\"a\":2}",
        "{ \"b\" : [ 1 , 2 ] , \"a\" : {} }",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    out.push("[".repeat(MAX_JSON_DEPTH) + &"]".repeat(MAX_JSON_DEPTH));
    let mut g = Gen(0x9E37_79B9_7F4A_7C15);
    out.extend((0..300).map(|_| g.value(0)));
    out
}

async fn call(app: &Router, method: &str, uri: &str, body: String) -> (StatusCode, Vec<u8>) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::from(body))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
        .await
        .unwrap();
    (status, bytes.to_vec())
}

#[derive(Deserialize)]
struct Snap {
    id: String,
    payload: Box<RawValue>,
    result: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct Claims {
    claims: Vec<ClaimItem>,
}

#[derive(Deserialize)]
struct ClaimItem {
    id: String,
    payload: Box<RawValue>,
    lease: LeaseItem,
}

#[derive(Deserialize)]
struct LeaseItem {
    token: String,
}

/// A `null` result reads as `None`; its text is `null`.
fn text_of(result: &Option<Box<RawValue>>) -> &str {
    result.as_deref().map_or("null", RawValue::get)
}

fn encoded(id: &str) -> String {
    baton_api::encode_component(id)
}

async fn app() -> Router {
    let backend = baton_sqlite::SqliteBackend::connect("sqlite::memory:")
        .await
        .unwrap();
    router(AppState::new(Arc::new(backend), ServerConfig::default()))
}

#[tokio::test]
async fn payloads_and_results_come_back_as_sent() {
    let app = app().await;
    for text in values() {
        let body = format!(r#"{{"kind": "k", "lane": "fid", "payload": {text}}}"#);
        let (status, answer) = call(&app, "POST", "/v1/executions", body).await;
        assert_eq!(status, StatusCode::CREATED, "{text}: {answer:?}");

        let claim = r#"{"worker_id": "w"}"#.to_owned();
        let (status, answer) = call(&app, "POST", "/v1/lanes/fid/claim", claim).await;
        assert_eq!(status, StatusCode::OK);
        let mut claims: Claims = serde_json::from_slice(&answer).unwrap();
        let c = claims.claims.pop().unwrap();
        assert_eq!(c.payload.get(), text, "claim");

        let id = encoded(&c.id);
        let body = format!(r#"{{"lease": "{}", "result": {text}}}"#, c.lease.token);
        let uri = format!("/v1/executions/{id}/complete");
        let (status, answer) = call(&app, "POST", &uri, body).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let done: Snap = serde_json::from_slice(&answer).unwrap();
        assert_eq!(text_of(&done.result), text, "complete");

        let (status, answer) = call(&app, "GET", &format!("/v1/executions/{id}"), "".into()).await;
        assert_eq!(status, StatusCode::OK);
        let snap: Snap = serde_json::from_slice(&answer).unwrap();
        assert_eq!(snap.id, c.id);
        assert_eq!(snap.payload.get(), text, "describe payload");
        assert_eq!(text_of(&snap.result), text, "describe result");
    }
}

#[tokio::test]
async fn json_baton_cannot_return_unchanged_is_refused_with_its_field() {
    let app = app().await;
    let too_deep = "[".repeat(MAX_JSON_DEPTH + 1) + &"]".repeat(MAX_JSON_DEPTH + 1);
    let refused = [
        (too_deep.as_str(), "depth"),
        (r#""\ud800""#, "surrogate"),
        (r#"{"a": "x\udc00y"}"#, "surrogate"),
    ];
    for (text, word) in refused {
        let body = format!(r#"{{"kind": "k", "lane": "bad", "payload": {text}}}"#);
        let (status, answer) = call(&app, "POST", "/v1/executions", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
        let v: serde_json::Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(v["error"]["field"], "payload", "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(word),
            "{v}"
        );

        let body =
            format!(r#"{{"executions": [{{"kind": "k"}}, {{"kind": "k", "payload": {text}}}]}}"#);
        let (status, answer) = call(&app, "POST", "/v1/executions/batch", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
        let v: serde_json::Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(v["error"]["field"], "executions[1].payload", "{v}");
    }
    // Nothing was created.
    let (_, answer) = call(&app, "GET", "/v1/executions", "".into()).await;
    let v: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(v["items"], serde_json::json!([]));

    let body = r#"{"kind": "k", "lane": "bad"}"#.to_owned();
    let (status, _) = call(&app, "POST", "/v1/executions", body).await;
    assert_eq!(status, StatusCode::CREATED);
    let claim = r#"{"worker_id": "w"}"#.to_owned();
    let (_, answer) = call(&app, "POST", "/v1/lanes/bad/claim", claim).await;
    let mut claims: Claims = serde_json::from_slice(&answer).unwrap();
    let c = claims.claims.pop().unwrap();
    let uri = format!("/v1/executions/{}/complete", encoded(&c.id));
    for (text, word) in refused {
        let body = format!(r#"{{"lease": "{}", "result": {text}}}"#, c.lease.token);
        let (status, answer) = call(&app, "POST", &uri, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
        let v: serde_json::Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(v["error"]["field"], "result", "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(word),
            "{v}"
        );
    }
    // The execution is still running under the same lease.
    let (_, answer) = call(
        &app,
        "GET",
        &format!("/v1/executions/{}", encoded(&c.id)),
        "".into(),
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(v["state"], "running", "{v}");
}
