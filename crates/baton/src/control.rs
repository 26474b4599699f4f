//! The commands of operator control: priority and tag edits, revoking a
//! lease, the live workers. `--json` prints the HTTP API's answer types.

use baton_api::{ExplainAnswer, Snapshot, WorkerAnswer, WorkersAnswer};
use baton_core::{AdminBackend, ExecutionId, Namespace, TagKey};

use crate::table::Table;
use crate::{CliResult, print_json, split_pair};

/// `baton priority ID N`.
pub(crate) async fn priority(
    backend: &dyn AdminBackend,
    id: &str,
    priority: i32,
    json: bool,
) -> CliResult<()> {
    let id: ExecutionId = id.parse()?;
    let snap = backend.set_priority(&id, priority).await?;
    if json {
        print_json(&Snapshot::from(&snap));
    } else {
        println!(
            "{} ({}) now has priority {}",
            snap.id, snap.state, snap.priority
        );
    }
    Ok(())
}

/// `baton tag ID KEY=VALUE` and `baton untag ID KEY`.
pub(crate) async fn tag(
    backend: &dyn AdminBackend,
    id: &str,
    tag: &str,
    remove: bool,
    json: bool,
) -> CliResult<()> {
    let id: ExecutionId = id.parse()?;
    let (key, value) = if remove {
        (TagKey::new(tag)?, None)
    } else {
        let (k, v) = split_pair("tag", tag)?;
        (TagKey::new(k)?, Some(v.to_owned()))
    };
    let snap = backend.set_tag(&id, key, value).await?;
    if json {
        print_json(&Snapshot::from(&snap));
    } else {
        let tags: Vec<String> = snap.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let shown = if tags.is_empty() {
            "no tags".to_owned()
        } else {
            tags.join(", ")
        };
        println!("{} has {shown}", snap.id);
    }
    Ok(())
}

/// `baton revoke ID`.
pub(crate) async fn revoke(backend: &dyn AdminBackend, id: &str, json: bool) -> CliResult<()> {
    let id: ExecutionId = id.parse()?;
    let snap = backend.revoke(&id).await?;
    if json {
        print_json(&Snapshot::from(&snap));
        return Ok(());
    }
    let next = match snap.state {
        baton_core::State::Failed => "it was on its last attempt and failed".to_owned(),
        state => format!("it is {state} for attempt {}", snap.attempts + 1),
    };
    println!("revoked the lease of {}: {next}", snap.id);
    Ok(())
}

/// `baton workers [--namespace NS]`.
pub(crate) async fn workers(
    backend: &dyn AdminBackend,
    namespace: &str,
    limit: usize,
    json: bool,
) -> CliResult<()> {
    let ns = Namespace::new(namespace)?;
    let list = backend.workers(&ns, limit).await?;
    if json {
        print_json(&WorkersAnswer {
            workers: list.iter().map(WorkerAnswer::from).collect(),
        });
        return Ok(());
    }
    let mut t = Table::new(["WORKER", "LANES", "CAPABILITIES", "LEASES", "LAST SEEN"]);
    for w in &list {
        let lanes: Vec<&str> = w.lanes.iter().map(|l| l.as_str()).collect();
        let caps: Vec<&str> = w.capabilities.iter().map(|c| c.as_str()).collect();
        t.row([
            w.worker_id.to_string(),
            lanes.join(","),
            if caps.is_empty() {
                "-".into()
            } else {
                caps.join(",")
            },
            w.leases.to_string(),
            w.last_seen.to_string(),
        ]);
    }
    t.print_or(&format!("no live workers in namespace {ns}"));
    Ok(())
}

/// `baton explain ID`.
pub(crate) async fn explain(backend: &dyn AdminBackend, id: &str, json: bool) -> CliResult<()> {
    let id: ExecutionId = id.parse()?;
    let e = backend.explain(&id).await?;
    if json {
        print_json(&ExplainAnswer::from(&e));
        return Ok(());
    }
    match e.reason {
        Some(reason) => println!(
            "{} is {} ({reason}): {}",
            e.snapshot.id, e.snapshot.state, e.detail
        ),
        None => println!("{}: {}", e.snapshot.id, e.detail),
    }
    Ok(())
}
