//! Verdicts about retention: which rule covers an execution, whether a
//! root the trim pass read is due, and how rules are stored.

use std::time::Duration;

use crate::error::EngineError;
use crate::model::RetentionRule;
use crate::names::{Lane, Namespace};

/// The stored lane of a rule that covers every lane of its namespace (no
/// lane name is empty).
pub const ALL_LANES: &str = "";

/// The keep `keep` asks for, in milliseconds, once it is within
/// [`RetentionRule::MIN_KEEP`]`..=`[`RetentionRule::MAX_KEEP`] and whole
/// milliseconds; `set_retention` asks before it writes.
pub fn check_keep(keep: Duration) -> Result<u64, EngineError> {
    if keep < RetentionRule::MIN_KEEP || keep > RetentionRule::MAX_KEEP {
        return Err(EngineError::invalid(
            "keep",
            format!("{}ms", keep.as_millis()),
            "a retention keeps finished executions between 1s and 36500d",
        ));
    }
    if !keep.subsec_nanos().is_multiple_of(1_000_000) {
        return Err(EngineError::invalid(
            "keep",
            format!("{keep:?}"),
            "a retention is counted in whole milliseconds",
        ));
    }
    Ok(keep.as_millis() as u64)
}

/// Whether `set_retention` may add a rule for `namespace` (and `lane`)
/// when `held` rules exist: a new rule beyond
/// [`RetentionRule::MAX_RULES`] is `InvalidInput` (replacing one always
/// fits).
pub fn check_rule_room(held: usize, replaces: bool, namespace: &str) -> Result<(), EngineError> {
    if replaces || held < RetentionRule::MAX_RULES {
        return Ok(());
    }
    Err(EngineError::invalid(
        "namespace",
        namespace,
        format!(
            "the deployment holds {held} retention rules, the most it may; remove one first \
             (baton retention list)"
        ),
    ))
}

/// The keep, in milliseconds, of the rule that covers an execution of
/// `namespace` and `lane` among `rules` (stored triples `(namespace, lane
/// or` [`ALL_LANES`]`, keep_ms)`): the lane's rule, else the namespace's,
/// else `None` (the deployment's default applies). Backends ask at create
/// (the keep an execution is stamped with) and in the trim pass (the rule
/// in force now, see [`trim_verdict`]).
pub fn keep_for<'a>(
    rules: impl IntoIterator<Item = (&'a str, &'a str, u64)>,
    namespace: &str,
    lane: &str,
) -> Option<u64> {
    let mut for_namespace = None;
    for (ns, l, keep) in rules {
        if ns != namespace {
            continue;
        }
        if l == lane {
            return Some(keep);
        }
        if l == ALL_LANES {
            for_namespace = Some(keep);
        }
    }
    for_namespace
}

/// A stored rule read back: `Corruption` when a stored value is not one
/// `set_retention` writes.
pub fn stored_retention_rule(
    namespace: &str,
    lane: &str,
    keep_ms: i64,
) -> Result<RetentionRule, EngineError> {
    let bad = |what: String| EngineError::corruption(format!("retention rule {what}"));
    let ns =
        Namespace::new(namespace).map_err(|e| bad(format!("with namespace {namespace:?}: {e}")))?;
    let lane = if lane == ALL_LANES {
        None
    } else {
        Some(Lane::new(lane).map_err(|e| bad(format!("with lane {lane:?}: {e}")))?)
    };
    let keep = u64::try_from(keep_ms)
        .ok()
        .map(Duration::from_millis)
        .filter(|k| check_keep(*k).is_ok())
        .ok_or_else(|| bad(format!("for {namespace:?} keeps {keep_ms} ms")))?;
    Ok(RetentionRule {
        namespace: ns,
        lane,
        keep,
    })
}

/// Puts rules in the order `retention_rules` answers them: by namespace,
/// its all-lanes rule first, then by lane.
pub fn sort_retention_rules(rules: &mut [RetentionRule]) {
    rules.sort_by(|a, b| {
        (a.namespace.as_str(), a.lane.as_ref().map(Lane::as_str))
            .cmp(&(b.namespace.as_str(), b.lane.as_ref().map(Lane::as_str)))
    });
}

/// What the trim pass does with a root it read as due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrimVerdict {
    /// Due under the rule in force: removed with its flow once every
    /// member finished; while one runs, [`trim_relook`] says when to look
    /// again.
    Trim,
    /// Not due yet: stamp it with `keep` (the rule in force; `None`: the
    /// deployment default) counted from `since` (ms), which places it
    /// where the pass reads it when it is due.
    Later {
        /// The keep to stamp, ms; `None` for the default.
        keep: Option<u64>,
        /// When its keep counts from (its finish, or the last time its
        /// open flow was looked at).
        since: i64,
    },
}

/// Judges a finished root the trim pass read because it is due by the
/// keep it carries (stamped from the rule in force when it was created or
/// last looked at; none: the default): `current` is the rule in force now
/// ([`keep_for`]), `default_ms` the deployment's retention, `since` when
/// its keep counts from (its finish, or when its open flow was last looked
/// at) and `now` the pass's time.
///
/// The pass reads a root once it is due by its stamp (so nothing not due
/// is ever read). A rule that lengthens the keep since then is honoured
/// here (never trimmed earlier than the rule in force says); a rule that
/// shortens it applies to executions created after it (those before keep
/// the longer stamp; `baton purge` removes them sooner).
pub fn trim_verdict(current: Option<u64>, default_ms: u64, since: i64, now: i64) -> TrimVerdict {
    let keep = current.unwrap_or(default_ms);
    let due = since.saturating_add(i64::try_from(keep).unwrap_or(i64::MAX)) <= now;
    if due {
        TrimVerdict::Trim
    } else {
        TrimVerdict::Later {
            keep: current,
            since,
        }
    }
}

/// When a root due for trimming whose flow still has an unfinished member
/// is looked at again: a keep later, counted from now, under the rule in
/// force (`current`).
pub fn trim_relook(current: Option<u64>, now: i64) -> TrimVerdict {
    TrimVerdict::Later {
        keep: current,
        since: now,
    }
}
