//! A Postgres server of one test alone ([`PrivatePostgres`]): for tests that
//! stop it abruptly and start it again, which must not disturb the shared
//! server. Binaries are found like the shared server's (see `postgres.rs`);
//! as root, `initdb` and the server run as the `postgres` user.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::postgres::find_bindir;

/// A Postgres server on a free loopback port with its data in a temporary
/// directory, durable commits (`fsync=on`, `synchronous_commit=on`), trust
/// authentication; stopped (`-m immediate`) and removed when dropped.
#[derive(Debug)]
pub struct PrivatePostgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
}

impl PrivatePostgres {
    /// Creates and starts a server; `None` (after a loud `SKIPPED:`
    /// notice) when the server binaries are missing outside CI; under CI a
    /// missing binary panics.
    ///
    /// # Panics
    /// When `initdb` or the server fails.
    pub fn start() -> Option<PrivatePostgres> {
        let Some(bin) = find_bindir() else {
            let why = "no Postgres server binaries (initdb, pg_ctl) found";
            if super::in_ci() {
                panic!("CI is set, so this fails instead of skipping: {why}");
            }
            super::note_skip(&format!("a test needing a private Postgres server: {why}"));
            return None;
        };
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("cannot find a free loopback port: {e}"));
        let data =
            std::env::temp_dir().join(format!("baton-private-pg-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&data)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", data.display()));
        if is_root() {
            run_checked(Command::new("chown").arg("postgres").arg(&data), "chown");
        }
        let server = PrivatePostgres { bin, data, port };
        run_checked(
            server
                .as_server_user(&server.bin.join("initdb"))
                .arg("-D")
                .arg(server.data.join("db"))
                .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
                .arg("--locale=C"),
            "initdb",
        );
        server.start_again();
        Some(server)
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server at once (`pg_ctl stop -m immediate`: no checkpoint,
    /// clients cut off, as in a crash); committed work survives through the
    /// WAL.
    pub fn stop_immediate(&self) {
        run_checked(
            self.as_server_user(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.data.join("db"))
                .args(["-m", "immediate", "-w", "stop"]),
            "pg_ctl stop",
        );
    }

    /// Starts the (stopped) server again on its port and data; waits until
    /// it accepts connections.
    ///
    /// # Panics
    /// When it does not start.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on",
            self.port,
            self.data.display()
        );
        run_checked(
            self.as_server_user(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.data.join("db"))
                .arg("-l")
                .arg(self.data.join("server.log"))
                .args(["-w", "-t", "60", "-o", &options, "start"]),
            "pg_ctl start",
        );
    }

    fn as_server_user(&self, program: &Path) -> Command {
        if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self
            .as_server_user(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data.join("db"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .is_some_and(|s| s.trim() == "0")
}

fn run_checked(cmd: &mut Command, what: &str) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
