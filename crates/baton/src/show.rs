//! The read commands: describe, list, stats. `--json` prints the HTTP API's
//! answer types, so scripts see the same documents over both.

use baton_api::{ListAnswer, Snapshot, StateEntryAnswer, StatsAnswer, StepAnswer, bytes_json};
use baton_core::{
    AdminBackend, ExecutionId, ExecutionSnapshot, Kind, Lane, ListCursor, ListFilter, ListPage,
    Namespace, Page, State, TagKey, Timestamp,
};
use serde_json::Value;

use crate::table::Table;
use crate::{CliResult, FilterArgs, ListArgs, print_json, split_pair};

fn opt_time(t: Option<Timestamp>) -> String {
    t.map(|t| t.to_string()).unwrap_or_else(|| "-".into())
}

fn short(v: &Value, max: usize) -> String {
    let s = v.to_string();
    if s.chars().count() > max {
        let cut: String = s.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        s
    }
}

/// What `describe` lists beside the snapshot.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct With {
    /// Its attempts.
    pub attempts: bool,
    /// Its checkpointed steps.
    pub steps: bool,
    /// Its key-value state.
    pub state: bool,
}

pub(crate) async fn describe(
    backend: &dyn AdminBackend,
    id: &str,
    with: With,
    json: bool,
) -> CliResult<()> {
    let id: ExecutionId = id.parse()?;
    let snap = backend.describe(&id).await?;
    let attempts = if with.attempts {
        Some(backend.attempts(&id).await?)
    } else {
        None
    };
    let steps = if with.steps {
        Some(backend.steps(&id).await?)
    } else {
        None
    };
    let state = if with.state {
        Some(backend.state(&id).await?)
    } else {
        None
    };
    if json {
        let mut doc = Snapshot::from(&snap);
        if let Some(list) = &attempts {
            doc = doc.with_attempts(list);
        }
        // Serialized as it is, never through a `Value`: payloads and
        // results keep their exact JSON text.
        print_json(&WithRecords {
            snapshot: doc,
            steps: steps
                .as_ref()
                .map(|list| list.iter().map(StepAnswer::from).collect()),
            execution_state: state
                .as_ref()
                .map(|list| list.iter().map(StateEntryAnswer::from).collect()),
        });
        return Ok(());
    }
    print_snapshot(&snap);
    if let Some(list) = attempts {
        println!();
        let mut t = Table::new(["ATTEMPT", "WORKER", "STARTED", "ENDED", "OUTCOME", "ERROR"]);
        for a in &list {
            t.row([
                a.number.to_string(),
                a.worker_id.to_string(),
                a.started_at.to_string(),
                opt_time(a.ended_at),
                a.outcome
                    .map(|o| o.to_string())
                    .unwrap_or_else(|| "running".into()),
                a.error.clone().unwrap_or_default(),
            ]);
        }
        t.print_or("no attempts yet");
    }
    if let Some(list) = steps {
        println!();
        let mut t = Table::new([
            "STEP",
            "STATUS",
            "ATTEMPT",
            "FAILURES",
            "RECORDED",
            "OUTPUT / ERROR",
        ]);
        for s in &list {
            let shown = match (&s.output, &s.error) {
                (Some(o), _) => short(&bytes_json(o), 60),
                (None, Some(e)) => e.clone(),
                (None, None) => String::new(),
            };
            t.row([
                s.name.to_string(),
                s.status.to_string(),
                s.attempt.to_string(),
                s.failures.to_string(),
                s.recorded_at.to_string(),
                shown,
            ]);
        }
        t.print_or("no steps recorded");
    }
    if let Some(list) = state {
        println!();
        let mut t = Table::new(["KEY", "ATTEMPT", "UPDATED", "VALUE"]);
        for e in &list {
            t.row([
                e.key.to_string(),
                e.attempt.to_string(),
                e.updated_at.to_string(),
                short(&bytes_json(&e.value), 80),
            ]);
        }
        t.print_or("no state held");
    }
    Ok(())
}

/// `describe --json` with `--steps` / `--state`: the snapshot with them.
#[derive(serde::Serialize)]
struct WithRecords {
    #[serde(flatten)]
    snapshot: Snapshot,
    #[serde(skip_serializing_if = "Option::is_none")]
    steps: Option<Vec<StepAnswer>>,
    /// Named apart from the snapshot's own `state`.
    #[serde(skip_serializing_if = "Option::is_none")]
    execution_state: Option<Vec<StateEntryAnswer>>,
}

fn print_snapshot(s: &ExecutionSnapshot) {
    let tags: Vec<String> = s.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let caps: Vec<&str> = s.required_capabilities.iter().map(|c| c.as_str()).collect();
    let mut rows: Vec<(&str, String)> = vec![
        ("id", s.id.to_string()),
        ("state", s.state.to_string()),
        ("namespace", s.namespace.to_string()),
        ("lane", s.lane.to_string()),
        ("kind", s.kind.to_string()),
        ("priority", s.priority.to_string()),
        (
            "attempts",
            format!("{} of {}", s.attempts, s.retry.max_attempts),
        ),
        ("created_at", s.created_at.to_string()),
        ("updated_at", s.updated_at.to_string()),
        ("run_at", opt_time(s.run_at)),
        ("deadline", opt_time(s.deadline)),
        ("finished_at", opt_time(s.finished_at)),
    ];
    if let Some(w) = &s.worker_id {
        rows.push(("worker", w.to_string()));
        rows.push(("lease_expires_at", opt_time(s.lease_expires_at)));
    }
    if !tags.is_empty() {
        rows.push(("tags", tags.join(", ")));
    }
    if !caps.is_empty() {
        rows.push(("capabilities", caps.join(", ")));
    }
    if let Some(k) = &s.idempotency_key {
        rows.push(("idempotency_key", k.to_string()));
    }
    if let Some(session) = &s.session {
        rows.push(("session", session.to_string()));
    }
    if let Some(v) = &s.version {
        rows.push(("version", v.to_string()));
    }
    if let Some(p) = &s.parent {
        rows.push(("parent", p.to_string()));
        rows.push(("root", s.root.to_string()));
    }
    if let Some(k) = &s.child_key {
        rows.push(("child_key", k.to_string()));
    }
    rows.push(("payload", short(&bytes_json(&s.payload), 200)));
    if let Some(r) = &s.result {
        rows.push(("result", short(&bytes_json(r), 200)));
    }
    if let Some(e) = &s.last_error {
        rows.push(("last_error", e.clone()));
    }
    if let Some(r) = &s.cancel_reason {
        rows.push(("cancel_reason", r.clone()));
    }
    if let Some(status) = &s.custom_status {
        rows.push((
            "status",
            format!("v{}  {}", s.status_version, short(&bytes_json(status), 200)),
        ));
    }
    if s.progress_seq > 0 {
        rows.push((
            "progress",
            format!("{} frames (see `baton watch {}`)", s.progress_seq, s.id),
        ));
    }
    if let Some(why) = s.wait_reason() {
        rows.push(("waiting_on", format!("{}: {}", why.reason, why.detail)));
    }
    if let Some(w) = &s.suspension {
        let names: Vec<&str> = w.waitpoints.iter().map(|n| n.as_str()).collect();
        rows.push((
            "waitpoints",
            if names.is_empty() {
                "none (a durable sleep)".into()
            } else {
                format!("{} ({})", names.join(", "), w.condition)
            },
        ));
        rows.push(("timeout_at", opt_time(w.timeout_at)));
        rows.push(("on_timeout", w.on_timeout.to_string()));
    }
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        println!("{k:<width$}  {v}");
    }
}

/// The list filter the flags ask for.
pub(crate) fn filter_of(a: FilterArgs) -> CliResult<ListFilter> {
    let mut filter = ListFilter::namespace(Namespace::new(a.namespace)?);
    if let Some(l) = a.lane {
        filter = filter.with_lane(Lane::new(l)?);
    }
    if let Some(s) = a.state {
        filter = filter.with_states(baton_api::parse_states(&s)?);
    }
    let now = Timestamp::now_system();
    let at = |field: &'static str, text: Option<String>| -> CliResult<Option<Timestamp>> {
        let Some(text) = text else { return Ok(None) };
        if let Ok(t) = text.parse::<Timestamp>() {
            return Ok(Some(t));
        }
        let ago = crate::follow::parse_duration(&text).map_err(|_| {
            baton_core::EngineError::invalid(
                field,
                &text,
                "an RFC 3339 instant (2030-01-01T00:00:00Z) or a time ago (30m, 2h, 7d)",
            )
        })?;
        Ok(Some(now.saturating_sub(ago)))
    };
    filter = filter
        .with_created(
            at("created_after", a.created_after)?,
            at("created_before", a.created_before)?,
        )
        .with_finished(
            at("finished_after", a.finished_after)?,
            at("finished_before", a.finished_before)?,
        );
    if let Some(k) = a.key {
        filter = filter.with_idempotency_key(baton_core::IdempotencyKey::new(k)?);
    }
    if let Some(k) = a.kind {
        filter = filter.with_kind(Kind::new(k)?);
    }
    if let Some(t) = a.tag {
        let (k, v) = split_pair("tag", &t)?;
        filter = filter.with_tag(TagKey::new(k)?, v);
    }
    if let Some(p) = a.parent {
        filter = filter.with_parent(p.parse::<ExecutionId>()?);
    }
    Ok(filter)
}

pub(crate) async fn list(backend: &dyn AdminBackend, a: ListArgs, json: bool) -> CliResult<()> {
    let filter = filter_of(a.filter)?;
    let cursor = a.cursor.map(|c| c.parse::<ListCursor>()).transpose()?;
    let page = backend
        .list(
            &filter,
            Page {
                limit: a.limit,
                cursor,
            },
        )
        .await?;
    if json {
        print_json(&ListAnswer::from(&page));
        return Ok(());
    }
    print_page(&page, "no executions match", |c| {
        format!("baton list --cursor {c}")
    });
    Ok(())
}

/// Prints a page of executions as a table (or `empty`), then, when more
/// may follow, the command that shows them (`more` of the next cursor).
pub(crate) fn print_page(page: &ListPage, empty: &str, more: impl Fn(&str) -> String) {
    let mut t = Table::new(["ID", "STATE", "LANE", "KIND", "PRI", "ATTEMPTS", "CREATED"]);
    for s in &page.items {
        t.row([
            s.id.to_string(),
            s.state.to_string(),
            s.lane.to_string(),
            s.kind.to_string(),
            s.priority.to_string(),
            format!("{}/{}", s.attempts, s.retry.max_attempts),
            s.created_at.to_string(),
        ]);
    }
    t.print_or(empty);
    if let Some(c) = page.next_cursor {
        println!("more: {}", more(&c.to_string()));
    }
}

pub(crate) async fn stats(
    backend: &dyn AdminBackend,
    namespace: &str,
    json: bool,
) -> CliResult<()> {
    let namespace = Namespace::new(namespace)?;
    let counts = backend.counts(&namespace).await?;
    if json {
        print_json(&StatsAnswer { lanes: counts });
        return Ok(());
    }
    let mut header = vec!["LANE".to_string()];
    header.extend(State::ALL.iter().map(|s| s.as_str().to_uppercase()));
    let mut t = Table::new(header);
    for (lane, c) in &counts {
        let mut row = vec![lane.to_string()];
        row.extend(State::ALL.iter().map(|s| c.get(*s).to_string()));
        t.row(row);
    }
    t.print_or(&format!("no executions in namespace {namespace}"));
    Ok(())
}
