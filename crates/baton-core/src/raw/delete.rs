//! Deletes, written once over [`AdminBackend::delete_units`]: the units a
//! backend runs (each one transaction / `FCALL` over one partition, at
//! most `Limits::cascade_budget` executions removed), repeated until every
//! execution asked for is gone or refused.
//!
//! A subtree bigger than one unit's budget is removed in several units,
//! leaves first and the execution itself last, so a delete that stops
//! midway (a crash, a lost connection) leaves a smaller tree that is still
//! whole from its top, and asking again goes on. While a cancel or finish
//! in the partition is still being carried by the cascade pass, a unit
//! refuses with `Contention`; the delete then runs the pass's steps itself
//! (they are atomic and idempotent, whoever runs them) and asks again.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::AdminBackend;
use crate::error::{EngineError, Result};
use crate::id::{ExecutionId, PartitionId};
use crate::model::DeleteReport;

/// Most ids one [`AdminBackend::delete_units`] call names.
pub const MAX_UNIT_IDS: usize = 1000;

/// Rounds in a row that remove nothing and find no cascade work to run
/// before a delete gives up with the `Contention` it met.
const IDLE_ROUNDS: u32 = 20;

/// Most executions one cascade step a delete runs visits.
const CASCADE_STEP: usize = 500;

/// Most cascade steps a delete runs between two rounds of its units.
const CASCADE_STEPS: u32 = 16;

/// Most rounds in a row that remove nothing before a delete answers the
/// `Contention` it met (a partition whose queue keeps refilling).
const MAX_ROUNDS: u32 = 200;

/// Checks a [`AdminBackend::delete_units`] call: at most
/// [`MAX_UNIT_IDS`] ids, all of one partition of a deployment with
/// `partitions`; answers that partition (`None` for no ids).
///
/// # Errors
/// `InvalidInput`.
pub fn check_unit(
    ids: &[ExecutionId],
    partitions: crate::PartitionCount,
) -> Result<Option<PartitionId>> {
    if ids.len() > MAX_UNIT_IDS {
        return Err(EngineError::invalid(
            "ids",
            ids.len(),
            format!("at most {MAX_UNIT_IDS} ids per unit"),
        ));
    }
    let Some(first) = ids.first() else {
        return Ok(None);
    };
    for id in ids {
        id.check_partition(partitions)?;
        if id.partition() != first.partition() {
            return Err(EngineError::invalid(
                "ids",
                id,
                format!(
                    "one unit works in one partition ({}); this id is in partition {}",
                    first.partition(),
                    id.partition()
                ),
            ));
        }
    }
    Ok(Some(first.partition()))
}

/// The part of a unit for an execution in `state` that stands outside
/// any flow (no parent, no members: nothing below it, no dependents —
/// dependencies link members of one flow),
/// judged by [`rules::check_delete`](super::rules::check_delete): removed
/// at once when allowed — a cancel first would change nothing anyone
/// could read, so `cancelled` only says the verdict asked for one.
pub fn lone_part(id: &ExecutionId, state: crate::State, force: bool) -> Result<crate::DeletePart> {
    use super::rules::{DeleteFacts, DeleteVerdict, check_delete};
    let facts = DeleteFacts {
        state,
        has_parent: false,
        open_below: false,
        open_dependents: false,
        force,
    };
    check_delete(id, facts).map(|verdict| crate::DeletePart {
        removed: 1,
        done: true,
        cancelled: verdict == DeleteVerdict::CancelFirst,
    })
}

/// Deletes one execution (see [`AdminBackend::delete`]).
pub async fn one<B: AdminBackend + ?Sized>(
    b: &B,
    id: &ExecutionId,
    force: bool,
) -> Result<DeleteReport> {
    let mut out = many(b, std::slice::from_ref(id), force).await?;
    out.pop().unwrap_or_else(|| {
        Err(EngineError::corruption(
            "a delete of one id answered nothing",
        ))
    })
}

/// Deletes each of `ids` (any partitions; each id once) with `force`,
/// answering in order what became of each: its report, or the error that
/// refused it (`NotFound`, `Conflict`, `Contention` after a while). An id
/// that vanished after this call removed or cancelled part of it (an
/// ancestor's delete, a trim, another delete finishing it) counts as
/// deleted; one that vanished before answers `NotFound`.
///
/// # Errors
/// `InvalidInput` (an id of another deployment: the whole call),
/// `Unavailable` and any other error of the backend but `Contention` stop
/// the call; what it removed stays removed.
pub async fn many<B: AdminBackend + ?Sized>(
    b: &B,
    ids: &[ExecutionId],
    force: bool,
) -> Result<Vec<Result<DeleteReport>>> {
    let mut out: Vec<Option<Result<DeleteReport>>> = vec![None; ids.len()];
    let mut by_partition: BTreeMap<PartitionId, Vec<usize>> = BTreeMap::new();
    for (i, id) in ids.iter().enumerate() {
        by_partition.entry(id.partition()).or_default().push(i);
    }
    for (partition, indices) in by_partition {
        let mut reports: BTreeMap<usize, DeleteReport> = indices
            .iter()
            .map(|&i| {
                (
                    i,
                    DeleteReport {
                        id: ids[i].clone(),
                        deleted: 0,
                        cancelled: false,
                    },
                )
            })
            .collect();
        let mut pending = indices;
        // Rounds in a row that removed nothing: `idle` when the cascade
        // pass found nothing either, `stalled` however busy it was.
        let (mut idle, mut stalled) = (0u32, 0u32);
        while !pending.is_empty() {
            let mut next = Vec::new();
            let mut removed_any = false;
            let mut contended: Option<EngineError> = None;
            for chunk in pending.chunks(MAX_UNIT_IDS) {
                let asked: Vec<ExecutionId> = chunk.iter().map(|&i| ids[i].clone()).collect();
                let parts = match b.delete_units(&asked, force).await {
                    Ok(parts) => parts,
                    // The unit as a whole met contention (a lock cycle
                    // broken by the database): nothing of it was written;
                    // its ids go round again.
                    Err(e @ EngineError::Contention { .. }) => {
                        contended = Some(e);
                        next.extend_from_slice(chunk);
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                if parts.len() != asked.len() {
                    return Err(EngineError::corruption(format!(
                        "delete_units answered {} parts for {} ids",
                        parts.len(),
                        asked.len()
                    )));
                }
                for (&i, part) in chunk.iter().zip(parts) {
                    let Some(report) = reports.get_mut(&i) else {
                        continue;
                    };
                    match part {
                        Ok(part) => {
                            report.deleted += part.removed;
                            report.cancelled |= part.cancelled;
                            removed_any |= part.removed > 0 || part.cancelled;
                            if part.done {
                                out[i] = reports.remove(&i).map(Ok);
                            } else {
                                next.push(i);
                            }
                        }
                        Err(EngineError::NotFound { .. })
                            if report.deleted > 0 || report.cancelled =>
                        {
                            out[i] = reports.remove(&i).map(Ok);
                        }
                        Err(e @ EngineError::Contention { .. }) => {
                            contended = Some(e);
                            next.push(i);
                        }
                        Err(e) => {
                            reports.remove(&i);
                            out[i] = Some(Err(e));
                        }
                    }
                }
            }
            let mut ran_cascade = false;
            if contended.is_some() {
                ran_cascade = run_cascade(b, partition).await?;
            }
            if removed_any {
                (idle, stalled) = (0, 0);
            } else if !next.is_empty() {
                stalled += 1;
                idle = if ran_cascade { 0 } else { idle + 1 };
            }
            if !next.is_empty() {
                if idle >= IDLE_ROUNDS || stalled >= MAX_ROUNDS {
                    let e = contended.unwrap_or_else(|| {
                        EngineError::corruption("a delete made no progress in its units")
                    });
                    for i in next {
                        reports.remove(&i);
                        out[i] = Some(Err(e.clone()));
                    }
                    break;
                }
                if idle > 0 {
                    // Another process's cascade step holds the work: let it.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            pending = next;
        }
    }
    out.into_iter()
        .map(|o| o.ok_or_else(|| EngineError::corruption("a delete left an id unanswered")))
        .collect()
}

/// Runs up to [`CASCADE_STEPS`] cascade-pass steps of `partition` while
/// its queue holds work: whether any step found work queued (a step that
/// walks finished executions changes nothing, and counts none, yet moves
/// the queue on). A step that took nothing while work stays queued is
/// followed by a short pause: another process's step may hold it.
async fn run_cascade<B: AdminBackend + ?Sized>(b: &B, partition: PartitionId) -> Result<bool> {
    let mut any = false;
    for _ in 0..CASCADE_STEPS {
        let step = b.cascade_due(partition, CASCADE_STEP).await?;
        if step.next_due.is_none() {
            return Ok(any || step.processed > 0);
        }
        any = true;
        if step.processed == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    Ok(any)
}
