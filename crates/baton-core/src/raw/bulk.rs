//! Bulk operations, written once over [`AdminBackend`]: the list walk of
//! the filter, and per matched execution the same call an operator makes
//! one at a time (`cancel`, `replay`), each its own transaction / `FCALL`;
//! deletes share units per partition ([`super::delete::many`] over a page).
//! A call is bounded by its limit (at most 1,000 executions, a page of the
//! list at a time) and resumable by its cursor; it is not atomic across
//! executions, and every matched execution is either changed or reported.

use crate::AdminBackend;
use crate::error::{EngineError, Result};
use crate::id::ExecutionId;
use crate::model::{BulkAction, BulkReport, BulkRequest, ExecutionSnapshot, Page};
use crate::state::State;

/// Whether `action` would change an execution in `state` (the preview of
/// a dry run).
pub fn bulk_would_change(action: &BulkAction, state: State) -> bool {
    match action {
        BulkAction::Cancel(_) => !state.is_terminal(),
        BulkAction::Replay => matches!(
            state,
            State::Failed | State::Cancelled | State::Expired | State::Skipped
        ),
        BulkAction::Delete { force } => *force || state.is_terminal(),
    }
}

/// Runs one bulk call on `b` (see [`AdminBackend::bulk`]).
pub async fn run<B: AdminBackend + ?Sized>(b: &B, request: BulkRequest) -> Result<BulkReport> {
    request.validate()?;
    let mut changed = Vec::new();
    let mut report = walk(b, &request, &mut changed).await?;
    if !changed.is_empty() {
        let detail = super::rules::audit_detail(
            request.action.name(),
            request.actor.as_deref(),
            &request.filter,
            report.matched,
            report.changed,
            report.skipped.len(),
        );
        // The changes are committed: an audit that fails is reported
        // beside them, never in their place.
        if let Err(e) = b.audit(&changed, &detail).await {
            report.audit_error = Some(e.to_string());
        }
    }
    Ok(report)
}

/// The walk of one bulk call; `changed` collects the executions it
/// changed that still exist (for their audit event).
async fn walk<B: AdminBackend + ?Sized>(
    b: &B,
    request: &BulkRequest,
    changed: &mut Vec<ExecutionId>,
) -> Result<BulkReport> {
    let mut report = BulkReport::default();
    if !request.ids.is_empty() {
        // Each id once, in the order given; every one is either acted on
        // or reported.
        let mut ids = request.ids.clone();
        let mut seen = std::collections::HashSet::new();
        ids.retain(|id| seen.insert(id.clone()));
        let found = b.describe_many(&ids).await?;
        let mut matched = Vec::new();
        for (id, snap) in ids.iter().zip(found) {
            match snap {
                Some(snap) if request.filter.matches(&snap) => matched.push(snap),
                Some(_) => report
                    .skipped
                    .push((id.clone(), "it does not match the filter".into())),
                None => report
                    .skipped
                    .push((id.clone(), "no such execution".into())),
            }
        }
        act_on(b, request, &matched, &mut report, changed).await?;
        return Ok(report);
    }
    let mut cursor = request.cursor;
    loop {
        let left = request.limit - report.matched as usize;
        let page = b
            .list(
                &request.filter,
                Page {
                    limit: left.min(Page::MAX_LIMIT),
                    cursor,
                },
            )
            .await?;
        act_on(b, request, &page.items, &mut report, changed).await?;
        // Every item of the page was acted on, so the page's own cursor is
        // where to go on — also after a page with no items, which a
        // backend answers when it examined entries without finding one.
        if page.next_cursor.is_none() {
            return Ok(report);
        }
        cursor = page.next_cursor;
        if report.matched as usize >= request.limit {
            report.next_cursor = cursor;
            return Ok(report);
        }
    }
}

/// Acts on matched executions (a page, or the ids asked for).
async fn act_on<B: AdminBackend + ?Sized>(
    b: &B,
    request: &BulkRequest,
    snaps: &[ExecutionSnapshot],
    report: &mut BulkReport,
    changed: &mut Vec<ExecutionId>,
) -> Result<()> {
    let BulkAction::Delete { force } = request.action else {
        for snap in snaps {
            act(b, request, snap, report, changed).await?;
        }
        return Ok(());
    };
    if request.dry_run {
        for snap in snaps {
            act(b, request, snap, report, changed).await?;
        }
        return Ok(());
    }
    report.matched += snaps.len() as u64;
    let ids: Vec<_> = snaps.iter().map(|s| s.id.clone()).collect();
    let answers = super::delete::many(b, &ids, force).await?;
    for (id, answer) in ids.into_iter().zip(answers) {
        match answer {
            Ok(_) => report.changed += 1,
            // Deleted with an ancestor earlier in this call, or meanwhile:
            // gone, as asked.
            Err(EngineError::NotFound { .. }) => report.changed += 1,
            Err(e @ (EngineError::Conflict { .. } | EngineError::Contention { .. })) => {
                report.skipped.push((id, e.to_string()));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn act<B: AdminBackend + ?Sized>(
    b: &B,
    request: &BulkRequest,
    snap: &ExecutionSnapshot,
    report: &mut BulkReport,
    changed: &mut Vec<ExecutionId>,
) -> Result<()> {
    report.matched += 1;
    if request.dry_run {
        if bulk_would_change(&request.action, snap.state) {
            report.changed += 1;
        }
        return Ok(());
    }
    let done = match &request.action {
        BulkAction::Cancel(cancel) => b
            .cancel(&snap.id, cancel.clone())
            .await
            .map(|_| !snap.state.is_terminal()),
        BulkAction::Replay => b.replay(&snap.id).await.map(|_| true),
        BulkAction::Delete { force } => b.delete(&snap.id, *force).await.map(|_| true),
    };
    match done {
        Ok(true) => {
            report.changed += 1;
            if !matches!(request.action, BulkAction::Delete { .. }) {
                changed.push(snap.id.clone());
            }
        }
        Ok(false) => report
            .skipped
            .push((snap.id.clone(), format!("it already {}", snap.state))),
        Err(
            e @ (EngineError::Conflict { .. }
            | EngineError::NotFound { .. }
            | EngineError::Contention { .. }),
        ) => report.skipped.push((snap.id.clone(), e.to_string())),
        Err(e) => return Err(e),
    }
    Ok(())
}
