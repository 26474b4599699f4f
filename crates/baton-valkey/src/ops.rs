//! The [`EngineBackend`] contract: each method is one `FCALL` per partition
//! it touches (see the function files in `lua/` for what each does).

use super::*;
use baton_core::raw::stored;

/// Values per claimed execution in a `baton_claim` reply.
const CLAIM_ENTRY: usize = 7;

fn hex_nonce(n: u64) -> String {
    format!("{n:016x}")
}

fn ms(t: Option<Timestamp>) -> String {
    t.map(|t| t.as_millis().to_string()).unwrap_or_default()
}

impl ValkeyBackend {
    async fn claim_in(
        &self,
        partition: u16,
        want: usize,
        common: &[String],
        request: &ClaimRequest,
        expires: Timestamp,
    ) -> Result<Vec<(String, Claim)>> {
        let mut c = Server::fcall("baton_claim", &self.base(partition));
        c.arg(&common[0]).arg(&common[1]).arg(want);
        for a in &common[2..] {
            c.arg(a);
        }
        let nonces: Vec<u64> = (0..want).map(|_| LeaseToken::random_nonce()).collect();
        let nonce_text: String = nonces.iter().map(|n| hex_nonce(*n)).collect();
        c.arg(request.worker_id.as_str())
            .arg(expires.as_millis())
            .arg(nonce_text);
        let mut items = array(self.run(&c).await?)?.into_iter();
        let (seq, empties) = seq_empties(&mut items)?;
        self.drop_hints(partition, seq, empties);
        let flat: Vec<Value> = items.collect();
        if !flat.len().is_multiple_of(CLAIM_ENTRY) {
            return Err(decode::corrupt("a short claim entry"));
        }
        let mut entries = Vec::with_capacity(flat.len() / CLAIM_ENTRY);
        let mut flat = flat.into_iter();
        while flat.len() > 0 {
            entries.push(flat.by_ref().take(CLAIM_ENTRY).collect::<Vec<_>>());
        }
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        // Payloads are immutable and live as long as their record, so they
        // are read after the claim, straight from their keys.
        let base = self.base(partition);
        let mut mget = redis::cmd("MGET");
        for f in &entries {
            let uuid = f
                .get(1)
                .ok_or_else(|| decode::corrupt("a short claim entry"))?;
            mget.arg(format!("{base}:p:{}", text(uuid)?));
        }
        let payloads = array(self.run(&mget).await?)?;
        if payloads.len() != entries.len() {
            return Err(decode::corrupt(
                "MGET answered a different number of payloads",
            ));
        }
        let mut out = Vec::new();
        for (i, (f, payload)) in entries.into_iter().zip(payloads).enumerate() {
            if f.len() < 7 {
                return Err(decode::corrupt("a short claim entry"));
            }
            let member = text(&f[0])?.to_owned();
            let id =
                decode::execution_id(text(&f[1])?, PartitionId(partition), self.inner.partitions)?;
            let ctx = format!("execution {id}");
            // Claimed, then cancelled or expired and trimmed before the
            // payload was read: the lease is already dead, so there is
            // nothing to hand out.
            if payload == Value::Nil {
                tracing::debug!(%id, "a claimed execution was trimmed before its payload was read");
                continue;
            }
            let attempt = stored::in_range::<u32>("attempt", &ctx, int(&f[4])?)?;
            let tags = stored::tags_json(&ctx, text(&f[6])?)?;
            let nonce = nonces
                .get(i)
                .copied()
                .ok_or_else(|| decode::corrupt("more claims than requested"))?;
            let claim = Claim {
                namespace: request.namespace.clone(),
                lane: text(&f[2])?
                    .parse()
                    .map_err(|_| EngineError::corruption(format!("{ctx}: lane")))?,
                kind: text(&f[3])?
                    .parse()
                    .map_err(|_| EngineError::corruption(format!("{ctx}: kind")))?,
                payload: match payload {
                    Value::BulkString(b) => b,
                    other => bytes(&other)?.to_vec(),
                },
                attempt,
                lease: LeaseToken::new(id.clone(), attempt, nonce),
                lease_expires_at: expires,
                deadline: opt_int(&f[5])?.map(Timestamp::from_millis),
                tags,
                id,
            };
            out.push((member, claim));
        }
        Ok(out)
    }
}

impl ValkeyBackend {
    /// Peeks partitions (each with its own `want`): their claim-order
    /// members, first first. Lanes found empty are dropped from the hints.
    ///
    /// Most partitions are read with plain commands: the unconditional
    /// waiting sets are already in claim order. Only a partition holding
    /// waiting work with capability or deadline conditions for one of the
    /// lanes is asked through `baton_peek`, which checks them.
    async fn peek(
        &self,
        wants: &[(u16, usize)],
        common: &[String],
    ) -> Result<BTreeMap<u16, Vec<String>>> {
        let (ns, lanes) = (&common[1], &common[4..]);
        let looks = try_join_all(
            wants
                .iter()
                .map(|(p, want)| self.look(*p, *want, ns, lanes)),
        )
        .await?;
        let mut out = BTreeMap::new();
        let mut conditional = Vec::new();
        for (&(p, want), look) in wants.iter().zip(looks) {
            match look {
                Some(members) => {
                    out.insert(p, members);
                }
                None => conditional.push((p, want)),
            }
        }
        if !conditional.is_empty() {
            out.extend(self.peek_conditional(&conditional, common).await?);
        }
        Ok(out)
    }

    /// One partition's first `want` unconditional waiting members over
    /// `lanes`, read with plain commands; None when a lane also has
    /// conditional waiting work there (the caller asks `baton_peek`).
    async fn look(
        &self,
        partition: u16,
        want: usize,
        ns: &str,
        lanes: &[String],
    ) -> Result<Option<Vec<String>>> {
        let base = self.base(partition);
        let mut pipe = redis::pipe();
        // The sequence first: a lane seen empty after it cannot lose a hint
        // raised for work that arrives later (see `baton_hint_drop`).
        pipe.cmd("GET").arg(format!("{base}:seq"));
        for lane in lanes {
            pipe.cmd("ZRANGE")
                .arg(format!("{base}:w:{ns}/{lane}"))
                .arg(0)
                .arg(want.saturating_sub(1));
            pipe.cmd("EXISTS").arg(format!("{base}:wx:{ns}/{lane}"));
        }
        let mut replies = self.inner.server.raw_pipe(&pipe).await?.into_iter();
        let mut next = || {
            replies
                .next()
                .ok_or_else(|| decode::corrupt("a peek answered fewer replies than commands"))
        };
        let seq = opt_int(&next()?)?.unwrap_or(0);
        let mut members = Vec::new();
        let mut empties = Vec::new();
        let mut conditional = false;
        for lane in lanes {
            let found = array(next()?)?;
            let has_conditional = int(&next()?)? > 0;
            conditional |= has_conditional;
            if found.is_empty() && !has_conditional {
                empties.push(format!("{ns}/{lane}"));
            }
            for m in found {
                members.push(text(&m)?.to_owned());
            }
        }
        if conditional {
            return Ok(None);
        }
        self.drop_hints(partition, seq, empties);
        if lanes.len() > 1 {
            members.sort();
            members.truncate(want);
        }
        Ok(Some(members))
    }

    /// Peeks partitions through `baton_peek`, which checks conditions.
    async fn peek_conditional(
        &self,
        wants: &[(u16, usize)],
        common: &[String],
    ) -> Result<BTreeMap<u16, Vec<String>>> {
        let calls: Vec<Cmd> = wants
            .iter()
            .map(|(p, want)| {
                let mut c = Server::fcall("baton_peek", &self.base(*p));
                c.arg(&common[0]).arg(&common[1]).arg(*want);
                for a in &common[2..] {
                    c.arg(a);
                }
                c
            })
            .collect();
        let replies = try_join_all(calls.iter().map(|c| self.run(c))).await?;
        let mut out = BTreeMap::new();
        for ((p, _), reply) in wants.iter().zip(replies) {
            let mut items = array(reply)?.into_iter();
            let (seq, empties) = seq_empties(&mut items)?;
            self.drop_hints(*p, seq, empties);
            let members = items
                .map(|m| text(&m).map(str::to_owned))
                .collect::<Result<Vec<_>>>()?;
            out.insert(*p, members);
        }
        Ok(out)
    }
}

fn seq_empties(items: &mut std::vec::IntoIter<Value>) -> Result<(i64, Vec<String>)> {
    let seq = int(&items
        .next()
        .ok_or_else(|| decode::corrupt("empty claim reply"))?)?;
    let empties = array(
        items
            .next()
            .ok_or_else(|| decode::corrupt("claim reply without empty lanes"))?,
    )?
    .iter()
    .map(|v| text(v).map(str::to_owned))
    .collect::<Result<Vec<_>>>()?;
    Ok((seq, empties))
}

#[async_trait]
impl EngineBackend for ValkeyBackend {
    fn capabilities(&self) -> Capabilities {
        let mut c = Capabilities::new("valkey", self.inner.limits);
        c.cross_process_wakeups = true;
        c.multi_process = true;
        // Read from the server at connect: AOF with appendfsync always.
        c.durable = self.inner.durable;
        c
    }

    fn partitions(&self) -> PartitionCount {
        self.inner.partitions
    }

    async fn create(&self, executions: Vec<NewExecution>) -> Result<Vec<CreateOutcome>> {
        let now = self.now();
        let count = self.inner.partitions;
        let mut rows =
            PreparedExecution::prepare_batch(executions, &self.inner.limits, now, count)?;
        // Placement: a submission with an idempotency key goes where its
        // key lives; the rest of the call goes to one partition, the next
        // in this instance's rotation, so a batch is one function call and
        // its executions are claimed and completed together.
        let together = self.next_placement();
        let mut groups: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
        for (i, r) in rows.iter_mut().enumerate() {
            let p = idempotency_partition(&r.new, count).unwrap_or(together);
            if r.id.partition().get() != p {
                r.id = ExecutionId::generate_in(PartitionId(p), count)?;
            }
            groups.entry(r.id.partition().get()).or_default().push(i);
        }
        // One transaction per partition: the payloads (one MSET, straight
        // into their keys, never through Lua), then the function call that
        // writes the records and indexes.
        let calls: Vec<(u16, redis::Pipeline)> = groups
            .iter()
            .map(|(p, positions)| {
                let base = self.base(*p);
                let mut c = Server::fcall("baton_create", &base);
                c.arg(positions.len());
                let mut payloads = redis::cmd("MSET");
                for &i in positions {
                    let r = &rows[i];
                    let n = &r.new;
                    let b = &n.retry.backoff;
                    let text = |v: &dyn ToString| v.to_string();
                    let now_ms = now.as_millis().to_string();
                    let pri = text(&n.priority);
                    let retry = format!(
                        "{} {} {} {} {}",
                        n.retry.max_attempts,
                        b.initial_ms,
                        b.max_ms,
                        b.multiplier,
                        if b.jitter { 1 } else { 0 }
                    );
                    let run_at = ms(r.run_at);
                    let deadline = ms(n.deadline);
                    let ready_at = if run_at.is_empty() {
                        now_ms.clone()
                    } else {
                        run_at.clone()
                    };
                    let parent = n.parent.as_ref().map(|p| p.to_string());
                    let mut fields: Vec<(&str, &[u8])> = vec![
                        ("ns", n.namespace.as_str().as_bytes()),
                        ("lane", n.lane.as_str().as_bytes()),
                        ("kind", n.kind.as_str().as_bytes()),
                        ("st", r.state.as_str().as_bytes()),
                        ("pri", pri.as_bytes()),
                        ("att", b"0"),
                        ("rp", retry.as_bytes()),
                        ("ca", now_ms.as_bytes()),
                        ("ua", now_ms.as_bytes()),
                        ("rd", ready_at.as_bytes()),
                    ];
                    // No tags and no capabilities are the absent fields.
                    if r.tags_json != "{}" {
                        fields.push(("tags", r.tags_json.as_bytes()));
                    }
                    if r.caps_json != "[]" {
                        fields.push(("caps", r.caps_json.as_bytes()));
                    }
                    if let Some(k) = &n.idempotency_key {
                        fields.push(("ik", k.as_str().as_bytes()));
                    }
                    if let Some(p) = &parent {
                        fields.push(("par", p.as_bytes()));
                    }
                    if !run_at.is_empty() {
                        fields.push(("ra", run_at.as_bytes()));
                    }
                    if !deadline.is_empty() {
                        fields.push(("dl", deadline.as_bytes()));
                    }
                    let record = decode::encode_record(&fields);
                    let uuid = r.id.uuid().simple().to_string();
                    let member = if r.state == State::Waiting {
                        claim_member(n.priority, now.as_millis(), &uuid)
                    } else {
                        String::new()
                    };
                    payloads
                        .arg(format!("{base}:p:{uuid}"))
                        .arg(n.payload.as_slice());
                    c.arg(uuid)
                        .arg(n.namespace.as_str())
                        .arg(n.lane.as_str())
                        .arg(r.state.as_str())
                        .arg(member)
                        .arg(r.caps_json.as_str())
                        .arg(n.idempotency_key.as_ref().map(|k| k.as_str()).unwrap_or(""))
                        .arg(&run_at)
                        .arg(&deadline)
                        .arg(record);
                }
                let mut pipe = redis::pipe();
                pipe.atomic().add_command(payloads).add_command(c);
                (*p, pipe)
            })
            .collect();
        let replies = try_join_all(calls.iter().map(|(_, pipe)| async move {
            let mut replies = self.inner.server.run_pipe(pipe).await?;
            replies
                .pop()
                .ok_or_else(|| decode::corrupt("a create transaction without its reply"))
        }))
        .await?;
        let mut outcomes: Vec<Option<CreateOutcome>> = vec![None; rows.len()];
        let mut woken = Vec::new();
        for ((p, _), reply) in calls.iter().zip(replies) {
            let mut items = array(reply)?.into_iter();
            let w = items
                .next()
                .ok_or_else(|| decode::corrupt("empty create reply"))?;
            woken.extend(self.woken_from(*p, w)?);
            let positions = &groups[p];
            let flat: Vec<Value> = items.collect();
            if flat.len() != positions.len() * 3 {
                return Err(decode::corrupt("a short create outcome"));
            }
            for (&pos, f) in positions.iter().zip(flat.chunks(3)) {
                let id = decode::execution_id(text(&f[0])?, PartitionId(*p), count)?;
                let state: State = text(&f[1])?.parse().map_err(|_| {
                    EngineError::corruption(format!("execution {id}: stored state"))
                })?;
                outcomes[pos] = Some(CreateOutcome {
                    id,
                    state,
                    created: int(&f[2])? == 1,
                });
            }
        }
        self.announce(woken).await?;
        outcomes
            .into_iter()
            .map(|o| o.ok_or_else(|| decode::corrupt("create answered fewer outcomes than items")))
            .collect()
    }

    async fn claim(&self, request: ClaimRequest) -> Result<Vec<Claim>> {
        request.validate(&self.inner.limits)?;
        let now = self.now();
        let expires = now.saturating_add(request.lease_ttl);
        let ns = request.namespace.as_str();
        let lanes: BTreeSet<&str> = request.lanes.iter().map(Lane::as_str).collect();
        let hint_calls: Vec<Cmd> = lanes
            .iter()
            .map(|l| {
                let mut c = redis::cmd("ZRANGE");
                c.arg(self.hint_key(&format!("{ns}/{l}"))).arg(0).arg(-1);
                c
            })
            .collect();
        let hints = try_join_all(hint_calls.iter().map(|c| self.inner.server.raw(c))).await?;
        let mut candidates = BTreeSet::new();
        for h in hints {
            for p in array(h)? {
                if let Ok(p) = text(&p)?.parse::<u16>()
                    && p < self.inner.partitions.get()
                {
                    candidates.insert(p);
                }
            }
        }
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let caps: Vec<&str> = request.capabilities.iter().map(|c| c.as_str()).collect();
        // now, ns, [want], caps, lane count, lanes...
        let mut common = vec![now.as_millis().to_string(), ns.to_owned(), caps.join(",")];
        common.push(lanes.len().to_string());
        common.extend(lanes.iter().map(|l| (*l).to_owned()));
        let plan: Vec<(u16, usize)> = if candidates.len() == 1 {
            candidates.iter().map(|p| (*p, request.max)).collect()
        } else {
            // Peek every candidate, then claim the globally first `max`, so
            // one claimer gets exact priority-then-age order across
            // partitions. The first peek asks each partition for as much of
            // `max` as fits a budget of PEEK_BUDGET members in all (at least
            // twice its even share); only a partition whose whole answer
            // falls inside the first `max` may hold more that belongs there,
            // and only those are asked again for `max`.
            let n = candidates.len();
            let narrow = (PEEK_BUDGET / n)
                .max(request.max.div_ceil(n).saturating_mul(2))
                .min(request.max);
            let first: Vec<(u16, usize)> = candidates.iter().map(|p| (*p, narrow)).collect();
            let mut seen = self.peek(&first, &common).await?;
            let cutoff = |seen: &BTreeMap<u16, Vec<String>>| -> Option<String> {
                let mut all: Vec<&String> = seen.values().flatten().collect();
                all.sort();
                all.get(request.max - 1).map(|m| (*m).clone())
            };
            if narrow < request.max {
                let cut = cutoff(&seen);
                let again: Vec<(u16, usize)> = seen
                    .iter()
                    .filter(|(_, ms)| {
                        ms.len() == narrow
                            && match (&cut, ms.last()) {
                                (Some(c), Some(last)) => last < c,
                                _ => true,
                            }
                    })
                    .map(|(p, _)| (*p, request.max))
                    .collect();
                if !again.is_empty() {
                    seen.extend(self.peek(&again, &common).await?);
                }
            }
            let mut members: Vec<(&String, u16)> = seen
                .iter()
                .flat_map(|(p, ms)| ms.iter().map(move |m| (m, *p)))
                .collect();
            members.sort();
            let mut per: BTreeMap<u16, usize> = BTreeMap::new();
            for (_, p) in members.into_iter().take(request.max) {
                *per.entry(p).or_default() += 1;
            }
            per.into_iter().collect()
        };
        let results = try_join_all(
            plan.iter()
                .map(|(p, want)| self.claim_in(*p, *want, &common, &request, expires)),
        )
        .await?;
        let mut claims: Vec<(String, Claim)> = results.into_iter().flatten().collect();
        claims.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(claims.into_iter().map(|(_, c)| c).collect())
    }

    async fn renew(&self, request: RenewRequest) -> Result<Vec<RenewOutcome>> {
        let limits = &self.inner.limits;
        limits.check_batch("leases", request.leases.len())?;
        limits.check_lease(request.lease_ttl)?;
        let now = self.now();
        let expires = now.saturating_add(request.lease_ttl);
        let mut statuses = vec![RenewStatus::Lost; request.leases.len()];
        let mut groups: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
        for (i, lease) in request.leases.iter().enumerate() {
            if self.check_id(lease.execution_id()).is_ok() {
                groups
                    .entry(lease.execution_id().partition().get())
                    .or_default()
                    .push(i);
            }
        }
        let calls: Vec<(&Vec<usize>, Cmd)> = groups
            .iter()
            .map(|(p, positions)| {
                let mut c = Server::fcall("baton_renew", &self.base(*p));
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
        let replies = try_join_all(calls.iter().map(|(_, c)| self.run(c))).await?;
        for ((positions, _), reply) in calls.iter().zip(replies) {
            for (&i, status) in positions.iter().zip(array(reply)?) {
                statuses[i] = match text(&status)? {
                    "renewed" => RenewStatus::Renewed,
                    "cancelled" => RenewStatus::Cancelled,
                    _ => RenewStatus::Lost,
                };
            }
        }
        Ok(request
            .leases
            .into_iter()
            .zip(statuses)
            .map(|(lease, status)| RenewOutcome {
                lease,
                expires_at: (status == RenewStatus::Renewed).then_some(expires),
                status,
            })
            .collect())
    }

    async fn complete(&self, lease: &LeaseToken, result: Vec<u8>) -> Result<ExecutionSnapshot> {
        self.inner.limits.check_payload("result", result.len())?;
        let id = lease.execution_id();
        self.check_id(id)?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let pending = complete::Pending {
            partition: id.partition().get(),
            uuid: id.uuid().simple().to_string(),
            attempt: lease.attempt(),
            nonce: hex_nonce(lease.nonce()),
            result,
            now: self.now().as_millis(),
            reply,
        };
        let closed = || EngineError::unavailable("the Valkey backend is shutting down");
        self.inner.completer.send(pending).map_err(|_| closed())?;
        let (reply, payload) = answer.await.map_err(|_| closed())??;
        self.outcome(id, "complete", reply, payload).await
    }

    async fn fail(&self, lease: &LeaseToken, failure: Failure) -> Result<ExecutionSnapshot> {
        let id = lease.execution_id();
        self.check_id(id)?;
        let error = self.inner.limits.clip_text(failure.error);
        let retry_after = failure
            .retry_after
            .map(|d| {
                d.as_millis()
                    .min(u128::from(baton_core::Backoff::MAX_DELAY_MS))
                    .to_string()
            })
            .unwrap_or_default();
        let mut c = Server::fcall("baton_fail", &self.base(id.partition().get()));
        c.arg(id.uuid().simple().to_string())
            .arg(lease.attempt())
            .arg(hex_nonce(lease.nonce()))
            .arg(error)
            .arg(if failure.retryable { "1" } else { "0" })
            .arg(retry_after)
            .arg(self.now().as_millis());
        let (reply, payload) = self.with_payload(id, c).await?;
        self.outcome(id, "fail", reply, payload).await
    }

    async fn cancel(&self, id: &ExecutionId, reason: Option<String>) -> Result<ExecutionSnapshot> {
        self.check_id(id)?;
        let reason = reason.map(|r| self.inner.limits.clip_text(r));
        let mut c = Server::fcall("baton_cancel", &self.base(id.partition().get()));
        c.arg(id.uuid().simple().to_string())
            .arg(if reason.is_some() { "1" } else { "0" })
            .arg(reason.unwrap_or_default())
            .arg(self.now().as_millis());
        let (reply, payload) = self.with_payload(id, c).await?;
        self.outcome(id, "cancel", reply, payload).await
    }

    async fn describe(&self, id: &ExecutionId) -> Result<ExecutionSnapshot> {
        let fields = self.read_fields(id, true).await?;
        decode::snapshot(id.clone(), &fields)
    }

    async fn wait_for_work(
        &self,
        namespace: &Namespace,
        lanes: &[Lane],
        timeout: Duration,
    ) -> Result<()> {
        let lanes: Vec<&str> = lanes.iter().map(Lane::as_str).collect();
        self.inner
            .wake
            .wait(namespace.as_str(), &lanes, timeout)
            .await;
        Ok(())
    }

    async fn promote_due(&self, partition: PartitionId, limit: usize) -> Result<ScanReport> {
        self.inner.partitions.check_scan(partition, limit)?;
        let p = partition.get();
        self.repair_hints(p).await?;
        let mut c = Server::fcall("baton_promote", &self.base(p));
        c.arg(self.now().as_millis()).arg(limit);
        let reply = self.run(&c).await?;
        self.scan_report(p, reply, 0).await
    }

    async fn reclaim_expired_leases(
        &self,
        partition: PartitionId,
        limit: usize,
    ) -> Result<ScanReport> {
        self.inner.partitions.check_scan(partition, limit)?;
        let p = partition.get();
        let mut c = Server::fcall("baton_reclaim", &self.base(p));
        c.arg(self.now().as_millis())
            .arg(limit)
            .arg(self.inner.limits.max_error_bytes);
        let reply = self.run(&c).await?;
        self.scan_report(p, reply, 0).await
    }

    async fn expire_deadlines(&self, partition: PartitionId, limit: usize) -> Result<ScanReport> {
        self.inner.partitions.check_scan(partition, limit)?;
        let p = partition.get();
        let mut c = Server::fcall("baton_expire", &self.base(p));
        c.arg(self.now().as_millis()).arg(limit);
        let reply = self.run(&c).await?;
        self.scan_report(p, reply, 0).await
    }

    async fn trim_terminal(
        &self,
        partition: PartitionId,
        retention: Duration,
        limit: usize,
    ) -> Result<ScanReport> {
        self.inner.partitions.check_scan(partition, limit)?;
        let p = partition.get();
        let cutoff = self.now().saturating_sub(retention);
        let mut c = Server::fcall("baton_trim", &self.base(p));
        c.arg(cutoff.as_millis()).arg(limit);
        let reply = self.run(&c).await?;
        let offset = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        self.scan_report(p, reply, offset).await
    }

    async fn sync_ownership(&self, node: &NodeId, ttl: Duration) -> Result<Ownership> {
        self.inner.limits.check_lease(ttl)?;
        let now = self.now();
        let expires = now.saturating_add(ttl);
        let mut c = Server::fcall("baton_sync_ownership", &self.ctl());
        c.arg(node.as_str())
            .arg(now.as_millis())
            .arg(expires.as_millis())
            .arg(self.inner.partitions.get());
        let items = array(self.run(&c).await?)?;
        if items.len() < 2 {
            return Err(decode::corrupt("a short ownership reply"));
        }
        let live = u32::try_from(int(&items[0])?).unwrap_or(u32::MAX);
        let target = u32::try_from(int(&items[1])?).unwrap_or(u32::MAX);
        let owned = items[2..]
            .iter()
            .map(|v| {
                int(v).and_then(|p| {
                    u16::try_from(p)
                        .map(PartitionId)
                        .map_err(|_| decode::corrupt("a partition number"))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Ownership {
            owned,
            live_nodes: live,
            target,
            expires_at: expires,
        })
    }

    async fn release_ownership(&self, node: &NodeId) -> Result<()> {
        let mut c = Server::fcall("baton_release_ownership", &self.ctl());
        c.arg(node.as_str()).arg(self.inner.partitions.get());
        self.run(&c).await?;
        Ok(())
    }
}

#[async_trait]
impl AdminBackend for ValkeyBackend {
    async fn list(&self, filter: &ListFilter, page: Page) -> Result<ListPage> {
        page.validate()?;
        let after = page
            .cursor
            .map(|c| c.after_uuid().simple().to_string())
            .unwrap_or_default();
        let want = page.limit + 1;
        let calls: Vec<(u16, Cmd)> = self
            .inner
            .partitions
            .iter()
            .map(|p| {
                let mut c = Server::fcall("baton_list", &self.base(p.get()));
                c.arg(filter.namespace.as_str())
                    .arg(&after)
                    .arg(want)
                    .arg(LIST_BUDGET.max(want))
                    .arg(filter.lane.as_ref().map(|l| l.as_str()).unwrap_or(""))
                    .arg(filter.state.map(|s| s.as_str()).unwrap_or(""))
                    .arg(filter.kind.as_ref().map(|k| k.as_str()).unwrap_or(""))
                    .arg(filter.tag.as_ref().map(|t| t.0.as_str()).unwrap_or(""))
                    .arg(filter.tag.as_ref().map(|t| t.1.as_str()).unwrap_or(""));
                (p.get(), c)
            })
            .collect();
        let replies = try_join_all(calls.iter().map(|(_, c)| self.run(c))).await?;
        // Entries up to the lowest frontier were examined in every
        // partition; beyond it some partition was not looked at yet.
        let mut bound: Option<(Uuid, u16)> = None;
        let mut found: Vec<(Uuid, u16, Fields)> = Vec::new();
        for ((p, _), reply) in calls.iter().zip(replies) {
            let mut items = array(reply)?.into_iter();
            let frontier = text(
                &items
                    .next()
                    .ok_or_else(|| decode::corrupt("empty list reply"))?,
            )?
            .to_owned();
            if !frontier.is_empty() {
                let u = Uuid::try_parse(&frontier)
                    .map_err(|_| decode::corrupt("a list frontier that is not a uuid"))?;
                if bound.is_none_or(|(b, _)| u < b) {
                    bound = Some((u, *p));
                }
            }
            while let (Some(uuid), Some(record), Some(payload)) =
                (items.next(), items.next(), items.next())
            {
                let u =
                    Uuid::try_parse(text(&uuid)?).map_err(|_| decode::corrupt("a listed uuid"))?;
                let mut fields = Fields::from_record(bytes(&record)?)?;
                fields.set("pl", bytes(&payload)?.to_vec());
                found.push((u, *p, fields));
            }
        }
        found.sort_by_key(|(u, _, _)| *u);
        if let Some((b, _)) = bound {
            found.retain(|(u, _, _)| *u <= b);
        }
        let more = found.len() > page.limit;
        let mut items = Vec::with_capacity(page.limit.min(found.len()));
        for (u, p, fields) in found.into_iter().take(page.limit) {
            let id = decode::execution_id(
                &u.simple().to_string(),
                PartitionId(p),
                self.inner.partitions,
            )?;
            items.push(decode::snapshot(id, &fields)?);
        }
        let next_cursor = if more {
            items.last().map(|s| ListCursor::after(&s.id))
        } else if let Some((b, p)) = bound {
            let id = decode::execution_id(
                &b.simple().to_string(),
                PartitionId(p),
                self.inner.partitions,
            )?;
            Some(ListCursor::after(&id))
        } else {
            None
        };
        Ok(ListPage { items, next_cursor })
    }

    async fn namespaces(&self, limit: usize) -> Result<Vec<Namespace>> {
        Page::first(limit).validate()?;
        let mut names = BTreeSet::new();
        for (field, n) in self.all_counts().await? {
            if n > 0
                && let Some((ns, _)) = field.split_once('/')
            {
                names.insert(ns.to_owned());
            }
        }
        names
            .iter()
            .take(limit)
            .map(|n| baton_core::raw::stored::parse("namespace", "counters", n))
            .collect()
    }

    async fn counts(&self, namespace: &Namespace) -> Result<BTreeMap<Lane, StateCounts>> {
        let prefix = format!("{namespace}/");
        let mut out: BTreeMap<Lane, StateCounts> = BTreeMap::new();
        for (field, n) in self.all_counts().await? {
            let Some(rest) = field.strip_prefix(&prefix) else {
                continue;
            };
            if n <= 0 {
                continue;
            }
            let (lane, state) = rest
                .split_once('/')
                .ok_or_else(|| EngineError::corruption(format!("count field {field:?}")))?;
            let lane: Lane = lane
                .parse()
                .map_err(|_| EngineError::corruption(format!("count field {field:?}")))?;
            let state: State = state
                .parse()
                .map_err(|_| EngineError::corruption(format!("count field {field:?}")))?;
            *out.entry(lane).or_default().get_mut(state) += n as u64;
        }
        Ok(out)
    }

    async fn partition_owners(&self) -> Result<Vec<PartitionOwner>> {
        self.owners().await
    }

    async fn attempts(&self, id: &ExecutionId) -> Result<Vec<AttemptRecord>> {
        let fields = self.read_fields(id, false).await?;
        decode::attempts(id, &fields)
    }
}

impl ValkeyBackend {
    /// Every partition's counters, `<ns>/<lane>/<state>` → count.
    async fn all_counts(&self) -> Result<Vec<(String, i64)>> {
        let calls: Vec<Cmd> = self
            .inner
            .partitions
            .iter()
            .map(|p| {
                let mut c = redis::cmd("HGETALL");
                c.arg(format!("{}:counts", self.base(p.get())));
                c
            })
            .collect();
        let replies = try_join_all(calls.iter().map(|c| self.run(c))).await?;
        let mut out = Vec::new();
        for reply in replies {
            let items = match reply {
                Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
                other => array(other)?,
            };
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                out.push((text(&k)?.to_owned(), int(&v)?));
            }
        }
        Ok(out)
    }

    /// Partition owners, read from the control slot.
    async fn owners(&self) -> Result<Vec<PartitionOwner>> {
        let now = self.now();
        let read = |suffix: &str| {
            let mut c = redis::cmd("HGETALL");
            c.arg(format!("{}:{suffix}", self.ctl()));
            c
        };
        let (owners, expiries) = (read("owners"), read("oexp"));
        let (owners, expiries) = tokio::try_join!(self.run(&owners), self.run(&expiries))?;
        let pairs = |v: Value| -> Result<HashMap<u16, String>> {
            let items = match v {
                Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
                other => array(other)?,
            };
            let mut map = HashMap::new();
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                if let Ok(p) = text(&k)?.parse::<u16>() {
                    map.insert(p, text(&v)?.to_owned());
                }
            }
            Ok(map)
        };
        let owners = pairs(owners)?;
        let expiries = pairs(expiries)?;
        self.inner
            .partitions
            .iter()
            .map(|p| {
                let held = match (owners.get(&p.get()), expiries.get(&p.get())) {
                    (Some(o), Some(e)) => {
                        let e: i64 = e.parse().map_err(|_| {
                            EngineError::corruption(format!("partition {p}: expiry {e:?}"))
                        })?;
                        if e > now.as_millis() {
                            let node: NodeId = o.parse().map_err(|_| {
                                EngineError::corruption(format!("partition {p}: owner {o:?}"))
                            })?;
                            Some((node, Timestamp::from_millis(e)))
                        } else {
                            None
                        }
                    }
                    _ => None,
                };
                Ok(PartitionOwner {
                    partition: p,
                    expires_at: held.as_ref().map(|h| h.1),
                    owner: held.map(|h| h.0),
                })
            })
            .collect()
    }
}
