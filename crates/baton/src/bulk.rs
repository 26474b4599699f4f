//! `baton cancel`, `baton replay` and `baton purge` by filter: a preview, a confirmation,
//! then the work a thousand executions per call with progress on standard
//! error. Memory stays bounded: only counts and the first skipped ids are
//! kept.

use std::io::{BufRead, IsTerminal, Write};

use baton_core::{AdminBackend, BulkAction, BulkReport, BulkRequest, EngineError, Page};
use serde_json::json;

use crate::show::filter_of;
use crate::{BulkArgs, CliResult, print_json};

/// Skipped executions named in the summary (the rest are counted).
const SHOWN_SKIPPED: usize = 20;

pub(crate) async fn run(
    backend: &dyn AdminBackend,
    action: BulkAction,
    args: BulkArgs,
    json: bool,
) -> CliResult<()> {
    let mut filter = filter_of(args.filter)?;
    if !args.all && !filter.narrows() {
        return Err(EngineError::invalid(
            "filter",
            "none",
            "give an execution id, or filters (--state, --lane, --tag, --created-before, …), \
             or --all to act on every execution of the namespace",
        )
        .into());
    }
    let verb = action.name();
    // Recorded in the audit event of each execution the run changes.
    let actor = format!(
        "cli:{}",
        std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "unknown".into())
    );
    // Work submitted after the preview is not part of what was confirmed
    // (and a walk chasing new submissions would never end).
    let started = baton_core::Timestamp::now_system();
    filter.created_before = Some(filter.created_before.map_or(started, |t| t.min(started)));
    let request = |dry_run: bool, cursor| BulkRequest {
        action: action.clone(),
        filter: filter.clone(),
        ids: Vec::new(),
        limit: Page::MAX_LIMIT,
        dry_run,
        cursor,
        actor: Some(actor.clone()),
    };
    // The preview: every matching execution counted, nothing changed.
    let preview = walk(backend, |c| request(true, c), |_, _, _| {})
        .await?
        .report;
    if args.dry_run {
        if json {
            print_json(
                &json!({"matched": preview.matched, "changed": preview.changed, "dry_run": true}),
            );
        } else {
            println!(
                "{verb} would change {} of the {} matching executions (dry run: nothing changed)",
                preview.changed, preview.matched
            );
        }
        return Ok(());
    }
    if preview.changed == 0 {
        if json {
            print_json(&json!({"matched": preview.matched, "changed": 0, "skipped": []}));
        } else {
            println!(
                "nothing to {verb}: {} executions match, none can change",
                preview.matched
            );
        }
        return Ok(());
    }
    if !args.yes {
        confirm(&format!(
            "{verb} {} executions ({} match the filters)?",
            preview.changed, preview.matched
        ))?;
    }
    let total = preview.matched;
    let walked = walk(
        backend,
        |c| request(false, c),
        |matched, changed, skipped| {
            eprintln!(
                "{verb}: {matched} of ~{total} matched, {changed} changed, {skipped} skipped"
            );
        },
    )
    .await?;
    let done = walked.report;
    if json {
        let skipped: Vec<_> = done
            .skipped
            .iter()
            .map(|(id, reason)| json!({"id": id, "reason": reason}))
            .collect();
        print_json(&json!({
            "matched": done.matched,
            "changed": done.changed,
            "skipped_count": walked.skipped,
            "skipped": skipped,
        }));
        return Ok(());
    }
    println!(
        "{verb}: {} changed, {} skipped, of {} matching executions",
        done.changed, walked.skipped, done.matched
    );
    for (id, reason) in &done.skipped {
        println!("  skipped {id}: {reason}");
    }
    if walked.skipped > done.skipped.len() {
        println!("  … and {} more", walked.skipped - done.skipped.len());
    }
    Ok(())
}

/// What a walk of bulk calls did: the counts, the first skipped ids, and
/// how many were skipped in all.
struct Walked {
    report: BulkReport,
    skipped: usize,
}

/// Calls until the cursor runs out, summing the reports; `progress` sees
/// (matched, changed, skipped) after each call.
async fn walk(
    backend: &dyn AdminBackend,
    request: impl Fn(Option<baton_core::ListCursor>) -> BulkRequest,
    progress: impl Fn(u64, u64, usize),
) -> CliResult<Walked> {
    let mut sum = BulkReport::default();
    let mut skipped = 0usize;
    let mut cursor = None;
    loop {
        let report = backend.bulk(request(cursor)).await?;
        sum.matched += report.matched;
        sum.changed += report.changed;
        skipped += report.skipped.len();
        let room = SHOWN_SKIPPED.saturating_sub(sum.skipped.len());
        sum.skipped.extend(report.skipped.into_iter().take(room));
        progress(sum.matched, sum.changed, skipped);
        match report.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(Walked {
        report: sum,
        skipped,
    })
}

/// Asks on the terminal; refuses when standard input is not one.
fn confirm(question: &str) -> CliResult<()> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(EngineError::invalid(
            "yes",
            "not given",
            "standard input is not a terminal, so nobody can confirm: pass --yes (after a --dry-run)",
        )
        .into());
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    stdin.lock().read_line(&mut line).ok();
    if matches!(line.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(EngineError::invalid(
            "confirmation",
            line.trim(),
            "not confirmed; nothing changed",
        )
        .into())
    }
}
