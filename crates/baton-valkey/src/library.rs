//! The function library: the files of `lua/` assembled into one library
//! named `baton`, and loading it on every primary.

use baton_core::{EngineError, Result};

/// Bumped by hand when the library's contract with this crate changes; a
/// server holding a higher generation was loaded by a newer Baton, which
/// this build must not replace.
/// Generation 5 added waiting: `suspended`, the record fields `wp wc wt wo
/// wl sc`, the signal keys `sg:` and `sk:` and the `timeouts` index, and a
/// ninth value per claim entry (the wait log).
/// Generation 6 added checkpointed steps: `baton_record_step`, the record
/// field `sn`, the step hash `st:` and a tenth value per claim entry (the
/// step count).
/// Generation 7 added the rest of memory: `baton_set_state`,
/// `baton_set_status`, `baton_append_progress` and `baton_watch`, the record
/// fields `kc cs cv pq`, the keys `kv:`, `pg:` and `watch`, and the change
/// announcements (`PUBLISH` on `<prefix>:changed`) of terminal transitions,
/// status changes and progress frames of watched executions.
/// Generation 8 added operator control: `baton_set_priority`,
/// `baton_set_tag`, `baton_revoke`, and the worker registry
/// (`baton_saw_claim`, `baton_saw_renew`, `baton_workers` over the keys
/// `{w:<ns>}:workers` and `{w:<ns>}:seen`).
/// Generation 9 added pause, resume and replay: `baton_pause`,
/// `baton_resume`, `baton_replay`, the state `paused` (record fields `pf
/// pv`, attempt outcome `paused`, renew answer `paused`), cascade kinds
/// `pause` and `resume`, and the paused-lane hash `lp:<ns>` every claim
/// reads.
/// Generation 10 made `baton_list` filter by several states, created and
/// finished ranges and the idempotency key.
/// Generation 11 added deletes: `baton_delete`, which removes executions
/// exactly as the trim pass does (one routine, `remove_execution`).
/// Generation 12 added the event history: the list `ev:<uuid>` and the
/// record field `ev`, written by every function that changes a state (and
/// by `baton_signal`, `baton_set_priority` and `baton_set_tag`, which take
/// the time and the event's detail as new arguments, and `baton_audit`),
/// and a trailing `now` argument of `baton_create`; all of it only for an
/// execution whose record holds `hx`, which `baton_create` writes for the
/// namespaces the partition's hash `hx` names (the history is per
/// namespace, off by default).
/// Generation 13 added retention per namespace and lane: the partition's
/// rule hash `ret`, the record field `kp` (written by `baton_create`), the
/// set `kept` beside `done`, and a fourth argument of `baton_trim` (the
/// default retention), which answers the first score of each set.
/// Generation 14 added units of bulk cancels and replays:
/// `baton_cancel_units` and `baton_replay_units`, which cancel or replay
/// each of up to `raw::bulk::MAX_UNIT_IDS` ids of one partition exactly as
/// `baton_cancel` and `baton_replay` do (one routine each, `cancel_one` and
/// `replay_one`), a unit's cancels stopping at the cascade budget.
/// Generation 15 added limits: the namespace slot `{lim:<ns>}` and its
/// functions (`baton_limit_admit`, `_release`, `_renew`, `_adopt`,
/// `_define`, `_enforce`), the partition's copy of the limited lanes
/// `lim:<ns>` (written by `baton_limit_lanes`, skipped by `baton_claim` and
/// `baton_peek`, whose replies gained the list of limited lanes with work),
/// `baton_limit_peek`, `baton_limit_claim`, `baton_limit_running` and
/// `baton_limit_mark`, the record field `lh` and the partition's release
/// hash `lrel`, written by every end of a run holding slots and handed out
/// in woken replies (and by `baton_promote`), and the renew answer
/// `renewed <ns>`.
/// Generation 16 added routing: the record fields `ses`, `ver` and `vk`
/// (two more values per `baton_create` item; such work waits in `wx:`),
/// idempotency fields scoped by the session, the partition's session locks
/// `ses` and `sesx` (taken by every claim of a session's work, extended by
/// `baton_renew`, released by `baton_reclaim` and `baton_revoke`, swept by
/// `baton_reclaim`), the version and
/// session arguments of `baton_claim`, `baton_peek`, `baton_limit_peek` and
/// `baton_limit_claim`, two more values per claim entry (session and
/// version) and the version range `v` of a registry entry.
/// Generation 17 added fair turns: the fair key specs in the partition's
/// copy `lim:<ns>` (fields `f:<lane>` and `f:`, after a count of limited
/// lanes in `baton_limit_lanes`' arguments), the per-key sets
/// `fk:<ns>/<lane>/<key>` and the record field `fk`, kept by every move
/// into and out of `waiting`, by `baton_create`, `baton_set_priority` and
/// every claim. A generation-16 library mixed in would take work out of
/// the waiting sets without leaving the per-key sets, so turns would queue
/// behind work long gone.
pub const GENERATION: u32 = 17;

/// The library files, in load order; `common.lua` holds shared helpers.
const SOURCES: &[(&str, &str)] = &[
    ("common.lua", include_str!("../../../lua/common.lua")),
    ("version.lua", include_str!("../../../lua/version.lua")),
    ("create.lua", include_str!("../../../lua/create.lua")),
    ("peek.lua", include_str!("../../../lua/peek.lua")),
    ("claim.lua", include_str!("../../../lua/claim.lua")),
    ("renew.lua", include_str!("../../../lua/renew.lua")),
    ("complete.lua", include_str!("../../../lua/complete.lua")),
    ("fail.lua", include_str!("../../../lua/fail.lua")),
    ("cancel.lua", include_str!("../../../lua/cancel.lua")),
    (
        "cancel_units.lua",
        include_str!("../../../lua/cancel_units.lua"),
    ),
    ("cascade.lua", include_str!("../../../lua/cascade.lua")),
    (
        "wait_children.lua",
        include_str!("../../../lua/wait_children.lua"),
    ),
    ("release.lua", include_str!("../../../lua/release.lua")),
    ("suspend.lua", include_str!("../../../lua/suspend.lua")),
    ("signal.lua", include_str!("../../../lua/signal.lua")),
    ("timeout.lua", include_str!("../../../lua/timeout.lua")),
    (
        "record_step.lua",
        include_str!("../../../lua/record_step.lua"),
    ),
    ("set_state.lua", include_str!("../../../lua/set_state.lua")),
    (
        "set_status.lua",
        include_str!("../../../lua/set_status.lua"),
    ),
    (
        "append_progress.lua",
        include_str!("../../../lua/append_progress.lua"),
    ),
    ("watch.lua", include_str!("../../../lua/watch.lua")),
    ("promote.lua", include_str!("../../../lua/promote.lua")),
    ("reclaim.lua", include_str!("../../../lua/reclaim.lua")),
    ("expire.lua", include_str!("../../../lua/expire.lua")),
    ("trim.lua", include_str!("../../../lua/trim.lua")),
    (
        "sync_ownership.lua",
        include_str!("../../../lua/sync_ownership.lua"),
    ),
    (
        "release_ownership.lua",
        include_str!("../../../lua/release_ownership.lua"),
    ),
    ("hint.lua", include_str!("../../../lua/hint.lua")),
    ("lanes.lua", include_str!("../../../lua/lanes.lua")),
    ("list.lua", include_str!("../../../lua/list.lua")),
    (
        "set_priority.lua",
        include_str!("../../../lua/set_priority.lua"),
    ),
    ("set_tag.lua", include_str!("../../../lua/set_tag.lua")),
    ("revoke.lua", include_str!("../../../lua/revoke.lua")),
    ("saw_claim.lua", include_str!("../../../lua/saw_claim.lua")),
    ("saw_renew.lua", include_str!("../../../lua/saw_renew.lua")),
    ("workers.lua", include_str!("../../../lua/workers.lua")),
    ("pause.lua", include_str!("../../../lua/pause.lua")),
    ("resume.lua", include_str!("../../../lua/resume.lua")),
    ("replay.lua", include_str!("../../../lua/replay.lua")),
    (
        "replay_units.lua",
        include_str!("../../../lua/replay_units.lua"),
    ),
    ("delete.lua", include_str!("../../../lua/delete.lua")),
    ("audit.lua", include_str!("../../../lua/audit.lua")),
    (
        "limit_peek.lua",
        include_str!("../../../lua/limit_peek.lua"),
    ),
    (
        "limit_admit.lua",
        include_str!("../../../lua/limit_admit.lua"),
    ),
    (
        "limit_claim.lua",
        include_str!("../../../lua/limit_claim.lua"),
    ),
    (
        "limit_release.lua",
        include_str!("../../../lua/limit_release.lua"),
    ),
    (
        "limit_renew.lua",
        include_str!("../../../lua/limit_renew.lua"),
    ),
    (
        "limit_running.lua",
        include_str!("../../../lua/limit_running.lua"),
    ),
    (
        "limit_adopt.lua",
        include_str!("../../../lua/limit_adopt.lua"),
    ),
    (
        "limit_mark.lua",
        include_str!("../../../lua/limit_mark.lua"),
    ),
    (
        "limit_lanes.lua",
        include_str!("../../../lua/limit_lanes.lua"),
    ),
    (
        "limit_define.lua",
        include_str!("../../../lua/limit_define.lua"),
    ),
    (
        "limit_enforce.lua",
        include_str!("../../../lua/limit_enforce.lua"),
    ),
];

const PLACEHOLDER: &str = "__BATON_LIBRARY_VERSION__";

/// The assembled library and its version, `<generation>:<16 hex digits of
/// FNV-1a over the sources>`, so any edit of a file changes the version.
#[derive(Debug)]
pub struct Library {
    /// What `baton_version` answers once this library is loaded.
    pub version: String,
    /// The text given to `FUNCTION LOAD`.
    pub code: String,
}

impl Library {
    /// Assembles the library.
    pub fn build() -> Library {
        let h = crate::fnv1a(SOURCES.iter().flat_map(|(_, src)| src.bytes()));
        let version = format!("{GENERATION}:{h:016x}");
        let mut code = String::from("#!lua name=baton\n");
        for (_, src) in SOURCES {
            code.push_str(&src.replace(PLACEHOLDER, &version));
            code.push('\n');
        }
        Library { version, code }
    }
}

/// What to do about the library a server holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It is this build's library.
    Current,
    /// Missing or older (or same generation, other text): load ours.
    Replace,
}

/// Compares a loaded version (None: no library) with ours.
pub fn judge(loaded: Option<&str>, ours: &Library) -> Result<Verdict> {
    let Some(loaded) = loaded else {
        return Ok(Verdict::Replace);
    };
    if loaded == ours.version {
        return Ok(Verdict::Current);
    }
    let generation = loaded
        .split_once(':')
        .and_then(|(g, _)| g.parse::<u32>().ok())
        .unwrap_or(0);
    if generation > GENERATION {
        return Err(EngineError::Configuration {
            message: format!(
                "the server holds Baton function library {loaded}, newer than this build's {}; \
                 upgrade this process (it must not replace a newer library)",
                ours.version
            ),
        });
    }
    Ok(Verdict::Replace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_lua_file_is_in_the_library() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../lua");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".lua"))
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = SOURCES.iter().map(|(n, _)| (*n).to_owned()).collect();
        listed.sort();
        assert_eq!(listed, on_disk);
    }

    #[test]
    fn the_history_bound_is_the_cores() {
        let lib = Library::build();
        let kept = format!(
            "local EVENTS_KEPT = {}\n",
            baton_core::ExecutionEvent::MAX_KEPT
        );
        let detail = format!(
            "local EVENT_DETAIL = {}\n",
            baton_core::ExecutionEvent::MAX_DETAIL
        );
        assert!(lib.code.contains(&kept), "{kept}");
        assert!(lib.code.contains(&detail), "{detail}");
    }

    #[test]
    fn versions_are_judged() {
        let lib = Library::build();
        assert!(lib.code.starts_with("#!lua name=baton\n"));
        assert!(!lib.code.contains(PLACEHOLDER));
        assert!(lib.code.contains(&lib.version));
        assert_eq!(judge(None, &lib).unwrap(), Verdict::Replace);
        assert_eq!(judge(Some(&lib.version), &lib).unwrap(), Verdict::Current);
        assert_eq!(
            judge(Some("1:0000000000000000"), &lib).unwrap(),
            Verdict::Replace
        );
        // A server still holding the library before waiting (generation 4)
        // gets this one: its functions neither know `suspended` nor answer
        // the wait log in claims.
        assert_eq!(
            judge(Some("4:0123456789abcdef"), &lib).unwrap(),
            Verdict::Replace
        );
        // A server still holding the library before steps (generation 5)
        // gets this one: its claims answer no step count, so a retried
        // attempt would replay nothing.
        assert_eq!(
            judge(Some("5:0123456789abcdef"), &lib).unwrap(),
            Verdict::Replace
        );
        // A server still holding the library before the rest of memory
        // (generation 6) gets this one: its terminal transitions announce
        // nothing, so a reader waiting for a change would sleep through it.
        assert_eq!(
            judge(Some("6:0123456789abcdef"), &lib).unwrap(),
            Verdict::Replace
        );
        // A server still holding the library before operator control
        // (generation 7) gets this one: it has no edit, revoke or worker
        // registry functions, so those calls would find none.
        assert_eq!(
            judge(Some("7:0123456789abcdef"), &lib).unwrap(),
            Verdict::Replace
        );
        // A server still holding the library before pause (generation 8)
        // gets this one: its claims would not skip paused lanes, and its
        // functions know no paused state.
        assert_eq!(
            judge(Some("8:0123456789abcdef"), &lib).unwrap(),
            Verdict::Replace
        );
        // A server still holding the library before deletes (generation
        // 10) gets this one: it has no `baton_delete`.
        assert_eq!(
            judge(Some("10:0123456789abcdef"), &lib).unwrap(),
            Verdict::Replace
        );
        // A server still holding the library before the event history
        // (generation 11) gets this one: its functions record no event, so
        // histories would miss the changes they make.
        assert_eq!(
            judge(Some("11:0123456789abcdef"), &lib).unwrap(),
            Verdict::Replace
        );
        // A server still holding the library before retention rules
        // (generation 12) gets this one: its creates stamp no keep and its
        // trim reads no rule, so executions would be kept by the default.
        assert_eq!(
            judge(Some("12:0123456789abcdef"), &lib).unwrap(),
            Verdict::Replace
        );
        // A server still holding the library before units of bulk cancels
        // and replays (generation 13) gets this one: it has no
        // `baton_cancel_units` or `baton_replay_units`, so a bulk cancel or
        // replay would find no function.
        assert_eq!(
            judge(Some("13:0123456789abcdef"), &lib).unwrap(),
            Verdict::Replace
        );
        // A server still holding the library before limits (generation 14)
        // gets this one: its claims would take the work of limited lanes
        // without judging it, and its ends release no slot.
        assert_eq!(
            judge(Some("14:0123456789abcdef"), &lib).unwrap(),
            Verdict::Replace
        );
        assert_eq!(judge(Some("garbage"), &lib).unwrap(), Verdict::Replace);
        let newer = format!("{}:0", GENERATION + 1);
        assert!(matches!(
            judge(Some(&newer), &lib),
            Err(EngineError::Configuration { .. })
        ));
    }
}
