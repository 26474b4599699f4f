//! Flows over HTTP on SQLite: `child_key` at submit and in snapshots,
//! `children` paging, `tree`, and cancel with its `scope`, `cascaded` and
//! `cascade_pending` (the scheduler finishing a cascade too big for one
//! call). Every bad input answers the typed `400` naming its field.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use baton_core::{AdminBackend, EngineBackend, Limits};
use baton_engine::{Scheduler, SchedulerConfig};
use baton_server::{AppState, ServerConfig, router};
use baton_sqlite::{SqliteBackend, SqliteConfig};
use serde_json::{Value, json};
use tower::ServiceExt;

struct Api {
    app: Router,
    backend: Arc<SqliteBackend>,
}

impl Api {
    async fn new() -> Api {
        Self::with_limits(Limits::default()).await
    }

    async fn with_limits(limits: Limits) -> Api {
        let config = SqliteConfig::from_url("sqlite::memory:")
            .unwrap()
            .with_limits(limits);
        let backend = Arc::new(SqliteBackend::open(config).await.unwrap());
        let admin: Arc<dyn AdminBackend> = backend.clone();
        let app = router(AppState::new(admin, ServerConfig::default()));
        Api { app, backend }
    }

    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::from(body))
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{method} {uri}: not JSON ({e}): {bytes:?}"));
        (status, value)
    }

    async fn get(&self, uri: &str) -> Value {
        let (status, v) = self.call("GET", uri, None).await;
        assert_eq!(status, StatusCode::OK, "GET {uri}: {v}");
        v
    }

    async fn post(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.call("POST", uri, Some(body)).await
    }

    async fn submit(&self, body: Value) -> String {
        let (status, v) = self.post("/v1/executions", body.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{body} answered {v}");
        v["id"].as_str().unwrap().to_owned()
    }

    async fn child(&self, parent: &str, kind: &str) -> String {
        self.submit(json!({"kind": kind, "parent": parent})).await
    }

    async fn state(&self, id: &str) -> String {
        let v = self.get(&format!("/v1/executions/{}", enc(id))).await;
        v["state"].as_str().unwrap().to_owned()
    }
}

/// `{p:3}-…` percent-encoded for a path.
fn enc(id: &str) -> String {
    baton_api::encode_component(id)
}

/// Asserts the typed `400 invalid_input` naming `field`.
fn invalid(answer: (StatusCode, Value), field: &str) {
    let (status, v) = answer;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "invalid_input", "{v}");
    assert_eq!(v["error"]["field"], field, "{v}");
    assert!(!v["error"]["message"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn a_child_key_deduplicates_among_one_parents_children() {
    let api = Api::new().await;
    let parent = api.submit(json!({"kind": "root"})).await;
    let other = api.submit(json!({"kind": "root"})).await;
    let body = json!({"kind": "part", "parent": parent, "child_key": "shard-7"});
    let (status, first) = api.post("/v1/executions", body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["created"], true);
    let (status, again) = api.post("/v1/executions", body).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(
        (&again["id"], &again["created"]),
        (&first["id"], &json!(false))
    );
    // The same key under another parent is another child.
    let (status, elsewhere) = api
        .post(
            "/v1/executions",
            json!({"kind": "part", "parent": other, "child_key": "shard-7"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{elsewhere}");
    assert_ne!(elsewhere["id"], first["id"]);

    let id = first["id"].as_str().unwrap();
    let snap = api.get(&format!("/v1/executions/{}", enc(id))).await;
    assert_eq!(snap["child_key"], "shard-7");
    assert_eq!(snap["parent"], parent.as_str());
    assert_eq!(snap["root"], parent.as_str());
    let root = api.get(&format!("/v1/executions/{}", enc(&parent))).await;
    assert!(root.get("child_key").is_some_and(Value::is_null), "{root}");

    invalid(
        api.post("/v1/executions", json!({"kind": "k", "child_key": "x"}))
            .await,
        "child_key",
    );
    invalid(
        api.post(
            "/v1/executions",
            json!({"kind": "k", "parent": parent, "child_key": ""}),
        )
        .await,
        "child_key",
    );
    let (_, kids) = api
        .call(
            "GET",
            &format!("/v1/executions/{}/children", enc(&parent)),
            None,
        )
        .await;
    assert_eq!(kids["items"].as_array().unwrap().len(), 1, "{kids}");
}

#[tokio::test]
async fn children_are_paged_oldest_first() {
    let api = Api::new().await;
    let parent = api.submit(json!({"kind": "root"})).await;
    let mut kids = Vec::new();
    for i in 0..5 {
        kids.push(api.child(&parent, &format!("part.{i}")).await);
    }
    // A grandchild is not a child.
    api.child(&kids[0], "grandchild").await;
    let base = format!("/v1/executions/{}/children", enc(&parent));
    let mut seen = Vec::new();
    let mut uri = format!("{base}?limit=2");
    loop {
        let page = api.get(&uri).await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2, "{page}");
        for item in items {
            assert_eq!(item["parent"], parent.as_str());
            assert_eq!(item["state"], "waiting");
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => uri = format!("{base}?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, kids);
    let none = api
        .get(&format!("/v1/executions/{}/children", enc(&kids[4])))
        .await;
    assert_eq!(none, json!({"items": [], "next_cursor": null}));

    invalid(
        api.call("GET", &format!("{base}?limit=0"), None).await,
        "limit",
    );
    invalid(
        api.call("GET", &format!("{base}?limit=1001"), None).await,
        "limit",
    );
    invalid(
        api.call("GET", &format!("{base}?limit=ten"), None).await,
        "limit",
    );
    invalid(
        api.call("GET", &format!("{base}?cursor=garbage"), None)
            .await,
        "cursor",
    );
    let (status, v) = api.call("GET", &format!("{base}?colour=blue"), None).await;
    assert_eq!(
        (status, &v["error"]["code"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_input"))
    );
    let (status, v) = api
        .call("GET", "/v1/executions/not-an-id/children", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let unknown = baton_core::ExecutionId::generate(api.backend.partitions());
    let (status, v) = api
        .call(
            "GET",
            &format!("/v1/executions/{}/children", enc(&unknown.to_string())),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["error"]["code"], "not_found");
}

#[tokio::test]
async fn the_tree_answers_the_whole_flow_from_any_member() {
    let api = Api::new().await;
    let root = api.submit(json!({"kind": "report"})).await;
    let a = api.child(&root, "section").await;
    let b = api.child(&root, "section").await;
    let a1 = api.child(&a, "chart").await;
    let unrelated = api.submit(json!({"kind": "report"})).await;

    let tree = api.get(&format!("/v1/executions/{}/tree", enc(&a1))).await;
    assert_eq!(tree["root"], root.as_str());
    assert_eq!(tree["truncated"], false);
    let items = tree["items"].as_array().unwrap();
    let got: Vec<(&str, &Value, &str, &str)> = items
        .iter()
        .map(|i| {
            assert_eq!(
                i.as_object().unwrap().len(),
                4,
                "only id, parent, state, kind: {i}"
            );
            (
                i["id"].as_str().unwrap(),
                &i["parent"],
                i["state"].as_str().unwrap(),
                i["kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (root.as_str(), &Value::Null, "waiting", "report"),
            (a.as_str(), &json!(root), "waiting", "section"),
            (b.as_str(), &json!(root), "waiting", "section"),
            (a1.as_str(), &json!(a), "waiting", "chart"),
        ]
    );
    assert!(!tree.to_string().contains(&unrelated));

    let cut = api
        .get(&format!("/v1/executions/{}/tree?limit=2", enc(&root)))
        .await;
    assert_eq!(cut["truncated"], true);
    assert_eq!(cut["items"].as_array().unwrap().len(), 2);
    let exact = api
        .get(&format!("/v1/executions/{}/tree?limit=4", enc(&root)))
        .await;
    assert_eq!(exact["truncated"], false);

    let base = format!("/v1/executions/{}/tree", enc(&root));
    for bad in ["0", "10001", "all"] {
        invalid(
            api.call("GET", &format!("{base}?limit={bad}"), None).await,
            "limit",
        );
    }
}

#[tokio::test]
async fn cancel_scope_decides_whether_descendants_follow() {
    let api = Api::new().await;
    let root = api.submit(json!({"kind": "root"})).await;
    let a = api.child(&root, "a").await;
    let b = api.child(&root, "b").await;
    let a1 = api.child(&a, "a1").await;
    let done = api
        .submit(json!({"kind": "done", "parent": root, "lane": "quick"}))
        .await;
    // One child finishes first: a cascade leaves terminal members alone.
    let (_, claim) = api
        .post("/v1/lanes/quick/claim", json!({"worker_id": "w"}))
        .await;
    assert_eq!(claim["claims"][0]["id"], done.as_str(), "{claim}");
    let lease = claim["claims"][0]["lease"]["token"].as_str().unwrap();
    let (status, v) = api
        .post(
            &format!("/v1/executions/{}/complete", enc(&done)),
            json!({"lease": lease, "result": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");

    let uri = |id: &str| format!("/v1/executions/{}/cancel", enc(id));
    // A bad scope changes nothing.
    invalid(
        api.post(&uri(&a), json!({"scope": "subtree"})).await,
        "scope",
    );
    assert_eq!(api.state(&a).await, "waiting");

    let (status, only) = api
        .post(&uri(&a), json!({"reason": "just a", "scope": "execution"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{only}");
    assert_eq!(only["id"], a.as_str());
    assert_eq!(only["state"], "cancelled");
    assert_eq!(only["cancel_reason"], "just a");
    assert_eq!(
        (&only["cascaded"], &only["cascade_pending"]),
        (&json!(0), &json!(false))
    );
    assert_eq!(api.state(&a1).await, "waiting");

    // No body: scope tree, no reason. `b` and `a1` follow; `a` was cancelled
    // already and `done` is terminal.
    let (status, all) = api.call("POST", &uri(&root), None).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(all["state"], "cancelled");
    assert_eq!(
        (&all["cascaded"], &all["cascade_pending"]),
        (&json!(2), &json!(false))
    );
    for id in [&root, &a, &b, &a1] {
        assert_eq!(api.state(id).await, "cancelled", "{id}");
    }
    assert_eq!(api.state(&done).await, "completed");
    let snap = api.get(&format!("/v1/executions/{}", enc(&a1))).await;
    assert_eq!(
        snap["cancel_reason"],
        format!("cancelled with its ancestor {root}")
    );
    // Again: a no-op with nothing left to cascade.
    let (status, again) = api.post(&uri(&root), json!({"scope": "tree"})).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["cascaded"], 0);
    // A completed execution cannot be cancelled, whatever the scope.
    let (status, v) = api.post(&uri(&done), json!({"scope": "execution"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["state"], "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_finishes_a_cascade_too_big_for_one_call() {
    let budget = 3;
    let api = Api::with_limits(Limits {
        cascade_budget: budget,
        ..Limits::default()
    })
    .await;
    let root = api.submit(json!({"kind": "root"})).await;
    let mut members = Vec::new();
    for _ in 0..4 {
        let kid = api.child(&root, "kid").await;
        members.push(api.child(&kid, "grandkid").await);
        members.push(kid);
    }
    let (status, first) = api
        .post(
            &format!("/v1/executions/{}/cancel", enc(&root)),
            json!({"reason": "too many"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["cascade_pending"], true, "{first}");
    let cascaded = first["cascaded"].as_u64().unwrap();
    assert!((1..=budget as u64).contains(&cascaded), "{first}");

    let engine_backend: Arc<dyn EngineBackend> = api.backend.clone();
    let engine = Scheduler::start(
        engine_backend,
        SchedulerConfig::default().with_sweep(Duration::from_millis(50)),
    );
    let tree_uri = format!("/v1/executions/{}/tree", enc(&root));
    let mut left = usize::MAX;
    for _ in 0..400 {
        let tree = api.get(&tree_uri).await;
        left = tree["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["state"] != "cancelled")
            .count();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(left, 0, "the scheduler never finished the cascade");
    let by_pass = engine
        .metrics()
        .cascaded
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(by_pass + cascaded, members.len() as u64);
    engine.shutdown().await;
    for id in &members {
        let snap = api.get(&format!("/v1/executions/{}", enc(id))).await;
        assert_eq!(
            snap["cancel_reason"],
            format!("cancelled with its ancestor {root}: too many")
        );
    }
}
