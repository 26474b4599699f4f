//! Verdicts about limits: which key an execution counts under, whether a
//! claim may take it, and how limits are stored.
//!
//! A claim in a lane some limit covers reads the limits of its namespace,
//! how many executions of each key run now and each key's recent claims,
//! then asks an [`Admission`] about each candidate in claim order: a
//! candidate is taken only when every limit covering it has room, and the
//! room it takes counts for the candidates after it in the same claim.
//! Skipped work stays `waiting`; the backend reads past it (never behind
//! it), so a key at its cap never holds back another key's work.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::error::EngineError;
use crate::model::{Limit, LimitKey, LimitedBy, Rate};
use crate::names::{Kind, Lane, LimitName, Namespace, TagKey};
use crate::state::State;
use crate::time::Timestamp;

/// The value `limit` counts an execution of `lane` and `kind` with `tags`
/// under; `None` when the limit does not cover it (another lane, or the
/// tag it counts by is missing).
pub fn limit_key_value<'a>(
    limit: &Limit,
    lane: &'a Lane,
    kind: &'a Kind,
    tags: &'a BTreeMap<TagKey, String>,
) -> Option<&'a str> {
    if !limit.covers(lane) {
        return None;
    }
    match &limit.key {
        LimitKey::Tag(key) => tags.get(key).map(String::as_str),
        LimitKey::Kind => Some(kind.as_str()),
        LimitKey::Lane => Some(lane.as_str()),
    }
}

/// The fair limit that orders work of `lane` among `limits` (a
/// namespace's, in name order as [`sort_limits`] leaves them): the first
/// fair one covering the lane.
pub fn fair_limit<'a>(limits: &'a [Limit], lane: &Lane) -> Option<&'a Limit> {
    limits.iter().find(|l| l.fair && l.covers(lane))
}

/// The key an execution of `lane` and `kind` with `tags` takes turns under
/// by the fair limit `limit`: the limit's key value, or `""` when the
/// execution lacks the tag the limit counts by (such work takes turns as
/// one key rather than going unordered).
pub fn fair_key<'a>(
    limit: &Limit,
    lane: &'a Lane,
    kind: &'a Kind,
    tags: &'a BTreeMap<TagKey, String>,
) -> &'a str {
    limit_key_value(limit, lane, kind, tags).unwrap_or("")
}

/// The turn of an execution entering `waiting` in a lane a fair limit
/// orders, in the unit of `ready_at` (milliseconds): the order key claims
/// sort it by within its priority, in place of the time it became ready.
///
/// - `last`: the latest turn among the waiting work of its key in its lane
///   at its priority (not counting itself);
/// - `head`: the earliest turn (or ready time) among all waiting work of
///   its lane at its priority (not counting itself);
/// - `ready`: when it became ready (now, for most moves).
///
/// A key with waiting work queues right after its own last turn, so a key
/// that submitted a thousand executions holds a thousand successive turns
/// while a key with one holds one, and claims in turn order alternate
/// between them. A key without waiting work starts at the lane's head (a
/// key that arrives late is served in the next round, not after the whole
/// backlog, and a key that was idle earns no credit for it); in an empty
/// lane, at `ready`. Ties are broken by the execution's id, as ties of
/// `ready_at` always were.
///
/// ```
/// use baton_core::raw::rules::fair_turn;
/// // The lane is empty: the first execution's turn is when it is ready.
/// assert_eq!(fair_turn(None, None, 1_000), 1_000);
/// // Its key's next execution queues after it...
/// assert_eq!(fair_turn(Some(1_000), Some(1_000), 1_000), 1_001);
/// // ...while another key's first starts at the head.
/// assert_eq!(fair_turn(Some(1_000), None, 5_000), 1_000);
/// ```
pub fn fair_turn(head: Option<i64>, last: Option<i64>, ready: i64) -> i64 {
    match (last, head) {
        (Some(last), Some(head)) => last.saturating_add(1).max(head),
        (Some(last), None) => last.saturating_add(1),
        (None, Some(head)) => head,
        (None, None) => ready,
    }
}

/// Whether a change of an execution from `from` to `to` ends a run, and so
/// frees the slot it held under every limit: leaving `running` in any way
/// (complete, fail, retry, cancel, expire, reclaim, revoke, suspend,
/// release, pause). SQL backends count running executions, so the state
/// change is the release; the Valkey function library mirrors this rule
/// where it moves an execution.
pub fn release_on(from: State, to: State) -> bool {
    from == State::Running && to != State::Running
}

/// Whether `set_limit` may add a limit when `held` exist: a new one beyond
/// [`Limit::MAX_LIMITS`] is `InvalidInput` (replacing one always fits).
pub fn check_limit_room(held: usize, replaces: bool, name: &LimitName) -> Result<(), EngineError> {
    if replaces || held < Limit::MAX_LIMITS {
        return Ok(());
    }
    Err(EngineError::invalid(
        "name",
        name.as_str(),
        format!(
            "the deployment holds {held} limits, the most it may; remove one first (baton limit list)"
        ),
    ))
}

/// The error of a call naming a limit that does not exist.
pub fn no_such_limit(name: &LimitName) -> EngineError {
    EngineError::invalid(
        "limit",
        name.as_str(),
        "no limit has this name; `baton limit list` names them",
    )
}

/// A stored limit read back (`lane` empty for every lane, absent cap or
/// rate as `None`): `Corruption` when a value is not one `set_limit`
/// writes.
// One argument per stored column, as every backend reads them.
#[allow(clippy::too_many_arguments)]
pub fn stored_limit(
    name: &str,
    namespace: &str,
    lane: &str,
    key: &str,
    max_running: Option<i64>,
    rate_count: Option<i64>,
    rate_per_ms: Option<i64>,
    fair: bool,
) -> Result<Limit, EngineError> {
    let bad = |what: String| EngineError::corruption(format!("limit {name:?}: {what}"));
    let limit = Limit {
        name: LimitName::new(name).map_err(|e| bad(e.to_string()))?,
        namespace: Namespace::new(namespace).map_err(|e| bad(e.to_string()))?,
        lane: if lane.is_empty() {
            None
        } else {
            Some(Lane::new(lane).map_err(|e| bad(e.to_string()))?)
        },
        key: key.parse().map_err(|e: EngineError| bad(e.to_string()))?,
        max_running: max_running
            .map(|m| u32::try_from(m).map_err(|_| bad(format!("max_running {m}"))))
            .transpose()?,
        rate: match (rate_count, rate_per_ms) {
            (None, None) => None,
            (Some(count), Some(per)) => Some(Rate {
                count: u32::try_from(count).map_err(|_| bad(format!("rate count {count}")))?,
                per: Duration::from_millis(
                    u64::try_from(per).map_err(|_| bad(format!("rate per {per} ms")))?,
                ),
            }),
            _ => return Err(bad("a rate with only one of count and window".into())),
        },
        fair,
    };
    limit.check().map_err(|e| bad(e.to_string()))?;
    Ok(limit)
}

/// Puts limits in the order `limits` answers them: by namespace, then
/// name.
pub fn sort_limits(limits: &mut [Limit]) {
    limits.sort_by(|a, b| {
        (a.namespace.as_str(), a.name.as_str()).cmp(&(b.namespace.as_str(), b.name.as_str()))
    });
}

/// A rate's recent claims as stored: instants in milliseconds, ascending,
/// comma separated.
pub fn encode_window(window: &[i64]) -> String {
    let mut out = String::with_capacity(window.len() * 14);
    for (i, t) in window.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&t.to_string());
    }
    out
}

/// Reads a window [`encode_window`] wrote: `Corruption` on anything else.
pub fn parse_window(ctx: &str, text: &str) -> Result<Vec<i64>, EngineError> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let mut out: Vec<i64> = text
        .split(',')
        .map(|t| {
            t.parse()
                .map_err(|_| EngineError::corruption(format!("{ctx}: rate window {text:?}")))
        })
        .collect::<Result<_, _>>()?;
    out.sort_unstable();
    Ok(out)
}

/// How a rate's window stands at `now`: the claims in it (those after
/// `now - per`), and, when they fill it, the instant it has room again.
pub fn window_room(window: &[i64], rate: Rate, now: Timestamp) -> (usize, Option<Timestamp>) {
    let per = i64::try_from(rate.per.as_millis()).unwrap_or(i64::MAX);
    let since = now.as_millis().saturating_sub(per);
    let inside: Vec<i64> = window.iter().copied().filter(|t| *t > since).collect();
    let count = rate.count as usize;
    if inside.len() < count {
        return (inside.len(), None);
    }
    // Room comes when all but count - 1 of the claims left the window.
    let oldest_to_leave = inside[inside.len() - count];
    (
        inside.len(),
        Some(Timestamp::from_millis(oldest_to_leave.saturating_add(per))),
    )
}

#[derive(Clone, Debug, Default)]
struct KeyState {
    running: u64,
    window: Vec<i64>,
    touched: bool,
}

/// One claim's view of the limits covering its lanes: what runs and what
/// started recently per key, updated as the claim takes candidates (see
/// the module's summary).
#[derive(Clone, Debug)]
pub struct Admission {
    limits: Vec<Limit>,
    now: Timestamp,
    keys: HashMap<(usize, String), KeyState>,
}

impl Admission {
    /// The view of a claim of `lanes` at `now` over `limits` (those of
    /// other namespaces or lanes are dropped), every key empty until
    /// loaded.
    pub fn new(
        limits: impl IntoIterator<Item = Limit>,
        namespace: &Namespace,
        lanes: &[Lane],
        now: Timestamp,
    ) -> Self {
        let limits = limits
            .into_iter()
            .filter(|l| {
                l.holds_back()
                    && &l.namespace == namespace
                    && lanes.iter().any(|lane| l.covers(lane))
            })
            .collect();
        Admission {
            limits,
            now,
            keys: HashMap::new(),
        }
    }

    /// True when no limit covers the claim's lanes: the claim takes work
    /// as without limits.
    pub fn is_empty(&self) -> bool {
        self.limits.is_empty()
    }

    /// The limits covering the claim's lanes.
    pub fn limits(&self) -> &[Limit] {
        &self.limits
    }

    /// The lanes of `lanes` no limit covers (claimed as without limits).
    pub fn free_lanes<'a>(&self, lanes: &'a [Lane]) -> Vec<&'a Lane> {
        lanes
            .iter()
            .filter(|lane| !self.limits.iter().any(|l| l.covers(lane)))
            .collect()
    }

    fn index(&self, name: &LimitName) -> Option<usize> {
        self.limits.iter().position(|l| &l.name == name)
    }

    /// Records that `running` executions of `key_value` run now under
    /// `limit` (a limit not covering the claim is passed over).
    pub fn set_running(&mut self, limit: &LimitName, key_value: &str, running: u64) {
        if let Some(i) = self.index(limit) {
            self.keys
                .entry((i, key_value.to_owned()))
                .or_default()
                .running = running;
        }
    }

    /// Records the recent claims of `key_value` under `limit` (instants in
    /// milliseconds, any order).
    pub fn set_window(&mut self, limit: &LimitName, key_value: &str, mut window: Vec<i64>) {
        if let Some(i) = self.index(limit) {
            window.sort_unstable();
            self.keys
                .entry((i, key_value.to_owned()))
                .or_default()
                .window = window;
        }
    }

    fn judge(&self, i: usize, value: &str) -> Option<LimitedBy> {
        let limit = &self.limits[i];
        let empty = KeyState::default();
        let state = self.keys.get(&(i, value.to_owned())).unwrap_or(&empty);
        let held = |max_running, until| LimitedBy {
            limit: limit.name.clone(),
            key_value: value.to_owned(),
            running: state.running,
            max_running,
            until,
        };
        if let Some(max) = limit.max_running.filter(|m| state.running >= u64::from(*m)) {
            return Some(held(Some(max), None));
        }
        if let Some(rate) = limit.rate
            && let (_, Some(until)) = window_room(&state.window, rate, self.now)
        {
            return Some(held(None, Some(until)));
        }
        None
    }

    /// Why the limits hold an execution of `lane` and `kind` with `tags`
    /// back now (the first limit, in name order, without room for its
    /// key), or `None` when every limit covering it has room. Changes
    /// nothing.
    pub fn check(
        &self,
        lane: &Lane,
        kind: &Kind,
        tags: &BTreeMap<TagKey, String>,
    ) -> Option<LimitedBy> {
        let mut order: Vec<usize> = (0..self.limits.len()).collect();
        order.sort_by(|a, b| self.limits[*a].name.cmp(&self.limits[*b].name));
        order.into_iter().find_map(|i| {
            limit_key_value(&self.limits[i], lane, kind, tags).and_then(|v| self.judge(i, v))
        })
    }

    /// Takes the execution when every limit covering it has room: counts
    /// it running under each of its keys and adds `now` to each rate's
    /// window, and answers `None`; otherwise changes nothing and answers
    /// why ([`check`](Self::check)).
    pub fn admit(
        &mut self,
        lane: &Lane,
        kind: &Kind,
        tags: &BTreeMap<TagKey, String>,
    ) -> Option<LimitedBy> {
        if let Some(why) = self.check(lane, kind, tags) {
            return Some(why);
        }
        let now = self.now.as_millis();
        for i in 0..self.limits.len() {
            let Some(value) = limit_key_value(&self.limits[i], lane, kind, tags) else {
                continue;
            };
            let rate = self.limits[i].rate;
            let state = self.keys.entry((i, value.to_owned())).or_default();
            state.running += 1;
            if let Some(rate) = rate {
                let per = i64::try_from(rate.per.as_millis()).unwrap_or(i64::MAX);
                state.window.retain(|t| *t > now.saturating_sub(per));
                // In order even when another process's clock ran ahead of
                // this one's: stored windows end with their newest instant.
                let at = state.window.partition_point(|t| *t <= now);
                state.window.insert(at, now);
                state.touched = true;
            }
        }
        None
    }

    /// Gives back what [`admit`](Self::admit) took for an execution of
    /// `lane` and `kind` with `tags` that the claim did not get after all
    /// (another claimer took its session meanwhile): one running less
    /// under each of its keys and this claim's instant out of each rate's
    /// window, so the windows stored count only claims that happened.
    pub fn give_back(&mut self, lane: &Lane, kind: &Kind, tags: &BTreeMap<TagKey, String>) {
        let now = self.now.as_millis();
        for i in 0..self.limits.len() {
            let Some(value) = limit_key_value(&self.limits[i], lane, kind, tags) else {
                continue;
            };
            let rate = self.limits[i].rate;
            if let Some(state) = self.keys.get_mut(&(i, value.to_owned())) {
                state.running = state.running.saturating_sub(1);
                if rate.is_some()
                    && let Some(at) = state.window.iter().rposition(|t| *t == now)
                {
                    state.window.remove(at);
                }
            }
        }
    }

    /// The keys without room now, by limit: a candidate read may pass over
    /// their work (it would be skipped).
    pub fn blocked(&self) -> Vec<(&Limit, Blocked<'_>)> {
        let mut out = Vec::new();
        for (i, limit) in self.limits.iter().enumerate() {
            if limit.max_running == Some(0) {
                out.push((limit, Blocked::Every));
                continue;
            }
            let mut values: Vec<&str> = self
                .keys
                .keys()
                .filter(|(j, v)| *j == i && self.judge(i, v).is_some())
                .map(|(_, v)| v.as_str())
                .collect();
            if !values.is_empty() {
                values.sort_unstable();
                out.push((limit, Blocked::Keys(values)));
            }
        }
        out
    }

    /// For each rate limit of the claim, the instant (ms) at or before
    /// which a stored window of one of its keys holds no claim inside the
    /// window any more: backends drop such windows as they store new ones,
    /// so the stored windows stay as many as the keys claimed recently.
    pub fn window_floors(&self) -> Vec<(&LimitName, i64)> {
        self.limits
            .iter()
            .filter_map(|l| {
                l.rate.map(|r| {
                    let per = i64::try_from(r.per.as_millis()).unwrap_or(i64::MAX);
                    (&l.name, self.now.as_millis().saturating_sub(per))
                })
            })
            .collect()
    }

    /// The rate windows this claim added to, to store: `(limit, key value,
    /// instants ascending, only those still inside the window)`.
    pub fn windows(&self) -> Vec<(&LimitName, &str, &[i64])> {
        let mut out: Vec<(&LimitName, &str, &[i64])> = self
            .keys
            .iter()
            .filter(|(_, s)| s.touched)
            .map(|((i, v), s)| (&self.limits[*i].name, v.as_str(), s.window.as_slice()))
            .collect();
        out.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        out
    }
}

/// Which keys of a limit have no room ([`Admission::blocked`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Blocked<'a> {
    /// Every key: the cap is 0, so all work the limit counts is held back.
    Every,
    /// These key values.
    Keys(Vec<&'a str>),
}

/// What `limit_usage` answers for `limit` at `now`: every key value with
/// runs (`running`: a key value and how many run under it; a value may
/// come more than once, its counts add up) or with claims still inside the
/// rate's window (`windows`: a key value and its stored claim instants, in
/// any order), by key value.
pub fn limit_usage(
    limit: &Limit,
    running: impl IntoIterator<Item = (String, u64)>,
    windows: impl IntoIterator<Item = (String, Vec<i64>)>,
    now: Timestamp,
) -> Vec<crate::model::LimitUsage> {
    let mut by_key: BTreeMap<String, (u64, u32)> = BTreeMap::new();
    for (value, n) in running {
        by_key.entry(value).or_default().0 += n;
    }
    if let Some(rate) = limit.rate {
        for (value, mut claims) in windows {
            claims.sort_unstable();
            let (inside, _) = window_room(&claims, rate, now);
            if inside > 0 {
                by_key.entry(value).or_default().1 = u32::try_from(inside).unwrap_or(u32::MAX);
            }
        }
    }
    by_key
        .into_iter()
        .map(
            |(key_value, (running, window_claims))| crate::model::LimitUsage {
                name: limit.name.clone(),
                key_value,
                running,
                window_claims,
            },
        )
        .collect()
}

/// The sentence `explain` says about an execution a limit holds back.
pub fn limited_detail(why: &LimitedBy) -> String {
    match (why.max_running, why.until) {
        (Some(max), _) => format!(
            "eligible, but limit {} allows {max} running of {:?} and {} run now; a claim takes \
             it when one of them ends",
            why.limit, why.key_value, why.running
        ),
        (None, Some(until)) => format!(
            "eligible, but limit {} allows no more claims of {:?} in its window until {until}",
            why.limit, why.key_value
        ),
        (None, None) => format!(
            "eligible, but limit {} holds {:?} back",
            why.limit, why.key_value
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(name: &str, key: &str, max: Option<u32>, rate: Option<(u32, u64)>) -> Limit {
        Limit {
            name: name.parse().unwrap(),
            namespace: "ns".parse().unwrap(),
            lane: None,
            key: key.parse().unwrap(),
            max_running: max,
            rate: rate.map(|(count, ms)| Rate {
                count,
                per: Duration::from_millis(ms),
            }),
            fair: false,
        }
    }

    fn tags(tenant: Option<&str>) -> BTreeMap<TagKey, String> {
        tenant
            .map(|t| ("tenant".parse().unwrap(), t.to_owned()))
            .into_iter()
            .collect()
    }

    #[test]
    fn a_claim_takes_room_as_it_goes_and_untagged_work_is_free() {
        let ns: Namespace = "ns".parse().unwrap();
        let lane: Lane = "main".parse().unwrap();
        let kind: Kind = "k".parse().unwrap();
        let mut a = Admission::new(
            [limit("cap", "tag:tenant", Some(2), None)],
            &ns,
            std::slice::from_ref(&lane),
            Timestamp::from_millis(1_000),
        );
        a.set_running(&"cap".parse().unwrap(), "acme", 1);
        assert_eq!(a.admit(&lane, &kind, &tags(Some("acme"))), None);
        let why = a.admit(&lane, &kind, &tags(Some("acme"))).unwrap();
        assert_eq!((why.running, why.max_running), (2, Some(2)));
        assert_eq!(a.admit(&lane, &kind, &tags(Some("other"))), None);
        assert_eq!(
            a.admit(&lane, &kind, &tags(None)),
            None,
            "no tag: not limited"
        );
        assert_eq!(
            a.blocked(),
            vec![(&a.limits()[0], Blocked::Keys(vec!["acme"]))]
        );
        let other_ns: Namespace = "elsewhere".parse().unwrap();
        let none = Admission::new(
            [limit("cap", "kind", Some(1), None)],
            &other_ns,
            std::slice::from_ref(&lane),
            Timestamp::from_millis(0),
        );
        assert!(none.is_empty(), "a limit of another namespace is dropped");
    }

    #[test]
    fn giving_back_an_admission_returns_its_room() {
        let ns: Namespace = "ns".parse().unwrap();
        let lane: Lane = "main".parse().unwrap();
        let kind: Kind = "k".parse().unwrap();
        let mut a = Admission::new(
            [
                limit("cap", "tag:tenant", Some(1), None),
                limit("rate", "kind", None, Some((2, 1_000))),
            ],
            &ns,
            std::slice::from_ref(&lane),
            Timestamp::from_millis(5_000),
        );
        a.set_window(&"rate".parse().unwrap(), "k", vec![4_500]);
        assert_eq!(a.admit(&lane, &kind, &tags(Some("acme"))), None);
        assert!(a.admit(&lane, &kind, &tags(Some("acme"))).is_some());
        assert_eq!(
            a.windows(),
            vec![(&"rate".parse().unwrap(), "k", &[4_500, 5_000][..])]
        );
        a.give_back(&lane, &kind, &tags(Some("acme")));
        assert_eq!(
            a.windows(),
            vec![(&"rate".parse().unwrap(), "k", &[4_500][..])],
            "the window keeps only claims that happened"
        );
        assert_eq!(
            a.admit(&lane, &kind, &tags(Some("acme"))),
            None,
            "the cap's slot is free again"
        );
    }

    #[test]
    fn a_rate_window_has_room_again_when_its_oldest_claim_leaves() {
        let rate = Rate {
            count: 2,
            per: Duration::from_millis(1_000),
        };
        let at = Timestamp::from_millis;
        assert_eq!(
            window_room(&[100, 500], rate, at(1_099)),
            (2, Some(at(1_100)))
        );
        assert_eq!(window_room(&[100, 500], rate, at(1_100)), (1, None));
        assert_eq!(
            window_room(&[100, 500, 900], rate, at(1_100)),
            (2, Some(at(1_500)))
        );
        assert_eq!(window_room(&[], rate, at(0)), (0, None));
        let text = encode_window(&[5, 7, 11]);
        assert_eq!(text, "5,7,11");
        assert_eq!(parse_window("t", &text).unwrap(), vec![5, 7, 11]);
        assert!(parse_window("t", "5,x").is_err());
    }

    #[test]
    fn a_cap_of_zero_blocks_every_key_and_release_follows_running() {
        let ns: Namespace = "ns".parse().unwrap();
        let lane: Lane = "main".parse().unwrap();
        let a = Admission::new(
            [limit("stop", "kind", Some(0), None)],
            &ns,
            std::slice::from_ref(&lane),
            Timestamp::from_millis(0),
        );
        assert_eq!(a.blocked(), vec![(&a.limits()[0], Blocked::Every)]);
        assert!(release_on(State::Running, State::Waiting));
        assert!(release_on(State::Running, State::Completed));
        assert!(!release_on(State::Waiting, State::Running));
        assert!(!release_on(State::Running, State::Running));
    }

    #[test]
    fn stored_limits_are_read_back_or_refused() {
        let l = stored_limit("a", "ns", "", "kind", Some(3), Some(5), Some(1000), false).unwrap();
        assert_eq!(l, limit("a", "kind", Some(3), Some((5, 1000))));
        assert!(stored_limit("a", "ns", "", "kind", None, None, None, false).is_err());
        let fair = stored_limit("a", "ns", "", "kind", None, None, None, true).unwrap();
        assert!(fair.fair && !fair.holds_back());
        assert!(stored_limit("a", "ns", "", "kind", Some(1), Some(5), None, false).is_err());
        assert!(stored_limit("a", "ns", "", "color", Some(1), None, None, false).is_err());
    }

    #[test]
    fn a_fair_only_limit_never_holds_work_back() {
        let ns: Namespace = "ns".parse().unwrap();
        let lane: Lane = "main".parse().unwrap();
        let mut fair = limit("fair", "tag:tenant", None, None);
        fair.fair = true;
        let mut capped = limit("capped", "kind", Some(2), None);
        capped.fair = true;
        let a = Admission::new(
            [fair.clone()],
            &ns,
            std::slice::from_ref(&lane),
            Timestamp::from_millis(0),
        );
        assert!(a.is_empty(), "claims take the path without limits");
        let both = [capped.clone(), fair.clone()];
        assert_eq!(fair_limit(&both, &lane), Some(&capped), "first by name");
        let mut other = fair.clone();
        other.lane = Some("other".parse().unwrap());
        assert_eq!(fair_limit(std::slice::from_ref(&other), &lane), None);
        let kind: Kind = "job".parse().unwrap();
        let mut tags = BTreeMap::new();
        assert_eq!(fair_key(&fair, &lane, &kind, &tags), "");
        tags.insert("tenant".parse().unwrap(), "acme".to_owned());
        assert_eq!(fair_key(&fair, &lane, &kind, &tags), "acme");
        assert_eq!(fair_key(&capped, &lane, &kind, &tags), "job");
    }

    #[test]
    fn fair_turns_alternate_between_keys() {
        // Ten executions of `a`, then two of `b` and of `c`, placed one by
        // one as a backend does: each key queues after its own last, a new
        // key starts at the head.
        let mut placed: Vec<(i64, &str)> = Vec::new();
        let place = |key: &'static str, placed: &mut Vec<(i64, &str)>| {
            let head = placed.iter().map(|p| p.0).min();
            let last = placed.iter().filter(|p| p.1 == key).map(|p| p.0).max();
            placed.push((fair_turn(head, last, 7_000), key));
        };
        for _ in 0..10 {
            place("a", &mut placed);
        }
        for key in ["b", "c", "b", "c"] {
            place(key, &mut placed);
        }
        placed.sort();
        let order: Vec<&str> = placed.iter().map(|p| p.1).collect();
        assert_eq!(&order[..3], ["a", "b", "c"]);
        assert_eq!(&order[3..6], ["a", "b", "c"]);
        assert!(order[6..].iter().all(|k| *k == "a"));
        assert_eq!(placed[0].0, 7_000, "an empty lane starts at ready");
        // A key whose work ran ahead of the head never queues before it.
        assert_eq!(fair_turn(Some(50), Some(10), 99), 50);
    }
}
