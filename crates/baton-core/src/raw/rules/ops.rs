//! Operator control: what an edit, a revoke, a pause, a resume or a
//! replay may do to an execution.

use std::collections::BTreeMap;

use super::*;
use crate::model::Failure;
use crate::names::{MAX_TAGS, TagKey, validate_tag_value};

/// Checks a priority edit (`set_priority`): any execution that has not
/// finished takes it (a waiting one is reordered among its lane at once);
/// a finished one is a conflict.
pub fn check_priority_edit(id: &ExecutionId, state: State) -> Result<(), EngineError> {
    if state.is_terminal() {
        return Err(EngineError::Conflict {
            id: id.clone(),
            operation: "set_priority",
            state,
            reason: "it already finished; its priority no longer decides anything".into(),
        });
    }
    Ok(())
}

/// The tags after setting `key` to `value` (`None`: removing it), or
/// `None` when nothing changes (`set_tag`, any state): the value is checked
/// like a created execution's; a new key beyond [`MAX_TAGS`] is a conflict.
pub fn tag_edit(
    id: &ExecutionId,
    state: State,
    tags: &BTreeMap<TagKey, String>,
    key: &TagKey,
    value: Option<&str>,
) -> Result<Option<BTreeMap<TagKey, String>>, EngineError> {
    if let Some(v) = value {
        validate_tag_value(v)?;
    }
    let held = tags.get(key).map(String::as_str);
    if held == value {
        return Ok(None);
    }
    if held.is_none() && tags.len() >= MAX_TAGS {
        return Err(EngineError::Conflict {
            id: id.clone(),
            operation: "set_tag",
            state,
            reason: format!(
                "it already has {MAX_TAGS} tags, the limit; remove one before adding {key}"
            ),
        });
    }
    let mut next = tags.clone();
    match value {
        Some(v) => next.insert(key.clone(), v.to_owned()),
        None => next.remove(key),
    };
    Ok(Some(next))
}

/// Checks a revoke (`revoke`): only a running execution holds a lease to
/// revoke; any other state is a conflict.
pub fn check_revoke(id: &ExecutionId, state: State) -> Result<(), EngineError> {
    if state != State::Running {
        return Err(EngineError::Conflict {
            id: id.clone(),
            operation: "revoke",
            state,
            reason: "only a running execution holds a lease to revoke".into(),
        });
    }
    Ok(())
}

/// The failure a revoke settles for `snap`'s running attempt: retryable,
/// as a lease that expired, through [`settle_failure`] (the attempt ends
/// `lease_expired`, the retry policy decides what follows).
pub fn revoke_failure(snap: &ExecutionSnapshot) -> Failure {
    Failure::retryable(format!(
        "lease revoked by an operator: worker {} held attempt {}",
        snap.worker_id.as_ref().map_or("?", |w| w.as_str()),
        snap.attempts
    ))
}

/// What `pause` does to an execution in `state`: a finished one is a
/// conflict; a paused one is left as it is (`None`: pausing again changes
/// nothing, nor who paused it); any other is paused, remembering the state
/// resume returns it to — the state it left, `waiting` for a running one
/// (its attempt ends `paused`, no attempt consumed).
///
/// ```
/// use baton_core::{ExecutionId, PartitionCount, State};
/// use baton_core::raw::rules::check_pause;
/// let id = ExecutionId::generate(PartitionCount::new(4).unwrap());
/// assert_eq!(check_pause(&id, State::Running).unwrap(), Some(State::Waiting));
/// assert_eq!(check_pause(&id, State::Delayed).unwrap(), Some(State::Delayed));
/// assert_eq!(check_pause(&id, State::Paused).unwrap(), None);
/// assert!(check_pause(&id, State::Completed).is_err());
/// ```
pub fn check_pause(id: &ExecutionId, state: State) -> Result<Option<State>, EngineError> {
    match state {
        State::Paused => Ok(None),
        State::Running => Ok(Some(State::Waiting)),
        s if s.is_terminal() => Err(EngineError::Conflict {
            id: id.clone(),
            operation: "pause",
            state,
            reason: "it already finished; replay a failed, cancelled, expired or skipped \
                     execution to run it again"
                .into(),
        }),
        s => Ok(Some(s)),
    }
}

/// [`check_pause`] for a call with `scope`: with scope `tree`, a finished
/// execution is left as it is (`None`) rather than refused, so the walk
/// still reaches its descendants — a tree paused and then cancelled alone
/// can still be resumed from its top.
pub fn pause_in_scope(
    id: &ExecutionId,
    state: State,
    scope: crate::CancelScope,
) -> Result<Option<State>, EngineError> {
    match check_pause(id, state) {
        Err(_) if scope == crate::CancelScope::Tree && state.is_terminal() => Ok(None),
        verdict => verdict,
    }
}

/// [`check_resume`] for a call with `scope`: with scope `tree`, a finished
/// execution is left as it is (`false`) and the walk still resumes its
/// paused descendants.
pub fn resume_in_scope(
    id: &ExecutionId,
    state: State,
    scope: crate::CancelScope,
) -> Result<bool, EngineError> {
    match check_resume(id, state) {
        Err(_) if scope == crate::CancelScope::Tree && state.is_terminal() => Ok(false),
        verdict => verdict,
    }
}

/// Whether `resume` acts on an execution in `state`: a paused one is
/// resumed (`true`); one that is not paused and has not finished is left
/// as it is (`false`: resuming again changes nothing); a finished one is a
/// conflict.
pub fn check_resume(id: &ExecutionId, state: State) -> Result<bool, EngineError> {
    match state {
        State::Paused => Ok(true),
        s if s.is_terminal() => Err(EngineError::Conflict {
            id: id.clone(),
            operation: "resume",
            state,
            reason: "it already finished; replay a failed, cancelled, expired or skipped \
                     execution to run it again"
                .into(),
        }),
        _ => Ok(false),
    }
}

/// What the waits of a paused execution look like when it is resumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResumeFacts {
    /// The state it left ([`Pause::from`](crate::Pause::from)).
    pub from: State,
    /// Its `run_at`.
    pub run_at: Option<Timestamp>,
    /// Its unfinished children.
    pub open_children: u64,
    /// Its dependency policy and counters (total, completed, otherwise
    /// finished), when it has dependencies.
    pub deps: Option<(crate::model::DependencyPolicy, u32, u32, u32)>,
    /// For one that left `suspended`: whether the signals it holds satisfy
    /// its wait now ([`satisfying`]; the backend consumes them when the
    /// answer is `waiting`).
    pub signalled: bool,
}

/// The state a paused execution is resumed to. While paused, what it
/// waited for went on being counted (children finishing, upstreams
/// finishing, signals arriving are buffered) but moved nothing; resume
/// judges it now: a `delayed` one whose `run_at` passed, a `blocked` one
/// whose children finished (or whose dependency policy is met), and a
/// `suspended` one whose wait the held signals satisfy become `waiting`;
/// everything else returns to the state it left (a suspended one whose
/// timeout passed is then timed out by the timeout pass).
///
/// ```
/// use baton_core::{State, Timestamp};
/// use baton_core::raw::rules::{resume_target, ResumeFacts};
/// let now = Timestamp::from_millis(2_000);
/// let facts = |from, run_at| ResumeFacts {
///     from, run_at, open_children: 0, deps: None, signalled: false,
/// };
/// let past = Some(Timestamp::from_millis(1_000));
/// let later = Some(Timestamp::from_millis(3_000));
/// assert_eq!(resume_target(&facts(State::Delayed, past), now), State::Waiting);
/// assert_eq!(resume_target(&facts(State::Delayed, later), now), State::Delayed);
/// assert_eq!(resume_target(&facts(State::Blocked, None), now), State::Waiting);
/// assert_eq!(resume_target(&facts(State::Suspended, None), now), State::Suspended);
/// ```
pub fn resume_target(facts: &ResumeFacts, now: Timestamp) -> State {
    match facts.from {
        State::Delayed => match facts.run_at {
            Some(at) if at > now => State::Delayed,
            _ => State::Waiting,
        },
        State::Blocked => {
            match super::blocked_on(State::Blocked, facts.open_children, facts.deps) {
                Some(crate::model::WaitingOn::Children(0)) => State::Waiting,
                _ => State::Blocked,
            }
        }
        State::Suspended if facts.signalled => State::Waiting,
        from => from,
    }
}

/// Checks a replay (`replay`): a `failed`, `cancelled`, `expired` or
/// `skipped` execution runs again; a completed one, or one that has not
/// finished, is a conflict.
pub fn check_replay(id: &ExecutionId, state: State) -> Result<(), EngineError> {
    let reason = match state {
        State::Failed | State::Cancelled | State::Expired | State::Skipped => return Ok(()),
        State::Completed => "it completed; submit a new execution to run the work again",
        _ => {
            "it has not finished; only a failed, cancelled, expired or skipped execution is replayed"
        }
    };
    Err(EngineError::Conflict {
        id: id.clone(),
        operation: "replay",
        state,
        reason: reason.into(),
    })
}

/// The error of a replay asked while the cascade queue of the execution's
/// partition holds work (`Contention`: retry in a moment). A queued walk
/// was cut from an earlier cancel or finish and would act on the replayed
/// run as if it were the old one — cancel its new children, tell its
/// dependents of its old end — so a replay waits for the cascade pass to
/// empty the queue (within moments).
pub fn replay_waits_for_cascade(id: &ExecutionId) -> EngineError {
    EngineError::Contention {
        message: format!(
            "execution {id}: a cancel or finish in its partition is still being carried to \
             descendants or dependents by the cascade pass; retry the replay in a moment"
        ),
    }
}

/// The error of a delete asked while the cascade queue of the execution's
/// partition holds work (`Contention`), as for a replay: a queued walk
/// could still reach the subtree being removed. A delete runs the pass
/// itself and asks again ([`raw::delete`](crate::raw::delete)).
pub fn delete_waits_for_cascade(id: &ExecutionId) -> EngineError {
    EngineError::Contention {
        message: format!(
            "execution {id}: a cancel or finish in its partition is still being carried to \
             descendants or dependents by the cascade pass; retry the delete in a moment"
        ),
    }
}

/// The deadline a replayed execution keeps: its own while still ahead,
/// none once it passed (the replay would expire at once otherwise).
pub fn replay_deadline(deadline: Option<Timestamp>, now: Timestamp) -> Option<Timestamp> {
    deadline.filter(|d| *d > now)
}

/// Explains why `snap` is not running (`explain`): the snapshot's own
/// reason when it has one (blocked, suspended, paused, delayed, running);
/// for a waiting execution, whether its lane is paused (`lane_paused`),
/// whether a live worker (`facts.workers`) claims its
/// lane offering every capability it requires — `no_capable_worker`
/// otherwise — whether one of those accepts its version
/// (`no_compatible_worker` otherwise), whether a limit holds it back
/// (`limited`, from `facts.limited`), whether another worker owns its
/// session (`session_owned_by`, from `facts.session_owner`) and else how
/// many are ahead of it (`queued`); nothing for a
/// finished one, only what became of it.
pub fn explain(
    snapshot: ExecutionSnapshot,
    facts: &crate::model::QueueFacts,
) -> crate::model::Explanation {
    let (reason, detail) = reason_of(&snapshot, facts);
    crate::model::Explanation {
        snapshot,
        reason,
        detail,
    }
}

fn reason_of(
    snap: &ExecutionSnapshot,
    facts: &crate::model::QueueFacts,
) -> (Option<&'static str>, String) {
    if let Some(why) = snap.wait_reason() {
        return (Some(why.reason), why.detail);
    }
    if snap.state.is_terminal() {
        let at = snap
            .finished_at
            .map(|t| format!(" at {t}"))
            .unwrap_or_default();
        let why = match snap.state {
            State::Cancelled => snap.cancel_reason.as_deref(),
            State::Failed | State::Expired | State::Skipped => snap.last_error.as_deref(),
            _ => None,
        };
        let why = why.map(|w| format!(": {w}")).unwrap_or_default();
        return (None, format!("it finished {}{at}{why}", snap.state));
    }
    let lane = &snap.lane;
    if facts.lane_paused {
        return (
            Some("lane_paused"),
            format!(
                "eligible, but an operator paused lane {lane}; claims take it once the lane is resumed"
            ),
        );
    }
    let serving: Vec<&crate::model::WorkerInfo> = facts
        .workers
        .iter()
        .filter(|w| w.lanes.contains(lane))
        .collect();
    if serving.is_empty() {
        return (
            Some("no_capable_worker"),
            format!("eligible, but no live worker claims lane {lane}; start one for this lane"),
        );
    }
    let missing = |w: &crate::model::WorkerInfo| -> Vec<String> {
        snap.required_capabilities
            .iter()
            .filter(|c| !w.capabilities.contains(*c))
            .map(|c| c.to_string())
            .collect()
    };
    if serving.iter().all(|w| !missing(w).is_empty()) {
        let needed: Vec<&str> = snap
            .required_capabilities
            .iter()
            .map(|c| c.as_str())
            .collect();
        return (
            Some("no_capable_worker"),
            format!(
                "eligible, but none of the {} live worker{} of lane {lane} offers every \
                 capability it requires ({})",
                serving.len(),
                if serving.len() == 1 { "" } else { "s" },
                needed.join(", ")
            ),
        );
    }
    let capable: Vec<&&crate::model::WorkerInfo> =
        serving.iter().filter(|w| missing(w).is_empty()).collect();
    if let Some(version) = &snap.version
        && capable.iter().all(|w| !w.versions.accepts(Some(version)))
    {
        let ranges: Vec<String> = capable.iter().map(|w| w.versions.to_string()).collect();
        return (
            Some("no_compatible_worker"),
            format!(
                "eligible, but none of the {} live worker{} of lane {lane} runs version \
                 {version} (they accept {})",
                capable.len(),
                if capable.len() == 1 { "" } else { "s" },
                ranges.join(", ")
            ),
        );
    }
    if let Some(why) = &facts.limited {
        return (Some("limited"), super::limited_detail(why));
    }
    if let (Some(session), Some(lock)) = (&snap.session, &facts.session_owner) {
        return (
            Some("session_owned_by"),
            super::session_detail(session, lock),
        );
    }
    let detail = match facts.ahead {
        0 => format!("eligible and next in lane {lane}; a live worker should claim it soon"),
        n if n >= crate::model::QueueFacts::MAX_AHEAD => format!(
            "eligible; at least {n} executions of lane {lane} are claimed before it (higher \
             priority, or the same priority and eligible earlier)"
        ),
        n => format!(
            "eligible; {n} execution{} of lane {lane} {} claimed before it (higher priority, or \
             the same priority and eligible earlier)",
            if n == 1 { "" } else { "s" },
            if n == 1 { "is" } else { "are" }
        ),
    };
    (Some("queued"), detail)
}

/// The pause of an execution in `state` from its stored columns (the state
/// it left, the pausing ancestor): `None` unless it is `paused`, which
/// must have a stored state it left.
pub fn stored_pause(
    ctx: &str,
    state: State,
    from: Option<&str>,
    via: Option<&str>,
) -> Result<Option<crate::model::Pause>, EngineError> {
    if state != State::Paused {
        return Ok(None);
    }
    let Some(from) = from else {
        return Err(EngineError::corruption(format!(
            "{ctx}: paused without the state it left"
        )));
    };
    Ok(Some(crate::model::Pause {
        from: crate::raw::stored::parse("paused_from", ctx, from)?,
        via: via
            .map(|v| crate::raw::stored::parse("paused_via", ctx, v))
            .transpose()?,
    }))
}

/// The answer of `lanes`: every lane with executions (`counts`) or paused
/// (`paused`, with when), by name.
pub fn lane_infos(
    counts: BTreeMap<crate::names::Lane, crate::model::StateCounts>,
    paused: Vec<(crate::names::Lane, Timestamp)>,
) -> Vec<crate::model::LaneInfo> {
    let mut lanes: BTreeMap<crate::names::Lane, crate::model::LaneInfo> = counts
        .into_iter()
        .map(|(lane, counts)| {
            let info = crate::model::LaneInfo {
                lane: lane.clone(),
                paused_at: None,
                counts,
            };
            (lane, info)
        })
        .collect();
    for (lane, at) in paused {
        lanes
            .entry(lane.clone())
            .or_insert_with(|| crate::model::LaneInfo {
                lane,
                paused_at: None,
                counts: Default::default(),
            })
            .paused_at = Some(at);
    }
    lanes.into_values().collect()
}

/// The paused lanes as a SQL backend stores them (`(lane, paused_at
/// millis)` rows), read strictly for [`lane_infos`].
pub fn stored_paused_lanes(
    rows: Vec<(String, i64)>,
) -> Result<Vec<(crate::names::Lane, Timestamp)>, EngineError> {
    rows.into_iter()
        .map(|(lane, at)| {
            let lane = crate::raw::stored::parse("lane", "a paused lane", &lane)?;
            Ok((lane, Timestamp::from_millis(at)))
        })
        .collect()
}

/// The cancel reason a delete with `force` writes on what it cancels.
pub const DELETE_REASON: &str = "deleted by an operator";

/// What a delete reads about an execution before it removes anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeleteFacts {
    /// Its state.
    pub state: State,
    /// Whether it has a parent (it is a child of a flow).
    pub has_parent: bool,
    /// Whether any of its descendants has not finished.
    pub open_below: bool,
    /// Whether an execution that has not finished depends on it or on one
    /// of its descendants (its flow's dependents run with their
    /// upstreams' results).
    pub open_dependents: bool,
    /// Whether the caller asked for `force`.
    pub force: bool,
}

impl DeleteFacts {
    /// Whether [`open_dependents`](Self::open_dependents) can change the
    /// verdict, so a backend reads it only then: for a finished member
    /// whose descendants all finished (anything else is judged without
    /// it).
    pub fn needs_dependents(state: State, has_parent: bool, open_below: bool) -> bool {
        has_parent && state.is_terminal() && !open_below
    }
}

/// How a delete goes on, once [`check_delete`] allows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteVerdict {
    /// Everything in its subtree finished: remove it.
    Remove,
    /// Cancel it and its descendants first (reason [`DELETE_REASON`]; a
    /// running attempt ends `cancelled` and its worker's renew answers
    /// `lost`), then remove it, in the same unit.
    CancelFirst,
}

/// Checks a delete (`delete`): an execution whose whole subtree finished,
/// and on which no unfinished execution depends, is removed; otherwise it
/// is a conflict unless `force`, which cancels it (and its tree) first. A
/// child is deleted alone only when it and its descendants finished and
/// nothing unfinished depends on them (its parent counts on it, and its
/// dependents read its result): `force` reaches unfinished work only from
/// the top of a flow.
///
/// ```
/// use baton_core::State;
/// use baton_core::raw::rules::{check_delete, DeleteFacts, DeleteVerdict};
/// let id = baton_core::ExecutionId::generate(baton_core::PartitionCount::new(4).unwrap());
/// let facts = |state, force| DeleteFacts {
///     state, has_parent: false, open_below: false, open_dependents: false, force,
/// };
/// assert_eq!(check_delete(&id, facts(State::Completed, false)).ok(), Some(DeleteVerdict::Remove));
/// assert!(check_delete(&id, facts(State::Running, false)).is_err());
/// assert_eq!(check_delete(&id, facts(State::Running, true)).ok(), Some(DeleteVerdict::CancelFirst));
/// ```
pub fn check_delete(id: &ExecutionId, facts: DeleteFacts) -> Result<DeleteVerdict, EngineError> {
    if facts.state.is_terminal() && !facts.open_below && !facts.open_dependents {
        return Ok(DeleteVerdict::Remove);
    }
    let what = if !facts.state.is_terminal() {
        "it has not finished"
    } else if facts.open_below {
        "some of its descendants have not finished"
    } else {
        "executions that have not finished depend on it or its descendants"
    };
    let reason = if facts.has_parent {
        format!(
            "{what}, and a child is deleted alone only once it and its descendants finished; \
             cancel it first, or delete the root of its flow with force"
        )
    } else if !facts.force {
        format!("{what}; pass force to cancel and delete it")
    } else {
        return Ok(DeleteVerdict::CancelFirst);
    };
    Err(EngineError::Conflict {
        id: id.clone(),
        operation: "delete",
        state: facts.state,
        reason,
    })
}
