//! Actions, always in two steps: a GET shows what will happen (a read that
//! changes nothing) and a POST does it, then redirects (POST/Redirect/GET,
//! so a reload never repeats it). The POSTs call the same functions as the
//! API's routes (`cancel_one`, `replay_one`, `pause_one`, `resume_one`,
//! `lane_one`, `bulk_as`), so the two cannot drift; each leaves an audit
//! line with actor `ui`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use baton_api::{BulkBody, BulkFilterBody, ListQuery, encode_component};
use baton_core::{
    BulkAction, CancelRequest, CancelScope, EngineError, ExecutionId, Lane, Namespace, Page,
    Timestamp,
};

use super::pages::{FilterForm, detail_href, parse_filter, parse_id, unfinished_descendants};
use super::{Chrome, UiError, UiResult, html, ok};
use crate::AppState;
use crate::error::ApiError;

/// Who the dashboard's actions are recorded as.
const ACTOR: &str = "ui";

/// The reason a cancel from the dashboard stores unless one is typed.
const DEFAULT_REASON: &str = "cancelled from the dashboard";

/// Most dry-run calls, and longest time, spent counting a bulk action.
const DRY_RUN_CALLS: usize = 10;
const DRY_RUN_TIME: Duration = Duration::from_secs(2);

/// Longest time one bulk POST acts before offering "Continue".
const RUN_TIME: Duration = Duration::from_secs(5);

/// Executions one bulk call reaches.
const BULK_LIMIT: usize = Page::MAX_LIMIT;

#[derive(Template)]
#[template(path = "confirm.html")]
struct Confirm {
    chrome: Chrome,
    title: String,
    lines: Vec<String>,
    state: String,
    error: Option<String>,
    post_href: String,
    back_href: String,
    hidden: Vec<(String, String)>,
    reason: Option<String>,
    scope: Option<&'static str>,
    submit: &'static str,
}

/// The action an `{action}` segment names, for one execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum One {
    Cancel,
    Replay,
    Pause,
    Resume,
}

impl One {
    fn parse(text: &str, forget: bool) -> Result<Self, UiError> {
        Ok(match text {
            "cancel" => One::Cancel,
            "replay" => One::Replay,
            "pause" => One::Pause,
            "resume" => One::Resume,
            _ => return Err(not_found(forget)),
        })
    }

    fn name(self) -> &'static str {
        match self {
            One::Cancel => "cancel",
            One::Replay => "replay",
            One::Pause => "pause",
            One::Resume => "resume",
        }
    }

    fn done(self) -> &'static str {
        match self {
            One::Cancel => "cancelled",
            One::Replay => "replayed",
            One::Pause => "paused",
            One::Resume => "resumed",
        }
    }
}

fn not_found(forget: bool) -> UiError {
    UiError::new(
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such dashboard page"),
        forget,
    )
}

/// The fields of a posted form (the body read whole before routing).
fn form_fields(body: &[u8], forget: bool) -> Result<BTreeMap<String, String>, UiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).map_err(|e| {
        UiError::new(
            EngineError::invalid("form", "", format!("the form body is malformed: {e}")),
            forget,
        )
    })?;
    Ok(pairs.into_iter().collect())
}

fn scope_of(text: Option<&String>, forget: bool) -> Result<CancelScope, UiError> {
    match text.map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => Ok(CancelScope::Tree),
        Some(s) => s.parse().map_err(|e| UiError::new(e, forget)),
    }
}

/// The confirmation page of `action` on `id`, with `error` when a POST was
/// refused.
async fn one_page(
    state: &AppState,
    chrome: Chrome,
    id: &ExecutionId,
    action: One,
    error: Option<String>,
) -> Result<Confirm, UiError> {
    let forget = chrome.forget;
    let snap = state
        .backend()
        .describe(id)
        .await
        .map_err(|e| UiError::new(e, forget))?;
    let mut lines = vec![format!("{} {} ({})", snap.kind, snap.id, snap.lane)];
    if let Some(w) = &snap.worker_id {
        lines.push(format!("Running on worker {w}."));
    }
    let descendants = match action {
        One::Cancel | One::Pause | One::Resume => match state.backend().tree(id, 500).await {
            Ok(tree) => {
                let n = unfinished_descendants(&tree, id);
                let plus = if tree.truncated { "+" } else { "" };
                (n > 0).then(|| format!("{n}{plus}"))
            }
            Err(_) => None,
        },
        One::Replay => None,
    };
    let what = match action {
        One::Cancel => "Cancel it: it never runs again, and a worker running it loses its lease.",
        One::Replay => "Replay it: it waits again for a worker, with its attempts counted anew.",
        One::Pause => {
            "Pause it: claims pass it over until it is resumed; a running attempt goes on."
        }
        One::Resume => "Resume it: it returns to the state it left.",
    };
    lines.push(what.to_owned());
    if let Some(n) = &descendants {
        lines.push(format!(
            "In a flow: scope \"tree\" also reaches its {n} unfinished descendants."
        ));
    }
    let title = format!(
        "{} {}",
        match action {
            One::Cancel => "Cancel",
            One::Replay => "Replay",
            One::Pause => "Pause",
            One::Resume => "Resume",
        },
        snap.kind
    );
    let base = detail_href(id);
    Ok(Confirm {
        chrome,
        title,
        lines,
        state: snap.state.to_string(),
        error,
        post_href: format!("{base}/{}", action.name()),
        back_href: base,
        hidden: Vec::new(),
        reason: (action == One::Cancel).then(|| DEFAULT_REASON.to_owned()),
        scope: (action != One::Replay).then_some("tree"),
        submit: match action {
            One::Cancel => "Cancel execution",
            One::Replay => "Replay execution",
            One::Pause => "Pause execution",
            One::Resume => "Resume execution",
        },
    })
}

/// `GET /ui/executions/{id}/{action}`: the confirmation page.
pub(crate) async fn confirm_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
) -> UiResult {
    let chrome = Chrome::of(&state, &headers);
    let forget = chrome.forget;
    let action = One::parse(&action, forget)?;
    let id = parse_id(&id, forget)?;
    ok(&one_page(&state, chrome, &id, action, None).await?)
}

/// `POST /ui/executions/{id}/{action}`: acts, then `303` to the detail
/// page with `done=`; a conflict (the state changed since the confirmation)
/// shows the confirmation again with the API's message.
pub(crate) async fn act_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> UiResult {
    let chrome = Chrome::of(&state, &headers);
    let forget = chrome.forget;
    let action = One::parse(&action, forget)?;
    let id = parse_id(&id, forget)?;
    let fields = form_fields(&body, forget)?;
    let scope = scope_of(fields.get("scope"), forget)?;
    let done = match action {
        One::Cancel => {
            let reason = fields
                .get("reason")
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| DEFAULT_REASON.to_owned());
            let request = CancelRequest::because(reason).with_scope(scope);
            crate::flows::cancel_one(&state, &id, request, ACTOR)
                .await
                .map(|_| ())
        }
        One::Replay => crate::control::replay_one(&state, &id, ACTOR)
            .await
            .map(|_| ()),
        One::Pause => crate::control::pause_one(&state, &id, scope, ACTOR)
            .await
            .map(|_| ()),
        One::Resume => crate::control::resume_one(&state, &id, scope, ACTOR)
            .await
            .map(|_| ()),
    };
    match done {
        Ok(()) => Ok(
            Redirect::to(&format!("{}?done={}", detail_href(&id), action.done())).into_response(),
        ),
        Err(e) if e.status == StatusCode::CONFLICT => {
            let page = one_page(&state, chrome, &id, action, Some(e.message)).await?;
            Ok(html(StatusCode::CONFLICT, &page))
        }
        Err(e) => Err(UiError::new(e, forget)),
    }
}

/// Reads a lane page's `{lane}`, `{action}` and namespace.
fn lane_parts(
    lane: &str,
    action: &str,
    namespace: Option<&String>,
    forget: bool,
) -> Result<(Lane, bool, Namespace), UiError> {
    let pause = match action {
        "pause" => true,
        "resume" => false,
        _ => return Err(not_found(forget)),
    };
    let lane = Lane::new(lane).map_err(|e| UiError::new(e, forget))?;
    let ns = Namespace::new(
        namespace
            .map(|n| n.trim())
            .filter(|n| !n.is_empty())
            .unwrap_or("default"),
    )
    .map_err(|e| UiError::new(e, forget))?;
    Ok((lane, pause, ns))
}

async fn lane_page(
    state: &AppState,
    chrome: Chrome,
    lane: &Lane,
    pause: bool,
    ns: &Namespace,
    error: Option<String>,
) -> Result<Confirm, UiError> {
    let forget = chrome.forget;
    let lanes = state
        .backend()
        .lanes(ns)
        .await
        .map_err(|e| UiError::new(e, forget))?;
    let info = lanes.iter().find(|l| &l.lane == lane);
    let waiting = info.map_or(0, |l| l.counts.waiting);
    let running = info.map_or(0, |l| l.counts.running);
    let paused = info.is_some_and(|l| l.paused_at.is_some());
    let lines = vec![
        format!("Lane {lane} of namespace {ns}."),
        if pause {
            format!(
                "Claims stop taking its {waiting} waiting executions; its {running} running ones go on."
            )
        } else {
            format!("Claims take its {waiting} waiting executions again.")
        },
    ];
    let action = if pause { "pause" } else { "resume" };
    Ok(Confirm {
        chrome,
        title: format!("{} lane {lane}", if pause { "Pause" } else { "Resume" }),
        lines,
        state: if paused { "paused" } else { "active" }.into(),
        error,
        post_href: format!("/ui/lanes/{}/{action}", encode_component(lane.as_str())),
        back_href: format!("/ui?namespace={}", encode_component(ns.as_str())),
        hidden: vec![("namespace".into(), ns.to_string())],
        reason: None,
        scope: None,
        submit: if pause { "Pause lane" } else { "Resume lane" },
    })
}

/// `GET /ui/lanes/{lane}/{pause|resume}?namespace=`: the confirmation.
pub(crate) async fn confirm_lane(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((lane, action)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> UiResult {
    let chrome = Chrome::of(&state, &headers);
    let forget = chrome.forget;
    let query: BTreeMap<String, String> =
        serde_urlencoded::from_str::<Vec<(String, String)>>(raw.as_deref().unwrap_or(""))
            .unwrap_or_default()
            .into_iter()
            .collect();
    let (lane, pause, ns) = lane_parts(&lane, &action, query.get("namespace"), forget)?;
    ok(&lane_page(&state, chrome, &lane, pause, &ns, None).await?)
}

/// `POST /ui/lanes/{lane}/{pause|resume}`: acts, then `303` to the
/// overview of its namespace.
pub(crate) async fn act_lane(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((lane, action)): Path<(String, String)>,
    body: Bytes,
) -> UiResult {
    let chrome = Chrome::of(&state, &headers);
    let forget = chrome.forget;
    let fields = form_fields(&body, forget)?;
    let (lane, pause, ns) = lane_parts(&lane, &action, fields.get("namespace"), forget)?;
    match crate::control::lane_one(&state, &ns, &lane, pause, ACTOR).await {
        Ok(_) => Ok(Redirect::to(&format!(
            "/ui?namespace={}&done={}",
            encode_component(ns.as_str()),
            if pause { "lane_paused" } else { "lane_resumed" }
        ))
        .into_response()),
        Err(e) if e.status == StatusCode::CONFLICT => {
            let page = lane_page(&state, chrome, &lane, pause, &ns, Some(e.message)).await?;
            Ok(html(StatusCode::CONFLICT, &page))
        }
        Err(e) => Err(UiError::new(e, forget)),
    }
}

// -------------------------------------------------------------------- bulk

#[derive(Clone, Debug, Default)]
struct Tally {
    matched: u64,
    changed: u64,
    skipped: u64,
    reasons: Vec<(String, u64)>,
    more: bool,
}

impl Tally {
    fn add(&mut self, report: &baton_core::BulkReport, grouped: &mut BTreeMap<String, u64>) {
        self.matched += report.matched;
        self.changed += report.changed;
        // A dry run names no skipped ids for what it would refuse: what it
        // would not change is skipped.
        self.skipped +=
            (report.skipped.len() as u64).max(report.matched - report.changed.min(report.matched));
        for (_, why) in &report.skipped {
            *grouped.entry(why.clone()).or_default() += 1;
        }
    }
}

#[derive(Template)]
#[template(path = "bulk.html")]
struct Bulk {
    chrome: Chrome,
    action: &'static str,
    title: String,
    summary: String,
    error: Option<String>,
    needs_all: bool,
    dry: Option<Tally>,
    ids: Vec<(String, String)>,
    hidden: Vec<(String, String)>,
    reason: Option<String>,
    scope: &'static str,
    result: Option<Tally>,
    cursor: Option<String>,
    back_href: String,
}

/// The action a bulk page's `{action}` names.
fn bulk_action(text: &str, forget: bool) -> Result<(&'static str, BulkAction), UiError> {
    match text {
        "cancel" => Ok(("cancel", BulkAction::Cancel(CancelRequest::default()))),
        "replay" => Ok(("replay", BulkAction::Replay)),
        _ => Err(not_found(forget)),
    }
}

/// The filter's fields as `(name, value)` pairs, for hidden inputs.
fn filter_pairs(q: &ListQuery) -> Vec<(String, String)> {
    let fields = [
        ("namespace", &q.namespace),
        ("lane", &q.lane),
        ("state", &q.state),
        ("kind", &q.kind),
        ("tag", &q.tag),
        ("tag_key", &q.tag_key),
        ("tag_value", &q.tag_value),
        ("parent", &q.parent),
        ("created_after", &q.created_after),
        ("created_before", &q.created_before),
        ("finished_after", &q.finished_after),
        ("finished_before", &q.finished_before),
        ("idempotency_key", &q.idempotency_key),
    ];
    fields
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| ((*k).to_owned(), v.clone())))
        .collect()
}

fn truthy(v: Option<&String>) -> bool {
    v.is_some_and(|v| matches!(v.as_str(), "on" | "true" | "1" | "yes"))
}

/// The bulk request a form asks for, through the API's own
/// `BulkBody::into_request` (so a filter that narrows nothing needs `all`).
fn bulk_request(
    form: &FilterForm,
    action: BulkAction,
    dry_run: bool,
    cursor: Option<String>,
) -> Result<baton_core::BulkRequest, EngineError> {
    let q = &form.query;
    let cancel = matches!(action, BulkAction::Cancel(_));
    let scope = match form.extra.get("scope") {
        Some(s) if cancel => Some(s.parse::<CancelScope>()?),
        _ => None,
    };
    let body = BulkBody {
        filter: BulkFilterBody {
            namespace: q.namespace.clone(),
            lane: q.lane.clone(),
            state: q.state.clone(),
            kind: q.kind.clone(),
            tag: q.tag.clone(),
            tag_key: q.tag_key.clone(),
            tag_value: q.tag_value.clone(),
            parent: q.parent.clone(),
            created_after: q.created_after.clone(),
            created_before: q.created_before.clone(),
            finished_after: q.finished_after.clone(),
            finished_before: q.finished_before.clone(),
            idempotency_key: q.idempotency_key.clone(),
            ids: Vec::new(),
        },
        limit: Some(BULK_LIMIT),
        dry_run,
        cursor,
        reason: if cancel {
            Some(
                form.extra
                    .get("reason")
                    .cloned()
                    .unwrap_or_else(|| DEFAULT_REASON.to_owned()),
            )
        } else {
            None
        },
        scope,
        force: false,
        all: truthy(form.extra.get("all")),
    };
    let mut request = body.into_request(action)?;
    request.actor = Some(ACTOR.to_owned());
    Ok(request)
}

fn grouped(reasons: BTreeMap<String, u64>) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = reasons.into_iter().collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out.truncate(20);
    out
}

fn empty_bulk(chrome: Chrome, name: &'static str, form: &FilterForm) -> Bulk {
    let mut hidden = filter_pairs(&form.query);
    if truthy(form.extra.get("all")) {
        hidden.push(("all".into(), "on".into()));
    }
    Bulk {
        chrome,
        action: name,
        title: format!(
            "{} matching executions",
            if name == "cancel" { "Cancel" } else { "Replay" }
        ),
        summary: String::new(),
        error: None,
        needs_all: false,
        dry: None,
        ids: Vec::new(),
        hidden,
        reason: (name == "cancel").then(|| {
            form.extra
                .get("reason")
                .cloned()
                .unwrap_or_else(|| DEFAULT_REASON.to_owned())
        }),
        scope: if form.extra.get("scope").map(String::as_str) == Some("execution") {
            "execution"
        } else {
            "tree"
        },
        result: None,
        cursor: None,
        back_href: format!("/ui/executions?{}", form.filter_string()),
    }
}

/// `GET /ui/bulk/{cancel|replay}?<filter>[&all=on]`: a dry run along the
/// filter (at most 10 calls or 2 s), the counts, the first ids, and the
/// confirmation form.
pub(crate) async fn confirm_bulk(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(action): Path<String>,
    RawQuery(raw): RawQuery,
) -> UiResult {
    let chrome = Chrome::of(&state, &headers);
    let forget = chrome.forget;
    let (name, action) = bulk_action(&action, forget)?;
    let now = Timestamp::now_system();
    let form = parse_filter(
        raw.as_deref().unwrap_or(""),
        now,
        &["all", "reason", "scope"],
    )
    .map_err(|e| UiError::new(e, forget))?;
    let mut page = empty_bulk(chrome, name, &form);
    let request = match bulk_request(&form, action, true, None) {
        Ok(r) => r,
        Err(e) => {
            page.needs_all = matches!(
                &e,
                EngineError::InvalidInput {
                    field: "filter",
                    ..
                }
            );
            page.error = Some(ApiError::from(e).message);
            return Ok(html(StatusCode::BAD_REQUEST, &page));
        }
    };
    page.summary = request.filter.summary();
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut reasons = BTreeMap::new();
    let mut next = request;
    let mut more = false;
    for _ in 0..DRY_RUN_CALLS {
        let report = match crate::executions::bulk_as(&state, next.clone()).await {
            Ok(r) => r,
            Err(e) => {
                page.error = Some(e.message);
                break;
            }
        };
        tally.add(&report, &mut reasons);
        match report.next_cursor {
            None => {
                more = false;
                break;
            }
            Some(c) => {
                more = true;
                next.cursor = Some(c);
                if started.elapsed() >= DRY_RUN_TIME {
                    break;
                }
            }
        }
    }
    tally.more = more;
    tally.reasons = grouped(reasons);
    if let Ok(first) = state.backend().list(&next.filter, Page::first(20)).await {
        page.ids = first
            .items
            .iter()
            .map(|s| (detail_href(&s.id), s.id.to_string()))
            .collect();
    }
    page.dry = Some(tally);
    ok(&page)
}

/// `POST /ui/bulk/{cancel|replay}`: acts along the filter for at most 5 s;
/// offers "Continue" (the cursor as a hidden field) when work is left.
pub(crate) async fn act_bulk(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(action): Path<String>,
    body: Bytes,
) -> UiResult {
    let chrome = Chrome::of(&state, &headers);
    let forget = chrome.forget;
    let (name, action) = bulk_action(&action, forget)?;
    let text = std::str::from_utf8(&body).map_err(|_| {
        UiError::new(
            EngineError::invalid("form", "", "the form body is not UTF-8"),
            forget,
        )
    })?;
    let form = parse_filter(
        text,
        Timestamp::now_system(),
        &["all", "reason", "scope", "cursor"],
    )
    .map_err(|e| UiError::new(e, forget))?;
    let cursor = form.extra.get("cursor").cloned();
    let mut request =
        bulk_request(&form, action, false, cursor).map_err(|e| UiError::new(e, forget))?;
    let mut page = empty_bulk(chrome, name, &form);
    page.summary = request.filter.summary();
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut reasons = BTreeMap::new();
    loop {
        let report = match crate::executions::bulk_as(&state, request.clone()).await {
            Ok(r) => r,
            Err(e) => {
                page.error = Some(e.message);
                page.cursor = request.cursor.map(|c| c.to_string());
                break;
            }
        };
        tally.add(&report, &mut reasons);
        match report.next_cursor {
            Some(c) if started.elapsed() < RUN_TIME => request.cursor = Some(c),
            Some(c) => {
                tally.more = true;
                page.cursor = Some(c.to_string());
                break;
            }
            None => break,
        }
    }
    tally.reasons = grouped(reasons);
    page.result = Some(tally);
    ok(&page)
}
