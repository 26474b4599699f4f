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

/// `baton serve` on a new SQLite file in `dir`, its URL, and a client of
/// it on lane `jobs`.
async fn serve_with_client(dir: &std::path::Path) -> (Proc, String, Client) {
    let (server, url) = serve(&format!("sqlite://{}", dir.join("b.db").display()));
    let client = Client::connect(&url)
        .await
        .unwrap()
        .with_lane("jobs")
        .unwrap();
    (server, url, client)
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
    let (_server, url, client) = serve_with_client(dir.path()).await;
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
    let (_server, url, client) = serve_with_client(dir.path()).await;
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

/// An execution with dependencies finds its upstream outcomes in the file
/// named by BATON_UPSTREAM_FILE (the claim's `upstream` as JSON); one
/// without has no such variable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_gets_the_upstream_outcomes_in_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, url, client) = serve_with_client(dir.path()).await;
    let mut root = client.execution("root", &()).unwrap();
    root.lane = baton_core::Lane::new("idle").unwrap();
    let root = client.submit_execution(root).await.unwrap().id;
    let up = client
        .execution("copy", &json!({"n": 7}))
        .unwrap()
        .with_parent(root.clone());
    let up = client.submit_execution(up).await.unwrap().id;
    let joined = client
        .execution("join", &())
        .unwrap()
        .with_parent(root)
        .with_dependencies([up.clone()]);
    let joined = client.submit_execution(joined).await.unwrap().id;
    let command =
        "if [ -n \"$BATON_UPSTREAM_FILE\" ]; then cat \"$BATON_UPSTREAM_FILE\"; else cat; fi";
    let _worker = worker(&url, command, &[]);
    let first = client.wait_for_completion(&up, BOUND).await.unwrap();
    assert_eq!(
        decode_result::<Value>(&first).unwrap(),
        Some(json!({"n": 7})),
        "no dependencies: no file, the payload echoed"
    );
    let snap = client.wait_for_completion(&joined, BOUND).await.unwrap();
    assert_eq!(snap.state, State::Completed, "{:?}", snap.last_error);
    assert_eq!(
        decode_result::<Value>(&snap).unwrap(),
        Some(json!({up.to_string(): {"state": "completed", "result": {"n": 7}}}))
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

/// Whether `pid` is a live (not zombie) `sh` or `sleep`: the processes of
/// [`forking_command`]. Another program under a reused pid is not ours.
fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "PID (COMM) STATE …"; COMM may hold spaces and parentheses.
    let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
        return false;
    };
    let comm = &stat[open + 1..close];
    let state = stat[close + 1..].trim_start().chars().next();
    matches!(comm, "sh" | "sleep" | "dash" | "bash") && state != Some('Z')
}

/// Pids read from a file; SIGKILLs the live ones when dropped, so a failing
/// test leaves nothing behind.
struct Pids(Vec<u32>);

impl Drop for Pids {
    fn drop(&mut self) {
        for pid in self.0.iter().filter(|p| alive(**p)) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// A command that starts two background `sleep`s, writes their pids and its
/// own to `pids`, and waits for them.
fn forking_command(pids: &std::path::Path) -> String {
    let f = pids.display();
    format!("sleep 300 & echo $! >> '{f}'; sleep 300 & echo $! >> '{f}'; echo $$ >> '{f}'; wait")
}

/// How the worker is made to stop the command.
enum Stop {
    /// The execution is cancelled; the worker learns it at its next renew.
    Cancel,
    /// The worker gets SIGTERM and shuts down with a short grace period.
    Shutdown,
    /// The worker gets SIGKILL.
    Kill,
}

/// Runs [`forking_command`] on a worker, stops it as `stop` says, and
/// checks that every process the command started ends, not only its `sh`.
async fn every_process_of_the_command_ends(stop: Stop) {
    let dir = tempfile::tempdir().unwrap();
    let (_server, url, client) = serve_with_client(dir.path()).await;
    let id = client.submit("fork", &1).await.unwrap().id;
    let pid_file = dir.path().join("pids");
    let mut worker = worker(
        &url,
        &forking_command(&pid_file),
        &["--lease-ms", "600", "--grace-ms", "100"],
    );
    let until = tokio::time::Instant::now() + BOUND;
    let pids = loop {
        let text = std::fs::read_to_string(&pid_file).unwrap_or_default();
        let pids: Vec<u32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        if pids.len() == 3 {
            break Pids(pids);
        }
        assert!(
            tokio::time::Instant::now() < until,
            "the command never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(pids.0.iter().all(|p| alive(*p)), "{:?} all run", pids.0);
    match stop {
        Stop::Cancel => {
            client.cancel(&id, Some("test".into())).await.unwrap();
        }
        Stop::Shutdown => {
            let pid = worker.0.id().to_string();
            assert!(
                Command::new("kill")
                    .args(["-TERM", &pid])
                    .status()
                    .unwrap()
                    .success()
            );
            let until = std::time::Instant::now() + BOUND;
            while worker.0.try_wait().unwrap().is_none() {
                assert!(std::time::Instant::now() < until, "the worker did not stop");
                thread::sleep(Duration::from_millis(20));
            }
        }
        Stop::Kill => {
            worker.0.kill().unwrap();
            worker.0.wait().unwrap();
        }
    }
    // A liveness bound, far above the watchdog's SIGTERM-to-SIGKILL grace.
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left: Vec<u32> = pids.0.iter().copied().filter(|p| alive(*p)).collect();
        if left.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "processes {left:?} of the command outlived it (of {:?})",
            pids.0
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_ends_every_process_of_the_command() {
    every_process_of_the_command_ends(Stop::Cancel).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_every_process_of_the_command() {
    every_process_of_the_command_ends(Stop::Shutdown).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_leaves_no_process_of_the_command() {
    every_process_of_the_command_ends(Stop::Kill).await;
}
