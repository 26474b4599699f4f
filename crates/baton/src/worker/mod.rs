//! `baton worker`: a generic worker that runs a shell command per execution,
//! so scripts in any language can be workers without an SDK.
//!
//! The payload goes to the command's standard input; exit status 0 completes
//! the execution with standard output as the result (its JSON value, or a
//! JSON string when it is not JSON; empty output is `null`); any other status
//! fails the attempt, retried per the execution's policy, with standard
//! error (trimmed and bounded) as the error.
//!
//! An execution with dependencies also gets `BATON_UPSTREAM_FILE`: the path
//! of a JSON file holding its upstream executions' outcomes, as a claim
//! over HTTP carries them (`{"<id>": {"state": …, "result": …}, …}`),
//! removed when the command ends.
//!
//! The command runs in a process group of its own; when it is stopped
//! (cancel, lost lease, shutdown) or the worker dies, the whole group is
//! signalled (see `watchdog`), not only the `sh`.

mod watchdog;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use baton_sdk::{Client, Context, HandlerError, Worker};
use clap::Args;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::CliResult;
use watchdog::GroupWatchdog;

/// Most bytes of standard error kept as the attempt's error.
const MAX_STDERR: usize = 4096;

/// Flags of `baton worker`.
#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    /// Lane to claim from; repeatable.
    #[arg(long = "lane", default_value = "default")]
    lanes: Vec<String>,
    /// Shell command run per execution (`sh -c CMD`): payload on stdin,
    /// result on stdout. BATON_EXECUTION_ID, BATON_KIND, BATON_ATTEMPT and
    /// BATON_LANE are set in its environment, BATON_SESSION and
    /// BATON_VERSION for an execution with a session or a version, and
    /// BATON_UPSTREAM_FILE (a JSON file of the upstream outcomes) for an
    /// execution with dependencies. It runs in a process group of
    /// its own; when the execution is cancelled, its lease lost, or the
    /// worker stops or dies, the whole group gets SIGTERM, then SIGKILL 5 s
    /// later.
    #[arg(long)]
    exec: String,
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Most commands running at once.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Lease length in milliseconds; renewed every third of it.
    #[arg(long, default_value_t = 30_000)]
    lease_ms: u64,
    /// On SIGINT/SIGTERM, how long running commands may take to finish
    /// before their executions are released for another attempt.
    #[arg(long, default_value_t = 30_000)]
    grace_ms: u64,
    /// Identity recorded on attempts (default: host, pid and a random suffix).
    #[arg(long, env = "BATON_WORKER_ID")]
    worker_id: Option<String>,
    /// Lowest handler version this worker runs (inclusive); executions
    /// without a version run anywhere.
    #[arg(long, value_name = "VERSION")]
    min_version: Option<String>,
    /// Highest handler version this worker runs (inclusive).
    #[arg(long, value_name = "VERSION")]
    max_version: Option<String>,
    /// How long the worker keeps a session after its last claim or renew
    /// of the session's work, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    session_idle_ms: u64,
}

/// Runs the worker until SIGINT or SIGTERM, then shuts it down gracefully.
/// `backend` is a backend URL or `http://HOST:PORT` of `baton serve`.
pub(crate) async fn run(backend: &str, args: &WorkerArgs) -> CliResult<()> {
    crate::serve::init_logging();
    let mut client = Client::connect(backend).await?;
    if let Ok(token) = std::env::var("BATON_API_TOKEN")
        && !token.is_empty()
    {
        client = client.with_api_token(token);
    }
    let command = Arc::new(args.exec.clone());
    let mut builder = Worker::builder(&client)
        .namespace(args.namespace.clone())
        .concurrency(args.concurrency)
        .lease(Duration::from_millis(args.lease_ms))
        .fallback(move |ctx, payload| run_command(command.clone(), ctx, payload));
    for lane in &args.lanes {
        builder = builder.lane(lane.clone());
    }
    if let Some(id) = &args.worker_id {
        builder = builder.worker_id(id.clone());
    }
    let worker = builder
        .versions(args.min_version.as_deref(), args.max_version.as_deref())
        .session_idle(Duration::from_millis(args.session_idle_ms))
        .start()?;
    tracing::info!(
        "baton worker {}: claiming from {:?} with concurrency {}",
        worker.worker_id(),
        args.lanes,
        args.concurrency
    );
    crate::serve::shutdown_signal("baton worker").await;
    let stats = worker.shutdown(Duration::from_millis(args.grace_ms)).await;
    tracing::info!(
        "baton worker stopped: {} completed, {} failed, {} released",
        stats.completed,
        stats.failed,
        stats.released
    );
    Ok(())
}

/// A file removed when dropped.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Writes the upstream outcomes of `ctx` to a file of their own (in the
/// temporary directory); `None` without dependencies.
fn upstream_file(ctx: &Context) -> Result<Option<Scratch>, HandlerError> {
    if ctx.upstream().is_empty() {
        return Ok(None);
    }
    let body: std::collections::BTreeMap<String, baton_api::UpstreamBody> = ctx
        .upstream()
        .iter()
        .map(|(id, u)| {
            let body = baton_api::UpstreamBody {
                state: u.state,
                result: u.result.as_deref().map(baton_api::JsonText::from_bytes),
            };
            (id.to_string(), body)
        })
        .collect();
    let text = serde_json::to_vec(&body)
        .map_err(|e| HandlerError::retry(format!("encoding the upstream outcomes: {e}")))?;
    let path = std::env::temp_dir().join(format!(
        "baton-upstream-{}-{}-{}.json",
        ctx.id().uuid().simple(),
        ctx.attempt(),
        std::process::id()
    ));
    std::fs::write(&path, text).map_err(|e| {
        HandlerError::retry(format!(
            "cannot write the upstream outcomes to {}: {e}",
            path.display()
        ))
    })?;
    Ok(Some(Scratch(path)))
}

async fn run_command(
    command: Arc<String>,
    ctx: Context,
    payload: Vec<u8>,
) -> Result<Vec<u8>, HandlerError> {
    let upstream = upstream_file(&ctx)?;
    let mut command_line = tokio::process::Command::new("sh");
    if let Some(file) = &upstream {
        command_line.env("BATON_UPSTREAM_FILE", &file.0);
    }
    if let Some(session) = ctx.session() {
        command_line.env("BATON_SESSION", session.as_str());
    }
    if let Some(version) = ctx.version() {
        command_line.env("BATON_VERSION", version.as_str());
    }
    let mut child = command_line
        .arg("-c")
        .arg(command.as_str())
        .env("BATON_EXECUTION_ID", ctx.id().to_string())
        .env("BATON_KIND", ctx.kind().as_str())
        .env("BATON_ATTEMPT", ctx.attempt().to_string())
        .env("BATON_LANE", ctx.lane().as_str())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so that stopping it reaches everything it started.
        .process_group(0)
        // Stopping the handler (cancel, lease loss, forced shutdown) drops
        // this future; the command must not outlive it.
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| HandlerError::retry(format!("cannot start `sh -c {command}`: {e}")))?;
    let Some(pgid) = child.id() else {
        return Err(HandlerError::retry(format!(
            "`sh -c {command}` ended before its process group could be watched"
        )));
    };
    // Dropped with this future unless the command ends by itself.
    let watchdog = GroupWatchdog::start(pgid).map_err(|e| {
        HandlerError::retry(format!(
            "cannot start the watchdog of `sh -c {command}` (the command was stopped): {e}"
        ))
    })?;
    let stdin = child.stdin.take();
    // Writing and reading run together so a command that writes a lot
    // before reading its input cannot deadlock on a full pipe; a command
    // that ignores its input closes the pipe, which is not an error.
    let feed = async move {
        if let Some(mut stdin) = stdin {
            let _ = stdin.write_all(&payload).await;
        }
    };
    let run = async { tokio::join!(feed, child.wait_with_output()).1 };
    let output = tokio::select! {
        out = run => out.map_err(|e| HandlerError::retry(format!("waiting for the command: {e}")))?,
        reason = ctx.stopped() => return Err(HandlerError::retry(format!("stopped: {reason}"))),
    };
    watchdog.disarm().await;
    if output.status.success() {
        return Ok(result_bytes(&output.stdout));
    }
    let stderr = bounded(String::from_utf8_lossy(&output.stderr).trim());
    let status = match output.status.code() {
        Some(code) => format!("exit status {code}"),
        None => "killed by a signal".to_owned(),
    };
    Err(HandlerError::retry(if stderr.is_empty() {
        format!("the command failed with {status}")
    } else {
        format!("the command failed with {status}: {stderr}")
    }))
}

/// Standard output as result bytes: its JSON value, else a JSON string.
fn result_bytes(stdout: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(stdout);
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return b"null".to_vec();
    }
    match serde_json::from_str::<Value>(trimmed) {
        Ok(_) => trimmed.as_bytes().to_vec(),
        Err(_) => serde_json::to_vec(&Value::String(trimmed.to_owned()))
            .unwrap_or_else(|_| b"null".to_vec()),
    }
}

fn bounded(text: &str) -> String {
    if text.len() <= MAX_STDERR {
        return text.to_owned();
    }
    let mut cut = MAX_STDERR;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdout_becomes_a_json_result() {
        assert_eq!(result_bytes(b"{\"a\": 1}\n"), b"{\"a\": 1}");
        assert_eq!(result_bytes(b"hello\n"), b"\"hello\"");
        assert_eq!(result_bytes(b"  \n"), b"null");
    }

    #[test]
    fn stderr_is_bounded() {
        let long = "é".repeat(MAX_STDERR);
        assert!(bounded(&long).len() <= MAX_STDERR + '…'.len_utf8());
        assert_eq!(bounded("short"), "short");
    }
}
