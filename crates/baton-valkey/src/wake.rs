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

/// Subscribes to the change announcements of a deployment (`channel`, see
/// `announce_change` in `lua/common.lua`) on the first node and wakes the
/// local readers of each announced execution. Reconnects forever; after
/// every (re)subscription every reader is woken to read again, since
/// announcements made before it may have been missed: so a reader need not
/// wait for the subscription before it reads.
pub(crate) fn spawn_change_listener(
    node: String,
    channel: String,
    watchers: Arc<Watchers>,
) -> tokio::task::JoinHandle<()> {
    use futures_util::StreamExt;
    tokio::spawn(async move {
        loop {
            let attempt = async {
                let client = redis::Client::open(node.as_str())?;
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(&channel).await?;
                watchers.notify_all();
                let mut stream = pubsub.on_message();
                while let Some(msg) = stream.next().await {
                    match std::str::from_utf8(msg.get_payload_bytes())
                        .ok()
                        .and_then(|text| text.parse::<ExecutionId>().ok())
                    {
                        Some(id) => watchers.notify(&id),
                        // Not from this library (someone else publishing
                        // on the channel): wakes nobody.
                        None => {
                            tracing::debug!(%channel, "ignored a change announcement that is not an execution id")
                        }
                    }
                }
                Ok::<(), redis::RedisError>(())
            };
            if let Err(e) = attempt.await {
                tracing::debug!(error = %e, "Valkey change subscription failed; retrying");
            }
            watchers.notify_all();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}
