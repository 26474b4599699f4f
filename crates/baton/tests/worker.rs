//! `baton worker --exec`: the real binary, claiming from a real `baton serve`
//! over HTTP or from its SQLite file directly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use baton_core::{Backoff, ExecutionId, RetryPolicy, State};
use baton_sdk::{Client, decode_result};
use serde_json::{Value, json};

const BOUND: Duration = Duration::from_secs(60);

/// A child process killed (SIGKILL) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn baton() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_baton"));
    cmd.env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .env_remove("BATON_API_TOKEN")
        .env_remove("BATON_LISTEN")
        .env_remove("BATON_WORKER_ID")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

/// Starts `baton serve` on `db_url` and answers it with its `http://` URL.
fn serve(db_url: &str) -> (Proc, String) {
    let mut child = baton()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--sweep-ms",
            "50",
            "--backend",
            db_url,
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let _ = tx.send(rest.split(',').next().unwrap_or_default().to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(BOUND)
        .expect("baton serve did not log its address");
    (Proc(child), format!("http://{addr}"))
}

fn worker(backend: &str, exec: &str, extra: &[&str]) -> Proc {
    Proc(
        baton()
            .args([
                "worker",
                "--backend",
                backend,
                "--lane",
                "jobs",
                "--exec",
                exec,
            ])
            .args(extra)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

async fn submit_all(client: &Client, n: usize) -> Vec<(ExecutionId, Value)> {
    let mut out = Vec::new();
    for i in 0..n {
        let payload = json!({"n": i, "text": format!("item {i}")});
        let new = client
            .execution("copy", &payload)
            .unwrap()
            .with_retry(RetryPolicy {
                max_attempts: 3,
                backoff: Backoff::NONE,
            });
        out.push((client.submit_execution(new).await.unwrap().id, payload));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_cat_drains_http_submissions_into_equal_results() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = serve(&format!("sqlite://{}", dir.path().join("b.db").display()));
    let client = Client::connect(&url)
        .await
        .unwrap()
        .with_lane("jobs")
        .unwrap();
    let items = submit_all(&client, 20).await;
    let _worker = worker(&url, "cat", &["--concurrency", "4"]);
    for (id, payload) in &items {
        let snap = client.wait_for_completion(id, BOUND).await.unwrap();
        assert_eq!(snap.state, State::Completed, "{:?}", snap.last_error);
        assert_eq!(
            decode_result::<Value>(&snap).unwrap().as_ref(),
            Some(payload)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_command_fails_the_attempt_with_its_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = serve(&format!("sqlite://{}", dir.path().join("b.db").display()));
    let client = Client::connect(&url)
        .await
        .unwrap()
        .with_lane("jobs")
        .unwrap();
    let new = client
        .execution("copy", &1)
        .unwrap()
        .with_retry(RetryPolicy {
            max_attempts: 1,
            backoff: Backoff::NONE,
        });
    let id = client.submit_execution(new).await.unwrap().id;
    let _worker = worker(&url, "echo 'no such thing' >&2; exit 3", &[]);
    let snap = client.wait_for_completion(&id, BOUND).await.unwrap();
    assert_eq!(snap.state, State::Failed);
    let error = snap.last_error.unwrap();
    assert!(
        error.contains("exit status 3") && error.contains("no such thing"),
        "{error}"
    );
}

/// Worker A takes every execution and is killed with SIGKILL mid-way; the
/// engine reclaims the expired leases and worker B finishes them, each
/// exactly once.
async fn killed_worker_is_replaced(backend_of: impl Fn(&str, &str) -> String) {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("b.db").display());
    let (_server, http) = serve(&db_url);
    let backend = backend_of(&db_url, &http);
    let client = Client::connect(&http)
        .await
        .unwrap()
        .with_lane("jobs")
        .unwrap();
    let items = submit_all(&client, 4).await;
    let log = dir.path().join("done.log");
    let a = worker(
        &backend,
        "sleep 30",
        &["--concurrency", "4", "--lease-ms", "500"],
    );
    for (id, _) in &items {
        let until = tokio::time::Instant::now() + BOUND;
        while client.describe(id).await.unwrap().state != State::Running {
            assert!(tokio::time::Instant::now() < until, "{id} never ran");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    drop(a);
    let record = format!("echo \"$BATON_EXECUTION_ID\" >> '{}'; cat", log.display());
    let _b = worker(&backend, &record, &["--concurrency", "4"]);
    for (id, payload) in &items {
        let snap = client.wait_for_completion(id, BOUND).await.unwrap();
        assert_eq!(snap.state, State::Completed, "{:?}", snap.last_error);
        assert_eq!(snap.attempts, 2);
        assert_eq!(
            decode_result::<Value>(&snap).unwrap().as_ref(),
            Some(payload)
        );
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    let mut expected: Vec<String> = items.iter().map(|(id, _)| id.to_string()).collect();
    expected.sort();
    assert_eq!(lines, expected, "each execution ran once on worker B");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_over_http_is_replaced() {
    killed_worker_is_replaced(|_db, http| http.to_owned()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_on_sqlite_is_replaced() {
    killed_worker_is_replaced(|db, _http| db.to_owned()).await;
}
