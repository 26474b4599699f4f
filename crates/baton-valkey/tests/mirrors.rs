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

use baton_core::raw::rules::{self, AttemptFacts, LeaseVerdict};
use baton_core::{
    AttemptOutcome, Backoff, EngineError, ExecutionId, ExecutionSnapshot, Failure, Kind, Lane,
    LeaseToken, Limits, Namespace, PartitionCount, PartitionId, RetryPolicy, State, Timestamp,
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
        State::Blocked => Some(AttemptOutcome::Released),
        State::Completed => Some(AttemptOutcome::Completed),
        State::Failed => Some(AttemptOutcome::Failed),
        State::Cancelled => Some(AttemptOutcome::Cancelled),
        State::Expired => Some(AttemptOutcome::Expired),
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
