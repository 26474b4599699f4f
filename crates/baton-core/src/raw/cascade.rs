//! How a cancel, a pause or a resume reaches a subtree, and how a
//! finished execution reaches its dependents: walks over the children and dependents indexes, bounded
//! per atomic unit, resumable from the places they stopped.
//!
//! The SQL backends run [`walk`] and [`dependents`] inside their
//! transaction over a [`CascadeStore`] of their own; the Valkey library
//! runs the same walks in Lua (`cascade_walk` and `dependents_walk` in
//! `lua/common.lua`, which name [`rules::cascade_page`] and
//! [`rules::dependency_finished`] for their steps). Places a walk did not
//! reach within its budget are queued by the backend and finished by the
//! scheduler's cascade pass
//! ([`cascade_due`](crate::EngineBackend::cascade_due)).

use async_trait::async_trait;

use crate::error::{EngineError, Result};
use crate::id::ExecutionId;

use super::rules::{self, ChildFacts, DependentChange, DependentFacts};

/// A place in a walk: the children (or dependents) of `node` with ids
/// above `after` (all of them when `None`), and what lies below them, are
/// still to be visited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CascadeItem {
    /// Whose children (or dependents).
    pub node: ExecutionId,
    /// The last one already visited.
    pub after: Option<ExecutionId>,
}

impl CascadeItem {
    /// Everything below `node`.
    pub fn below(node: ExecutionId) -> Self {
        CascadeItem { node, after: None }
    }
}

/// What a walk reads and writes, inside the backend's atomic unit.
#[async_trait]
pub trait CascadeStore: Send {
    /// Up to `limit` children of `node` with ids above `after`, ascending,
    /// each with its state and whether it has children (and dependents) of
    /// its own.
    async fn children_after(
        &mut self,
        node: &ExecutionId,
        after: Option<&ExecutionId>,
        limit: usize,
    ) -> Result<Vec<ChildFacts>>;

    /// Cancels `members`, children of `parent` (each non-terminal when
    /// read, in this unit), with `reason`: a running one's attempt is
    /// closed as `cancelled`, and `parent` counts them as finished.
    async fn cancel_members(
        &mut self,
        parent: &ExecutionId,
        members: &[&ChildFacts],
        reason: &str,
    ) -> Result<()>;

    /// Pauses `members` (each neither finished nor paused when read, in
    /// this unit), reached by the tree pause of `via`: each remembers the
    /// state it left (`waiting` for a running one, whose attempt ends
    /// `paused` and counts as no failure) and `via`.
    async fn pause_members(&mut self, members: &[&ChildFacts], via: &ExecutionId) -> Result<()>;

    /// Resumes `members` (each paused when read, in this unit), each to
    /// [`rules::resume_target`] (a waiting one's lane is woken after
    /// commit).
    async fn resume_members(&mut self, members: &[&ChildFacts]) -> Result<()>;

    /// Up to `limit` executions that depend on `upstream`, with ids above
    /// `after`, ascending.
    async fn dependents_after(
        &mut self,
        upstream: &ExecutionId,
        after: Option<&ExecutionId>,
        limit: usize,
    ) -> Result<Vec<DependentFacts>>;

    /// Writes what one finished upstream did to `settled`, dependents of
    /// one page (read in this unit, each still waiting on its
    /// dependencies), one change each: their counters, and the state each
    /// verdict names — `waiting` (eligible now; its lane is woken after
    /// commit), or `skipped` / `failed` (finished now; a failed one's
    /// `last_error` is [`rules::dependency_failure`]), in which case its
    /// parent counts it as finished. A page at a time, so a backend can
    /// write it in a few statements rather than one per dependent.
    async fn settle_dependents(
        &mut self,
        settled: &[(&DependentFacts, DependentChange)],
    ) -> Result<()>;
}

/// What a walk over a subtree does to the descendants it reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TreeAction<'a> {
    /// Cancels the non-terminal ones, storing this cancel reason.
    Cancel(&'a str),
    /// Pauses those neither finished nor paused, through the tree pause of
    /// this execution.
    Pause(&'a ExecutionId),
    /// Resumes the paused ones.
    Resume,
}

impl TreeAction<'_> {
    /// Whether it changes a descendant in `state`.
    pub fn reaches(&self, state: crate::State) -> bool {
        match self {
            TreeAction::Cancel(_) => !state.is_terminal(),
            TreeAction::Pause(_) => rules::pause_reaches(state),
            TreeAction::Resume => rules::resume_reaches(state),
        }
    }

    /// The queued form of the places a walk of it did not reach.
    pub fn queued(&self) -> QueuedWork {
        match self {
            TreeAction::Cancel(reason) => QueuedWork::Cancel((*reason).to_owned()),
            TreeAction::Pause(via) => QueuedWork::Pause((*via).clone()),
            TreeAction::Resume => QueuedWork::Resume,
        }
    }
}

/// What one bounded walk did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CascadeWalk {
    /// Executions it cancelled (paused, or resumed, for those walks).
    pub cancelled: u64,
    /// Dependents it released, skipped or failed.
    pub settled: u64,
    /// Children and dependents it visited (what the budget counts).
    pub visited: usize,
    /// Places it did not reach: to queue for the cascade pass.
    pub left: Vec<CascadeItem>,
    /// Executions it finished whose dependents it did not reach (all of
    /// them did not complete), to queue.
    pub dependents_left: Vec<CascadeItem>,
}

impl CascadeWalk {
    /// The answer of a pause or resume whose tree walk this was, with the
    /// execution's `snapshot` after it.
    pub fn pause_outcome(&self, snapshot: crate::ExecutionSnapshot) -> crate::PauseOutcome {
        crate::PauseOutcome {
            snapshot,
            cascaded: self.cancelled,
            cascade_pending: !self.left.is_empty(),
        }
    }

    /// The places it did not reach, to queue (cancels with `reason`).
    pub fn to_queue(&self, reason: &str) -> Vec<Queued> {
        self.to_queue_for(TreeAction::Cancel(reason))
    }

    /// The places a walk of `action` did not reach, to queue.
    pub fn to_queue_for(&self, action: TreeAction<'_>) -> Vec<Queued> {
        let cancels = self.left.iter().map(|item| Queued {
            item: item.clone(),
            work: action.queued(),
        });
        let dependents = self.dependents_left.iter().map(|item| Queued {
            item: item.clone(),
            work: QueuedWork::Dependents(false),
        });
        cancels.chain(dependents).collect()
    }
}

/// Walks the subtrees below `start`, cancelling every non-terminal one
/// with `reason`, then tells the dependents of those it cancelled; at most
/// `budget` children and dependents visited in all.
pub async fn walk(
    store: &mut dyn CascadeStore,
    start: Vec<CascadeItem>,
    budget: usize,
    reason: &str,
) -> Result<CascadeWalk> {
    walk_tree(store, start, budget, TreeAction::Cancel(reason)).await
}

/// Walks the subtrees below `start` doing `action` to every descendant it
/// reaches ([`TreeAction::reaches`]); a cancel then tells the dependents
/// of those it cancelled (nothing finishes in a pause or a resume). At
/// most `budget` children and dependents visited in all.
pub async fn walk_tree(
    store: &mut dyn CascadeStore,
    start: Vec<CascadeItem>,
    budget: usize,
    action: TreeAction<'_>,
) -> Result<CascadeWalk> {
    let mut stack = start;
    let mut out = CascadeWalk::default();
    let mut finished = Vec::new();
    while out.visited < budget {
        let Some(item) = stack.pop() else { break };
        let asked = budget - out.visited;
        let page = store
            .children_after(&item.node, item.after.as_ref(), asked)
            .await?;
        out.visited += page.len();
        let step = rules::tree_page(&item, &page, asked, |s| action.reaches(s));
        let doomed: Vec<&ChildFacts> = step.cancel.iter().map(|&i| &page[i]).collect();
        if !doomed.is_empty() {
            match action {
                TreeAction::Cancel(reason) => {
                    store.cancel_members(&item.node, &doomed, reason).await?;
                    finished.extend(
                        doomed
                            .iter()
                            .filter(|c| c.has_dependents)
                            .map(|c| (CascadeItem::below(c.id.clone()), false)),
                    );
                }
                TreeAction::Pause(via) => store.pause_members(&doomed, via).await?,
                TreeAction::Resume => store.resume_members(&doomed).await?,
            }
            out.cancelled += doomed.len() as u64;
        }
        stack.extend(step.push);
    }
    out.left = stack;
    let told = dependents(store, finished, budget.saturating_sub(out.visited)).await?;
    out.visited += told.visited;
    out.settled = told.settled;
    out.dependents_left = told.left.into_iter().map(|(item, _)| item).collect();
    Ok(out)
}

/// What telling dependents did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DependentsWalk {
    /// Dependents released, skipped or failed.
    pub settled: u64,
    /// Dependents visited (what the budget counts).
    pub visited: usize,
    /// Places not reached, each with whether its node completed.
    pub left: Vec<(CascadeItem, bool)>,
}

impl DependentsWalk {
    /// The places it did not reach, to queue.
    pub fn to_queue(&self) -> Vec<Queued> {
        self.left
            .iter()
            .map(|(item, completed)| Queued {
                item: item.clone(),
                work: QueuedWork::Dependents(*completed),
            })
            .collect()
    }
}

/// Tells the dependents of executions that just finished (`start`: each
/// with whether it completed) in the finishing unit, [`rules::dependency_finished`]
/// judging each; a dependent that is skipped or failed finishes too, and
/// its own dependents are told in turn. At most `budget` dependents are
/// visited; the places left are answered, to queue.
pub async fn dependents(
    store: &mut dyn CascadeStore,
    start: Vec<(CascadeItem, bool)>,
    budget: usize,
) -> Result<DependentsWalk> {
    let mut stack = start;
    let mut out = DependentsWalk::default();
    while out.visited < budget {
        let Some((item, completed)) = stack.pop() else {
            break;
        };
        let asked = budget - out.visited;
        let page = store
            .dependents_after(&item.node, item.after.as_ref(), asked)
            .await?;
        out.visited += page.len();
        if let Some(last) = page.last().filter(|_| page.len() >= asked) {
            stack.push((
                CascadeItem {
                    node: item.node.clone(),
                    after: Some(last.id.clone()),
                },
                completed,
            ));
        }
        let changes: Vec<(&DependentFacts, DependentChange)> = page
            .iter()
            .filter_map(|d| rules::dependency_finished(d, completed).map(|c| (d, c)))
            .collect();
        if !changes.is_empty() {
            store.settle_dependents(&changes).await?;
        }
        for (dependent, change) in &changes {
            if change.verdict != rules::DependencyVerdict::Pending {
                out.settled += 1;
            }
            if change.verdict.finishes() && dependent.has_dependents {
                stack.push((CascadeItem::below(dependent.id.clone()), false));
            }
        }
    }
    out.left = stack;
    Ok(out)
}

/// Work waiting in a backend's cascade queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueuedWork {
    /// Cancel what lies below the place, storing this cancel reason.
    Cancel(String),
    /// Tell the dependents of the place's node that it finished; `true`
    /// when it completed.
    Dependents(bool),
    /// Pause what lies below the place, through the tree pause of this
    /// execution.
    Pause(ExecutionId),
    /// Resume what lies below the place.
    Resume,
}

impl QueuedWork {
    /// The stored kind: `cancel`, `dependents`, `pause` or `resume`.
    pub fn kind(&self) -> &'static str {
        match self {
            QueuedWork::Cancel(_) => "cancel",
            QueuedWork::Dependents(_) => "dependents",
            QueuedWork::Pause(_) => "pause",
            QueuedWork::Resume => "resume",
        }
    }

    /// The stored text: the cancel reason, `completed` / `unmet`, the id
    /// of the pausing ancestor, or nothing for a resume.
    pub fn text(&self) -> String {
        match self {
            QueuedWork::Cancel(reason) => reason.clone(),
            QueuedWork::Dependents(true) => "completed".into(),
            QueuedWork::Dependents(false) => "unmet".into(),
            QueuedWork::Pause(via) => via.to_string(),
            QueuedWork::Resume => String::new(),
        }
    }

    /// Back from the stored kind and text.
    ///
    /// ```
    /// use baton_core::raw::cascade::QueuedWork;
    /// let w = QueuedWork::Dependents(true);
    /// assert_eq!(QueuedWork::from_stored(w.kind(), &w.text()).unwrap(), w);
    /// assert!(QueuedWork::from_stored("other", "x").is_err());
    /// ```
    pub fn from_stored(kind: &str, text: &str) -> Result<Self> {
        match (kind, text) {
            ("cancel", reason) => Ok(QueuedWork::Cancel(reason.to_owned())),
            ("dependents", "completed") => Ok(QueuedWork::Dependents(true)),
            ("dependents", "unmet") => Ok(QueuedWork::Dependents(false)),
            ("pause", via) => via.parse().map(QueuedWork::Pause).map_err(|_| {
                EngineError::corruption(format!(
                    "a queued pause names {via:?}, which is not an execution id"
                ))
            }),
            ("resume", "") => Ok(QueuedWork::Resume),
            _ => Err(EngineError::corruption(format!(
                "a queued cascade of kind {kind:?} with {text:?} is not one Baton writes"
            ))),
        }
    }
}

/// A place waiting in a backend's cascade queue, with the work to do there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Queued {
    /// Where the walk goes on.
    pub item: CascadeItem,
    /// What it does there.
    pub work: QueuedWork,
}

/// What one step of the cascade pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassStep {
    /// Executions it cancelled, released, skipped or failed.
    pub cancelled: u64,
    /// How many of the queued places (the oldest) it worked: the backend
    /// removes them from its queue…
    pub worked: usize,
    /// …and queues these, in order, behind the rest.
    pub left: Vec<Queued>,
}

/// One step of the cascade pass: walks the queued places oldest first, each
/// with what is left of `limit` children visited (a place counts at least
/// one, so a step always moves the queue on), until the limit is spent.
/// Mirrored by `baton_cascade` in Lua.
pub async fn pass_step(
    store: &mut dyn CascadeStore,
    queued: &[Queued],
    limit: usize,
) -> Result<PassStep> {
    let mut out = PassStep::default();
    let mut visited = 0usize;
    for q in queued {
        if visited >= limit {
            break;
        }
        let budget = limit - visited;
        match &q.work {
            QueuedWork::Cancel(reason) => {
                let walked = walk(store, vec![q.item.clone()], budget, reason).await?;
                visited += walked.visited.max(1);
                out.cancelled += walked.cancelled + walked.settled;
                out.left.extend(walked.to_queue(reason));
            }
            QueuedWork::Dependents(completed) => {
                let told = dependents(store, vec![(q.item.clone(), *completed)], budget).await?;
                visited += told.visited.max(1);
                out.cancelled += told.settled;
                out.left.extend(told.to_queue());
            }
            QueuedWork::Pause(via) => {
                let action = TreeAction::Pause(via);
                let walked = walk_tree(store, vec![q.item.clone()], budget, action).await?;
                visited += walked.visited.max(1);
                out.cancelled += walked.cancelled;
                out.left.extend(walked.to_queue_for(action));
            }
            QueuedWork::Resume => {
                let action = TreeAction::Resume;
                let walked = walk_tree(store, vec![q.item.clone()], budget, action).await?;
                visited += walked.visited.max(1);
                out.cancelled += walked.cancelled;
                out.left.extend(walked.to_queue_for(action));
            }
        }
        out.worked += 1;
    }
    Ok(out)
}

/// The cascades of executions that have just expired (each with whether
/// executions depend on it), in the expiring unit: their dependents are
/// told, and each one's descendants are cancelled with
/// [`cascade_reason`](super::rules::cascade_reason)`(…, EXPIRED_ANCESTOR)`,
/// `limits.cascade_budget` children visited for all of them together;
/// answers the places to queue. Mirrored by `baton_expire` in Lua.
pub async fn expired(
    store: &mut dyn CascadeStore,
    expired: &[(ExecutionId, bool)],
    limits: &crate::Limits,
) -> Result<Vec<Queued>> {
    let mut budget = limits.cascade_budget;
    let mut left = Vec::new();
    // Their dependents first: an expired upstream did not complete.
    let told = dependents(
        store,
        expired
            .iter()
            .filter(|(_, has_dependents)| *has_dependents)
            .map(|(id, _)| (CascadeItem::below(id.clone()), false))
            .collect(),
        budget,
    )
    .await?;
    budget = budget.saturating_sub(told.visited);
    left.extend(told.to_queue());
    for (id, _) in expired {
        let reason = rules::cascade_reason(limits, id, Some(rules::EXPIRED_ANCESTOR));
        let walked = walk(store, vec![CascadeItem::below(id.clone())], budget, &reason).await?;
        budget = budget.saturating_sub(walked.visited);
        left.extend(walked.to_queue(&reason));
    }
    Ok(left)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::id::{PartitionCount, PartitionId};
    use crate::state::State;

    /// A tree in memory: children per node in id order.
    struct Mem {
        children: BTreeMap<ExecutionId, Vec<ExecutionId>>,
        states: BTreeMap<ExecutionId, State>,
        cancelled: Vec<ExecutionId>,
        dependents: BTreeMap<ExecutionId, Vec<ExecutionId>>,
        deps: BTreeMap<ExecutionId, DependentFacts>,
        settled: Vec<(ExecutionId, rules::DependencyVerdict)>,
    }

    #[async_trait]
    impl CascadeStore for Mem {
        async fn children_after(
            &mut self,
            node: &ExecutionId,
            after: Option<&ExecutionId>,
            limit: usize,
        ) -> Result<Vec<ChildFacts>> {
            Ok(self
                .children
                .get(node)
                .into_iter()
                .flatten()
                .filter(|c| after.is_none_or(|a| *c > a))
                .take(limit)
                .map(|c| ChildFacts {
                    id: c.clone(),
                    state: self.states[c],
                    attempts: 0,
                    has_children: self.children.contains_key(c),
                    has_dependents: false,
                })
                .collect())
        }

        async fn cancel_members(
            &mut self,
            _parent: &ExecutionId,
            members: &[&ChildFacts],
            _reason: &str,
        ) -> Result<()> {
            for m in members {
                assert!(!self.states[&m.id].is_terminal(), "cancels only live ones");
                self.states.insert(m.id.clone(), State::Cancelled);
                self.cancelled.push(m.id.clone());
            }
            Ok(())
        }

        async fn pause_members(
            &mut self,
            members: &[&ChildFacts],
            _via: &ExecutionId,
        ) -> Result<()> {
            for m in members {
                assert!(
                    rules::pause_reaches(self.states[&m.id]),
                    "pauses only live ones"
                );
                self.states.insert(m.id.clone(), State::Paused);
            }
            Ok(())
        }

        async fn resume_members(&mut self, members: &[&ChildFacts]) -> Result<()> {
            for m in members {
                assert_eq!(
                    self.states[&m.id],
                    State::Paused,
                    "resumes only paused ones"
                );
                self.states.insert(m.id.clone(), State::Waiting);
            }
            Ok(())
        }

        async fn dependents_after(
            &mut self,
            upstream: &ExecutionId,
            after: Option<&ExecutionId>,
            limit: usize,
        ) -> Result<Vec<DependentFacts>> {
            Ok(self
                .dependents
                .get(upstream)
                .into_iter()
                .flatten()
                .filter(|d| after.is_none_or(|a| *d > a))
                .take(limit)
                .map(|d| self.deps[d].clone())
                .collect())
        }

        async fn settle_dependents(
            &mut self,
            settled: &[(&DependentFacts, DependentChange)],
        ) -> Result<()> {
            for (dependent, change) in settled {
                let facts = self.deps.get_mut(&dependent.id).unwrap();
                assert_eq!(facts, *dependent, "settles what it read");
                facts.done = change.done;
                facts.bad = change.bad;
                if let Some(state) = change.verdict.state() {
                    facts.state = state;
                    self.settled.push((dependent.id.clone(), change.verdict));
                }
            }
            Ok(())
        }
    }

    /// A root with `wide` children; every third child has `deep` children
    /// of its own; every fifth execution is already completed.
    fn forest(wide: usize, deep: usize) -> (ExecutionId, Mem) {
        let count = PartitionCount::new(1).unwrap();
        let next = || ExecutionId::generate_in(PartitionId(0), count).unwrap();
        let root = next();
        let mut mem = Mem {
            children: BTreeMap::new(),
            states: BTreeMap::new(),
            cancelled: Vec::new(),
            dependents: BTreeMap::new(),
            deps: BTreeMap::new(),
            settled: Vec::new(),
        };
        let mut n = 0;
        let mut state = || {
            n += 1;
            if n % 5 == 0 {
                State::Completed
            } else {
                State::Waiting
            }
        };
        let mut kids: Vec<ExecutionId> = (0..wide).map(|_| next()).collect();
        kids.sort();
        for (i, k) in kids.iter().enumerate() {
            mem.states.insert(k.clone(), state());
            if i % 3 == 0 {
                let mut below: Vec<ExecutionId> = (0..deep).map(|_| next()).collect();
                below.sort();
                for b in &below {
                    mem.states.insert(b.clone(), state());
                }
                mem.children.insert(k.clone(), below);
            }
        }
        mem.children.insert(root.clone(), kids);
        (root, mem)
    }

    /// Walking in steps of any budget, resuming from what each step left,
    /// cancels every live descendant exactly once and nothing else, and no
    /// step visits more than its budget.
    #[tokio::test]
    async fn resumed_walks_reach_every_live_descendant_once() {
        for budget in [1, 2, 3, 7, 50, 1_000] {
            let (root, mut mem) = forest(40, 4);
            let live: BTreeSet<ExecutionId> = mem
                .states
                .iter()
                .filter(|(_, s)| !s.is_terminal())
                .map(|(id, _)| id.clone())
                .collect();
            let mut queue = vec![CascadeItem::below(root.clone())];
            let mut cancelled = 0;
            let mut steps = 0;
            while !queue.is_empty() {
                let item = queue.remove(0);
                let walked = walk(&mut mem, vec![item], budget, "why").await.unwrap();
                assert!(walked.visited <= budget, "budget {budget}");
                cancelled += walked.cancelled;
                queue.extend(walked.left);
                steps += 1;
                assert!(steps < 10_000, "budget {budget}: the walk must progress");
            }
            let got: BTreeSet<ExecutionId> = mem.cancelled.iter().cloned().collect();
            assert_eq!(got.len(), mem.cancelled.len(), "budget {budget}: once each");
            assert_eq!(got, live, "budget {budget}");
            assert_eq!(cancelled as usize, live.len());
        }
    }

    /// The cascade pass works a queue off in steps of its limit: every
    /// step moves on (works at least one place), and the live descendants
    /// are cancelled exactly once.
    #[tokio::test]
    async fn pass_steps_work_the_queue_off() {
        for limit in [1, 4, 30] {
            let (root, mut mem) = forest(25, 3);
            let live = mem.states.values().filter(|s| !s.is_terminal()).count();
            let mut queue = vec![Queued {
                item: CascadeItem::below(root.clone()),
                work: QueuedWork::Cancel("why".into()),
            }];
            let mut cancelled = 0;
            while !queue.is_empty() {
                let step = pass_step(&mut mem, &queue, limit).await.unwrap();
                assert!(step.worked >= 1, "limit {limit}: a step moves on");
                cancelled += step.cancelled;
                queue.drain(..step.worked);
                queue.extend(step.left);
            }
            assert_eq!(cancelled as usize, live, "limit {limit}");
            assert_eq!(mem.cancelled.len(), live);
        }
    }

    /// One walk with room for everything leaves nothing and reports exactly
    /// what it visited.
    #[tokio::test]
    async fn a_walk_with_room_finishes_in_one_step() {
        let (root, mut mem) = forest(10, 2);
        let walked = walk(&mut mem, vec![CascadeItem::below(root)], 1_000, "why")
            .await
            .unwrap();
        assert!(walked.left.is_empty());
        assert_eq!(walked.visited, 10 + 4 * 2, "10 children, 4 of them with 2");
        assert_eq!(walked.cancelled as usize, mem.cancelled.len());
    }

    /// A chain of `n` dependents, each on the one before, all `all_of` /
    /// `skip`; and `wide` dependents of the first upstream.
    fn chain(n: usize, wide: usize) -> (ExecutionId, Mem) {
        let (_, mut mem) = forest(0, 0);
        let count = PartitionCount::new(1).unwrap();
        let next = || ExecutionId::generate_in(PartitionId(0), count).unwrap();
        let first = next();
        let mut up = first.clone();
        let facts = |id: &ExecutionId, has_dependents: bool| DependentFacts {
            id: id.clone(),
            parent: None,
            state: State::Blocked,
            paused_from: None,
            policy: crate::DependencyPolicy::default(),
            total: 1,
            done: 0,
            bad: 0,
            has_dependents,
        };
        for i in 0..n {
            let d = next();
            mem.deps.insert(d.clone(), facts(&d, i + 1 < n));
            mem.dependents.insert(up.clone(), vec![d.clone()]);
            up = d;
        }
        let mut fan: Vec<ExecutionId> = (0..wide).map(|_| next()).collect();
        fan.sort();
        for d in &fan {
            mem.deps.insert(d.clone(), facts(d, false));
        }
        mem.dependents.entry(first.clone()).or_default().extend(fan);
        (first, mem)
    }

    /// An upstream that did not complete skips its whole chain of
    /// dependents and its fan, each exactly once, in steps of any budget,
    /// resuming from what each step left.
    #[tokio::test]
    async fn skips_cascade_down_a_chain_in_resumable_steps() {
        for budget in [1, 2, 5, 1_000] {
            let (first, mut mem) = chain(6, 7);
            let mut queue = vec![(CascadeItem::below(first.clone()), false)];
            while let Some(item) = queue.pop() {
                let told = dependents(&mut mem, vec![item], budget).await.unwrap();
                assert!(told.visited <= budget, "budget {budget}");
                queue.extend(told.left);
            }
            assert_eq!(
                mem.settled.len(),
                13,
                "budget {budget}: 6 + 7 skipped once each"
            );
            assert!(
                mem.settled
                    .iter()
                    .all(|(_, v)| *v == rules::DependencyVerdict::Skip)
            );
            assert!(mem.deps.values().all(|d| d.state == State::Skipped));
        }
    }

    /// A completed upstream releases its direct dependents only: the
    /// released ones have not finished, so the chain stops there.
    #[tokio::test]
    async fn a_completed_upstream_releases_only_its_own_dependents() {
        let (first, mut mem) = chain(3, 2);
        let told = dependents(&mut mem, vec![(CascadeItem::below(first), true)], 100)
            .await
            .unwrap();
        assert!(told.left.is_empty());
        assert_eq!(told.settled, 3, "the chain's first link and the fan of 2");
        let waiting = mem
            .deps
            .values()
            .filter(|d| d.state == State::Waiting)
            .count();
        assert_eq!(waiting, 3);
        let blocked = mem
            .deps
            .values()
            .filter(|d| d.state == State::Blocked)
            .count();
        assert_eq!(blocked, 2, "the rest of the chain still waits");
    }

    /// Stored queue work reads back as written.
    #[test]
    fn queued_work_round_trips() {
        for w in [
            QueuedWork::Cancel("because".into()),
            QueuedWork::Dependents(true),
            QueuedWork::Dependents(false),
            QueuedWork::Pause(ExecutionId::generate(PartitionCount::new(2).unwrap())),
            QueuedWork::Resume,
        ] {
            assert_eq!(QueuedWork::from_stored(w.kind(), &w.text()).unwrap(), w);
        }
        assert!(QueuedWork::from_stored("dependents", "maybe").is_err());
        assert!(QueuedWork::from_stored("pause", "not-an-id").is_err());
        assert!(QueuedWork::from_stored("resume", "x").is_err());
    }

    /// A tree pause in budget-sized steps reaches every live descendant
    /// once, passing over finished and already paused ones; a tree resume
    /// then reaches every paused one.
    #[tokio::test]
    async fn pause_and_resume_walks_reach_the_whole_tree_in_steps() {
        let (root, mut mem) = forest(4, 3);
        let ids: Vec<ExecutionId> = mem.states.keys().filter(|i| **i != root).cloned().collect();
        mem.states.insert(ids[0].clone(), State::Completed);
        mem.states.insert(ids[1].clone(), State::Paused);
        let live = ids
            .iter()
            .filter(|i| rules::pause_reaches(mem.states[*i]))
            .count();
        let done: Vec<ExecutionId> = ids
            .iter()
            .filter(|i| mem.states[*i].is_terminal())
            .cloned()
            .collect();
        let pause = TreeAction::Pause(&root);
        let mut queue = vec![Queued {
            item: CascadeItem::below(root.clone()),
            work: pause.queued(),
        }];
        let mut paused = 0;
        while !queue.is_empty() {
            let step = pass_step(&mut mem, &queue, 3).await.unwrap();
            paused += step.cancelled;
            queue.drain(..step.worked);
            queue.extend(step.left);
        }
        assert_eq!(paused as usize, live);
        assert!(done.iter().all(|i| mem.states[i] == State::Completed));
        let after: Vec<State> = ids
            .iter()
            .filter(|i| !done.contains(i))
            .map(|i| mem.states[i])
            .collect();
        assert!(after.iter().all(|s| *s == State::Paused), "{after:?}");
        let walked = walk_tree(
            &mut mem,
            vec![CascadeItem::below(root)],
            1000,
            TreeAction::Resume,
        )
        .await
        .unwrap();
        assert_eq!(walked.cancelled as usize, live + 1);
        assert!(walked.left.is_empty());
        assert!(
            ids.iter()
                .filter(|i| !done.contains(i))
                .all(|i| mem.states[i] == State::Waiting)
        );
    }
}
