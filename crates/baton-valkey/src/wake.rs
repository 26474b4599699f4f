//! Wake-ups across processes: one pattern subscription per backend.

use crate::*;

/// Subscribes to every lane's wake-up channel on the first node (a cluster
/// forwards `PUBLISH` to every node) and wakes local claimers. Reconnects
/// forever; after a reconnect every parked claimer is woken, since messages
/// may have been missed meanwhile.
pub(crate) fn spawn_listener(
    node: String,
    pattern: String,
    wake: Arc<Wakeups>,
) -> tokio::task::JoinHandle<()> {
    use futures_util::StreamExt;
    let prefix_len = pattern.len() - 1;
    tokio::spawn(async move {
        loop {
            let attempt = async {
                let client = redis::Client::open(node.as_str())?;
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.psubscribe(&pattern).await?;
                wake.notify_all();
                let mut stream = pubsub.on_message();
                while let Some(msg) = stream.next().await {
                    let channel = msg.get_channel_name();
                    if let Some((ns, lane)) =
                        channel.get(prefix_len..).and_then(|l| l.split_once('/'))
                    {
                        wake.notify(ns, lane);
                    }
                }
                Ok::<(), redis::RedisError>(())
            };
            if let Err(e) = attempt.await {
                tracing::debug!(error = %e, "Valkey wake-up subscription failed; retrying");
            }
            wake.notify_all();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}
