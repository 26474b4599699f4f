//! Helpers for this crate's unit tests that need a server.

use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// A new schema on `server`, migrated, and a connection whose search_path
/// is that schema.
pub async fn migrated_schema(
    server: &baton_testkit::servers::PostgresServer,
) -> (String, PgConnection) {
    let schema = baton_testkit::servers::PostgresServer::unique_schema();
    let mut conn = PgConnection::connect(server.url()).await.unwrap();
    sqlx::raw_sql(&format!("SET search_path = {schema}"))
        .execute(&mut conn)
        .await
        .unwrap();
    crate::migrate::run(&mut conn, &schema).await.unwrap();
    (schema, conn)
}

/// An `INSERT` of finished executions numbered `from..=to`, spread over
/// 64 partitions, each with `payload` (an SQL expression).
pub fn finished_rows(from: i32, to: i32, payload: &str) -> String {
    format!(
        "INSERT INTO executions (partition, uuid, namespace, lane, kind, state, priority,
             payload, tags, required_caps, attempts, max_attempts, backoff_initial_ms,
             backoff_max_ms, backoff_multiplier, backoff_jitter, created_at, updated_at,
             ready_at, finished_at, result)
         SELECT (g % 64)::smallint, md5(g::text)::uuid, 'n', 'l', 'k', 'completed', 0,
             {payload}, '{{}}', '[]', 0, 3, 0, 0, 1.0, false, g, g, g, g, '\\x00'
         FROM generate_series({from}, {to}) g"
    )
}

/// Removes a schema made by [`migrated_schema`].
pub async fn drop_schema(conn: &mut PgConnection, schema: &str) {
    sqlx::raw_sql(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(conn)
        .await
        .unwrap();
}
