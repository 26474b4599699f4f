//! Driver errors mapped to [`EngineError`] by what the caller should do next.

use baton_core::EngineError;

/// Maps a sqlx error. Busy/locked database and a writer queue that timed out
/// are contention (retry); a broken connection is unavailability; a violated
/// constraint means Baton wrote or found something it never should, which is
/// corruption.
pub fn map(err: sqlx::Error) -> EngineError {
    match &err {
        sqlx::Error::Database(db) => {
            let code = db.code().and_then(|c| c.parse::<i32>().ok()).unwrap_or(0);
            // Primary result code is the low byte of an extended code.
            match code & 0xff {
                5 | 6 => EngineError::Contention {
                    message: format!(
                        "the SQLite database is busy ({db}); another process holds the write lock"
                    ),
                },
                19 => EngineError::corruption(format!("SQLite constraint violated: {db}")),
                11 | 26 => EngineError::corruption(format!(
                    "the SQLite file is damaged or not a database ({db}); restore it from a backup"
                )),
                _ => EngineError::unavailable(format!("SQLite error: {db}")),
            }
        }
        sqlx::Error::PoolTimedOut => EngineError::Contention {
            message: "timed out waiting for the SQLite writer connection".into(),
        },
        _ => EngineError::unavailable(format!("SQLite: {err}")),
    }
}

/// Maps a migration error.
pub fn map_migrate(err: sqlx::migrate::MigrateError) -> EngineError {
    match err {
        sqlx::migrate::MigrateError::Execute(e) => map(e),
        other => EngineError::Configuration {
            message: format!(
                "the SQLite schema cannot be migrated: {other}; was this file written by a newer Baton?"
            ),
        },
    }
}
