//! The layout every backend crate shares, and the trait impls it implies.

/// Implements [`EngineBackend`](crate::EngineBackend) and
/// [`AdminBackend`](crate::AdminBackend) for a backend type by handing each
/// method to the module of its crate that implements it, so every backend
/// crate has the same file set and a reader who knows one finds everything
/// in the others:
///
/// | module | functions (each `pub(crate) async fn name(b: &Backend, …)`, the method's arguments after `b`) |
/// |---|---|
/// | `backend` | `capabilities`, `partitions` (plain `fn`) |
/// | `create` | `create` |
/// | `claim` | `claim`, `wait_for_work` |
/// | `lease` | `renew`, `complete`, `fail` |
/// | `flow` | `wait_children`, `cancel`, `cascade_due`, `children`, `tree` |
/// | `wait` | `release`, `suspend`, `signal`, `timeout_due`, `signals` |
/// | `memory` | `record_step`, `set_state`, `set_status`, `append_progress`, `steps`, `state`, `progress`, `wait_for_change` |
/// | `ops` | `set_priority`, `set_tag`, `revoke`, `workers`, `explain`, `pause`, `resume`, `pause_lane`, `resume_lane`, `lanes`, `replay` |
/// | `scan` | `promote_due`, `reclaim_expired_leases`, `expire_deadlines`, `trim_terminal` |
/// | `ownership` | `sync_ownership`, `release_ownership`, `partition_owners` |
/// | `manage` | `delete_units`, `events`, `audit`, `set_history`, `history_enabled` |
/// | `limits` | `set_limit`, `remove_limit`, `limits`, `limit_usage` |
/// | `admin` | `describe`, `list`, `counts`, `namespaces`, `attempts`, `describe_many` |
///
/// The calling crate depends on `async-trait`.
#[macro_export]
#[allow(clippy::crate_in_macro_def)] // `crate` is meant: the backend crate calling the macro
macro_rules! implement_backend_by_modules {
    ($backend:ty) => {
        #[::async_trait::async_trait]
        impl $crate::EngineBackend for $backend {
            fn capabilities(&self) -> $crate::Capabilities {
                crate::backend::capabilities(self)
            }

            fn partitions(&self) -> $crate::PartitionCount {
                crate::backend::partitions(self)
            }

            async fn create(
                &self,
                executions: ::std::vec::Vec<$crate::NewExecution>,
            ) -> $crate::Result<::std::vec::Vec<$crate::CreateOutcome>> {
                crate::create::create(self, executions).await
            }

            async fn claim(
                &self,
                request: $crate::ClaimRequest,
            ) -> $crate::Result<::std::vec::Vec<$crate::Claim>> {
                crate::claim::claim(self, request).await
            }

            async fn renew(
                &self,
                request: $crate::RenewRequest,
            ) -> $crate::Result<::std::vec::Vec<$crate::RenewOutcome>> {
                crate::lease::renew(self, request).await
            }

            async fn complete(
                &self,
                lease: &$crate::LeaseToken,
                result: ::std::vec::Vec<u8>,
            ) -> $crate::Result<$crate::ExecutionSnapshot> {
                crate::lease::complete(self, lease, result).await
            }

            async fn fail(
                &self,
                lease: &$crate::LeaseToken,
                failure: $crate::Failure,
            ) -> $crate::Result<$crate::ExecutionSnapshot> {
                crate::lease::fail(self, lease, failure).await
            }

            async fn wait_children(
                &self,
                lease: &$crate::LeaseToken,
            ) -> $crate::Result<$crate::ExecutionSnapshot> {
                crate::flow::wait_children(self, lease).await
            }

            async fn release(
                &self,
                lease: &$crate::LeaseToken,
            ) -> $crate::Result<$crate::ExecutionSnapshot> {
                crate::wait::release(self, lease).await
            }

            async fn suspend(
                &self,
                lease: &$crate::LeaseToken,
                request: $crate::SuspendRequest,
            ) -> $crate::Result<$crate::SuspendOutcome> {
                crate::wait::suspend(self, lease, request).await
            }

            async fn signal(
                &self,
                id: &$crate::ExecutionId,
                signal: $crate::NewSignal,
            ) -> $crate::Result<$crate::SignalOutcome> {
                crate::wait::signal(self, id, signal).await
            }

            async fn timeout_due(
                &self,
                partition: $crate::PartitionId,
                limit: usize,
            ) -> $crate::Result<$crate::ScanReport> {
                crate::wait::timeout_due(self, partition, limit).await
            }

            async fn record_step(
                &self,
                lease: &$crate::LeaseToken,
                name: $crate::StepName,
                outcome: $crate::StepOutcome,
            ) -> $crate::Result<$crate::StepRecord> {
                crate::memory::record_step(self, lease, name, outcome).await
            }

            async fn set_state(
                &self,
                lease: &$crate::LeaseToken,
                key: $crate::StateKey,
                value: ::std::option::Option<::std::vec::Vec<u8>>,
            ) -> $crate::Result<()> {
                crate::memory::set_state(self, lease, key, value).await
            }

            async fn set_status(
                &self,
                lease: &$crate::LeaseToken,
                status: ::std::vec::Vec<u8>,
            ) -> $crate::Result<u64> {
                crate::memory::set_status(self, lease, status).await
            }

            async fn append_progress(
                &self,
                lease: &$crate::LeaseToken,
                frame: ::std::vec::Vec<u8>,
            ) -> $crate::Result<u64> {
                crate::memory::append_progress(self, lease, frame).await
            }

            async fn cancel(
                &self,
                id: &$crate::ExecutionId,
                request: $crate::CancelRequest,
            ) -> $crate::Result<$crate::Cancellation> {
                crate::flow::cancel(self, id, request).await
            }

            async fn describe(
                &self,
                id: &$crate::ExecutionId,
            ) -> $crate::Result<$crate::ExecutionSnapshot> {
                crate::admin::describe(self, id).await
            }

            async fn wait_for_work(
                &self,
                namespace: &$crate::Namespace,
                lanes: &[$crate::Lane],
                timeout: ::std::time::Duration,
            ) -> $crate::Result<()> {
                crate::claim::wait_for_work(self, namespace, lanes, timeout).await
            }

            async fn promote_due(
                &self,
                partition: $crate::PartitionId,
                limit: usize,
            ) -> $crate::Result<$crate::ScanReport> {
                crate::scan::promote_due(self, partition, limit).await
            }

            async fn reclaim_expired_leases(
                &self,
                partition: $crate::PartitionId,
                limit: usize,
            ) -> $crate::Result<$crate::ScanReport> {
                crate::scan::reclaim_expired_leases(self, partition, limit).await
            }

            async fn expire_deadlines(
                &self,
                partition: $crate::PartitionId,
                limit: usize,
            ) -> $crate::Result<$crate::ScanReport> {
                crate::scan::expire_deadlines(self, partition, limit).await
            }

            async fn trim_terminal(
                &self,
                partition: $crate::PartitionId,
                retention: ::std::time::Duration,
                limit: usize,
            ) -> $crate::Result<$crate::ScanReport> {
                crate::scan::trim_terminal(self, partition, retention, limit).await
            }

            async fn cascade_due(
                &self,
                partition: $crate::PartitionId,
                limit: usize,
            ) -> $crate::Result<$crate::ScanReport> {
                crate::flow::cascade_due(self, partition, limit).await
            }

            async fn sync_ownership(
                &self,
                node: &$crate::NodeId,
                ttl: ::std::time::Duration,
            ) -> $crate::Result<$crate::Ownership> {
                crate::ownership::sync_ownership(self, node, ttl).await
            }

            async fn release_ownership(&self, node: &$crate::NodeId) -> $crate::Result<()> {
                crate::ownership::release_ownership(self, node).await
            }
        }

        #[::async_trait::async_trait]
        impl $crate::AdminBackend for $backend {
            async fn list(
                &self,
                filter: &$crate::ListFilter,
                page: $crate::Page,
            ) -> $crate::Result<$crate::ListPage> {
                crate::admin::list(self, filter, page).await
            }

            async fn counts(
                &self,
                namespace: &$crate::Namespace,
            ) -> $crate::Result<::std::collections::BTreeMap<$crate::Lane, $crate::StateCounts>>
            {
                crate::admin::counts(self, namespace).await
            }

            async fn namespaces(
                &self,
                limit: usize,
            ) -> $crate::Result<::std::vec::Vec<$crate::Namespace>> {
                crate::admin::namespaces(self, limit).await
            }

            async fn partition_owners(
                &self,
            ) -> $crate::Result<::std::vec::Vec<$crate::PartitionOwner>> {
                crate::ownership::partition_owners(self).await
            }

            async fn attempts(
                &self,
                id: &$crate::ExecutionId,
            ) -> $crate::Result<::std::vec::Vec<$crate::AttemptRecord>> {
                crate::admin::attempts(self, id).await
            }

            async fn describe_many(
                &self,
                ids: &[$crate::ExecutionId],
            ) -> $crate::Result<::std::vec::Vec<::std::option::Option<$crate::ExecutionSnapshot>>>
            {
                crate::admin::describe_many(self, ids).await
            }

            async fn signals(
                &self,
                id: &$crate::ExecutionId,
            ) -> $crate::Result<::std::vec::Vec<$crate::Signal>> {
                crate::wait::signals(self, id).await
            }

            async fn steps(
                &self,
                id: &$crate::ExecutionId,
            ) -> $crate::Result<::std::vec::Vec<$crate::StepRecord>> {
                crate::memory::steps(self, id).await
            }

            async fn state(
                &self,
                id: &$crate::ExecutionId,
            ) -> $crate::Result<::std::vec::Vec<$crate::StateEntry>> {
                crate::memory::state(self, id).await
            }

            async fn progress(
                &self,
                id: &$crate::ExecutionId,
                after: u64,
                limit: usize,
            ) -> $crate::Result<::std::vec::Vec<$crate::ProgressFrame>> {
                crate::memory::progress(self, id, after, limit).await
            }

            async fn wait_for_change(
                &self,
                id: &$crate::ExecutionId,
                seen: $crate::ChangeMark,
                timeout: ::std::time::Duration,
            ) -> $crate::Result<$crate::ExecutionSnapshot> {
                crate::memory::wait_for_change(self, id, seen, timeout).await
            }

            async fn set_priority(
                &self,
                id: &$crate::ExecutionId,
                priority: i32,
            ) -> $crate::Result<$crate::ExecutionSnapshot> {
                crate::ops::set_priority(self, id, priority).await
            }

            async fn set_tag(
                &self,
                id: &$crate::ExecutionId,
                key: $crate::TagKey,
                value: ::std::option::Option<::std::string::String>,
            ) -> $crate::Result<$crate::ExecutionSnapshot> {
                crate::ops::set_tag(self, id, key, value).await
            }

            async fn revoke(
                &self,
                id: &$crate::ExecutionId,
            ) -> $crate::Result<$crate::ExecutionSnapshot> {
                crate::ops::revoke(self, id).await
            }

            async fn workers(
                &self,
                namespace: &$crate::Namespace,
                limit: usize,
            ) -> $crate::Result<::std::vec::Vec<$crate::WorkerInfo>> {
                crate::ops::workers(self, namespace, limit).await
            }

            async fn explain(
                &self,
                id: &$crate::ExecutionId,
            ) -> $crate::Result<$crate::Explanation> {
                crate::ops::explain(self, id).await
            }

            async fn pause(
                &self,
                id: &$crate::ExecutionId,
                scope: $crate::CancelScope,
            ) -> $crate::Result<$crate::PauseOutcome> {
                crate::ops::pause(self, id, scope).await
            }

            async fn resume(
                &self,
                id: &$crate::ExecutionId,
                scope: $crate::CancelScope,
            ) -> $crate::Result<$crate::PauseOutcome> {
                crate::ops::resume(self, id, scope).await
            }

            async fn pause_lane(
                &self,
                namespace: &$crate::Namespace,
                lane: &$crate::Lane,
            ) -> $crate::Result<bool> {
                crate::ops::pause_lane(self, namespace, lane).await
            }

            async fn resume_lane(
                &self,
                namespace: &$crate::Namespace,
                lane: &$crate::Lane,
            ) -> $crate::Result<bool> {
                crate::ops::resume_lane(self, namespace, lane).await
            }

            async fn lanes(
                &self,
                namespace: &$crate::Namespace,
            ) -> $crate::Result<::std::vec::Vec<$crate::LaneInfo>> {
                crate::ops::lanes(self, namespace).await
            }

            async fn replay(
                &self,
                id: &$crate::ExecutionId,
            ) -> $crate::Result<$crate::ExecutionSnapshot> {
                crate::ops::replay(self, id).await
            }

            async fn delete_units(
                &self,
                ids: &[$crate::ExecutionId],
                force: bool,
            ) -> $crate::Result<::std::vec::Vec<$crate::Result<$crate::DeletePart>>> {
                crate::manage::delete_units(self, ids, force).await
            }

            async fn cancel_units(
                &self,
                ids: &[$crate::ExecutionId],
                request: &$crate::CancelRequest,
            ) -> $crate::Result<::std::vec::Vec<$crate::Result<$crate::CancelPart>>> {
                crate::manage::cancel_units(self, ids, request).await
            }

            async fn replay_units(
                &self,
                ids: &[$crate::ExecutionId],
            ) -> $crate::Result<::std::vec::Vec<$crate::Result<()>>> {
                crate::manage::replay_units(self, ids).await
            }

            async fn events(
                &self,
                id: &$crate::ExecutionId,
                after: u64,
                limit: usize,
            ) -> $crate::Result<::std::vec::Vec<$crate::ExecutionEvent>> {
                crate::manage::events(self, id, after, limit).await
            }

            async fn audit(&self, ids: &[$crate::ExecutionId], detail: &str) -> $crate::Result<()> {
                crate::manage::audit(self, ids, detail).await
            }

            async fn set_history(
                &self,
                namespace: &$crate::Namespace,
                enabled: bool,
            ) -> $crate::Result<bool> {
                crate::manage::set_history(self, namespace, enabled).await
            }

            async fn history_enabled(&self, namespace: &$crate::Namespace) -> $crate::Result<bool> {
                crate::manage::history_enabled(self, namespace).await
            }

            async fn set_retention(
                &self,
                namespace: &$crate::Namespace,
                lane: ::std::option::Option<&$crate::Lane>,
                keep: ::std::time::Duration,
            ) -> $crate::Result<::std::option::Option<::std::time::Duration>> {
                crate::manage::set_retention(self, namespace, lane, keep).await
            }

            async fn remove_retention(
                &self,
                namespace: &$crate::Namespace,
                lane: ::std::option::Option<&$crate::Lane>,
            ) -> $crate::Result<::std::option::Option<::std::time::Duration>> {
                crate::manage::remove_retention(self, namespace, lane).await
            }

            async fn retention_rules(
                &self,
            ) -> $crate::Result<::std::vec::Vec<$crate::RetentionRule>> {
                crate::manage::retention_rules(self).await
            }

            async fn set_limit(
                &self,
                limit: &$crate::Limit,
            ) -> $crate::Result<::std::option::Option<$crate::Limit>> {
                crate::limits::set_limit(self, limit).await
            }

            async fn remove_limit(
                &self,
                name: &$crate::LimitName,
            ) -> $crate::Result<::std::option::Option<$crate::Limit>> {
                crate::limits::remove_limit(self, name).await
            }

            async fn limits(
                &self,
                namespace: ::std::option::Option<&$crate::Namespace>,
            ) -> $crate::Result<::std::vec::Vec<$crate::Limit>> {
                crate::limits::limits(self, namespace).await
            }

            async fn limit_usage(
                &self,
                name: &$crate::LimitName,
                limit: usize,
            ) -> $crate::Result<::std::vec::Vec<$crate::LimitUsage>> {
                crate::limits::limit_usage(self, name, limit).await
            }

            async fn children(
                &self,
                parent: &$crate::ExecutionId,
                page: $crate::Page,
            ) -> $crate::Result<$crate::ListPage> {
                crate::flow::children(self, parent, page).await
            }

            async fn tree(
                &self,
                id: &$crate::ExecutionId,
                limit: usize,
            ) -> $crate::Result<$crate::Tree> {
                crate::flow::tree(self, id, limit).await
            }
        }
    };
}
