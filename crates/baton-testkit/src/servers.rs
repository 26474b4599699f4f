//! Real servers for tests, started from the binaries on the machine.
//!
//! Backends' test files ask for a server here instead of assuming one runs:
//! [`postgres`] gives the base URL of a Postgres server and each test then
//! works in a schema of its own (see [`PostgresServer::schema_url`]).

mod postgres;

pub use postgres::{PostgresServer, postgres};

/// True when running under CI (`CI=true` or `CI=1`), where a server that
/// cannot be started fails the test instead of skipping it.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}
