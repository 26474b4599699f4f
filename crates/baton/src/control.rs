//! The commands of operator control: priority and tag edits, revoking a
//! lease, the live workers, pausing and resuming executions and lanes,
//! replay. `--json` prints the HTTP API's answer types.

use baton_api::{
    ExplainAnswer, LaneAnswer, LanePauseAnswer, LanesAnswer, PauseAnswer, Snapshot, WorkerAnswer,
    WorkersAnswer,
};
use baton_core::{AdminBackend, CancelScope, ExecutionId, Lane, Namespace, Page, State, TagKey};

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
    let mut t = Table::new([
        "WORKER",
        "LANES",
        "CAPABILITIES",
        "VERSIONS",
        "LEASES",
        "LAST SEEN",
    ]);
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
            if w.versions.is_any() {
                "any".into()
            } else {
                w.versions.to_string()
            },
            w.leases.to_string(),
            w.last_seen.to_string(),
        ]);
    }
    t.print_or(&format!("no live workers in namespace {ns}"));
    Ok(())
}

/// `baton history on|off|show [--namespace NS]`.
pub(crate) async fn history(
    backend: &dyn AdminBackend,
    namespace: &str,
    enabled: Option<bool>,
    json: bool,
) -> CliResult<()> {
    let ns = Namespace::new(namespace)?;
    let (now, was) = match enabled {
        Some(on) => (on, Some(backend.set_history(&ns, on).await?)),
        None => (backend.history_enabled(&ns).await?, None),
    };
    if json {
        print_json(&baton_api::HistoryAnswer {
            namespace: ns.to_string(),
            enabled: now,
            was,
        });
        return Ok(());
    }
    let word = |on: bool| if on { "on" } else { "off" };
    match was {
        Some(was) if was == now => println!("the history of {ns} was already {}", word(now)),
        Some(_) => println!(
            "the history of {ns} is {} for executions created from now on",
            word(now)
        ),
        None => println!("the history of {ns} is {}", word(now)),
    }
    Ok(())
}

/// Where a rule applies, in words: `namespace shop`, `lane mail of shop`.
fn rule_scope(ns: &Namespace, lane: Option<&Lane>) -> String {
    match lane {
        Some(lane) => format!("lane {lane} of {ns}"),
        None => format!("namespace {ns}"),
    }
}

/// `baton retention set NS KEEP [--lane L]`.
pub(crate) async fn set_retention(
    backend: &dyn AdminBackend,
    namespace: &str,
    lane: Option<&str>,
    keep: &str,
    json: bool,
) -> CliResult<()> {
    let ns = Namespace::new(namespace)?;
    let lane = lane.map(Lane::new).transpose()?;
    let keep = baton_core::parse_duration(keep)?;
    let previous = backend.set_retention(&ns, lane.as_ref(), keep).await?;
    if json {
        print_json(&baton_api::RetentionChangeAnswer {
            namespace: ns.to_string(),
            lane: lane.as_ref().map(ToString::to_string),
            keep_ms: Some(keep.as_millis() as u64),
            previous_ms: previous.map(|p| p.as_millis() as u64),
        });
        return Ok(());
    }
    let scope = rule_scope(&ns, lane.as_ref());
    let keep_text = baton_core::format_duration(keep);
    match previous {
        Some(p) if p == keep => println!("{scope} already keeps finished executions {keep_text}"),
        Some(p) => println!(
            "{scope} keeps finished executions {keep_text} (was {})",
            baton_core::format_duration(p)
        ),
        None => println!("{scope} keeps finished executions {keep_text}"),
    }
    Ok(())
}

/// `baton retention remove NS [--lane L]`.
pub(crate) async fn remove_retention(
    backend: &dyn AdminBackend,
    namespace: &str,
    lane: Option<&str>,
    json: bool,
) -> CliResult<()> {
    let ns = Namespace::new(namespace)?;
    let lane = lane.map(Lane::new).transpose()?;
    let previous = backend.remove_retention(&ns, lane.as_ref()).await?;
    if json {
        print_json(&baton_api::RetentionChangeAnswer {
            namespace: ns.to_string(),
            lane: lane.as_ref().map(ToString::to_string),
            keep_ms: None,
            previous_ms: previous.map(|p| p.as_millis() as u64),
        });
        return Ok(());
    }
    let scope = rule_scope(&ns, lane.as_ref());
    match previous {
        Some(p) => println!(
            "removed the rule of {scope} (it kept {}); the rules left or the deployment's default apply",
            baton_core::format_duration(p)
        ),
        None => println!("{scope} had no retention rule; nothing changed"),
    }
    Ok(())
}

/// `baton retention list`.
pub(crate) async fn retention_rules(backend: &dyn AdminBackend, json: bool) -> CliResult<()> {
    let rules = backend.retention_rules().await?;
    if json {
        print_json(&baton_api::RetentionRulesAnswer {
            items: rules.iter().map(baton_api::RetentionAnswer::from).collect(),
        });
        return Ok(());
    }
    let mut t = Table::new(["NAMESPACE", "LANE", "KEEP"]);
    for rule in &rules {
        t.row([
            rule.namespace.to_string(),
            rule.lane
                .as_ref()
                .map_or_else(|| "(all)".to_string(), ToString::to_string),
            baton_core::format_duration(rule.keep),
        ]);
    }
    t.print_or(
        "no retention rules: every finished execution is kept for the deployment's default \
         (baton serve --retention, 7d unless set)",
    );
    Ok(())
}

/// `baton events ID [--after N]`: every kept event, a page at a time.
pub(crate) async fn events(
    backend: &dyn AdminBackend,
    id: &str,
    after: u64,
    json: bool,
) -> CliResult<()> {
    let id: ExecutionId = id.parse()?;
    let mut events = Vec::new();
    let mut from = after;
    loop {
        let page = backend.events(&id, from, Page::MAX_LIMIT).await?;
        let full = page.len() == Page::MAX_LIMIT;
        from = page.last().map_or(from, |e| e.seq);
        events.extend(page);
        if !full {
            break;
        }
    }
    if json {
        print_json(&baton_api::EventsAnswer {
            items: events.iter().map(baton_api::EventAnswer::from).collect(),
            next_after: None,
        });
        return Ok(());
    }
    let mut t = Table::new(["SEQ", "AT", "EVENT", "STATE", "ATTEMPT", "WORKER", "DETAIL"]);
    for e in &events {
        let state = match (e.from, e.to) {
            (Some(from), Some(to)) => format!("{from} -> {to}"),
            (None, Some(to)) => to.to_string(),
            _ => "-".into(),
        };
        t.row([
            e.seq.to_string(),
            e.at.to_string(),
            e.event.to_string(),
            state,
            e.attempt.to_string(),
            e.worker.as_ref().map_or("-".into(), ToString::to_string),
            e.detail
                .as_deref()
                .map_or("-".into(), |d| d.replace(['\n', '\r'], " ")),
        ]);
    }
    t.print_or(&format!("no events of {id} after {after}"));
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

/// `baton pause ID [--only]` and `baton resume ID [--only]`.
pub(crate) async fn pause(
    backend: &dyn AdminBackend,
    id: &str,
    only: bool,
    pause: bool,
    json: bool,
) -> CliResult<()> {
    let id: ExecutionId = id.parse()?;
    let scope = if only {
        CancelScope::Execution
    } else {
        CancelScope::Tree
    };
    let out = if pause {
        backend.pause(&id, scope).await?
    } else {
        backend.resume(&id, scope).await?
    };
    if json {
        print_json(&PauseAnswer::from(&out));
        return Ok(());
    }
    let snap = &out.snapshot;
    let what = match (&snap.pause, snap.state) {
        (Some(p), _) => format!("is paused (it was {})", p.from),
        (None, state) => format!("is {state}"),
    };
    let verb = if pause { "paused" } else { "resumed" };
    let below = match (out.cascaded, out.cascade_pending) {
        (0, false) => String::new(),
        (n, false) => format!("; {verb} {n} execution{} below it", plural(n)),
        (n, true) => format!(
            "; {verb} {n} execution{} below it, the rest follow shortly (baton tree shows them)",
            plural(n)
        ),
    };
    println!("{} {what}{below}", snap.id);
    Ok(())
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `baton replay ID`.
pub(crate) async fn replay(backend: &dyn AdminBackend, id: &str, json: bool) -> CliResult<()> {
    let id: ExecutionId = id.parse()?;
    let snap = backend.replay(&id).await?;
    if json {
        print_json(&Snapshot::from(&snap));
        return Ok(());
    }
    println!(
        "{} is {} again: attempt {} is next, with {} attempt{} allowed from here",
        snap.id,
        snap.state,
        snap.attempts + 1,
        snap.retry.max_attempts,
        plural(u64::from(snap.retry.max_attempts))
    );
    Ok(())
}

/// `baton delete ID [--force]`.
pub(crate) async fn delete(
    backend: &dyn AdminBackend,
    id: &str,
    force: bool,
    json: bool,
) -> CliResult<()> {
    let id: ExecutionId = id.parse()?;
    let report = backend.delete(&id, force).await?;
    if json {
        print_json(&baton_api::DeleteAnswer::from(&report));
        return Ok(());
    }
    let below = report.deleted.saturating_sub(1);
    let cancelled = if report.cancelled {
        "cancelled and "
    } else {
        ""
    };
    if below == 0 {
        println!("{} {cancelled}deleted", report.id);
    } else {
        println!(
            "{} {cancelled}deleted with {below} descendant{}",
            report.id,
            plural(below)
        );
    }
    Ok(())
}

/// `baton lane pause|resume LANE [--namespace NS]`.
pub(crate) async fn lane(
    backend: &dyn AdminBackend,
    namespace: &str,
    lane: &str,
    pause: bool,
    json: bool,
) -> CliResult<()> {
    let ns = Namespace::new(namespace)?;
    let lane = Lane::new(lane)?;
    let changed = if pause {
        backend.pause_lane(&ns, &lane).await?
    } else {
        backend.resume_lane(&ns, &lane).await?
    };
    if json {
        print_json(&LanePauseAnswer {
            lane,
            paused: pause,
            changed,
        });
        return Ok(());
    }
    let now = if pause { "paused" } else { "not paused" };
    let before = if changed { "" } else { " (it already was)" };
    let what = if pause {
        ": claims take none of its work until `baton lane resume`"
    } else {
        ": claims take its work again"
    };
    println!("lane {lane} of namespace {ns} is {now}{before}{what}");
    Ok(())
}

/// `baton lanes [--namespace NS]`.
pub(crate) async fn lanes(
    backend: &dyn AdminBackend,
    namespace: &str,
    json: bool,
) -> CliResult<()> {
    let ns = Namespace::new(namespace)?;
    let lanes = backend.lanes(&ns).await?;
    if json {
        print_json(&LanesAnswer {
            lanes: lanes.iter().map(LaneAnswer::from).collect(),
        });
        return Ok(());
    }
    let shown = [
        State::Waiting,
        State::Delayed,
        State::Blocked,
        State::Running,
        State::Suspended,
        State::Paused,
    ];
    let mut header = vec!["LANE".to_string(), "PAUSED".to_string()];
    header.extend(shown.iter().map(|s| s.as_str().to_uppercase()));
    header.push("FINISHED".into());
    let mut t = Table::new(header);
    for l in &lanes {
        let mut row = vec![
            l.lane.to_string(),
            l.paused_at
                .map_or_else(|| "-".to_owned(), |at| format!("since {at}")),
        ];
        row.extend(shown.iter().map(|s| l.counts.get(*s).to_string()));
        let finished: u64 = State::ALL
            .iter()
            .filter(|s| s.is_terminal())
            .map(|s| l.counts.get(*s))
            .sum();
        row.push(finished.to_string());
        t.row(row);
    }
    t.print_or(&format!("no lanes in namespace {ns}"));
    Ok(())
}
