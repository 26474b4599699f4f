//! # baton-testkit
//!
//! The one conformance suite every Baton backend runs. It is written once,
//! against `&dyn AdminBackend`, and instantiated per backend by one macro.
//!
//! A backend's test file provides a [`Harness`] — a fresh, isolated backend per
//! case, reading the clock it is handed — and invokes the suite once:
//!
//! ```ignore
//! // crates/baton-sqlite/tests/conformance.rs
//! baton_testkit::conformance_suite!(SqliteHarness::new());
//! ```
//!
//! That expands to one `#[tokio::test]` per case (so every case runs in
//! parallel and is reported by name), each calling
//! `baton_testkit::cases::<case>(&harness)`. The crate invoking the macro needs
//! `tokio` (with the `macros` and `rt-multi-thread` features) as a
//! dev-dependency.
//!
//! # What the suite relies on
//!
//! - Each case gets its own backend from [`Harness::backend`], isolated from
//!   every other case (own file, schema or key prefix): scanner passes report
//!   exact counts, so no other case's executions may be visible to them.
//! - The backend reads every instant from the clock it is given. Cases hand it
//!   a [`ManualClock`](baton_core::ManualClock) standing at [`START`] and move
//!   it forward; no case sleeps to make time pass and none asserts on elapsed
//!   real time.
//! - Each case also works in its own random namespace, so a harness that
//!   shares storage between cases still keeps their reads apart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use async_trait::async_trait;
use baton_core::{AdminBackend, SharedClock};

pub mod cases;
mod ctx;
mod expect;
pub mod scale;
pub mod servers;
pub mod upgrade;

pub use ctx::{Ctx, DEFAULT_LANE, DEFAULT_WORKER, START, expected_snapshot};
pub use expect::{
    cap, caps, expect_conflict, expect_err, expect_invalid, expect_lease_lost, expect_not_found,
    ikey, kind, lane, ms, ok, tag, worker,
};

/// What a backend's test module provides: a fresh, isolated backend per test
/// case.
///
/// ```ignore
/// struct SqliteHarness { dir: tempfile::TempDir }
///
/// #[async_trait::async_trait]
/// impl baton_testkit::Harness for SqliteHarness {
///     async fn backend(&self, clock: SharedClock) -> Arc<dyn AdminBackend> {
///         let path = self.dir.path().join("conformance.db");
///         let config = SqliteConfig::new(Location::File(path)).with_clock(clock);
///         Arc::new(SqliteBackend::open(config).await.unwrap())
///     }
/// }
/// ```
///
/// The suite calls [`backend`](Harness::backend) once per case, with a clock
/// it owns; the backend must read every instant from that clock.
#[async_trait]
pub trait Harness: Send + Sync + 'static {
    /// A new backend instance reading `clock`, isolated from every other case
    /// (own file / schema / key prefix).
    async fn backend(&self, clock: SharedClock) -> Arc<dyn AdminBackend>;
}

/// Instantiates the conformance suite for one backend.
///
/// `$harness` is an expression evaluating to a value that implements
/// [`Harness`]; it is evaluated once per case. The expansion is one
/// `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]` function per
/// case, named after the case, so it is best invoked at the top level of an
/// integration-test file (or inside a module of its own).
///
/// ```ignore
/// baton_testkit::conformance_suite!(SqliteHarness::new());
/// ```
#[macro_export]
macro_rules! conformance_suite {
    ($harness:expr $(,)?) => {
        $crate::__with_cases!(tests[$harness]);
    };
}

/// The list of cases, kept in exactly one place. Not public API: expands
/// `tests[$harness]` to one test function per case, `names[]` to the case
/// names and `check[]` to a reference to each case function.
#[doc(hidden)]
#[macro_export]
macro_rules! __with_cases {
    ($mode:ident[$($arg:tt)*]) => {
        $crate::__with_cases! { @emit $mode[$($arg)*]
            // create
            create_waiting_snapshot,
            create_with_delay_is_delayed,
            create_with_future_run_at_is_delayed,
            create_with_past_or_present_run_at_is_waiting,
            create_roundtrips_every_field,
            create_batch_answers_in_request_order,
            create_accepts_max_size_payload,
            // idempotency keys
            idempotency_key_dedups_across_calls,
            idempotency_key_dedups_within_one_batch,
            idempotency_key_is_scoped_by_lane,
            idempotency_key_is_scoped_by_namespace,
            idempotency_dedup_reports_current_state,
            concurrent_creates_with_one_idempotency_key_create_one,
            // claim
            claim_returns_claim_fields,
            claim_without_eligible_work_is_empty,
            claim_orders_by_priority_then_age,
            claim_prefers_earliest_eligible_over_lower_id,
            claim_order_is_exact_when_work_is_uneven_across_partitions,
            claim_respects_max,
            claim_across_multiple_lanes,
            claim_is_scoped_by_namespace_and_lane,
            claim_requires_capability_subset,
            claim_rejects_invalid_requests,
            concurrent_claimers_never_share_an_execution,
            // renew
            renew_extends_lease,
            renew_batch_answers_mixed_outcomes_in_request_order,
            renew_by_another_worker_is_lost,
            renew_cannot_revive_an_expired_lease,
            renew_after_complete_is_lost,
            renew_rejects_invalid_requests,
            // complete
            complete_stores_result_and_closes_attempt,
            complete_accepts_empty_and_max_size_results,
            complete_replay_with_same_result_is_ok,
            complete_replay_with_different_result_conflicts,
            complete_after_fail_conflicts,
            complete_rejects_oversize_result_and_keeps_running,
            complete_with_forged_lease_is_lease_lost,
            concurrent_completes_of_one_lease_agree,
            complete_and_cancel_race_has_one_winner,
            // fail and retry
            fail_schedules_exact_exponential_backoff,
            fail_with_jitter_uses_policy_delay,
            fail_retry_after_overrides_backoff,
            fail_with_zero_backoff_is_waiting,
            fail_non_retryable_fails_at_once,
            fail_on_last_attempt_fails,
            fail_replay_is_ok_and_changes_nothing,
            fail_after_complete_conflicts,
            fail_truncates_long_error,
            fail_with_forged_lease_is_lease_lost,
            // flows
            children_live_in_their_parents_partition,
            a_parent_must_exist_in_the_childs_namespace,
            a_child_cannot_have_an_idempotency_key,
            list_filters_by_parent,
            a_child_key_dedups_among_one_parents_children,
            children_are_paged_in_creation_order,
            the_tree_of_a_flow_lists_its_members_from_the_root,
            cancel_reaches_the_whole_subtree,
            cancel_scope_execution_leaves_descendants,
            a_big_subtree_is_finished_by_the_cascade_pass,
            a_big_tree_pause_and_resume_are_finished_by_the_cascade_pass,
            a_flow_is_trimmed_with_its_root_never_before,
            an_expired_execution_cancels_its_descendants,
            a_parent_waits_for_its_children_without_a_worker,
            waiting_for_finished_children_keeps_the_lease,
            waits_consume_no_attempts,
            blocked_parents_are_cancelled_expired_and_released_like_any,
            a_parent_released_by_a_cancel_or_an_expiry_is_claimable_at_once,
            // waiting without a worker
            release_hands_work_back_without_consuming_an_attempt,
            a_suspended_execution_waits_without_a_lease,
            a_signal_before_the_suspend_satisfies_it_at_once,
            all_and_any_conditions,
            signals_are_deduplicated_ignored_and_bounded,
            timeouts_resume_fail_or_cancel,
            suspended_executions_are_cancelled_expired_and_trimmed,
            suspend_is_validated_and_fenced,
            // memory
            steps_are_recorded_and_replayed_by_the_next_attempt,
            step_records_are_fenced_and_checked,
            steps_survive_reclaim_are_trimmed_and_bounded,
            state_is_fenced_bounded_and_trimmed,
            custom_status_is_versioned_and_in_snapshots,
            progress_frames_are_ordered_bounded_and_trimmed,
            wait_for_change_is_woken_by_changes_and_times_out_unchanged,
            // operator control
            a_priority_edit_reorders_claims,
            tags_are_edited_after_create_and_filters_see_them,
            revoke_reclaims_and_retries_at_once,
            workers_are_registered_by_claims_and_renews,
            explain_names_why_an_execution_is_not_running,
            explain_names_every_wait_reason,
            pause_holds_waiting_and_delayed_work_and_resume_restores_it,
            pausing_a_running_execution_stops_its_worker_without_consuming_an_attempt,
            paused_executions_still_expire_and_cancel,
            a_tree_pause_reaches_descendants_and_resume_judges_what_happened,
            waits_kept_through_a_pause_are_judged_at_resume,
            a_paused_lane_is_skipped_by_claims_until_resumed,
            replay_requeues_dead_executions_with_a_fresh_budget,
            bulk_cancel_and_replay_by_filter_with_preview_and_cursor,
            // delete
            delete_removes_a_finished_execution_and_frees_its_key,
            delete_refuses_unfinished_work_unless_forced_and_force_fences_the_worker,
            delete_reaches_the_subtree_and_a_child_alone_only_when_finished,
            delete_keeps_a_member_its_unfinished_dependents_need,
            a_big_tree_is_deleted_in_units_leaves_first,
            cancel_and_replay_units_answer_each_id,
            bulk_delete_by_filter_with_preview_limit_and_cursor,
            // history
            history_records_a_workers_attempts,
            history_records_operators_waits_and_ends,
            history_is_bounded_and_goes_with_the_execution,
            history_is_kept_per_namespace_from_creation,
            // dependencies
            a_dependent_runs_when_its_upstreams_complete,
            an_unmet_dependency_skips_and_the_skip_cascades,
            any_of_and_quorum_release_early_or_give_up,
            finished_upstreams_decide_at_create,
            bad_dependencies_are_refused_and_write_nothing,
            cancels_and_expiries_of_upstreams_reach_their_dependents,
            a_wide_fan_of_dependents_is_finished_by_the_cascade_pass,
            upstreams_may_be_any_member_of_the_flow,
            children_do_not_release_a_dependent_before_its_upstreams,
            // cancel
            cancel_waiting,
            cancel_delayed_is_never_promoted,
            cancel_running_fences_the_worker,
            cancel_of_cancelled_keeps_first_reason,
            cancel_of_other_terminal_conflicts,
            cancel_truncates_long_reason,
            // scheduler passes
            promote_due_promotes_only_due,
            promote_due_respects_limit,
            reclaim_expired_lease_retries_with_backoff,
            reclaim_with_zero_backoff_is_waiting,
            reclaim_without_attempts_left_fails,
            reclaim_ignores_live_leases,
            reclaim_respects_limit,
            lease_expires_at_its_expiry_instant,
            expired_lease_is_fenced_before_reclaim,
            reclaimed_lease_is_fenced_after_reclaim,
            expire_deadline_of_waiting,
            expire_deadline_of_delayed,
            expire_deadline_of_running_loses_lease,
            deadline_passes_at_its_instant,
            deadline_fences_the_lease_before_the_expiry_pass,
            refused_calls_leave_nothing_locked_for_the_next_pass,
            expire_deadlines_respects_limit,
            trim_removes_only_old_terminal,
            trim_at_exact_retention,
            trim_frees_idempotency_key,
            trim_respects_limit,
            retention_rules_are_set_listed_and_removed,
            retention_per_namespace_and_lane,
            retention_rule_waits_for_an_open_flow,
            terminal_executions_ignore_every_scanner,
            scans_of_empty_partitions_report_nothing,
            scans_reject_invalid_partition_and_zero_limit,
            // limits
            limits_are_set_listed_and_removed,
            a_cap_holds_under_concurrent_claimers,
            every_end_of_a_run_frees_its_slot,
            a_rate_spaces_claims,
            a_key_without_room_never_holds_back_another,
            a_limit_set_later_counts_what_runs_and_removal_frees,
            two_limits_on_one_execution_both_hold,
            // fairness
            a_fair_limit_rotates_between_keys,
            fair_turns_order_work_within_a_priority,
            a_fair_key_without_room_loses_its_turn,
            a_retried_execution_queues_behind_its_own_key,
            a_fair_limit_set_later_orders_new_work,
            // routing
            versions_route_claims_to_compatible_workers,
            a_session_goes_to_the_worker_that_holds_it,
            a_session_lock_renews_with_its_worker_and_lapses_when_idle,
            a_dead_workers_session_is_taken_over,
            a_revoked_run_hands_its_session_over,
            concurrent_claimers_never_share_a_session,
            idempotency_keys_dedupe_within_a_session,
            explain_names_session_owners_and_incompatible_versions,
            // reads
            describe_full_lifecycle,
            attempts_empty_before_first_claim,
            list_filters_by_lane_state_kind_and_tag,
            list_filters_by_states_ranges_and_key_and_describe_many,
            list_paginates_without_gaps_or_duplicates_during_inserts,
            list_rejects_invalid_page,
            counts_per_lane_and_state,
            namespaces_hold_their_executions_until_trimmed,
            reads_include_running_executions,
            capabilities_and_partitions_are_consistent,
            // bad input
            malformed_ids_and_names_are_rejected,
            unknown_ids_are_not_found,
            ids_of_another_deployment_are_invalid,
            create_rejects_oversize_payload,
            create_rejects_negative_delay_and_conflicting_start,
            create_rejects_invalid_retry_policy,
            create_rejects_deadline_not_in_future,
            create_rejects_empty_and_oversize_batch,
            create_invalid_item_rejects_whole_batch,
            create_rejects_invalid_tags_and_capabilities,
            create_rejects_parent_of_another_deployment,
            text_with_nul_is_rejected,
            // concurrency and wake-ups
            concurrent_creates_all_succeed,
            wait_for_work_wakes_on_submission,
            wait_for_work_times_out_without_work,
            abandoned_calls_leave_the_backend_usable,
            // partition ownership
            ownership_single_node_owns_everything,
            ownership_rebalances_when_a_node_joins,
            ownership_three_nodes_converge,
            ownership_takes_over_a_dead_nodes_partitions,
            ownership_release_frees_partitions_at_once,
            ownership_rejects_invalid_ttl,
            ownership_is_listed_per_partition,
        }
    };
    (@emit tests[$harness:expr] $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let harness = $harness;
                $crate::cases::$case(&harness).await;
            }
        )*
    };
    (@emit names[] $($case:ident),* $(,)?) => {
        &[$(::core::stringify!($case)),*]
    };
    (@emit check[] $($case:ident),* $(,)?) => {
        $(let _ = $crate::cases::$case;)*
    };
}

/// The name of every case, in the order [`conformance_suite!`] emits them.
pub const CASE_NAMES: &[&str] = __with_cases!(names[]);

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_listed_case_exists() {
        __with_cases!(check[]);
    }

    #[test]
    fn every_case_is_listed_once() {
        let listed: BTreeSet<&str> = CASE_NAMES.iter().copied().collect();
        assert_eq!(listed.len(), CASE_NAMES.len(), "a case is listed twice");
        let mut defined = BTreeSet::new();
        for source in cases::SOURCES {
            for line in source.lines() {
                if let Some(rest) = line.strip_prefix("pub async fn ") {
                    let name = rest.split('(').next().unwrap_or_default();
                    assert!(defined.insert(name), "case {name} defined twice");
                }
            }
        }
        let missing: Vec<_> = defined.difference(&listed).collect();
        assert!(
            missing.is_empty(),
            "cases defined but not listed in __with_cases!: {missing:?}"
        );
        assert_eq!(defined, listed);
    }

    #[test]
    fn start_is_2030() {
        assert_eq!(START.to_string(), "2030-01-01T00:00:00.000Z");
    }
}
