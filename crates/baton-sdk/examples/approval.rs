//! An approval flow: a `refund` waits for a person's approval without
//! holding a worker. It starts `baton serve`'s HTTP API in this process
//! (embedded SQLite, a waitpoint secret), a worker over HTTP, and submits
//! a refund. The handler suspends on the waitpoint `approval` and prints
//! the `curl` command that approves it with the waitpoint's token — what
//! an approval link in an email would carry; no API token is needed. Run
//! the command from another terminal and the refund completes.
//!
//! `cargo run -p baton-sdk --example approval` (add `-- --approve` to have
//! the example send the approval itself, as a script would).

use std::sync::Arc;
use std::time::Duration;

use baton_core::{AdminBackend, EngineBackend, ExecutionId, State};
use baton_engine::{Scheduler, SchedulerConfig};
use baton_sdk::{Client, Context, HandlerError, Worker, decode_result};
use baton_server::{AppState, ServerConfig, WaitpointKeys};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// Refunds `amount` once someone approves it; gives up after a day.
async fn refund(
    ctx: Context,
    amount: u64,
    links: mpsc::UnboundedSender<(ExecutionId, String)>,
) -> Result<String, HandlerError> {
    let day = Duration::from_secs(24 * 3600);
    let approval = match ctx.wait_for_signal("approval", Some(day)).await {
        Err(e) if e.is_waiting() => {
            // Suspended: hand the token to whoever approves, then return.
            for (_, token) in e.waitpoint_tokens() {
                if let Some(token) = token {
                    let _ = links.send((ctx.id().clone(), token.clone()));
                }
            }
            return Err(e);
        }
        other => other?,
    };
    let Some(approval) = approval else {
        return Err(HandlerError::permanent(
            "nobody approved the refund in a day",
        ));
    };
    let by: Value = serde_json::from_slice(&approval)?;
    Ok(format!("refunded {amount} (approved by {})", by["by"]))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let approve_myself = std::env::args().any(|a| a == "--approve");
    let backend: Arc<dyn AdminBackend> =
        Arc::new(baton_sqlite::SqliteBackend::connect("sqlite::memory:").await?);
    let engine_backend: Arc<dyn EngineBackend> = backend.clone();
    let engine = Scheduler::start(engine_backend, SchedulerConfig::default());
    // In production: BATON_WAITPOINT_SECRET=k1:<random> baton serve.
    let keys = WaitpointKeys::parse("k1:an-example-secret-not-for-production")?;
    let config = ServerConfig::default().with_waitpoint_keys(keys);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(baton_server::serve(
        listener,
        AppState::new(backend, config),
        async move {
            let _ = stop_rx.await;
        },
    ));

    let client = Client::connect(&format!("http://{addr}")).await?;
    let (links, mut link) = mpsc::unbounded_channel();
    let worker = Worker::builder(&client)
        .handler("refund", move |ctx: Context, amount: u64| {
            refund(ctx, amount, links.clone())
        })
        .start()?;
    let submitted = client.submit("refund", &25).await?;
    println!("submitted refund {}", submitted.id);

    let Some((id, token)) = link.recv().await else {
        return Err("the worker stopped before suspending".into());
    };
    let path = format!(
        "/v1/executions/{}/signals/approval",
        baton_api::encode_component(&id.to_string())
    );
    println!(
        "{id} is {}; approve it with:",
        client.describe(&id).await?.state
    );
    println!(
        "  curl -s 'http://{addr}{path}' -H 'Baton-Waitpoint-Token: {token}' -d '{{\"payload\": {{\"by\": \"ana\"}}}}'"
    );
    if approve_myself {
        let answer = post(
            &addr.to_string(),
            &path,
            &token,
            &json!({"payload": {"by": "the example"}}),
        )
        .await?;
        println!("approved: {answer}");
    }
    let done = client
        .wait_for_completion(&id, Duration::from_secs(3600))
        .await?;
    let result: Option<String> = decode_result(&done)?;
    println!(
        "{} is {}: {}",
        done.id,
        done.state,
        result.unwrap_or_default()
    );

    worker.shutdown(Duration::from_secs(5)).await;
    let _ = stop_tx.send(());
    let _ = server.await;
    engine.shutdown().await;
    if done.state != State::Completed {
        return Err(format!("the refund did not complete: {:?}", done.last_error).into());
    }
    Ok(())
}

/// What a third party does: one POST with the waitpoint token, no API
/// token (plain HTTP/1.1, to show there is nothing more to it).
async fn post(
    addr: &str,
    path: &str,
    token: &str,
    body: &Value,
) -> Result<String, Box<dyn std::error::Error>> {
    let body = body.to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Baton-Waitpoint-Token: {token}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    Ok(answer
        .rsplit("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_owned())
}
