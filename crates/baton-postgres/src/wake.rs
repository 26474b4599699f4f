//! Wake-ups across processes: in-process registries fed by this instance's
//! own commits and by `LISTEN` connections that hear every process's.
//!
//! Two channels per schema, each with its own listener (and connection),
//! started on demand:
//! - `baton_work_<schema>`: writers that make work `waiting` send
//!   `namespace lane` on it; the first `wait_for_work` starts the
//!   listener, which wakes the parked claimers of that lane
//!   ([`Wakeups`]). `set_limit` and `remove_limit` send `namespace lane`,
//!   or `namespace` alone for a limit of every lane, which wakes every
//!   claimer of the process. Writers announce the lanes they made work
//!   waiting in after they committed, through the [`Announcer`]; only
//!   the releases inside flows' walks (a parent whose last child
//!   finished, dependents whose upstreams decided) and limit changes
//!   still call `pg_notify` inside their statement.
//! - `baton_changed_<schema>`: a trigger of migration 0008 sends the id of
//!   a watched execution whose state, custom status or progress changed,
//!   or that was trimmed; the first `wait_for_change` starts the listener,
//!   which wakes the readers of that execution ([`Watchers`]). A process
//!   that never waits for a change never opens this connection.
//!
//! Notifications are delivered on commit and never for a rolled-back
//! change (an announcement is sent only once its write committed). They are
//! hints: a lost one (connection drop, listener restart) only delays a
//! waiter until its timeout, and a reconnect wakes every waiter so none
//! sleeps on a notification it may have missed.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use baton_core::raw::{Wakeups, Watchers};
use baton_core::{EngineError, ExecutionId, Result};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::mpsc;
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

/// Sends wake-ups to other processes after the writes they announce have
/// committed, from a task of its own, in as few statements as it can.
///
/// Why not `pg_notify` inside the writing statement: a transaction that
/// notifies takes one lock for the whole server (Postgres serialises
/// notifying commits, so that notifications queue in commit order) and
/// holds it until its commit is flushed to disk. Every notifying commit
/// then waits for the flush of the one before it instead of sharing a
/// flush with the commits around it, and on a busy server submissions
/// queued behind each other's flushes. Here the write commits without a
/// notification, as any other; the announcement follows in a transaction
/// of its own, which writes nothing but the notification and so commits
/// with `synchronous_commit` off: it never waits for a flush, and holds
/// the lock for microseconds. (A notification is a hint: a crash that
/// loses one only delays a claimer of another process until its wait
/// times out, as a dropped `LISTEN` connection does.)
///
/// Announcements that queue while one is sent go together in the next
/// statement, each `namespace lane` once. One that fails is retried with
/// what queued since, for up to [`ANNOUNCE_PATIENCE`], then dropped with a
/// warning.
#[derive(Debug)]
pub struct Announcer {
    queue: mpsc::UnboundedSender<String>,
}

/// How long an announcement that cannot be sent is retried: a claimer
/// waiting for work looks again on its own by then.
pub const ANNOUNCE_PATIENCE: Duration = Duration::from_secs(5);

impl Announcer {
    /// Starts the announcing task on the current runtime, sending on
    /// `channel` over connections of `pool`; it ends when the announcer
    /// is dropped.
    pub fn start(pool: PgPool, channel: String) -> Self {
        let (queue, mut rx) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            let mut pending = BTreeSet::new();
            let mut since: Option<tokio::time::Instant> = None;
            loop {
                if pending.is_empty() {
                    match rx.recv().await {
                        Some(payload) => {
                            pending.insert(payload);
                        }
                        None => return,
                    }
                }
                while let Ok(payload) = rx.try_recv() {
                    pending.insert(payload);
                }
                let payloads: Vec<&str> = pending.iter().map(String::as_str).collect();
                match send(&pool, &channel, &payloads).await {
                    Ok(()) => {
                        pending.clear();
                        since = None;
                    }
                    Err(sqlx::Error::PoolClosed) => return,
                    Err(e) => {
                        let first = *since.get_or_insert_with(tokio::time::Instant::now);
                        if first.elapsed() >= ANNOUNCE_PATIENCE {
                            tracing::warn!(channel, error = %e, dropped = pending.len(),
                                "cannot send wake-ups on the Postgres notification channel; \
                                 claimers of other processes find the work when their wait times out");
                            pending.clear();
                            since = None;
                        } else {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            }
        });
        Announcer { queue }
    }

    /// Announces that `lane` of `namespace` has waiting work; call it once
    /// the write that made the work waiting has committed.
    pub fn announce(&self, namespace: &str, lane: &str) {
        // A send fails only once the task ended, when the pool closed:
        // nothing could be announced then anyway.
        let _ = self.queue.send(format!("{namespace} {lane}"));
    }
}

/// One statement sending every payload on `channel`, in a transaction
/// that commits without waiting for a flush (it writes nothing else).
async fn send(pool: &PgPool, channel: &str, payloads: &[&str]) -> sqlx::Result<()> {
    sqlx::query(
        "SELECT count(pg_notify($1, p.payload)) \
         FROM set_config('synchronous_commit', 'off', true) AS c, \
              UNNEST($2::text[]) AS p(payload)",
    )
    .bind(channel)
    .bind(payloads)
    .execute(pool)
    .await
    .map(drop)
}
