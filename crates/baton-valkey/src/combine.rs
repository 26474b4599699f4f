//! Write-combining for `complete`, the one hot-path call the trait takes per
//! execution.
//!
//! Concurrent `complete` calls of one backend instance are queued to one
//! task that sends whatever has queued, grouped by partition, as one
//! `baton_complete` call per partition: under load a call carries many
//! completes (one function call, one write per index, one counter update
//! per lane and state for all of them), and a lone call is sent at once.
//! The function judges every item on its own lease, in queue order, exactly
//! as it would alone, with its caller's own clock reading; a caller is
//! answered only after the call that carried it returned.

use std::collections::BTreeMap;

use baton_core::Result;
use futures_util::future::join_all;
use redis::Value;
use tokio::sync::{mpsc, oneshot};

use crate::conn::Server;
use crate::read::array;

/// Most completes in one call.
const MAX_BATCH: usize = 256;

/// One queued complete.
#[derive(Debug)]
pub struct Pending {
    /// The execution's partition.
    pub partition: u16,
    /// Its uuid, simple hex form.
    pub uuid: String,
    /// The lease's attempt.
    pub attempt: u32,
    /// The lease's nonce, 16 hex digits.
    pub nonce: String,
    /// The result bytes.
    pub result: Vec<u8>,
    /// The caller's clock reading, ms.
    pub now: i64,
    /// This item's reply from the function and its payload (read with one
    /// MGET sent just before the call), or the call's error.
    pub reply: oneshot::Sender<Result<(Value, Value)>>,
}

/// `baton_complete` answers three flat values per item; each becomes the
/// reply shape every fenced function answers (`ok` carries woken lanes only
/// when a child's complete released its waiting parent).
fn per_item(flat: Vec<Value>) -> Vec<Value> {
    let mut out = Vec::with_capacity(flat.len() / 3);
    let mut it = flat.into_iter();
    while let (Some(tag), Some(a), Some(b)) = (it.next(), it.next(), it.next()) {
        let item = if matches!(&tag, Value::BulkString(t) if t.as_slice() == b"ok") {
            let woken = match b {
                Value::Array(w) => Value::Array(w),
                _ => Value::Array(vec![Value::Int(0)]),
            };
            vec![tag, woken, a]
        } else {
            vec![tag, a, b]
        };
        out.push(Value::Array(item));
    }
    out
}

/// Starts the combining task; it ends when the returned sender (held by the
/// backend) is dropped. `budget` is the cascade budget each completed
/// execution with dependents tells them within.
pub fn start(server: Server, prefix: String, budget: usize) -> mpsc::UnboundedSender<Pending> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Pending>();
    tokio::spawn(async move {
        let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
        while baton_core::raw::recv_batch(&mut rx, &mut batch, MAX_BATCH).await {
            let mut groups: BTreeMap<u16, Vec<Pending>> = BTreeMap::new();
            for p in batch.drain(..) {
                groups.entry(p.partition).or_default().push(p);
            }
            join_all(
                groups
                    .into_iter()
                    .map(|(partition, items)| flush(&server, &prefix, partition, items, budget)),
            )
            .await;
        }
    });
    tx
}

async fn flush(server: &Server, prefix: &str, partition: u16, items: Vec<Pending>, budget: usize) {
    let base = format!("{prefix}:{{p:{partition}}}");
    let mut c = Server::fcall("baton_complete", &base);
    c.arg(items.len());
    // The payloads, for the snapshots: immutable, and read before the call
    // (see `ValkeyBackend::with_payload`), straight from their keys.
    let mut mget = redis::cmd("MGET");
    for p in &items {
        c.arg(&p.uuid)
            .arg(p.attempt)
            .arg(&p.nonce)
            .arg(p.result.as_slice())
            .arg(p.now);
        mget.arg(format!("{base}:p:{}", p.uuid));
    }
    c.arg(budget);
    let replies = server
        .run_two(mget, c)
        .await
        .and_then(|(payloads, replies)| Ok((array(payloads)?, per_item(array(replies)?))));
    match replies {
        Ok((payloads, replies))
            if replies.len() == items.len() && payloads.len() == items.len() =>
        {
            for ((p, r), payload) in items.into_iter().zip(replies).zip(payloads) {
                let _ = p.reply.send(Ok((r, payload)));
            }
        }
        Ok((_, replies)) => {
            let e = crate::read::corrupt(format_args!(
                "baton_complete answered {} replies for {} completes",
                replies.len(),
                items.len()
            ));
            for p in items {
                let _ = p.reply.send(Err(e.clone()));
            }
        }
        Err(e) => {
            for p in items {
                let _ = p.reply.send(Err(e.clone()));
            }
        }
    }
}
