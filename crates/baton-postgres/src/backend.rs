//! The contract's entry points: the trait impls hand each method to the
//! module that implements it (see `baton_core::implement_backend_by_modules`);
//! what is left here is what the backend says of itself.

use baton_core::{BackendKind, Capabilities, PartitionCount};

use crate::PostgresBackend;

baton_core::implement_backend_by_modules!(PostgresBackend);

pub(crate) fn capabilities(b: &PostgresBackend) -> Capabilities {
    let mut c = Capabilities::new(BackendKind::Postgres, b.inner.limits);
    c.cross_process_wakeups = true;
    c.multi_process = true;
    c.durable = b.inner.durable;
    c
}

pub(crate) fn partitions(b: &PostgresBackend) -> PartitionCount {
    b.inner.partitions
}
