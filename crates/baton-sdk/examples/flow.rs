//! A fan-out/fan-in flow end to end on the embedded SQLite backend: a
//! `report` execution starts one `count` child per document, waits for them
//! without holding a worker slot, then adds up their results; a second
//! report is cancelled with its whole tree.
//! `cargo run -p baton-sdk --example flow`.

use std::sync::Arc;
use std::time::Duration;

use baton_core::{AdminBackend, CancelRequest, ChildKey, EngineBackend, Page, State};
use baton_engine::{Scheduler, SchedulerConfig};
use baton_sdk::{Client, Context, HandlerError, Worker, decode_result};

/// Fan-out, then fan-in. The handler runs twice: its first attempt starts
/// the children and hands its lease back; once the last child finishes it
/// runs again, finds the same children (their child keys dedup the
/// submissions), and joins their results.
async fn report(ctx: Context, documents: Vec<String>) -> Result<u64, HandlerError> {
    for (i, doc) in documents.iter().enumerate() {
        let key = ChildKey::new(format!("doc-{i}"))?;
        ctx.submit_child(ctx.child("count", doc)?.with_child_key(key))
            .await?;
    }
    ctx.wait_children().await?;
    let mut words = 0;
    let mut page = Page::first(100);
    loop {
        let children = ctx.children(page).await?;
        for child in &children.items {
            if child.state != State::Completed {
                return Err(HandlerError::permanent(format!(
                    "child {} ended {}",
                    child.id, child.state
                )));
            }
            words += decode_result::<u64>(child)?.unwrap_or(0);
        }
        match children.next_cursor {
            Some(c) => page.cursor = Some(c),
            None => break,
        }
    }
    Ok(words)
}

/// One child: counts the words of a document.
async fn count(_: Context, doc: String) -> Result<u64, HandlerError> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    Ok(doc.split_whitespace().count() as u64)
}

#[tokio::main]
async fn main() -> baton_core::Result<()> {
    let backend: Arc<dyn AdminBackend> =
        Arc::new(baton_sqlite::SqliteBackend::connect("sqlite::memory:").await?);
    // The scheduler finishes cancels of big trees, among its other passes.
    let engine_backend: Arc<dyn EngineBackend> = backend.clone();
    let engine = Scheduler::start(engine_backend, SchedulerConfig::default());
    let client = Client::from_backend(backend)?;
    let worker = Worker::builder(&client)
        .concurrency(8)
        .handler("report", report)
        .handler("count", count)
        .start()?;

    let documents: Vec<String> = (1..=20).map(|i| "lorem ipsum dolor ".repeat(i)).collect();
    let flow = client.submit("report", &documents).await?;
    let done = client
        .wait_for_completion(&flow.id, Duration::from_secs(30))
        .await?;
    let words: Option<u64> = decode_result(&done)?;
    println!(
        "{} is {} after {} attempts: {words:?} words in {} documents",
        done.id,
        done.state,
        done.attempts,
        documents.len()
    );
    if done.state != State::Completed {
        return Err(baton_core::EngineError::unavailable(format!(
            "the report did not complete: {:?}",
            done.last_error
        )));
    }
    let tree = client.tree(&flow.id, 100).await?;
    println!(
        "its flow: {} members, truncated: {}",
        tree.items.len(),
        tree.truncated
    );

    let stats = worker.shutdown(Duration::from_secs(5)).await;
    println!(
        "worker: {} completed, {} attempt(s) handed back to wait",
        stats.completed, stats.waiting
    );

    // A tree built from outside a worker (children can be submitted by any
    // client), cancelled with one call: the cancel reaches every child.
    let idle = client.submit("report", &documents).await?;
    for doc in &documents {
        let child = client.execution("count", doc)?.with_parent(idle.id.clone());
        client.submit_execution(child).await?;
    }
    let out = client
        .cancel_with(&idle.id, CancelRequest::because("demo over"))
        .await?;
    println!(
        "{} is {}; the cancel reached {} children",
        out.snapshot.id, out.snapshot.state, out.cascaded
    );
    engine.shutdown().await;
    Ok(())
}
