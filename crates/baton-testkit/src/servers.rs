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

mod postgres;
mod private;
mod private_pg;
mod redis;
mod redis_binaries;
mod redis_nodes;
mod resp;

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
