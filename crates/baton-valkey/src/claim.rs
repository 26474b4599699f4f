//! `claim` (hint read, peeks, one `baton_claim` per partition) and
//! `wait_for_work`.

use crate::*;
use baton_core::Upstream;
use baton_core::raw::{rules, stored};

/// What a claim took in one partition (each with its member, for claim
/// order across partitions), and the lanes (`<ns>/<lane>`) a limit covers
/// that hold waiting work there, which it left to the limited path.
pub(crate) type Taken = (Vec<(String, Claim)>, Vec<String>);

/// Fresh lease nonces for `n` claims, and their text as the claim
/// functions take them.
pub(crate) fn nonces(n: usize) -> (Vec<u64>, String) {
    let nonces = LeaseToken::random_nonces(n);
    let text = nonces.iter().map(|n| hex_nonce(*n)).collect();
    (nonces, text)
}

/// The version keys `request` accepts, lowest and highest, as the claim
/// functions take them ('' for an open end).
pub(crate) fn version_args(request: &ClaimRequest) -> (String, String) {
    let (min, max) = rules::version_bounds(&request.versions);
    (min.unwrap_or_default(), max.unwrap_or_default())
}

/// How long `request`'s worker keeps an idle session, in ms.
pub(crate) fn idle_ms(request: &ClaimRequest) -> u64 {
    u64::try_from(request.session_idle.as_millis()).unwrap_or(u64::MAX)
}

impl ValkeyBackend {
    pub(crate) async fn claim_in(
        &self,
        partition: u16,
        want: usize,
        common: &[String],
        request: &ClaimRequest,
        expires: Timestamp,
    ) -> Result<Taken> {
        let mut c = Server::fcall("baton_claim", &self.base(partition));
        c.arg(&common[0]).arg(&common[1]).arg(want);
        for a in &common[2..] {
            c.arg(a);
        }
        let (nonces, nonce_text) = nonces(want);
        let (vmin, vmax) = version_args(request);
        c.arg(request.worker_id.as_str())
            .arg(expires.as_millis())
            .arg(nonce_text)
            .arg(vmin)
            .arg(vmax)
            .arg(idle_ms(request));
        let reply = self.run(&c).await?;
        self.claimed(partition, reply, &nonces, request, expires)
            .await
    }

    /// Reads the reply of `baton_claim` or `baton_limit_claim` in
    /// `partition` (`nonces`: those the call was given, in order), then the
    /// payloads and what else the claimed executions need.
    pub(crate) async fn claimed(
        &self,
        partition: u16,
        reply: Value,
        nonces: &[u64],
        request: &ClaimRequest,
        expires: Timestamp,
    ) -> Result<Taken> {
        let mut items = array(reply)?.into_iter();
        let (seq, empties) = seq_empties(&mut items)?;
        self.drop_hints(partition, seq, empties);
        let limited = lane_list(&mut items)?;
        let flat: Vec<Value> = items.collect();
        if !flat.len().is_multiple_of(CLAIM_ENTRY) {
            return Err(read::corrupt("a short claim entry"));
        }
        let mut entries = Vec::with_capacity(flat.len() / CLAIM_ENTRY);
        let mut flat = flat.into_iter();
        while flat.len() > 0 {
            entries.push(flat.by_ref().take(CLAIM_ENTRY).collect::<Vec<_>>());
        }
        if entries.is_empty() {
            return Ok((Vec::new(), limited));
        }
        // Payloads are immutable and live as long as their record, so they
        // are read after the claim, straight from their keys; so are the
        // upstream records of claimed dependents (in the same pipeline, only
        // when there are any): their outcomes no longer change, or, for a
        // dependent its policy released early, are read as they are now; and
        // so are the signals of an execution that waited (only when its wait
        // log is not empty): those its ended waits consumed change only by
        // a suspend under this very claim; and so are the steps of an
        // execution that recorded some (only when its step count is not
        // zero): only this claim's lease records more.
        let base = self.base(partition);
        let mut mget = redis::cmd("MGET");
        let mut upstreams: BTreeSet<&str> = BTreeSet::new();
        let mut waited: Vec<usize> = Vec::new();
        let mut stepped: Vec<usize> = Vec::new();
        for (i, f) in entries.iter().enumerate() {
            if f.len() < CLAIM_ENTRY {
                return Err(read::corrupt("a short claim entry"));
            }
            mget.arg(format!("{base}:p:{}", text(&f[1])?));
            upstreams.extend(text(&f[7])?.split(' ').filter(|u| !u.is_empty()));
            if !text(&f[8])?.is_empty() {
                waited.push(i);
            }
            if !matches!(text(&f[9])?, "" | "0") {
                stepped.push(i);
            }
        }
        let (payloads, records, mut lists, mut hashes) =
            if upstreams.is_empty() && waited.is_empty() && stepped.is_empty() {
                (self.run(&mget).await?, None, HashMap::new(), HashMap::new())
            } else {
                let mut pipe = redis::pipe();
                pipe.add_command(mget);
                if !upstreams.is_empty() {
                    let records = pipe.cmd("MGET");
                    for u in &upstreams {
                        records.arg(format!("{base}:e:{u}"));
                    }
                }
                for &i in &waited {
                    pipe.cmd("LRANGE")
                        .arg(format!("{base}:sg:{}", text(&entries[i][1])?))
                        .arg(0)
                        .arg(-1);
                }
                for &i in &stepped {
                    pipe.cmd("HGETALL")
                        .arg(format!("{base}:st:{}", text(&entries[i][1])?));
                }
                let mut replies = self.inner.server.run_pipe(&pipe).await?.into_iter();
                let mut next = || {
                    replies.next().ok_or_else(|| {
                        read::corrupt("a pipeline answered fewer replies than commands")
                    })
                };
                let payloads = next()?;
                let records = if upstreams.is_empty() {
                    None
                } else {
                    Some(next()?)
                };
                let mut lists = HashMap::with_capacity(waited.len());
                for &i in &waited {
                    lists.insert(i, next()?);
                }
                let mut hashes = HashMap::with_capacity(stepped.len());
                for &i in &stepped {
                    hashes.insert(i, next()?);
                }
                (payloads, records, lists, hashes)
            };
        let payloads = array(payloads)?;
        let mut upstream = HashMap::new();
        if let Some(records) = records {
            let records = array(records)?;
            if records.len() != upstreams.len() {
                return Err(read::corrupt(
                    "MGET answered a different number of upstream records",
                ));
            }
            upstream.reserve(upstreams.len());
            for (u, record) in upstreams.iter().zip(records) {
                let id = read::execution_id(u, PartitionId(partition), self.inner.partitions)?;
                // An upstream is trimmed only with its flow, after every
                // dependent finished: one missing is left out.
                if let Value::BulkString(record) = record {
                    let fields = Fields::from_record(&record)?;
                    let facts = Upstream {
                        state: fields.state(&format!("execution {id}"))?,
                        result: fields.raw("res").map(<[u8]>::to_vec),
                    };
                    upstream.insert((*u).to_owned(), (id, facts));
                }
            }
        }
        if payloads.len() != entries.len() {
            return Err(read::corrupt(
                "MGET answered a different number of payloads",
            ));
        }
        let mut out = Vec::new();
        for (i, (f, payload)) in entries.into_iter().zip(payloads).enumerate() {
            let member = text(&f[0])?.to_owned();
            let id =
                read::execution_id(text(&f[1])?, PartitionId(partition), self.inner.partitions)?;
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
                .ok_or_else(|| read::corrupt("more claims than requested"))?;
            let waits = rules::parse_wait_log(&ctx, text(&f[8])?)?;
            let signals = match lists.remove(&i) {
                Some(list) => crate::wait::decode_signals(&id, list, true)?,
                None => Vec::new(),
            };
            // Only done steps are replayed (only they hold an output, as
            // decode_steps checks); a failed one runs again.
            let steps = match hashes.remove(&i) {
                Some(all) => crate::memory::decode_steps(&id, all)?
                    .into_iter()
                    .filter_map(|s| Some((s.name, s.output?)))
                    .collect(),
                None => BTreeMap::new(),
            };
            let claim = Claim {
                session: rules::stored_session(&ctx, non_empty(text(&f[10])?))?,
                version: rules::stored_version(&ctx, non_empty(text(&f[11])?))?,
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
                upstream: text(&f[7])?
                    .split(' ')
                    .filter_map(|u| upstream.get(u).cloned())
                    .collect(),
                waits,
                signals,
                steps,
                id,
            };
            out.push((member, claim));
        }
        Ok((out, limited))
    }

    /// Peeks partitions (each with its own `want`): their claim-order
    /// members, first first, and the lanes a limit covers that hold waiting
    /// work there (left out of the members). Lanes found empty are dropped
    /// from the hints.
    ///
    /// Most partitions are read with plain commands: the unconditional
    /// waiting sets are already in claim order. Only a partition holding
    /// waiting work with conditions (capabilities, a deadline, a session,
    /// a version) for one of the lanes is asked through `baton_peek`,
    /// which checks them.
    pub(crate) async fn peek(
        &self,
        wants: &[(u16, usize)],
        common: &[String],
        request: &ClaimRequest,
    ) -> Result<BTreeMap<u16, (Vec<String>, Vec<String>)>> {
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
            out.extend(self.peek_conditional(&conditional, common, request).await?);
        }
        Ok(out)
    }

    /// One partition's first `want` unconditional waiting members over
    /// `lanes`, read with plain commands, and the lanes a limit covers with
    /// waiting work there (whose members are left out, as `baton_claim`
    /// leaves them out); None when a lane also has conditional waiting work
    /// there (the caller asks `baton_peek`).
    pub(crate) async fn look(
        &self,
        partition: u16,
        want: usize,
        ns: &str,
        lanes: &[String],
    ) -> Result<Option<(Vec<String>, Vec<String>)>> {
        let base = self.base(partition);
        let mut pipe = redis::pipe();
        // The sequence first: a lane seen empty after it cannot lose a hint
        // raised for work that arrives later (see `baton_hint_drop`).
        pipe.cmd("GET").arg(format!("{base}:seq"));
        // The lanes paused here are left out, as `baton_claim` leaves them
        // out (and never reported empty: their hints stay for the resume).
        pipe.cmd("HMGET").arg(format!("{base}:lp:{ns}")).arg(lanes);
        // The lanes a limit covers here ('' for every lane): their work is
        // the limited path's.
        pipe.cmd("HMGET")
            .arg(format!("{base}:lim:{ns}"))
            .arg("")
            .arg(lanes);
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
                .ok_or_else(|| read::corrupt("a peek answered fewer replies than commands"))
        };
        let seq = opt_int(&next()?)?.unwrap_or(0);
        let paused = array(next()?)?;
        let covered = array(next()?)?;
        if paused.len() != lanes.len() || covered.len() != lanes.len() + 1 {
            return Err(read::corrupt("HMGET answered a different number of lanes"));
        }
        let every = covered[0] != Value::Nil;
        let mut members = Vec::new();
        let mut empties = Vec::new();
        let mut limited = Vec::new();
        let mut conditional = false;
        for ((lane, paused), covered) in lanes.iter().zip(paused).zip(&covered[1..]) {
            let found = array(next()?)?;
            let has_conditional = int(&next()?)? > 0;
            if paused != Value::Nil {
                continue;
            }
            if found.is_empty() && !has_conditional {
                empties.push(format!("{ns}/{lane}"));
                continue;
            }
            if every || *covered != Value::Nil {
                limited.push(format!("{ns}/{lane}"));
                continue;
            }
            conditional |= has_conditional;
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
        Ok(Some((members, limited)))
    }

    /// Peeks partitions through `baton_peek`, which checks conditions.
    pub(crate) async fn peek_conditional(
        &self,
        wants: &[(u16, usize)],
        common: &[String],
        request: &ClaimRequest,
    ) -> Result<BTreeMap<u16, (Vec<String>, Vec<String>)>> {
        let (vmin, vmax) = version_args(request);
        let calls: Vec<Cmd> = wants
            .iter()
            .map(|(p, want)| {
                let mut c = Server::fcall("baton_peek", &self.base(*p));
                c.arg(&common[0]).arg(&common[1]).arg(*want);
                for a in &common[2..] {
                    c.arg(a);
                }
                c.arg(&vmin).arg(&vmax).arg(request.worker_id.as_str());
                c
            })
            .collect();
        let replies = try_join_all(calls.iter().map(|c| self.run(c))).await?;
        let mut out = BTreeMap::new();
        for ((p, _), reply) in wants.iter().zip(replies) {
            let mut items = array(reply)?.into_iter();
            let (seq, empties) = seq_empties(&mut items)?;
            self.drop_hints(*p, seq, empties);
            let limited = lane_list(&mut items)?;
            let members = items
                .map(|m| text(&m).map(str::to_owned))
                .collect::<Result<Vec<_>>>()?;
            out.insert(*p, (members, limited));
        }
        Ok(out)
    }
}

pub(crate) async fn claim(b: &ValkeyBackend, request: ClaimRequest) -> Result<Vec<Claim>> {
    request.validate(&b.inner.limits)?;
    let now = b.now();
    let expires = now.saturating_add(request.lease_ttl);
    let ns = request.namespace.as_str();
    let lanes: BTreeSet<&str> = request.lanes.iter().map(Lane::as_str).collect();
    let hint_calls: Vec<Cmd> = lanes
        .iter()
        .map(|l| {
            let mut c = redis::cmd("ZRANGE");
            c.arg(b.hint_key(&format!("{ns}/{l}"))).arg(0).arg(-1);
            c
        })
        .collect();
    // The worker is recorded even when it finds nothing (an idle worker is
    // live too), beside the hint reads rather than before them.
    let (_, hints) = tokio::join!(
        crate::ops::saw_claim(b, &request, now),
        try_join_all(hint_calls.iter().map(|c| b.inner.server.raw(c)))
    );
    let hints = hints?;
    let mut candidates = BTreeSet::new();
    for h in hints {
        for p in array(h)? {
            if let Ok(p) = text(&p)?.parse::<u16>()
                && p < b.inner.partitions.get()
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
    // The lanes a limit covers with waiting work, per partition, as the
    // peeks and claims found them: claimed through the limited path after.
    let mut limited: BTreeMap<u16, BTreeSet<String>> = BTreeMap::new();
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
        let mut seen: BTreeMap<u16, Vec<String>> = BTreeMap::new();
        for (p, (members, lanes)) in b.peek(&first, &common, &request).await? {
            seen.insert(p, members);
            limited.entry(p).or_default().extend(lanes);
        }
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
                for (p, (members, _)) in b.peek(&again, &common, &request).await? {
                    seen.insert(p, members);
                }
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
            .map(|(p, want)| b.claim_in(*p, *want, &common, &request, expires)),
    )
    .await?;
    let mut claims: Vec<(String, Claim)> = Vec::new();
    for ((p, _), (taken, lanes)) in plan.iter().zip(results) {
        claims.extend(taken);
        limited.entry(*p).or_default().extend(lanes);
    }
    limited.retain(|_, lanes| !lanes.is_empty());
    // Work of lanes a limit covers is claimed only through the limited
    // path (the claims above skipped it): only when some holds waiting work
    // and the claim has room left, so a namespace without limits never pays
    // for it.
    if claims.len() < request.max && !limited.is_empty() {
        let want = request.max - claims.len();
        // The claims above took place: a failure of the limited path must
        // not drop them (their runs would hold leases nobody works on).
        match crate::limits::claim_limited(b, &request, now, expires, limited, want).await {
            Ok(more) => claims.extend(more),
            Err(e) if claims.is_empty() => return Err(e),
            Err(e) => tracing::warn!(
                error = %e,
                namespace = ns,
                claimed = claims.len(),
                "the limited path of a claim failed; answering the claims it has"
            ),
        }
    }
    claims.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(claims.into_iter().map(|(_, c)| c).collect())
}

pub(crate) async fn wait_for_work(
    b: &ValkeyBackend,
    namespace: &Namespace,
    lanes: &[Lane],
    timeout: Duration,
) -> Result<()> {
    b.inner.wake.wait_for(namespace, lanes, timeout).await;
    Ok(())
}

/// Values per claimed execution in a `baton_claim` reply.
const CLAIM_ENTRY: usize = 12;

/// A reply's text with '' read as none.
fn non_empty(t: &str) -> Option<&str> {
    (!t.is_empty()).then_some(t)
}

/// The next item of a claim or peek reply: a list of lanes (`<ns>/<lane>`).
pub(crate) fn lane_list(items: &mut std::vec::IntoIter<Value>) -> Result<Vec<String>> {
    array(
        items
            .next()
            .ok_or_else(|| read::corrupt("a claim reply without its limited lanes"))?,
    )?
    .iter()
    .map(|v| text(v).map(str::to_owned))
    .collect()
}

pub(crate) fn seq_empties(items: &mut std::vec::IntoIter<Value>) -> Result<(i64, Vec<String>)> {
    let seq = int(&items
        .next()
        .ok_or_else(|| read::corrupt("empty claim reply"))?)?;
    let empties = array(
        items
            .next()
            .ok_or_else(|| read::corrupt("claim reply without empty lanes"))?,
    )?
    .iter()
    .map(|v| text(v).map(str::to_owned))
    .collect::<Result<Vec<_>>>()?;
    Ok((seq, empties))
}
