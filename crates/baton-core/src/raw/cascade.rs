//! How a cancel reaches a subtree: a depth-first walk over the children
//! index, bounded per atomic unit, resumable from the places it stopped.
//!
//! The SQL backends run [`walk`] inside their transaction over a
//! [`CascadeStore`] of their own; the Valkey library runs the same walk in
//! Lua (`cascade_walk` in `lua/common.lua`, which names
//! [`rules::cascade_page`](super::rules::cascade_page) for its step).
//! Places a walk did not reach within its budget are queued by the backend
//! and finished by the scheduler's cascade pass
//! ([`cascade_due`](crate::EngineBackend::cascade_due)).

use async_trait::async_trait;

use crate::error::Result;
use crate::id::ExecutionId;

use super::rules::{self, ChildFacts};

/// A place in a walk: the children of `node` with ids above `after` (all of
/// them when `None`), and their subtrees, are still to be visited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CascadeItem {
    /// Whose children.
    pub node: ExecutionId,
    /// The last child already visited.
    pub after: Option<ExecutionId>,
}

impl CascadeItem {
    /// The whole subtree below `node`.
    pub fn below(node: ExecutionId) -> Self {
        CascadeItem { node, after: None }
    }
}

/// What a walk reads and writes, inside the backend's atomic unit.
#[async_trait]
pub trait CascadeStore: Send {
    /// Up to `limit` children of `node` with ids above `after`, ascending,
    /// each with its state and whether it has children of its own.
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
}

/// What one bounded walk did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CascadeWalk {
    /// Executions it cancelled.
    pub cancelled: u64,
    /// Children it visited (what the budget counts).
    pub visited: usize,
    /// Places it did not reach: to queue for the cascade pass.
    pub left: Vec<CascadeItem>,
}

impl CascadeWalk {
    /// The places it did not reach, to queue with `reason`.
    pub fn to_queue(&self, reason: &str) -> Vec<Queued> {
        self.left
            .iter()
            .map(|item| Queued {
                item: item.clone(),
                reason: reason.to_owned(),
            })
            .collect()
    }
}

/// Walks the subtrees below `start`, visiting at most `budget` children,
/// cancelling every non-terminal one with `reason`.
pub async fn walk(
    store: &mut dyn CascadeStore,
    start: Vec<CascadeItem>,
    budget: usize,
    reason: &str,
) -> Result<CascadeWalk> {
    let mut stack = start;
    let mut out = CascadeWalk::default();
    while out.visited < budget {
        let Some(item) = stack.pop() else { break };
        let asked = budget - out.visited;
        let page = store
            .children_after(&item.node, item.after.as_ref(), asked)
            .await?;
        out.visited += page.len();
        let step = rules::cascade_page(&item, &page, asked);
        let doomed: Vec<&ChildFacts> = step.cancel.iter().map(|&i| &page[i]).collect();
        if !doomed.is_empty() {
            store.cancel_members(&item.node, &doomed, reason).await?;
            out.cancelled += doomed.len() as u64;
        }
        stack.extend(step.push);
    }
    out.left = stack;
    Ok(out)
}

/// A place waiting in a backend's cascade queue, with the reason its
/// cancels store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Queued {
    /// Where the walk goes on.
    pub item: CascadeItem,
    /// The cancel reason of the descendants it reaches.
    pub reason: String,
}

/// What one step of the cascade pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassStep {
    /// Executions it cancelled.
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
        let walked = walk(store, vec![q.item.clone()], limit - visited, &q.reason).await?;
        visited += walked.visited.max(1);
        out.cancelled += walked.cancelled;
        out.worked += 1;
        out.left.extend(walked.left.into_iter().map(|item| Queued {
            item,
            reason: q.reason.clone(),
        }));
    }
    Ok(out)
}

/// The cascades of executions that have just expired, in the expiring
/// unit: each one's descendants are cancelled with
/// [`cascade_reason`](super::rules::cascade_reason)`(…, EXPIRED_ANCESTOR)`,
/// `limits.cascade_budget` children visited for all of them together;
/// answers the places to queue. Mirrored by `baton_expire` in Lua.
pub async fn expired(
    store: &mut dyn CascadeStore,
    expired: &[ExecutionId],
    limits: &crate::Limits,
) -> Result<Vec<Queued>> {
    let mut budget = limits.cascade_budget;
    let mut left = Vec::new();
    for id in expired {
        let reason = rules::cascade_reason(limits, id, Some(rules::EXPIRED_ANCESTOR));
        let walked = walk(store, vec![CascadeItem::below(id.clone())], budget, &reason).await?;
        budget -= walked.visited;
        left.extend(walked.left.into_iter().map(|item| Queued {
            item,
            reason: reason.clone(),
        }));
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
                reason: "why".into(),
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
}
