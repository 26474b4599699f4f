//! Tests at scale that every backend runs once (outside the conformance
//! suite, which runs each case on every backend flavour): a bulk delete of
//! a hundred thousand executions.

use baton_core::{BulkAction, BulkRequest, ListFilter, NewExecution, Page, StateCounts};

use crate::Harness;
use crate::ctx::Ctx;
use crate::expect::{lane, ok};

/// The resident memory of this process in KiB (Linux; `None` elsewhere).
fn resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Creates `n` executions in one lane (a tenth of them finished, the rest
/// waiting) beside a few in another lane, then deletes the lane with
/// forced bulk calls of a thousand, walking the cursor as an operator's
/// tool does, and checks:
/// - every call is bounded (at most a thousand matched, a cursor to go on)
///   and reports progress that only grows;
/// - every matched execution is deleted (`changed`), none skipped, and the
///   lane is empty afterwards while the other lane is untouched;
/// - the process's resident memory grows by less than `max_growth_mib`
///   from the fifth call to the end (what a walk keeps is a page, never
///   the set: memory does not grow with the executions deleted).
pub async fn bulk_delete_at_scale(h: &dyn Harness, n: usize, max_growth_mib: u64) {
    let ctx = Ctx::new(h).await;
    let clock = std::time::Instant::now();
    let purge = lane("purge");
    let keep = lane("keep");
    let batch = ctx.limits().max_batch.max(1);
    let mut made = 0;
    let mut finished = Vec::new();
    while made < n {
        let size = batch.min(n - made);
        let items: Vec<NewExecution> = (made..made + size)
            .map(|i| ctx.new_in(&purge, "p", format!("{i}").as_bytes()))
            .collect();
        let ids = ctx.create_chunked(items).await;
        // A tenth finished: the delete meets both kinds.
        finished.extend(ids.into_iter().step_by(10));
        made += size;
    }
    for id in &finished {
        ctx.cancel(id, Some("done")).await;
    }
    let kept = ctx
        .create_chunked(vec![
            ctx.new_in(&keep, "k", b""),
            ctx.new_in(&keep, "k", b""),
        ])
        .await;
    eprintln!(
        "bulk delete: {n} executions created ({} cancelled) in {:?}",
        finished.len(),
        clock.elapsed()
    );
    let clock = std::time::Instant::now();
    let filter = ListFilter::namespace(ctx.ns.clone()).with_lane(purge.clone());
    let start = resident_kib();
    // The baseline is taken once a few calls ran (connections, caches and
    // buffers of a page are in place): what grows after it grows with the
    // work done, which a bounded walk must not.
    let mut before = None;
    let mut peak = start;
    let mut cursor = None;
    let (mut matched, mut changed, mut calls) = (0u64, 0u64, 0u64);
    loop {
        let report = ok(
            ctx.backend
                .bulk(BulkRequest {
                    action: BulkAction::Delete { force: true },
                    filter: filter.clone(),
                    ids: Vec::new(),
                    limit: Page::MAX_LIMIT,
                    dry_run: false,
                    cursor,
                    actor: Some("scale test".into()),
                })
                .await,
            "bulk delete",
        );
        calls += 1;
        assert!(
            report.matched <= Page::MAX_LIMIT as u64,
            "a call is bounded"
        );
        assert!(
            report.skipped.is_empty(),
            "nothing is skipped with force: {:?}",
            report.skipped.first()
        );
        matched += report.matched;
        changed += report.changed;
        if calls % 20 == 0 {
            eprintln!("bulk delete: {changed} of {n} deleted after {calls} calls");
        }
        if calls == 5 {
            before = resident_kib();
        }
        peak = peak.max(resident_kib());
        match report.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    eprintln!(
        "bulk delete: {changed} of {n} deleted in {calls} calls, {:?}",
        clock.elapsed()
    );
    assert_eq!((matched, changed), (n as u64, n as u64));
    assert!(calls >= (n / Page::MAX_LIMIT) as u64, "{calls} calls");
    assert_eq!(
        ctx.lane_counts(&purge).await,
        StateCounts::default(),
        "the lane is empty"
    );
    assert_eq!(ctx.lane_counts(&keep).await.waiting, kept.len() as u64);
    if let (Some(start), Some(before), Some(peak)) = (start, before, peak) {
        let growth = peak.saturating_sub(before) / 1024;
        eprintln!(
            "bulk delete: resident memory {} MiB at the start, {} MiB after 5 calls, peak {} MiB",
            start / 1024,
            before / 1024,
            peak / 1024
        );
        assert!(
            growth < max_growth_mib,
            "resident memory grew by {growth} MiB over the delete of {n} executions \
             (bound {max_growth_mib} MiB)"
        );
    }
}
