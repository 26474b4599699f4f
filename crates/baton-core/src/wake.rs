//! In-process wake-ups for idle claimers, and the batching step of the
//! write-combining tasks, shared by every backend.
//!
//! Each waiting claimer registers one `Notify` under every lane it waits on;
//! a submission, promotion or cross-process notification calls
//! [`Wakeups::notify`], which wakes the registered claimers. `notify_one`
//! stores a permit when a waiter is not parked yet, so a wake-up between
//! registration and the await is not lost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;

type Key = (String, String);

/// Registry of parked claimers, per (namespace, lane).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// let wake = std::sync::Arc::new(baton_core::raw::Wakeups::default());
/// let w = wake.clone();
/// let waiter = tokio::spawn(async move { w.wait("ns", &["lane"], Duration::from_secs(30)).await });
/// tokio::task::yield_now().await;
/// wake.notify("ns", "lane");
/// waiter.await.unwrap(); // returns well before the 30 s timeout
/// # }
/// ```
#[derive(Debug, Default)]
pub struct Wakeups {
    waiters: Mutex<HashMap<Key, Vec<Weak<Notify>>>>,
}

impl Wakeups {
    /// Wakes every claimer waiting on `lane` of `namespace`.
    pub fn notify(&self, namespace: &str, lane: &str) {
        let Ok(mut map) = self.waiters.lock() else {
            return;
        };
        let key = (namespace.to_owned(), lane.to_owned());
        if let Some(list) = map.get_mut(&key) {
            list.retain(|w| match w.upgrade() {
                Some(n) => {
                    n.notify_one();
                    true
                }
                None => false,
            });
            if list.is_empty() {
                map.remove(&key);
            }
        }
    }

    /// Wakes every parked claimer (for example after a notification channel
    /// reconnected and may have missed messages).
    pub fn notify_all(&self) {
        let Ok(mut map) = self.waiters.lock() else {
            return;
        };
        for list in map.values() {
            for n in list.iter().filter_map(Weak::upgrade) {
                n.notify_one();
            }
        }
        map.clear();
    }

    /// Parks until one of `lanes` of `namespace` is notified or `timeout`
    /// passes.
    /// [`Wakeups::wait`] for typed names: what every backend's
    /// `wait_for_work` does for waiters of this process.
    pub async fn wait_for(
        &self,
        namespace: &crate::Namespace,
        lanes: &[crate::Lane],
        timeout: Duration,
    ) {
        let lanes: Vec<&str> = lanes.iter().map(crate::Lane::as_str).collect();
        self.wait(namespace.as_str(), &lanes, timeout).await;
    }

    pub async fn wait(&self, namespace: &str, lanes: &[&str], timeout: Duration) {
        let me = Arc::new(Notify::new());
        if let Ok(mut map) = self.waiters.lock() {
            for lane in lanes {
                let list = map
                    .entry((namespace.to_owned(), (*lane).to_owned()))
                    .or_default();
                list.retain(|w| w.strong_count() > 0);
                list.push(Arc::downgrade(&me));
            }
        }
        let _ = tokio::time::timeout(timeout, me.notified()).await;
    }
}

/// Takes the next batch for a write-combining task: when `batch` is empty,
/// waits for one item, then adds whatever else is queued without waiting,
/// up to `max` in all. Answers false when the channel is closed and nothing
/// is left to do (the task should end).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
/// for i in 0..5 { tx.send(i).unwrap(); }
/// let mut batch = Vec::new();
/// assert!(baton_core::raw::recv_batch(&mut rx, &mut batch, 3).await);
/// assert_eq!(batch, [0, 1, 2]);
/// drop(tx);
/// batch.clear();
/// assert!(baton_core::raw::recv_batch(&mut rx, &mut batch, 3).await);
/// assert_eq!(batch, [3, 4]);
/// batch.clear();
/// assert!(!baton_core::raw::recv_batch(&mut rx, &mut batch, 3).await);
/// # }
/// ```
pub async fn recv_batch<T>(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<T>,
    batch: &mut Vec<T>,
    max: usize,
) -> bool {
    if batch.is_empty() {
        match rx.recv().await {
            Some(item) => batch.push(item),
            None => return false,
        }
    }
    while batch.len() < max {
        match rx.try_recv() {
            Ok(item) => batch.push(item),
            Err(_) => break,
        }
    }
    true
}
