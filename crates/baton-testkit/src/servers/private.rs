//! A Redis 7.0 (or Valkey 9) server of one test alone ([`PrivateRedis`]): for tests that
//! load fake function libraries, kill and restart the server, or form a
//! cluster of their own, which must not disturb the shared deployments.
//! The binary is found like the shared Redis 7.0's (see `redis.rs`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::redis::{Kind, find_binary, free_ports};
use super::resp::{Connection, RespValue};

/// How long a started (or restarted) server may take to answer `PING`.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A `redis-server` of this test alone, on a free loopback port with its
/// own directory; killed (by its own handle) and its directory removed when
/// dropped, also when the test panics.
#[derive(Debug)]
pub struct PrivateRedis {
    child: Child,
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
    cluster: bool,
}

impl PrivateRedis {
    /// Starts a standalone server without persistence; `None` (after a
    /// loud `SKIPPED:` notice) when no Redis 7.0 binary is found outside CI;
    /// under CI a missing binary panics.
    pub fn start() -> Option<PrivateRedis> {
        Self::start_with(false, &["--appendonly", "no"])
    }

    /// Starts a server with `persistence` options (such as
    /// `["--appendonly", "yes", "--appendfsync", "always"]`); with `cluster`
    /// it is a cluster node without slots (the test forms the cluster).
    pub fn start_with(cluster: bool, persistence: &[&str]) -> Option<PrivateRedis> {
        Self::start_kind(Kind::Redis7, cluster, persistence)
    }

    /// Like [`PrivateRedis::start_with`] for a standalone Valkey 9 (the
    /// binary the shared Valkey uses) instead of Redis 7.0.
    pub fn start_valkey_with(persistence: &[&str]) -> Option<PrivateRedis> {
        Self::start_kind(Kind::Valkey, false, persistence)
    }

    fn start_kind(kind: Kind, cluster: bool, persistence: &[&str]) -> Option<PrivateRedis> {
        let bin = match find_binary(kind) {
            Ok(bin) => bin.path,
            Err(why) if super::in_ci() => {
                panic!("CI is set, so this fails instead of skipping: {why}")
            }
            Err(why) => {
                super::note_skip(&format!("a test needing a private server: {why}"));
                return None;
            }
        };
        let mut last = String::new();
        // A free port may be taken between the probe and the server's bind.
        for _ in 0..3 {
            let port = match free_ports(1, cluster) {
                Ok(ports) => ports[0],
                Err(e) => panic!("{e}"),
            };
            let dir = std::env::temp_dir()
                .join(format!("baton-private-redis-{}-{port}", std::process::id()));
            if let Err(e) = std::fs::create_dir_all(&dir) {
                panic!("cannot create {}: {e}", dir.display());
            }
            let child = run(&bin, port, &dir, cluster, persistence);
            let mut server = PrivateRedis {
                child,
                port,
                dir,
                bin: bin.clone(),
                cluster,
            };
            match server.wait_ready() {
                Ok(()) => return Some(server),
                Err(e) => last = e,
            }
        }
        panic!("cannot start a private {}: {last}", bin.display());
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server with SIGKILL: nothing is flushed beyond what its
    /// persistence settings already wrote.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the killed server again on its port and directory (so it
    /// reads back what it persisted there).
    ///
    /// # Panics
    /// When it does not answer `PING` in time.
    pub fn restart(&mut self, persistence: &[&str]) {
        self.child = run(&self.bin, self.port, &self.dir, self.cluster, persistence);
        if let Err(e) = self.wait_ready() {
            panic!("the private Redis did not come back: {e}");
        }
    }

    /// Sends one command over a new connection and answers the reply (an
    /// error reply is `Err`).
    pub fn command(&self, args: &[&str]) -> Result<RespValue, String> {
        Connection::open(&format!("127.0.0.1:{}", self.port), READY_TIMEOUT)?.command(args)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("it exited with {status}"));
            }
            if matches!(self.command(&["PING"]), Ok(RespValue::Simple(ref s)) if s == "PONG") {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "port {} did not answer PING in {} s",
                    self.port,
                    READY_TIMEOUT.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(bin: &Path, port: u16, dir: &Path, cluster: bool, persistence: &[&str]) -> Child {
    let mut cmd = Command::new(bin);
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", ""])
        .args(persistence)
        .arg("--dir")
        .arg(dir);
    if cluster {
        cmd.args(["--cluster-enabled", "yes"]);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()))
}
