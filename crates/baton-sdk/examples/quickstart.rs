//! Submits work and processes it on the embedded SQLite backend, with a
//! retry and a cancellation: `cargo run -p baton-sdk --example quickstart`.

use std::sync::Arc;
use std::time::Duration;

use baton_core::{AdminBackend, Backoff, EngineBackend, RetryPolicy};
use baton_engine::{Scheduler, SchedulerConfig};
use baton_sdk::{Client, Context, HandlerError, Worker, decode_result};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Greeting {
    name: String,
}

/// Fails its first attempt to show a retry.
async fn greet(ctx: Context, g: Greeting) -> Result<String, HandlerError> {
    if ctx.attempt() == 1 {
        return Err(HandlerError::retry("the greeting service is warming up"));
    }
    Ok(format!("hello, {} (attempt {})", g.name, ctx.attempt()))
}

/// Runs until cancelled.
async fn forever(ctx: Context, _: ()) -> Result<(), HandlerError> {
    let reason = ctx.stopped().await;
    Err(HandlerError::retry(format!("stopped: {reason}")))
}

#[tokio::main]
async fn main() -> baton_core::Result<()> {
    let backend: Arc<dyn AdminBackend> =
        Arc::new(baton_sqlite::SqliteBackend::connect("sqlite::memory:").await?);
    // The engine promotes retries whose backoff has passed and reclaims
    // expired leases; `baton serve` runs it for you on a shared backend.
    let engine_backend: Arc<dyn EngineBackend> = backend.clone();
    let engine = Scheduler::start(engine_backend, SchedulerConfig::default());
    let client = Client::from_backend(backend)?;

    let worker = Worker::builder(&client)
        .concurrency(4)
        .lease(Duration::from_secs(5))
        .handler("greet", greet)
        .handler("forever", forever)
        .start()?;

    let retry = RetryPolicy {
        max_attempts: 3,
        backoff: Backoff {
            initial_ms: 100,
            max_ms: 1_000,
            multiplier: 2.0,
            jitter: true,
        },
    };
    let greeting = client
        .submit_execution(
            client
                .execution(
                    "greet",
                    &Greeting {
                        name: "Baton".into(),
                    },
                )?
                .with_retry(retry),
        )
        .await?;
    let endless = client.submit("forever", &()).await?;

    let done = client
        .wait_for_completion(&greeting.id, Duration::from_secs(30))
        .await?;
    let text: Option<String> = decode_result(&done)?;
    println!(
        "{} is {} after {} attempts: {text:?}",
        done.id, done.state, done.attempts
    );

    client.cancel(&endless.id, Some("demo over".into())).await?;
    let cancelled = client
        .wait_for_completion(&endless.id, Duration::from_secs(30))
        .await?;
    println!(
        "{} is {}: {:?}",
        cancelled.id, cancelled.state, cancelled.cancel_reason
    );

    let stats = worker.shutdown(Duration::from_secs(5)).await;
    println!(
        "worker: {} completed, {} failed attempts",
        stats.completed, stats.failed
    );
    engine.shutdown().await;
    Ok(())
}
