//! Waiting for children: `wait_children`, one `baton_wait_children` call.

use super::*;

/// Runs to completion in a task of its own (see [`detached`]).
pub(crate) async fn wait_children(
    b: &ValkeyBackend,
    lease: &LeaseToken,
) -> Result<ExecutionSnapshot> {
    let (b, lease) = (b.clone(), lease.clone());
    detached(async move {
        let id = lease.execution_id();
        b.check_id(id)?;
        let mut c = Server::fcall("baton_wait_children", &b.base(id.partition().get()));
        c.arg(id.uuid().simple().to_string())
            .arg(lease.attempt())
            .arg(hex_nonce(lease.nonce()))
            .arg(b.now().as_millis());
        let (reply, payload) = b.with_payload(id, c).await?;
        b.outcome(id, "wait_children", reply, payload).await
    })
    .await
}
