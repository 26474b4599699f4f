//! Measures the server memory one execution costs on Valkey/Redis: waiting,
//! and terminal (completed, result kept until trimmed).
//!
//! ```sh
//! cargo run --release -p baton-valkey --example memory -- redis://127.0.0.1:6379 20000 1024
//! ```
//!
//! Arguments: the server URL, how many executions (default 20000) and the
//! payload size in bytes (default 1024). It works under a fresh key prefix
//! and deletes nothing; point it at a scratch server. Figures are the change
//! of `used_memory` divided by the count, so run it on an otherwise idle
//! server.

use std::time::Duration;

use baton_core::{
    ClaimRequest, EngineBackend, Kind, Lane, Namespace, NewExecution, Result, WorkerId,
};
use baton_valkey::{ValkeyBackend, ValkeyConfig};

async fn used_memory(client: &redis::Client) -> Result<i64> {
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| baton_core::EngineError::unavailable(e.to_string()))?;
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await
        .map_err(|e| baton_core::EngineError::unavailable(e.to_string()))?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| baton_core::EngineError::unavailable("INFO memory has no used_memory"))
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());
    let count: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let payload_bytes: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1024);
    let prefix = format!("mem{}", uuid::Uuid::new_v4().simple());
    let config = ValkeyConfig::from_url(&url)?.with_prefix(&prefix)?;
    let node = config.nodes[0].clone();
    let backend = ValkeyBackend::open(config).await?;
    let client = redis::Client::open(node.as_str())
        .map_err(|e| baton_core::EngineError::unavailable(e.to_string()))?;
    let ns = Namespace::new("memory")?;
    let lane = Lane::new("measure")?;
    let payload = vec![b'x'; payload_bytes];

    let before = used_memory(&client).await?;
    let mut left = count;
    while left > 0 {
        let n = left.min(500);
        let batch = (0..n)
            .map(|_| {
                Ok(NewExecution::new(
                    ns.clone(),
                    lane.clone(),
                    Kind::new("measure")?,
                    payload.clone(),
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        backend.create(batch).await?;
        left -= n;
    }
    let waiting = used_memory(&client).await?;
    let mut done = 0;
    while done < count {
        let claims = backend
            .claim(
                ClaimRequest::new(ns.clone(), lane.clone(), WorkerId::new("memory")?, 500)
                    .with_lease_ttl(Duration::from_secs(60)),
            )
            .await?;
        if claims.is_empty() {
            break;
        }
        for c in &claims {
            backend.complete(&c.lease, b"\"ok\"".to_vec()).await?;
        }
        done += claims.len();
    }
    let terminal = used_memory(&client).await?;
    let per = |bytes: i64| bytes as f64 / count as f64;
    println!(
        "{count} executions, {payload_bytes}-byte payload, prefix {prefix}:\n  \
         waiting:   {:.0} bytes each ({} bytes total)\n  \
         completed: {:.0} bytes each ({} bytes total; result \"ok\", one attempt)",
        per(waiting - before),
        waiting - before,
        per(terminal - before),
        terminal - before,
    );
    Ok(())
}
