//! Wake-ups for idle claimers: an in-process registry fed by this instance's
//! own commits and by a `LISTEN` connection that hears every process's.
//!
//! Writers that make work `waiting` call `pg_notify(channel, 'namespace lane')`
//! inside their statement, so the notification is delivered on commit and
//! never for a rolled-back change. One listener task per backend instance
//! (started by the first `wait_for_work`) turns notifications into wake-ups
//! of the parked claimers of that lane. It is a hint: a lost notification
//! (connection drop, listener restart) only delays a claimer until its wait
//! times out, and a reconnect wakes every parked claimer so none sleeps on a
//! notification it may have missed.

use std::sync::Arc;
use std::time::Duration;

use baton_core::raw::Wakeups;
use baton_core::{EngineError, Result};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::task::JoinHandle;

/// The `LISTEN` side: one task per backend instance, started on demand.
#[derive(Debug)]
pub struct Listener {
    pool: PgPool,
    channel: String,
    task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Listener {
    /// A listener on `channel` over connections from `pool` (its own pool of
    /// one, so a long `LISTEN` never holds a connection the operations need).
    pub fn new(pool: PgPool, channel: String) -> Self {
        Listener {
            pool,
            channel,
            task: tokio::sync::Mutex::new(None),
        }
    }

    /// Makes sure the listener task runs, starting it if needed.
    ///
    /// # Errors
    /// `Unavailable` when the `LISTEN` connection cannot be opened.
    pub async fn ensure(&self, wake: &Arc<Wakeups>) -> Result<()> {
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
        let wake = Arc::clone(wake);
        *task = Some(tokio::spawn(async move {
            loop {
                match listener.try_recv().await {
                    Ok(Some(n)) => {
                        if let Some((namespace, lane)) = n.payload().split_once(' ') {
                            wake.notify(namespace, lane);
                        }
                    }
                    // The connection dropped and was re-established (with
                    // its LISTEN); notifications in between are lost.
                    Ok(None) => wake.notify_all(),
                    Err(sqlx::Error::PoolClosed) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "Postgres LISTEN connection failed; retrying");
                        wake.notify_all();
                        tokio::time::sleep(Duration::from_secs(1)).await;
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
        "cannot LISTEN on the Postgres wake-up channel {channel}: {e}"
    ))
}
