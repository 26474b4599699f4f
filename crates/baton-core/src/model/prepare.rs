//! A validated submission, ready for a backend to write.

use super::*;
use crate::error::EngineError;
use crate::id::{ExecutionId, PartitionCount};
use crate::policy::Limits;
use crate::state::State;
use crate::time::Timestamp;

/// A submission that passed validation, with its id and starting state
/// decided: what every backend writes for one item of a `create` batch.
#[derive(Clone, Debug, PartialEq)]
pub struct PreparedExecution {
    /// The id the new execution gets.
    pub id: ExecutionId,
    /// `delayed` when it starts later, else `waiting` (a backend that
    /// finds unmet dependencies writes `blocked`, or what they decide).
    pub state: State,
    /// When it becomes eligible, if later than now.
    pub run_at: Option<Timestamp>,
    /// Its tags as a JSON object, keys sorted (the stored form).
    pub tags_json: String,
    /// Its required capabilities as a sorted JSON array (the stored form).
    pub caps_json: String,
    /// The submission itself.
    pub new: NewExecution,
}

impl PreparedExecution {
    /// Validates every item of a create batch before anything is written and
    /// gives each its id, starting state and stored tag/capability forms. One
    /// bad item rejects the batch with an error naming its position, so every
    /// backend rejects exactly the same batches.
    ///
    /// ```
    /// use baton_core::*;
    /// use baton_core::raw::PreparedExecution;
    /// let new = NewExecution::new(
    ///     Namespace::new("n").unwrap(), Lane::new("l").unwrap(), Kind::new("k").unwrap(), vec![],
    /// ).with_delay_ms(-1);
    /// let err = PreparedExecution::prepare_batch(
    ///     vec![new], &Limits::default(), Timestamp::EPOCH, PartitionCount::DEFAULT,
    /// ).unwrap_err();
    /// assert!(err.to_string().contains("item 0 of the batch"));
    /// ```
    pub fn prepare_batch(
        executions: Vec<NewExecution>,
        limits: &Limits,
        now: Timestamp,
        partitions: PartitionCount,
    ) -> Result<Vec<PreparedExecution>, EngineError> {
        limits.check_batch("executions", executions.len())?;
        let mut out = Vec::with_capacity(executions.len());
        for (i, new) in executions.into_iter().enumerate() {
            let run_at = new
                .validate(limits, now)
                .and_then(|run_at| {
                    if let Some(parent) = &new.parent {
                        parent.check_partition(partitions)?;
                        for up in &new.depends_on {
                            if up.check_partition(partitions).is_err()
                                || up.partition() != parent.partition()
                            {
                                return Err(EngineError::invalid(
                                    "depends_on",
                                    up,
                                    "it is not a member of the parent's flow (a flow lives in \
                                     one partition, and this id names another, or another \
                                     deployment); dependencies link members of one flow",
                                ));
                            }
                        }
                        if let Some(key) = &new.idempotency_key {
                            return Err(EngineError::invalid(
                                "idempotency_key",
                                key,
                                "an execution with a parent cannot have an idempotency key: \
                                 a child lives in its parent's partition, while idempotency \
                                 keys are kept where the key hashes to; submit it without one",
                            ));
                        }
                    }
                    Ok(run_at)
                })
                .map_err(|e| e.in_batch(i))?;
            // A flow lives in one partition: a child is created where its
            // parent is (and so, by induction, where its root is).
            // A session's work lives where its lock does.
            let id = match (&new.parent, &new.session) {
                (Some(parent), _) => ExecutionId::generate_in(parent.partition(), partitions)?,
                (None, Some(session)) => ExecutionId::generate_in(
                    crate::raw::rules::session_partition(&new.namespace, session, partitions),
                    partitions,
                )?,
                (None, None) => ExecutionId::generate(partitions),
            };
            let json = |r: serde_json::Result<String>| {
                r.map_err(|e| EngineError::corruption(format!("encoding item {i}: {e}")))
            };
            out.push(PreparedExecution {
                id,
                state: if run_at.is_some() {
                    State::Delayed
                } else {
                    State::Waiting
                },
                run_at,
                tags_json: json(serde_json::to_string(&new.tags))?,
                caps_json: json(serde_json::to_string(&new.required_capabilities))?,
                new,
            });
        }
        Ok(out)
    }
}
