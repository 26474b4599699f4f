//! A DAG inside a flow on the embedded SQLite backend: a `pipeline`
//! starts one `fetch` per source, a `merge` that needs any two of them to
//! complete (it reads their results from its claim, `ctx.upstream()`), and
//! a `publish` that needs all of them — skipped, without ever running,
//! because one source is missing. The pipeline waits for its children
//! without holding a worker slot and reports.
//! `cargo run -p baton-sdk --example dag`.

use std::sync::Arc;
use std::time::Duration;

use baton_core::{
    AdminBackend, ChildKey, DependencyMode, DependencyPolicy, EngineBackend, Page, State,
    UpstreamFailure,
};
use baton_engine::{Scheduler, SchedulerConfig};
use baton_sdk::{Client, Context, HandlerError, Worker, decode_result};

/// The flow's root. Its first attempt builds the DAG (child keys make the
/// second attempt's submissions answer the same children) and hands its
/// lease back; its second reads how the DAG ended.
async fn pipeline(ctx: Context, sources: Vec<String>) -> Result<String, HandlerError> {
    let mut fetches = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        let key = ChildKey::new(format!("fetch-{i}"))?;
        let fetch = ctx.child("fetch", source)?.with_child_key(key);
        fetches.push(ctx.submit_child(fetch).await?.id);
    }
    let two_of = DependencyPolicy::new(DependencyMode::Quorum(2), UpstreamFailure::Skip);
    let merge = ctx
        .child("merge", &())?
        .with_child_key(ChildKey::new("merge")?)
        .with_dependencies(fetches.clone())
        .with_dependency_policy(two_of);
    let merge = ctx.submit_child(merge).await?.id;
    let publish = ctx
        .child("publish", &())?
        .with_child_key(ChildKey::new("publish")?)
        .with_dependencies(fetches);
    let publish = ctx.submit_child(publish).await?.id;
    ctx.wait_children().await?;

    let children = ctx.children(Page::first(100)).await?;
    let of = |id| children.items.iter().find(|c| &c.id == id);
    let (Some(merged), Some(published)) = (of(&merge), of(&publish)) else {
        return Err(HandlerError::permanent(
            "a child of the pipeline is missing",
        ));
    };
    let words: Option<u64> = decode_result(merged)?;
    Ok(format!(
        "merge {} with {words:?} words; publish {}",
        merged.state, published.state
    ))
}

/// Counts the words of a source; a missing one fails for good.
async fn fetch(_: Context, source: String) -> Result<u64, HandlerError> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    if source.is_empty() {
        return Err(HandlerError::permanent("source missing"));
    }
    Ok(source.split_whitespace().count() as u64)
}

/// Adds up what its completed upstreams counted.
async fn merge(ctx: Context, _: ()) -> Result<u64, HandlerError> {
    let mut words = 0;
    for (id, up) in ctx.upstream() {
        if up.state == State::Completed
            && let Some(result) = &up.result
        {
            words += serde_json::from_slice::<u64>(result)
                .map_err(|e| HandlerError::permanent(format!("result of {id}: {e}")))?;
        }
    }
    Ok(words)
}

/// Never runs here: one of its upstreams fails, so it is skipped.
async fn publish(_: Context, _: ()) -> Result<(), HandlerError> {
    Ok(())
}

#[tokio::main]
async fn main() -> baton_core::Result<()> {
    let backend: Arc<dyn AdminBackend> =
        Arc::new(baton_sqlite::SqliteBackend::connect("sqlite::memory:").await?);
    let engine_backend: Arc<dyn EngineBackend> = backend.clone();
    let engine = Scheduler::start(engine_backend, SchedulerConfig::default());
    let client = Client::from_backend(backend)?;
    let worker = Worker::builder(&client)
        .concurrency(8)
        .handler("pipeline", pipeline)
        .handler("fetch", fetch)
        .handler("merge", merge)
        .handler("publish", publish)
        .start()?;

    let sources = vec![
        "the quick brown fox".to_owned(),
        "jumps over".to_owned(),
        String::new(),
    ];
    let flow = client.submit("pipeline", &sources).await?;
    let done = client
        .wait_for_completion(&flow.id, Duration::from_secs(30))
        .await?;
    let report: Option<String> = decode_result(&done)?;
    println!("{} is {}: {report:?}", done.id, done.state);
    let tree = client.tree(&flow.id, 100).await?;
    for node in &tree.items {
        println!("  {} {:<8} {}", node.id, node.kind.as_str(), node.state);
    }
    worker.shutdown(Duration::from_secs(5)).await;
    engine.shutdown().await;
    if done.state != State::Completed {
        return Err(baton_core::EngineError::unavailable(format!(
            "the pipeline did not complete: {:?}",
            done.last_error
        )));
    }
    Ok(())
}
