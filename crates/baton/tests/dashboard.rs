//! The dashboard in a real browser (RFC 0012, "Browser test"): a headless
//! Chromium, driven over the DevTools protocol on a pipe (`dashboard/cdp.rs`),
//! against a real `baton serve` on a fresh SQLite file, seeded through the
//! HTTP API. Each page visited is saved as a screenshot under
//! `$BATON_TEST_ARTIFACTS/dashboard/` (default
//! `$CARGO_TARGET_TMPDIR/artifacts/dashboard/`).
//!
//! Without Chromium (see `baton_testkit::servers::chromium`) these tests
//! skip loudly, and fail under CI.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "dashboard/cdp.rs"]
mod cdp;
mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use cdp::{Browser, Result};
use common::server::{Server, encoded};

/// Where this test binary's screenshots and browser logs go.
fn artifacts() -> PathBuf {
    let base = std::env::var_os("BATON_TEST_ARTIFACTS")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("artifacts"));
    base.join("dashboard")
}

/// A browser with one page open, its log named after `test`; `None` (the
/// test skips loudly, or fails under CI) without Chromium.
fn browser(test: &str) -> Option<Browser> {
    let chromium = baton_testkit::servers::chromium()?;
    let log = artifacts().join(format!("chromium-{test}.log"));
    let mut browser = Browser::launch(chromium, &log).unwrap_or_else(|e| {
        panic!(
            "starting {} ({}): {e}",
            chromium.path.display(),
            chromium.version
        )
    });
    browser.open_page().expect("a page opens");
    Some(browser)
}

/// The width and height a PNG's header gives, after checking its
/// signature.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(png.len() > 24, "a PNG of {} bytes", png.len());
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG signature");
    assert_eq!(&png[12..16], b"IHDR", "no IHDR chunk first");
    let word = |at: usize| u32::from_be_bytes([png[at], png[at + 1], png[at + 2], png[at + 3]]);
    (word(16), word(20))
}

/// Saves a screenshot under [`artifacts`] and checks it is a PNG of the
/// viewport's size with some content.
fn screenshot(browser: &mut Browser, name: &str, width: u32, height: u32) -> Result<PathBuf> {
    let path = artifacts().join(name);
    let written = browser.screenshot(&path)?;
    let png = std::fs::read(&path).expect("the screenshot was written");
    assert_eq!(png.len(), written);
    assert_eq!(png_size(&png), (width, height), "{}", path.display());
    // Chromium's PNG of a blank page is about 5 KB at 1280×900 and under
    // 3 KB at 390×844; these pages, full of text, are several times that.
    assert!(
        png.len() > 10_000,
        "{} is only {} bytes",
        path.display(),
        png.len()
    );
    Ok(path)
}

/// The smoke test of the driver, with no dashboard: Chromium loads a page
/// of `baton serve` over the pipe, a script reads it, the fill, check
/// and mouse-click helpers work on a form, scripts can be turned off, and a
/// screenshot is written.
#[test]
fn chromium_drives_a_page_over_the_pipe() -> Result<()> {
    let Some(mut browser) = browser("pipe") else {
        return Ok(());
    };
    assert!(
        browser.product.contains("Chrome"),
        "Browser.getVersion: {:?}",
        browser.product
    );
    let server = Server::launch(None, &[]);
    browser.set_viewport(800, 600, false)?;

    // A JSON page of the server, read by a script in the page.
    let url = format!("{}/v1/openapi.json", server.base());
    browser.navigate(&url)?;
    assert_eq!(browser.location()?, url);
    let body = browser.text("body")?;
    let doc: Value = serde_json::from_str(&body).expect("the page shows JSON");
    assert!(doc["paths"]["/v1/executions"].is_object(), "{body:.200}");
    let health = browser.eval(&format!(
        "fetch({}).then(r => r.json())",
        cdp::js_string("/healthz")
    ))?;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["backend"], "sqlite", "{health}");
    screenshot(&mut browser, "00-pipe.png", 800, 600)?;
    assert!(
        browser.urls_seen().contains(&url),
        "{:?}",
        browser.urls_seen()
    );
    browser.eval("console.error('seen', 42)")?;
    browser.wait_for("true", Duration::from_secs(1))?;
    assert!(
        browser
            .console()
            .iter()
            .any(|l| l == "console.error: seen 42"),
        "{:?}",
        browser.console()
    );
    let requested: Vec<String> = browser
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.url))
        .collect();
    assert!(requested.contains(&format!("GET {url}")), "{requested:?}");
    assert!(
        requested.contains(&format!("GET {}/healthz", server.base())),
        "{requested:?}"
    );
    let types: Vec<&str> = browser
        .requests()
        .iter()
        .map(|r| r.resource_type.as_str())
        .collect();
    assert_eq!(types, ["Document", "Fetch"]);

    // A form: fill, a real mouse click on the button, a script reacting.
    let page = "<!doctype html><title>t</title>\
        <input id=name><select id=pick><option>a</option><option>b</option></select>\
        <input type=checkbox id=box>\
        <button id=go style='margin-top:700px'>go</button>\
        <script>document.getElementById('go').onclick = () => \
        { const v = id => document.getElementById(id); \
        document.title = v('name').value + '/' + v('pick').value + '/' + v('box').checked; };</script>";
    browser.navigate(&format!("data:text/html,{}", percent(page)))?;
    browser.fill("#name", "hello")?;
    browser.fill("#pick", "b")?;
    assert!(
        browser.fill("#pick", "c").is_err(),
        "a select takes no value it lacks"
    );
    browser.fill("#pick", "b")?;
    browser.check("#box", true)?;
    // Below the fold: click scrolls it into view first.
    browser.click("#go")?;
    let title = browser.wait_for(
        "document.title !== 't' && document.title",
        Duration::from_secs(10),
    )?;
    assert_eq!(title, "hello/b/true");
    assert!(browser.click("#missing").is_err());
    assert!(browser.text("#missing").is_err());
    assert_eq!(browser.count("input")?, 2);
    assert_eq!(
        browser.attrs("input", "id")?,
        vec![Some("name".to_owned()), Some("box".to_owned())]
    );
    let waited = browser.wait_for("document.title === 'never'", Duration::from_millis(300));
    let message = format!("{:?}", waited.expect_err("the wait times out"));
    assert!(message.contains("document.title === 'never'"), "{message}");

    // With scripts off the page's handler does not run, but eval does.
    browser.disable_scripts(true)?;
    browser.navigate(&format!("data:text/html,{}", percent(page)))?;
    browser.click("#go")?;
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(browser.eval("document.title")?, "t");
    browser.disable_scripts(false)?;
    Ok(())
}

/// `s` percent-encoded for a `data:` URL.
fn percent(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// How long a page may take to appear after a navigation or a click.
const WAIT: Duration = Duration::from_secs(20);

/// The viewport of the desktop screenshots.
const DESKTOP: (u32, u32) = (1280, 900);

/// A new random API token: 32 hex digits.
fn random_token() -> String {
    let mut bytes = [0u8; 16];
    let mut urandom = std::fs::File::open("/dev/urandom").expect("/dev/urandom");
    std::io::Read::read_exact(&mut urandom, &mut bytes).expect("random bytes");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What [`seed`] created, by role.
#[derive(Debug)]
struct Seed {
    /// In `emails`, failed for good (`max_attempts: 1`).
    failed_emails: Vec<String>,
    /// In `emails`, completed.
    completed_emails: Vec<String>,
    /// In `emails`, waiting.
    waiting_emails: Vec<String>,
    /// In `reports`, claimed by `w-dash` and left running.
    running: String,
    /// In `reports`: a waiting parent and its two waiting children.
    parent: String,
    children: Vec<String>,
    /// In `reports`, waiting (the lane is paused).
    waiting_reports: Vec<String>,
}

impl Seed {
    fn all(&self) -> Vec<&String> {
        let mut all: Vec<&String> = Vec::new();
        all.extend(&self.failed_emails);
        all.extend(&self.completed_emails);
        all.extend(&self.waiting_emails);
        all.push(&self.running);
        all.push(&self.parent);
        all.extend(&self.children);
        all.extend(&self.waiting_reports);
        all
    }
}

/// Seeds the namespace `default` through the API (RFC 0012, browser test
/// step 1): history on; lane `emails` with 7 failed, 2 completed and 6
/// waiting executions, tagged by tenant; lane `reports` with one running
/// (worker `w-dash`, a long lease), one completed, a parent with two
/// children and 3 waiting; then `reports` paused.
fn seed(s: &Server) -> Seed {
    let history = s.request(
        "PUT",
        "/v1/namespaces/default/history",
        Some(&json!({"enabled": true})),
    );
    assert_eq!(history.status, 200, "{}", history.body);
    let tenant = |i: usize| {
        if i.is_multiple_of(2) {
            "acme"
        } else {
            "globex"
        }
    };

    let failed_emails: Vec<String> = (0..7)
        .map(|i| {
            s.submit(json!({
                "kind": "email.send", "lane": "emails", "max_attempts": 1,
                "tags": {"tenant": tenant(i)}, "payload": {"to": format!("user{i}@example.com")},
            }))
        })
        .collect();
    let claims = s.claim("emails", json!({"worker_id": "w-mail", "max": 7}));
    assert_eq!(claims.len(), 7, "{claims:?}");
    for (i, claim) in claims.iter().enumerate() {
        let id = claim["id"].as_str().expect("an id");
        let failed = s.ok(
            &format!("/v1/executions/{}/fail", encoded(id)),
            json!({"lease": claim["lease"]["token"], "error": format!("mailbox {i} is full"), "retryable": false}),
        );
        assert_eq!(failed["state"], "failed", "{failed}");
    }
    let completed_emails: Vec<String> = (0..2)
        .map(|i| {
            s.submit(
                json!({"kind": "email.digest", "lane": "emails", "tags": {"tenant": tenant(i)}}),
            )
        })
        .collect();
    complete_all(s, "emails", "w-mail", completed_emails.len());
    let waiting_emails: Vec<String> = (0..6)
        .map(|i| {
            s.submit(json!({
                "kind": "email.send", "lane": "emails", "tags": {"tenant": tenant(i)},
                "payload": {"to": format!("later{i}@example.com")},
            }))
        })
        .collect();

    let running =
        s.submit(json!({"kind": "report.render", "lane": "reports", "payload": {"report": "q3"}}));
    let claims = s.claim(
        "reports",
        json!({"worker_id": "w-dash", "lease_ms": 600_000}),
    );
    assert_eq!(claims.len(), 1, "{claims:?}");
    assert_eq!(claims[0]["id"], running.as_str());
    s.submit(json!({"kind": "report.render", "lane": "reports", "payload": {"report": "q2"}}));
    complete_all(s, "reports", "w-dash", 1);
    let parent = s.submit(json!({"kind": "report.batch", "lane": "reports"}));
    let children: Vec<String> = (0..2)
        .map(|i| {
            s.submit(json!({
                "kind": "report.part", "lane": "reports", "parent": parent,
                "payload": {"part": i},
            }))
        })
        .collect();
    let waiting_reports: Vec<String> = (0..3)
        .map(|i| s.submit(json!({"kind": "report.render", "lane": "reports", "payload": {"report": format!("r{i}")}})))
        .collect();
    let paused = s.ok("/v1/lanes/reports/pause", json!({"namespace": "default"}));
    assert_eq!(paused["paused"], true, "{paused}");
    Seed {
        failed_emails,
        completed_emails,
        waiting_emails,
        running,
        parent,
        children,
        waiting_reports,
    }
}

/// Claims `n` executions of `lane` as `worker` and completes them.
fn complete_all(s: &Server, lane: &str, worker: &str, n: usize) {
    let claims = s.claim(lane, json!({"worker_id": worker, "max": n}));
    assert_eq!(claims.len(), n, "{claims:?}");
    for claim in claims {
        let id = claim["id"].as_str().expect("an id");
        let done = s.ok(
            &format!("/v1/executions/{}/complete", encoded(id)),
            json!({"lease": claim["lease"]["token"], "result": {"ok": true}}),
        );
        assert_eq!(done["state"], "completed", "{done}");
    }
}

/// The state of one execution, through the API.
fn state_of(s: &Server, id: &str) -> Value {
    s.describe(&encoded(id))["state"].clone()
}

/// The ids `GET /v1/executions?<query>` lists (one page of up to 1000).
fn listed(s: &Server, query: &str) -> Vec<String> {
    let page = s.get(&format!(
        "/v1/executions?namespace=default&limit=1000&{query}"
    ));
    assert_eq!(page.status, 200, "{}", page.body);
    page.json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["id"].as_str().expect("an id").to_owned())
        .collect()
}

/// Marks the current `<main>`, runs `act` (a click, a submit), then waits
/// until the marked `<main>` is gone — replaced by the script's swap or by
/// a new document — and `ready` holds.
fn swap(
    browser: &mut Browser,
    act: impl FnOnce(&mut Browser) -> Result<()>,
    ready: &str,
) -> Result<Value> {
    browser.eval(
        "(() => { const m = document.querySelector('main'); if (m) { \
           const i = document.createElement('i'); i.hidden = true; \
           i.setAttribute('data-test-stale', ''); m.appendChild(i); } })()",
    )?;
    act(browser)?;
    browser.wait_for(
        &format!("!document.querySelector('[data-test-stale]') && ({ready})"),
        WAIT,
    )
}

/// Loads `url` and waits until `ready` holds (with a token, the page loads
/// as the locked shell and the script swaps the real one in).
fn open(browser: &mut Browser, url: &str, ready: &str) -> Result<Value> {
    browser.navigate(url)?;
    browser.wait_for(ready, WAIT)
}

/// The rows of `table#executions`: id, state, lane and the id cell's link.
fn rows(browser: &mut Browser) -> Result<Vec<(String, String, String, String)>> {
    let rows = browser.eval(
        "Array.from(document.querySelectorAll('table#executions tr[data-id]'), r => [\
           r.dataset.id, r.dataset.state, r.dataset.lane, \
           (r.querySelector('a[href]') || {href: ''}).href])",
    )?;
    Ok(rows
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    let f = |i: usize| r[i].as_str().unwrap_or("").to_owned();
                    (f(0), f(1), f(2), f(3))
                })
                .collect()
        })
        .unwrap_or_default())
}

/// The executions page is ready: its filter form and table are there.
const EXECUTIONS_READY: &str =
    "document.querySelector('form#filter') && document.querySelector('table#executions')";

/// The detail page of `id` is ready.
fn detail_ready(id: &str) -> String {
    format!(
        "document.querySelector('#state-badge') && document.documentElement.innerHTML.includes({})",
        cdp::js_string(id)
    )
}

/// The whole dashboard in Chromium with an API token (RFC 0012, browser
/// test steps 1–9).
#[test]
fn the_dashboard_in_a_browser_with_a_token() -> Result<()> {
    let Some(mut browser) = browser("token") else {
        return Ok(());
    };
    // 1. The server, with a token, seeded through the API.
    let token = random_token();
    let mut s = Server::launch(None, &[("BATON_API_TOKEN", &token)]);
    s.bearer = Some(token.clone());
    let seed = seed(&s);
    let base = s.base();
    let ids = seed.all();
    browser.set_viewport(DESKTOP.0, DESKTOP.1, false)?;

    // 2. The token page: `/` leads to `/ui`, locked, showing no data.
    browser.navigate(&format!("{base}/"))?;
    browser.wait_for(
        "location.pathname === '/ui' && document.querySelector('main[data-locked] form#unlock')",
        WAIT,
    )?;
    assert_eq!(
        browser.count("form#unlock input#token[name=token][type=password]")?,
        1
    );
    assert_eq!(browser.count("form#unlock button[type=submit]")?, 1);
    let html = browser.eval("document.documentElement.outerHTML")?;
    let html = html.as_str().unwrap_or("");
    for secret in ids
        .iter()
        .map(|id| id.as_str())
        .chain(["emails", "reports", "w-dash", "acme"])
    {
        assert!(
            !html.contains(secret),
            "the locked shell shows {secret}:\n{html}"
        );
    }
    screenshot(&mut browser, "01-token.png", DESKTOP.0, DESKTOP.1)?;
    browser.fill("input#token", &token)?;
    swap(
        &mut browser,
        |b| b.click("form#unlock button[type=submit]"),
        "document.querySelector('table#lanes tr[data-lane=\"emails\"]')",
    )?;

    // 3. The overview: every count as the API's stats, the paused lane,
    // the worker, the chart, the nav; then on a phone.
    let stats = s.get("/v1/stats?namespace=default").json();
    for lane in ["emails", "reports"] {
        let shown = browser.eval(&format!(
            "(() => {{ const r = document.querySelector('table#lanes tr[data-lane=\"{lane}\"][data-namespace=\"default\"]'); \
               if (!r) return null; const o = {{}}; \
               r.querySelectorAll('td[data-state]').forEach(td => o[td.dataset.state] = td.textContent.trim()); \
               return o; }})()"
        ))?;
        let expected = stats["lanes"][lane].as_object().expect("the lane's stats");
        let shown_states = shown
            .as_object()
            .unwrap_or_else(|| panic!("no row for lane {lane}"));
        assert_eq!(
            shown_states.len(),
            expected.len(),
            "lane {lane}: shown {shown}, API {expected:?}"
        );
        for (state, count) in expected {
            assert_eq!(
                shown[state.as_str()],
                json!(count.to_string()),
                "lane {lane}, state {state}: shown {shown}, API {expected:?}"
            );
        }
    }
    assert_eq!(stats["lanes"]["emails"]["failed"], 7, "{stats}");
    assert_eq!(stats["lanes"]["reports"]["running"], 1, "{stats}");
    assert_eq!(
        browser.count("table#lanes tr[data-lane=\"reports\"] .badge-paused")?,
        1
    );
    assert_eq!(
        browser.count("table#lanes tr[data-lane=\"emails\"] .badge-paused")?,
        0
    );
    assert_eq!(
        browser.count("section#workers tr[data-worker=\"w-dash\"]")?,
        1
    );
    assert_eq!(browser.count("svg#throughput")?, 1);
    assert_eq!(browser.count("main")?, 1);
    assert_eq!(browser.count("#forget-token")?, 1);
    let nav = browser.eval(
        "[document.querySelector('a#nav-overview').pathname, document.querySelector('a#nav-executions').pathname]",
    )?;
    assert_eq!(nav, json!(["/ui", "/ui/executions"]));
    screenshot(&mut browser, "02-overview.png", DESKTOP.0, DESKTOP.1)?;
    browser.set_viewport(390, 844, true)?;
    browser.wait_for("window.innerWidth === 390", WAIT)?;
    let widths = browser.eval("[document.documentElement.scrollWidth, window.innerWidth]")?;
    assert!(
        widths[0].as_u64() <= widths[1].as_u64(),
        "the overview scrolls sideways on a phone: [scrollWidth, innerWidth] = {widths}"
    );
    screenshot(&mut browser, "02-overview-phone.png", 390, 844)?;
    browser.set_viewport(DESKTOP.0, DESKTOP.1, false)?;

    // 4. Filter: lane emails, state failed; then 5 a page, and Next.
    swap(
        &mut browser,
        |b| b.click("a#nav-executions"),
        EXECUTIONS_READY,
    )?;
    browser.fill("form#filter select[name=lane]", "emails")?;
    browser.check(
        "form#filter input[type=checkbox][name=state][value=failed]",
        true,
    )?;
    swap(
        &mut browser,
        |b| b.click("form#filter button#apply"),
        &format!(
            "{EXECUTIONS_READY} && new URLSearchParams(location.search).get('lane') === 'emails'"
        ),
    )?;
    let search = browser.eval("location.search")?;
    let params = browser.eval(
        "(() => { const p = new URLSearchParams(location.search); \
           return [p.get('lane'), p.getAll('state').join(',').split(',')]; })()",
    )?;
    assert_eq!(params[0], "emails", "{search}");
    assert!(
        params[1]
            .as_array()
            .is_some_and(|s| s.contains(&json!("failed"))),
        "{search}"
    );
    let page = rows(&mut browser)?;
    let mut shown: Vec<String> = page.iter().map(|r| r.0.clone()).collect();
    shown.sort();
    let mut expected: Vec<String> = listed(&s, "lane=emails&state=failed");
    expected.sort();
    assert_eq!(shown, expected, "the filtered table against the API");
    let mut failed = seed.failed_emails.clone();
    failed.sort();
    assert_eq!(shown, failed);
    for (id, state, lane, link) in &page {
        assert_eq!(
            (state.as_str(), lane.as_str()),
            ("failed", "emails"),
            "row {id}"
        );
        assert!(
            link.contains("/ui/executions/"),
            "row {id} links to {link:?}"
        );
    }
    screenshot(&mut browser, "03-executions.png", DESKTOP.0, DESKTOP.1)?;
    browser.fill("form#filter [name=limit]", "5")?;
    swap(
        &mut browser,
        |b| b.click("form#filter button#apply"),
        &format!("{EXECUTIONS_READY} && new URLSearchParams(location.search).get('limit') === '5'"),
    )?;
    let first: Vec<String> = rows(&mut browser)?.into_iter().map(|r| r.0).collect();
    assert_eq!(first.len(), 5, "{first:?}");
    assert_eq!(browser.count("a#next")?, 1);
    swap(&mut browser, |b| b.click("a#next"), EXECUTIONS_READY)?;
    let second = rows(&mut browser)?;
    assert_eq!(second.len(), 2, "{second:?}");
    for (id, state, lane, _) in &second {
        assert!(!first.contains(id), "{id} is on both pages");
        assert_eq!(
            (state.as_str(), lane.as_str()),
            ("failed", "emails"),
            "row {id}"
        );
    }
    assert_eq!(browser.count("a#next")?, 0, "no Next after the last page");

    // 5. The detail of the running execution, reached by its link; then
    // the flow of the parent.
    open(
        &mut browser,
        &format!("{base}/ui/executions?namespace=default&lane=reports&state=running"),
        EXECUTIONS_READY,
    )?;
    let running = seed.running.as_str();
    let link = format!(
        "table#executions tr[data-id={}] a[href]",
        cdp::js_string(running)
    );
    swap(&mut browser, |b| b.click(&link), &detail_ready(running))?;
    assert_eq!(browser.text("#state-badge")?.trim(), "running");
    assert!(
        !browser.text("#explain")?.trim().is_empty(),
        "no explain sentence"
    );
    assert!(
        browser.count("table#attempts tbody tr")? >= 1,
        "no attempt shown"
    );
    let events = browser.text("#events")?;
    assert!(
        events.contains("created") && events.contains("claimed"),
        "{events}"
    );
    assert!(browser.text("#payload")?.contains("q3"));
    assert_eq!(browser.count("a#action-cancel")?, 1);
    screenshot(&mut browser, "04-detail.png", DESKTOP.0, DESKTOP.1)?;
    open(
        &mut browser,
        &format!("{base}/ui/executions/{}", encoded(&seed.parent)),
        &detail_ready(&seed.parent),
    )?;
    let mut tree: Vec<String> = browser
        .attrs("#tree [data-id]", "data-id")?
        .into_iter()
        .flatten()
        .collect();
    tree.sort();
    let mut flow = vec![seed.parent.clone()];
    flow.extend(seed.children.iter().cloned());
    flow.sort();
    assert_eq!(tree, flow, "the flow tree");

    // 6. Cancel the running execution, with confirmation; then the API.
    open(
        &mut browser,
        &format!("{base}/ui/executions/{}", encoded(running)),
        &detail_ready(running),
    )?;
    swap(
        &mut browser,
        |b| b.click("a#action-cancel"),
        "document.querySelector('form#confirm input[name=reason]')",
    )?;
    assert_eq!(browser.count("form#confirm button#confirm-submit")?, 1);
    assert_eq!(browser.count("form#confirm a#confirm-back")?, 1);
    assert_eq!(
        browser.count("form#confirm input[name=scope][value=tree]")?
            + browser.count("form#confirm input[name=scope][value=execution]")?,
        2,
        "the scope radios"
    );
    assert_eq!(
        state_of(&s, running),
        "running",
        "the confirmation page changed nothing"
    );
    screenshot(&mut browser, "05-confirm.png", DESKTOP.0, DESKTOP.1)?;
    let reason = "stopped from the browser test";
    browser.fill("form#confirm input[name=reason]", reason)?;
    browser.check("form#confirm input[name=scope][value=execution]", true)?;
    swap(
        &mut browser,
        |b| b.click("form#confirm button#confirm-submit"),
        &format!(
            "{} && new URLSearchParams(location.search).get('done') === 'cancelled'",
            detail_ready(running)
        ),
    )?;
    assert_eq!(browser.text("#state-badge")?.trim(), "cancelled");
    assert_eq!(browser.count(".notice")?, 1);
    screenshot(&mut browser, "06-cancelled.png", DESKTOP.0, DESKTOP.1)?;
    let cancelled = s.describe(&encoded(running));
    assert_eq!(cancelled["state"], "cancelled", "{cancelled}");
    assert_eq!(cancelled["cancel_reason"], reason, "{cancelled}");

    // 7. Bulk cancel of the waiting emails: the dry run's count is the
    // API's; confirmed, none waits any more.
    open(
        &mut browser,
        &format!("{base}/ui/executions?namespace=default&lane=emails&state=waiting"),
        EXECUTIONS_READY,
    )?;
    swap(
        &mut browser,
        |b| b.click("a#bulk-cancel"),
        "document.querySelector('#bulk-dry-run[data-matched]')",
    )?;
    let dry = s.ok(
        "/v1/executions/bulk/cancel",
        json!({"filter": {"namespace": "default", "lane": "emails", "state": "waiting"}, "dry_run": true}),
    );
    assert_eq!(dry["matched"], 6, "{dry}");
    let shown = browser.eval(
        "(() => { const d = document.querySelector('#bulk-dry-run').dataset; \
           return [d.matched, d.wouldChange, d.wouldSkip]; })()",
    )?;
    let skipped = dry["skipped"].as_array().map_or(0, Vec::len);
    assert_eq!(
        shown,
        json!([
            dry["matched"].to_string(),
            dry["changed"].to_string(),
            skipped.to_string()
        ]),
        "the dry run shown against the API's {dry}"
    );
    assert_eq!(
        listed(&s, "lane=emails&state=waiting").len(),
        6,
        "the dry run changed nothing"
    );
    screenshot(&mut browser, "07-bulk.png", DESKTOP.0, DESKTOP.1)?;
    swap(
        &mut browser,
        |b| b.click("form#confirm button#confirm-submit"),
        "document.querySelector('#bulk-result[data-changed]')",
    )?;
    assert_eq!(
        browser.eval("document.querySelector('#bulk-result').dataset.changed")?,
        json!(dry["changed"].to_string())
    );
    assert_eq!(
        listed(&s, "lane=emails&state=waiting"),
        Vec::<String>::new()
    );
    for id in &seed.waiting_emails {
        assert_eq!(state_of(&s, id), "cancelled", "{id}");
    }

    // 8. Refusals over plain HTTP, with a waiting report as the target.
    let target = seed.waiting_reports[0].as_str();
    let cancel = format!("/ui/executions/{}/cancel", encoded(target));
    let form: &[u8] = b"reason=csrf&scope=execution";
    let bearer = format!("Bearer {token}");
    let no_bearer = s
        .send(
            "POST",
            &cancel,
            Some(("application/x-www-form-urlencoded", form)),
            &[("Origin", &base)],
        )
        .expect("POST without a bearer");
    assert_eq!(no_bearer.status, 401, "{}", no_bearer.body);
    let cross_site = s
        .send(
            "POST",
            &cancel,
            Some(("application/x-www-form-urlencoded", form)),
            &[
                ("Authorization", &bearer),
                ("Origin", "http://evil.example"),
            ],
        )
        .expect("POST from another origin");
    assert_eq!(cross_site.status, 403, "{}", cross_site.body);
    assert_eq!(state_of(&s, target), "waiting", "a refused POST changed it");
    for path in [
        "/ui".to_owned(),
        "/ui/executions".to_owned(),
        format!("/ui/executions/{}", encoded(target)),
    ] {
        let locked = s
            .send("GET", &path, None, &[])
            .expect("GET without a bearer");
        assert_eq!(locked.status, 401, "GET {path}: {}", locked.body);
        assert!(
            locked.body.contains("data-locked"),
            "GET {path}: {}",
            locked.body
        );
        for secret in ids
            .iter()
            .map(|id| id.as_str())
            .chain(["emails", "reports", "w-dash"])
        {
            assert!(
                !locked.body.contains(secret),
                "GET {path} without a bearer shows {secret}"
            );
        }
    }
    let page = s
        .send("GET", "/ui", None, &[("Authorization", &bearer)])
        .expect("GET /ui with the bearer");
    assert_eq!(page.status, 200, "{}", page.body);
    let csp = page.header("content-security-policy").unwrap_or("");
    assert!(csp.contains("default-src 'none'"), "CSP: {csp:?}");
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert!(
        page.header("cache-control")
            .unwrap_or("")
            .contains("no-store")
    );
    // The control: the same POST, with the bearer and from the server's
    // own origin, is served (so the refusals above were refusals).
    let served = s
        .send(
            "POST",
            &cancel,
            Some(("application/x-www-form-urlencoded", form)),
            &[("Authorization", &bearer), ("Origin", &base)],
        )
        .expect("the same-origin POST");
    assert_eq!(served.status, 303, "{}", served.body);
    assert!(
        served
            .header("location")
            .unwrap_or("")
            .contains("done=cancelled"),
        "{:?}",
        served.headers
    );
    assert_eq!(state_of(&s, target), "cancelled");

    // 9. No leak: the token is in no URL the page requested or was at, not
    // in cookies or local storage, not in the server's log; every request
    // went to the server's origin.
    browser.location()?;
    for request in browser.requests() {
        assert!(
            !request.url.contains(&token),
            "the token is in {}",
            request.url
        );
        assert!(
            request.url.starts_with(&format!("{base}/")),
            "a request left the server's origin: {} {}",
            request.method,
            request.url
        );
    }
    // The script fetched the pages with the token as a bearer header.
    let bearer_fetches = browser
        .requests()
        .iter()
        .filter(|r| r.resource_type == "Fetch" && r.authorization.as_deref() == Some(&bearer))
        .count();
    assert!(bearer_fetches >= 10, "{:?}", browser.requests());
    for url in browser.urls_seen() {
        assert!(!url.contains(&token), "the page was at {url}");
    }
    assert_eq!(browser.eval("document.cookie")?, "");
    assert_eq!(browser.eval("localStorage.length")?, 0);
    let log = s.log_text();
    assert!(
        !log.contains(&token),
        "the token is in the server's log:\n{log}"
    );
    let csp_errors: Vec<&String> = browser
        .console()
        .iter()
        .filter(|l| l.contains("Content Security Policy") || l.starts_with("uncaught"))
        .collect();
    assert!(csp_errors.is_empty(), "{csp_errors:?}");

    // Forgetting the token locks the page again.
    swap(
        &mut browser,
        |b| b.click("#forget-token"),
        "document.querySelector('main[data-locked] form#unlock')",
    )?;
    let kept = browser.eval(&format!(
        "Object.values(sessionStorage).some(v => v.includes({}))",
        cdp::js_string(&token)
    ))?;
    assert_eq!(kept, false, "the token is still in sessionStorage");
    Ok(())
}

/// Without a token and with JavaScript off, the dashboard is plain HTML:
/// the overview renders, the filter form works as a GET, links lead to the
/// detail, and a cross-site POST is still refused.
#[test]
fn the_dashboard_works_without_a_token_and_without_javascript() -> Result<()> {
    let Some(mut browser) = browser("no-js") else {
        return Ok(());
    };
    let s = Server::launch(None, &[]);
    let base = s.base();
    let emails: Vec<String> = (0..3)
        .map(|i| s.submit(json!({"kind": "email.send", "lane": "emails", "payload": {"n": i}})))
        .collect();
    let report = s.submit(json!({"kind": "report.render", "lane": "reports"}));
    browser.set_viewport(DESKTOP.0, DESKTOP.1, false)?;
    browser.disable_scripts(true)?;

    open(
        &mut browser,
        &format!("{base}/ui"),
        "document.querySelector('table#lanes tr[data-lane=\"emails\"]')",
    )?;
    assert_eq!(browser.count("main[data-locked]")?, 0);
    assert_eq!(
        browser
            .text("table#lanes tr[data-lane=\"emails\"] td[data-state=\"waiting\"]")?
            .trim(),
        "3"
    );
    swap(
        &mut browser,
        |b| b.click("a#nav-executions"),
        EXECUTIONS_READY,
    )?;
    browser.fill("form#filter select[name=lane]", "emails")?;
    swap(
        &mut browser,
        |b| b.click("form#filter button#apply"),
        &format!(
            "{EXECUTIONS_READY} && new URLSearchParams(location.search).get('lane') === 'emails'"
        ),
    )?;
    let page = rows(&mut browser)?;
    let mut shown: Vec<String> = page.iter().map(|r| r.0.clone()).collect();
    shown.sort();
    let mut expected = emails.clone();
    expected.sort();
    assert_eq!(shown, expected);
    assert!(!shown.contains(&report));
    let first = emails[0].as_str();
    let link = format!(
        "table#executions tr[data-id={}] a[href]",
        cdp::js_string(first)
    );
    swap(&mut browser, |b| b.click(&link), &detail_ready(first))?;
    assert_eq!(browser.text("#state-badge")?.trim(), "waiting");
    let scripted: Vec<&cdp::Request> = browser
        .requests()
        .iter()
        .filter(|r| r.resource_type == "Fetch" || r.resource_type == "XHR")
        .collect();
    assert!(
        scripted.is_empty(),
        "requests from scripts with JS off: {scripted:?}"
    );
    let documents = browser
        .requests()
        .iter()
        .filter(|r| r.resource_type == "Document" && r.url.starts_with(&base))
        .count();
    assert_eq!(
        documents,
        4,
        "overview, executions, filtered, detail: {:?}",
        browser.requests()
    );

    let cross_site = s
        .send(
            "POST",
            &format!("/ui/executions/{}/cancel", encoded(first)),
            Some(("application/x-www-form-urlencoded", b"reason=csrf")),
            &[("Origin", "http://evil.example")],
        )
        .expect("POST from another origin");
    assert_eq!(cross_site.status, 403, "{}", cross_site.body);
    assert_eq!(state_of(&s, first), "waiting");
    Ok(())
}
