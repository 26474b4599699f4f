//! Bulk operations: cancel, delete or replay everything a filter matches, a bounded
//! page at a time, with a preview.

use crate::error::EngineError;
use crate::id::ExecutionId;
use crate::model::{CancelRequest, ListCursor, ListFilter};

/// What a bulk call does to each execution it matches.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BulkAction {
    /// Cancel it (with its scope and reason), as `cancel` does.
    Cancel(CancelRequest),
    /// Replay it, as `replay` does.
    Replay,
    /// Delete it with its descendants, as `delete` does (`force`: cancel
    /// unfinished ones first).
    Delete {
        /// Cancel and delete executions that have not finished.
        force: bool,
    },
}

impl BulkAction {
    /// `cancel`, `replay` or `delete`: the operation named in answers and logs.
    pub fn name(&self) -> &'static str {
        match self {
            BulkAction::Cancel(_) => "cancel",
            BulkAction::Replay => "replay",
            BulkAction::Delete { .. } => "delete",
        }
    }
}

/// One bulk call: the executions `filter` matches (only those of `ids`
/// when given), walked in list order from `cursor`, at most `limit` of
/// them; with `dry_run` nothing changes and the answer counts what would.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BulkRequest {
    /// What to do to each.
    pub action: BulkAction,
    /// Which executions (the list filters).
    pub filter: ListFilter,
    /// Only these executions (each must also match `filter`); empty: all
    /// the filter matches.
    pub ids: Vec<ExecutionId>,
    /// Most executions matched by this call, `1..=1000`.
    pub limit: usize,
    /// Count only.
    pub dry_run: bool,
    /// Where the previous call stopped (its `next_cursor`).
    pub cursor: Option<ListCursor>,
    /// Who asks (an operator's name, `cli:<user>`, `http:<address>`):
    /// recorded in the audit event the call leaves in the history of each
    /// execution it changed (`None`: `unknown`).
    pub actor: Option<String>,
}

impl BulkRequest {
    /// Most ids one call names.
    pub const MAX_IDS: usize = 1000;

    /// Most characters of `actor`.
    pub const MAX_ACTOR: usize = 200;

    /// Checks the limit and the ids: at most `limit` ids (each is matched
    /// or reported in one call), and no cursor with them (ids are not
    /// paged).
    pub fn validate(&self) -> Result<(), EngineError> {
        crate::Page::first(self.limit).validate()?;
        if let Some(actor) = &self.actor
            && (actor.is_empty() || actor.chars().count() > Self::MAX_ACTOR || actor.contains('\0'))
        {
            return Err(EngineError::invalid(
                "actor",
                actor,
                format!("1 to {} characters, no NUL", Self::MAX_ACTOR),
            ));
        }
        if self.ids.len() > Self::MAX_IDS.min(self.limit) {
            return Err(EngineError::invalid(
                "ids",
                self.ids.len(),
                format!(
                    "at most the call's limit ({}) and at most {} ids per call",
                    self.limit,
                    Self::MAX_IDS
                ),
            ));
        }
        if !self.ids.is_empty() && self.cursor.is_some() {
            return Err(EngineError::invalid(
                "cursor",
                "given with ids",
                "a call with ids answers them all at once; leave the cursor out",
            ));
        }
        Ok(())
    }
}

/// What a bulk call did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BulkReport {
    /// Executions the call matched (at most its limit).
    pub matched: u64,
    /// Executions it changed (with `dry_run`: none).
    pub changed: u64,
    /// Matched executions it could not change, with why (a conflict: one
    /// that finished meanwhile, a completed one a replay refuses…), and
    /// ids given that name no execution or do not match the filter.
    pub skipped: Vec<(ExecutionId, String)>,
    /// Pass back as `cursor` to go on; `None` once nothing more matches.
    pub next_cursor: Option<ListCursor>,
    /// Why the audit events of the changed executions could not be
    /// written, when they could not (the changes stand: the call is not
    /// undone or failed for its audit).
    pub audit_error: Option<String>,
}
