//! The contract's entry points: the trait impls hand each method to the
//! module that implements it (see `baton_core::implement_backend_by_modules`);
//! what is left here is what the backend says of itself.

use baton_core::{BackendKind, Capabilities, PartitionCount};

use crate::ValkeyBackend;

baton_core::implement_backend_by_modules!(ValkeyBackend);

pub(crate) fn capabilities(b: &ValkeyBackend) -> Capabilities {
    let mut c = Capabilities::new(BackendKind::Valkey, b.inner.limits);
    c.cross_process_wakeups = true;
    c.multi_process = true;
    // Read from the server at connect: AOF with appendfsync always.
    c.durable = b.inner.durable;
    c
}

pub(crate) fn partitions(b: &ValkeyBackend) -> PartitionCount {
    b.inner.partitions
}
