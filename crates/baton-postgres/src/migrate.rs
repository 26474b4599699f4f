//! The Postgres migrations, embedded at compile time from
//! `migrations/postgres`.
//!
//! They run through sqlx's migrator (checksums, a `_sqlx_migrations` table,
//! one transaction per migration), fed from this list instead of a directory
//! read at run time, so the binary carries its schema. Every table, including
//! `_sqlx_migrations`, lands in the first schema of the connection's
//! search_path.
//!
//! sqlx's own migration lock is an advisory lock keyed by the *database*
//! name, which would serialise deployments living in different schemas of one
//! database; [`run`] takes one keyed by the schema instead and applies the
//! migrations itself with sqlx's checksums and bookkeeping.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use baton_core::{EngineError, Result};
use sqlx::PgConnection;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migrate, MigrateError, Migration, MigrationSource, MigrationType, Migrator};

use crate::errors::{map, map_migrate};

/// `(version, description, sql)` of every migration, in order. Versions match
/// the SQLite migrations of the same number.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "flow root",
        include_str!("../../../migrations/postgres/0002_flow_root.sql"),
    ),
    (
        3,
        "flow reads",
        include_str!("../../../migrations/postgres/0003_flow_reads.sql"),
    ),
    (
        4,
        "durable states",
        include_str!("../../../migrations/postgres/0004_durable_states.sql"),
    ),
    (
        5,
        "dependencies",
        include_str!("../../../migrations/postgres/0005_dependencies.sql"),
    ),
    (
        6,
        "waits",
        include_str!("../../../migrations/postgres/0006_waits.sql"),
    ),
    (
        7,
        "steps",
        include_str!("../../../migrations/postgres/0007_steps.sql"),
    ),
    (
        8,
        "memory",
        include_str!("../../../migrations/postgres/0008_memory.sql"),
    ),
    (
        9,
        "operator control",
        include_str!("../../../migrations/postgres/0009_operator_control.sql"),
    ),
    (
        10,
        "pause and replay",
        include_str!("../../../migrations/postgres/0010_pause_replay.sql"),
    ),
];

/// The schema version this build expects.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map(|m| m.0).unwrap_or(0)
}

#[derive(Debug)]
struct Embedded;

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        Box::pin(async move {
            Ok(MIGRATIONS
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*description),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// Creates `schema` if needed and migrates it, on `conn` (whose search_path
/// starts with `schema`), holding an advisory lock per schema so concurrent
/// starts of one deployment migrate once while other schemas proceed.
pub async fn run(conn: &mut PgConnection, schema: &str) -> Result<()> {
    let key = format!("baton-migrate:{schema}");
    sqlx::query("SELECT pg_advisory_lock(hashtextextended($1, 0))")
        .bind(&key)
        .execute(&mut *conn)
        .await
        .map_err(map)?;
    let migrated = async {
        // Creating needs the CREATE privilege on the database even when the
        // schema exists, so a deployment given only its schema checks first.
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(schema)
                .fetch_one(&mut *conn)
                .await
                .map_err(map)?;
        if !exists {
            sqlx::query(&format!("CREATE SCHEMA \"{schema}\""))
                .execute(&mut *conn)
                .await
                .map_err(map)?;
        }
        let migrator = Migrator::new(Embedded).await.map_err(map_migrate)?;
        apply(&migrator, &mut *conn).await.map_err(map_migrate)
    }
    .await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock(hashtextextended($1, 0))")
        .bind(&key)
        .execute(&mut *conn)
        .await
        .map_err(map);
    migrated?;
    unlocked.map(|_| ())
}

/// What sqlx's `Migrator::run` does after taking its lock, through the
/// public [`Migrate`] methods: they are boxed `Send` futures, whereas awaiting
/// `Migrator::run(&mut conn)` inside an `async fn` makes the caller's future
/// fail the higher-ranked `Send` check that `async_trait` callers need.
async fn apply(migrator: &Migrator, conn: &mut PgConnection) -> Result<(), MigrateError> {
    conn.ensure_migrations_table().await?;
    if let Some(version) = conn.dirty_version().await? {
        return Err(MigrateError::Dirty(version));
    }
    let applied = conn.list_applied_migrations().await?;
    for done in &applied {
        if !migrator.iter().any(|m| m.version == done.version) {
            return Err(MigrateError::VersionMissing(done.version));
        }
    }
    for migration in migrator.iter() {
        match applied.iter().find(|a| a.version == migration.version) {
            Some(a) if a.checksum != migration.checksum => {
                return Err(MigrateError::VersionMismatch(migration.version));
            }
            Some(_) => {}
            None => {
                conn.apply(migration).await?;
            }
        }
    }
    Ok(())
}

/// Checks that a schema name is a plain lowercase identifier, so it can be
/// spliced into `search_path`, `CREATE SCHEMA` and a channel name unquoted.
pub fn check_schema(schema: &str) -> Result<()> {
    let mut chars = schema.chars();
    let ok = matches!(chars.next(), Some('a'..='z' | '_'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && schema.len() <= 48
        && !schema.starts_with("pg_");
    if ok {
        Ok(())
    } else {
        Err(EngineError::invalid(
            "schema",
            schema,
            "a schema name is 1 to 48 characters of a-z, 0-9 and _, not starting with a digit or pg_",
        ))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn migrations_are_numbered_like_sqlite() {
        assert_eq!(super::latest_version(), 10);
    }
}
