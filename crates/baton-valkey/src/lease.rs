//! Work under a lease: `renew`, `complete`, `fail`, and `cancel`, which
//! fences the lease of a running execution.

use crate::*;
use baton_core::raw::rules;

impl ValkeyBackend {
    /// Sends `call` (complete / fail / cancel of `id`) right after a plain
    /// read of the execution's payload, in one pipeline: the payload is
    /// immutable and lives exactly as long as the record, so a read made
    /// before the call belongs to the snapshot the call answers.
    pub(crate) async fn with_payload(&self, id: &ExecutionId, call: Cmd) -> Result<(Value, Value)> {
        let mut get = redis::cmd("GET");
        get.arg(format!(
            "{}:p:{}",
            self.base(id.partition().get()),
            id.uuid().simple()
        ));
        let (payload, reply) = self.inner.server.run_two(get, call).await?;
        Ok((reply, payload))
    }

    /// Interprets the reply of complete / fail / cancel, with the payload
    /// read before the call.
    pub(crate) async fn outcome(
        &self,
        id: &ExecutionId,
        operation: &'static str,
        reply: Value,
        payload: Value,
    ) -> Result<ExecutionSnapshot> {
        let mut items = array(reply)?.into_iter();
        let tag = items
            .next()
            .ok_or_else(|| read::corrupt("an empty reply"))?;
        match text(&tag)? {
            "ok" => {
                let woken = items
                    .next()
                    .ok_or_else(|| read::corrupt("a reply without its woken lanes"))?;
                let woken = self.woken_from(id.partition().get(), woken)?;
                let Some(record) = items.next() else {
                    return Err(read::corrupt("a reply without the execution's record"));
                };
                let mut fields = Fields::from_record(bytes(&record)?)?;
                let payload = match payload {
                    Value::BulkString(b) => b,
                    Value::Nil => {
                        return Err(EngineError::corruption(format!(
                            "execution {id} has a record but no payload"
                        )));
                    }
                    other => bytes(&other)?.to_vec(),
                };
                fields.set("pl", payload);
                let snap = read::snapshot(id.clone(), &fields)?;
                self.announce(woken).await?;
                Ok(snap)
            }
            other => Err(refusal(id, operation, other, items)?),
        }
    }
}

/// The error a refusing reply of a fenced function stands for: `tag` is its
/// first item (`conflict`, `lost`, `not_found` or `corrupt`), `items` the
/// rest. An unknown tag is itself corruption.
pub(crate) fn refusal(
    id: &ExecutionId,
    operation: &'static str,
    tag: &str,
    mut items: impl Iterator<Item = Value>,
) -> Result<EngineError> {
    Ok(match tag {
        "conflict" => {
            let state = items
                .next()
                .ok_or_else(|| read::corrupt("a conflict without a state"))?;
            let state: State = text(&state)?
                .parse()
                .map_err(|_| read::corrupt("a conflict naming an unknown state"))?;
            let reason = match items.next() {
                Some(r) => text(&r)?.to_owned(),
                None => String::new(),
            };
            EngineError::Conflict {
                id: id.clone(),
                operation,
                state,
                reason,
            }
        }
        "lost" => {
            let reason = match items.next() {
                Some(r) => text(&r)?.to_owned(),
                None => "the lease is no longer current".to_owned(),
            };
            EngineError::lease_lost(id, reason)
        }
        "not_found" => EngineError::NotFound { id: id.clone() },
        "contention" if operation == "replay" => rules::replay_waits_for_cascade(id),
        "contention" if operation == "delete" => rules::delete_waits_for_cascade(id),
        "corrupt" => {
            let message = match items.next() {
                Some(r) => text(&r)?.to_owned(),
                None => String::new(),
            };
            EngineError::corruption(format!("execution {id}: {message}"))
        }
        other => return Err(read::corrupt(format_args!("reply tag {other:?}"))),
    })
}

pub(crate) async fn renew(b: &ValkeyBackend, request: RenewRequest) -> Result<Vec<RenewOutcome>> {
    let limits = &b.inner.limits;
    limits.check_batch("leases", request.leases.len())?;
    limits.check_lease(request.lease_ttl)?;
    let now = b.now();
    let expires = now.saturating_add(request.lease_ttl);
    let mut statuses = vec![RenewStatus::Lost; request.leases.len()];
    let mut groups: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
    for (i, lease) in request.leases.iter().enumerate() {
        if b.check_id(lease.execution_id()).is_ok() {
            groups
                .entry(lease.execution_id().partition().get())
                .or_default()
                .push(i);
        }
    }
    let calls: Vec<(&Vec<usize>, Cmd)> = groups
        .iter()
        .map(|(p, positions)| {
            let mut c = Server::fcall("baton_renew", &b.base(*p));
            c.arg(now.as_millis())
                .arg(request.worker_id.as_str())
                .arg(expires.as_millis());
            for &i in positions {
                let l = &request.leases[i];
                c.arg(l.execution_id().uuid().simple().to_string())
                    .arg(l.attempt())
                    .arg(hex_nonce(l.nonce()));
            }
            (positions, c)
        })
        .collect();
    // The worker is recorded beside the renew calls, not before them.
    let (_, replies) = tokio::join!(
        crate::ops::saw_renew(b, &request, now),
        try_join_all(calls.iter().map(|(_, c)| b.run(c)))
    );
    // Runs holding limit slots: their slots lapse later too.
    let mut held: Vec<(String, String)> = Vec::new();
    for ((positions, _), reply) in calls.iter().zip(replies?) {
        for (&i, status) in positions.iter().zip(array(reply)?) {
            let status = text(&status)?;
            statuses[i] = match status {
                "renewed" => RenewStatus::Renewed,
                "cancelled" => RenewStatus::Cancelled,
                "paused" => RenewStatus::Paused,
                _ => match status.strip_prefix("renewed ") {
                    Some(ns) => {
                        let lease = &request.leases[i];
                        held.push((
                            ns.to_owned(),
                            format!(
                                "{}:{}",
                                lease.execution_id().uuid().simple(),
                                lease.attempt()
                            ),
                        ));
                        RenewStatus::Renewed
                    }
                    None => RenewStatus::Lost,
                },
            };
        }
    }
    // The leases are renewed whatever happens here, so the call answers
    // them: a failure leaves those slots lapsing at their previous lapse
    // (the former expiry plus the grace) unless the next renew extends them
    // before it (see "Limits" in the crate's documentation).
    if !held.is_empty()
        && let Err(e) = crate::limits::extend_holders(b, held, expires).await
    {
        tracing::warn!(error = %e, "extending the limit slots of renewed runs failed");
    }
    Ok(rules::renew_outcomes(request.leases, statuses, expires))
}

/// Runs to completion in a task of its own (see [`detached`]).
pub(crate) async fn complete(
    b: &ValkeyBackend,
    lease: &LeaseToken,
    result: Vec<u8>,
) -> Result<ExecutionSnapshot> {
    let (b, lease) = (b.clone(), lease.clone());
    detached(async move { complete_now(&b, &lease, result).await }).await
}

async fn complete_now(
    b: &ValkeyBackend,
    lease: &LeaseToken,
    result: Vec<u8>,
) -> Result<ExecutionSnapshot> {
    b.inner.limits.check_payload("result", result.len())?;
    let id = lease.execution_id();
    b.check_id(id)?;
    let (reply, answer) = tokio::sync::oneshot::channel();
    let pending = combine::Pending {
        partition: id.partition().get(),
        uuid: id.uuid().simple().to_string(),
        attempt: lease.attempt(),
        nonce: hex_nonce(lease.nonce()),
        result,
        now: b.now().as_millis(),
        reply,
    };
    let closed = || EngineError::unavailable("the Valkey backend is shutting down");
    b.inner.completer.send(pending).map_err(|_| closed())?;
    let (reply, payload) = answer.await.map_err(|_| closed())??;
    b.outcome(id, "complete", reply, payload).await
}

/// Runs to completion in a task of its own (see [`detached`]).
pub(crate) async fn fail(
    b: &ValkeyBackend,
    lease: &LeaseToken,
    failure: Failure,
) -> Result<ExecutionSnapshot> {
    let (b, lease) = (b.clone(), lease.clone());
    detached(async move { fail_now(&b, &lease, failure).await }).await
}

async fn fail_now(
    b: &ValkeyBackend,
    lease: &LeaseToken,
    failure: Failure,
) -> Result<ExecutionSnapshot> {
    let id = lease.execution_id();
    b.check_id(id)?;
    b.inner.limits.check_text("error", &failure.error)?;
    let error = b.inner.limits.clip_text(failure.error);
    let retry_after = failure
        .retry_after
        .map(|d| {
            d.as_millis()
                .min(u128::from(baton_core::Backoff::MAX_DELAY_MS))
                .to_string()
        })
        .unwrap_or_default();
    let mut c = Server::fcall("baton_fail", &b.base(id.partition().get()));
    c.arg(id.uuid().simple().to_string())
        .arg(lease.attempt())
        .arg(hex_nonce(lease.nonce()))
        .arg(error)
        .arg(if failure.retryable { "1" } else { "0" })
        .arg(retry_after)
        .arg(b.now().as_millis())
        .arg(b.inner.limits.cascade_budget);
    let (reply, payload) = b.with_payload(id, c).await?;
    b.outcome(id, "fail", reply, payload).await
}
