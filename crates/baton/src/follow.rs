//! The commands that follow an execution: `wait` until it finishes, `watch`
//! its status and progress as they change. Both are woken by the backend
//! (in process on SQLite, `NOTIFY` on Postgres, `PUBLISH` on Valkey), never
//! by polling.

use std::time::Duration;

use baton_api::{FrameAnswer, Snapshot, bytes_json};
use baton_core::{AdminBackend, ChangeMark, ExecutionId, ExecutionSnapshot, State};
use serde_json::json;
use tokio::time::Instant;

use crate::{CliError, CliResult, print_json};

/// The longest single wait asked of the backend; a longer one is asked
/// again, so a watch without a timeout follows for ever.
const CHUNK: Duration = Duration::from_secs(60);

/// A duration as people write it: `500ms`, `30s`, `5m`, `2h`, `7d`, or a
/// bare number of seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    baton_core::parse_duration(text).map_err(|e| e.to_string())
}

/// `baton wait ID [--timeout D]`: waits until the execution is terminal and
/// prints it. Exit status 0 when it completed, 6 when it finished otherwise,
/// 7 when the time ran out first.
pub(crate) async fn wait(
    backend: &dyn AdminBackend,
    id: &str,
    timeout: Option<Duration>,
    json: bool,
) -> CliResult<()> {
    let id: ExecutionId = id.parse()?;
    let started = Instant::now();
    let deadline = timeout.map(baton_core::raw::deadline_in);
    let mut snap = backend.describe(&id).await?;
    while !snap.state.is_terminal() {
        let Some(left) = left_until(deadline) else {
            break;
        };
        snap = backend
            .wait_for_change(&id, ChangeMark::of(&snap), left)
            .await?;
    }
    if json {
        print_json(&Snapshot::from(&snap));
    } else {
        print_outcome(&snap);
    }
    outcome_status(&snap, started.elapsed())
}

/// `baton watch ID [--timeout D]`: prints the progress frames (from the
/// oldest kept), each change of the custom status, and the end; with
/// `--json`, one JSON document per line (`{"event": "progress" | "status"
/// | "state", …}`). Exit status as `wait`.
pub(crate) async fn watch(
    backend: &dyn AdminBackend,
    id: &str,
    timeout: Option<Duration>,
    json: bool,
) -> CliResult<()> {
    let id: ExecutionId = id.parse()?;
    let started = Instant::now();
    let deadline = timeout.map(baton_core::raw::deadline_in);
    let mut snap = backend.describe(&id).await?;
    let mut shown_state = None;
    let mut shown_status = 0;
    let mut after = 0;
    loop {
        if shown_state != Some(snap.state) {
            shown_state = Some(snap.state);
            if json {
                print_json(&json!({"event": "state", "state": snap.state, "at": snap.updated_at}));
            } else if !snap.state.is_terminal() {
                println!("{}  state {}", snap.updated_at, snap.state);
            }
        }
        if snap.status_version != shown_status {
            shown_status = snap.status_version;
            let status = snap.custom_status.as_deref().map(bytes_json);
            if json {
                print_json(
                    &json!({"event": "status", "version": snap.status_version, "status": status}),
                );
            } else {
                let text = status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "null".into());
                println!(
                    "{}  status v{}  {text}",
                    snap.updated_at, snap.status_version
                );
            }
        }
        while snap.progress_seq > after {
            let frames = backend.progress(&id, after, 1000).await?;
            let Some(last) = frames.last() else { break };
            after = last.seq;
            for f in &frames {
                if json {
                    let mut doc = serde_json::to_value(FrameAnswer::from(f))
                        .unwrap_or(serde_json::Value::Null);
                    if let Some(map) = doc.as_object_mut() {
                        map.insert("event".into(), "progress".into());
                    }
                    print_json(&doc);
                } else {
                    println!("{}  #{}  {}", f.at, f.seq, bytes_json(&f.frame));
                }
            }
        }
        if snap.state.is_terminal() {
            break;
        }
        let Some(left) = left_until(deadline) else {
            break;
        };
        snap = backend
            .wait_for_change(&id, ChangeMark::of(&snap), left)
            .await?;
    }
    if !json {
        print_outcome(&snap);
    }
    outcome_status(&snap, started.elapsed())
}

/// The next wait: what is left before `deadline` (at most [`CHUNK`]);
/// `None` once it has passed.
fn left_until(deadline: Option<Instant>) -> Option<Duration> {
    match deadline {
        None => Some(CHUNK),
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            (!left.is_zero()).then(|| left.min(CHUNK))
        }
    }
}

fn print_outcome(s: &ExecutionSnapshot) {
    match s.state {
        State::Completed => {
            let result = s.result.as_deref().map(bytes_json).unwrap_or_default();
            println!("{} completed  {result}", s.id);
        }
        state if state.is_terminal() => {
            let why = s
                .last_error
                .as_deref()
                .or(s.cancel_reason.as_deref())
                .unwrap_or("");
            println!("{} {state}  {why}", s.id);
        }
        state => println!("{} is still {state}", s.id),
    }
}

fn outcome_status(s: &ExecutionSnapshot, waited: Duration) -> CliResult<()> {
    match s.state {
        State::Completed => Ok(()),
        state if state.is_terminal() => Err(CliError {
            message: format!("execution {} finished {state}, not completed", s.id),
            hint: Some(format!("see why with `baton describe {} --attempts`", s.id)),
            code: 6,
        }),
        state => Err(CliError {
            message: format!(
                "execution {} is still {state} after {:.1}s",
                s.id,
                waited.as_secs_f64()
            ),
            hint: Some("wait longer with --timeout, or without one".into()),
            code: 7,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_duration("3d"), Ok(Duration::from_secs(3 * 86_400)));
        assert!(parse_duration("3w").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
