//! Chaos: Baton driven as a black box under faults, on SQLite, Postgres and
//! Valkey. Two `baton serve` processes share one backend; `baton worker`
//! processes run the executions over HTTP. During the run workers are
//! SIGKILLed mid-execution and replaced, one of the two servers is
//! SIGKILLed, and the backend goes away and comes back (Valkey with AOF
//! `always` SIGKILLed and restarted; Postgres stopped with `-m immediate`
//! and started; for SQLite, whose backend is the serving process itself,
//! the surviving `baton serve` is SIGKILLed and started again on its file).
//!
//! What must hold, and the bounds stated for it:
//! - no acknowledged submission is lost: every one ends `completed`;
//! - no execution is completed twice: exactly one attempt of each has the
//!   outcome `completed`;
//! - every execution finishes within [`FINISH_BOUND`] after the last fault;
//! - while the backend is down the API answers `503` within
//!   [`ANSWER_BOUND`] (no request hangs), and serves again within
//!   [`RECOVERY_BOUND`] after the backend is back;
//! - no answer is a `5xx` other than `503`, ever.
//!
//! The bounds are liveness limits far above what a healthy run needs, not
//! performance assertions. A second test throws random valid and invalid
//! requests at every route and checks the same "no 5xx but 503" rule and
//! that accepted payloads come back as sent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use baton_testkit::servers::{PrivatePostgres, PrivateRedis};
use serde_json::{Value, json};

/// Longest any single request may take before it counts as a hang.
const ANSWER_BOUND: Duration = Duration::from_secs(10);
/// Longest the API may take to serve again once the backend is back.
const RECOVERY_BOUND: Duration = Duration::from_secs(30);
/// Longest every acknowledged execution may take to complete after the
/// last fault.
const FINISH_BOUND: Duration = Duration::from_secs(90);
/// Submissions before the faults and after them.
const BEFORE: usize = 200;
const AFTER: usize = 40;
/// Worker processes kept running.
const WORKERS: usize = 3;

// ------------------------------------------------------------- HTTP client

/// One answer, or why there was none.
type Answer = Result<(u16, String), String>;

fn request(addr: &str, method: &str, path: &str, body: Option<&[u8]>) -> Answer {
    let sock = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let mut s = TcpStream::connect_timeout(&sock, ANSWER_BOUND).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(ANSWER_BOUND))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(ANSWER_BOUND))
        .map_err(|e| e.to_string())?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(b) = body {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    if let Some(b) = body {
        s.write_all(b).map_err(|e| e.to_string())?;
    }
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("no answer: {e}"))?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line in {head:?}"))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

fn dechunk(mut data: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = data.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        data = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

fn encoded(id: &str) -> String {
    id.replace('{', "%7B").replace('}', "%7D")
}

/// Every answer the test saw, so the rules about them can be checked at
/// the end.
#[derive(Default, Debug)]
struct Seen {
    statuses: BTreeMap<u16, usize>,
    bad: Vec<String>,
}

impl Seen {
    /// Records an answer: a 5xx other than 503, or a request that did not
    /// answer in time while the server was up, breaks a rule.
    fn note(&mut self, what: &str, answer: &Answer) {
        match answer {
            Ok((status, body)) => {
                *self.statuses.entry(*status).or_default() += 1;
                if *status >= 500 && *status != 503 {
                    self.bad.push(format!("{what}: {status} {body}"));
                }
            }
            Err(e) if e.contains("timed out") || e.contains("WouldBlock") => {
                self.bad
                    .push(format!("{what}: no answer within {ANSWER_BOUND:?} ({e})"));
            }
            Err(_) => {}
        }
    }
}

// --------------------------------------------------------------- processes

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `baton serve` process on a fixed port (so it can be started again on
/// the same address).
struct Serve {
    child: Child,
    addr: String,
}

impl Serve {
    fn start(backend: &str, port: u16, node: &str) -> Serve {
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(env!("CARGO_BIN_EXE_baton"))
            .args(["--backend", backend, "serve", "--listen", &addr])
            .args([
                "--node-id",
                node,
                "--ownership-ttl-ms",
                "1500",
                "--sweep-ms",
                "100",
            ])
            .env("RUST_LOG", "error")
            .env_remove("BATON_API_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let serve = Serve { child, addr };
        serve.wait_healthy(RECOVERY_BOUND);
        serve
    }

    fn wait_healthy(&self, bound: Duration) {
        let start = Instant::now();
        while start.elapsed() < bound {
            if let Ok((200, _)) = request(&self.addr, "GET", "/healthz", None) {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "baton serve at {} was not healthy within {bound:?}",
            self.addr
        );
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `baton worker` processes over HTTP, replaced as they are killed.
struct Workers {
    addr: String,
    children: Vec<Child>,
    started: usize,
}

impl Workers {
    fn start(addr: &str) -> Workers {
        let mut w = Workers {
            addr: addr.to_owned(),
            children: Vec::new(),
            started: 0,
        };
        for _ in 0..WORKERS {
            w.spawn_one();
        }
        w
    }

    fn spawn_one(&mut self) {
        self.started += 1;
        let child = Command::new(env!("CARGO_BIN_EXE_baton"))
            .args(["--backend", &format!("http://{}", self.addr), "worker"])
            .args(["--lane", "chaos", "--concurrency", "4"])
            .args(["--lease-ms", "1500", "--grace-ms", "500"])
            .args(["--worker-id", &format!("chaos-{}", self.started)])
            .args(["--exec", "sleep 0.2; echo '{\"done\":true}'"])
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.children.push(child);
    }

    /// SIGKILLs the oldest worker (likely mid-execution) and starts another.
    fn kill_one(&mut self) {
        if !self.children.is_empty() {
            let mut victim = self.children.remove(0);
            let _ = victim.kill();
            let _ = victim.wait();
        }
        self.spawn_one();
    }

    /// Starts replacements for workers that exited on their own (a worker
    /// gives up when its server is gone for long).
    fn keep_up(&mut self) {
        let before = self.children.len();
        self.children
            .retain_mut(|c| matches!(c.try_wait(), Ok(None)));
        for _ in self.children.len()..before {
            self.spawn_one();
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ---------------------------------------------------------------- scenario

/// How the backend goes away and comes back.
enum Backend {
    /// The serving process is the backend: kill it and start it again.
    Sqlite {
        _dir: tempfile::TempDir,
    },
    Postgres(PrivatePostgres),
    Valkey(PrivateRedis),
}

const AOF_ALWAYS: &[&str] = &["--appendonly", "yes", "--appendfsync", "always"];

fn submit(seen: &mut Seen, addr: &str, i: usize) -> Option<String> {
    let body = json!({
        "kind": "chaos.job",
        "lane": "chaos",
        "payload": {"i": i},
        "max_attempts": 100,
        "backoff": {"initial_ms": 50, "max_ms": 200, "multiplier": 2.0, "jitter": false},
    });
    let answer = request(
        addr,
        "POST",
        "/v1/executions",
        Some(body.to_string().as_bytes()),
    );
    seen.note("submit", &answer);
    match answer {
        Ok((200 | 201, body)) => {
            let v: Value = serde_json::from_str(&body).unwrap();
            Some(v["id"].as_str().unwrap().to_owned())
        }
        _ => None,
    }
}

fn describe(seen: &mut Seen, addr: &str, id: &str) -> Option<Value> {
    let answer = request(
        addr,
        "GET",
        &format!("/v1/executions/{}?attempts=true", encoded(id)),
        None,
    );
    seen.note("describe", &answer);
    match answer {
        Ok((200, body)) => Some(serde_json::from_str(&body).unwrap()),
        _ => None,
    }
}

/// While the backend is down: every request answers (`503`) within the
/// bound instead of hanging.
fn answers_while_down(seen: &mut Seen, addr: &str, id: &str) {
    for round in 0..3 {
        let start = Instant::now();
        let answer = request(
            addr,
            "GET",
            &format!("/v1/executions/{}", encoded(id)),
            None,
        );
        seen.note("describe while the backend is down", &answer);
        match answer {
            Ok((503, _)) => {}
            other => panic!("round {round}: with the backend down, describe answered {other:?}"),
        }
        assert!(start.elapsed() <= ANSWER_BOUND);
        eprintln!("chaos: 503 while down after {:?}", start.elapsed());
        let answer = request(
            addr,
            "POST",
            "/v1/executions",
            Some(br#"{"kind":"k","lane":"chaos"}"#),
        );
        seen.note("submit while the backend is down", &answer);
        assert!(
            matches!(answer, Ok((503, _))),
            "with the backend down, submit answered {answer:?}"
        );
    }
}

/// Until `addr` serves `id` again; panics past the bound.
fn recovers(seen: &mut Seen, addr: &str, id: &str) {
    let start = Instant::now();
    loop {
        if describe(seen, addr, id).is_some() {
            eprintln!(
                "chaos: serving again {:?} after the backend returned",
                start.elapsed()
            );
            return;
        }
        assert!(
            start.elapsed() < RECOVERY_BOUND,
            "the API did not serve again within {RECOVERY_BOUND:?} after the backend returned"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

fn run(mut backend: Backend, url: String) {
    let mut seen = Seen::default();
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = Serve::start(&url, port_a, "chaos-a");
    let mut b = Serve::start(&url, port_b, "chaos-b");
    let addrs = [a.addr.clone(), b.addr.clone()];
    let mut acknowledged = BTreeSet::new();
    for i in 0..BEFORE {
        acknowledged.extend(submit(&mut seen, &addrs[i % 2], i));
    }
    assert_eq!(
        acknowledged.len(),
        BEFORE,
        "every submission is acknowledged while healthy"
    );
    let mut workers = Workers::start(&b.addr);
    // Workers die mid-execution, again and again.
    for _ in 0..8 {
        thread::sleep(Duration::from_millis(250));
        workers.kill_one();
    }
    // One of the two servers dies; the other takes over its partitions.
    a.kill();
    thread::sleep(Duration::from_millis(500));
    workers.kill_one();
    // The backend goes away and comes back.
    let probe = acknowledged.iter().next().unwrap().clone();
    match &mut backend {
        Backend::Sqlite { .. } => {
            b.kill();
            thread::sleep(Duration::from_millis(500));
            b = Serve::start(&url, port_b, "chaos-b");
        }
        Backend::Postgres(pg) => {
            pg.stop_immediate();
            answers_while_down(&mut seen, &b.addr, &probe);
            pg.start_again();
        }
        Backend::Valkey(vk) => {
            vk.kill();
            answers_while_down(&mut seen, &b.addr, &probe);
            vk.restart(AOF_ALWAYS);
        }
    }
    recovers(&mut seen, &b.addr, &probe);
    workers.keep_up();
    for i in BEFORE..BEFORE + AFTER {
        if let Some(id) = submit(&mut seen, &b.addr, i) {
            acknowledged.insert(id);
        }
    }
    assert_eq!(
        acknowledged.len(),
        BEFORE + AFTER,
        "every submission after recovery is acknowledged"
    );
    // Everything acknowledged completes, once.
    let last_fault = Instant::now();
    let mut pending: BTreeSet<String> = acknowledged.clone();
    while !pending.is_empty() {
        assert!(
            last_fault.elapsed() < FINISH_BOUND,
            "{} of {} executions not completed {FINISH_BOUND:?} after the last fault, e.g. {:?}",
            pending.len(),
            acknowledged.len(),
            pending
                .iter()
                .next()
                .and_then(|id| describe(&mut seen, &b.addr, id))
        );
        workers.keep_up();
        let mut done = Vec::new();
        for id in &pending {
            let Some(snap) = describe(&mut seen, &b.addr, id) else {
                continue;
            };
            match snap["state"].as_str() {
                Some("completed") => done.push(id.clone()),
                Some("waiting" | "delayed" | "running") => {}
                other => panic!("{id} ended {other:?}: {snap}"),
            }
        }
        for id in done {
            pending.remove(&id);
        }
        thread::sleep(Duration::from_millis(200));
    }
    let mut reclaimed = 0;
    for id in &acknowledged {
        let snap = describe(&mut seen, &b.addr, id).unwrap();
        if snap["attempt_history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["outcome"] == "lease_expired")
        {
            reclaimed += 1;
        }
        let completes = snap["attempt_history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["outcome"] == "completed")
            .count();
        assert_eq!(completes, 1, "{id} completed {completes} times: {snap}");
        assert_eq!(snap["result"], json!({"done": true}), "{id}");
    }
    assert!(seen.bad.is_empty(), "broken rules: {:#?}", seen.bad);
    assert!(
        workers.started > WORKERS,
        "workers were killed and replaced"
    );
    assert!(
        reclaimed > 0,
        "no execution was reclaimed from a killed worker: the faults hit no running work"
    );
    eprintln!(
        "chaos: {} executions, {reclaimed} reclaimed from killed workers, answers {:?}",
        acknowledged.len(),
        seen.statuses
    );
}

#[test]
fn sqlite_survives_killed_workers_a_killed_server_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("chaos.db").display());
    run(Backend::Sqlite { _dir: dir }, url);
}

#[test]
fn postgres_survives_killed_workers_a_killed_server_and_an_immediate_stop() {
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let url = pg.url();
    run(Backend::Postgres(pg), url);
}

#[test]
fn valkey_survives_killed_workers_a_killed_server_and_a_killed_aof_always_server() {
    let Some(vk) = PrivateRedis::start_valkey_with(AOF_ALWAYS) else {
        return;
    };
    let url = format!("{}?prefix=chaos", vk.url());
    run(Backend::Valkey(vk), url);
}

// ------------------------------------------------------------------- fuzz

/// A small deterministic generator (xorshift), so a failing case can be
/// replayed from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    /// A JSON value of bounded depth: the kinds of values a client sends.
    fn value(&mut self, depth: u32) -> Value {
        match self.below(if depth == 0 { 5 } else { 7 }) {
            0 => Value::Null,
            1 => json!(self.below(2) == 1),
            2 => json!(self.next() as i64 >> self.below(60)),
            3 => json!((self.next() % 1_000_000) as f64 / 1_000.0),
            4 => json!(self.pick(&[
                "",
                "a",
                "héllo",
                "tab\tand \"quote\"",
                "emoji 🎻",
                "{p:1}",
                "%7B"
            ])),
            5 => Value::Array((0..self.below(4)).map(|_| self.value(depth - 1)).collect()),
            _ => Value::Object(
                (0..self.below(4))
                    .map(|i| (format!("k{i}"), self.value(depth - 1)))
                    .collect(),
            ),
        }
    }
}

/// Random valid and invalid requests at every route: none answers a 5xx
/// other than 503, and every payload and result accepted comes back equal
/// to what was sent.
#[test]
fn random_requests_never_break_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("fuzz.db").display());
    let serve = Serve::start(&url, free_port(), "fuzz");
    let addr = serve.addr.clone();
    let seed = 0x9e37_79b9_7f4a_7c15_u64 ^ u64::from(std::process::id());
    eprintln!("fuzz seed {seed:#x}");
    let mut rng = Rng(seed);
    let mut seen = Seen::default();
    let mut ids: Vec<String> = vec!["{p:0}-019ab1c2-7d3e-7f00-8a1b-2c3d4e5f6071".into()];
    let mut leases: Vec<(String, String)> = Vec::new();
    let garbage: &[&[u8]] = &[
        b"",
        b"{",
        b"[]",
        b"null",
        b"\"x\"",
        b"{\"kind\":",
        b"\xff\xfe",
        b"{\"kind\":\"k\",\"lane\":7}",
        b"{\"kind\":\"\",\"lane\":\"l\"}",
        b"{\"kind\":\"k\",\"priority\":1e99}",
        b"{\"kind\":\"k\",\"delay_ms\":-1}",
        b"{\"executions\":[]}",
        b"{\"worker_id\":\"w\",\"lease_ms\":0}",
    ];
    for round in 0..600 {
        let id = ids[rng.below(ids.len() as u64) as usize].clone();
        let lane = rng
            .pick(&["chaos", "other", "bad lane", "%00", "x".repeat(300).leak()])
            .to_owned();
        let (method, path, body): (&str, String, Vec<u8>) = match rng.below(9) {
            0 | 1 => {
                let payload = rng.value(3);
                let body = json!({"kind": "fuzz.job", "lane": "chaos", "payload": payload});
                let answer = request(
                    &addr,
                    "POST",
                    "/v1/executions",
                    Some(body.to_string().as_bytes()),
                );
                seen.note("submit", &answer);
                if let Ok((201 | 200, text)) = &answer {
                    let v: Value = serde_json::from_str(text).unwrap();
                    let new_id = v["id"].as_str().unwrap().to_owned();
                    let back = request(
                        &addr,
                        "GET",
                        &format!("/v1/executions/{}", encoded(&new_id)),
                        None,
                    );
                    seen.note("describe", &back);
                    let (_, text) = back.unwrap();
                    let snap: Value = serde_json::from_str(&text).unwrap();
                    assert_eq!(snap["payload"], payload, "round {round}: payload changed");
                    ids.push(new_id);
                }
                continue;
            }
            2 => (
                "POST",
                "/v1/executions".into(),
                garbage[rng.below(garbage.len() as u64) as usize].to_vec(),
            ),
            3 => (
                "GET",
                format!("/v1/executions/{}", encoded(&id)),
                Vec::new(),
            ),
            4 => {
                let body = json!({"worker_id": "fuzz", "lease_ms": 5_000, "max": rng.below(3) + 1});
                let answer = request(
                    &addr,
                    "POST",
                    &format!("/v1/lanes/{lane}/claim"),
                    Some(body.to_string().as_bytes()),
                );
                seen.note("claim", &answer);
                if let Ok((200, text)) = &answer {
                    let v: Value = serde_json::from_str(text).unwrap();
                    for c in v["claims"].as_array().into_iter().flatten() {
                        leases.push((
                            c["id"].as_str().unwrap().to_owned(),
                            c["lease"]["token"].as_str().unwrap().to_owned(),
                        ));
                    }
                }
                continue;
            }
            5 if !leases.is_empty() => {
                let (lid, token) = leases.swap_remove(rng.below(leases.len() as u64) as usize);
                let result = rng.value(2);
                let body = json!({"lease": token, "result": result});
                let answer = request(
                    &addr,
                    "POST",
                    &format!("/v1/executions/{}/complete", encoded(&lid)),
                    Some(body.to_string().as_bytes()),
                );
                seen.note("complete", &answer);
                if let Ok((200, _)) = &answer {
                    let (_, text) = request(
                        &addr,
                        "GET",
                        &format!("/v1/executions/{}", encoded(&lid)),
                        None,
                    )
                    .unwrap();
                    let snap: Value = serde_json::from_str(&text).unwrap();
                    assert_eq!(snap["result"], result, "round {round}: result changed");
                }
                continue;
            }
            5 | 6 => (
                "POST",
                format!(
                    "/v1/executions/{}/{}",
                    encoded(&id),
                    rng.pick(&["complete", "fail", "cancel", "renew", "nope"])
                ),
                garbage[rng.below(garbage.len() as u64) as usize].to_vec(),
            ),
            7 => (
                "GET",
                format!(
                    "/v1/executions?{}",
                    rng.pick(&[
                        "lane=chaos",
                        "state=bogus",
                        "limit=0",
                        "limit=100000",
                        "tag=a:b",
                        "cursor=zz",
                        "kind=%FF",
                        ""
                    ])
                ),
                Vec::new(),
            ),
            _ => (
                rng.pick(&["GET", "PUT", "DELETE", "PATCH"]),
                rng.pick(&[
                    "/v1/stats",
                    "/v1/openapi.json",
                    "/metrics",
                    "/healthz",
                    "/v1/nope",
                    "/v1/executions/%7B",
                    "//",
                ])
                .to_owned(),
                Vec::new(),
            ),
        };
        let answer = request(
            &addr,
            method,
            &path,
            (!body.is_empty()).then_some(body.as_slice()),
        );
        seen.note(&format!("{method} {path}"), &answer);
        assert!(answer.is_ok(), "round {round}: {method} {path}: {answer:?}");
    }
    assert!(
        seen.bad.is_empty(),
        "broken rules (seed {seed:#x}): {:#?}",
        seen.bad
    );
    assert!(ids.len() > 50, "the fuzz created executions");
    eprintln!("fuzz: answers {:?}", seen.statuses);
}
