//! Flows: `cancel` with its cascade (one `baton_cancel` call) and the
//! cascade pass (`baton_cascade`); the reads of a flow (`children`, `tree`,
//! in `reads`: plain commands over the per-parent and per-root index sets);
//! waiting for children (`wait_children`, in `wait`).

use baton_core::raw::rules;
use baton_core::{CancelRequest, CancelScope, Cancellation, Tree};

use crate::*;

mod reads;
mod wait;

pub(crate) use reads::{children, tree};
pub(crate) use wait::wait_children;

/// Runs to completion in a task of its own (see [`detached`]).
pub(crate) async fn cancel(
    b: &ValkeyBackend,
    id: &ExecutionId,
    request: CancelRequest,
) -> Result<Cancellation> {
    let (b, id) = (b.clone(), id.clone());
    detached(async move { cancel_now(&b, &id, request).await }).await
}

async fn cancel_now(
    b: &ValkeyBackend,
    id: &ExecutionId,
    request: CancelRequest,
) -> Result<Cancellation> {
    b.check_id(id)?;
    let reason = rules::cancel_reason(&b.inner.limits, request.reason)?;
    let why = rules::cascade_reason(&b.inner.limits, id, reason.as_deref());
    let mut c = Server::fcall("baton_cancel", &b.base(id.partition().get()));
    c.arg(id.uuid().simple().to_string())
        .arg(if reason.is_some() { "1" } else { "0" })
        .arg(reason.unwrap_or_default())
        .arg(b.now().as_millis())
        .arg(if request.scope == CancelScope::Tree {
            "1"
        } else {
            "0"
        })
        .arg(b.inner.limits.cascade_budget)
        .arg(why);
    let (reply, payload) = b.with_payload(id, c).await?;
    // An answer is { 'ok', woken, record, cascaded, pending }: the last two
    // are the cascade's, the rest reads like every lease operation's.
    let mut items = array(reply)?;
    let (mut cascaded, mut pending) = (0, false);
    if items.len() == 5 {
        pending = int(&items[4])? == 1;
        cascaded = u64::try_from(int(&items[3])?)
            .map_err(|_| read::corrupt("a negative cascade count"))?;
        items.truncate(3);
    }
    let snapshot = b
        .outcome(id, "cancel", Value::Array(items), payload)
        .await?;
    Ok(Cancellation {
        snapshot,
        cascaded,
        cascade_pending: pending,
    })
}

pub(crate) async fn cascade_due(
    b: &ValkeyBackend,
    partition: PartitionId,
    limit: usize,
) -> Result<ScanReport> {
    let b = b.clone();
    detached(async move {
        b.inner.partitions.check_scan(partition, limit)?;
        let now = b.now();
        let mut c = Server::fcall("baton_cascade", &b.base(partition.get()));
        c.arg(limit).arg(now.as_millis());
        let mut reply = array(b.run(&c).await?)?.into_iter();
        let (Some(cancelled), Some(queued), Some(woken)) =
            (reply.next(), reply.next(), reply.next())
        else {
            return Err(read::corrupt("a short cascade reply"));
        };
        // Parents released by the cancels get their lanes hinted and woken.
        let woken = b.woken_from(partition.get(), woken)?;
        b.announce(woken).await?;
        Ok(ScanReport {
            processed: u64::try_from(int(&cancelled)?)
                .map_err(|_| read::corrupt("a negative cascade count"))?,
            next_due: (int(&queued)? > 0).then_some(now),
        })
    })
    .await
}
