//! The Lua helpers that mirror a rule of `baton_core::raw::rules` answer
//! exactly what the rule answers: tables of cases are run through both (the
//! Lua side by `EVAL` of `lua/common.lua` plus a small driver on a real
//! Valkey) and compared case by case.
//!
//! Without a server and outside CI the test prints why and passes as
//! skipped; under CI it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use baton_core::raw::cascade;
use baton_core::raw::rules::{self, AttemptFacts, LeaseVerdict};
use baton_core::{
    AttemptOutcome, Backoff, DependencyMode, DependencyPolicy, EngineError, ExecutionId,
    ExecutionSnapshot, Failure, Kind, Lane, LeaseToken, Limits, Namespace, PartitionCount,
    PartitionId, RetryPolicy, State, Timestamp, UpstreamFailure,
};
use baton_testkit::servers;
use serde_json::{Value, json};

const COMMON: &str = include_str!("../../../lua/common.lua");
const T: i64 = 1_900_000_000_000;

/// Runs `driver` after the library's shared helpers, with `cases` as JSON in
/// ARGV[1]; answers one text per case.
async fn run_lua(driver: &str, cases: &[Value]) -> Option<Vec<String>> {
    let server = servers::valkey().await?;
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let script = format!(
        "{}\nlocal cases = cjson.decode(ARGV[1])\nlocal out = {{}}\n{driver}\nreturn out",
        COMMON.replace("__BATON_LIBRARY_VERSION__", "test")
    );
    let answers: Vec<String> = redis::cmd("EVAL")
        .arg(script)
        .arg(0)
        .arg(serde_json::to_string(cases).unwrap())
        .query_async(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("the Lua driver failed: {e}"));
    assert_eq!(answers.len(), cases.len(), "one answer per case");
    Some(answers)
}

fn snapshot(
    id: &ExecutionId,
    state: State,
    attempts: u32,
    retry: RetryPolicy,
) -> ExecutionSnapshot {
    ExecutionSnapshot {
        session: None,
        version: None,
        id: id.clone(),
        namespace: Namespace::new("n").unwrap(),
        lane: Lane::new("l").unwrap(),
        kind: Kind::new("k").unwrap(),
        state,
        priority: 0,
        payload: Vec::new(),
        tags: BTreeMap::new(),
        attempts,
        retry,
        idempotency_key: None,
        required_capabilities: BTreeSet::new(),
        parent: None,
        child_key: None,
        root: id.clone(),
        created_at: Timestamp::from_millis(T),
        updated_at: Timestamp::from_millis(T),
        run_at: None,
        deadline: None,
        finished_at: None,
        worker_id: None,
        lease_expires_at: None,
        result: None,
        last_error: None,
        cancel_reason: None,
        waiting_on: None,
        suspension: None,
        pause: None,
        custom_status: None,
        status_version: 0,
        progress_seq: 0,
    }
}

fn hex(n: u64) -> String {
    format!("{n:016x}")
}

fn verdict_text(v: Result<LeaseVerdict, EngineError>) -> String {
    match v {
        Ok(LeaseVerdict::Live) => "live".into(),
        Ok(LeaseVerdict::Ended(o)) => format!("ended:{}", o.as_str()),
        Err(EngineError::LeaseLost { reason, .. }) => format!("lost:{reason}"),
        Err(EngineError::Corruption { .. }) => "corrupt".into(),
        Err(other) => format!("other:{other}"),
    }
}

/// The outcome an ended attempt has in an execution of `state`.
fn last_outcome(state: State) -> Option<AttemptOutcome> {
    match state {
        State::Running => None,
        State::Waiting | State::Delayed => Some(AttemptOutcome::LeaseExpired),
        State::Blocked | State::Suspended => Some(AttemptOutcome::Released),
        State::Paused => Some(AttemptOutcome::Paused),
        State::Completed => Some(AttemptOutcome::Completed),
        State::Failed => Some(AttemptOutcome::Failed),
        State::Cancelled => Some(AttemptOutcome::Cancelled),
        State::Expired => Some(AttemptOutcome::Expired),
        // Skipped executions never ran.
        State::Skipped => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_loaded_mirrors_judge_lease() {
    let partitions = PartitionCount::new(4).unwrap();
    let states = [
        State::Running,
        State::Waiting,
        State::Delayed,
        State::Blocked,
        State::Suspended,
        State::Paused,
        State::Completed,
        State::Failed,
        State::Cancelled,
        State::Expired,
    ];
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for state in states {
        for att in 1..=2u32 {
            for deadline in [None, Some(T - 1), Some(T + 60_000)] {
                for now in [T, T + 30_000, T + 31_000] {
                    for lease_attempt in 1..=att + 1 {
                        for right_nonce in [true, false] {
                            let id = ExecutionId::generate(partitions);
                            let mut snap = snapshot(&id, state, att, RetryPolicy::default());
                            snap.deadline = deadline.map(Timestamp::from_millis);
                            let mut h = serde_json::Map::new();
                            h.insert("st".into(), json!(state.as_str()));
                            h.insert("att".into(), json!(att.to_string()));
                            let mut stored_nonce = None;
                            let mut facts = BTreeMap::new();
                            for k in 1..=att {
                                let nonce = 0x100 + u64::from(k);
                                let outcome = if k < att {
                                    Some(AttemptOutcome::Failed)
                                } else {
                                    last_outcome(state)
                                };
                                h.insert(format!("a{k}w"), json!("w"));
                                h.insert(format!("a{k}n"), json!(hex(nonce)));
                                if let Some(o) = outcome {
                                    h.insert(format!("a{k}o"), json!(o.as_str()));
                                }
                                facts.insert(k, AttemptFacts { nonce, outcome });
                            }
                            if state == State::Running {
                                let expires = T + 30_000;
                                snap.lease_expires_at = Some(Timestamp::from_millis(expires));
                                h.insert("le".into(), json!(expires.to_string()));
                                stored_nonce = Some(0x100 + u64::from(att));
                            }
                            if let Some(d) = deadline {
                                h.insert("dl".into(), json!(d.to_string()));
                            }
                            let nonce = if right_nonce {
                                0x100 + u64::from(lease_attempt)
                            } else {
                                0xdead
                            };
                            let lease = LeaseToken::new(id.clone(), lease_attempt, nonce);
                            expected.push(verdict_text(rules::judge_lease(
                                &lease,
                                &snap,
                                stored_nonce,
                                facts.get(&lease_attempt).copied(),
                                Timestamp::from_millis(now),
                            )));
                            cases.push(json!({
                                "h": h,
                                "attempt": lease_attempt.to_string(),
                                "nonce": hex(nonce),
                                "now": now,
                            }));
                        }
                    }
                }
            }
        }
    }
    let driver = r#"
for i, c in ipairs(cases) do
  local h, reply, ended = check_loaded(c.h, c.attempt, c.nonce, c.now)
  if reply then
    if reply[1] == 'corrupt' then out[i] = 'corrupt'
    else out[i] = reply[1] .. ':' .. tostring(reply[2]) end
  elseif ended then out[i] = 'ended:' .. ended
  else out[i] = 'live' end
end"#;
    let Some(lua) = run_lua(driver, &cases).await else {
        return;
    };
    for (i, (rust, lua)) in expected.iter().zip(&lua).enumerate() {
        assert_eq!(rust, lua, "case {i}: {}", cases[i]);
    }
    let live = expected.iter().filter(|v| *v == "live").count();
    assert!(
        live > 0 && live < expected.len(),
        "the table covers both sides"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settle_mirrors_settle_failure() {
    let partitions = PartitionCount::new(4).unwrap();
    let limits = Limits::default();
    let ready = T - 5_000;
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for max_attempts in [1u32, 3, 5] {
        for (initial_ms, max_ms) in [(0u64, 0u64), (1_000, 60_000), (1_000, 1_000), (250, 9_000)] {
            for multiplier in [1.0f64, 1.5, 2.0] {
                for jitter in [false, true] {
                    for attempt in 1..=4u32 {
                        for retryable in [true, false] {
                            for retry_after in [None, Some(0u64), Some(5_000)] {
                                let retry = RetryPolicy {
                                    max_attempts,
                                    backoff: Backoff {
                                        initial_ms,
                                        max_ms,
                                        multiplier,
                                        jitter,
                                    },
                                };
                                let id = ExecutionId::generate(partitions);
                                let snap = snapshot(&id, State::Running, attempt, retry);
                                let failure = Failure {
                                    error: "boom".into(),
                                    retryable,
                                    retry_after: retry_after.map(Duration::from_millis),
                                };
                                // Attempts ended by a release are not
                                // failures: every other case has one.
                                let released = (attempt + u32::from(retryable)) % 2;
                                let s = rules::settle_failure(
                                    &snap,
                                    released,
                                    &failure,
                                    &limits,
                                    Timestamp::from_millis(T),
                                );
                                let ms = |t: Option<Timestamp>| {
                                    t.map(|t| t.as_millis().to_string()).unwrap_or_default()
                                };
                                expected.push(format!(
                                    "{}|{}|{}|{}",
                                    s.state.as_str(),
                                    ms(s.run_at),
                                    s.ready_at.map_or(ready.to_string(), |t| {
                                        t.as_millis().to_string()
                                    }),
                                    ms(s.finished_at)
                                ));
                                let rp = format!(
                                    "{max_attempts} {initial_ms} {max_ms} {multiplier} {}",
                                    u8::from(jitter)
                                );
                                let mut h = json!({ "att": attempt.to_string(), "rp": rp, "rd": ready.to_string() });
                                if released > 0 {
                                    h["rl"] = json!(released.to_string());
                                }
                                cases.push(json!({
                                    "h": h,
                                    "uuid": id.uuid().simple().to_string(),
                                    "retryable": retryable,
                                    "retry_after": retry_after,
                                    "now": T,
                                }));
                            }
                        }
                    }
                }
            }
        }
    }
    let driver = r#"
for i, c in ipairs(cases) do
  local after = c.retry_after
  if after == cjson.null then after = nil end
  local to, ra, rd, fa = settle(c.h, c.uuid, c.retryable, after, c.now)
  out[i] = to .. '|' .. (ra or '') .. '|' .. (rd or '') .. '|' .. (fa or '')
end"#;
    let Some(lua) = run_lua(driver, &cases).await else {
        return;
    };
    for (i, (rust, lua)) in expected.iter().zip(&lua).enumerate() {
        assert_eq!(rust, lua, "case {i}: {}", cases[i]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_ownership_mirrors_the_rule() {
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for count in [1u16, 5, 16] {
        let partitions = PartitionCount::new(count).unwrap();
        for live in [0u64, 1, 2, 3, 7, 20] {
            for mine in [
                vec![],
                vec![0],
                (0..count).collect::<Vec<_>>(),
                vec![1, 3, 4],
                vec![2, 40],
            ] {
                let ids: Vec<PartitionId> = mine.iter().map(|&p| PartitionId(p)).collect();
                let plan = rules::plan_ownership(partitions, live, &ids);
                let list = |ps: &[PartitionId]| {
                    ps.iter()
                        .map(|p| p.get().to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                };
                expected.push(format!(
                    "{}|{}|{}|{}",
                    plan.share,
                    list(&plan.keep),
                    list(&plan.release),
                    plan.take
                ));
                cases.push(json!({ "count": count, "live": live, "mine": mine }));
            }
        }
    }
    let driver = r#"
for i, c in ipairs(cases) do
  local share, keep, release, take = plan_ownership(c.count, c.live, c.mine)
  out[i] = share .. '|' .. table.concat(keep, ',') .. '|' .. table.concat(release, ',') .. '|' .. take
end"#;
    let Some(lua) = run_lua(driver, &cases).await else {
        return;
    };
    for (i, (rust, lua)) in expected.iter().zip(&lua).enumerate() {
        assert_eq!(rust, lua, "case {i}: {}", cases[i]);
    }
}

fn verdict_name(v: rules::DependencyVerdict) -> &'static str {
    match v {
        rules::DependencyVerdict::Pending => "pending",
        rules::DependencyVerdict::Release => "release",
        rules::DependencyVerdict::Skip => "skip",
        rules::DependencyVerdict::Fail => "fail",
        rules::DependencyVerdict::Run => "run",
    }
}

/// Every policy shape for `total` dependencies, with each way to react to
/// an unmeetable one.
fn policies(total: u32) -> Vec<DependencyPolicy> {
    let mut modes = vec![DependencyMode::AllOf, DependencyMode::AnyOf];
    modes.extend((1..=total).map(DependencyMode::Quorum));
    let mut out = Vec::new();
    for mode in modes {
        for unmet in [
            UpstreamFailure::Skip,
            UpstreamFailure::Fail,
            UpstreamFailure::Run,
        ] {
            out.push(DependencyPolicy::new(mode, unmet));
        }
    }
    out
}

/// `judge_dependencies` (and the state each verdict names, and the
/// message of a dependent failed by its policy) answers what the rules do,
/// for every policy and every reachable pair of counters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn judge_dependencies_mirrors_the_rule() {
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for total in 1..=4u32 {
        for policy in policies(total) {
            for done in 0..=total {
                for bad in 0..=total - done {
                    let verdict = rules::judge_dependencies(policy, total, done, bad);
                    let state = verdict.state().map(State::as_str).unwrap_or("");
                    let failure = if verdict == rules::DependencyVerdict::Fail {
                        rules::dependency_failure(policy, total, bad)
                    } else {
                        String::new()
                    };
                    expected.push(format!("{}|{state}|{failure}", verdict_name(verdict)));
                    cases.push(json!({
                        "dp": policy.to_string(), "total": total, "done": done, "bad": bad,
                    }));
                }
            }
        }
    }
    let driver = r#"
for i, c in ipairs(cases) do
  local v = judge_dependencies(c.dp, c.total, c.done, c.bad)
  local failure = ''
  if v == 'fail' then failure = dependency_failure(c.dp, c.total, c.bad) end
  out[i] = v .. '|' .. (VERDICT_STATE[v] or '') .. '|' .. failure
end"#;
    let Some(lua) = run_lua(driver, &cases).await else {
        return;
    };
    for (i, (rust, lua)) in expected.iter().zip(&lua).enumerate() {
        assert_eq!(rust, lua, "case {i}: {}", cases[i]);
    }
    for v in ["pending|", "release|", "skip|", "fail|", "run|"] {
        assert!(
            expected.iter().any(|e| e.starts_with(v)),
            "the table reaches {v}"
        );
    }
}

/// `dependency_finished` answers what the rule does for dependents in
/// every state, with every policy and counters, for a completed upstream
/// and for one that did not complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependency_finished_mirrors_the_rule() {
    let partitions = PartitionCount::new(4).unwrap();
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for (state, paused_from) in [
        (State::Blocked, None),
        (State::Waiting, None),
        (State::Running, None),
        (State::Skipped, None),
        (State::Failed, None),
        (State::Paused, Some(State::Blocked)),
        (State::Paused, Some(State::Waiting)),
        (State::Paused, Some(State::Suspended)),
    ] {
        for total in 1..=3u32 {
            for policy in policies(total) {
                for done in 0..=total {
                    for bad in 0..=total - done {
                        for completed in [true, false] {
                            let id = ExecutionId::generate(partitions);
                            let facts = rules::DependentFacts {
                                id,
                                parent: None,
                                state,
                                paused_from,
                                policy,
                                total,
                                done,
                                bad,
                                has_dependents: false,
                            };
                            expected.push(match rules::dependency_finished(&facts, completed) {
                                None => "none".to_owned(),
                                Some(c) => format!(
                                    "{}|{}|{}|{}",
                                    c.done,
                                    c.bad,
                                    verdict_name(c.verdict),
                                    rules::dependency_settles(&facts, &c)
                                        .map(State::as_str)
                                        .unwrap_or("")
                                ),
                            });
                            // Zero counters are stored as absent fields.
                            let mut h = json!({
                                "st": state.as_str(), "dp": policy.to_string(),
                                "dt": total.to_string(),
                            });
                            if let Some(from) = paused_from {
                                h["pf"] = json!(from.as_str());
                            }
                            if done > 0 {
                                h["dd"] = json!(done.to_string());
                            }
                            if bad > 0 {
                                h["db"] = json!(bad.to_string());
                            }
                            cases.push(json!({ "h": h, "completed": completed }));
                        }
                    }
                }
            }
        }
    }
    let driver = r#"
for i, c in ipairs(cases) do
  local done, bad, verdict = dependency_finished(c.h, c.completed)
  if done then
    out[i] = done .. '|' .. bad .. '|' .. verdict .. '|' .. (dependency_settles(c.h.st, verdict) or '')
  else
    out[i] = 'none'
  end
end"#;
    let Some(lua) = run_lua(driver, &cases).await else {
        return;
    };
    for (i, (rust, lua)) in expected.iter().zip(&lua).enumerate() {
        assert_eq!(rust, lua, "case {i}: {}", cases[i]);
    }
    let changed = expected.iter().filter(|e| *e != "none").count();
    assert!(
        changed > 0 && changed < expected.len(),
        "the table covers both sides"
    );
    assert!(
        expected.iter().any(|e| e.ends_with("|release|")),
        "a paused dependent's release waits for its resume"
    );
}

/// Dependents in memory, for `cascade::dependents`.
struct Graph {
    dependents: BTreeMap<ExecutionId, Vec<ExecutionId>>,
    facts: BTreeMap<ExecutionId, rules::DependentFacts>,
}

#[async_trait::async_trait]
impl cascade::CascadeStore for Graph {
    async fn children_after(
        &mut self,
        _node: &ExecutionId,
        _after: Option<&ExecutionId>,
        _limit: usize,
    ) -> baton_core::Result<Vec<rules::ChildFacts>> {
        Ok(Vec::new())
    }

    async fn cancel_members(
        &mut self,
        _parent: &ExecutionId,
        _members: &[&rules::ChildFacts],
        _reason: &str,
    ) -> baton_core::Result<()> {
        unreachable!("a dependents walk cancels nothing")
    }

    async fn pause_members(
        &mut self,
        _members: &[&rules::ChildFacts],
        _via: &ExecutionId,
    ) -> baton_core::Result<()> {
        unreachable!("a dependents walk pauses nothing")
    }

    async fn resume_members(&mut self, _members: &[&rules::ChildFacts]) -> baton_core::Result<()> {
        unreachable!("a dependents walk resumes nothing")
    }

    async fn dependents_after(
        &mut self,
        upstream: &ExecutionId,
        after: Option<&ExecutionId>,
        limit: usize,
    ) -> baton_core::Result<Vec<rules::DependentFacts>> {
        Ok(self
            .dependents
            .get(upstream)
            .into_iter()
            .flatten()
            .filter(|d| after.is_none_or(|a| *d > a))
            .take(limit)
            .map(|d| self.facts[d].clone())
            .collect())
    }

    async fn settle_dependents(
        &mut self,
        settled: &[(&rules::DependentFacts, rules::DependentChange)],
    ) -> baton_core::Result<()> {
        for (dependent, change) in settled {
            let facts = self.facts.get_mut(&dependent.id).unwrap();
            let to = rules::dependency_settles(facts, change);
            facts.done = change.done;
            facts.bad = change.bad;
            if let Some(state) = to {
                facts.state = state;
                facts.paused_from = None;
            }
        }
        Ok(())
    }
}

/// `dependents_walk` visits, settles and leaves exactly what
/// `cascade::dependents` does, with the same budget: over random graphs of
/// every policy, from completed and unmet upstreams, with budgets from one
/// dependent to all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependents_walk_mirrors_cascade_dependents() {
    let partitions = PartitionCount::new(1).unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for round in 0..24 {
        let mut ids: Vec<ExecutionId> = (0..30)
            .map(|_| ExecutionId::generate_in(PartitionId(0), partitions).unwrap())
            .collect();
        ids.sort();
        let mut graph = Graph {
            dependents: BTreeMap::new(),
            facts: BTreeMap::new(),
        };
        let mut records = Vec::new();
        let mut edges = Vec::new();
        for i in 3..ids.len() {
            let mut ups: Vec<usize> = (0..1 + next(3)).map(|_| next(i)).collect();
            ups.sort();
            ups.dedup();
            let total = ups.len() as u32;
            let all = policies(total);
            let policy = all[next(all.len())];
            for &u in &ups {
                graph
                    .dependents
                    .entry(ids[u].clone())
                    .or_default()
                    .push(ids[i].clone());
                edges.push(json!([
                    ids[u].uuid().simple().to_string(),
                    ids[i].uuid().simple().to_string()
                ]));
            }
            // Some dependents are paused while they wait: they count, but
            // only a verdict that finishes them moves them.
            let paused = next(4) == 0;
            graph.facts.insert(
                ids[i].clone(),
                rules::DependentFacts {
                    id: ids[i].clone(),
                    parent: None,
                    state: if paused {
                        State::Paused
                    } else {
                        State::Blocked
                    },
                    paused_from: paused.then_some(State::Blocked),
                    policy,
                    total,
                    done: 0,
                    bad: 0,
                    has_dependents: false,
                },
            );
        }
        for v in graph.dependents.values_mut() {
            v.sort();
        }
        let has: BTreeSet<ExecutionId> = graph.dependents.keys().cloned().collect();
        for f in graph.facts.values_mut() {
            f.has_dependents = has.contains(&f.id);
            records.push(json!({
                "uuid": f.id.uuid().simple().to_string(),
                "h": {
                    "ns": "n", "lane": "l", "pri": "0", "rd": "0", "st": f.state.as_str(),
                    "pf": f.paused_from.map_or(json!(null), |s| json!(s.as_str())),
                    "dp": f.policy.to_string(), "dt": f.total.to_string(),
                    "hd": if f.has_dependents { json!("1") } else { json!(null) },
                },
            }));
        }
        let start: Vec<(usize, bool)> = if round % 3 == 0 {
            vec![(0, false), (1, true)]
        } else {
            vec![(round % 3, round % 2 == 0)]
        };
        let budget = [1usize, 2, 3, 5, 8, 1_000][round % 6];
        let walked = cascade::dependents(
            &mut graph,
            start
                .iter()
                .map(|&(i, c)| (cascade::CascadeItem::below(ids[i].clone()), c))
                .collect(),
            budget,
        )
        .await
        .unwrap();
        let left: Vec<String> = walked
            .left
            .iter()
            .map(|(item, c)| {
                format!(
                    "{}/{}/{c}",
                    item.node.uuid().simple(),
                    item.after
                        .as_ref()
                        .map(|a| a.uuid().simple().to_string())
                        .unwrap_or_default()
                )
            })
            .collect();
        let states: Vec<String> = graph
            .facts
            .values()
            .map(|f| format!("{}:{}:{}", f.state.as_str(), f.done, f.bad))
            .collect();
        expected.push(format!(
            "{}|{}|{}|{}",
            walked.visited,
            walked.settled,
            left.join(","),
            states.join(",")
        ));
        cases.push(json!({
            "base": format!("mirror-deps-{}:{{p:0}}:{round}", std::process::id()),
            "records": records,
            "edges": edges,
            "start": start.iter().map(|&(i, c)| json!([ids[i].uuid().simple().to_string(), "", c])).collect::<Vec<_>>(),
            "budget": budget,
        }));
    }
    let driver = r#"
for i, c in ipairs(cases) do
  local base = c.base
  for _, r in ipairs(c.records) do
    local h = {}
    for k, v in pairs(r.h) do if v ~= cjson.null then h[k] = v end end
    save(base, r.uuid, h)
  end
  for _, e in ipairs(c.edges) do redis.call('ZADD', base .. ':dn:' .. e[1], 0, e[2]) end
  local stack = c.start
  local woken = {}
  local visited, settled = dependents_walk(base, stack, c.budget, '1000', woken)
  local left, states = {}, {}
  for _, s in ipairs(stack) do left[#left + 1] = s[1] .. '/' .. s[2] .. '/' .. tostring(s[3]) end
  for _, r in ipairs(c.records) do
    local h = load(base, r.uuid)
    states[#states + 1] = h.st .. ':' .. (h.dd or '0') .. ':' .. (h.db or '0')
    redis.call('DEL', base .. ':e:' .. r.uuid, base .. ':dn:' .. r.uuid)
  end
  out[i] = visited .. '|' .. settled .. '|' .. table.concat(left, ',') .. '|' .. table.concat(states, ',')
end"#;
    let Some(lua) = run_lua(driver, &cases).await else {
        return;
    };
    for (i, (rust, lua)) in expected.iter().zip(&lua).enumerate() {
        assert_eq!(rust, lua, "case {i}");
    }
    assert!(
        expected.iter().any(|e| e.split('|').nth(2) != Some("")),
        "some walks stop at their budget"
    );
    for state in ["waiting:", "skipped:", "failed:", "blocked:", "paused:"] {
        assert!(
            expected.iter().any(|e| e.contains(state)),
            "some dependents end {state}"
        );
    }
}

/// `dependency_start` (the check and first judgement of a new dependent
/// inside `baton_create`) answers what `rules::check_dependencies` does:
/// the same refusals, naming the same upstream, and the same counters and
/// starting state, over random mixes of upstreams in every state, of the
/// flow's root, of other namespaces and flows, and of missing ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependency_start_mirrors_check_dependencies() {
    let count = PartitionCount::new(1).unwrap();
    let id = || ExecutionId::generate_in(PartitionId(0), count).unwrap();
    let ns = Namespace::new("n").unwrap();
    let (root, other_root) = (id(), id());
    let mut pool: Vec<(ExecutionId, Option<rules::UpstreamFacts>)> = Vec::new();
    let facts = |namespace: &str, root: Option<&ExecutionId>, state: State| {
        Some(rules::UpstreamFacts {
            namespace: Namespace::new(namespace).unwrap(),
            root: root.cloned(),
            state,
        })
    };
    for state in State::ALL {
        pool.push((id(), facts("n", Some(&root), state)));
    }
    pool.push((root.clone(), facts("n", None, State::Running)));
    pool.push((id(), None));
    pool.push((id(), facts("m", Some(&root), State::Completed)));
    pool.push((id(), facts("n", Some(&other_root), State::Completed)));
    pool.push((other_root.clone(), facts("n", None, State::Waiting)));
    let found: std::collections::HashMap<ExecutionId, rules::UpstreamFacts> = pool
        .iter()
        .filter_map(|(id, f)| f.clone().map(|f| (id.clone(), f)))
        .collect();
    let records: serde_json::Map<String, Value> = found
        .iter()
        .map(|(id, f)| {
            let mut h = json!({ "ns": f.namespace.as_str(), "st": f.state.as_str() });
            if let Some(r) = &f.root {
                h["rt"] = json!(r.to_string());
            }
            (id.uuid().simple().to_string(), h)
        })
        .collect();
    let roots = std::collections::HashMap::from([(root.clone(), root.clone())]);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for _ in 0..600 {
        // Mostly members of the flow, so that most cases are accepted.
        let healthy = State::ALL.len() + 1;
        let mut picks: Vec<usize> = (0..1 + next(4))
            .map(|_| {
                if next(6) == 0 {
                    next(pool.len())
                } else {
                    next(healthy)
                }
            })
            .collect();
        picks.dedup();
        let mut seen = BTreeSet::new();
        picks.retain(|p| seen.insert(*p));
        let deps: Vec<ExecutionId> = picks.iter().map(|&p| pool[p].0.clone()).collect();
        let all = policies(deps.len() as u32);
        let policy = all[next(all.len())];
        let new = baton_core::NewExecution::new(
            ns.clone(),
            Lane::new("l").unwrap(),
            Kind::new("k").unwrap(),
            Vec::new(),
        )
        .with_parent(root.clone())
        .with_dependencies(deps.clone())
        .with_dependency_policy(policy);
        let rows = baton_core::raw::PreparedExecution::prepare_batch(
            vec![new],
            &Limits::default(),
            Timestamp::from_millis(T),
            count,
        )
        .unwrap();
        expected.push(match rules::check_dependencies(&rows, &roots, &found) {
            Ok(starts) => {
                let s = starts[0].unwrap();
                format!(
                    "start|{}|{}|{}|{}",
                    s.total,
                    s.done,
                    s.bad,
                    s.state().as_str()
                )
            }
            Err(EngineError::InvalidInput { value, .. }) => {
                let refused: ExecutionId = value.parse().unwrap();
                format!("refused|{}", refused.uuid().simple())
            }
            Err(other) => panic!("{other}"),
        });
        let uuids: Vec<String> = deps.iter().map(|d| d.uuid().simple().to_string()).collect();
        cases.push(json!({
            "rec": { "ns": "n", "dp": policy.to_string(), "deps": uuids.join(" ") },
            "root": root.uuid().simple().to_string(),
        }));
    }
    let driver = format!(
        r#"
local records = cjson.decode('{}')
for i, c in ipairs(cases) do
  local ups, done, bad, st = dependency_start(c.rec, c.root, function(u) return records[u] end)
  if ups then
    out[i] = 'start|' .. #ups .. '|' .. done .. '|' .. bad .. '|' .. st
  else
    out[i] = 'refused|' .. done
  end
end"#,
        serde_json::to_string(&records).unwrap()
    );
    let Some(lua) = run_lua(&driver, &cases).await else {
        return;
    };
    for (i, (rust, lua)) in expected.iter().zip(&lua).enumerate() {
        assert_eq!(rust, lua, "case {i}: {}", cases[i]);
    }
    for what in ["refused|", "start|"] {
        assert!(
            expected.iter().any(|e| e.starts_with(what)),
            "the table reaches {what}"
        );
    }
    for state in ["|blocked", "|waiting", "|skipped", "|failed"] {
        assert!(
            expected.iter().any(|e| e.ends_with(state)),
            "some dependents start {state}"
        );
    }
}

/// A small deterministic generator for the tables below.
fn xorshift(mut seed: u64) -> impl FnMut(usize) -> usize {
    move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    }
}

fn seqs_text(seqs: Option<Vec<u32>>) -> String {
    match seqs {
        None => "none".into(),
        Some(s) => s.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
    }
}

/// `satisfying` and `timed_out_consumes` (what `baton_suspend`,
/// `baton_signal` and `baton_timeout` consume) answer what the rules do,
/// over random waits on a few names and random buffered signals (of
/// awaited names and others, in any order).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn satisfying_and_timed_out_consumes_mirror_the_rules() {
    use baton_core::WaitCondition;
    let names = ["a", "b", "c", "approval", "x:y"];
    let mut next = xorshift(0x853c_49e6_748f_ea9b);
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for _ in 0..800 {
        let mut points: Vec<&str> = Vec::new();
        for _ in 0..next(4) {
            let n = names[next(names.len())];
            if !points.contains(&n) {
                points.push(n);
            }
        }
        let condition = if next(2) == 0 {
            WaitCondition::All
        } else {
            WaitCondition::Any
        };
        let mut buffered: Vec<(u32, &str)> = Vec::new();
        let mut seq = 0;
        for _ in 0..next(7) {
            seq += 1 + next(3) as u32;
            buffered.push((seq, names[next(names.len())]));
        }
        // The rule takes them in any order.
        if next(2) == 0 {
            buffered.reverse();
        }
        expected.push(format!(
            "{}|{}",
            seqs_text(rules::satisfying(&points, condition, &buffered)),
            seqs_text(Some(rules::timed_out_consumes(&points, &buffered)))
        ));
        cases.push(json!({
            "points": points,
            "condition": condition.as_str(),
            "buffered": buffered.iter().map(|(s, n)| json!([s, n])).collect::<Vec<_>>(),
        }));
    }
    let driver = r#"
local function text(seqs)
  if not seqs then return 'none' end
  return table.concat(seqs, ',')
end
for i, c in ipairs(cases) do
  out[i] = text(satisfying(c.points, c.condition, c.buffered)) .. '|' ..
    text(timed_out_consumes(c.points, c.buffered))
end"#;
    let Some(lua) = run_lua(driver, &cases).await else {
        return;
    };
    for (i, (rust, lua)) in expected.iter().zip(&lua).enumerate() {
        assert_eq!(rust, lua, "case {i}: {}", cases[i]);
    }
    let met = expected.iter().filter(|e| !e.starts_with("none|")).count();
    assert!(
        met > 0 && met < expected.len(),
        "the table covers both sides"
    );
}

/// `signal_admission` (inside `baton_signal`) judges in the rule's order —
/// a held key first, then a terminal execution, then the limit — with the
/// same conflict text; and `check_wait_room` (inside `baton_suspend`)
/// refuses at the same count with the same text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signal_admission_and_wait_room_mirror_the_rules() {
    let id = ExecutionId::generate(PartitionCount::new(4).unwrap());
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for max in [1usize, 3, 100] {
        let limits = Limits {
            max_signals: max,
            max_waits: max,
            ..Limits::default()
        };
        for state in State::ALL {
            for key_seen in [false, true] {
                for held in [0usize, 1, 2, 3, 99, 100, 101] {
                    let admission =
                        match rules::signal_admission(&id, state, key_seen, held, &limits) {
                            Ok(rules::SignalAdmission::Store) => "store".to_owned(),
                            Ok(rules::SignalAdmission::Duplicate) => "duplicate".to_owned(),
                            Ok(rules::SignalAdmission::Ignored) => "ignored".to_owned(),
                            Err(EngineError::Conflict { reason, .. }) => {
                                format!("conflict:{reason}")
                            }
                            Err(other) => panic!("{other}"),
                        };
                    let room = match rules::check_wait_room(&id, held, &limits) {
                        Ok(()) => "room".to_owned(),
                        Err(EngineError::Conflict { reason, .. }) => format!("full:{reason}"),
                        Err(other) => panic!("{other}"),
                    };
                    expected.push(format!("{admission}|{room}"));
                    cases.push(json!({
                        "st": state.as_str(), "seen": key_seen, "held": held, "max": max,
                    }));
                }
            }
        }
    }
    let driver = r#"
for i, c in ipairs(cases) do
  local verdict, why = signal_admission(c.st, c.seen, c.held, c.max)
  local a = verdict or ('conflict:' .. why)
  local full = check_wait_room(c.held, c.max)
  local r = 'room'
  if full then r = 'full:' .. full end
  out[i] = a .. '|' .. r
end"#;
    let Some(lua) = run_lua(driver, &cases).await else {
        return;
    };
    for (i, (rust, lua)) in expected.iter().zip(&lua).enumerate() {
        assert_eq!(rust, lua, "case {i}: {}", cases[i]);
    }
    for what in [
        "store|",
        "duplicate|",
        "ignored|",
        "conflict:",
        "|full:",
        "|room",
    ] {
        assert!(
            expected.iter().any(|e| e.contains(what)),
            "the table reaches {what}"
        );
    }
}

/// `judge_step` (inside `baton_record_step`) judges a step record as the
/// rule does — the limit only for a new step, a done step final unless the
/// same output comes again, a failed one taking the record and counting
/// failures (saturating) — with the same conflict texts, over names, stored
/// steps, outcomes, step counts and limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn judge_step_mirrors_the_rule() {
    use baton_core::{StepName, StepOutcome, StepStatus};
    use rules::{StepFacts, StepWrite};
    let id = ExecutionId::generate(PartitionCount::new(4).unwrap());
    // A stored step: its status, output and failure count.
    let stored: [Option<(StepStatus, Option<&str>, u32)>; 8] = [
        None,
        Some((StepStatus::Done, Some("1"), 0)),
        Some((StepStatus::Done, Some(""), 2)),
        Some((StepStatus::Done, Some("{\"x\":1}"), 1)),
        Some((StepStatus::Failed, None, 0)),
        Some((StepStatus::Failed, None, 1)),
        Some((StepStatus::Failed, None, 7)),
        Some((StepStatus::Failed, None, u32::MAX)),
    ];
    let outcomes = [
        StepOutcome::Done(b"1".to_vec()),
        StepOutcome::Done(b"".to_vec()),
        StepOutcome::Done(b"{\"x\":1}".to_vec()),
        StepOutcome::Failed("boom".into()),
    ];
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for max in [1usize, 3, 1000] {
        let limits = Limits {
            max_steps: max,
            ..Limits::default()
        };
        for name in ["a", "charge:card", "x.y-z_1"] {
            let step = StepName::new(name).unwrap();
            for existing in stored {
                for outcome in &outcomes {
                    for held in [0usize, 1, 2, 3, 999, 1000, 1001] {
                        let facts = existing.map(|(status, output, failures)| StepFacts {
                            status,
                            output: output.map(str::as_bytes),
                            failures,
                        });
                        let verdict = rules::judge_step(
                            &id,
                            State::Running,
                            &step,
                            facts,
                            outcome,
                            held,
                            &limits,
                        );
                        expected.push(match verdict {
                            Ok(StepWrite::Unchanged) => "unchanged".to_owned(),
                            Ok(StepWrite::Write { status, failures }) => {
                                format!("write:{status}:{failures}")
                            }
                            Err(EngineError::Conflict { reason, .. }) => {
                                format!("conflict:{reason}")
                            }
                            Err(other) => panic!("{other}"),
                        });
                        let existing = existing.map(|(status, output, failures)| {
                            let mut e = json!({ "s": status.as_str(), "f": failures.to_string() });
                            if let Some(o) = output {
                                e["o"] = json!(o);
                            }
                            e
                        });
                        let (status, output) = match outcome {
                            StepOutcome::Done(o) => ("done", String::from_utf8(o.clone()).unwrap()),
                            StepOutcome::Failed(e) => ("failed", e.clone()),
                        };
                        cases.push(json!({
                            "name": name, "existing": existing, "status": status,
                            "output": output, "held": held, "max": max,
                        }));
                    }
                }
            }
        }
    }
    // cjson decodes a JSON null as a sentinel, not nil: a new step is sent
    // without the field.
    let driver = r#"
for i, c in ipairs(cases) do
  local existing = c.existing
  if existing == cjson.null then existing = nil end
  local verdict, a, b = judge_step(c.name, existing, c.status, c.output, c.held, c.max)
  if not verdict then out[i] = 'conflict:' .. a
  elseif verdict == 'unchanged' then out[i] = verdict
  else out[i] = verdict .. ':' .. a .. ':' .. s(b) end
end"#;
    let Some(lua) = run_lua(driver, &cases).await else {
        return;
    };
    for (i, (rust, lua)) in expected.iter().zip(&lua).enumerate() {
        assert_eq!(rust, lua, "case {i}: {}", cases[i]);
    }
    for what in [
        "unchanged",
        "write:done:0",
        "write:done:7",
        "write:failed:1",
        "write:failed:8",
        "write:failed:4294967295",
        "conflict:it already recorded",
        "is done with another output",
        "is done; a done step never changes",
    ] {
        assert!(
            expected.iter().any(|e| e.contains(what)),
            "the table reaches {what}"
        );
    }
}

/// `timeout_verdict` (inside `baton_timeout`) reads the stored wait as the
/// rule reads a suspension, and words a failure or a cancel exactly alike:
/// sleeps, one waitpoint and several, under both conditions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_verdict_mirrors_the_rule() {
    use baton_core::{OnTimeout, SignalName, Suspension, WaitCondition};
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    let lists: [&[&str]; 4] = [&[], &["approval"], &["a", "b"], &["x:1", "y.2", "z-3"]];
    for points in lists {
        for condition in [WaitCondition::All, WaitCondition::Any] {
            for on_timeout in [OnTimeout::Resume, OnTimeout::Fail, OnTimeout::Cancel] {
                let waitpoints: Vec<SignalName> = points
                    .iter()
                    .map(|p| SignalName::new(*p).unwrap())
                    .collect();
                let suspension = Suspension {
                    waitpoints: waitpoints.clone(),
                    condition,
                    timeout_at: Some(Timestamp::from_millis(T)),
                    on_timeout,
                };
                expected.push(match rules::timeout_verdict(&suspension) {
                    rules::TimeoutVerdict::Resume => "resume".to_owned(),
                    rules::TimeoutVerdict::Fail(text) => format!("fail:{text}"),
                    rules::TimeoutVerdict::Cancel(text) => format!("cancel:{text}"),
                });
                cases.push(json!({
                    "wp": rules::format_waitpoints(&waitpoints),
                    "wc": condition.as_str(),
                    "wo": on_timeout.as_str(),
                }));
            }
        }
    }
    let driver = r#"
for i, c in ipairs(cases) do
  local verdict, text = timeout_verdict(c.wp, c.wc, c.wo)
  if text then out[i] = verdict .. ':' .. text else out[i] = verdict end
end"#;
    let Some(lua) = run_lua(driver, &cases).await else {
        return;
    };
    for (i, (rust, lua)) in expected.iter().zip(&lua).enumerate() {
        assert_eq!(rust, lua, "case {i}: {}", cases[i]);
    }
}

/// `released_replay` (a release or suspend under a lease whose attempt
/// already ended) answers what the rule does for every way an attempt
/// ends, before and after a later attempt started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_replay_mirrors_the_rule() {
    let partitions = PartitionCount::new(4).unwrap();
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for outcome in AttemptOutcome::ALL {
        for state in [
            State::Waiting,
            State::Suspended,
            State::Blocked,
            State::Running,
            State::Completed,
            State::Failed,
        ] {
            for (lease_attempt, attempts) in [(1u32, 1u32), (1, 2), (2, 2)] {
                let id = ExecutionId::generate(partitions);
                let snap = snapshot(&id, state, attempts, RetryPolicy::default());
                let lease = LeaseToken::new(id.clone(), lease_attempt, 7);
                expected.push(
                    match rules::released_replay("suspend", &lease, outcome, snap) {
                        Ok(_) => "ok".to_owned(),
                        Err(EngineError::Conflict { state, reason, .. }) => {
                            format!("conflict:{}:{reason}", state.as_str())
                        }
                        Err(EngineError::LeaseLost { reason, .. }) => format!("lost:{reason}"),
                        Err(other) => panic!("{other}"),
                    },
                );
                cases.push(json!({
                    "h": { "st": state.as_str(), "att": attempts.to_string() },
                    "attempt": lease_attempt.to_string(),
                    "ended": outcome.as_str(),
                }));
            }
        }
    }
    let driver = r#"
for i, c in ipairs(cases) do
  local refused = released_replay(c.h, c.attempt, c.ended)
  if not refused then out[i] = 'ok'
  elseif refused[1] == 'conflict' then out[i] = 'conflict:' .. refused[2] .. ':' .. refused[3]
  else out[i] = refused[1] .. ':' .. refused[2] end
end"#;
    let Some(lua) = run_lua(driver, &cases).await else {
        return;
    };
    for (i, (rust, lua)) in expected.iter().zip(&lua).enumerate() {
        assert_eq!(rust, lua, "case {i}: {}", cases[i]);
    }
}

/// `judge_state` (inside `baton_set_state`) judges a state write as the
/// rule does — a repeat or a clear of a key not held is unchanged, the
/// limit only for a new key, with the same conflict text — over keys,
/// stored values, new values (or a clear), key counts and limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn judge_state_mirrors_the_rule() {
    use baton_core::StateKey;
    use rules::StateWrite;
    let id = ExecutionId::generate(PartitionCount::new(4).unwrap());
    let values = [None, Some(""), Some("1"), Some("2"), Some("{\"x\":1}")];
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for max in [1usize, 3, 100] {
        let limits = Limits {
            max_state_keys: max,
            ..Limits::default()
        };
        for name in ["a", "cursor:page", "x.y-z_1"] {
            let key = StateKey::new(name).unwrap();
            for existing in values {
                for value in values {
                    for held in [0usize, 1, 2, 3, 99, 100, 101] {
                        let verdict = rules::judge_state(
                            &id,
                            State::Running,
                            &key,
                            existing.map(str::as_bytes),
                            value.map(str::as_bytes),
                            held,
                            &limits,
                        );
                        expected.push(match verdict {
                            Ok(StateWrite::Unchanged) => "unchanged".to_owned(),
                            Ok(StateWrite::Set) => "set".to_owned(),
                            Ok(StateWrite::Clear) => "clear".to_owned(),
                            Err(EngineError::Conflict { reason, .. }) => {
                                format!("conflict:{reason}")
                            }
                            Err(other) => panic!("{other}"),
                        });
                        // cjson decodes a JSON null as a sentinel, not nil:
                        // an absent value is sent without its field.
                        let mut case = json!({ "key": name, "held": held, "max": max });
                        if let Some(e) = existing {
                            case["existing"] = json!(e);
                        }
                        if let Some(v) = value {
                            case["value"] = json!(v);
                        }
                        cases.push(case);
                    }
                }
            }
        }
    }
    let driver = r#"
for i, c in ipairs(cases) do
  local verdict, why = judge_state(c.key, c.existing, c.value, c.held, c.max)
  if not verdict then out[i] = 'conflict:' .. why else out[i] = verdict end
end"#;
    let Some(lua) = run_lua(driver, &cases).await else {
        return;
    };
    for (i, (rust, lua)) in expected.iter().zip(&lua).enumerate() {
        assert_eq!(rust, lua, "case {i}: {}", cases[i]);
    }
    for what in [
        "unchanged",
        "set",
        "clear",
        "conflict:it already holds 3 state keys",
    ] {
        assert!(
            expected.iter().any(|e| e.starts_with(what)),
            "the table reaches {what}"
        );
    }
}

/// `status_version` (inside `baton_set_status`) and `first_kept_frame`
/// (inside `baton_append_progress`) answer what the rules do: a repeated
/// status keeps its version and any other takes the next one; the oldest
/// frame kept follows the bound, a bound of 0 keeping one frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_version_and_first_kept_frame_mirror_the_rules() {
    let statuses = [None, Some(""), Some("\"a\""), Some("{\"stage\":1}")];
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for current in statuses {
        for version in [0u64, 1, 2, 41, 1 << 52] {
            for new in statuses.iter().flatten() {
                let (changed, v) =
                    rules::status_version(current.map(str::as_bytes), version, new.as_bytes());
                expected.push(format!("status:{changed}:{v}"));
                let mut case = json!({ "rule": "status", "version": version, "new": new });
                if let Some(c) = current {
                    case["current"] = json!(c);
                }
                cases.push(case);
            }
        }
    }
    for max in [0usize, 1, 2, 10, 1000] {
        let limits = Limits {
            max_progress_frames: max,
            ..Limits::default()
        };
        for seq in [1u64, 2, 3, 9, 10, 11, 999, 1000, 1001, 1002, 5000] {
            expected.push(format!("frame:{}", rules::first_kept_frame(seq, &limits)));
            cases.push(json!({ "rule": "frame", "seq": seq, "max": max }));
        }
    }
    let driver = r#"
for i, c in ipairs(cases) do
  if c.rule == 'status' then
    local changed, version = status_version(c.current, c.version, c.new)
    out[i] = 'status:' .. tostring(changed) .. ':' .. s(version)
  else
    out[i] = 'frame:' .. s(first_kept_frame(c.seq, c.max))
  end
end"#;
    let Some(lua) = run_lua(driver, &cases).await else {
        return;
    };
    for (i, (rust, lua)) in expected.iter().zip(&lua).enumerate() {
        assert_eq!(rust, lua, "case {i}: {}", cases[i]);
    }
    for what in ["status:true:1", "status:false:41", "frame:1", "frame:4001"] {
        assert!(
            expected.iter().any(|e| e == what),
            "the table reaches {what}"
        );
    }
}

/// `priority_edit_refusal`, `revoke_refusal` and `revoke_error` (inside
/// `baton_set_priority` and `baton_revoke`) answer what
/// `check_priority_edit`, `check_revoke` and `revoke_failure` do, for every
/// state, with and without a worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_checks_mirror_the_rules() {
    let id = ExecutionId::generate(PartitionCount::new(4).unwrap());
    let states = [
        State::Waiting,
        State::Delayed,
        State::Running,
        State::Blocked,
        State::Suspended,
        State::Completed,
        State::Failed,
        State::Cancelled,
        State::Expired,
        State::Skipped,
    ];
    let reason = |r: Result<(), EngineError>| match r {
        Ok(()) => "ok".to_owned(),
        Err(EngineError::Conflict { reason, .. }) => format!("conflict:{reason}"),
        Err(other) => panic!("{other}"),
    };
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for state in states {
        expected.push(format!(
            "{}|{}",
            reason(rules::check_priority_edit(&id, state)),
            reason(rules::check_revoke(&id, state))
        ));
        cases.push(json!({ "rule": "checks", "st": state.as_str() }));
    }
    for worker in [None, Some("w1"), Some("pod-7.host:9/a@b")] {
        for attempts in [1u32, 2, 17] {
            let mut snap = snapshot(&id, State::Running, attempts, RetryPolicy::default());
            snap.worker_id = worker.map(|w| w.parse().unwrap());
            expected.push(rules::revoke_failure(&snap).error);
            let mut h = json!({ "att": attempts.to_string() });
            if let Some(w) = worker {
                h["wid"] = json!(w);
            }
            cases.push(json!({ "rule": "error", "h": h }));
        }
    }
    let driver = r#"
for i, c in ipairs(cases) do
  if c.rule == 'checks' then
    local function text(why)
      if why then return 'conflict:' .. why end
      return 'ok'
    end
    out[i] = text(priority_edit_refusal(c.st)) .. '|' .. text(revoke_refusal(c.st))
  else
    out[i] = revoke_error(c.h)
  end
end"#;
    let Some(lua) = run_lua(driver, &cases).await else {
        return;
    };
    for (i, (rust, lua)) in expected.iter().zip(&lua).enumerate() {
        assert_eq!(rust, lua, "case {i}: {}", cases[i]);
    }
}

/// `tag_edit` (inside `baton_set_tag`) judges a tag edit as the rule does —
/// the same value or removing a missing key is unchanged, the limit holds
/// only for a new key, with the same conflict text — and `encode_tags`
/// writes tags the backend reads back as the rule's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_edit_mirrors_the_rule() {
    use baton_core::{MAX_TAGS, TagKey};
    let id = ExecutionId::generate(PartitionCount::new(4).unwrap());
    let values = [None, Some(""), Some("1"), Some("eu/west \"é\"")];
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for held in [0usize, 1, MAX_TAGS - 1, MAX_TAGS] {
        let mut tags: BTreeMap<TagKey, String> = (0..held)
            .map(|n| (TagKey::new(format!("k{n:02}")).unwrap(), "1".to_owned()))
            .collect();
        for existing in [None, Some("1"), Some("eu/west \"é\"")] {
            if let (Some(v), Some(first)) = (existing, tags.keys().next().cloned()) {
                tags.insert(first, v.to_owned());
            }
            for key in ["k00", "team", "a:b.c-d_e"] {
                let key = TagKey::new(key).unwrap();
                for value in values {
                    let edit = rules::tag_edit(&id, State::Waiting, &tags, &key, value);
                    expected.push(match edit {
                        Ok(None) => "unchanged".to_owned(),
                        Ok(Some(after)) => {
                            format!("write:{}", serde_json::to_string(&after).unwrap())
                        }
                        Err(EngineError::Conflict { reason, .. }) => {
                            format!("conflict:{reason}")
                        }
                        Err(other) => panic!("{other}"),
                    });
                    let mut case = json!({
                        "tags": serde_json::to_string(&tags).unwrap(),
                        "key": key.as_str(),
                        "max": MAX_TAGS,
                    });
                    if let Some(v) = value {
                        case["value"] = json!(v);
                    }
                    cases.push(case);
                }
            }
        }
    }
    let driver = r#"
for i, c in ipairs(cases) do
  local verdict, after = tag_edit(cjson.decode(c.tags), c.key, c.value, c.max)
  if not verdict then out[i] = 'conflict:' .. after
  elseif verdict == 'unchanged' then out[i] = verdict
  else out[i] = 'write:' .. (encode_tags(after) or '{}') end
end"#;
    let Some(lua) = run_lua(driver, &cases).await else {
        return;
    };
    // cjson escapes what serde_json does not (`/`): written tags are
    // compared as the backend reads them.
    let read = |text: &str| -> String {
        match text.strip_prefix("write:") {
            Some(json) => {
                let tags: BTreeMap<String, String> = serde_json::from_str(json).unwrap();
                format!("write:{tags:?}")
            }
            None => text.to_owned(),
        }
    };
    for (i, (rust, lua)) in expected.iter().zip(&lua).enumerate() {
        assert_eq!(read(rust), read(lua), "case {i}: {}", cases[i]);
    }
    for what in [
        "unchanged",
        "write:{}",
        "write:{\"",
        "conflict:it already has 32 tags",
    ] {
        assert!(
            expected.iter().any(|e| e.starts_with(what)),
            "the table reaches {what}"
        );
    }
}

/// `pause_verdict`, `resume_verdict` and `replay_refusal` (inside
/// `baton_pause`, `baton_resume` and `baton_replay`) answer what
/// `check_pause`, `check_resume` and `check_replay` do for every state,
/// with the same conflict texts; `replay_deadline` keeps the deadlines the
/// rule keeps; `renew_refusal` (inside `baton_renew`) answers what the rule
/// does for every way the lease's attempt ended, with its own nonce or
/// another's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_replay_checks_mirror_the_rules() {
    let id = ExecutionId::generate(PartitionCount::new(4).unwrap());
    let conflict = |e: EngineError| match e {
        EngineError::Conflict { reason, .. } => format!("conflict:{reason}"),
        other => panic!("{other}"),
    };
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for state in State::ALL {
        let pause = match rules::check_pause(&id, state) {
            Ok(Some(from)) => from.as_str().to_owned(),
            Ok(None) => "unchanged".to_owned(),
            Err(e) => conflict(e),
        };
        let resume = match rules::check_resume(&id, state) {
            Ok(acts) => acts.to_string(),
            Err(e) => conflict(e),
        };
        let replay = match rules::check_replay(&id, state) {
            Ok(()) => "ok".to_owned(),
            Err(e) => conflict(e),
        };
        expected.push(format!("{pause}|{resume}|{replay}"));
        cases.push(json!({ "rule": "checks", "st": state.as_str() }));
    }
    for deadline in [None, Some(T - 1), Some(T), Some(T + 1)] {
        let kept = rules::replay_deadline(
            deadline.map(Timestamp::from_millis),
            Timestamp::from_millis(T),
        );
        expected.push(kept.map(|t| t.as_millis().to_string()).unwrap_or_default());
        let mut case = json!({ "rule": "deadline", "now": T });
        if let Some(d) = deadline {
            case["dl"] = json!(d.to_string());
        }
        cases.push(case);
    }
    let lease = LeaseToken::new(id.clone(), 2, 9);
    for outcome in AttemptOutcome::ALL.map(Some).into_iter().chain([None]) {
        for nonce in [9u64, 10] {
            let facts = rules::AttemptFacts { nonce, outcome };
            expected.push(match rules::renew_refusal(Some(facts), &lease) {
                baton_core::RenewStatus::Cancelled => "cancelled".to_owned(),
                baton_core::RenewStatus::Paused => "paused".to_owned(),
                baton_core::RenewStatus::Lost => "lost".to_owned(),
                other => panic!("{other:?}"),
            });
            let mut h = json!({ "a2n": hex(nonce) });
            if let Some(o) = outcome {
                h["a2o"] = json!(o.as_str());
            }
            cases.push(json!({ "rule": "renew", "h": h, "nonce": hex(9) }));
        }
    }
    expected.push("lost".to_owned());
    cases.push(json!({ "rule": "renew", "h": {}, "nonce": hex(9) }));
    let driver = r#"
for i, c in ipairs(cases) do
  if c.rule == 'checks' then
    local function text(v, why)
      if v == nil then return 'conflict:' .. why end
      if v == false then return 'unchanged' end
      return v
    end
    local acts, rwhy = resume_verdict(c.st)
    local resumed
    if acts == nil then resumed = 'conflict:' .. rwhy else resumed = tostring(acts) end
    local refused = replay_refusal(c.st)
    local replayed = 'ok'
    if refused then replayed = 'conflict:' .. refused end
    out[i] = text(pause_verdict(c.st)) .. '|' .. resumed .. '|' .. replayed
  elseif c.rule == 'deadline' then
    out[i] = replay_deadline(c.dl, c.now) or ''
  else
    out[i] = renew_refusal(c.h, '2', c.nonce)
  end
end"#;
    let Some(lua) = run_lua(driver, &cases).await else {
        return;
    };
    for (i, (rust, lua)) in expected.iter().zip(&lua).enumerate() {
        assert_eq!(rust, lua, "case {i}: {}", cases[i]);
    }
    for what in ["paused", "cancelled", "lost"] {
        assert!(
            expected.iter().any(|e| e == what),
            "the table reaches {what}"
        );
    }
}

/// `delete_verdict` (inside `baton_delete`) judges a delete as
/// `check_delete` does, for every state, as a root or a child, with and
/// without unfinished descendants or dependents and `force`, with the same
/// conflict texts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_verdict_mirrors_check_delete() {
    let id = ExecutionId::generate(PartitionCount::new(4).unwrap());
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for state in State::ALL {
        for has_parent in [false, true] {
            for (open_below, open_dependents) in
                [(false, false), (true, false), (false, true), (true, true)]
            {
                for force in [false, true] {
                    let facts = rules::DeleteFacts {
                        state,
                        has_parent,
                        open_below,
                        open_dependents,
                        force,
                    };
                    expected.push(match rules::check_delete(&id, facts) {
                        Ok(rules::DeleteVerdict::Remove) => "remove".to_owned(),
                        Ok(rules::DeleteVerdict::CancelFirst) => "cancel_first".to_owned(),
                        Err(EngineError::Conflict { reason, .. }) => format!("conflict:{reason}"),
                        Err(other) => panic!("{other}"),
                    });
                    cases.push(json!({
                        "st": state.as_str(),
                        "parent": has_parent,
                        "open": open_below,
                        "deps": open_dependents,
                        "force": force,
                    }));
                }
            }
        }
    }
    let driver = r#"
for i, c in ipairs(cases) do
  local verdict, why = delete_verdict(c.st, c.parent, c.open, c.deps, c.force)
  if verdict then out[i] = verdict else out[i] = 'conflict:' .. why end
end"#;
    let Some(lua) = run_lua(driver, &cases).await else {
        return;
    };
    for (i, (rust, lua)) in expected.iter().zip(&lua).enumerate() {
        assert_eq!(rust, lua, "case {i}: {}", cases[i]);
    }
    for what in [
        "remove",
        "cancel_first",
        "conflict:it has not finished; pass force",
        "conflict:some of its descendants have not finished, and a child",
        "conflict:executions that have not finished depend on it",
    ] {
        assert!(
            expected.iter().any(|e| e.starts_with(what)),
            "the table reaches {what}"
        );
    }
}

/// `resume_target` (inside `resume_record`) answers what the rule does for
/// every state a pause leaves, with and without a `run_at` before, at or
/// after now, open children, dependencies in every verdict, and held
/// signals that do or do not satisfy the wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_target_mirrors_the_rule() {
    let now = Timestamp::from_millis(T);
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for from in [
        State::Waiting,
        State::Delayed,
        State::Blocked,
        State::Suspended,
    ] {
        for run_at in [None, Some(T - 1), Some(T), Some(T + 1)] {
            for open_children in [0u64, 1, 3] {
                let mut deps = vec![None];
                for total in 1..=2u32 {
                    for policy in policies(total) {
                        for done in 0..=total {
                            for bad in 0..=total - done {
                                deps.push(Some((policy, total, done, bad)));
                            }
                        }
                    }
                }
                for dep in deps {
                    for signalled in [false, true] {
                        let facts = rules::ResumeFacts {
                            from,
                            run_at: run_at.map(Timestamp::from_millis),
                            open_children,
                            deps: dep,
                            signalled,
                        };
                        expected.push(rules::resume_target(&facts, now).as_str().to_owned());
                        let mut case = json!({
                            "from": from.as_str(), "oc": open_children,
                            "signalled": signalled, "now": T,
                        });
                        if let Some(at) = run_at {
                            case["ra"] = json!(at);
                        }
                        if let Some((policy, total, done, bad)) = dep {
                            case["dp"] = json!(policy.to_string());
                            case["dt"] = json!(total);
                            case["dd"] = json!(done);
                            case["db"] = json!(bad);
                        }
                        cases.push(case);
                    }
                }
            }
        }
    }
    let driver = r#"
for i, c in ipairs(cases) do
  out[i] = resume_target(c.from, c.ra, c.oc, c.dp, c.dt, c.dd, c.db, c.signalled, c.now)
end"#;
    let Some(lua) = run_lua(driver, &cases).await else {
        return;
    };
    for (i, (rust, lua)) in expected.iter().zip(&lua).enumerate() {
        assert_eq!(rust, lua, "case {i}: {}", cases[i]);
    }
    for state in ["waiting", "delayed", "blocked", "suspended"] {
        assert!(
            expected.iter().any(|e| e == state),
            "the table reaches {state}"
        );
    }
}

/// A forest in memory, for `cascade::walk_tree`: each node's children
/// (sorted), state, what a pause remembers, `run_at` and open children.
struct Forest {
    children: BTreeMap<ExecutionId, Vec<ExecutionId>>,
    nodes: BTreeMap<ExecutionId, Node>,
    now: Timestamp,
}

#[derive(Clone)]
struct Node {
    state: State,
    paused_from: Option<State>,
    via: Option<ExecutionId>,
    run_at: Option<i64>,
    open_children: u64,
}

#[async_trait::async_trait]
impl cascade::CascadeStore for Forest {
    async fn children_after(
        &mut self,
        node: &ExecutionId,
        after: Option<&ExecutionId>,
        limit: usize,
    ) -> baton_core::Result<Vec<rules::ChildFacts>> {
        Ok(self
            .children
            .get(node)
            .into_iter()
            .flatten()
            .filter(|c| after.is_none_or(|a| *c > a))
            .take(limit)
            .map(|c| rules::ChildFacts {
                id: c.clone(),
                state: self.nodes[c].state,
                attempts: 1,
                has_children: self.children.get(c).is_some_and(|v| !v.is_empty()),
                has_dependents: false,
            })
            .collect())
    }

    async fn cancel_members(
        &mut self,
        _parent: &ExecutionId,
        members: &[&rules::ChildFacts],
        _reason: &str,
    ) -> baton_core::Result<()> {
        for m in members {
            let n = self.nodes.get_mut(&m.id).unwrap();
            *n = Node {
                state: State::Cancelled,
                paused_from: None,
                via: None,
                ..n.clone()
            };
        }
        Ok(())
    }

    async fn pause_members(
        &mut self,
        members: &[&rules::ChildFacts],
        via: &ExecutionId,
    ) -> baton_core::Result<()> {
        for m in members {
            let n = self.nodes.get_mut(&m.id).unwrap();
            let from = rules::check_pause(&m.id, n.state)?.unwrap();
            *n = Node {
                state: State::Paused,
                paused_from: Some(from),
                via: Some(via.clone()),
                ..n.clone()
            };
        }
        Ok(())
    }

    async fn resume_members(&mut self, members: &[&rules::ChildFacts]) -> baton_core::Result<()> {
        for m in members {
            let n = self.nodes.get_mut(&m.id).unwrap();
            let facts = rules::ResumeFacts {
                from: n.paused_from.unwrap(),
                run_at: n.run_at.map(Timestamp::from_millis),
                open_children: n.open_children,
                deps: None,
                signalled: false,
            };
            *n = Node {
                state: rules::resume_target(&facts, self.now),
                paused_from: None,
                via: None,
                ..n.clone()
            };
        }
        Ok(())
    }

    async fn dependents_after(
        &mut self,
        _upstream: &ExecutionId,
        _after: Option<&ExecutionId>,
        _limit: usize,
    ) -> baton_core::Result<Vec<rules::DependentFacts>> {
        Ok(Vec::new())
    }

    async fn settle_dependents(
        &mut self,
        _settled: &[(&rules::DependentFacts, rules::DependentChange)],
    ) -> baton_core::Result<()> {
        unreachable!("nothing in the forest has dependents")
    }
}

/// `tree_walk` (the walk of `baton_cancel`, `baton_pause`, `baton_resume`
/// and the cascade pass) visits, changes and leaves exactly what
/// `cascade::walk_tree` does, with the same budget, for cancels, pauses
/// and resumes over random forests of executions in every live state and
/// some finished or paused ones, with budgets from one child to all of
/// them; a paused one remembers the same state and ancestor, a resumed one
/// takes the same state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_walk_mirrors_walk_tree() {
    let partitions = PartitionCount::new(1).unwrap();
    let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
    let states = [
        State::Waiting,
        State::Delayed,
        State::Blocked,
        State::Running,
        State::Suspended,
        State::Paused,
        State::Paused,
        State::Completed,
        State::Cancelled,
    ];
    let pause_froms = [
        State::Waiting,
        State::Delayed,
        State::Blocked,
        State::Suspended,
    ];
    let now = T;
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for round in 0..36 {
        let mut ids: Vec<ExecutionId> = (0..25)
            .map(|_| ExecutionId::generate_in(PartitionId(0), partitions).unwrap())
            .collect();
        ids.sort();
        let root = ids[0].clone();
        let mut forest = Forest {
            children: BTreeMap::new(),
            nodes: BTreeMap::new(),
            now: Timestamp::from_millis(now),
        };
        let mut edges = Vec::new();
        for i in 1..ids.len() {
            // Parents come before their children, as ids of a flow do.
            let parent = next(i.min(8));
            forest
                .children
                .entry(ids[parent].clone())
                .or_default()
                .push(ids[i].clone());
            edges.push(json!([
                ids[parent].uuid().simple().to_string(),
                ids[i].uuid().simple().to_string()
            ]));
        }
        for v in forest.children.values_mut() {
            v.sort();
        }
        let mut records = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let state = if i == 0 {
                State::Running
            } else {
                states[next(states.len())]
            };
            let paused_from =
                (state == State::Paused).then(|| pause_froms[next(pause_froms.len())]);
            let run_at = [None, Some(now - 1), Some(now + 1_000)][next(3)];
            let open_children = next(3) as u64;
            let node = Node {
                state,
                paused_from,
                via: None,
                run_at,
                open_children,
            };
            let mut h = json!({
                "ns": "n", "lane": "l", "pri": "0", "rd": "0", "st": state.as_str(),
                "att": "1", "a1w": "w", "a1n": hex(1), "a1s": "0",
            });
            if state == State::Running {
                h["wid"] = json!("w");
                h["ln"] = json!(hex(1));
                h["le"] = json!((now + 30_000).to_string());
            } else {
                h["a1o"] = json!("released");
                h["a1e"] = json!("0");
            }
            if let Some(from) = paused_from {
                h["pf"] = json!(from.as_str());
            }
            if let Some(at) = run_at {
                h["ra"] = json!(at.to_string());
            }
            if open_children > 0 {
                h["oc"] = json!(open_children.to_string());
            }
            if state == State::Suspended || paused_from == Some(State::Suspended) {
                h["wp"] = json!("go");
                h["wc"] = json!("all");
                h["wo"] = json!("resume");
            }
            records.push(json!({ "uuid": id.uuid().simple().to_string(), "h": h }));
            forest.nodes.insert(id.clone(), node);
        }
        let budget = [1usize, 2, 3, 5, 8, 1_000][round % 6];
        let (kind, text) = match round % 3 {
            0 => ("cancel", "gone".to_owned()),
            1 => ("pause", root.to_string()),
            _ => ("resume", String::new()),
        };
        let action = match kind {
            "cancel" => cascade::TreeAction::Cancel("gone"),
            "pause" => cascade::TreeAction::Pause(&root),
            _ => cascade::TreeAction::Resume,
        };
        let walked = cascade::walk_tree(
            &mut forest,
            vec![cascade::CascadeItem::below(root.clone())],
            budget,
            action,
        )
        .await
        .unwrap();
        let left: Vec<String> = walked
            .left
            .iter()
            .map(|item| {
                format!(
                    "{}/{}",
                    item.node.uuid().simple(),
                    item.after
                        .as_ref()
                        .map(|a| a.uuid().simple().to_string())
                        .unwrap_or_default()
                )
            })
            .collect();
        let nodes: Vec<String> = ids
            .iter()
            .map(|id| {
                let n = &forest.nodes[id];
                format!(
                    "{}:{}:{}",
                    n.state.as_str(),
                    n.paused_from.map(State::as_str).unwrap_or(""),
                    n.via.as_ref().map(ToString::to_string).unwrap_or_default()
                )
            })
            .collect();
        expected.push(format!(
            "{}|{}|{}|{}",
            walked.visited,
            walked.cancelled,
            left.join(","),
            nodes.join(",")
        ));
        cases.push(json!({
            "base": format!("mirror-tree-{}:{{p:0}}:{round}", std::process::id()),
            "records": records,
            "edges": edges,
            "root": root.uuid().simple().to_string(),
            "budget": budget,
            "kind": kind,
            "text": text,
            "now": now.to_string(),
        }));
    }
    let driver = r#"
for i, c in ipairs(cases) do
  local base = c.base
  for _, r in ipairs(c.records) do save(base, r.uuid, r.h) end
  for _, e in ipairs(c.edges) do redis.call('ZADD', base .. ':ch:' .. e[1], 0, e[2]) end
  local stack = { { c.root, '' } }
  local visited, changed = tree_walk(base, stack, c.budget, c.kind, c.text, c.now, {})
  local left, nodes = {}, {}
  for _, s in ipairs(stack) do left[#left + 1] = s[1] .. '/' .. s[2] end
  for _, r in ipairs(c.records) do
    local h = load(base, r.uuid)
    nodes[#nodes + 1] = h.st .. ':' .. (h.pf or '') .. ':' .. (h.pv or '')
  end
  local keys = redis.call('KEYS', base .. ':*')
  for j = 1, #keys, 100 do redis.call('DEL', unpack(keys, j, math.min(j + 99, #keys))) end
  out[i] = visited .. '|' .. changed .. '|' .. table.concat(left, ',') .. '|' .. table.concat(nodes, ',')
end"#;
    let Some(lua) = run_lua(driver, &cases).await else {
        return;
    };
    for (i, (rust, lua)) in expected.iter().zip(&lua).enumerate() {
        assert_eq!(rust, lua, "case {i}");
    }
    assert!(
        expected.iter().any(|e| e.split('|').nth(2) != Some("")),
        "some walks stop at their budget"
    );
    for state in [
        "cancelled::",
        "paused:waiting:",
        "paused:delayed:",
        "waiting::",
        "delayed::",
        "blocked::",
        "suspended::",
    ] {
        assert!(
            expected.iter().any(|e| e.contains(state)),
            "some executions end {state}"
        );
    }
}

/// `keep_for` (read by `baton_create` for the keep it stamps and by
/// `baton_trim` for the rule in force, over the partition's `ret` hash)
/// answers the rule's keep for every subset of a set of rules (lane rules
/// and namespace rules, of the namespace asked and of others) and every
/// namespace and lane asked: the lane's rule over its namespace's over
/// none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_for_mirrors_the_rule() {
    let universe: [(&str, &str, u64); 6] = [
        ("a", rules::ALL_LANES, 600_000),
        ("a", "x", 5_000),
        ("a", "y", 7_200_000),
        ("b", rules::ALL_LANES, 1_000),
        ("b", "x", 3_153_600_000_000),
        ("a.b", "x", 86_400_000),
    ];
    let asked = [
        ("a", "x"),
        ("a", "y"),
        ("a", "z"),
        ("b", "x"),
        ("b", "y"),
        ("c", "x"),
        ("a.b", "x"),
        ("a.b", "y"),
    ];
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for subset in 0..(1u32 << universe.len()) {
        let held: Vec<(&str, &str, u64)> = universe
            .iter()
            .enumerate()
            .filter(|(i, _)| subset & (1 << i) != 0)
            .map(|(_, r)| *r)
            .collect();
        for (ns, lane) in asked {
            expected.push(match rules::keep_for(held.iter().copied(), ns, lane) {
                Some(keep) => keep.to_string(),
                None => "none".to_owned(),
            });
            let stored: serde_json::Map<String, Value> = held
                .iter()
                .map(|(n, l, k)| (format!("{n}/{l}"), json!(k.to_string())))
                .collect();
            cases.push(json!({ "stored": stored, "ns": ns, "lane": lane }));
        }
    }
    let driver = r#"
for i, c in ipairs(cases) do
  local keep = keep_for(c.stored, c.ns, c.lane)
  if keep then out[i] = s(keep) else out[i] = 'none' end
end"#;
    let Some(lua) = run_lua(driver, &cases).await else {
        return;
    };
    for (i, (rust, lua)) in expected.iter().zip(&lua).enumerate() {
        assert_eq!(rust, lua, "case {i}: {}", cases[i]);
    }
    for what in ["none", "5000", "600000", "3153600000000"] {
        assert!(
            expected.iter().any(|e| e == what),
            "the table reaches {what}"
        );
    }
}

fn trim_verdict_text(v: rules::TrimVerdict) -> String {
    match v {
        rules::TrimVerdict::Trim => "trim".to_owned(),
        rules::TrimVerdict::Later { keep, since } => format!(
            "later:{}:{since}",
            keep.map_or_else(|| "none".to_owned(), |k| k.to_string())
        ),
    }
}

/// `trim_verdict` and `trim_relook` (inside `baton_trim`) answer what the
/// rules do for a rule in force or none, shorter or longer than the
/// default (the default as large as a `Duration` in milliseconds gets),
/// a root whose keep counts from long ago (or the epoch), a keep ago, a
/// millisecond less or now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trim_verdict_and_relook_mirror_the_rules() {
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    let now = T;
    for current in [None, Some(1_000u64), Some(600_000), Some(3_153_600_000_000)] {
        for default_ms in [1_000u64, 3_600_000, u64::MAX] {
            let keep = i64::try_from(current.unwrap_or(default_ms)).unwrap_or(i64::MAX);
            // Times are never before the epoch.
            let keep_ago = now - keep.min(now);
            for since in [
                now - 10 * 3_600_000,
                keep_ago,
                keep_ago + 1,
                now - 600_000,
                now,
            ] {
                expected.push(trim_verdict_text(rules::trim_verdict(
                    current, default_ms, since, now,
                )));
                cases.push(json!({
                    "relook": false,
                    "current": current.map_or(-1, |k| k as i64),
                    "default": default_ms,
                    "since": since,
                    "now": now,
                }));
            }
        }
        expected.push(trim_verdict_text(rules::trim_relook(current, now)));
        cases.push(json!({
            "relook": true,
            "current": current.map_or(-1, |k| k as i64),
            "now": now,
        }));
    }
    let driver = r#"
for i, c in ipairs(cases) do
  local current = c.current
  if current < 0 then current = nil end
  local verdict, keep, since
  if c.relook then
    verdict, keep, since = trim_relook(current, c.now)
  else
    verdict, keep, since = trim_verdict(current, c.default, c.since, c.now)
  end
  if verdict == 'trim' then
    out[i] = verdict
  else
    local k = 'none'
    if keep then k = s(keep) end
    out[i] = verdict .. ':' .. k .. ':' .. s(since)
  end
end"#;
    let Some(lua) = run_lua(driver, &cases).await else {
        return;
    };
    for (i, (rust, lua)) in expected.iter().zip(&lua).enumerate() {
        assert_eq!(rust, lua, "case {i}: {}", cases[i]);
    }
    for what in ["trim", "later:none:", "later:600000:"] {
        assert!(
            expected.iter().any(|e| e.starts_with(what)),
            "the table reaches {what}"
        );
    }
}

// ----------------------------------------------------------------- limits

/// `release_on` (inside `move`, and the complete of `baton_complete`)
/// answers what the rule does for every pair of states.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_on_mirrors_the_rule() {
    let states = [
        State::Waiting,
        State::Delayed,
        State::Running,
        State::Blocked,
        State::Suspended,
        State::Paused,
        State::Completed,
        State::Failed,
        State::Cancelled,
        State::Expired,
        State::Skipped,
    ];
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for from in states {
        for to in states {
            cases.push(json!({ "from": from.as_str(), "to": to.as_str() }));
            expected.push(rules::release_on(from, to).to_string());
        }
    }
    let driver = r#"
for i, c in ipairs(cases) do
  out[i] = tostring(release_on(c.from, c.to))
end"#;
    let Some(lua) = run_lua(driver, &cases).await else {
        return;
    };
    assert_eq!(lua, expected);
}

/// A limit as the library holds it (see `stored_limits`): absent fields for
/// none, never JSON null.
fn lua_limit(l: &baton_core::Limit) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("name".into(), json!(l.name.as_str()));
    m.insert(
        "lane".into(),
        json!(l.lane.as_ref().map_or("", Lane::as_str)),
    );
    m.insert("key".into(), json!(l.key.to_string()));
    if let Some(max) = l.max_running {
        m.insert("max".into(), json!(max));
    }
    if let Some(rate) = l.rate {
        m.insert("rc".into(), json!(rate.count));
        m.insert("rp".into(), json!(rate.per.as_millis()));
    }
    Value::Object(m)
}

fn limit(
    name: &str,
    key: &str,
    lane: Option<&str>,
    max_running: Option<u32>,
    rate: Option<(u32, u64)>,
) -> baton_core::Limit {
    baton_core::Limit {
        name: name.parse().unwrap(),
        namespace: Namespace::new("n").unwrap(),
        lane: lane.map(|l| Lane::new(l).unwrap()),
        key: key.parse().unwrap(),
        max_running,
        rate: rate.map(|(count, per)| baton_core::Rate {
            count,
            per: Duration::from_millis(per),
        }),
        fair: false,
    }
}

fn tag_map(pairs: &[(&str, &str)]) -> BTreeMap<baton_core::TagKey, String> {
    pairs
        .iter()
        .map(|(k, v)| (baton_core::TagKey::new(*k).unwrap(), (*v).to_owned()))
        .collect()
}

/// `limit_key_value` answers what the rule does over limits of every key
/// and lane and executions with and without the tags they count by.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_key_value_mirrors_the_rule() {
    let limits = [
        limit("t", "tag:tenant", None, Some(1), None),
        limit("k", "kind", None, Some(1), None),
        limit("l", "lane", None, Some(1), None),
        limit("ta", "tag:tenant", Some("a"), Some(1), None),
        limit("kb", "kind", Some("b"), Some(1), None),
        limit("r", "tag:re:gion", None, Some(1), None),
    ];
    let tag_sets: [&[(&str, &str)]; 4] = [
        &[],
        &[("tenant", "acme")],
        &[("tenant", "acme"), ("re:gion", "eu/west")],
        &[("other", "x")],
    ];
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for l in &limits {
        for lane in ["a", "b"] {
            for kind in ["job", "mail.send"] {
                for tags in tag_sets {
                    let tags = tag_map(tags);
                    let (lane, kind) = (Lane::new(lane).unwrap(), Kind::new(kind).unwrap());
                    expected.push(
                        rules::limit_key_value(l, &lane, &kind, &tags)
                            .unwrap_or("none")
                            .to_owned(),
                    );
                    let tags: BTreeMap<String, String> =
                        tags.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                    cases.push(json!({
                        "limit": lua_limit(l), "lane": lane.as_str(), "kind": kind.as_str(),
                        "tags": tags,
                    }));
                }
            }
        }
    }
    let driver = r#"
for i, c in ipairs(cases) do
  out[i] = limit_key_value(c.limit, c.lane, c.kind, c.tags) or 'none'
end"#;
    let Some(lua) = run_lua(driver, &cases).await else {
        return;
    };
    for (i, (rust, lua)) in expected.iter().zip(&lua).enumerate() {
        assert_eq!(rust, lua, "case {i}: {}", cases[i]);
    }
    for what in ["none", "acme", "job", "b", "eu/west"] {
        assert!(
            expected.iter().any(|e| e == what),
            "the table reaches {what}"
        );
    }
}

/// `window_room` answers what the rule does over windows filling, full and
/// emptying, at instants on and around their edges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_room_mirrors_the_rule() {
    let mut next = xorshift(0x5eed_1111);
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for _ in 0..400 {
        let count = 1 + next(4) as u32;
        let per = [1u64, 10, 1_000, 86_400_000][next(4)];
        let now = T + next(3_000) as i64;
        let len = next(7);
        let mut window: Vec<i64> = (0..len)
            .map(|_| {
                let back = [
                    0,
                    1,
                    per as i64 - 1,
                    per as i64,
                    per as i64 + 1,
                    next(2_000) as i64,
                ];
                now - back[next(back.len())]
            })
            .collect();
        window.sort_unstable();
        let rate = baton_core::Rate {
            count,
            per: Duration::from_millis(per),
        };
        let (inside, until) = rules::window_room(&window, rate, Timestamp::from_millis(now));
        expected.push(format!(
            "{inside}|{}",
            until.map_or("-".to_owned(), |t| t.as_millis().to_string())
        ));
        cases.push(json!({ "window": window, "count": count, "per": per, "now": now }));
    }
    let driver = r#"
for i, c in ipairs(cases) do
  local inside, until_ms = window_room(c.window, c.count, c.per, c.now)
  local u = '-'
  if until_ms then u = s(until_ms) end
  out[i] = s(inside) .. '|' .. u
end"#;
    let Some(lua) = run_lua(driver, &cases).await else {
        return;
    };
    for (i, (rust, lua)) in expected.iter().zip(&lua).enumerate() {
        assert_eq!(rust, lua, "case {i}: {}", cases[i]);
    }
    assert!(expected.iter().any(|e| e.ends_with('-')));
    assert!(expected.iter().any(|e| !e.ends_with('-')));
}

/// The admission of `baton_limit_admit` (`admission`, `admission_admit`,
/// `admission_blocked` in common.lua) answers what `rules::Admission` does:
/// for random sets of limits (caps, rates, both, a cap of 0, limits of one
/// lane), random running counts and windows, and random candidates in
/// order, each candidate's verdict (admitted, or the limit, key, running
/// count, cap or end of window that holds it back) and the keys without
/// room after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_mirrors_the_rule() {
    let pool = [
        limit("a-cap", "tag:tenant", None, Some(2), None),
        limit("b-kind", "kind", None, Some(1), None),
        limit("c-rate", "lane", Some("a"), None, Some((2, 1_000))),
        limit("d-zero", "tag:region", Some("b"), Some(0), None),
        limit("e-both", "tag:tenant", None, Some(3), Some((3, 500))),
    ];
    let values = |key: &str| -> &'static [&'static str] {
        match key {
            "tag:tenant" => &["t1", "t2"],
            "kind" => &["x", "y"],
            "lane" => &["a", "b"],
            _ => &["r1"],
        }
    };
    let namespace = Namespace::new("n").unwrap();
    let lanes = [Lane::new("a").unwrap(), Lane::new("b").unwrap()];
    let mut next = xorshift(0xad_0155);
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for subset in 1..(1usize << pool.len()) {
        for _ in 0..6 {
            let limits: Vec<baton_core::Limit> = pool
                .iter()
                .enumerate()
                .filter(|(i, _)| subset & (1 << i) != 0)
                .map(|(_, l)| l.clone())
                .collect();
            let now = T + next(1_000) as i64;
            let mut admission = rules::Admission::new(
                limits.clone(),
                &namespace,
                &lanes,
                Timestamp::from_millis(now),
            );
            let mut state = Vec::new();
            for l in &limits {
                for v in values(&l.key.to_string()) {
                    if next(2) == 0 {
                        continue;
                    }
                    let running = next(4) as u64;
                    let window: Vec<i64> = (0..next(4)).map(|_| now - next(1_200) as i64).collect();
                    admission.set_running(&l.name, v, running);
                    admission.set_window(&l.name, v, window.clone());
                    state.push(json!({
                        "name": l.name.as_str(), "value": v, "running": running, "window": window,
                    }));
                }
            }
            let mut candidates = Vec::new();
            let mut verdicts = Vec::new();
            for _ in 0..8 {
                let lane = ["a", "b"][next(2)];
                let kind = ["x", "y"][next(2)];
                let mut tags = Vec::new();
                if next(3) > 0 {
                    tags.push(("tenant", ["t1", "t2"][next(2)]));
                }
                if next(2) == 0 {
                    tags.push(("region", "r1"));
                }
                let tags = tag_map(&tags);
                let why =
                    admission.admit(&Lane::new(lane).unwrap(), &Kind::new(kind).unwrap(), &tags);
                verdicts.push(match why {
                    None => "ok".to_owned(),
                    Some(w) => format!(
                        "{}|{}|{}|{}|{}",
                        w.limit,
                        w.key_value,
                        w.running,
                        w.max_running.map_or("-".to_owned(), |m| m.to_string()),
                        w.until
                            .map_or("-".to_owned(), |t| t.as_millis().to_string())
                    ),
                });
                let tags: BTreeMap<String, String> =
                    tags.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                candidates.push(json!({ "lane": lane, "kind": kind, "tags": tags }));
            }
            for (l, blocked) in admission.blocked() {
                verdicts.push(match blocked {
                    rules::Blocked::Every => format!("{}:every", l.name),
                    rules::Blocked::Keys(keys) => format!("{}:{}", l.name, keys.join(",")),
                });
            }
            expected.push(verdicts.join(";"));
            cases.push(json!({
                "limits": limits.iter().map(lua_limit).collect::<Vec<_>>(),
                "now": now, "state": state, "candidates": candidates,
            }));
        }
    }
    let driver = r#"
for i, c in ipairs(cases) do
  local adm = admission(c.limits, c.now, nil)
  for _, st in ipairs(c.state) do
    for j, l in ipairs(c.limits) do
      if l.name == st.name then
        local held = admission_state(adm, j, st.value)
        held.running = st.running
        local w = {}
        for _, t in ipairs(st.window) do w[#w + 1] = t end
        table.sort(w)
        held.window = w
      end
    end
  end
  local parts = {}
  for _, cand in ipairs(c.candidates) do
    local why = admission_admit(adm, cand.lane, cand.kind, cand.tags)
    if why then
      local max, until_ms = '-', '-'
      if why.max then max = s(why.max) end
      if why.until_ms then until_ms = s(why.until_ms) end
      parts[#parts + 1] = why.limit .. '|' .. why.value .. '|' .. s(why.running) .. '|' .. max ..
        '|' .. until_ms
    else
      parts[#parts + 1] = 'ok'
    end
  end
  for _, b in ipairs(admission_blocked(adm)) do
    if b.every then
      parts[#parts + 1] = b.limit.name .. ':every'
    else
      parts[#parts + 1] = b.limit.name .. ':' .. table.concat(b.values, ',')
    end
  end
  out[i] = table.concat(parts, ';')
end"#;
    let Some(lua) = run_lua(driver, &cases).await else {
        return;
    };
    for (i, (rust, lua)) in expected.iter().zip(&lua).enumerate() {
        assert_eq!(rust, lua, "case {i}: {}", cases[i]);
    }
    for what in [
        "ok", "a-cap|", "b-kind|", "c-rate|", "d-zero|", "e-both|", ":every",
    ] {
        assert!(
            expected.iter().any(|e| e.contains(what)),
            "the table reaches {what}"
        );
    }
}

/// `session_claimable`, `session_lock_until` and `version_key_accepted`
/// (how every claim judges and takes a session's lock, and filters by
/// version) answer as the rules do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_helpers_mirror_the_routing_rules() {
    use baton_core::{SessionLock, Version, VersionRange, WorkerId};
    let worker = |w: &str| WorkerId::new(w).unwrap();
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    // Claimable: no lock, a lock of the claimer, of another worker, live
    // or lapsed (expiry at, before and after now).
    for holder in [None, Some("a"), Some("b")] {
        for expires in [T - 1, T, T + 1] {
            let lock = holder.map(|h| SessionLock {
                worker_id: worker(h),
                expires_at: Timestamp::from_millis(expires),
            });
            cases.push(json!({
                "op": "claimable",
                "holder": holder.unwrap_or(""),
                "expires": expires,
                "worker": "a",
                "now": T,
            }));
            expected.push(
                rules::session_claimable(lock.as_ref(), &worker("a"), Timestamp::from_millis(T))
                    .to_string(),
            );
        }
    }
    // Lock until: each of the three the latest, and ties.
    for current in [None, Some(T), Some(T + 90_000)] {
        for lease in [T + 10_000, T + 30_000, T + 60_000] {
            for idle in [1_000u64, 30_000, 3_600_000] {
                cases.push(json!({
                    "op": "until",
                    "current": current.map_or(-1, |c| c),
                    "now": T,
                    "lease": lease,
                    "idle": idle,
                }));
                let until = rules::session_lock_until(
                    current.map(Timestamp::from_millis),
                    Timestamp::from_millis(T),
                    Timestamp::from_millis(lease),
                    Duration::from_millis(idle),
                );
                expected.push(until.as_millis().to_string());
            }
        }
    }
    // Versions against ranges, by sort keys.
    let v = |t: &str| t.parse::<Version>().unwrap();
    let versions = [
        None,
        Some("1"),
        Some("2"),
        Some("2.0.1"),
        Some("2.10"),
        Some("3.999999999"),
    ];
    let ends = [None, Some("2"), Some("2.5"), Some("2.10.0.0"), Some("3")];
    for version in versions {
        for min in ends {
            for max in ends {
                let range = VersionRange::between(min.map(v), max.map(v));
                let (kmin, kmax) = rules::version_bounds(&range);
                let key = version.map(|t| v(t).sort_key());
                cases.push(json!({
                    "op": "version",
                    "key": key.clone().unwrap_or_default(),
                    "min": kmin.clone().unwrap_or_default(),
                    "max": kmax.clone().unwrap_or_default(),
                }));
                let accepted =
                    rules::version_key_accepted(key.as_deref(), kmin.as_deref(), kmax.as_deref());
                assert_eq!(
                    accepted,
                    range.accepts(version.map(v).as_ref()),
                    "{version:?} in {range}"
                );
                expected.push(accepted.to_string());
            }
        }
    }
    let driver = r#"
for _, c in ipairs(cases) do
  local function opt(x) if x == '' then return nil end return x end
  if c.op == 'claimable' then
    local lock = nil
    if c.holder ~= '' then lock = { worker = c.holder, expires = c.expires } end
    out[#out + 1] = tostring(session_claimable(lock, c.worker, c.now))
  elseif c.op == 'until' then
    local current = nil
    if c.current >= 0 then current = c.current end
    out[#out + 1] = s(session_lock_until(current, c.now, c.lease, c.idle))
  else
    out[#out + 1] = tostring(version_key_accepted(opt(c.key), opt(c.min), opt(c.max)))
  end
end
"#;
    let Some(answers) = run_lua(driver, &cases).await else {
        return;
    };
    for ((case, want), got) in cases.iter().zip(&expected).zip(&answers) {
        assert_eq!(got, want, "{case}");
    }
}

/// `fair_turn` answers what the rule does with and without a head and a
/// key's last turn, on either side of each other and of the ready time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fair_turn_mirrors_the_rule() {
    let mut next = xorshift(0x5eed_fa17);
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for _ in 0..500 {
        let mut pick = || match next(4) {
            0 => None,
            _ => Some(T + next(20) as i64 - 10),
        };
        let (head, last) = (pick(), pick());
        let ready = T + next(40) as i64 - 20;
        let mut case = serde_json::Map::new();
        if let Some(h) = head {
            case.insert("head".into(), json!(h));
        }
        if let Some(l) = last {
            case.insert("last".into(), json!(l));
        }
        case.insert("ready".into(), json!(ready));
        cases.push(Value::Object(case));
        expected.push(rules::fair_turn(head, last, ready).to_string());
    }
    let driver = r#"
for i, c in ipairs(cases) do
  out[i] = string.format('%d', fair_turn(c.head, c.last, c.ready))
end"#;
    let Some(lua) = run_lua(driver, &cases).await else {
        return;
    };
    for (i, (rust, lua)) in expected.iter().zip(&lua).enumerate() {
        assert_eq!(rust, lua, "case {i}: {}", cases[i]);
    }
    // The table reaches every arm: after the key's last, at the head, and
    // at the ready time.
    let reaches = |f: &dyn Fn(&Value, i64) -> bool| {
        cases
            .iter()
            .zip(&expected)
            .any(|(c, e)| f(c, e.parse().unwrap()))
    };
    assert!(reaches(&|c, e| c
        .get("last")
        .is_some_and(|l| l.as_i64() == Some(e - 1))));
    assert!(reaches(&|c, e| c
        .get("last")
        .is_some_and(|l| l.as_i64() < Some(e - 1))));
    assert!(reaches(
        &|c, e| c.get("last").is_none() && c.get("head").is_some_and(|h| h.as_i64() == Some(e))
    ));
    assert!(reaches(&|c, e| c.get("last").is_none()
        && c.get("head").is_none()
        && c["ready"].as_i64() == Some(e)));
}

/// `fair_key_value` answers the key `fair_key` does, over fair limits of
/// every key and executions with and without the tag they count by.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fair_key_value_mirrors_the_rule() {
    let limits = [
        limit("t", "tag:tenant", None, None, None),
        limit("k", "kind", None, None, None),
        limit("l", "lane", Some("a"), None, None),
        limit("r", "tag:re:gion", None, None, None),
    ];
    let tag_sets: [&[(&str, &str)]; 4] = [
        &[],
        &[("tenant", "acme")],
        &[("tenant", "acme"), ("re:gion", "eu/west")],
        &[("other", "x")],
    ];
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for mut l in limits {
        l.fair = true;
        for kind in ["job", "mail.send"] {
            for tags in tag_sets {
                let tags = tag_map(tags);
                let (lane, kind) = (Lane::new("a").unwrap(), Kind::new(kind).unwrap());
                expected.push(rules::fair_key(&l, &lane, &kind, &tags).to_owned());
                let tags: BTreeMap<String, String> =
                    tags.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                cases.push(json!({
                    "spec": l.key.to_string(), "lane": lane.as_str(), "kind": kind.as_str(),
                    "tags": tags,
                }));
            }
        }
    }
    let driver = r#"
for i, c in ipairs(cases) do
  out[i] = fair_key_value(c.spec, c.lane, c.kind, c.tags)
end"#;
    let Some(lua) = run_lua(driver, &cases).await else {
        return;
    };
    for (i, (rust, lua)) in expected.iter().zip(&lua).enumerate() {
        assert_eq!(rust, lua, "case {i}: {}", cases[i]);
    }
    for what in ["", "acme", "job", "a", "eu/west"] {
        assert!(
            expected.iter().any(|e| e == what),
            "the table reaches {what:?}"
        );
    }
}
