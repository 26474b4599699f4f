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
    /// Lanes whose last claim passed over work a limit held back, with
    /// when their waiters claim again: a slot that frees (a run ending
    /// anywhere) or a rate window that moves wakes nobody.
    held: Mutex<HashMap<Key, tokio::time::Instant>>,
}

/// How soon a claimer whose last claim found work held back by a limit
/// claims again while it waits for work.
pub const LIMITED_RECHECK: Duration = Duration::from_millis(100);

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

    /// Records that a claim of `lanes` of `namespace` passed over waiting
    /// work because a limit had no room: waiters on those lanes claim
    /// again within [`LIMITED_RECHECK`] instead of waiting for a wake-up
    /// (a backend calls it from its claim).
    pub fn held_back(&self, namespace: &str, lanes: &[&str]) {
        let Ok(mut held) = self.held.lock() else {
            return;
        };
        let now = tokio::time::Instant::now();
        held.retain(|_, until| *until > now);
        for lane in lanes {
            held.insert(
                (namespace.to_owned(), (*lane).to_owned()),
                now + LIMITED_RECHECK,
            );
        }
    }

    /// How long a wait on `lanes` of `namespace` may last, at most
    /// `timeout`: shorter while one of them holds back limited work.
    fn wait_bound(&self, namespace: &str, lanes: &[&str], timeout: Duration) -> Duration {
        let Ok(held) = self.held.lock() else {
            return timeout;
        };
        let now = tokio::time::Instant::now();
        lanes
            .iter()
            .filter_map(|lane| held.get(&(namespace.to_owned(), (*lane).to_owned())))
            .filter(|until| **until > now)
            .map(|until| *until - now)
            .fold(timeout, Duration::min)
    }

    /// Parks until one of `lanes` of `namespace` is notified or `timeout`
    /// passes (sooner while one of them holds back limited work, see
    /// [`held_back`](Self::held_back)).
    pub async fn wait(&self, namespace: &str, lanes: &[&str], timeout: Duration) {
        let timeout = self.wait_bound(namespace, lanes, timeout);
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

/// Registry of readers waiting on executions to change
/// ([`AdminBackend::wait_for_change`](crate::AdminBackend::wait_for_change)),
/// per execution. A backend calls [`Watchers::notify`] when it learns that
/// an execution changed (its own commit, a `NOTIFY`, a `PUBLISH`), and
/// [`Watchers::notify_all`] when it may have missed such news.
#[derive(Debug, Default)]
pub struct Watchers {
    waiters: Mutex<HashMap<crate::ExecutionId, Vec<Weak<Notify>>>>,
}

/// One registered reader of [`Watchers`]; dropping it unregisters (so a
/// registry of a long-running process holds only the readers waiting now).
#[derive(Debug)]
pub struct Watch<'a> {
    watchers: &'a Watchers,
    id: crate::ExecutionId,
    notify: Arc<Notify>,
}

impl Watch<'_> {
    /// Returns once the execution was announced changed since the last
    /// return (or since registration).
    pub async fn changed(&self) {
        self.notify.notified().await;
    }
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        let Ok(mut map) = self.watchers.waiters.lock() else {
            return;
        };
        if let Some(list) = map.get_mut(&self.id) {
            let me = Arc::as_ptr(&self.notify);
            list.retain(|w| w.strong_count() > 0 && w.as_ptr() != me);
            if list.is_empty() {
                map.remove(&self.id);
            }
        }
    }
}

impl Watchers {
    /// Registers a reader of `id`.
    pub fn register(&self, id: &crate::ExecutionId) -> Watch<'_> {
        let notify = Arc::new(Notify::new());
        if let Ok(mut map) = self.waiters.lock() {
            let list = map.entry(id.clone()).or_default();
            list.retain(|w| w.strong_count() > 0);
            list.push(Arc::downgrade(&notify));
        }
        Watch {
            watchers: self,
            id: id.clone(),
            notify,
        }
    }

    /// Whether a reader of this process waits on `id`.
    pub fn is_watched(&self, id: &crate::ExecutionId) -> bool {
        self.waiters.lock().is_ok_and(|map| {
            map.get(id)
                .is_some_and(|l| l.iter().any(|w| w.strong_count() > 0))
        })
    }

    /// Whether any reader of this process waits on anything: a writer may
    /// skip collecting changes when none does.
    pub fn any(&self) -> bool {
        self.waiters.lock().is_ok_and(|map| !map.is_empty())
    }

    /// Wakes the readers of `id`.
    pub fn notify(&self, id: &crate::ExecutionId) {
        let Ok(mut map) = self.waiters.lock() else {
            return;
        };
        if let Some(list) = map.get_mut(id) {
            list.retain(|w| match w.upgrade() {
                Some(n) => {
                    n.notify_one();
                    true
                }
                None => false,
            });
            if list.is_empty() {
                map.remove(id);
            }
        }
    }

    /// Wakes every reader (each reads again).
    pub fn notify_all(&self) {
        let Ok(mut map) = self.waiters.lock() else {
            return;
        };
        map.retain(|_, list| {
            list.retain(|w| match w.upgrade() {
                Some(n) => {
                    n.notify_one();
                    true
                }
                None => false,
            });
            !list.is_empty()
        });
    }
}

/// The loop of every backend's
/// [`wait_for_change`](crate::AdminBackend::wait_for_change): registers a
/// reader of `id` in `watchers`, runs `arm` (what makes the backend announce
/// changes of `id` to this process: nothing in process, a watch mark in
/// storage otherwise), then reads with `read` until the snapshot differs
/// from `seen` or `timeout` (real time) passes. A wake-up only makes it read
/// again, so spurious ones cost one read.
///
/// # Errors
/// Whatever `arm` or `read` answer.
pub async fn wait_for_change<A, R, F>(
    watchers: &Watchers,
    id: &crate::ExecutionId,
    seen: crate::ChangeMark,
    timeout: Duration,
    arm: A,
    mut read: R,
) -> crate::Result<crate::ExecutionSnapshot>
where
    A: std::future::Future<Output = crate::Result<()>>,
    R: FnMut() -> F,
    F: std::future::Future<Output = crate::Result<crate::ExecutionSnapshot>>,
{
    let watch = watchers.register(id);
    let deadline = deadline_in(timeout);
    let mut armed = Some(arm);
    loop {
        if let Some(arm) = armed.take()
            && !timeout.is_zero()
        {
            arm.await?;
        }
        let snap = read().await?;
        if crate::ChangeMark::of(&snap) != seen {
            return Ok(snap);
        }
        if tokio::time::timeout_at(deadline, watch.changed())
            .await
            .is_err()
        {
            return Ok(snap);
        }
    }
}

/// The instant `timeout` from now, saturating: a wait "for ever"
/// (`Duration::MAX`) ends in about thirty years instead of overflowing.
pub fn deadline_in(timeout: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 24 * 3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_watch_is_woken_by_its_execution_and_unregisters_when_dropped() {
        let watchers = Watchers::default();
        let id = crate::ExecutionId::generate(crate::PartitionCount::DEFAULT);
        let other = crate::ExecutionId::generate(crate::PartitionCount::DEFAULT);
        let watch = watchers.register(&id);
        assert!(watchers.is_watched(&id) && !watchers.is_watched(&other));
        watchers.notify(&other);
        assert!(
            tokio::time::timeout(Duration::from_millis(20), watch.changed())
                .await
                .is_err(),
            "another execution's change does not wake it"
        );
        // A change before the await is kept, not lost.
        watchers.notify(&id);
        tokio::time::timeout(Duration::from_secs(5), watch.changed())
            .await
            .expect("woken");
        let second = watchers.register(&id);
        drop(watch);
        assert!(watchers.is_watched(&id), "the other reader stays");
        drop(second);
        assert!(!watchers.any(), "nothing left behind");
    }
}
