//! The contract's entry points: each method hands over to the module that
//! implements it.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use baton_core::{
    AdminBackend, AttemptRecord, Capabilities, Claim, ClaimRequest, CreateOutcome, EngineBackend,
    ExecutionId, ExecutionSnapshot, Failure, Lane, LeaseToken, ListFilter, ListPage, Namespace,
    NewExecution, NodeId, Ownership, Page, PartitionCount, PartitionId, PartitionOwner,
    RenewOutcome, RenewRequest, Result, ScanReport, StateCounts,
};

use crate::{PostgresBackend, admin, claim, create, lease, ownership, scan};

#[async_trait]
impl EngineBackend for PostgresBackend {
    fn capabilities(&self) -> Capabilities {
        let mut c = Capabilities::new("postgres", self.inner.limits);
        c.cross_process_wakeups = true;
        c.multi_process = true;
        c.durable = self.inner.durable;
        c
    }

    fn partitions(&self) -> PartitionCount {
        self.inner.partitions
    }

    async fn create(&self, executions: Vec<NewExecution>) -> Result<Vec<CreateOutcome>> {
        create::create(self, executions).await
    }

    async fn claim(&self, request: ClaimRequest) -> Result<Vec<Claim>> {
        claim::claim(self, request).await
    }

    async fn renew(&self, request: RenewRequest) -> Result<Vec<RenewOutcome>> {
        lease::renew(self, request).await
    }

    async fn complete(&self, lease: &LeaseToken, result: Vec<u8>) -> Result<ExecutionSnapshot> {
        lease::complete(self, lease, result).await
    }

    async fn fail(&self, lease: &LeaseToken, failure: Failure) -> Result<ExecutionSnapshot> {
        lease::fail(self, lease, failure).await
    }

    async fn cancel(&self, id: &ExecutionId, reason: Option<String>) -> Result<ExecutionSnapshot> {
        lease::cancel(self, id, reason).await
    }

    async fn describe(&self, id: &ExecutionId) -> Result<ExecutionSnapshot> {
        admin::describe(self, id).await
    }

    async fn wait_for_work(
        &self,
        namespace: &Namespace,
        lanes: &[Lane],
        timeout: Duration,
    ) -> Result<()> {
        claim::wait_for_work(self, namespace, lanes, timeout).await
    }

    async fn promote_due(&self, partition: PartitionId, limit: usize) -> Result<ScanReport> {
        scan::promote_due(self, partition, limit).await
    }

    async fn reclaim_expired_leases(
        &self,
        partition: PartitionId,
        limit: usize,
    ) -> Result<ScanReport> {
        scan::reclaim_expired_leases(self, partition, limit).await
    }

    async fn expire_deadlines(&self, partition: PartitionId, limit: usize) -> Result<ScanReport> {
        scan::expire_deadlines(self, partition, limit).await
    }

    async fn trim_terminal(
        &self,
        partition: PartitionId,
        retention: Duration,
        limit: usize,
    ) -> Result<ScanReport> {
        scan::trim_terminal(self, partition, retention, limit).await
    }

    async fn sync_ownership(&self, node: &NodeId, ttl: Duration) -> Result<Ownership> {
        ownership::sync_ownership(self, node, ttl).await
    }

    async fn release_ownership(&self, node: &NodeId) -> Result<()> {
        ownership::release_ownership(self, node).await
    }
}

#[async_trait]
impl AdminBackend for PostgresBackend {
    async fn list(&self, filter: &ListFilter, page: Page) -> Result<ListPage> {
        admin::list(self, filter, page).await
    }

    async fn counts(&self, namespace: &Namespace) -> Result<BTreeMap<Lane, StateCounts>> {
        admin::counts(self, namespace).await
    }

    async fn namespaces(&self, limit: usize) -> Result<Vec<Namespace>> {
        admin::namespaces(self, limit).await
    }

    async fn partition_owners(&self) -> Result<Vec<PartitionOwner>> {
        ownership::partition_owners(self).await
    }

    async fn attempts(&self, id: &ExecutionId) -> Result<Vec<AttemptRecord>> {
        admin::attempts(self, id).await
    }
}
