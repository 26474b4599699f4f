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
    (
        11,
        "event history",
        include_str!("../../../migrations/postgres/0011_events.sql"),
    ),
    (
        12,
        "retention per namespace and lane",
        include_str!("../../../migrations/postgres/0012_retention.sql"),
    ),
    (
        13,
        "limits",
        include_str!("../../../migrations/postgres/0013_limits.sql"),
    ),
    (
        14,
        "routing",
        include_str!("../../../migrations/postgres/0014_routing.sql"),
    ),
    (
        15,
        "fair limits",
        include_str!("../../../migrations/postgres/0015_fairness.sql"),
    ),
    (
        16,
        "fair turns only for marked submissions",
        include_str!("../../../migrations/postgres/0016_fair_gate.sql"),
    ),
    (
        17,
        "one CHECK constraint per hot table",
        include_str!("../../../migrations/postgres/0017_lean_checks.sql"),
    ),
    (
        18,
        "one admin index without running rows",
        include_str!("../../../migrations/postgres/0018_admin_index.sql"),
    ),
    (
        19,
        "the last attempt in the execution row",
        include_str!("../../../migrations/postgres/0019_last_attempt.sql"),
    ),
    (
        20,
        "the last attempt in the execution row (SQLite only; Postgres has it since 19)",
        include_str!("../../../migrations/postgres/0020_sqlite_last_attempt.sql"),
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
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use sqlx::{Connection, PgConnection};

    #[test]
    fn migrations_are_numbered_like_sqlite() {
        assert_eq!(super::latest_version(), 20);
    }

    /// A connection to `server` whose search_path is a new schema (named
    /// in the answer) migrated to `version`.
    async fn schema_at(
        server: &baton_testkit::servers::PostgresServer,
        version: i64,
    ) -> (String, PgConnection) {
        let schema = baton_testkit::servers::PostgresServer::unique_schema();
        let mut conn = PgConnection::connect(server.url()).await.unwrap();
        sqlx::raw_sql(&format!(
            "CREATE SCHEMA {schema}; SET search_path = {schema}"
        ))
        .execute(&mut conn)
        .await
        .unwrap();
        for (v, _, sql) in super::MIGRATIONS.iter().filter(|m| m.0 <= version) {
            sqlx::raw_sql(sql)
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("migration {v}: {e}"));
        }
        (schema, conn)
    }

    /// Removes a schema made by [`schema_at`].
    async fn drop_schema(conn: &mut PgConnection, schema: &str) {
        sqlx::raw_sql(&format!("DROP SCHEMA {schema} CASCADE"))
            .execute(conn)
            .await
            .unwrap();
    }

    /// Version 11 on a schema holding executions: one that existed before
    /// keeps no history (its changes write no event), nor does a new one
    /// created without it; one created with it starts with `created` and
    /// records its changes. No namespace has the history on.
    #[tokio::test]
    async fn version_11_keeps_histories_of_executions_created_with_it() {
        let Some(server) = baton_testkit::servers::postgres().await else {
            return;
        };
        let (schema, mut conn) = schema_at(server, 10).await;
        let columns = "partition, uuid, namespace, lane, kind, state, priority, payload, tags, \
            required_caps, attempts, max_attempts, backoff_initial_ms, backoff_max_ms, \
            backoff_multiplier, backoff_jitter, created_at, updated_at, ready_at";
        let values = "3, $1, 'n', 'l', 'k', 'waiting', 0, '', '{}', '[]', 0, 3, 0, 0, 1.0, \
            false, $2, $2, $2";
        let insert = format!("INSERT INTO executions ({columns}) VALUES ({values})");
        let old = uuid::Uuid::from_u128(1);
        sqlx::query(&insert)
            .bind(old)
            .bind(5_i64)
            .execute(&mut conn)
            .await
            .unwrap();
        let (_, _, v11) = super::MIGRATIONS[10];
        sqlx::raw_sql(v11).execute(&mut conn).await.unwrap();
        let history: bool =
            sqlx::query_scalar("SELECT history FROM executions WHERE partition = 3 AND uuid = $1")
                .bind(old)
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert!(!history, "an execution from before keeps no history");
        let on: i64 = sqlx::query_scalar("SELECT count(*) FROM namespace_history")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(on, 0, "the history is off everywhere");
        let (without, with) = (uuid::Uuid::from_u128(2), uuid::Uuid::from_u128(3));
        sqlx::query(&insert)
            .bind(without)
            .bind(7_i64)
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query(&format!(
            "INSERT INTO executions ({columns}, history) VALUES ({values}, true)"
        ))
        .bind(with)
        .bind(7_i64)
        .execute(&mut conn)
        .await
        .unwrap();
        sqlx::query(
            "UPDATE executions SET state = 'delayed', run_at = 100, updated_at = 9 \
             WHERE partition = 3",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        type Event = (uuid::Uuid, i64, i64, Option<String>, Option<String>);
        let events: Vec<Event> = sqlx::query_as(
            "SELECT uuid, seq, at, from_state, to_state FROM events ORDER BY uuid, seq",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let state = |s: &str| Some(s.to_owned());
        assert_eq!(
            events,
            vec![
                (with, 1, 7, None, state("waiting")),
                (with, 2, 9, state("waiting"), state("delayed")),
            ]
        );
        drop_schema(&mut conn, &schema).await;
    }

    /// Version 12 on a schema holding executions: one finished before
    /// carries no keep (the deployment's default keeps it), no rule
    /// exists, and the trim pass's two range indexes are in place.
    #[tokio::test]
    async fn version_12_leaves_executions_from_before_to_the_default() {
        let Some(server) = baton_testkit::servers::postgres().await else {
            return;
        };
        let (schema, mut conn) = schema_at(server, 11).await;
        let old = uuid::Uuid::from_u128(1);
        sqlx::query(
            "INSERT INTO executions (partition, uuid, namespace, lane, kind, state, priority, \
             payload, tags, required_caps, attempts, max_attempts, backoff_initial_ms, \
             backoff_max_ms, backoff_multiplier, backoff_jitter, created_at, updated_at, \
             ready_at, finished_at) \
             VALUES (3, $1, 'n', 'l', 'k', 'completed', 0, '', '{}', '[]', 1, 3, 0, 0, 1.0, \
             false, 5, 7, 5, 7)",
        )
        .bind(old)
        .execute(&mut conn)
        .await
        .unwrap();
        let (_, _, v12) = super::MIGRATIONS[11];
        sqlx::raw_sql(v12).execute(&mut conn).await.unwrap();
        let keep: Option<i64> =
            sqlx::query_scalar("SELECT keep_ms FROM executions WHERE partition = 3 AND uuid = $1")
                .bind(old)
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert_eq!(keep, None, "an execution from before carries no keep");
        let rules: i64 = sqlx::query_scalar("SELECT count(*) FROM retention_rules")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(rules, 0, "no retention rule");
        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT indexname::text FROM pg_indexes WHERE schemaname = $1 \
             AND tablename = 'executions' AND indexname LIKE 'executions_retention%' \
             ORDER BY indexname",
        )
        .bind(&schema)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        assert_eq!(
            indexes,
            vec!["executions_retention", "executions_retention_kept"]
        );
        let due: Option<uuid::Uuid> = sqlx::query_scalar(
            "SELECT uuid FROM executions WHERE partition = 3 AND finished_at IS NOT NULL \
             AND root IS NULL AND keep_ms IS NULL AND COALESCE(trim_at, finished_at) <= 7",
        )
        .fetch_optional(&mut conn)
        .await
        .unwrap();
        assert_eq!(due, Some(old), "read by the default's range");
        drop_schema(&mut conn, &schema).await;
    }

    /// Version 14 on a schema holding an execution with an idempotency key
    /// and a recorded worker: the execution has no session or version, its
    /// key belongs to no session (and the same key may now be taken in a
    /// session), the worker accepts every version, and no session is held.
    #[tokio::test]
    async fn version_14_leaves_work_from_before_without_sessions_or_versions() {
        let Some(server) = baton_testkit::servers::postgres().await else {
            return;
        };
        let (schema, mut conn) = schema_at(server, 13).await;
        let old = uuid::Uuid::from_u128(1);
        sqlx::query(
            "INSERT INTO executions (partition, uuid, namespace, lane, kind, state, priority, \
             payload, tags, required_caps, attempts, max_attempts, backoff_initial_ms, \
             backoff_max_ms, backoff_multiplier, backoff_jitter, created_at, updated_at, \
             ready_at, idempotency_key) \
             VALUES (3, $1, 'n', 'l', 'k', 'waiting', 0, '', '{}', '[]', 0, 3, 0, 0, 1.0, \
             false, 5, 5, 5, 'once')",
        )
        .bind(old)
        .execute(&mut conn)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO idempotency_keys (namespace, lane, key, partition, uuid) \
             VALUES ('n', 'l', 'once', 3, $1)",
        )
        .bind(old)
        .execute(&mut conn)
        .await
        .unwrap();
        sqlx::raw_sql(
            "INSERT INTO workers (namespace, worker_id, lanes, capabilities, last_seen) \
             VALUES ('n', 'w', '{l}', '{}', 5)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        let (_, _, v14) = super::MIGRATIONS[13];
        sqlx::raw_sql(v14).execute(&mut conn).await.unwrap();
        let routing: (Option<String>, Option<String>, Option<String>) = sqlx::query_as(
            "SELECT session, version, version_key FROM executions \
             WHERE partition = 3 AND uuid = $1",
        )
        .bind(old)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(routing, (None, None, None));
        let key_session: String = sqlx::query_scalar(
            "SELECT session FROM idempotency_keys WHERE namespace = 'n' AND key = 'once'",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(key_session, "", "a key from before belongs to no session");
        let insert_key = "INSERT INTO idempotency_keys (namespace, lane, session, key, partition, \
             uuid) VALUES ('n', 'l', $1, 'once', 3, $2) ON CONFLICT DO NOTHING";
        let taken = |session: &'static str| {
            sqlx::query(insert_key)
                .bind(session)
                .bind(uuid::Uuid::from_u128(2))
        };
        let again = taken("").execute(&mut conn).await.unwrap();
        assert_eq!(
            again.rows_affected(),
            0,
            "the key is taken without a session"
        );
        let in_session = taken("chat").execute(&mut conn).await.unwrap();
        assert_eq!(in_session.rows_affected(), 1, "and free in a session");
        let versions: String =
            sqlx::query_scalar("SELECT versions FROM workers WHERE worker_id = 'w'")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert_eq!(versions, "", "a worker from before accepts every version");
        let held: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(held, 0);
        drop_schema(&mut conn, &schema).await;
    }

    /// Version 15 on a schema at version 14 holding a limit and a waiting
    /// execution: the limit is not fair, the execution keeps its place
    /// (its `ready_at`) and has no fair key; once a fair limit exists, an
    /// execution entering `waiting` later in its lane is stamped with its
    /// key and takes its turn at the lane's head, while one of another
    /// namespace keeps the time it became ready.
    #[tokio::test]
    async fn version_15_keeps_work_from_before_in_its_place() {
        let Some(server) = baton_testkit::servers::postgres().await else {
            return;
        };
        let (schema, mut conn) = schema_at(server, 14).await;
        let insert = "INSERT INTO executions (partition, uuid, namespace, lane, kind, state, \
             priority, payload, tags, required_caps, attempts, max_attempts, \
             backoff_initial_ms, backoff_max_ms, backoff_multiplier, backoff_jitter, \
             created_at, updated_at, ready_at) \
             VALUES (3, $1, $2, 'l', 'k', 'waiting', 0, '', $3::jsonb, '[]', 0, 3, 0, 0, \
             1.0, false, $4, $4, $4)";
        let old = uuid::Uuid::from_u128(1);
        sqlx::query(insert)
            .bind(old)
            .bind("n")
            .bind(r#"{"tenant": "big"}"#)
            .bind(5_i64)
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::raw_sql(
            "INSERT INTO limits (name, namespace, lane, key, max_running) \
             VALUES ('cap', 'n', '', 'kind', 4)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        let (_, _, v15) = super::MIGRATIONS[14];
        sqlx::raw_sql(v15).execute(&mut conn).await.unwrap();
        let fair: bool = sqlx::query_scalar("SELECT fair FROM limits WHERE name = 'cap'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert!(!fair, "a limit from before is not fair");
        type Turn = (i64, Option<String>);
        let turn = |id: uuid::Uuid| {
            sqlx::query_as::<_, Turn>(
                "SELECT ready_at, fair_key FROM executions WHERE partition = 3 AND uuid = $1",
            )
            .bind(id)
        };
        assert_eq!(turn(old).fetch_one(&mut conn).await.unwrap(), (5, None));
        sqlx::raw_sql(
            "INSERT INTO limits (name, namespace, lane, key, fair) \
             VALUES ('turns', 'n', '', 'tag:tenant', true)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        let (late, other) = (uuid::Uuid::from_u128(2), uuid::Uuid::from_u128(3));
        for (id, ns) in [(late, "n"), (other, "elsewhere")] {
            sqlx::query(insert)
                .bind(id)
                .bind(ns)
                .bind(r#"{"tenant": "small"}"#)
                .bind(9_i64)
                .execute(&mut conn)
                .await
                .unwrap();
        }
        assert_eq!(
            turn(late).fetch_one(&mut conn).await.unwrap(),
            (5, Some("small".to_owned())),
            "a new key starts at the lane's head"
        );
        assert_eq!(
            turn(other).fetch_one(&mut conn).await.unwrap(),
            (9, None),
            "another namespace has no fair limit"
        );
        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT indexname::text FROM pg_indexes WHERE schemaname = $1 \
             AND tablename = 'executions' AND indexname = 'executions_fair_turns'",
        )
        .bind(&schema)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        assert_eq!(indexes, vec!["executions_fair_turns"]);
        drop_schema(&mut conn, &schema).await;
    }

    /// Version 16 on a schema at version 15 with a fair limit: a row
    /// inserted as `waiting` calls the fair-turn function only when the
    /// inserting statement marked it (an empty `fair_key`), as `create.sql`
    /// does in a covered lane; an unmarked row keeps its `ready_at` and no
    /// key. A move into `waiting` by update still takes its turn unmarked.
    #[tokio::test]
    async fn version_16_gives_turns_to_marked_submissions_only() {
        let Some(server) = baton_testkit::servers::postgres().await else {
            return;
        };
        let (schema, mut conn) = schema_at(server, 15).await;
        sqlx::raw_sql(
            "INSERT INTO limits (name, namespace, lane, key, fair) \
             VALUES ('turns', 'n', '', 'tag:tenant', true)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        let insert = "INSERT INTO executions (partition, uuid, namespace, lane, kind, state, \
             priority, payload, tags, required_caps, attempts, max_attempts, \
             backoff_initial_ms, backoff_max_ms, backoff_multiplier, backoff_jitter, \
             created_at, updated_at, ready_at, run_at, fair_key) \
             VALUES (3, $1, 'n', 'l', 'k', $2, 0, '', $3::jsonb, '[]', 0, 3, 0, 0, \
             1.0, false, $4, $4, $4, $4, $5)";
        let row = |id: u128,
                   state: &'static str,
                   tenant: &'static str,
                   at: i64,
                   mark: Option<&'static str>| {
            sqlx::query(insert)
                .bind(uuid::Uuid::from_u128(id))
                .bind(state)
                .bind(format!(r#"{{"tenant": "{tenant}"}}"#))
                .bind(at)
                .bind(mark)
        };
        row(1, "waiting", "big", 5, Some(""))
            .execute(&mut conn)
            .await
            .unwrap();
        let (_, _, v16) = super::MIGRATIONS[15];
        sqlx::raw_sql(v16).execute(&mut conn).await.unwrap();
        row(2, "waiting", "big", 9, Some(""))
            .execute(&mut conn)
            .await
            .unwrap();
        row(3, "waiting", "big", 9, None)
            .execute(&mut conn)
            .await
            .unwrap();
        row(4, "delayed", "big", 9, None)
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::raw_sql("UPDATE executions SET state = 'waiting' WHERE uuid = '00000000-0000-0000-0000-000000000004'")
            .execute(&mut conn)
            .await
            .unwrap();
        let turns: Vec<(i64, Option<String>)> = sqlx::query_as(
            "SELECT ready_at, fair_key FROM executions WHERE partition = 3 ORDER BY uuid",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let big = || Some("big".to_owned());
        assert_eq!(
            turns,
            vec![(5, big()), (6, big()), (9, None), (7, big()),],
            "marked and moved rows take turns after the key's last; the unmarked insert does not"
        );
        drop_schema(&mut conn, &schema).await;
    }

    /// Version 17 leaves one CHECK constraint on `executions` and one on
    /// `attempts` (on the parents and every child), and they still refuse
    /// every row whose state disagrees with its other columns. Applying it
    /// again changes nothing.
    #[tokio::test]
    async fn version_17_keeps_the_rules_that_tie_columns_together() {
        let Some(server) = baton_testkit::servers::postgres().await else {
            return;
        };
        let (schema, mut conn) = schema_at(server, 16).await;
        let (_, _, v17) = super::MIGRATIONS[16];
        sqlx::raw_sql(v17).execute(&mut conn).await.unwrap();
        sqlx::raw_sql(v17).execute(&mut conn).await.unwrap();
        let checks: Vec<(String, i64)> = sqlx::query_as(
            "SELECT c.relname::text, count(*) FROM pg_constraint k \
             JOIN pg_class c ON c.oid = k.conrelid \
             WHERE k.contype = 'c' AND c.relnamespace = current_schema()::regnamespace \
               AND (c.relname LIKE 'executions%' OR c.relname LIKE 'attempts%') \
             GROUP BY 1 ORDER BY 1",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        assert_eq!(
            checks.len(),
            18,
            "both parents and their 8 children each: {checks:?}"
        );
        assert!(checks.iter().all(|(_, n)| *n == 1), "{checks:?}");

        let insert = |id: u128, columns: &str, values: &str| {
            format!(
                "INSERT INTO executions (partition, uuid, namespace, lane, kind, priority, \
                 payload, tags, required_caps, attempts, max_attempts, backoff_initial_ms, \
                 backoff_max_ms, backoff_multiplier, backoff_jitter, created_at, updated_at, \
                 ready_at, {columns}) VALUES (3, '{}', 'n', 'l', 'k', 0, '', '{{}}', '[]', 0, 3, \
                 0, 0, 1.0, false, 1, 1, 1, {values})",
                uuid::Uuid::from_u128(id)
            )
        };
        let accepted = [
            insert(1, "state", "'waiting'"),
            insert(2, "state, run_at", "'delayed', 5"),
            insert(
                3,
                "state, worker_id, lease_nonce, lease_expires_at",
                "'running', 'w', 7, 9",
            ),
            insert(4, "state, finished_at, result", "'completed', 5, 'r'"),
            insert(5, "state, paused_from", "'paused', 'waiting'"),
        ];
        for sql in &accepted {
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        }
        let refused = [
            ("an unknown state", insert(10, "state", "'done'")),
            ("running without a lease", insert(11, "state", "'running'")),
            (
                "running without a nonce",
                insert(12, "state, worker_id, lease_expires_at", "'running', 'w', 9"),
            ),
            (
                "a lease while waiting",
                insert(13, "state, worker_id, lease_nonce, lease_expires_at", "'waiting', 'w', 7, 9"),
            ),
            ("an end state without a finish time", insert(14, "state", "'failed'")),
            ("a finish time while waiting", insert(15, "state, finished_at", "'waiting', 5")),
            ("delayed without a due time", insert(16, "state", "'delayed'")),
            ("paused without its origin", insert(17, "state", "'paused'")),
            (
                "a result when not completed",
                insert(18, "state, finished_at, result", "'failed', 5, 'r'"),
            ),
            (
                "an attempt ended without an outcome",
                "INSERT INTO attempts (partition, execution_uuid, number, worker_id, nonce, \
                 started_at, ended_at) VALUES (3, gen_random_uuid(), 1, 'w', 1, 1, 2)"
                    .to_owned(),
            ),
            (
                "an unknown outcome",
                "INSERT INTO attempts (partition, execution_uuid, number, worker_id, nonce, \
                 started_at, ended_at, outcome) VALUES (3, gen_random_uuid(), 1, 'w', 1, 1, 2, 'won')"
                    .to_owned(),
            ),
        ];
        for (what, sql) in &refused {
            let err = sqlx::raw_sql(sql).execute(&mut conn).await.unwrap_err();
            let code = err
                .as_database_error()
                .and_then(|e| e.code())
                .unwrap_or_default();
            assert_eq!(code, "23514", "{what} must be refused: {err}");
        }
        drop_schema(&mut conn, &schema).await;
    }

    /// Version 18 leaves one index for the admin reads, keyed by
    /// namespace and id, carrying lane and state, without running rows,
    /// on the parent and every child; the per-lane, per-state index is
    /// gone. Applying it again changes nothing.
    #[tokio::test]
    async fn version_18_keeps_one_admin_index_without_running_rows() {
        let Some(server) = baton_testkit::servers::postgres().await else {
            return;
        };
        let (schema, mut conn) = schema_at(server, 17).await;
        let (_, _, v18) = super::MIGRATIONS[17];
        sqlx::raw_sql(v18).execute(&mut conn).await.unwrap();
        sqlx::raw_sql(v18).execute(&mut conn).await.unwrap();
        let defs: Vec<(String, String)> = sqlx::query_as(
            "SELECT c.relname::text, pg_get_indexdef(c.oid) FROM pg_class c \
             WHERE c.relkind IN ('i', 'I') AND c.relnamespace = current_schema()::regnamespace \
               AND pg_get_indexdef(c.oid) LIKE '%(namespace, %' \
               AND pg_get_indexdef(c.oid) LIKE '% ON %executions%' \
             ORDER BY 1",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let admin: Vec<&(String, String)> = defs
            .iter()
            .filter(|(_, def)| !def.contains("priority") && !def.contains("idempotency"))
            .collect();
        assert_eq!(admin.len(), 9, "the parent and its 8 children: {defs:#?}");
        for (name, def) in &admin {
            assert!(
                def.ends_with(
                    "(namespace, uuid) INCLUDE (lane, state) WHERE (state <> 'running'::text)"
                ),
                "{name}: {def}"
            );
        }
        assert!(
            defs.iter()
                .all(|(_, def)| !def.contains("(namespace, lane, state)")),
            "the per-lane, per-state index is gone: {defs:#?}"
        );
        drop_schema(&mut conn, &schema).await;
    }

    /// Version 19 moves each unfinished execution's last attempt from
    /// `attempts` into its row, leaves the earlier ones and every attempt
    /// of a finished execution where they were, and `attempt_history`
    /// answers every attempt as `attempts` did before. Applying it again
    /// changes nothing.
    #[tokio::test]
    async fn version_19_moves_the_last_attempt_into_the_row() {
        let Some(server) = baton_testkit::servers::postgres().await else {
            return;
        };
        let (schema, mut conn) = schema_at(server, 18).await;
        let running = uuid::Uuid::from_u128(1);
        let waiting = uuid::Uuid::from_u128(2);
        let never = uuid::Uuid::from_u128(3);
        let done = uuid::Uuid::from_u128(4);
        let execution = |id: uuid::Uuid, attempts: i32, more: &str, values: &str| {
            format!(
                "INSERT INTO executions (partition, uuid, namespace, lane, kind, priority, \
                 payload, tags, required_caps, attempts, max_attempts, backoff_initial_ms, \
                 backoff_max_ms, backoff_multiplier, backoff_jitter, created_at, updated_at, \
                 ready_at, {more}) VALUES (3, '{id}', 'n', 'l', 'k', 0, '', '{{}}', '[]', \
                 {attempts}, 3, 0, 0, 1.0, false, 1, 1, 1, {values})"
            )
        };
        let setup = [
            execution(
                running,
                2,
                "state, worker_id, lease_nonce, lease_expires_at",
                "'running', 'w2', 22, 99",
            ),
            execution(waiting, 1, "state", "'waiting'"),
            execution(never, 0, "state", "'waiting'"),
            execution(
                done,
                1,
                "state, finished_at, result",
                "'completed', 60, 'r'",
            ),
            format!(
                "INSERT INTO attempts (partition, execution_uuid, number, worker_id, nonce, \
                 started_at, ended_at, outcome, error) VALUES \
                 (3, '{running}', 1, 'w1', 11, 10, 20, 'failed', 'boom'), \
                 (3, '{running}', 2, 'w2', 22, 30, NULL, NULL, NULL), \
                 (3, '{waiting}', 1, 'w1', 33, 40, 50, 'lease_expired', 'late'), \
                 (3, '{done}', 1, 'w3', 44, 55, 60, 'completed', NULL)"
            ),
        ];
        for sql in &setup {
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        }
        type Attempt = (
            uuid::Uuid,
            i32,
            String,
            i64,
            i64,
            Option<i64>,
            Option<String>,
            Option<String>,
        );
        let history = |table: &'static str| {
            format!(
                "SELECT execution_uuid, number, worker_id, nonce, started_at, ended_at, \
                 outcome, error FROM {table} ORDER BY execution_uuid, number"
            )
        };
        let before: Vec<Attempt> = sqlx::query_as(&history("attempts"))
            .fetch_all(&mut conn)
            .await
            .unwrap();
        assert_eq!(before.len(), 4);

        let (_, _, v19) = super::MIGRATIONS[18];
        sqlx::raw_sql(v19).execute(&mut conn).await.unwrap();
        sqlx::raw_sql(v19).execute(&mut conn).await.unwrap();

        let after: Vec<Attempt> = sqlx::query_as(&history("attempt_history"))
            .fetch_all(&mut conn)
            .await
            .unwrap();
        assert_eq!(after, before, "the history reads as it did");
        let kept: Vec<(uuid::Uuid, i32)> = sqlx::query_as(
            "SELECT execution_uuid, number FROM attempts ORDER BY execution_uuid, number",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        assert_eq!(
            kept,
            vec![(running, 1), (done, 1)],
            "earlier attempts, and a finished execution's, stay apart"
        );
        type InRow = (uuid::Uuid, Option<String>, Option<i64>, Option<String>);
        let rows: Vec<InRow> = sqlx::query_as(
            "SELECT uuid, attempt_worker, attempt_started_at, attempt_outcome \
                 FROM executions ORDER BY uuid",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        assert_eq!(
            rows,
            vec![
                (running, Some("w2".to_owned()), Some(30), None),
                (
                    waiting,
                    Some("w1".to_owned()),
                    Some(40),
                    Some("lease_expired".to_owned())
                ),
                (never, None, None, None),
                (done, None, None, None),
            ]
        );
        let refused = sqlx::raw_sql(
            "UPDATE executions SET attempt_outcome = 'won', attempt_ended_at = 1 \
             WHERE uuid = '00000000-0000-0000-0000-000000000002'",
        )
        .execute(&mut conn)
        .await
        .unwrap_err();
        let code = refused
            .as_database_error()
            .and_then(|e| e.code())
            .unwrap_or_default();
        assert_eq!(
            code, "23514",
            "an unknown outcome in the row is refused: {refused}"
        );
        drop_schema(&mut conn, &schema).await;
    }
}
