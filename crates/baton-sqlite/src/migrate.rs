//! The SQLite migrations, embedded at compile time from `migrations/sqlite`.
//!
//! They run through sqlx's migrator (checksums, a `_sqlx_migrations` table,
//! one transaction per migration), fed from this list instead of a directory
//! read at run time, so the binary carries its schema.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

/// `(version, description, sql)` of every migration, in order. Versions match
/// the Postgres migrations of the same number.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "flow root",
        include_str!("../../../migrations/sqlite/0002_flow_root.sql"),
    ),
    (
        3,
        "flow reads",
        include_str!("../../../migrations/sqlite/0003_flow_reads.sql"),
    ),
    (
        4,
        "durable states",
        include_str!("../../../migrations/sqlite/0004_durable_states.sql"),
    ),
    (
        5,
        "dependencies",
        include_str!("../../../migrations/sqlite/0005_dependencies.sql"),
    ),
    (
        6,
        "waits",
        include_str!("../../../migrations/sqlite/0006_waits.sql"),
    ),
    (
        7,
        "steps",
        include_str!("../../../migrations/sqlite/0007_steps.sql"),
    ),
    (
        8,
        "memory",
        include_str!("../../../migrations/sqlite/0008_memory.sql"),
    ),
    (
        9,
        "operator control",
        include_str!("../../../migrations/sqlite/0009_operator_control.sql"),
    ),
    (
        10,
        "pause and replay",
        include_str!("../../../migrations/sqlite/0010_pause_replay.sql"),
    ),
    (
        11,
        "event history",
        include_str!("../../../migrations/sqlite/0011_events.sql"),
    ),
    (
        12,
        "retention per namespace and lane",
        include_str!("../../../migrations/sqlite/0012_retention.sql"),
    ),
    (
        13,
        "limits",
        include_str!("../../../migrations/sqlite/0013_limits.sql"),
    ),
    (
        14,
        "sessions and handler versions",
        include_str!("../../../migrations/sqlite/0014_routing.sql"),
    ),
    (
        15,
        "fair limits",
        include_str!("../../../migrations/sqlite/0015_fairness.sql"),
    ),
    (
        16,
        "fair turns only for marked submissions",
        include_str!("../../../migrations/sqlite/0016_fair_gate.sql"),
    ),
    (
        17,
        "one CHECK constraint per hot table (Postgres only)",
        include_str!("../../../migrations/sqlite/0017_lean_checks.sql"),
    ),
    (
        18,
        "the per-lane, per-state index without waiting and running rows",
        include_str!("../../../migrations/sqlite/0018_admin_index.sql"),
    ),
    (
        19,
        "the last attempt in the execution row (Postgres only)",
        include_str!("../../../migrations/sqlite/0019_last_attempt.sql"),
    ),
    (
        20,
        "the last attempt in the execution row",
        include_str!("../../../migrations/sqlite/0020_sqlite_last_attempt.sql"),
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

/// A migrator over the embedded migrations.
pub async fn migrator() -> Result<Migrator, sqlx::migrate::MigrateError> {
    Migrator::new(Embedded).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use sqlx::{Connection, SqliteConnection};

    /// The durable-states migration rebuilds both tables: rows written by
    /// version 3 survive field for field, and children that were still
    /// running count as open for their parents.
    #[tokio::test]
    async fn version_4_keeps_rows_and_counts_open_children() {
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        for (version, _, sql) in super::MIGRATIONS.iter().filter(|m| m.0 <= 3) {
            sqlx::raw_sql(sql)
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("migration {version}: {e}"));
        }
        let parent = uuid::Uuid::parse_str("0190f0e4-0000-7000-8000-0000000000aa").unwrap();
        let parent_text = format!("{{p:3}}-{parent}");
        let insert = "INSERT INTO executions (uuid, partition, namespace, lane, kind, state, \
            priority, payload, tags, required_caps, attempts, max_attempts, backoff_initial_ms, \
            backoff_max_ms, backoff_multiplier, backoff_jitter, parent, root, created_at, \
            updated_at, ready_at, finished_at) \
            VALUES (?, 3, 'n', 'l', 'k', ?, 0, x'', '{}', '[]', 0, 3, 0, 0, 1.0, 0, ?, ?, 1, 1, 1, ?)";
        // The last is a member whose root was trimmed before it.
        let gone = format!("{{p:3}}-{}", uuid::Uuid::from_u128(7));
        let rows: [(u128, &str, Option<&str>, Option<i64>); 5] = [
            (0xaa, "waiting", None, None),
            (0xb1, "waiting", Some(&parent_text), None),
            (0xb2, "waiting", Some(&parent_text), None),
            (0xb3, "completed", Some(&parent_text), Some(5)),
            (0xc1, "completed", Some(&gone), Some(5)),
        ];
        for (low, state, par, finished) in rows {
            let id = uuid::Uuid::from_u128(parent.as_u128() - 0xaa + low);
            sqlx::query(insert)
                .bind(id.as_bytes().to_vec())
                .bind(state)
                .bind(par)
                .bind(par)
                .bind(finished)
                .execute(&mut conn)
                .await
                .unwrap();
            sqlx::query("INSERT INTO attempts VALUES (?, 1, 'w', 1, 1, NULL, NULL, NULL)")
                .bind(id.as_bytes().to_vec())
                .execute(&mut conn)
                .await
                .unwrap();
        }
        let (_, _, v4) = super::MIGRATIONS[3];
        sqlx::raw_sql(v4).execute(&mut conn).await.unwrap();
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM executions")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(count, 5);
        let attempts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM attempts")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(attempts, 5);
        let orphan_root: Option<String> =
            sqlx::query_scalar("SELECT root FROM executions WHERE uuid = ?")
                .bind(
                    uuid::Uuid::from_u128(parent.as_u128() - 0xaa + 0xc1)
                        .as_bytes()
                        .to_vec(),
                )
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert_eq!(
            orphan_root, None,
            "a member of a trimmed root is a root of its own"
        );
        let kept: Option<String> = sqlx::query_scalar("SELECT root FROM executions WHERE uuid = ?")
            .bind(
                uuid::Uuid::from_u128(parent.as_u128() - 0xaa + 0xb1)
                    .as_bytes()
                    .to_vec(),
            )
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(kept, Some(parent_text.clone()));
        let open: i64 = sqlx::query_scalar("SELECT open_children FROM executions WHERE uuid = ?")
            .bind(parent.as_bytes().to_vec())
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(open, 2, "two unfinished children");
        let others: i64 =
            sqlx::query_scalar("SELECT SUM(open_children) FROM executions WHERE uuid <> ?")
                .bind(parent.as_bytes().to_vec())
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert_eq!(others, 0);
        sqlx::query("UPDATE executions SET state = 'blocked' WHERE uuid = ?")
            .bind(parent.as_bytes().to_vec())
            .execute(&mut conn)
            .await
            .expect("the new states are allowed");
        let bad = sqlx::query("UPDATE executions SET state = 'sleeping' WHERE uuid = ?")
            .bind(parent.as_bytes().to_vec())
            .execute(&mut conn)
            .await;
        assert!(bad.is_err(), "unknown states are still refused");
    }

    /// The dependencies migration is additive: a cascade queued by version
    /// 4 is a cancel, and existing executions have no dependencies and no
    /// dependents.
    #[tokio::test]
    async fn version_5_keeps_queued_cancels_and_rows() {
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        for (version, _, sql) in super::MIGRATIONS.iter().filter(|m| m.0 <= 4) {
            sqlx::raw_sql(sql)
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("migration {version}: {e}"));
        }
        sqlx::query(
            "INSERT INTO executions (uuid, partition, namespace, lane, kind, state, priority, \
             payload, tags, required_caps, attempts, max_attempts, backoff_initial_ms, \
             backoff_max_ms, backoff_multiplier, backoff_jitter, created_at, updated_at, \
             ready_at) VALUES (?, 3, 'n', 'l', 'k', 'waiting', 0, x'', '{}', '[]', 0, 3, 0, 0, \
             1.0, 0, 1, 1, 1)",
        )
        .bind(uuid::Uuid::from_u128(1).as_bytes().to_vec())
        .execute(&mut conn)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO cascades (partition, node, after, reason) VALUES (3, 'x', NULL, 'why')",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        let (_, _, v5) = super::MIGRATIONS[4];
        sqlx::raw_sql(v5).execute(&mut conn).await.unwrap();
        let kind: String = sqlx::query_scalar("SELECT kind FROM cascades")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(kind, "cancel");
        let (policy, total, has): (Option<String>, i64, i64) =
            sqlx::query_as("SELECT dep_policy, deps_total, has_dependents FROM executions")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert_eq!((policy, total, has), (None, 0, 0));
        let bad = sqlx::query("UPDATE cascades SET kind = 'other'")
            .execute(&mut conn)
            .await;
        assert!(bad.is_err(), "only the kinds Baton writes");
    }

    /// Version 10 keeps attempts and queued cascades through the rebuilds,
    /// and marks the dependency edges finished upstreams already told —
    /// all but those a queued walk has still to reach.
    #[tokio::test]
    async fn version_10_marks_told_edges_and_keeps_the_queue() {
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        for (version, _, sql) in super::MIGRATIONS.iter().filter(|m| m.0 <= 9) {
            sqlx::raw_sql(sql)
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("migration {version}: {e}"));
        }
        let id = |low: u128| uuid::Uuid::from_u128(0x0190f0e4_0000_7000_8000_000000000000 + low);
        let text = |low: u128| format!("{{p:3}}-{}", id(low));
        let insert = "INSERT INTO executions (uuid, partition, namespace, lane, kind, state, \
            priority, payload, tags, required_caps, attempts, max_attempts, backoff_initial_ms, \
            backoff_max_ms, backoff_multiplier, backoff_jitter, created_at, updated_at, \
            ready_at, finished_at) \
            VALUES (?, 3, 'n', 'l', 'k', ?, 0, x'', '{}', '[]', 0, 3, 0, 0, 1.0, 0, 1, 1, 1, ?)";
        // Two finished upstreams (1 with a walk queued after 12), one
        // waiting (2), and their dependents.
        for (low, state, finished) in [
            (1, "failed", Some(5)),
            (2, "waiting", None),
            (3, "completed", Some(5)),
        ] {
            sqlx::query(insert)
                .bind(id(low).as_bytes().to_vec())
                .bind(state)
                .bind(finished)
                .execute(&mut conn)
                .await
                .unwrap();
        }
        for (down, up) in [(11, 1), (12, 1), (13, 1), (14, 3), (15, 2)] {
            sqlx::query(
                "INSERT INTO dependencies (partition, downstream, upstream, counted) \
                 VALUES (3, ?, ?, 0)",
            )
            .bind(id(down).as_bytes().to_vec())
            .bind(id(up).as_bytes().to_vec())
            .execute(&mut conn)
            .await
            .unwrap();
        }
        sqlx::query(
            "INSERT INTO attempts (execution_uuid, number, worker_id, nonce, started_at, ended_at, \
             outcome) VALUES (?, 1, 'w', 1, 1, 2, 'failed')",
        )
        .bind(id(1).as_bytes().to_vec())
        .execute(&mut conn)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO cascades (partition, node, after, reason, kind) \
             VALUES (3, ?, ?, 'unmet', 'dependents')",
        )
        .bind(text(1))
        .bind(text(12))
        .execute(&mut conn)
        .await
        .unwrap();
        let (_, _, v10) = super::MIGRATIONS[9];
        sqlx::raw_sql(v10).execute(&mut conn).await.unwrap();
        let counted: Vec<(Vec<u8>, i64)> =
            sqlx::query_as("SELECT downstream, counted FROM dependencies ORDER BY downstream")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        let counted: Vec<(u128, i64)> = counted
            .into_iter()
            .map(|(d, c)| (uuid::Uuid::from_slice(&d).unwrap().as_u128() & 0xff, c))
            .collect();
        assert_eq!(
            counted,
            vec![(11, 1), (12, 1), (13, 0), (14, 1), (15, 0)],
            "told edges marked; the one the queued walk has still to reach, and the waiting \
             upstream's, not"
        );
        let kind: String = sqlx::query_scalar("SELECT kind FROM cascades")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(kind, "dependents");
        let outcome: String = sqlx::query_scalar("SELECT outcome FROM attempts")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(outcome, "failed");
        sqlx::query("UPDATE attempts SET outcome = 'paused'")
            .execute(&mut conn)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn version_14_keeps_keys_deduplicating_and_scopes_them_by_session() {
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        for (version, _, sql) in super::MIGRATIONS.iter().filter(|m| m.0 <= 13) {
            sqlx::raw_sql(sql)
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("migration {version}: {e}"));
        }
        let id = |low: u128| uuid::Uuid::from_u128(0x0190f0e4_0000_7000_8000_000000000000 + low);
        let insert = |session: &str| {
            format!(
                "INSERT INTO executions (uuid, partition, namespace, lane, kind, state, \
                 priority, payload, tags, required_caps, attempts, max_attempts, \
                 backoff_initial_ms, backoff_max_ms, backoff_multiplier, backoff_jitter, \
                 created_at, updated_at, ready_at, idempotency_key{session}) \
                 VALUES (?, 3, 'n', 'l', 'k', 'waiting', 0, x'', '{{}}', '[]', 0, 3, 0, 0, 1.0, 0, \
                 1, 1, 1, 'key'{})",
                if session.is_empty() { "" } else { ", 's1'" }
            )
        };
        sqlx::query(&insert(""))
            .bind(id(1).as_bytes().to_vec())
            .execute(&mut conn)
            .await
            .unwrap();
        let (_, _, v14) = super::MIGRATIONS[13];
        sqlx::raw_sql(v14).execute(&mut conn).await.unwrap();
        let again = sqlx::query(&insert(""))
            .bind(id(2).as_bytes().to_vec())
            .execute(&mut conn)
            .await;
        assert!(again.is_err(), "an older key still deduplicates");
        sqlx::query(&insert(", session"))
            .bind(id(3).as_bytes().to_vec())
            .execute(&mut conn)
            .await
            .expect("the same key in a session is another execution");
        let twice = sqlx::query(&insert(", session"))
            .bind(id(4).as_bytes().to_vec())
            .execute(&mut conn)
            .await;
        assert!(twice.is_err(), "and deduplicates within it");
        let session: Option<String> =
            sqlx::query_scalar("SELECT session FROM executions WHERE uuid = ?")
                .bind(id(1).as_bytes().to_vec())
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert_eq!(session, None);
        sqlx::query(
            "INSERT INTO workers (namespace, worker_id, lanes, capabilities, last_seen) \
             VALUES ('n', 'w', '[]', '[]', 1)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        let versions: String = sqlx::query_scalar("SELECT versions FROM workers")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(
            versions, "",
            "a worker recorded without a range takes every version"
        );
    }

    #[tokio::test]
    async fn version_15_keeps_limits_and_gives_turns_row_by_row() {
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        for (version, _, sql) in super::MIGRATIONS.iter().filter(|m| m.0 <= 14) {
            sqlx::raw_sql(sql)
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("migration {version}: {e}"));
        }
        sqlx::query(
            "INSERT INTO limits (name, namespace, lane, key, max_running) \
             VALUES ('cap', 'n', '', 'kind', 2)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        let (_, _, v15) = super::MIGRATIONS[14];
        sqlx::raw_sql(v15).execute(&mut conn).await.unwrap();
        let fair: i64 = sqlx::query_scalar("SELECT fair FROM limits WHERE name = 'cap'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(fair, 0, "an older limit is not fair");
        sqlx::query(
            "INSERT INTO limits (name, namespace, lane, key, fair) \
             VALUES ('turns', 'n', 'l', 'tag:tenant', 1)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        // One statement inserting many rows: each row's turn sees the rows
        // inserted before it.
        let row = |n: u128, state: &str, tenant: &str| {
            let uuid = uuid::Uuid::from_u128(0x0190f0e4_0000_7000_8000_000000000000 + n);
            let tags = if tenant.is_empty() {
                "{}".to_owned()
            } else {
                format!("{{\"tenant\":\"{tenant}\"}}")
            };
            format!(
                "(x'{}', 3, 'n', 'l', 'k', '{state}', 0, x'', '{tags}', '[]', 0, 3, 0, 0, 1.0, 0, \
                 100, 100, 100, 400)",
                uuid.simple()
            )
        };
        let insert = |rows: Vec<String>| {
            format!(
                "INSERT INTO executions (uuid, partition, namespace, lane, kind, state, \
                 priority, payload, tags, required_caps, attempts, max_attempts, \
                 backoff_initial_ms, backoff_max_ms, backoff_multiplier, backoff_jitter, \
                 created_at, updated_at, ready_at, run_at) VALUES {}",
                rows.join(", ")
            )
        };
        let batch = (1..=4).map(|n| row(n, "waiting", "a")).collect();
        sqlx::raw_sql(&insert(batch))
            .execute(&mut conn)
            .await
            .unwrap();
        let delayed = vec![
            row(5, "delayed", "b"),
            row(6, "delayed", "b"),
            row(7, "delayed", ""),
        ];
        sqlx::raw_sql(&insert(delayed))
            .execute(&mut conn)
            .await
            .unwrap();
        // One statement promoting several rows: successive turns per key.
        sqlx::query(
            "UPDATE executions SET state = 'waiting', ready_at = 500 WHERE state = 'delayed'",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        let turns: Vec<(Option<String>, i64)> =
            sqlx::query_as("SELECT fair_key, ready_at FROM executions ORDER BY ready_at, fair_key")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        let expected: Vec<(Option<String>, i64)> = [
            ("", 100),
            ("a", 100),
            ("b", 100),
            ("a", 101),
            ("b", 101),
            ("a", 102),
            ("a", 103),
        ]
        .iter()
        .map(|(k, t)| (Some((*k).to_owned()), *t))
        .collect();
        assert_eq!(turns, expected);
    }

    #[tokio::test]
    async fn version_11_leaves_older_executions_without_history() {
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        for (version, _, sql) in super::MIGRATIONS.iter().filter(|m| m.0 <= 10) {
            sqlx::raw_sql(sql)
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("migration {version}: {e}"));
        }
        let id = |low: u128| uuid::Uuid::from_u128(0x0190f0e4_0000_7000_8000_000000000000 + low);
        let insert = |history: &str| {
            format!(
                "INSERT INTO executions (uuid, partition, namespace, lane, kind, state, \
                 priority, payload, tags, required_caps, attempts, max_attempts, \
                 backoff_initial_ms, backoff_max_ms, backoff_multiplier, backoff_jitter, \
                 created_at, updated_at, ready_at{history}) \
                 VALUES (?, 3, 'n', 'l', 'k', 'waiting', 0, x'', '{{}}', '[]', 0, 3, 0, 0, 1.0, 0, \
                 ?, ?, 1{})",
                if history.is_empty() { "" } else { ", 1" }
            )
        };
        sqlx::query(&insert(""))
            .bind(id(1).as_bytes().to_vec())
            .bind(1)
            .bind(1)
            .execute(&mut conn)
            .await
            .unwrap();
        let (_, _, v11) = super::MIGRATIONS[10];
        sqlx::raw_sql(v11).execute(&mut conn).await.unwrap();
        sqlx::query(&insert(", history"))
            .bind(id(2).as_bytes().to_vec())
            .bind(9)
            .bind(9)
            .execute(&mut conn)
            .await
            .unwrap();
        for low in [1, 2] {
            sqlx::query(
                "UPDATE executions SET state = 'cancelled', cancel_reason = 'old', \
                 finished_at = 12, updated_at = 12 WHERE uuid = ?",
            )
            .bind(id(low).as_bytes().to_vec())
            .execute(&mut conn)
            .await
            .unwrap();
        }
        type Event = (u128, i64, i64, Option<String>, String, Option<String>);
        type Stored = (Vec<u8>, i64, i64, Option<String>, String, Option<String>);
        let rows: Vec<Stored> = sqlx::query_as(
            "SELECT uuid, seq, at, from_state, to_state, detail FROM events \
                 ORDER BY uuid, seq",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let rows: Vec<Event> = rows
            .into_iter()
            .map(|(u, seq, at, from, to, detail)| {
                (
                    uuid::Uuid::from_slice(&u).unwrap().as_u128() & 0xff,
                    seq,
                    at,
                    from,
                    to,
                    detail,
                )
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                (2, 1, 9, None, "waiting".into(), None),
                (
                    2,
                    2,
                    12,
                    Some("waiting".into()),
                    "cancelled".into(),
                    Some("old".into())
                ),
            ],
            "an execution from before keeps no history; one created with it on records every change"
        );
    }

    /// Version 20 moves the last attempt of every unfinished execution into
    /// its row: the history reads as before, earlier attempts and a
    /// finished execution's stay in `attempts`, the row refuses what
    /// `attempts` refuses, and opening the next attempt in the row archives
    /// the one it replaces.
    #[tokio::test]
    async fn version_20_moves_the_last_attempt_into_the_row() {
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        for (version, _, sql) in super::MIGRATIONS.iter().filter(|m| m.0 <= 19) {
            sqlx::raw_sql(sql)
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("migration {version}: {e}"));
        }
        let id = |n: u128| uuid::Uuid::from_u128(n).simple().to_string();
        let (running, waiting, never, done) = (id(1), id(2), id(3), id(4));
        let execution = |uuid: &str, attempts: i64, more: &str, values: &str| {
            format!(
                "INSERT INTO executions (uuid, partition, namespace, lane, kind, priority, \
                 payload, tags, required_caps, attempts, max_attempts, backoff_initial_ms, \
                 backoff_max_ms, backoff_multiplier, backoff_jitter, created_at, updated_at, \
                 ready_at, {more}) VALUES (x'{uuid}', 3, 'n', 'l', 'k', 0, x'', '{{}}', '[]', \
                 {attempts}, 3, 0, 0, 1.0, 0, 1, 1, 1, {values})"
            )
        };
        let setup = [
            execution(
                &running,
                2,
                "state, worker_id, lease_nonce, lease_expires_at",
                "'running', 'w2', 22, 99",
            ),
            execution(&waiting, 1, "state", "'waiting'"),
            execution(&never, 0, "state", "'waiting'"),
            execution(
                &done,
                1,
                "state, finished_at, result",
                "'completed', 60, x'72'",
            ),
            format!(
                "INSERT INTO attempts (execution_uuid, number, worker_id, nonce, started_at, \
                 ended_at, outcome, error) VALUES \
                 (x'{running}', 1, 'w1', 11, 10, 20, 'failed', 'boom'), \
                 (x'{running}', 2, 'w2', 22, 30, NULL, NULL, NULL), \
                 (x'{waiting}', 1, 'w1', 33, 40, 50, 'lease_expired', 'late'), \
                 (x'{done}', 1, 'w3', 44, 55, 60, 'completed', NULL)"
            ),
        ];
        for sql in &setup {
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        }
        type Attempt = (
            Vec<u8>,
            i64,
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

        let (_, _, v20) = super::MIGRATIONS[19];
        sqlx::raw_sql(v20).execute(&mut conn).await.unwrap();

        let after: Vec<Attempt> = sqlx::query_as(&history("attempt_history"))
            .fetch_all(&mut conn)
            .await
            .unwrap();
        assert_eq!(after, before, "the history reads as it did");
        let kept: Vec<(Vec<u8>, i64)> = sqlx::query_as(
            "SELECT execution_uuid, number FROM attempts ORDER BY execution_uuid, number",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let key = |n: u128| uuid::Uuid::from_u128(n).as_bytes().to_vec();
        assert_eq!(
            kept,
            vec![(key(1), 1), (key(4), 1)],
            "earlier attempts, and a finished execution's, stay apart"
        );
        type InRow = (Vec<u8>, Option<String>, Option<i64>, Option<String>);
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
                (key(1), Some("w2".to_owned()), Some(30), None),
                (
                    key(2),
                    Some("w1".to_owned()),
                    Some(40),
                    Some("lease_expired".to_owned())
                ),
                (key(3), None, None, None),
                (key(4), None, None, None),
            ]
        );
        for (what, bad) in [
            (
                "an unknown outcome",
                "attempt_outcome = 'won', attempt_ended_at = 1",
            ),
            ("an outcome without an end", "attempt_outcome = 'failed'"),
            ("a worker without a start", "attempt_started_at = NULL"),
            ("a worker without a nonce", "attempt_nonce = NULL"),
        ] {
            let refused = sqlx::raw_sql(&format!(
                "UPDATE executions SET {bad} WHERE uuid = x'{running}'"
            ))
            .execute(&mut conn)
            .await;
            assert!(refused.is_err(), "{what} is refused");
        }

        // A claim of the waiting execution opens attempt 2 in the row; the
        // trigger keeps attempt 1 in `attempts`, unchanged.
        sqlx::raw_sql(&format!(
            "UPDATE executions SET state = 'running', attempts = 2, worker_id = 'w4', \
             lease_nonce = 77, lease_expires_at = 200, attempt_worker = 'w4', \
             attempt_nonce = 77, attempt_started_at = 100, attempt_ended_at = NULL, \
             attempt_outcome = NULL, attempt_error = NULL WHERE uuid = x'{waiting}'"
        ))
        .execute(&mut conn)
        .await
        .unwrap();
        let of_waiting: Vec<Attempt> = sqlx::query_as(
            "SELECT execution_uuid, number, worker_id, nonce, started_at, ended_at, outcome, \
             error FROM attempt_history WHERE execution_uuid = ?1 ORDER BY number",
        )
        .bind(key(2))
        .fetch_all(&mut conn)
        .await
        .unwrap();
        assert_eq!(
            of_waiting,
            vec![
                (
                    key(2),
                    1,
                    "w1".to_owned(),
                    33,
                    40,
                    Some(50),
                    Some("lease_expired".to_owned()),
                    Some("late".to_owned())
                ),
                (key(2), 2, "w4".to_owned(), 77, 100, None, None, None),
            ]
        );
        // Closing the attempt in the row archives nothing.
        sqlx::raw_sql(&format!(
            "UPDATE executions SET attempt_ended_at = 150, attempt_outcome = 'completed' \
             WHERE uuid = x'{waiting}'"
        ))
        .execute(&mut conn)
        .await
        .unwrap();
        let archived: i64 = sqlx::query_scalar("SELECT count(*) FROM attempts")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(archived, 3);
    }
}
