//! The routes the server serves are the routes `/v1/openapi.json` documents,
//! method for method, and the other way round.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use baton_server::{AppState, OPENAPI, ServerConfig, router, routes};
use serde_json::Value;
use tower::ServiceExt;

const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// (method, path, operationId, needs a token) of every documented operation.
fn documented() -> BTreeSet<(String, String, String, bool)> {
    let doc: Value = serde_json::from_str(OPENAPI).unwrap();
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if !HTTP_METHODS.contains(&method.as_str()) {
                continue;
            }
            // The bearer token is required unless the route says otherwise:
            // no security at all (`[]`), or alternatives to it (the signal
            // route also takes a waitpoint token, checked by its handler).
            let public = match op.get("security").and_then(|s| s.as_array()) {
                Some(alternatives) => {
                    alternatives.is_empty()
                        || alternatives.iter().any(|a| a.get("bearer").is_none())
                }
                None => false,
            };
            out.insert((
                method.to_uppercase(),
                path.clone(),
                op["operationId"].as_str().unwrap_or_default().to_owned(),
                !public,
            ));
        }
    }
    out
}

#[test]
fn every_served_route_is_documented_and_every_documented_route_is_served() {
    let served: BTreeSet<(String, String, String, bool)> = routes()
        .iter()
        .map(|r| {
            (
                r.method().as_str().to_owned(),
                r.path().to_owned(),
                r.operation_id().to_owned(),
                r.requires_token(),
            )
        })
        .collect();
    let documented = documented();
    let missing: Vec<_> = served.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&served).collect();
    assert!(
        missing.is_empty(),
        "served but not in openapi.json: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "in openapi.json but not served: {extra:?}"
    );
}

/// The router answers every documented operation with its handler: never
/// the "no route" 404 nor a 405. Path parameters get a malformed value, so
/// a handler that runs answers 400 (or 200), never 404 for an unknown id.
#[tokio::test]
async fn the_router_serves_every_documented_operation() {
    let backend = baton_sqlite::SqliteBackend::connect("sqlite::memory:")
        .await
        .unwrap();
    let app = router(AppState::new(Arc::new(backend), ServerConfig::default()));
    for (method, path, op, _) in documented() {
        let uri = path
            .replace("{id}", "malformed")
            .replace("{lane}", "emails");
        let request = Request::builder()
            .method(method.as_str())
            .uri(&uri)
            .body(Body::from("{}"))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        assert!(
            status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri} ({op}) answered {status}"
        );
    }
}
