//! The dashboard over SQLite, driven with `oneshot`: escaping, headers,
//! the token and cross-site refusals, the filter mapping, and actions in
//! two steps.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use baton_api::encode_component;
use baton_core::{State as ExecState, Timestamp};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::CSP;
use super::pages::{list_request, parse_filter};
use crate::{AppState, ServerConfig, router};

const XSS: &str = "\"><script>alert(1)</script>";
const TOKEN: &str = "s3cret-token-for-tests";
const HOST: &str = "baton.test:7420";

struct Ui {
    app: Router,
    token: Option<&'static str>,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

impl Ui {
    async fn new(token: Option<&'static str>) -> Ui {
        Self::with_config(token, ServerConfig::default()).await
    }

    async fn with_config(token: Option<&'static str>, mut config: ServerConfig) -> Ui {
        let backend = baton_sqlite::SqliteBackend::connect("sqlite::memory:")
            .await
            .unwrap();
        if let Some(t) = token {
            config = config.with_api_token(t);
        }
        let app = router(AppState::new(Arc::new(backend), config));
        Ui { app, token }
    }

    async fn send(
        &self,
        method: &str,
        uri: &str,
        body: String,
        bearer: bool,
        extra: &[(&str, &str)],
    ) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, HOST);
        if bearer && let Some(t) = self.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        for (k, v) in extra {
            request = request.header(*k, *v);
        }
        let response = self
            .app
            .clone()
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// A page, with the token when the server has one.
    async fn page(&self, uri: &str) -> Answer {
        self.send("GET", uri, String::new(), true, &[]).await
    }

    /// A form post from the dashboard's own origin, with the token.
    async fn form(&self, uri: &str, body: &str) -> Answer {
        let origin = format!("http://{HOST}");
        self.send(
            "POST",
            uri,
            body.to_owned(),
            true,
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("origin", &origin),
                ("sec-fetch-site", "same-origin"),
            ],
        )
        .await
    }

    async fn api(&self, method: &str, uri: &str, body: Value) -> Value {
        let a = self.send(method, uri, body.to_string(), true, &[]).await;
        assert!(
            a.status.is_success(),
            "{method} {uri}: {} {}",
            a.status,
            a.body
        );
        serde_json::from_str(&a.body).unwrap()
    }

    async fn submit(&self, body: Value) -> String {
        let v = self.api("POST", "/v1/executions", body).await;
        v["id"].as_str().unwrap().to_owned()
    }

    async fn state_of(&self, id: &str) -> Value {
        self.api(
            "GET",
            &format!("/v1/executions/{}", encode_component(id)),
            Value::Null,
        )
        .await
    }

    /// Claims one execution of `lane` and fails it for good with `error`.
    async fn claim(&self, lane: &str) -> Value {
        let v = self
            .api(
                "POST",
                &format!("/v1/lanes/{lane}/claim"),
                json!({"worker_id": "w-1", "max": 1}),
            )
            .await;
        v["claims"][0].clone()
    }

    async fn fail(&self, claim: &Value, error: &str) {
        let id = claim["id"].as_str().unwrap();
        self.api(
            "POST",
            &format!("/v1/executions/{}/fail", encode_component(id)),
            json!({"lease": claim["lease"]["token"], "error": error, "retryable": false}),
        )
        .await;
    }

    async fn complete(&self, claim: &Value) {
        let id = claim["id"].as_str().unwrap();
        self.api(
            "POST",
            &format!("/v1/executions/{}/complete", encode_component(id)),
            json!({"lease": claim["lease"]["token"], "result": {"ok": true}}),
        )
        .await;
    }
}

fn detail(id: &str) -> String {
    format!("/ui/executions/{}", encode_component(id))
}

#[tokio::test]
async fn request_text_is_escaped_on_every_page() {
    let ui = Ui::new(None).await;
    let failed = ui
        .submit(json!({"kind": "k", "lane": "emails", "max_attempts": 1,
            "tags": {"note": XSS}, "payload": {"x": XSS}}))
        .await;
    let claim = ui.claim("emails").await;
    ui.fail(&claim, XSS).await;
    let cancelled = ui
        .submit(json!({"kind": "k", "lane": "emails", "payload": XSS}))
        .await;
    ui.api(
        "POST",
        &format!("/v1/executions/{}/cancel", encode_component(&cancelled)),
        json!({"reason": XSS}),
    )
    .await;
    let tag = encode_component(&format!("note:{XSS}"));
    let bad = encode_component(XSS);
    let pages = [
        "/ui".to_owned(),
        "/ui/executions".to_owned(),
        format!("/ui/executions?tag={tag}"),
        format!("/ui/executions?kind={bad}"),
        format!("/ui/executions?lane={bad}"),
        format!("/ui/executions?created_after={bad}"),
        format!("/ui/executions?{bad}=1"),
        format!("/ui?namespace={bad}"),
        detail(&failed),
        detail(&cancelled),
        format!("{}/replay", detail(&failed)),
        format!("{}/cancel", detail(&cancelled)),
        format!("/ui/bulk/cancel?tag={tag}"),
        format!("/ui/bulk/replay?state=failed&reason={bad}"),
        format!("/ui/lanes/{bad}/pause"),
        format!("/ui/executions/{bad}"),
        format!("{}?done={bad}", detail(&failed)),
        format!("{}?events_after={bad}", detail(&failed)),
    ];
    let mut seen_escaped = 0;
    for uri in &pages {
        let a = ui.page(uri).await;
        assert!(
            !a.body.contains("<script>alert(1)</script>"),
            "{uri} ({}) holds the raw markup:\n{}",
            a.status,
            a.body
        );
        assert!(a.body.contains("<main"), "{uri}: {}", a.body);
        if a.body.contains("&#60;script&#62;") {
            seen_escaped += 1;
        }
    }
    // The text was there, escaped, on the pages that show it.
    assert!(
        seen_escaped >= 6,
        "escaped text on {seen_escaped} pages only"
    );
}

#[tokio::test]
async fn every_answer_has_the_security_headers() {
    let ui = Ui::new(None).await;
    let id = ui.submit(json!({"kind": "k", "lane": "emails"})).await;
    let urls = super::assets::urls();
    for uri in [
        "/ui".to_owned(),
        "/ui/executions".to_owned(),
        detail(&id),
        format!("{}/cancel", detail(&id)),
        "/ui/lanes/emails/pause".to_owned(),
        "/ui/bulk/cancel?lane=emails".to_owned(),
        "/ui/executions/nope".to_owned(),
        "/ui/no/such/page".to_owned(),
        urls.css.clone(),
        urls.js.clone(),
        urls.icon.clone(),
    ] {
        let a = ui.page(&uri).await;
        let h = |name: &str| {
            a.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(h("content-security-policy"), CSP, "{uri}");
        assert_eq!(h("x-content-type-options"), "nosniff", "{uri}");
        assert_eq!(h("referrer-policy"), "no-referrer", "{uri}");
        assert_eq!(h("x-frame-options"), "DENY", "{uri}");
        if uri.starts_with("/ui/assets/") {
            assert_eq!(a.status, StatusCode::OK, "{uri}");
            assert_eq!(h("cache-control"), "public, max-age=31536000, immutable");
        } else {
            assert_eq!(h("cache-control"), "no-store", "{uri}");
            assert_eq!(h("vary"), "Authorization", "{uri}");
            assert!(h("content-type").starts_with("text/html"), "{uri}");
            // No inline script or style for the CSP to block.
            assert!(!a.body.contains("style="), "{uri}");
            assert!(!a.body.contains("<script>"), "{uri}");
            assert!(!a.body.contains(" onclick="), "{uri}");
        }
    }
    assert_eq!(
        CSP,
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    );
    let stale = ui.page("/ui/assets/baton.css?v=000000000000").await;
    assert_eq!(
        stale.headers.get("cache-control").unwrap(),
        "no-cache",
        "an old hash is revalidated"
    );
    assert_eq!(
        ui.page("/ui/assets/nothing.js").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_root_redirects_and_the_dashboard_can_be_left_out() {
    let ui = Ui::new(None).await;
    let a = ui.page("/").await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.location(), "/ui");
    let off = Ui::with_config(None, ServerConfig::default().with_ui(false)).await;
    assert_eq!(off.page("/ui").await.status, StatusCode::NOT_FOUND);
    assert_eq!(off.page("/").await.status, StatusCode::NOT_FOUND);
    assert_eq!(off.page("/healthz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn without_the_token_the_shell_is_locked_and_actions_are_refused() {
    let ui = Ui::new(Some(TOKEN)).await;
    let id = ui
        .submit(json!({"kind": "k", "lane": "secretlane", "namespace": "tenant-x"}))
        .await;
    for uri in [
        "/ui".to_owned(),
        "/ui?namespace=tenant-x".to_owned(),
        "/ui/executions?namespace=tenant-x".to_owned(),
        detail(&id),
        format!("{}/cancel", detail(&id)),
        "/ui/bulk/cancel?namespace=tenant-x&lane=secretlane".to_owned(),
    ] {
        let a = ui.send("GET", &uri, String::new(), false, &[]).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{uri}");
        assert!(a.body.contains("<main data-locked>"), "{uri}");
        assert!(
            a.body
                .contains("<form id=\"unlock\" method=\"post\" action=\"/ui/unlock\"")
        );
        assert!(
            a.body
                .contains("id=\"token\" name=\"token\" type=\"password\"")
        );
        assert!(a.body.contains("id=\"nav-overview\""));
        for secret in [id.as_str(), "secretlane", "tenant-x", TOKEN] {
            assert!(!a.body.contains(secret), "{uri} shows {secret}");
        }
        assert!(!a.body.contains("forget-token"), "{uri}");
    }
    // A wrong token is refused the same way.
    let wrong = ui
        .send(
            "GET",
            "/ui",
            String::new(),
            false,
            &[("authorization", "Bearer nope")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("refused"));
    // With it, the data, and the way to forget it.
    let a = ui.page("/ui?namespace=tenant-x").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.contains("secretlane"));
    assert!(a.body.contains("id=\"forget-token\""));
    assert!(!a.body.contains(TOKEN));
    // A POST without the token: 401, nothing changes.
    let origin = format!("http://{HOST}");
    let a = ui
        .send(
            "POST",
            &format!("{}/cancel", detail(&id)),
            "reason=x".into(),
            false,
            &[("origin", &origin)],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(!a.body.contains(id.as_str()));
    assert_eq!(ui.state_of(&id).await["state"], "waiting");
    // The no-JS unlock form never takes the token.
    let a = ui
        .send("POST", "/ui/unlock", format!("token={TOKEN}"), false, &[])
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.body.contains("JavaScript"));
    assert!(!a.body.contains(TOKEN));
    // Assets are public.
    let css = super::assets::urls().css.clone();
    let a = ui.send("GET", &css, String::new(), false, &[]).await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn cross_site_posts_are_refused_on_ui_and_api() {
    let ui = Ui::new(None).await;
    let id = ui.submit(json!({"kind": "k"})).await;
    let cancel = format!("{}/cancel", detail(&id));
    for headers in [
        vec![("origin", "http://evil.example")],
        vec![("origin", "null")],
        vec![("sec-fetch-site", "cross-site")],
        vec![
            ("sec-fetch-site", "same-site"),
            ("origin", "http://baton.test:7420"),
        ],
    ] {
        let a = ui
            .send("POST", &cancel, "reason=x".into(), false, &headers)
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{headers:?}");
        // The API too: a text/plain JSON body from another site.
        let mut api_headers = headers.clone();
        api_headers.push(("content-type", "text/plain"));
        let a = ui
            .send(
                "POST",
                "/v1/executions",
                json!({"kind": "from-elsewhere"}).to_string(),
                false,
                &api_headers,
            )
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{headers:?}");
        let v: Value = serde_json::from_str(&a.body).unwrap();
        assert_eq!(v["error"]["code"], "forbidden");
    }
    assert_eq!(ui.state_of(&id).await["state"], "waiting");
    let listed = ui
        .api("GET", "/v1/executions?kind=from-elsewhere", Value::Null)
        .await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 0);
    // Reads are not refused, and programs without the headers are served.
    let a = ui
        .send(
            "GET",
            "/v1/stats",
            String::new(),
            false,
            &[("origin", "http://evil.example")],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    ui.submit(json!({"kind": "from-curl"})).await;
    // The dashboard's own origin is served.
    let a = ui.form(&cancel, "reason=x").await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
}

#[test]
fn form_queries_become_the_apis_list_query() {
    let now: Timestamp = "2030-01-02T00:00:00Z".parse().unwrap();
    let form = parse_filter(
        "namespace=&lane=emails&state=expired&state=failed&kind=&tag=customer%3A42&created_after=24h&finished_before=2030-01-01T12%3A00%3A00Z&limit=5&cursor=",
        now,
        &["limit", "cursor"],
    )
    .unwrap();
    assert_eq!(form.query.namespace, None);
    assert_eq!(form.query.lane.as_deref(), Some("emails"));
    assert_eq!(form.query.state.as_deref(), Some("failed,expired"));
    assert_eq!(form.query.kind, None);
    assert_eq!(form.query.tag.as_deref(), Some("customer:42"));
    assert_eq!(
        form.query.created_after.as_deref(),
        Some("2030-01-01T00:00:00.000Z")
    );
    assert_eq!(
        form.query.finished_before.as_deref(),
        Some("2030-01-01T12:00:00.000Z")
    );
    assert_eq!(form.typed["created_after"], "24h");
    let (filter, page) = list_request(&form).unwrap();
    assert_eq!(filter.states.len(), 2);
    assert!(filter.states.contains(&ExecState::Failed));
    assert_eq!(filter.lane.unwrap().as_str(), "emails");
    assert_eq!(page.limit, 5);
    assert!(page.cursor.is_none());
    // A comma-separated state (the Next link's) reads the same.
    let again = parse_filter("state=failed,expired", now, &[]).unwrap();
    assert_eq!(again.query.state, form.query.state);
    // The defaults and the bounds.
    let (_, page) = list_request(&parse_filter("", now, &["limit"]).unwrap()).unwrap();
    assert_eq!(page.limit, 50);
    assert!(list_request(&parse_filter("limit=201", now, &["limit"]).unwrap()).is_err());
    // Errors name the parameter.
    for (q, field) in [
        ("state=sleeping", "state"),
        ("created_after=yesterday", "created_after"),
        ("colour=blue", "query"),
        ("limit=5", "query"),
    ] {
        match parse_filter(q, now, &[]) {
            Err(baton_core::EngineError::InvalidInput { field: f, .. }) => {
                assert_eq!(f, field, "{q}")
            }
            other => panic!("{q}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_list_pages_forward_with_the_same_filter() {
    let ui = Ui::new(None).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(ui.submit(json!({"kind": "k", "lane": "emails"})).await);
    }
    ui.submit(json!({"kind": "k", "lane": "other"})).await;
    let a = ui
        .page("/ui/executions?lane=emails&state=waiting&created_after=1h&limit=2")
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body.contains("<form id=\"filter\" method=\"get\""));
    assert!(a.body.contains("value=\"waiting\" checked"));
    assert_eq!(a.body.matches("<tr data-id=").count(), 2);
    assert!(a.body.contains(&format!(
        "data-id=\"{}\" data-state=\"waiting\" data-lane=\"emails\"",
        ids[0]
    )));
    // Next carries the cursor and the span resolved to an instant.
    let next = a
        .body
        .split("id=\"next\" href=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .replace("&#38;", "&");
    assert!(next.contains("cursor="), "{next}");
    assert!(next.contains("created_after=20"), "{next}");
    assert!(!next.contains("1h"), "{next}");
    let b = ui.page(&next).await;
    assert_eq!(b.body.matches("<tr data-id=").count(), 1, "{}", b.body);
    assert!(b.body.contains(&ids[2]));
    assert!(!b.body.contains("id=\"next\""));
    assert!(b.body.contains("id=\"bulk-cancel\""));
    // A bad filter is shown above the form, naming the field.
    let c = ui.page("/ui/executions?created_after=soon").await;
    assert_eq!(c.status, StatusCode::BAD_REQUEST);
    assert!(c.body.contains("class=\"error\""));
    assert!(c.body.contains("created_after"));
}

#[tokio::test]
async fn the_overview_lists_lanes_with_every_state() {
    let ui = Ui::new(None).await;
    ui.submit(json!({"kind": "k", "lane": "emails"})).await;
    ui.submit(json!({"kind": "k", "lane": "emails"})).await;
    let claim = ui.claim("emails").await;
    ui.complete(&claim).await;
    ui.submit(json!({"kind": "k", "lane": "reports"})).await;
    ui.api("POST", "/v1/lanes/reports/pause", json!({})).await;
    // The worker registry records claims.
    let a = ui.page("/ui").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.contains("<table id=\"lanes\" class=\"cards\">"));
    assert!(
        a.body
            .contains("<tr data-lane=\"emails\" data-namespace=\"default\">")
    );
    for s in ExecState::ALL {
        assert!(a.body.contains(&format!("data-state=\"{s}\"")), "{s}");
    }
    let emails = a.body.split("data-lane=\"emails\"").nth(1).unwrap();
    let emails = emails.split("</tr>").next().unwrap();
    assert!(
        emails.contains("data-state=\"waiting\" data-label=\"waiting\" class=\"count\">1<"),
        "{emails}"
    );
    assert!(
        emails.contains("data-state=\"completed\" data-label=\"completed\" class=\"count\">1<"),
        "{emails}"
    );
    assert!(
        emails.contains("data-state=\"failed\" data-label=\"failed\" class=\"count zero\">0<"),
        "{emails}"
    );
    assert!(!emails.contains("badge-paused"));
    let reports = a.body.split("data-lane=\"reports\"").nth(1).unwrap();
    assert!(
        reports
            .split("</tr>")
            .next()
            .unwrap()
            .contains("badge-paused")
    );
    assert!(a.body.contains("<section id=\"workers\">"));
    assert!(a.body.contains("data-worker=\"w-1\""));
    assert!(a.body.contains("<svg id=\"throughput\""));
}

#[tokio::test]
async fn a_confirmation_changes_nothing_and_its_post_acts() {
    let ui = Ui::new(Some(TOKEN)).await;
    let id = ui.submit(json!({"kind": "k", "lane": "emails"})).await;
    let page = ui.page(&format!("{}/cancel", detail(&id))).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<form id=\"confirm\" method=\"post\""));
    assert!(page.body.contains("name=\"reason\""));
    assert!(page.body.contains("name=\"scope\" value=\"tree\" checked"));
    assert!(page.body.contains("name=\"scope\" value=\"execution\""));
    assert!(page.body.contains("id=\"confirm-submit\""));
    assert!(page.body.contains("id=\"confirm-back\""));
    assert_eq!(ui.state_of(&id).await["state"], "waiting");
    let d = ui.page(&detail(&id)).await;
    assert!(
        d.body
            .contains("<span id=\"state-badge\" class=\"badge state-waiting\">waiting</span>")
    );
    assert!(d.body.contains("id=\"action-cancel\""));
    assert!(d.body.contains("id=\"action-pause\""));
    assert!(!d.body.contains("id=\"action-replay\""));
    assert!(!d.body.contains("id=\"action-resume\""));
    assert!(d.body.contains("id=\"explain\""));
    // The POST acts and redirects to the detail page.
    let a = ui
        .form(
            &format!("{}/cancel", detail(&id)),
            "reason=no+longer+needed&scope=execution",
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(a.location(), format!("{}?done=cancelled", detail(&id)));
    let v = ui.state_of(&id).await;
    assert_eq!(v["state"], "cancelled");
    assert_eq!(v["cancel_reason"], "no longer needed");
    let d = ui.page(a.location()).await;
    assert!(d.body.contains("class=\"notice\""));
    assert!(d.body.contains(">cancelled</span>"));
    assert!(d.body.contains("id=\"action-replay\""));
    // Replay it in two steps too.
    let r = ui.form(&format!("{}/replay", detail(&id)), "").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(ui.state_of(&id).await["state"], "waiting");
    // Pause and resume.
    let p = ui
        .form(&format!("{}/pause", detail(&id)), "scope=tree")
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(ui.state_of(&id).await["state"], "paused");
    let d = ui.page(&detail(&id)).await;
    assert!(d.body.contains("id=\"action-resume\""));
    let p = ui.form(&format!("{}/resume", detail(&id)), "").await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(ui.state_of(&id).await["state"], "waiting");
}

#[tokio::test]
async fn a_conflict_shows_the_confirmation_again() {
    let ui = Ui::new(None).await;
    let id = ui.submit(json!({"kind": "k", "lane": "emails"})).await;
    let claim = ui.claim("emails").await;
    ui.complete(&claim).await;
    let a = ui
        .form(&format!("{}/cancel", detail(&id)), "reason=late")
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.body);
    assert!(a.body.contains("<form id=\"confirm\""));
    assert!(a.body.contains("class=\"error\""));
    assert!(a.body.contains("state-completed"));
    assert_eq!(ui.state_of(&id).await["state"], "completed");
    // An action that is not one: 404.
    assert_eq!(
        ui.page(&format!("{}/delete", detail(&id))).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_flow_tree_and_the_sections_of_the_detail_page() {
    let ui = Ui::new(None).await;
    let root = ui
        .submit(json!({"kind": "root", "payload": {"n": 12345678901234567890u128}}))
        .await;
    let a = ui.submit(json!({"kind": "child", "parent": root})).await;
    let b = ui.submit(json!({"kind": "child", "parent": root})).await;
    let d = ui.page(&detail(&root)).await;
    assert_eq!(d.status, StatusCode::OK, "{}", d.body);
    assert!(d.body.contains("<ul id=\"tree\">"));
    for id in [&root, &a, &b] {
        assert!(d.body.contains(&format!("<li data-id=\"{id}\"")), "{id}");
    }
    assert!(d.body.contains("12345678901234567890"));
    for section in [
        "id=\"payload\"",
        "id=\"result\"",
        "id=\"error\"",
        "<table id=\"attempts\">",
        "id=\"events\"",
    ] {
        assert!(d.body.contains(section), "{section}");
    }
    // The cancel confirmation counts the descendants.
    let c = ui.page(&format!("{}/cancel", detail(&root))).await;
    assert!(
        c.body.contains("its 2 unfinished descendants"),
        "{}",
        c.body
    );
    // An execution alone has no tree.
    let alone = ui.submit(json!({"kind": "solo"})).await;
    assert!(!ui.page(&detail(&alone)).await.body.contains("id=\"tree\""));
    assert_eq!(
        ui.page("/ui/executions/{p:0}-bad").await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn bulk_actions_count_first_then_act() {
    let ui = Ui::new(None).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(ui.submit(json!({"kind": "k", "lane": "emails"})).await);
    }
    let other = ui.submit(json!({"kind": "k", "lane": "reports"})).await;
    let a = ui.page("/ui/bulk/cancel?lane=emails&state=waiting").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(
        a.body
            .contains("data-matched=\"3\" data-would-change=\"3\" data-would-skip=\"0\""),
        "{}",
        a.body
    );
    assert!(
        a.body
            .contains("<form id=\"confirm\" method=\"post\" action=\"/ui/bulk/cancel\">")
    );
    assert!(a.body.contains("id=\"confirm-submit\""));
    for id in &ids {
        assert_eq!(ui.state_of(id).await["state"], "waiting");
    }
    let r = ui
        .form(
            "/ui/bulk/cancel",
            "namespace=default&lane=emails&state=waiting&reason=cleanup&scope=tree",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        r.body
            .contains("id=\"bulk-result\" data-matched=\"3\" data-changed=\"3\""),
        "{}",
        r.body
    );
    for id in &ids {
        let v = ui.state_of(id).await;
        assert_eq!(v["state"], "cancelled");
        assert_eq!(v["cancel_reason"], "cleanup");
    }
    assert_eq!(ui.state_of(&other).await["state"], "waiting");
    // A filter that narrows nothing needs the "all" box.
    let n = ui.page("/ui/bulk/replay").await;
    assert_eq!(n.status, StatusCode::BAD_REQUEST);
    assert!(n.body.contains("id=\"bulk-all\""));
    assert!(n.body.contains("name=\"all\""));
    let all = ui.page("/ui/bulk/replay?all=on").await;
    assert!(
        all.body
            .contains("data-matched=\"4\" data-would-change=\"3\" data-would-skip=\"1\""),
        "{}",
        all.body
    );
    let r = ui.form("/ui/bulk/replay", "namespace=default&all=on").await;
    assert!(r.body.contains("data-changed=\"3\""), "{}", r.body);
    assert_eq!(ui.state_of(&ids[0]).await["state"], "waiting");
}

#[tokio::test]
async fn lanes_pause_and_resume_in_two_steps() {
    let ui = Ui::new(None).await;
    ui.submit(json!({"kind": "k", "lane": "emails"})).await;
    let c = ui.page("/ui/lanes/emails/pause?namespace=default").await;
    assert_eq!(c.status, StatusCode::OK);
    assert!(
        c.body
            .contains("<form id=\"confirm\" method=\"post\" action=\"/ui/lanes/emails/pause\">")
    );
    assert!(c.body.contains("its 1 waiting executions"));
    let lanes = ui.api("GET", "/v1/lanes", Value::Null).await;
    assert_eq!(lanes["lanes"][0]["paused"], false);
    let a = ui.form("/ui/lanes/emails/pause", "namespace=default").await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.location(), "/ui?namespace=default&done=lane_paused");
    let lanes = ui.api("GET", "/v1/lanes", Value::Null).await;
    assert_eq!(lanes["lanes"][0]["paused"], true);
    let o = ui.page(a.location()).await;
    assert!(o.body.contains("class=\"notice\""));
    assert!(o.body.contains("badge-paused"));
    let a = ui
        .form("/ui/lanes/emails/resume", "namespace=default")
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    let lanes = ui.api("GET", "/v1/lanes", Value::Null).await;
    assert_eq!(lanes["lanes"][0]["paused"], false);
}

#[tokio::test]
async fn the_overview_charts_what_the_sampler_saw() {
    use super::rates::Sample;
    use baton_core::{Lane, Namespace};
    let backend = baton_sqlite::SqliteBackend::connect("sqlite::memory:")
        .await
        .unwrap();
    let state = AppState::new(Arc::new(backend), ServerConfig::default());
    let ui = Ui {
        app: router(state.clone()),
        token: None,
    };
    ui.submit(json!({"kind": "k", "lane": "emails"})).await;
    let claim = ui.claim("emails").await;
    ui.complete(&claim).await;
    // Samples that agree with the backend (one completed in lane emails),
    // so the sampler's own first sample, whenever it lands, changes
    // nothing.
    let key = (
        Namespace::new("default").unwrap(),
        Lane::new("emails").unwrap(),
    );
    let now = Timestamp::now_system();
    for (ago, completed) in [(120, 0), (30, 1)] {
        state.rates().record(Sample {
            at: now.saturating_sub(std::time::Duration::from_secs(ago)),
            totals: [(key.clone(), (completed, 0))].into_iter().collect(),
        });
    }
    let a = ui.page("/ui").await;
    assert!(
        a.body.contains("this minute: 1 completed, 0 failed"),
        "{}",
        a.body
    );
    assert!(a.body.contains("<rect class=\"ok\""));
    assert!(a.body.contains("id=\"rate-5m\">0.0%<"), "{}", a.body);
    assert!(!a.body.contains("(collecting…)"));
}
