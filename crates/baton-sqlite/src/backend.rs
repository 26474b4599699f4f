//! The contract's entry points: the trait impls hand each method to the
//! module that implements it (see `baton_core::implement_backend_by_modules`);
//! what is left here is what the backend says of itself.

use baton_core::{BackendKind, Capabilities, PartitionCount};

use crate::{Location, SqliteBackend};

baton_core::implement_backend_by_modules!(SqliteBackend);

pub(crate) fn capabilities(b: &SqliteBackend) -> Capabilities {
    let mut c = Capabilities::new(BackendKind::Sqlite, b.inner.limits);
    let on_disk = matches!(b.inner.location, Location::File(_));
    c.durable = on_disk && b.inner.synchronous_full;
    c.multi_process = on_disk;
    c
}

pub(crate) fn partitions(b: &SqliteBackend) -> PartitionCount {
    b.inner.partitions
}
