//! The read pages: overview, executions and one execution. Each reads the
//! backend directly and goes through the API's own conversions
//! (`ListQuery::into_request`), so a filter means what it means to
//! `GET /v1/executions`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use baton_api::{ListQuery, encode_component};
use baton_core::{
    EngineError, ExecutionId, ExecutionSnapshot, Lane, Namespace, Page, State as ExecState,
    Timestamp, Tree,
};

use super::json::{Shown, pretty};
use super::rates;
use super::{Chrome, UiError, UiResult, age, html, ok};
use crate::AppState;
use crate::metrics::{MAX_AGE_LOOKUPS, MAX_NAMESPACES};

/// Rows the executions page lists by default, and at most.
pub(crate) const DEFAULT_LIMIT: usize = 50;
/// Most rows one executions page lists.
pub(crate) const MAX_LIMIT: usize = 200;

/// The list filters the forms carry, in the API's names.
pub(crate) const FILTER_KEYS: [&str; 12] = [
    "namespace",
    "lane",
    "kind",
    "tag",
    "tag_key",
    "tag_value",
    "parent",
    "created_after",
    "created_before",
    "finished_after",
    "finished_before",
    "idempotency_key",
];

const TIME_KEYS: [&str; 4] = [
    "created_after",
    "created_before",
    "finished_after",
    "finished_before",
];

/// A filter as a form sent it, resolved for the API: empty fields dropped,
/// repeated `state`s joined with commas, spans (`24h`) turned into the
/// instant that long before now.
#[derive(Clone, Debug, Default)]
pub(crate) struct FilterForm {
    /// The query with instants, as `GET /v1/executions` takes it.
    pub query: ListQuery,
    /// The fields as typed, to show them again in the form.
    pub typed: BTreeMap<String, String>,
    /// The states asked for.
    pub states: BTreeSet<ExecState>,
    /// The other parameters the page allowed (`limit`, `cursor`, `done`…).
    pub extra: BTreeMap<String, String>,
}

impl FilterForm {
    /// The filter alone as a query string (no limit, no cursor).
    pub(crate) fn filter_string(&self) -> String {
        ListQuery {
            limit: None,
            cursor: None,
            ..self.query.clone()
        }
        .to_query_string()
    }

    /// The namespace asked for, `default` when none.
    pub(crate) fn namespace(&self) -> String {
        self.query
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into())
    }
}

/// Reads a form's query string. `extra` names the parameters besides the
/// filters that the page takes; any other is refused, as the API refuses
/// unknown parameters.
///
/// # Errors
/// `InvalidInput` naming the parameter at fault.
pub(crate) fn parse_filter(
    raw: &str,
    now: Timestamp,
    extra: &[&'static str],
) -> Result<FilterForm, EngineError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw).map_err(|e| {
        EngineError::invalid("query", "", format!("the query string is malformed: {e}"))
    })?;
    let mut form = FilterForm::default();
    for (key, value) in pairs {
        let value = value.trim().to_owned();
        if value.is_empty() {
            continue;
        }
        if key == "state" {
            for s in baton_api::parse_states(&value)? {
                form.states.insert(s);
            }
            continue;
        }
        if let Some(&k) = FILTER_KEYS.iter().find(|k| **k == key) {
            let resolved = if TIME_KEYS.contains(&k) {
                Some(resolve_time(k, &value, now)?)
            } else {
                Some(value.clone())
            };
            set_field(&mut form.query, k, resolved);
            form.typed.insert(key, value);
        } else if extra.contains(&key.as_str()) {
            form.extra.insert(key, value);
        } else {
            return Err(EngineError::invalid(
                "query",
                key,
                "unknown parameter; the filters are those of GET /v1/executions",
            ));
        }
    }
    if !form.states.is_empty() {
        let names: Vec<&str> = form.states.iter().map(|s| s.as_str()).collect();
        form.query.state = Some(names.join(","));
    }
    Ok(form)
}

fn set_field(q: &mut ListQuery, key: &str, value: Option<String>) {
    let slot = match key {
        "namespace" => &mut q.namespace,
        "lane" => &mut q.lane,
        "kind" => &mut q.kind,
        "tag" => &mut q.tag,
        "tag_key" => &mut q.tag_key,
        "tag_value" => &mut q.tag_value,
        "parent" => &mut q.parent,
        "created_after" => &mut q.created_after,
        "created_before" => &mut q.created_before,
        "finished_after" => &mut q.finished_after,
        "finished_before" => &mut q.finished_before,
        "idempotency_key" => &mut q.idempotency_key,
        _ => return,
    };
    *slot = value;
}

/// An RFC 3339 instant as given, or a span (`15m`, `24h`, `7d`) as the
/// instant that long before `now`.
fn resolve_time(field: &'static str, text: &str, now: Timestamp) -> Result<String, EngineError> {
    if let Ok(t) = text.parse::<Timestamp>() {
        return Ok(t.to_string());
    }
    match baton_core::parse_duration(text) {
        Ok(span) => Ok(now.saturating_sub(span).to_string()),
        Err(_) => Err(EngineError::invalid(
            field,
            text,
            "an RFC 3339 instant such as 2030-01-01T00:00:00Z, or a span back from now such as 15m, 24h or 7d",
        )),
    }
}

/// The list request of the executions page: the API's conversion, with the
/// dashboard's page size (50 by default, at most 200).
pub(crate) fn list_request(
    form: &FilterForm,
) -> Result<(baton_core::ListFilter, Page), EngineError> {
    let limit = match form.extra.get("limit") {
        None => DEFAULT_LIMIT,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(EngineError::invalid(
                    "limit",
                    l,
                    format!("a whole number between 1 and {MAX_LIMIT}"),
                ));
            }
        },
    };
    let query = ListQuery {
        limit: Some(limit.to_string()),
        cursor: form.extra.get("cursor").cloned(),
        ..form.query.clone()
    };
    query.into_request()
}

/// An instant for people: the relative age, with the UTC instant kept for
/// `<time datetime>` and the tooltip.
#[derive(Clone, Debug)]
pub(crate) struct When {
    pub iso: String,
    pub rel: String,
}

impl When {
    pub(crate) fn of(t: Timestamp, now: Timestamp) -> Self {
        let rel = if t <= now {
            format!("{} ago", age(now.duration_since(t)))
        } else {
            format!("in {}", age(t.duration_since(now)))
        };
        When {
            iso: t.to_string(),
            rel,
        }
    }

    fn maybe(t: Option<Timestamp>, now: Timestamp) -> Option<Self> {
        t.map(|t| When::of(t, now))
    }
}

/// The detail page of an execution.
pub(crate) fn detail_href(id: &ExecutionId) -> String {
    format!("/ui/executions/{}", encode_component(&id.to_string()))
}

/// Every namespace the pages offer: those the backend holds (the first
/// [`MAX_NAMESPACES`]), those this process's requests used, and `default`.
pub(crate) async fn namespaces(state: &AppState) -> (Vec<String>, Option<String>) {
    let mut all: BTreeSet<String> = state
        .metrics()
        .seen_namespaces()
        .iter()
        .map(|n| n.to_string())
        .collect();
    all.insert("default".into());
    let error = match state.backend().namespaces(MAX_NAMESPACES).await {
        Ok(held) => {
            all.extend(held.iter().map(|n| n.to_string()));
            None
        }
        Err(e) => Some(format!("cannot list namespaces: {e}")),
    };
    (all.into_iter().collect(), error)
}

/// One option of a select.
#[derive(Clone, Debug)]
pub(crate) struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

fn choices(values: &[String], selected: &str) -> Vec<Choice> {
    values
        .iter()
        .map(|v| Choice {
            value: v.clone(),
            label: v.clone(),
            selected: v == selected,
        })
        .collect()
}

// ---------------------------------------------------------------- overview

#[derive(Clone, Debug)]
struct LaneRow {
    namespace: String,
    lane: String,
    href: String,
    paused: bool,
    paused_since: Option<When>,
    toggle_href: String,
    counts: Vec<(&'static str, u64)>,
    oldest: String,
    failure_rate: String,
}

#[derive(Clone, Debug)]
struct WorkerRow {
    namespace: String,
    id: String,
    lanes: String,
    leases: u32,
    versions: String,
    capabilities: String,
    last_seen: When,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct Overview {
    chrome: Chrome,
    namespaces: Vec<Choice>,
    shown: String,
    states: Vec<&'static str>,
    lanes: Vec<LaneRow>,
    workers: Vec<WorkerRow>,
    chart: String,
    peak: u64,
    finished: (u64, u64),
    collecting: bool,
    rate5: String,
    rate15: String,
    errors: Vec<String>,
    notice: Option<&'static str>,
}

/// The fixed message of a `done=` parameter; never request text.
pub(crate) fn notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "cancelled" => "Cancelled.",
        "replayed" => "Replayed: the execution waits again.",
        "paused" => "Paused.",
        "resumed" => "Resumed.",
        "lane_paused" => "Lane paused: claims no longer take its work.",
        "lane_resumed" => "Lane resumed.",
        _ => return None,
    })
}

/// `GET /ui[?namespace=]`.
pub(crate) async fn overview(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> UiResult {
    let chrome = Chrome::of(&state, &headers);
    let forget = chrome.forget;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
        .map_err(|e| {
            UiError::new(
                EngineError::invalid("query", "", format!("malformed query string: {e}")),
                forget,
            )
        })?;
    let mut asked: Option<Namespace> = None;
    let mut done = None;
    for (k, v) in pairs {
        match k.as_str() {
            "namespace" if !v.is_empty() => {
                asked = Some(Namespace::new(v).map_err(|e| UiError::new(e, forget))?)
            }
            "done" => done = Some(v),
            _ => {}
        }
    }
    let (all, ns_error) = namespaces(&state).await;
    let mut errors: Vec<String> = ns_error.into_iter().collect();
    let shown: Vec<Namespace> = match &asked {
        Some(ns) => vec![ns.clone()],
        None => all
            .iter()
            .filter_map(|n| Namespace::new(n.as_str()).ok())
            .collect(),
    };
    let now = Timestamp::now_system();
    let samples = state.rates().samples();
    let backend = state.backend();
    let mut lanes = Vec::new();
    let mut workers = Vec::new();
    for ns in &shown {
        state.metrics().saw_namespace(ns);
        match backend.lanes(ns).await {
            Ok(list) => {
                let mut lookups = 0;
                for info in list {
                    let oldest = if info.counts.waiting > 0 && lookups < MAX_AGE_LOOKUPS {
                        lookups += 1;
                        match crate::metrics::oldest_waiting(backend.as_ref(), ns, &info.lane, now)
                            .await
                        {
                            Ok(Some(d)) => age(d),
                            Ok(None) => "—".into(),
                            Err(e) => format!("unknown ({})", e.code()),
                        }
                    } else {
                        "—".into()
                    };
                    let this = |n: &Namespace, l: &Lane| n == ns && *l == info.lane;
                    let rate = rates::failure_rate(&samples, now, Duration::from_secs(900), &this);
                    let query = format!("namespace={}", encode_component(ns.as_str()));
                    let lane_part = encode_component(info.lane.as_str());
                    let toggle = if info.paused_at.is_some() {
                        "resume"
                    } else {
                        "pause"
                    };
                    lanes.push(LaneRow {
                        namespace: ns.to_string(),
                        lane: info.lane.to_string(),
                        href: format!("/ui/executions?{query}&lane={lane_part}"),
                        paused: info.paused_at.is_some(),
                        paused_since: When::maybe(info.paused_at, now),
                        toggle_href: format!("/ui/lanes/{lane_part}/{toggle}?{query}"),
                        counts: ExecState::ALL
                            .iter()
                            .map(|s| (s.as_str(), info.counts.get(*s)))
                            .collect(),
                        oldest,
                        failure_rate: rates::percent(rate),
                    });
                }
            }
            Err(e) => errors.push(format!("cannot read the lanes of {ns}: {e}")),
        }
        match backend.workers(ns, 100).await {
            Ok(list) => workers.extend(list.into_iter().map(|w| WorkerRow {
                namespace: ns.to_string(),
                id: w.worker_id.to_string(),
                lanes: join(w.lanes.iter()),
                leases: w.leases,
                versions: if w.versions.is_any() {
                    "any".into()
                } else {
                    w.versions.to_string()
                },
                capabilities: join(w.capabilities.iter()),
                last_seen: When::of(w.last_seen, now),
            })),
            Err(e) => errors.push(format!("cannot read the workers of {ns}: {e}")),
        }
    }
    let keep = |n: &Namespace, _: &Lane| shown.contains(n);
    let buckets = rates::buckets(&samples, now, &keep);
    let page = Overview {
        chrome,
        namespaces: choices(&all, asked.as_ref().map(|n| n.as_str()).unwrap_or_default()),
        shown: asked.map(|n| n.to_string()).unwrap_or_default(),
        states: ExecState::ALL.iter().map(|s| s.as_str()).collect(),
        lanes,
        workers,
        collecting: samples.len() < 2,
        peak: buckets
            .iter()
            .flatten()
            .map(|(c, f)| c + f)
            .max()
            .unwrap_or(0),
        finished: buckets
            .iter()
            .flatten()
            .fold((0, 0), |(c, f), (bc, bf)| (c + bc, f + bf)),
        chart: rates::chart(&buckets),
        rate5: rates::percent(rates::failure_rate(
            &samples,
            now,
            Duration::from_secs(300),
            &keep,
        )),
        rate15: rates::percent(rates::failure_rate(
            &samples,
            now,
            Duration::from_secs(900),
            &keep,
        )),
        errors,
        notice: notice(done.as_deref()),
    };
    ok(&page)
}

fn join<T: std::fmt::Display>(items: impl Iterator<Item = T>) -> String {
    let all: Vec<String> = items.map(|i| i.to_string()).collect();
    if all.is_empty() {
        "—".into()
    } else {
        all.join(", ")
    }
}

// -------------------------------------------------------------- executions

#[derive(Clone, Debug)]
struct Row {
    id: String,
    href: String,
    kind: String,
    lane: String,
    state: &'static str,
    attempts: String,
    priority: i32,
    created: When,
    changed: When,
    tags: String,
    error: String,
}

#[derive(Clone, Debug)]
struct Check {
    name: &'static str,
    checked: bool,
}

#[derive(Template)]
#[template(path = "executions.html")]
struct Executions {
    chrome: Chrome,
    namespaces: Vec<Choice>,
    lanes: Vec<Choice>,
    states: Vec<Check>,
    kind: String,
    tag: String,
    created_after: String,
    created_before: String,
    finished_after: String,
    finished_before: String,
    parent: String,
    idempotency_key: String,
    more_open: bool,
    limits: Vec<Choice>,
    rows: Vec<Row>,
    next_href: Option<String>,
    first_href: Option<String>,
    bulk_cancel_href: String,
    bulk_replay_href: String,
    error: Option<String>,
}

fn row(s: &ExecutionSnapshot, now: Timestamp) -> Row {
    let error = s
        .last_error
        .as_deref()
        .and_then(|e| e.lines().next())
        .map(|l| l.chars().take(200).collect())
        .unwrap_or_default();
    Row {
        id: s.id.to_string(),
        href: detail_href(&s.id),
        kind: s.kind.to_string(),
        lane: s.lane.to_string(),
        state: s.state.as_str(),
        attempts: format!("{}/{}", s.attempts, s.retry.max_attempts),
        priority: s.priority,
        created: When::of(s.created_at, now),
        changed: When::of(s.finished_at.unwrap_or(s.updated_at), now),
        tags: s
            .tags
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect::<Vec<_>>()
            .join(", "),
        error,
    }
}

/// `GET /ui/executions?<filter>&limit=&cursor=`.
pub(crate) async fn executions(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> UiResult {
    let chrome = Chrome::of(&state, &headers);
    let now = Timestamp::now_system();
    let (all, ns_error) = namespaces(&state).await;
    let parsed = parse_filter(raw.as_deref().unwrap_or(""), now, &["limit", "cursor"]);
    let form = parsed.as_ref().cloned().unwrap_or_default();
    let ns = form.namespace();
    let mut error = ns_error;
    let mut rows = Vec::new();
    let mut next_href = None;
    let mut status = StatusCode::OK;
    let request = parsed.and_then(|f| list_request(&f));
    match request {
        Ok((filter, page)) => {
            state.metrics().saw_namespace(&filter.namespace);
            match state.backend().list(&filter, page).await {
                Ok(out) => {
                    rows = out.items.iter().map(|s| row(s, now)).collect();
                    next_href = out.next_cursor.map(|c| {
                        let q = ListQuery {
                            limit: Some(page.limit.to_string()),
                            cursor: Some(c.to_string()),
                            ..form.query.clone()
                        };
                        format!("/ui/executions?{}", q.to_query_string())
                    });
                }
                Err(e) => {
                    let e = crate::ApiError::from(e);
                    status = e.status;
                    error = Some(e.message);
                }
            }
        }
        Err(e) => {
            let e = crate::ApiError::from(e);
            status = e.status;
            error = Some(e.message);
        }
    }
    let lane_names: Vec<String> = match Namespace::new(ns.as_str()) {
        Ok(n) => state
            .backend()
            .lanes(&n)
            .await
            .map(|l| l.iter().map(|i| i.lane.to_string()).collect())
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let lane = form.typed.get("lane").cloned().unwrap_or_default();
    let mut lanes = vec![Choice {
        value: String::new(),
        label: "any".into(),
        selected: lane.is_empty(),
    }];
    lanes.extend(choices(&lane_names, &lane));
    if !lane.is_empty() && !lane_names.contains(&lane) {
        lanes.push(Choice {
            value: lane.clone(),
            label: lane.clone(),
            selected: true,
        });
    }
    let limit = form
        .extra
        .get("limit")
        .cloned()
        .unwrap_or_else(|| DEFAULT_LIMIT.to_string());
    let mut limits: Vec<Choice> = ["5", "20", "50", "100", "200"]
        .iter()
        .map(|l| Choice {
            value: (*l).into(),
            label: (*l).into(),
            selected: *l == limit,
        })
        .collect();
    if !limits.iter().any(|c| c.selected) {
        limits.push(Choice {
            value: limit.clone(),
            label: limit,
            selected: true,
        });
    }
    let typed = |k: &str| form.typed.get(k).cloned().unwrap_or_default();
    let filter = form.filter_string();
    let mut all = all;
    if !all.contains(&ns) {
        all.push(ns.clone());
    }
    let page = Executions {
        chrome,
        namespaces: choices(&all, &ns),
        lanes,
        states: ExecState::ALL
            .iter()
            .map(|s| Check {
                name: s.as_str(),
                checked: form.states.contains(s),
            })
            .collect(),
        kind: typed("kind"),
        tag: typed("tag"),
        created_after: typed("created_after"),
        created_before: typed("created_before"),
        finished_after: typed("finished_after"),
        finished_before: typed("finished_before"),
        parent: typed("parent"),
        idempotency_key: typed("idempotency_key"),
        more_open: [
            "created_before",
            "finished_after",
            "finished_before",
            "parent",
            "idempotency_key",
        ]
        .iter()
        .any(|k| form.typed.contains_key(*k)),
        limits,
        rows,
        next_href,
        first_href: form
            .extra
            .contains_key("cursor")
            .then(|| format!("/ui/executions?{filter}")),
        bulk_cancel_href: format!("/ui/bulk/cancel?{filter}"),
        bulk_replay_href: format!("/ui/bulk/replay?{filter}"),
        error,
    };
    Ok(html(status, &page))
}

// --------------------------------------------------------------- execution

#[derive(Clone, Debug)]
struct Field {
    name: &'static str,
    value: String,
}

#[derive(Clone, Debug)]
struct AttemptRow {
    number: u32,
    worker: String,
    started: When,
    ended: Option<When>,
    outcome: String,
    error: String,
    /// Bar length in tenths of the longest attempt (CSS classes `w0`…`w10`).
    width: u32,
}

#[derive(Clone, Debug)]
struct EventRow {
    seq: u64,
    at: When,
    event: &'static str,
    change: String,
    attempt: u32,
    worker: String,
    detail: String,
}

#[derive(Clone, Debug)]
struct StepRow {
    name: String,
    status: &'static str,
    output: Option<Shown>,
    error: String,
    attempt: u32,
    at: When,
}

#[derive(Clone, Debug)]
struct KeyRow {
    key: String,
    value: Shown,
    at: When,
}

#[derive(Clone, Debug)]
struct SignalRow {
    seq: u32,
    name: String,
    payload: Shown,
    at: When,
    consumed: String,
}

#[derive(Clone, Debug)]
struct FrameRow {
    seq: u64,
    at: When,
    frame: Shown,
}

#[derive(Clone, Debug)]
struct TreeRow {
    id: String,
    href: String,
    kind: String,
    state: &'static str,
    depth: usize,
    current: bool,
}

#[derive(Clone, Debug)]
struct ActionLink {
    name: &'static str,
    label: &'static str,
    href: String,
}

#[derive(Template)]
#[template(path = "execution.html")]
struct Execution {
    chrome: Chrome,
    id: String,
    kind: String,
    state: &'static str,
    terminal: bool,
    notice: Option<&'static str>,
    fields: Vec<Field>,
    explain_reason: String,
    explain: String,
    payload: Shown,
    result: Option<Shown>,
    error: Option<String>,
    custom_status: Option<Shown>,
    status_version: u64,
    attempts: Vec<AttemptRow>,
    frames: Vec<FrameRow>,
    steps: Vec<StepRow>,
    entries: Vec<KeyRow>,
    signals: Vec<SignalRow>,
    events: Vec<EventRow>,
    events_note: Option<String>,
    older_href: Option<String>,
    newer_href: Option<String>,
    tree: Vec<TreeRow>,
    tree_truncated: bool,
    actions: Vec<ActionLink>,
    problems: Vec<String>,
    list_href: String,
}

/// Which actions an execution in `state` takes, in button order.
pub(crate) fn actions_for(state: ExecState) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    if !state.is_terminal() {
        out.push(("cancel", "Cancel…"));
    }
    if matches!(
        state,
        ExecState::Failed | ExecState::Cancelled | ExecState::Expired | ExecState::Skipped
    ) {
        out.push(("replay", "Replay…"));
    }
    if !state.is_terminal() && state != ExecState::Paused {
        out.push(("pause", "Pause…"));
    }
    if state == ExecState::Paused {
        out.push(("resume", "Resume…"));
    }
    out
}

/// The members of `tree` in depth-first order with their depth.
fn tree_rows(tree: &Tree, current: &ExecutionId) -> Vec<TreeRow> {
    let mut children: BTreeMap<Option<&ExecutionId>, Vec<usize>> = BTreeMap::new();
    let ids: BTreeSet<&ExecutionId> = tree.items.iter().map(|n| &n.id).collect();
    for (i, node) in tree.items.iter().enumerate() {
        // A member whose parent is not in the answer (trimmed, or beyond
        // the limit) is shown at the top level.
        let parent = node.parent.as_ref().filter(|p| ids.contains(p));
        children.entry(parent).or_default().push(i);
    }
    let mut out = Vec::new();
    let mut stack: Vec<(usize, usize)> = children
        .get(&None)
        .map(|v| v.iter().rev().map(|&i| (i, 0)).collect())
        .unwrap_or_default();
    while let Some((i, depth)) = stack.pop() {
        let node = &tree.items[i];
        out.push(TreeRow {
            id: node.id.to_string(),
            href: detail_href(&node.id),
            kind: node.kind.to_string(),
            state: node.state.as_str(),
            depth: depth.min(8),
            current: &node.id == current,
        });
        if let Some(kids) = children.get(&Some(&node.id)) {
            stack.extend(kids.iter().rev().map(|&k| (k, depth + 1)));
        }
    }
    out
}

/// The unfinished descendants of `id` in `tree`.
pub(crate) fn unfinished_descendants(tree: &Tree, id: &ExecutionId) -> usize {
    let mut inside: BTreeSet<&ExecutionId> = BTreeSet::from([id]);
    let mut count = 0;
    // Items come parents first, so one pass finds every descendant.
    for node in &tree.items {
        if let Some(p) = &node.parent
            && inside.contains(p)
        {
            inside.insert(&node.id);
            if !node.state.is_terminal() {
                count += 1;
            }
        }
    }
    count
}

/// Parses an `{id}` path segment for a page.
pub(crate) fn parse_id(text: &str, forget: bool) -> Result<ExecutionId, UiError> {
    text.parse::<ExecutionId>()
        .map_err(|e| UiError::new(e, forget))
}

/// `GET /ui/executions/{id}[?events_after=&done=]`.
pub(crate) async fn execution(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> UiResult {
    let chrome = Chrome::of(&state, &headers);
    let forget = chrome.forget;
    let id = parse_id(&id, forget)?;
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(raw.as_deref().unwrap_or("")).unwrap_or_default();
    let mut after = 0u64;
    let mut done = None;
    for (k, v) in pairs {
        match k.as_str() {
            "events_after" => {
                after = v.parse().map_err(|_| {
                    UiError::new(
                        EngineError::invalid("events_after", v, "a whole number"),
                        forget,
                    )
                })?
            }
            "done" => done = Some(v),
            _ => {}
        }
    }
    let backend = state.backend();
    let snap = backend
        .describe(&id)
        .await
        .map_err(|e| UiError::new(e, forget))?;
    let now = Timestamp::now_system();
    let (explained, attempts, events, steps, entries, signals, frames, children) = tokio::join!(
        backend.explain(&id),
        backend.attempts(&id),
        backend.events(&id, after, 100),
        backend.steps(&id),
        backend.state(&id),
        backend.signals(&id),
        backend.progress(&id, snap.progress_seq.saturating_sub(20), 20),
        backend.children(&id, Page::first(1)),
    );
    let mut problems = Vec::new();
    let mut note = |what: &str, e: &EngineError| problems.push(format!("{what}: {e}"));
    let (explain_reason, explain) = match &explained {
        Ok(e) => (e.reason.unwrap_or("finished").to_owned(), e.detail.clone()),
        Err(e) => {
            note("explain", e);
            (String::new(), String::new())
        }
    };
    let attempts = attempts.unwrap_or_else(|e| {
        note("attempts", &e);
        Vec::new()
    });
    let longest = attempts
        .iter()
        .map(|a| a.ended_at.unwrap_or(now).duration_since(a.started_at))
        .max()
        .unwrap_or_default()
        .max(Duration::from_millis(1));
    let attempts: Vec<AttemptRow> = attempts
        .iter()
        .map(|a| {
            let took = a.ended_at.unwrap_or(now).duration_since(a.started_at);
            AttemptRow {
                number: a.number,
                worker: a.worker_id.to_string(),
                started: When::of(a.started_at, now),
                ended: When::maybe(a.ended_at, now),
                outcome: a
                    .outcome
                    .map(|o| o.as_str().to_owned())
                    .unwrap_or_else(|| "running".into()),
                error: a.error.clone().unwrap_or_default(),
                width: ((took.as_millis() * 10 / longest.as_millis()) as u32).clamp(1, 10),
            }
        })
        .collect();
    let events = events.unwrap_or_else(|e| {
        note("events", &e);
        Vec::new()
    });
    let mut events_note = None;
    if events.is_empty() && after == 0 {
        events_note = Some(match backend.history_enabled(&snap.namespace).await {
            Ok(false) => "History is off for this namespace (`baton history on`).".into(),
            _ => "No events recorded.".into(),
        });
    }
    let base = detail_href(&id);
    let newer_href = (events.len() == 100)
        .then(|| {
            events
                .last()
                .map(|e| format!("{base}?events_after={}", e.seq))
        })
        .flatten();
    let older_href =
        (after > 0).then(|| format!("{base}?events_after={}", after.saturating_sub(100)));
    let events = events
        .iter()
        .map(|e| EventRow {
            seq: e.seq,
            at: When::of(e.at, now),
            event: e.event.as_str(),
            change: match (e.from, e.to) {
                (Some(f), Some(t)) => format!("{f} → {t}"),
                (None, Some(t)) => format!("→ {t}"),
                _ => String::new(),
            },
            attempt: e.attempt,
            worker: e.worker.as_ref().map(|w| w.to_string()).unwrap_or_default(),
            detail: e.detail.clone().unwrap_or_default(),
        })
        .collect();
    let steps = steps
        .unwrap_or_else(|e| {
            note("steps", &e);
            Vec::new()
        })
        .iter()
        .map(|s| StepRow {
            name: s.name.to_string(),
            status: s.status.as_str(),
            output: s.output.as_deref().map(pretty),
            error: s.error.clone().unwrap_or_default(),
            attempt: s.attempt,
            at: When::of(s.recorded_at, now),
        })
        .collect();
    let entries = entries
        .unwrap_or_else(|e| {
            note("state", &e);
            Vec::new()
        })
        .iter()
        .map(|s| KeyRow {
            key: s.key.to_string(),
            value: pretty(&s.value),
            at: When::of(s.updated_at, now),
        })
        .collect();
    let signals = signals
        .unwrap_or_else(|e| {
            note("signals", &e);
            Vec::new()
        })
        .iter()
        .map(|s| SignalRow {
            seq: s.seq,
            name: s.name.to_string(),
            payload: pretty(&s.payload),
            at: When::of(s.received_at, now),
            consumed: match s.wait {
                Some(w) => format!("wait {w}"),
                None => "buffered".into(),
            },
        })
        .collect();
    let frames = frames
        .unwrap_or_else(|e| {
            note("progress", &e);
            Vec::new()
        })
        .iter()
        .map(|f| FrameRow {
            seq: f.seq,
            at: When::of(f.at, now),
            frame: pretty(&f.frame),
        })
        .collect();
    let has_children = children.map(|c| !c.items.is_empty()).unwrap_or(false);
    let in_flow = snap.parent.is_some() || snap.root != snap.id || has_children;
    let (tree, tree_truncated) = if in_flow {
        match backend.tree(&id, 500).await {
            Ok(t) => (tree_rows(&t, &id), t.truncated),
            Err(e) => {
                note("tree", &e);
                (Vec::new(), false)
            }
        }
    } else {
        (Vec::new(), false)
    };
    let fields = fields(&snap, now);
    let page = Execution {
        chrome,
        id: snap.id.to_string(),
        kind: snap.kind.to_string(),
        state: snap.state.as_str(),
        terminal: snap.state.is_terminal(),
        notice: notice(done.as_deref()),
        fields,
        explain_reason,
        explain,
        payload: pretty(&snap.payload),
        result: snap.result.as_deref().map(pretty),
        error: snap.last_error.clone(),
        custom_status: snap.custom_status.as_deref().map(pretty),
        status_version: snap.status_version,
        attempts,
        frames,
        steps,
        entries,
        signals,
        events,
        events_note,
        older_href,
        newer_href,
        tree,
        tree_truncated,
        actions: actions_for(snap.state)
            .into_iter()
            .map(|(name, label)| ActionLink {
                name,
                label,
                href: format!("{base}/{name}"),
            })
            .collect(),
        problems,
        list_href: format!(
            "/ui/executions?namespace={}&lane={}",
            encode_component(snap.namespace.as_str()),
            encode_component(snap.lane.as_str())
        ),
    };
    ok(&page)
}

/// The header fields of the detail page: those the execution has.
fn fields(s: &ExecutionSnapshot, now: Timestamp) -> Vec<Field> {
    let mut out = Vec::new();
    let mut add = |name: &'static str, value: Option<String>| {
        if let Some(value) = value {
            out.push(Field { name, value });
        }
    };
    let at = |t: Timestamp| {
        let w = When::of(t, now);
        format!("{} ({})", w.iso, w.rel)
    };
    add("namespace", Some(s.namespace.to_string()));
    add("lane", Some(s.lane.to_string()));
    add("priority", Some(s.priority.to_string()));
    add(
        "attempts",
        Some(format!("{} of {}", s.attempts, s.retry.max_attempts)),
    );
    if !s.tags.is_empty() {
        add(
            "tags",
            Some(
                s.tags
                    .iter()
                    .map(|(k, v)| format!("{k}:{v}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        );
    }
    add("created", Some(at(s.created_at)));
    add("updated", Some(at(s.updated_at)));
    add("run at", s.run_at.map(at));
    add("deadline", s.deadline.map(at));
    add("finished", s.finished_at.map(at));
    add("worker", s.worker_id.as_ref().map(|w| w.to_string()));
    add("lease expires", s.lease_expires_at.map(at));
    add(
        "idempotency key",
        s.idempotency_key.as_ref().map(|k| k.to_string()),
    );
    add("session", s.session.as_ref().map(|k| k.to_string()));
    add("version", s.version.as_ref().map(|k| k.to_string()));
    if !s.required_capabilities.is_empty() {
        add("capabilities", Some(join(s.required_capabilities.iter())));
    }
    add("parent", s.parent.as_ref().map(|p| p.to_string()));
    add("child key", s.child_key.as_ref().map(|k| k.to_string()));
    if s.root != s.id {
        add("root", Some(s.root.to_string()));
    }
    add("cancel reason", s.cancel_reason.clone());
    if let Some(why) = s.wait_reason() {
        add(
            "waiting on",
            Some(format!("{}: {}", why.reason, why.detail)),
        );
    }
    out
}
