//! Upgrading a database written by an earlier build: the migrations run
//! on open, and what the earlier build wrote reads and works as before.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use baton_sqlite::{Location, SqliteBackend, SqliteConfig};
use sqlx::Connection;

async fn open(path: &std::path::Path) -> SqliteBackend {
    SqliteBackend::open(SqliteConfig::new(Location::File(path.to_owned())))
        .await
        .unwrap()
}

/// Migration 20 on a database at version 19 (the attempts moved back into
/// `attempts`, the row's columns, the trigger and the view dropped, its
/// record removed): every attempt reads as before the upgrade; a run in
/// flight then completes through its lease; a failed execution replayed
/// later keeps its first attempt in `attempts` and its second in its row,
/// and its history reads both in order.
#[tokio::test]
async fn version_20_applies_on_a_database_at_version_19() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("upgrade.db");
    let before = open(&path).await;
    let wrote = baton_testkit::upgrade::attempts_before_an_upgrade(&before, "upgrade").await;
    before.close().await;

    let url = format!("sqlite://{}", path.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    // A column's own CHECK goes with it; one naming another column must go
    // first, so the columns are dropped in this order.
    sqlx::raw_sql(
        "INSERT INTO attempts (execution_uuid, number, worker_id, nonce, started_at, ended_at, \
             outcome, error) \
         SELECT uuid, attempts, attempt_worker, attempt_nonce, attempt_started_at, \
             attempt_ended_at, attempt_outcome, attempt_error \
         FROM executions WHERE attempt_started_at IS NOT NULL; \
         DROP VIEW attempt_history; \
         DROP TRIGGER executions_attempt_archived; \
         ALTER TABLE executions DROP COLUMN attempt_error; \
         ALTER TABLE executions DROP COLUMN attempt_outcome; \
         ALTER TABLE executions DROP COLUMN attempt_ended_at; \
         ALTER TABLE executions DROP COLUMN attempt_started_at; \
         ALTER TABLE executions DROP COLUMN attempt_nonce; \
         ALTER TABLE executions DROP COLUMN attempt_worker; \
         DELETE FROM _sqlx_migrations WHERE version = 20",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let in_table: i64 = sqlx::query_scalar("SELECT count(*) FROM attempts")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        in_table, 2,
        "at version 19 every attempt is a row of attempts"
    );

    let after = open(&path).await;
    let every: Vec<i64> = (1..=baton_sqlite::latest_schema_version()).collect();
    assert_eq!(after.applied_migrations().await.unwrap(), every);
    let kept: Vec<Vec<u8>> = sqlx::query_scalar("SELECT execution_uuid FROM attempts")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        kept,
        vec![wrote.failed.id.uuid().as_bytes().to_vec()],
        "the failed execution keeps its attempt apart; the running one's moved to its row"
    );

    baton_testkit::upgrade::attempts_after_an_upgrade(&after, &wrote).await;
}
