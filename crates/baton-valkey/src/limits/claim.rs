//! The limited claim path: the work of lanes a limit covers, which
//! `baton_claim` leaves out. In rounds until the claim is full or the work
//! is read to its end: peek the candidates of each partition in claim
//! order after the last one read (`baton_limit_peek`, passing over the key
//! values already known to have no room), judge those up to where every
//! partition was read in one call on the namespace's limit slot
//! (`baton_limit_admit`: the admission takes their slots atomically, so the
//! cap holds under any number of claimers), claim exactly the admitted in
//! their partitions (`baton_limit_claim`) and give back the slots of those
//! another claim or a cancel took first (`baton_limit_release`).

use std::collections::HashSet;

use baton_core::Page;
use futures_util::future::join_all;

use super::LIMIT_LAPSE_GRACE;
use crate::claim::Taken;
use crate::*;

/// Most rounds one claim makes (each reads at most [`SCAN_BUDGET`] index
/// entries per partition); a claim that found nothing in them answers what
/// it has (the worker's next claim reads again).
const MAX_ROUNDS: usize = 32;
/// Most index entries one `baton_limit_peek` reads.
const SCAN_BUDGET: usize = 2000;
/// Most index entries one claim's peeks read in all: a claim behind a
/// deeper backlog of keys without room answers what it found by then.
const MAX_READ: usize = 20_000;
/// Most key values of one limit a peek is asked to pass over; beyond them
/// the admission skips their work one by one (the verdict never depends on
/// the list).
const MAX_PASSED_KEYS: usize = 500;

/// A waiting execution a peek found.
struct Candidate {
    partition: u16,
    member: String,
    uuid: String,
    /// The attempt its claim starts (its holder is `<uuid>:<attempt>`).
    attempt: String,
    lane: String,
    kind: String,
    /// Its tags as stored (a JSON object).
    tags: String,
}

impl Candidate {
    fn holder(&self) -> String {
        format!("{}:{}", self.uuid, self.attempt)
    }
}

/// A partition's share of the claim: its limited lanes with work and where
/// its next peek starts.
struct Part {
    partition: u16,
    lanes: Vec<String>,
    cursor: String,
    done: bool,
}

/// The keys without room the admissions reported, by (lane, key) of their
/// limit: `None` for every value (a cap of 0), else these values.
type Passed = BTreeMap<(String, String), Option<BTreeSet<String>>>;

/// Claims up to `want` executions of the lanes a limit covers (`limited`:
/// per partition the lanes as `<ns>/<lane>` found holding waiting work),
/// for `request`; answers them with their members, as `claim_in` does.
///
/// Claims that took place are never dropped: when a call fails part way
/// (a node briefly unreachable), what was claimed until then is answered
/// and the failure logged; only a claim that took nothing answers it.
pub(crate) async fn claim_limited(
    b: &ValkeyBackend,
    request: &ClaimRequest,
    now: Timestamp,
    expires: Timestamp,
    limited: BTreeMap<u16, BTreeSet<String>>,
    want: usize,
) -> Result<Vec<(String, Claim)>> {
    let mut out = Vec::new();
    match rounds(b, request, now, expires, limited, want, &mut out).await {
        Ok(()) => Ok(out),
        Err(e) if out.is_empty() => Err(e),
        Err(e) => {
            tracing::warn!(
                error = %e,
                namespace = request.namespace.as_str(),
                claimed = out.len(),
                "a limited claim failed part way; answering what it claimed"
            );
            Ok(out)
        }
    }
}

/// The rounds of [`claim_limited`], adding each claim to `out` as soon as
/// it took place.
async fn rounds(
    b: &ValkeyBackend,
    request: &ClaimRequest,
    now: Timestamp,
    expires: Timestamp,
    limited: BTreeMap<u16, BTreeSet<String>>,
    want: usize,
    out: &mut Vec<(String, Claim)>,
) -> Result<()> {
    let ns = request.namespace.as_str();
    let prefix = format!("{ns}/");
    let lim = b.limit_base(ns);
    let lapse = expires.saturating_add(LIMIT_LAPSE_GRACE);
    let caps: Vec<&str> = request.capabilities.iter().map(|c| c.as_str()).collect();
    let caps = caps.join(",");
    let mut parts: Vec<Part> = limited
        .into_iter()
        .map(|(partition, lanes)| Part {
            partition,
            lanes: lanes
                .iter()
                .filter_map(|l| l.strip_prefix(&prefix))
                .map(str::to_owned)
                .collect(),
            cursor: String::new(),
            done: false,
        })
        .collect();
    let mut passed = Passed::new();
    let mut read = 0;
    for _ in 0..MAX_ROUNDS {
        let need = want.saturating_sub(out.len());
        let active: Vec<usize> = (0..parts.len()).filter(|i| !parts[*i].done).collect();
        if need == 0 || active.is_empty() || read >= MAX_READ {
            break;
        }
        let fetch = need.saturating_mul(2).clamp(32, Page::MAX_LIMIT);
        let peeks = try_join_all(
            active
                .iter()
                .map(|i| peek(b, &parts[*i], request, now, &caps, fetch, &passed)),
        )
        .await?;
        // Candidates are judged in claim order across partitions only up
        // to where every partition still holding more was read.
        let cutoff: Option<String> = peeks
            .iter()
            .filter(|p| !p.exhausted)
            .map(|p| p.last.clone())
            .min();
        let mut judged = Vec::new();
        for (
            i,
            Peeked {
                found,
                exhausted,
                read: n,
                ..
            },
        ) in active.iter().zip(peeks)
        {
            read += n;
            let mut beyond = false;
            for c in found {
                if cutoff.as_ref().is_some_and(|cut| &c.member > cut) {
                    beyond = true;
                } else {
                    judged.push(c);
                }
            }
            let part = &mut parts[*i];
            if let Some(cut) = &cutoff {
                part.cursor.clone_from(cut);
            }
            part.done = exhausted && !beyond;
        }
        if judged.is_empty() {
            continue;
        }
        judged.sort_by(|a, b| a.member.cmp(&b.member));
        let (generation, admitted) = admit(b, &lim, now, lapse, need, &judged, &mut passed).await?;
        if admitted.len() < need {
            // Fewer taken than wanted: the rest of what was judged had no
            // room under some limit.
            let refused = judged.len().saturating_sub(admitted.len());
            baton_core::raw::counters::passed_by_limits(refused as u64);
        }
        if admitted.is_empty() {
            continue;
        }
        let mut by_part: BTreeMap<u16, Vec<(&Candidate, bool)>> = BTreeMap::new();
        for (pos, held) in admitted {
            let c = &judged[pos];
            by_part.entry(c.partition).or_default().push((c, held));
        }
        // Each partition's claim stands on its own: one failing loses none
        // of the others'.
        let results = join_all(by_part.iter().map(|(p, items)| {
            claim_named(b, *p, items, request, now, expires, &caps, &generation)
        }))
        .await;
        let mut taken: HashSet<String> = HashSet::new();
        let mut lost: Vec<String> = Vec::new();
        let mut failed = None;
        for ((p, items), result) in by_part.iter().zip(results) {
            match result {
                Ok((claims, _)) => {
                    for (member, claim) in claims {
                        taken.insert(claim.id.uuid().simple().to_string());
                        out.push((member, claim));
                    }
                    // Admitted but not claimed (claimed, cancelled, paused
                    // or retagged since the peek, or a limit changed
                    // meanwhile): their slots go back.
                    lost.extend(
                        items
                            .iter()
                            .filter(|(c, held)| *held && !taken.contains(&c.uuid))
                            .map(|(c, _)| c.holder()),
                    );
                }
                // Whether that claim took place is unknown: its slots are
                // kept (given back, a run that did start would go
                // uncounted). They lapse with the lease it would have had,
                // when the reclaim of such a run releases them too.
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        partition = *p,
                        "a limited claim of a partition failed"
                    );
                    failed = Some(e);
                }
            }
        }
        if !lost.is_empty() {
            let mut c = Server::fcall("baton_limit_release", &lim);
            c.arg("unclaimed").arg(&lost);
            // Slots not given back lapse at the lease's expiry plus the
            // grace: a failure here only holds them that long.
            if let Err(e) = b.run(&c).await {
                tracing::warn!(
                    error = %e,
                    holders = lost.len(),
                    "giving back unclaimed limit slots failed"
                );
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
    }
    if out.len() < want && !passed.is_empty() {
        let lanes: Vec<&str> = request.lanes.iter().map(|l| l.as_str()).collect();
        b.inner.wake.held_back(ns, &lanes);
    }
    Ok(())
}

/// What one partition's peek found.
struct Peeked {
    found: Vec<Candidate>,
    /// The last member read.
    last: String,
    /// Whether everything after the cursor was read.
    exhausted: bool,
    /// How many index entries it read.
    read: usize,
}

/// One partition's candidates after its cursor.
async fn peek(
    b: &ValkeyBackend,
    part: &Part,
    request: &ClaimRequest,
    now: Timestamp,
    caps: &str,
    fetch: usize,
    passed: &Passed,
) -> Result<Peeked> {
    let mut c = Server::fcall("baton_limit_peek", &b.base(part.partition));
    c.arg(now.as_millis())
        .arg(request.namespace.as_str())
        .arg(fetch)
        .arg(caps)
        .arg(part.lanes.len())
        .arg(&part.lanes)
        .arg(&part.cursor)
        .arg(SCAN_BUDGET)
        .arg(passed.len());
    for ((lane, key), values) in passed {
        c.arg(lane).arg(key);
        match values {
            None => {
                c.arg(-1);
            }
            Some(values) => {
                c.arg(values.len()).arg(values.iter().collect::<Vec<_>>());
            }
        }
    }
    let (vmin, vmax) = crate::claim::version_args(request);
    c.arg(vmin).arg(vmax).arg(request.worker_id.as_str());
    let mut items = array(b.run(&c).await?)?.into_iter();
    let (seq, empties) = crate::claim::seq_empties(&mut items)?;
    b.drop_hints(part.partition, seq, empties);
    let (Some(last), Some(exhausted), Some(n)) = (items.next(), items.next(), items.next()) else {
        return Err(read::corrupt("a short limited peek reply"));
    };
    let last = text(&last)?.to_owned();
    let exhausted = int(&exhausted)? == 1;
    let n = usize::try_from(int(&n)?).unwrap_or(0);
    let rest: Vec<Value> = items.collect();
    if !rest.len().is_multiple_of(6) {
        return Err(read::corrupt("a short limited peek entry"));
    }
    let found = rest
        .chunks(6)
        .map(|f| {
            Ok(Candidate {
                partition: part.partition,
                member: text(&f[0])?.to_owned(),
                uuid: text(&f[1])?.to_owned(),
                attempt: text(&f[2])?.to_owned(),
                lane: text(&f[3])?.to_owned(),
                kind: text(&f[4])?.to_owned(),
                tags: text(&f[5])?.to_owned(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Peeked {
        found,
        last,
        exhausted,
        read: n,
    })
}

/// Judges `judged` (in claim order) in the namespace's limit slot: answers
/// the generation it judged by and the positions admitted, each with
/// whether it holds slots; adds the keys without room to `passed`.
async fn admit(
    b: &ValkeyBackend,
    lim: &str,
    now: Timestamp,
    lapse: Timestamp,
    want: usize,
    judged: &[Candidate],
    passed: &mut Passed,
) -> Result<(String, Vec<(usize, bool)>)> {
    let mut c = Server::fcall("baton_limit_admit", lim);
    c.arg(now.as_millis()).arg(lapse.as_millis()).arg(want);
    for cand in judged {
        c.arg(cand.holder())
            .arg(&cand.lane)
            .arg(&cand.kind)
            .arg(&cand.tags);
    }
    let mut items = array(b.run(&c).await?)?.into_iter();
    let (Some(generation), Some(admitted), Some(blocked)) =
        (items.next(), items.next(), items.next())
    else {
        return Err(read::corrupt("a short admission reply"));
    };
    let generation = match generation {
        Value::Int(n) => n.to_string(),
        other => text(&other)?.to_owned(),
    };
    let admitted = array(admitted)?
        .iter()
        .map(|v| {
            let pos = int(v)?;
            let index = usize::try_from(pos.unsigned_abs())
                .ok()
                .and_then(|p| p.checked_sub(1))
                .filter(|p| *p < judged.len())
                .ok_or_else(|| read::corrupt(format_args!("an admitted position {pos}")))?;
            Ok((index, pos > 0))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut flat = array(blocked)?.into_iter();
    while let (Some(lane), Some(key), Some(n)) = (flat.next(), flat.next(), flat.next()) {
        let spec = (text(&lane)?.to_owned(), text(&key)?.to_owned());
        let n = int(&n)?;
        if n < 0 {
            passed.insert(spec, None);
            continue;
        }
        let mut values = Vec::new();
        for _ in 0..n {
            let v = flat
                .next()
                .ok_or_else(|| read::corrupt("a short list of keys without room"))?;
            values.push(text(&v)?.to_owned());
        }
        if let Some(known) = passed.entry(spec).or_insert_with(|| Some(BTreeSet::new())) {
            for v in values {
                if known.len() >= MAX_PASSED_KEYS {
                    break;
                }
                known.insert(v);
            }
        }
    }
    Ok((generation, admitted))
}

/// Claims the admitted `items` of `partition` (each with whether it holds
/// slots) if they are still waiting at the attempt admitted, with the tags
/// the admission judged.
#[allow(clippy::too_many_arguments)]
async fn claim_named(
    b: &ValkeyBackend,
    partition: u16,
    items: &[(&Candidate, bool)],
    request: &ClaimRequest,
    now: Timestamp,
    expires: Timestamp,
    caps: &str,
    generation: &str,
) -> Result<Taken> {
    let (nonces, nonce_text) = crate::claim::nonces(items.len());
    let mut c = Server::fcall("baton_limit_claim", &b.base(partition));
    c.arg(now.as_millis())
        .arg(request.namespace.as_str())
        .arg(caps)
        .arg(request.worker_id.as_str())
        .arg(expires.as_millis())
        .arg(generation)
        .arg(nonce_text);
    let (vmin, vmax) = crate::claim::version_args(request);
    c.arg(vmin).arg(vmax).arg(crate::claim::idle_ms(request));
    for (cand, held) in items {
        c.arg(&cand.uuid)
            .arg(&cand.attempt)
            .arg(if *held { "1" } else { "0" })
            .arg(&cand.tags);
    }
    let reply = b.run(&c).await?;
    b.claimed(partition, reply, &nonces, request, expires).await
}
