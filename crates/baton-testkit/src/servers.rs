//! Real servers for tests, started from the binaries on the machine.
//!
//! Backends' test files ask for a server here instead of assuming one runs:
//! [`postgres()`] gives the base URL of a Postgres server and each test then
//! works in a schema of its own (see [`PostgresServer::schema_url`]);
//! [`valkey`], [`redis7`] and [`valkey_cluster`] give a standalone Valkey 9,
//! a standalone Redis 7.0 and a three-master Valkey Cluster, and each test
//! then works under a key prefix of its own (see
//! [`RedisServer::unique_prefix`]).
//!
//! Every kind is started at most once per test run, by the first test
//! process that asks, shared by all the others, and stopped a few seconds
//! after the last one exits.
//!
//! [`chromium()`] is no server: it finds the headless Chromium the
//! dashboard's browser tests drive, and skips or fails like the servers
//! when there is none.

mod chromium;
mod postgres;
mod private;
mod private_pg;
mod redis;
mod redis_binaries;
mod redis_nodes;
mod resp;

pub use chromium::{CHROMIUM_VAR, Chromium, DEBIAN_HEADLESS_SHELL, chromium, find_chromium};
pub use postgres::{PostgresServer, postgres};
pub use private::PrivateRedis;
pub use private_pg::PrivatePostgres;
pub use redis::{RedisServer, redis7, valkey, valkey_cluster};
pub use resp::RespValue;

/// True when running under CI (`CI=true` or `CI=1`), where a server that
/// cannot be started fails the test instead of skipping it.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// The environment variable naming the file where skipped tests are listed
/// (`scripts/test` sets it and prints the list after the run).
pub const SKIP_LOG_VAR: &str = "BATON_TEST_SKIP_LOG";

/// Notes that the running test skips for want of a server: prints `notice`
/// to standard error and, when [`SKIP_LOG_VAR`] names a file, appends one
/// line naming the test and the reason to it, so the run's summary can
/// count skips instead of leaving them in the captured output.
pub fn note_skip(notice: &str) {
    eprintln!("\n!!! SKIPPED: {notice}\n");
    let Some(path) = std::env::var_os(SKIP_LOG_VAR).filter(|p| !p.is_empty()) else {
        return;
    };
    if let Err(e) = append_skip(std::path::Path::new(&path), notice) {
        eprintln!(
            "!!! could not record the skip in {}: {e}",
            path.to_string_lossy()
        );
    }
}

/// Appends the line of [`note_skip`]: the test binary and name, then the
/// notice on one line.
fn append_skip(path: &std::path::Path, notice: &str) -> std::io::Result<()> {
    let binary = std::env::var("NEXTEST_BINARY_ID").unwrap_or_default();
    let thread = std::thread::current();
    let test = match thread.name() {
        Some(name) if name != "main" && !name.starts_with("tokio-") => name,
        _ => "a test",
    };
    let reason = notice.replace("\n!!! ", " ").replace('\n', " ");
    let line = format!("{binary} {test}: {reason}\n");
    // One short O_APPEND write per line, so parallel test processes do not
    // interleave their lines.
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    std::io::Write::write_all(&mut file, line.as_bytes())
}

/// The numeric user id, so users of one machine get separate servers.
fn user_id() -> String {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_skip_appends_one_line_naming_the_test() {
        let path = std::env::temp_dir().join(format!("baton-skips-{}", uuid::Uuid::new_v4()));
        super::append_skip(&path, "a test needing X: none\n!!! To run it: install X.").unwrap();
        super::append_skip(&path, "a test needing Y: none").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].contains("each_skip_appends_one_line_naming_the_test: a test needing X: none To run it: install X."),
            "{text}"
        );
        assert!(lines[1].ends_with("a test needing Y: none"), "{text}");
    }
}
