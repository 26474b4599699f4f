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

use serde_json::Value;

use cdp::{Browser, Result};
use common::server::Server;

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
    // A blank page of that size compresses to well under this.
    assert!(
        png.len() > 2_000,
        "{} is only {} bytes",
        path.display(),
        png.len()
    );
    Ok(path)
}

/// The smoke test of the driver, with no dashboard: Chromium loads a page
/// of `baton serve` over the pipe, a script reads it, the mouse and the
/// keyboard helpers work on a form, scripts can be turned off, and a
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
