//! Bulk operations, written once over [`AdminBackend`]: the list walk of
//! the filter, and the matched executions of each page acted on in units
//! per partition — cancels and replays in units of at most
//! [`MAX_UNIT_IDS`] ([`AdminBackend::cancel_units`],
//! [`AdminBackend::replay_units`]: each execution changed exactly as the
//! single call would), deletes through [`super::delete::many`]. A call is
//! bounded by its limit (at most 1,000 executions, a page of the list at a
//! time) and resumable by its cursor; it is not atomic across units, and
//! every matched execution is either changed or reported.

use std::collections::BTreeMap;

use crate::AdminBackend;
use crate::error::{EngineError, Result};
use crate::id::{ExecutionId, PartitionCount, PartitionId};
use crate::model::{BulkAction, BulkReport, BulkRequest, CancelPart, ExecutionSnapshot, Page};
use crate::state::State;

/// Most ids one [`AdminBackend::cancel_units`] or
/// [`AdminBackend::replay_units`] call names.
pub const MAX_UNIT_IDS: usize = 100;

/// Times in a row a unit refused as a whole (`Contention`) is asked again
/// before its executions are reported skipped.
const UNIT_RETRIES: u32 = 20;

/// Checks a [`AdminBackend::cancel_units`] or
/// [`AdminBackend::replay_units`] call: at most [`MAX_UNIT_IDS`] ids, all
/// of one partition of a deployment with `partitions`; answers that
/// partition (`None` for no ids).
///
/// # Errors
/// `InvalidInput`.
pub fn check_unit(ids: &[ExecutionId], partitions: PartitionCount) -> Result<Option<PartitionId>> {
    if ids.len() > MAX_UNIT_IDS {
        return Err(EngineError::invalid(
            "ids",
            ids.len(),
            format!("at most {MAX_UNIT_IDS} ids per unit"),
        ));
    }
    super::delete::check_unit(ids, partitions)
}

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
    if request.dry_run {
        for snap in snaps {
            preview(request, snap, report);
        }
        return Ok(());
    }
    let force = match &request.action {
        BulkAction::Delete { force } => *force,
        _ => return act_in_units(b, request, snaps, report, changed).await,
    };
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

/// What became of one matched execution of a cancel or replay.
enum Fate {
    Changed,
    Skipped(String),
}

/// Cancels or replays matched executions in units per partition, each id
/// answered in the order asked.
async fn act_in_units<B: AdminBackend + ?Sized>(
    b: &B,
    request: &BulkRequest,
    snaps: &[ExecutionSnapshot],
    report: &mut BulkReport,
    changed: &mut Vec<ExecutionId>,
) -> Result<()> {
    report.matched += snaps.len() as u64;
    let mut fates: Vec<Option<Fate>> = snaps.iter().map(|_| None).collect();
    let mut by_partition: BTreeMap<PartitionId, Vec<usize>> = BTreeMap::new();
    for (i, snap) in snaps.iter().enumerate() {
        by_partition.entry(snap.id.partition()).or_default().push(i);
    }
    for (_, mut pending) in by_partition {
        let mut refused = 0u32;
        while !pending.is_empty() {
            let unit: Vec<usize> = pending.drain(..pending.len().min(MAX_UNIT_IDS)).collect();
            let ids: Vec<ExecutionId> = unit.iter().map(|&i| snaps[i].id.clone()).collect();
            let answers: Result<Vec<Result<Option<bool>>>> = match &request.action {
                BulkAction::Cancel(cancel) => b.cancel_units(&ids, cancel).await.map(|parts| {
                    parts
                        .into_iter()
                        .map(|p| {
                            p.map(|part| match part {
                                CancelPart::Cancelled => Some(true),
                                CancelPart::Finished => Some(false),
                                CancelPart::NotReached => None,
                            })
                        })
                        .collect()
                }),
                BulkAction::Replay => b
                    .replay_units(&ids)
                    .await
                    .map(|done| done.into_iter().map(|r| r.map(|()| Some(true))).collect()),
                BulkAction::Delete { .. } => Err(EngineError::invalid(
                    "action",
                    "delete",
                    "deletes run through delete units",
                )),
            };
            let answers = match answers {
                Ok(answers) if answers.len() == unit.len() => {
                    refused = 0;
                    answers
                }
                Ok(answers) => {
                    return Err(EngineError::corruption(format!(
                        "a bulk unit of {} ids answered {}",
                        unit.len(),
                        answers.len()
                    )));
                }
                Err(e @ EngineError::Contention { .. }) => {
                    refused += 1;
                    if refused <= UNIT_RETRIES {
                        let wait = 10 * u64::from(refused.min(10));
                        tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                        pending.splice(0..0, unit);
                    } else {
                        for i in unit {
                            fates[i] = Some(Fate::Skipped(e.to_string()));
                        }
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut again = Vec::new();
            for (&i, answer) in unit.iter().zip(answers) {
                match answer {
                    Ok(Some(true)) => fates[i] = Some(Fate::Changed),
                    // Already cancelled when its turn came: by this call's
                    // cascade from an ancestor earlier in the unit (or
                    // meanwhile), when it had not finished as listed —
                    // changed, as the preview counted it — else before.
                    Ok(Some(false)) if !snaps[i].state.is_terminal() => {
                        fates[i] = Some(Fate::Changed);
                    }
                    Ok(Some(false)) => {
                        fates[i] = Some(Fate::Skipped("it already cancelled".into()));
                    }
                    Ok(None) => again.push(i),
                    Err(
                        e @ (EngineError::Conflict { .. }
                        | EngineError::NotFound { .. }
                        | EngineError::Contention { .. }),
                    ) => fates[i] = Some(Fate::Skipped(e.to_string())),
                    Err(e) => return Err(e),
                }
            }
            pending.splice(0..0, again);
        }
    }
    for (snap, fate) in snaps.iter().zip(fates) {
        match fate {
            Some(Fate::Changed) => {
                report.changed += 1;
                changed.push(snap.id.clone());
            }
            Some(Fate::Skipped(why)) => report.skipped.push((snap.id.clone(), why)),
            None => {
                return Err(EngineError::corruption(format!(
                    "a bulk unit answered nothing for {}",
                    snap.id
                )));
            }
        }
    }
    Ok(())
}

/// Counts a matched execution in a dry run: what the action would do,
/// judged by its state now; nothing changes.
fn preview(request: &BulkRequest, snap: &ExecutionSnapshot, report: &mut BulkReport) {
    report.matched += 1;
    if bulk_would_change(&request.action, snap.state) {
        report.changed += 1;
    }
}
