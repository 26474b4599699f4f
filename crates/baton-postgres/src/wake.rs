//! Wake-ups across processes: in-process registries fed by this instance's
//! own commits and by `LISTEN` connections that hear every process's.
//!
//! Two channels per schema, each with its own listener (and connection),
//! started on demand:
//! - `baton_work_<schema>`: writers that make work `waiting` call
//!   `pg_notify(channel, 'namespace lane')` inside their statement; the
//!   first `wait_for_work` starts the listener, which wakes the parked
//!   claimers of that lane ([`Wakeups`]). `set_limit` and `remove_limit`
//!   send `namespace lane`, or `namespace` alone for a limit of every
//!   lane, which wakes every claimer of the process.
//! - `baton_changed_<schema>`: a trigger of migration 0008 sends the id of
//!   a watched execution whose state, custom status or progress changed,
//!   or that was trimmed; the first `wait_for_change` starts the listener,
//!   which wakes the readers of that execution ([`Watchers`]). A process
//!   that never waits for a change never opens this connection.
//!
//! Notifications are delivered on commit and never for a rolled-back
//! change. They are hints: a lost one (connection drop, listener restart)
//! only delays a waiter until its timeout, and a reconnect wakes every
//! waiter so none sleeps on a notification it may have missed.

use std::sync::Arc;
use std::time::Duration;

use baton_core::raw::{Wakeups, Watchers};
use baton_core::{EngineError, ExecutionId, Result};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::task::JoinHandle;

/// What a listener does with what it hears.
pub trait Hears: Send + Sync + 'static {
    /// A notification arrived with `payload`.
    fn heard(&self, payload: &str);
    /// Notifications may have been lost: every waiter should look again.
    fn lost(&self);
}

impl Hears for Wakeups {
    fn heard(&self, payload: &str) {
        match payload.split_once(' ') {
            Some((namespace, lane)) => self.notify(namespace, lane),
            // A namespace alone: a limit of every lane of it changed. The
            // registry wakes per lane only, so every claimer looks again
            // (a wake-up is a hint; a needless one costs a claim).
            None => self.notify_all(),
        }
    }

    fn lost(&self) {
        self.notify_all();
    }
}

impl Hears for Watchers {
    fn heard(&self, payload: &str) {
        match payload.parse::<ExecutionId>() {
            Ok(id) => self.notify(&id),
            // Only migration 0008's trigger writes on this channel; a
            // payload it would not write wakes everyone rather than no one.
            Err(e) => {
                tracing::warn!(payload, error = %e, "unexpected payload on the Postgres change channel");
                self.notify_all();
            }
        }
    }

    fn lost(&self) {
        self.notify_all();
    }
}

/// The `LISTEN` side of one channel: one task per backend instance,
/// started on demand.
pub struct Listener {
    pool: PgPool,
    channel: String,
    hears: Arc<dyn Hears>,
    task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl Listener {
    /// A listener on `channel` over connections from `pool` (its own pool of
    /// one, so a long `LISTEN` never holds a connection the operations
    /// need), handing what it hears to `hears`.
    pub fn new(pool: PgPool, channel: String, hears: Arc<dyn Hears>) -> Self {
        Listener {
            pool,
            channel,
            hears,
            task: tokio::sync::Mutex::new(None),
        }
    }

    /// Makes sure the listener task runs, starting it if needed. Once this
    /// answers, the channel is listened on: a notification committed from
    /// now on reaches `hears` (or, if the connection drops, `lost` is
    /// called once it is back).
    ///
    /// # Errors
    /// `Unavailable` when the `LISTEN` connection cannot be opened.
    pub async fn ensure(&self) -> Result<()> {
        let mut task = self.task.lock().await;
        if task.as_ref().is_some_and(|t| !t.is_finished()) {
            return Ok(());
        }
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .map_err(|e| unavailable(&self.channel, e))?;
        listener
            .listen(&self.channel)
            .await
            .map_err(|e| unavailable(&self.channel, e))?;
        let hears = Arc::clone(&self.hears);
        let channel = self.channel.clone();
        *task = Some(tokio::spawn(async move {
            loop {
                match listener.try_recv().await {
                    Ok(Some(n)) => hears.heard(n.payload()),
                    // The connection dropped and was re-established (with
                    // its LISTEN); notifications in between are lost.
                    Ok(None) => hears.lost(),
                    Err(sqlx::Error::PoolClosed) => return,
                    Err(e) => {
                        tracing::warn!(channel, error = %e, "Postgres LISTEN connection failed; retrying");
                        hears.lost();
                        // Reconnect (the listener listens again on use)
                        // before waking everyone once more: a notification
                        // sent while it was gone is lost, and a reader that
                        // parked meanwhile must read again.
                        loop {
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            match sqlx::query("SELECT 1").execute(&mut listener).await {
                                Ok(_) => break,
                                Err(sqlx::Error::PoolClosed) => return,
                                Err(_) => {}
                            }
                        }
                        hears.lost();
                    }
                }
            }
        }));
        Ok(())
    }

    /// Stops the listener task (the backend is going away).
    pub fn stop(&mut self) {
        if let Some(task) = self.task.get_mut().take() {
            task.abort();
        }
    }
}

fn unavailable(channel: &str, e: sqlx::Error) -> EngineError {
    EngineError::unavailable(format!(
        "cannot LISTEN on the Postgres notification channel {channel}: {e}"
    ))
}
