//! A Postgres server for tests.
//!
//! With `BATON_TEST_POSTGRES_URL` set, that server is used as is (the URL
//! names a database in which tests create schemas). Otherwise the test kit
//! starts one itself from the server binaries on the machine — default
//! settings, `fsync` and `synchronous_commit` on, listening on a free
//! loopback port only — and shares it between every test process of the
//! run: nextest runs each test in a process of its own, and one `initdb` per
//! test would dominate the run. Nothing depends on a system server (port
//! 5432).
//!
//! The coordination lives in `postgres.sh` (file locks in a directory under
//! the temporary directory): a process registers as a user for exactly its
//! own lifetime, through a pipe only it holds, and a reaper started with the
//! server stops it and removes its data directory a few seconds after the
//! last user exited. Statics are never dropped, so nothing here relies on
//! destructors, and no process is signalled except the helper this process
//! started itself.
//!
//! Binaries are found through `BATON_TEST_POSTGRES_BIN`, `pg_config
//! --bindir`, `/usr/lib/postgresql/<version>/bin` (newest first) or `PATH`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::Duration;

/// The coordination script, run with `sh -c`.
const SCRIPT: &str = include_str!("postgres.sh");

/// How long starting (or joining) the shared server may take.
const START_TIMEOUT: Duration = Duration::from_secs(180);

/// A Postgres server tests may create schemas in.
#[derive(Debug)]
pub struct PostgresServer {
    url: String,
    /// The registration helper and the pipe whose closing (at process exit)
    /// ends the registration. Never used, only kept.
    _registration: Option<Mutex<(Child, ChildStdin)>>,
}

impl PostgresServer {
    /// The base URL: `postgres://user@host:port/database`, possibly with
    /// driver options.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The base URL with `schema=<schema>` added to its query.
    pub fn schema_url(&self, schema: &str) -> String {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{sep}schema={schema}", self.url)
    }

    /// A schema name no other test uses: `t_` and 32 hex digits.
    pub fn unique_schema() -> String {
        format!("t_{}", uuid::Uuid::new_v4().simple())
    }
}

static SERVER: OnceLock<Result<PostgresServer, String>> = OnceLock::new();

/// The shared Postgres server of this test process, started on first use.
///
/// When no server can be started or reached: under CI ([`in_ci`](super::in_ci))
/// this panics with the reason, failing the test; elsewhere it prints a loud
/// notice and answers `None`, and the caller skips its test.
pub async fn postgres() -> Option<&'static PostgresServer> {
    let started = tokio::task::spawn_blocking(|| SERVER.get_or_init(start))
        .await
        .unwrap_or_else(|e| panic!("starting the test Postgres server panicked: {e}"));
    match started {
        Ok(server) => Some(server),
        Err(reason) if super::in_ci() => panic!(
            "no Postgres server for the tests (CI is set, so this fails instead of skipping): {reason}"
        ),
        Err(reason) => {
            super::note_skip(&format!(
                "a Postgres test: {reason}\n!!! Install the Postgres server \
                 binaries (apt-get install postgresql) or set BATON_TEST_POSTGRES_URL."
            ));
            None
        }
    }
}

fn start() -> Result<PostgresServer, String> {
    if let Ok(url) = std::env::var("BATON_TEST_POSTGRES_URL")
        && !url.is_empty()
    {
        return Ok(PostgresServer {
            url,
            _registration: None,
        });
    }
    let bin = find_bindir().ok_or_else(|| {
        "no Postgres server binaries (initdb, pg_ctl) found via BATON_TEST_POSTGRES_BIN, \
         pg_config --bindir, /usr/lib/postgresql/*/bin or PATH"
            .to_owned()
    })?;
    let dir = std::env::temp_dir().join(format!("baton-testkit-postgres-{}", super::user_id()));
    let mut last = String::new();
    // A free port can be taken between our probe and the server's bind.
    for _ in 0..3 {
        match register(&bin, &dir) {
            Ok(server) => return Ok(server),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Runs the coordination script once: joins or starts the server.
fn register(bin: &Path, dir: &Path) -> Result<PostgresServer, String> {
    let port = free_port()?;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(SCRIPT)
        .arg("baton-postgres")
        .arg("serve")
        .env("BATON_PG_SCRIPT", SCRIPT)
        .env("BATON_PG_DIR", dir)
        .env("BATON_PG_BIN", bin)
        .env("BATON_PG_PORT", port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run sh for the Postgres helper: {e}"))?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err("the Postgres helper has no pipes".into());
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line).map(|_| line);
        let _ = tx.send(read);
    });
    let answer = match rx.recv_timeout(START_TIMEOUT) {
        Ok(Ok(line)) => line,
        Ok(Err(e)) => format!("error reading the Postgres helper: {e}"),
        Err(_) => format!(
            "error the Postgres helper gave no answer within {} s",
            START_TIMEOUT.as_secs()
        ),
    };
    let answer = answer.trim();
    if let Some(url) = answer.strip_prefix("url ") {
        return Ok(PostgresServer {
            url: url.to_owned(),
            _registration: Some(Mutex::new((child, stdin))),
        });
    }
    // Only the helper we started is stopped, by its own handle.
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    let reason = answer.strip_prefix("error ").unwrap_or(answer);
    Err(format!(
        "cannot start a Postgres server with the binaries in {}: {} (logs in {})",
        bin.display(),
        if reason.is_empty() {
            "the helper exited without an answer"
        } else {
            reason
        },
        dir.display()
    ))
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free loopback port: {e}"))
}

fn has_server(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("pg_ctl").is_file()
}

pub(super) fn find_bindir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("BATON_TEST_POSTGRES_BIN") {
        let dir = PathBuf::from(dir);
        return has_server(&dir).then_some(dir);
    }
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| PathBuf::from(s.trim()));
    if let Some(dir) = from_pg_config.filter(|d| has_server(d)) {
        return Some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let dir = e.path().join("bin");
            has_server(&dir).then_some((version, dir))
        })
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Some(dir);
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|d| has_server(d))
}
