//! A durable workflow as ordinary async Rust: an order of four
//! checkpointed steps (`ctx.step`). The first worker — a child process of
//! this example — is killed (`abort`) right after the second step; nothing
//! tells Baton, so the scheduler reclaims its lease when it expires, and
//! the next worker's attempt replays the two finished steps from their
//! saved outputs and runs only the last two. Along the way the workflow
//! reports a custom status and progress frames, which the submitter reads
//! at the end (what `baton watch ID` follows live).
//!
//! `cargo run -p baton-sdk --example workflow`.

use std::sync::Arc;
use std::time::Duration;

use baton_core::{AdminBackend, EngineBackend, State};
use baton_engine::{Scheduler, SchedulerConfig};
use baton_sdk::{Client, Context, HandlerError, Worker, decode_result};
use serde_json::{Value, json};

/// Reports where the workflow is: its status, and one progress frame.
/// Called inside each step, so a replayed step reports nothing again.
async fn reached(ctx: &Context, stage: &str, done: u32) -> Result<(), HandlerError> {
    ctx.set_status(&json!({"stage": stage})).await?;
    ctx.progress(&json!({"done": done, "of": 4})).await?;
    Ok(())
}

/// The workflow. `doomed`: this process dies after the second step.
async fn order(ctx: Context, amount: u64, doomed: bool) -> Result<Value, HandlerError> {
    let say = |what: &str| println!("  attempt {}: {what}", ctx.attempt());
    let reservation: String = ctx
        .step("reserve", || async {
            say("reserving stock");
            reached(&ctx, "reserved", 1).await?;
            Ok(format!("rsv-{amount}"))
        })
        .await?;
    let charge: String = ctx
        .step("charge", || async {
            say("charging the card");
            reached(&ctx, "charged", 2).await?;
            Ok(format!("ch-{amount}"))
        })
        .await?;
    if doomed {
        say("the worker dies here");
        std::process::abort();
    }
    let label: u32 = ctx
        .step("label", || async {
            say("printing the shipping label");
            reached(&ctx, "labelled", 3).await?;
            Ok(7)
        })
        .await?;
    ctx.step("notify", || async {
        say("emailing the customer");
        reached(&ctx, "notified", 4).await?;
        Ok(())
    })
    .await?;
    Ok(json!({"reservation": reservation, "charge": charge, "label": label}))
}

async fn worker(client: &Client, doomed: bool) -> baton_core::Result<Worker> {
    Worker::builder(client)
        // A short lease, so the dead worker's attempt is reclaimed soon.
        .lease(Duration::from_secs(1))
        .handler("order", move |ctx: Context, amount: u64| {
            order(ctx, amount, doomed)
        })
        .start()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("--doomed-worker") {
        let url = args
            .next()
            .ok_or("--doomed-worker needs the database URL")?;
        let client = Client::connect(&url).await?;
        let _worker = worker(&client, true).await?;
        // The handler aborts the process; until then, keep it alive.
        tokio::time::sleep(Duration::from_secs(60)).await;
        return Err("the doomed worker was never given the order".into());
    }

    let dir = std::env::temp_dir().join(format!("baton-workflow-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let url = format!("sqlite://{}", dir.join("workflow.db").display());
    let backend: Arc<dyn AdminBackend> =
        Arc::new(baton_sqlite::SqliteBackend::connect(&url).await?);
    let engine_backend: Arc<dyn EngineBackend> = backend.clone();
    let engine = Scheduler::start(
        engine_backend,
        SchedulerConfig::default().with_sweep(Duration::from_millis(100)),
    );
    let client = Client::from_backend(backend)?;
    let submitted = client
        .execution("order", &25)?
        .with_retry(baton_core::RetryPolicy::attempts(3));
    let id = client.submit_execution(submitted).await?.id;
    println!("submitted order {id}; a worker process starts it:");

    let status = std::process::Command::new(std::env::current_exe()?)
        .args(["--doomed-worker", &url])
        .status()?;
    println!("the worker process died ({status}); another worker takes over:");
    let survivor = worker(&client, false).await?;
    let done = client
        .wait_for_completion(&id, Duration::from_secs(60))
        .await?;
    let result: Option<Value> = decode_result(&done)?;
    println!(
        "{} is {} after {} attempts: {}",
        done.id,
        done.state,
        done.attempts,
        result.unwrap_or_default()
    );
    for step in client.steps(&id).await? {
        println!(
            "  step {:<8} {} in attempt {}",
            step.name.as_str(),
            step.status,
            step.attempt
        );
    }
    println!(
        "  status (version {}): {}",
        done.status_version,
        String::from_utf8_lossy(done.custom_status.as_deref().unwrap_or(b"null"))
    );
    let (frames, _) = client.progress(&id, 0, 100, Duration::ZERO).await?;
    for f in frames {
        println!(
            "  progress #{} (attempt {}): {}",
            f.seq,
            f.attempt,
            String::from_utf8_lossy(&f.frame)
        );
    }
    survivor.shutdown(Duration::from_secs(5)).await;
    engine.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    if done.state != State::Completed {
        return Err(format!("the order did not complete: {:?}", done.last_error).into());
    }
    Ok(())
}
