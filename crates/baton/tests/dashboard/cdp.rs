//! A small blocking client of the Chrome DevTools Protocol over
//! `--remote-debugging-pipe`: Chromium reads NUL-terminated JSON messages
//! on its fd 3 and writes its own on fd 4. No websocket, no new crate, no
//! `unsafe`: `sh` moves the child's piped stdin and stdout to fds 3 and 4
//! before it `exec`s Chromium.
//!
//! One [`Browser`] drives one page (a target attached with `flatten`, so
//! its commands carry a `sessionId`). A reader thread splits the pipe on
//! `\0` and hands every message over a channel; replies are matched by
//! `id`, events are queued and recorded (request URLs, navigations,
//! console and log entries), and every wait has a timeout that ends in an
//! error saying what was awaited.

use std::collections::VecDeque;
use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use baton_testkit::servers::Chromium;
use serde_json::{Value, json};

/// What went wrong talking to Chromium; its `Debug` is the message, so a
/// test returning `Result<(), CdpError>` prints it plainly.
pub struct CdpError(String);

impl fmt::Debug for CdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for CdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CdpError {}

pub type Result<T> = std::result::Result<T, CdpError>;

fn fail<T>(message: impl Into<String>) -> Result<T> {
    Err(CdpError(message.into()))
}

/// One request the page sent (`Network.requestWillBeSent`).
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub url: String,
    /// `Document`, `Stylesheet`, `Script`, `Fetch`, …
    pub resource_type: String,
    /// The `Authorization` header the page set, if any.
    pub authorization: Option<String>,
}

/// The most events kept unconsumed; older ones are dropped.
const MAX_QUEUED_EVENTS: usize = 10_000;

/// A headless Chromium on a pipe, driving one page.
pub struct Browser {
    child: Child,
    pipe: Option<ChildStdin>,
    incoming: Receiver<std::result::Result<Value, String>>,
    next_id: u64,
    /// The attached page's session (`None` before [`Browser::open_page`]).
    session: Option<String>,
    events: VecDeque<Value>,
    requests: Vec<Request>,
    urls_seen: Vec<String>,
    console: Vec<String>,
    /// How long one command may take to be answered.
    pub timeout: Duration,
    /// What `Browser.getVersion` answered, e.g. `HeadlessChrome/156.0…`.
    pub product: String,
    log_path: PathBuf,
    _profile: tempfile::TempDir,
}

impl fmt::Debug for Browser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Browser")
            .field("pid", &self.child.id())
            .field("product", &self.product)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl Browser {
    /// Starts `chromium` on a pipe with a fresh profile; its standard
    /// output and error go to `log_path`.
    pub fn launch(chromium: &Chromium, log_path: &Path) -> Result<Browser> {
        let profile = tempfile::Builder::new()
            .prefix("baton-chromium-")
            .tempdir()
            .map_err(|e| CdpError(format!("creating a Chromium profile directory: {e}")))?;
        if let Some(dir) = log_path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| CdpError(format!("creating {}: {e}", dir.display())))?;
        }
        let log = std::fs::File::create(log_path)
            .map_err(|e| CdpError(format!("creating {}: {e}", log_path.display())))?;
        let mut cmd = Command::new("sh");
        // `$0` is Chromium, `$@` its flags: the pipe's ends become fds 3
        // (Chromium reads) and 4 (Chromium writes); its stdout joins the log.
        cmd.arg("-c")
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>&2"#)
            .arg(&chromium.path)
            .arg("--remote-debugging-pipe")
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args([
                // The full browser needs it; the headless shell ignores it.
                "--headless",
                "--no-sandbox",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-extensions",
                "--disable-sync",
                "--hide-scrollbars",
                "--mute-audio",
                "--force-color-profile=srgb",
                "about:blank",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            // Its own process group, so a stuck browser and its helpers
            // (Debian's wrapper script runs Chromium without `exec`) can be
            // killed together.
            .process_group(0);
        let mut child = cmd
            .spawn()
            .map_err(|e| CdpError(format!("starting {}: {e}", chromium.path.display())))?;
        let (Some(pipe), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return fail("Chromium's pipe was not set up");
        };
        let (tx, incoming) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut message = Vec::new();
                let sent = match reader.read_until(0, &mut message) {
                    Ok(0) => Err("Chromium closed its end of the pipe (did it exit?)".to_owned()),
                    Ok(_) if message.last() != Some(&0) => {
                        Err("Chromium closed the pipe in the middle of a message".to_owned())
                    }
                    Ok(_) => {
                        message.pop();
                        serde_json::from_slice::<Value>(&message).map_err(|e| {
                            format!(
                                "Chromium sent a message that is not JSON ({e}): {}",
                                String::from_utf8_lossy(&message)
                            )
                        })
                    }
                    Err(e) => Err(format!("reading Chromium's pipe: {e}")),
                };
                let stop = sent.is_err();
                if tx.send(sent).is_err() || stop {
                    return;
                }
            }
        });
        let mut browser = Browser {
            child,
            pipe: Some(pipe),
            incoming,
            next_id: 1,
            session: None,
            events: VecDeque::new(),
            requests: Vec::new(),
            urls_seen: Vec::new(),
            console: Vec::new(),
            timeout: Duration::from_secs(30),
            product: String::new(),
            log_path: log_path.to_owned(),
            _profile: profile,
        };
        let version = browser.browser_command("Browser.getVersion", json!({}))?;
        browser.product = version["product"].as_str().unwrap_or("").to_owned();
        Ok(browser)
    }

    /// Opens a new page and attaches to it; the page helpers below drive it.
    pub fn open_page(&mut self) -> Result<()> {
        let target = self.browser_command("Target.createTarget", json!({"url": "about:blank"}))?;
        let Some(target_id) = target["targetId"].as_str() else {
            return fail(format!(
                "Target.createTarget answered no targetId: {target}"
            ));
        };
        let attached = self.browser_command(
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
        )?;
        let Some(session) = attached["sessionId"].as_str() else {
            return fail(format!(
                "Target.attachToTarget answered no sessionId: {attached}"
            ));
        };
        self.session = Some(session.to_owned());
        for domain in ["Page", "Runtime", "Network", "Log"] {
            self.command(&format!("{domain}.enable"), json!({}))?;
        }
        self.command("Page.setLifecycleEventsEnabled", json!({"enabled": true}))?;
        Ok(())
    }

    /// Sends a command to the browser itself (no session).
    pub fn browser_command(&mut self, method: &str, params: Value) -> Result<Value> {
        self.send(None, method, params)
    }

    /// Sends a command to the attached page and answers its `result`.
    pub fn command(&mut self, method: &str, params: Value) -> Result<Value> {
        let Some(session) = self.session.clone() else {
            return fail(format!("{method}: no page is open (call open_page first)"));
        };
        self.send(Some(&session), method, params)
    }

    fn send(&mut self, session: Option<&str>, method: &str, params: Value) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = message.to_string().into_bytes();
        bytes.push(0);
        let Some(pipe) = self.pipe.as_mut() else {
            return fail(format!("{method}: the pipe to Chromium is closed"));
        };
        if let Err(e) = pipe.write_all(&bytes).and_then(|()| pipe.flush()) {
            return fail(format!(
                "{method}: writing to Chromium: {e}{}",
                self.log_tail()
            ));
        }
        let deadline = Instant::now() + self.timeout;
        loop {
            let mut reply = self
                .next_message(deadline)
                .map_err(|e| CdpError(format!("{method}: {e}")))?;
            if reply["id"].as_u64() != Some(id) {
                continue;
            }
            if let Some(error) = reply.get("error") {
                return fail(format!("{method} failed: {error}"));
            }
            return Ok(reply["result"].take());
        }
    }

    /// The next message from Chromium before `deadline`; events are
    /// recorded and queued on the way.
    fn next_message(&mut self, deadline: Instant) -> Result<Value> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.incoming.recv_timeout(left) {
            Ok(Ok(message)) => {
                if message.get("id").is_none() && message.get("method").is_some() {
                    self.record(&message);
                    if self.events.len() >= MAX_QUEUED_EVENTS {
                        self.events.pop_front();
                    }
                    self.events.push_back(message.clone());
                }
                Ok(message)
            }
            Ok(Err(e)) => fail(format!("{e}{}", self.log_tail())),
            Err(RecvTimeoutError::Timeout) => fail(format!(
                "no answer from Chromium within {:?}{}",
                self.timeout,
                self.log_tail()
            )),
            Err(RecvTimeoutError::Disconnected) => {
                fail(format!("Chromium's pipe is closed{}", self.log_tail()))
            }
        }
    }

    /// Keeps what the tests look at from an event.
    fn record(&mut self, event: &Value) {
        let params = &event["params"];
        let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
        match event["method"].as_str().unwrap_or("") {
            "Network.requestWillBeSent" => self.requests.push(Request {
                method: text(&params["request"]["method"]),
                url: text(&params["request"]["url"]),
                resource_type: text(&params["type"]),
                authorization: params["request"]["headers"]
                    .as_object()
                    .and_then(|h| {
                        h.iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
                    })
                    .map(|(_, v)| text(v)),
            }),
            "Page.frameNavigated" if params["frame"].get("parentId").is_none() => {
                // The URL comes without its fragment, which is apart.
                let frame = &params["frame"];
                self.urls_seen
                    .push(text(&frame["url"]) + &text(&frame["urlFragment"]));
            }
            "Page.navigatedWithinDocument" => self.urls_seen.push(text(&params["url"])),
            "Log.entryAdded" => {
                let entry = &params["entry"];
                self.console.push(format!(
                    "{} {}: {} ({})",
                    text(&entry["source"]),
                    text(&entry["level"]),
                    text(&entry["text"]),
                    text(&entry["url"])
                ));
            }
            "Runtime.consoleAPICalled" => {
                let args: Vec<String> = params["args"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|v| match v.get("value") {
                                Some(Value::String(s)) => s.clone(),
                                Some(other) => other.to_string(),
                                None => text(&v["description"]),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                self.console.push(format!(
                    "console.{}: {}",
                    text(&params["type"]),
                    args.join(" ")
                ));
            }
            "Runtime.exceptionThrown" => {
                self.console.push(format!(
                    "uncaught exception: {}",
                    describe_exception(&params["exceptionDetails"])
                ));
            }
            "Inspector.targetCrashed" => self.console.push("the page crashed".to_owned()),
            _ => {}
        }
    }

    /// Waits for an event named `method` (one queued already counts) for
    /// which `matches` holds, and answers its `params`.
    pub fn wait_event(
        &mut self,
        method: &str,
        timeout: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .events
                .iter()
                .position(|e| e["method"] == method && matches(&e["params"]));
            if let Some(mut event) = found.and_then(|i| self.events.remove(i)) {
                return Ok(event["params"].take());
            }
            if Instant::now() >= deadline {
                return fail(format!("no {method} event within {timeout:?}"));
            }
            self.next_message(deadline)
                .map_err(|e| CdpError(format!("waiting for {method}: {e}")))?;
        }
    }

    /// Loads `url` in the page and waits for its `load` event.
    pub fn navigate(&mut self, url: &str) -> Result<()> {
        self.events.clear();
        let answer = self.command("Page.navigate", json!({"url": url}))?;
        if let Some(error) = answer["errorText"].as_str().filter(|e| !e.is_empty()) {
            return fail(format!("navigating to {url}: {error}"));
        }
        let loader = answer["loaderId"].as_str().map(str::to_owned);
        let timeout = self.timeout;
        self.wait_event("Page.lifecycleEvent", timeout, |p| {
            p["name"] == "load" && loader.as_deref().is_none_or(|l| p["loaderId"] == l)
        })
        .map_err(|e| CdpError(format!("loading {url}: {e}")))?;
        Ok(())
    }

    /// Evaluates `js` in the page (promises awaited) and answers its value
    /// as JSON (`null` for `undefined` and for values JSON cannot hold).
    pub fn eval(&mut self, js: &str) -> Result<Value> {
        let mut answer = self.command(
            "Runtime.evaluate",
            json!({
                "expression": js,
                "returnByValue": true,
                "awaitPromise": true,
                "userGesture": true,
            }),
        )?;
        if let Some(details) = answer.get("exceptionDetails") {
            return fail(format!(
                "evaluating `{js}` threw: {}",
                describe_exception(details)
            ));
        }
        Ok(answer["result"]
            .get_mut("value")
            .map(Value::take)
            .unwrap_or(Value::Null))
    }

    /// Polls the JS expression `condition` until it is truthy (an exception
    /// counts as false: the page may be between documents) and answers its
    /// value; after `timeout`, an error with the last value seen, the
    /// page's URL and its console.
    pub fn wait_for(&mut self, condition: &str, timeout: Duration) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        let js =
            format!("(() => {{ try {{ return ({condition}); }} catch (e) {{ return null; }} }})()");
        loop {
            let last = match self.eval(&js) {
                Ok(value) if truthy(&value) => return Ok(value),
                Ok(value) => format!("it was {value}"),
                Err(e) => e.0,
            };
            if Instant::now() >= deadline {
                let href = self.location().unwrap_or_else(|e| e.0);
                return fail(format!(
                    "waited {timeout:?} for `{condition}` on {href}: {last}{}",
                    self.console_text()
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The page's `location.href` (also recorded as seen).
    pub fn location(&mut self) -> Result<String> {
        let href = self.eval("location.href")?;
        let href = href.as_str().unwrap_or("").to_owned();
        self.urls_seen.push(href.clone());
        Ok(href)
    }

    /// Clicks the first element matching `selector` with the mouse, at its
    /// centre after scrolling it into view; an error when nothing matches,
    /// the element has no size or another element covers that point.
    pub fn click(&mut self, selector: &str) -> Result<()> {
        let js = format!(
            r#"(() => {{
                const e = document.querySelector({sel});
                if (!e) return null;
                e.scrollIntoView({{block: "center", inline: "center"}});
                const r = e.getBoundingClientRect();
                const x = r.left + r.width / 2, y = r.top + r.height / 2;
                const hit = document.elementFromPoint(x, y);
                return {{x, y, w: r.width, h: r.height,
                         covered: hit && !e.contains(hit) ? hit.outerHTML.slice(0, 120) : null}};
            }})()"#,
            sel = js_string(selector)
        );
        let found = self.eval(&js)?;
        if found.is_null() {
            let href = self.location().unwrap_or_default();
            return fail(format!("click: nothing matches `{selector}` on {href}"));
        }
        let number = |k: &str| found[k].as_f64().unwrap_or(0.0);
        if number("w") <= 0.0 || number("h") <= 0.0 {
            return fail(format!("click: `{selector}` is not visible (no size)"));
        }
        if let Some(other) = found["covered"].as_str() {
            return fail(format!("click: `{selector}` is covered by {other}"));
        }
        let (x, y) = (number("x"), number("y"));
        for (kind, button) in [
            ("mouseMoved", "none"),
            ("mousePressed", "left"),
            ("mouseReleased", "left"),
        ] {
            self.command(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": button, "clickCount": 1}),
            )?;
        }
        Ok(())
    }

    /// Sets the value of the input, select or textarea matching `selector`
    /// and fires `input` and `change`, as typing or picking would; an error
    /// when nothing matches or the value did not take (a select without
    /// that option).
    pub fn fill(&mut self, selector: &str, value: &str) -> Result<()> {
        let js = format!(
            r#"(() => {{
                const e = document.querySelector({sel});
                if (!e) return null;
                e.focus();
                e.value = {value};
                e.dispatchEvent(new Event("input", {{bubbles: true}}));
                e.dispatchEvent(new Event("change", {{bubbles: true}}));
                return e.value;
            }})()"#,
            sel = js_string(selector),
            value = js_string(value)
        );
        match self.eval(&js)? {
            Value::Null => fail(format!("fill: nothing matches `{selector}`")),
            Value::String(now) if now == value => Ok(()),
            other => fail(format!(
                "fill: `{selector}` holds {other} after setting {value:?}"
            )),
        }
    }

    /// Checks or unchecks the checkbox or radio matching `selector`.
    pub fn check(&mut self, selector: &str, on: bool) -> Result<()> {
        let js = format!(
            r#"(() => {{
                const e = document.querySelector({sel});
                if (!e) return null;
                if (e.checked !== {on}) {{
                    e.checked = {on};
                    e.dispatchEvent(new Event("input", {{bubbles: true}}));
                    e.dispatchEvent(new Event("change", {{bubbles: true}}));
                }}
                return e.checked;
            }})()"#,
            sel = js_string(selector)
        );
        match self.eval(&js)? {
            Value::Bool(now) if now == on => Ok(()),
            Value::Null => fail(format!("check: nothing matches `{selector}`")),
            other => fail(format!("check: `{selector}` is {other}, not {on}")),
        }
    }

    /// The rendered text (`innerText`) of the first element matching
    /// `selector`; an error when nothing matches.
    pub fn text(&mut self, selector: &str) -> Result<String> {
        let js = format!(
            "(() => {{ const e = document.querySelector({}); return e ? e.innerText : null; }})()",
            js_string(selector)
        );
        match self.eval(&js)? {
            Value::String(text) => Ok(text),
            _ => {
                let href = self.location().unwrap_or_default();
                fail(format!("text: nothing matches `{selector}` on {href}"))
            }
        }
    }

    /// How many elements match `selector`.
    pub fn count(&mut self, selector: &str) -> Result<usize> {
        let js = format!("document.querySelectorAll({}).length", js_string(selector));
        let n = self.eval(&js)?;
        Ok(n.as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0))
    }

    /// The attribute `name` of every element matching `selector`, in
    /// document order (`None` where it is absent).
    pub fn attrs(&mut self, selector: &str, name: &str) -> Result<Vec<Option<String>>> {
        let js = format!(
            "Array.from(document.querySelectorAll({}), e => e.getAttribute({}))",
            js_string(selector),
            js_string(name)
        );
        let values = self.eval(&js)?;
        Ok(values
            .as_array()
            .map(|a| a.iter().map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default())
    }

    /// Sets the viewport (CSS pixels; `mobile` also makes Chromium honour
    /// the page's `<meta name="viewport">`, as a phone does).
    pub fn set_viewport(&mut self, width: u32, height: u32, mobile: bool) -> Result<()> {
        self.command(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        )?;
        Ok(())
    }

    /// Turns the page's own scripts off (or on again); `eval` still works.
    pub fn disable_scripts(&mut self, disabled: bool) -> Result<()> {
        self.command(
            "Emulation.setScriptExecutionDisabled",
            json!({"value": disabled}),
        )?;
        Ok(())
    }

    /// Writes a PNG of the viewport to `path` (creating its directory) and
    /// answers its size in bytes.
    pub fn screenshot(&mut self, path: &Path) -> Result<usize> {
        let answer = self.command("Page.captureScreenshot", json!({"format": "png"}))?;
        let Some(data) = answer["data"].as_str() else {
            return fail("Page.captureScreenshot answered no data");
        };
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| CdpError(format!("the screenshot is not base64: {e}")))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| CdpError(format!("creating {}: {e}", dir.display())))?;
        }
        std::fs::write(path, &png)
            .map_err(|e| CdpError(format!("writing {}: {e}", path.display())))?;
        Ok(png.len())
    }

    /// Every request the page sent so far.
    pub fn requests(&self) -> &[Request] {
        &self.requests
    }

    /// Every URL the page was seen at: navigations, history entries pushed
    /// by scripts, and [`Browser::location`] reads.
    pub fn urls_seen(&self) -> &[String] {
        &self.urls_seen
    }

    /// The page's console messages, log entries and uncaught exceptions.
    pub fn console(&self) -> &[String] {
        &self.console
    }

    fn console_text(&self) -> String {
        if self.console.is_empty() {
            String::new()
        } else {
            format!("\nthe page's console:\n  {}", self.console.join("\n  "))
        }
    }

    /// The end of Chromium's own log, for errors.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(10)..].join("\n  ");
        if tail.is_empty() {
            String::new()
        } else {
            format!(
                "\nthe end of Chromium's log ({}):\n  {tail}",
                self.log_path.display()
            )
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ask nicely, close the pipe (Chromium exits on its end too), then
        // kill the process group if it is still there after a while.
        self.timeout = Duration::from_secs(5);
        let _ = self.browser_command("Browser.close", json!({}));
        self.pipe = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `s` as a JS string literal.
pub fn js_string(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

fn describe_exception(details: &Value) -> String {
    details["exception"]["description"]
        .as_str()
        .or_else(|| details["text"].as_str())
        .unwrap_or("an exception")
        .to_owned()
}
