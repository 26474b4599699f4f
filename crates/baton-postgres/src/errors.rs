//! Driver errors mapped to [`EngineError`] by what the caller should do next.

use baton_core::EngineError;

/// Maps a sqlx error by its SQLSTATE class.
///
/// - `40001` serialization failure, `40P01` deadlock, `55P03` lock not
///   available: a concurrent writer won and the transaction rolled back, so
///   nothing changed — [`Contention`](EngineError::Contention).
/// - Class `23` (integrity constraint violation): Baton never writes a row
///   that breaks a constraint, so one firing means the stored state is not
///   what Baton wrote — [`Corruption`](EngineError::Corruption).
/// - `42P01` / `42703` (undefined table / column): the schema is not the one
///   this build migrates to — [`Configuration`](EngineError::Configuration).
/// - Everything else, including lost connections, server shutdown and
///   exhausted pools — [`Unavailable`](EngineError::Unavailable).
pub fn map(err: sqlx::Error) -> EngineError {
    match &err {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            match code.as_str() {
                "40001" | "40P01" | "55P03" => EngineError::Contention {
                    message: format!("Postgres rolled back a conflicting transaction ({db})"),
                },
                c if c.starts_with("23") => {
                    EngineError::corruption(format!("Postgres constraint violated ({c}): {db}"))
                }
                "42P01" | "42703" => EngineError::Configuration {
                    message: format!(
                        "the Postgres schema is not the one this build expects ({db}); \
                         is the search_path schema migrated?"
                    ),
                },
                _ => EngineError::unavailable(format!("Postgres error {code}: {db}")),
            }
        }
        sqlx::Error::PoolTimedOut => EngineError::unavailable(
            "timed out waiting for a Postgres connection from the pool; the server is slow or the pool is too small",
        ),
        _ => EngineError::unavailable(format!("Postgres: {err}")),
    }
}

/// Maps a migration error: a failed statement by its SQLSTATE, anything else
/// (a database migrated by a newer build, a changed migration) is a
/// configuration problem.
pub fn map_migrate(err: sqlx::migrate::MigrateError) -> EngineError {
    match err {
        sqlx::migrate::MigrateError::Execute(e) => map(e),
        other => EngineError::Configuration {
            message: format!(
                "the Postgres schema cannot be migrated: {other}; was it written by a newer Baton?"
            ),
        },
    }
}
