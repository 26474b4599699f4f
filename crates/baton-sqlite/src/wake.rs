//! In-process wake-ups for idle claimers.
//!
//! Each waiting claimer registers one `Notify` under every lane it waits on;
//! a submission or promotion calls `notify_one` on the registered handles.
//! `notify_one` stores a permit when the waiter is not yet parked, so a
//! wake-up between registration and the await is not lost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;

type Key = (String, String);

/// Registry of parked claimers, per (namespace, lane).
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

    /// Parks until one of `lanes` is notified or `timeout` passes.
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
