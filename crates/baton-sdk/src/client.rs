//! [`Client`]: submit, inspect and cancel executions.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use baton_core::{
    AdminBackend, BackendKind, CancelRequest, Cancellation, ChangeMark, CreateOutcome, EngineError,
    ExecutionId, ExecutionSnapshot, Kind, Lane, ListFilter, ListPage, Namespace, NewExecution,
    NewSignal, Page, ProgressFrame, Result, Signal, SignalName, SignalOutcome, State, StateCounts,
    StateEntry, StepRecord, Tree, WorkerInfo,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::http::HttpTransport;
use crate::transport::Transport;

/// The longest single wait [`Client::wait_for_completion`] asks of the
/// backend before asking again.
pub(crate) const WAIT_PIECE: Duration = Duration::from_secs(60);

/// A handle on Baton for applications: submit, describe, list, cancel, count
/// and wait for executions, and read flows (children and trees).
///
/// Reaches Baton either directly through a backend URL (`sqlite://…`,
/// `sqlite::memory:`, and `postgres://…` when built with the `postgres`
/// feature) or through a server's HTTP API (`http://HOST:PORT`). Every call
/// behaves the same over both; the errors are [`EngineError`]s, classified by
/// what to do next.
///
/// Cheap to clone; clones share connections. New submissions go to the
/// client's namespace and lane (both `default` unless changed).
///
/// ```no_run
/// # async fn demo() -> baton_core::Result<()> {
/// use baton_sdk::Client;
/// let client = Client::connect("http://127.0.0.1:7420").await?.with_lane("emails")?;
/// let out = client.submit("email.send", &serde_json::json!({"to": "a@example.com"})).await?;
/// let done = client.wait_for_completion(&out.id, std::time::Duration::from_secs(30)).await?;
/// println!("{} is {}", done.id, done.state);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    pub(crate) transport: Transport,
    namespace: Namespace,
    lane: Lane,
}

impl Client {
    /// Connects by URL.
    ///
    /// - `sqlite://PATH` or `sqlite::memory:` opens the embedded backend
    ///   (creating and migrating the file as needed).
    /// - `postgres://…` opens Postgres when the crate is built with the
    ///   `postgres` feature; otherwise it is
    ///   [`Unsupported`](EngineError::Unsupported).
    /// - `http://HOST:PORT[/PREFIX]` talks to `baton serve`; no connection is
    ///   made until the first call. Set a bearer token with
    ///   [`with_api_token`](Self::with_api_token).
    ///
    /// A backend URL runs no scheduler: delayed work, retry backoff and lease
    /// reclaim need an engine on the same backend (`baton serve`, or
    /// `baton_engine::Scheduler::start` in the application).
    ///
    /// ```no_run
    /// # async fn demo() -> baton_core::Result<()> {
    /// let local = baton_sdk::Client::connect("sqlite://baton.db").await?;
    /// let remote = baton_sdk::Client::connect("http://127.0.0.1:7420").await?;
    /// # let _ = (local, remote); Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> Result<Client> {
        let scheme = url.split(':').next().unwrap_or_default();
        let transport = match scheme {
            "http" => Transport::Http(Arc::new(HttpTransport::new(url, None)?)),
            "https" => {
                return Err(EngineError::Configuration {
                    message: "https:// is not built into the client; reach the server over http:// on a private network or through a local TLS-terminating proxy".into(),
                });
            }
            _ => Transport::Direct(open_backend(url).await?),
        };
        Self::with_transport(transport)
    }

    /// A client over a backend already open in this process.
    ///
    /// ```no_run
    /// # async fn demo() -> baton_core::Result<()> {
    /// let backend = baton_sqlite::SqliteBackend::connect("sqlite::memory:").await?;
    /// let client = baton_sdk::Client::from_backend(std::sync::Arc::new(backend))?;
    /// # let _ = client; Ok(()) }
    /// ```
    pub fn from_backend(backend: Arc<dyn AdminBackend>) -> Result<Client> {
        Self::with_transport(Transport::Direct(backend))
    }

    fn with_transport(transport: Transport) -> Result<Client> {
        Ok(Client {
            transport,
            namespace: Namespace::new("default")?,
            lane: Lane::new("default")?,
        })
    }

    /// The same client with a bearer token for a server started with
    /// `BATON_API_TOKEN`; ignored for backend URLs.
    pub fn with_api_token(mut self, token: impl Into<String>) -> Client {
        if let Transport::Http(h) = &self.transport {
            self.transport = Transport::Http(Arc::new(h.with_token(Some(token.into()))));
        }
        self
    }

    /// The same client submitting into `namespace` (and listing, counting in
    /// it).
    pub fn with_namespace(mut self, namespace: &str) -> Result<Client> {
        self.namespace = Namespace::new(namespace)?;
        Ok(self)
    }

    /// The same client submitting into `lane`.
    pub fn with_lane(mut self, lane: &str) -> Result<Client> {
        self.lane = Lane::new(lane)?;
        Ok(self)
    }

    /// The client's namespace.
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// The client's lane.
    pub fn lane(&self) -> &Lane {
        &self.lane
    }

    /// A submission of `kind` with `payload` encoded as JSON, in the client's
    /// namespace and lane, with the default policies; adjust it with the
    /// `with_*` methods of [`NewExecution`] and pass it to
    /// [`submit_execution`](Self::submit_execution) or
    /// [`submit_batch`](Self::submit_batch).
    ///
    /// ```no_run
    /// # async fn demo(client: baton_sdk::Client) -> baton_core::Result<()> {
    /// use baton_core::RetryPolicy;
    /// let new = client.execution("report.build", &42)?.with_priority(10).with_retry(RetryPolicy::attempts(5));
    /// client.submit_execution(new).await?;
    /// # Ok(()) }
    /// ```
    pub fn execution<P: Serialize + ?Sized>(
        &self,
        kind: &str,
        payload: &P,
    ) -> Result<NewExecution> {
        let payload = serde_json::to_vec(payload).map_err(|e| {
            EngineError::invalid("payload", kind, format!("cannot encode as JSON: {e}"))
        })?;
        Ok(NewExecution::new(
            self.namespace.clone(),
            self.lane.clone(),
            Kind::new(kind)?,
            payload,
        ))
    }

    /// Submits one execution of `kind` with a JSON payload and the default
    /// policies. See [`execution`](Self::execution) for more control.
    ///
    /// ```no_run
    /// # async fn demo(client: baton_sdk::Client) -> baton_core::Result<()> {
    /// let out = client.submit("email.send", &serde_json::json!({"to": "a@example.com"})).await?;
    /// assert!(out.created);
    /// # Ok(()) }
    /// ```
    pub async fn submit<P: Serialize + ?Sized>(
        &self,
        kind: &str,
        payload: &P,
    ) -> Result<CreateOutcome> {
        self.submit_execution(self.execution(kind, payload)?).await
    }

    /// Submits one prepared execution.
    ///
    /// ```no_run
    /// # async fn demo(client: baton_sdk::Client) -> baton_core::Result<()> {
    /// let new = client.execution("email.send", "hello")?.with_delay_ms(60_000);
    /// let out = client.submit_execution(new).await?;
    /// # let _ = out; Ok(()) }
    /// ```
    pub async fn submit_execution(&self, execution: NewExecution) -> Result<CreateOutcome> {
        let mut out = self.transport.create(vec![execution]).await?;
        out.pop()
            .ok_or_else(|| EngineError::corruption("submit answered no outcome for one execution"))
    }

    /// Submits many executions at once: all or none are created, and the
    /// outcomes come back in request order.
    ///
    /// ```no_run
    /// # async fn demo(client: baton_sdk::Client) -> baton_core::Result<()> {
    /// let batch = (0..10).map(|i| client.execution("thumb", &i)).collect::<Result<Vec<_>, _>>()?;
    /// let outcomes = client.submit_batch(batch).await?;
    /// assert_eq!(outcomes.len(), 10);
    /// # Ok(()) }
    /// ```
    pub async fn submit_batch(&self, executions: Vec<NewExecution>) -> Result<Vec<CreateOutcome>> {
        self.transport.create(executions).await
    }

    /// The current snapshot of an execution.
    ///
    /// ```no_run
    /// # async fn demo(client: baton_sdk::Client, id: baton_core::ExecutionId) -> baton_core::Result<()> {
    /// let snap = client.describe(&id).await?;
    /// println!("{} after {} attempts", snap.state, snap.attempts);
    /// # Ok(()) }
    /// ```
    pub async fn describe(&self, id: &ExecutionId) -> Result<ExecutionSnapshot> {
        self.transport.describe(id).await
    }

    /// One page of executions matching `filter`; pass `next_cursor` back in
    /// `page` to continue.
    ///
    /// ```no_run
    /// # async fn demo(client: baton_sdk::Client) -> baton_core::Result<()> {
    /// use baton_core::{ListFilter, Page, State};
    /// let filter = ListFilter::namespace(client.namespace().clone()).with_state(State::Failed);
    /// let page = client.list(&filter, Page::first(50)).await?;
    /// # let _ = page; Ok(()) }
    /// ```
    pub async fn list(&self, filter: &ListFilter, page: Page) -> Result<ListPage> {
        self.transport.list(filter, page).await
    }

    /// Cancels an execution that has not finished, and its non-terminal
    /// descendants (scope `tree`); a running handler learns it at its
    /// worker's next heartbeat. Answers the execution's snapshot; use
    /// [`cancel_with`](Self::cancel_with) to cancel it alone or to learn how
    /// many descendants were cancelled.
    ///
    /// ```no_run
    /// # async fn demo(client: baton_sdk::Client, id: baton_core::ExecutionId) -> baton_core::Result<()> {
    /// client.cancel(&id, Some("no longer needed".into())).await?;
    /// # Ok(()) }
    /// ```
    pub async fn cancel(
        &self,
        id: &ExecutionId,
        reason: Option<String>,
    ) -> Result<ExecutionSnapshot> {
        let out = self
            .cancel_with(id, CancelRequest::with_reason(reason))
            .await?;
        Ok(out.snapshot)
    }

    /// Cancels an execution as `request` says: with scope `tree` (the
    /// default) its non-terminal descendants too, with scope `execution` it
    /// alone. The answer counts the descendants cancelled (`cascaded`) and
    /// says when a subtree too big for one call is being finished by the
    /// scheduler (`cascade_pending`).
    ///
    /// ```no_run
    /// # async fn demo(client: baton_sdk::Client, id: baton_core::ExecutionId) -> baton_core::Result<()> {
    /// use baton_core::{CancelRequest, CancelScope};
    /// let only = CancelRequest::because("superseded").with_scope(CancelScope::Execution);
    /// let out = client.cancel_with(&id, only).await?;
    /// assert_eq!(out.cascaded, 0);
    /// # Ok(()) }
    /// ```
    pub async fn cancel_with(
        &self,
        id: &ExecutionId,
        request: CancelRequest,
    ) -> Result<Cancellation> {
        self.transport.cancel(id, request).await
    }

    /// One page of the children of `parent` (its direct descendants),
    /// oldest first; pass `next_cursor` back in `page` to continue.
    ///
    /// ```no_run
    /// # async fn demo(client: baton_sdk::Client, parent: baton_core::ExecutionId) -> baton_core::Result<()> {
    /// use baton_core::Page;
    /// let mut page = Page::first(100);
    /// loop {
    ///     let out = client.children(&parent, page).await?;
    ///     for child in &out.items {
    ///         println!("{} {}", child.id, child.state);
    ///     }
    ///     let Some(cursor) = out.next_cursor else { break };
    ///     page.cursor = Some(cursor);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn children(&self, parent: &ExecutionId, page: Page) -> Result<ListPage> {
        self.transport.children(parent, page).await
    }

    /// The flow `id` belongs to, asked by any member's id: its root and at
    /// most `limit` members (1 to [`Tree::MAX_LIMIT`]; [`Tree::DEFAULT_LIMIT`]
    /// is a good default) in creation order, every parent before its
    /// children; `truncated` when there are more.
    ///
    /// ```no_run
    /// # async fn demo(client: baton_sdk::Client, id: baton_core::ExecutionId) -> baton_core::Result<()> {
    /// let tree = client.tree(&id, baton_core::Tree::DEFAULT_LIMIT).await?;
    /// let running = tree.items.iter().filter(|n| n.state == baton_core::State::Running).count();
    /// println!("flow {}: {running} running", tree.root);
    /// # Ok(()) }
    /// ```
    pub async fn tree(&self, id: &ExecutionId, limit: usize) -> Result<Tree> {
        self.transport.tree(id, limit).await
    }

    /// Delivers a signal named `name` with `payload` (encoded as JSON) to
    /// execution `id`: it resumes the execution when that completes its
    /// wait, is buffered for a later wait otherwise, and is ignored by a
    /// finished execution. With an idempotency `key`, a repeat answers
    /// `duplicate` instead of storing it twice — give webhooks their event
    /// id.
    ///
    /// # Errors
    /// `InvalidInput` (bad name, payload not JSON or over the limit),
    /// `NotFound`, `Conflict` (the execution holds the most buffered signals
    /// allowed), `Unavailable`.
    ///
    /// ```no_run
    /// # async fn demo(client: baton_sdk::Client, id: baton_core::ExecutionId) -> baton_core::Result<()> {
    /// use baton_core::SignalOutcome;
    /// let out = client.signal(&id, "approval", &"ana", Some("ticket-481")).await?;
    /// assert_ne!(out, SignalOutcome::Ignored, "it already finished");
    /// # Ok(()) }
    /// ```
    pub async fn signal<P: Serialize + ?Sized>(
        &self,
        id: &ExecutionId,
        name: &str,
        payload: &P,
        key: Option<&str>,
    ) -> Result<SignalOutcome> {
        let payload = serde_json::to_vec(payload).map_err(|e| {
            EngineError::invalid("payload", name, format!("cannot encode as JSON: {e}"))
        })?;
        let mut signal = NewSignal::new(SignalName::new(name)?, payload);
        if let Some(key) = key {
            signal = signal.with_idempotency_key(baton_core::IdempotencyKey::new(key)?);
        }
        self.transport.signal(id, signal).await
    }

    /// The signals execution `id` holds, oldest first: buffered ones
    /// (`wait: None`) and those its waits consumed.
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput`, `Unavailable`.
    pub async fn signals(&self, id: &ExecutionId) -> Result<Vec<Signal>> {
        self.transport.signals(id).await
    }

    /// The steps execution `id` recorded, by name: done ones with their
    /// output, failed ones with their last error and failure count.
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput`, `Unavailable`.
    pub async fn steps(&self, id: &ExecutionId) -> Result<Vec<StepRecord>> {
        self.transport.steps(id).await
    }

    /// Changes the priority of execution `id` (not finished): a waiting
    /// one is reordered among its lane at once. Answers its snapshot.
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput`, `Conflict` (it finished), `Unavailable`.
    pub async fn set_priority(&self, id: &ExecutionId, priority: i32) -> Result<ExecutionSnapshot> {
        self.transport.set_priority(id, priority).await
    }

    /// Sets tag `key` of execution `id` to `value` (any state); list
    /// filters see it at once. Answers its snapshot.
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput` (bad key or value), `Conflict` (a new tag
    /// beyond the 32 allowed), `Unavailable`.
    pub async fn set_tag(
        &self,
        id: &ExecutionId,
        key: &str,
        value: &str,
    ) -> Result<ExecutionSnapshot> {
        let key = baton_core::TagKey::new(key)?;
        self.transport
            .set_tag(id, key, Some(value.to_owned()))
            .await
    }

    /// Removes tag `key` of execution `id` (a tag it does not have is
    /// fine). Answers its snapshot.
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput`, `Unavailable`.
    pub async fn remove_tag(&self, id: &ExecutionId, key: &str) -> Result<ExecutionSnapshot> {
        let key = baton_core::TagKey::new(key)?;
        self.transport.set_tag(id, key, None).await
    }

    /// Revokes the lease of running execution `id`: its attempt ends as an
    /// expired lease would, and it is retried (or fails on its last
    /// attempt). Answers its snapshot after.
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput`, `Conflict` (not running), `Unavailable`.
    pub async fn revoke(&self, id: &ExecutionId) -> Result<ExecutionSnapshot> {
        self.transport.revoke(id).await
    }

    /// Why execution `id` is not running now: a reason code and a
    /// sentence (see [`baton_core::Explanation`]).
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput`, `Unavailable`.
    ///
    /// ```no_run
    /// # async fn demo(client: baton_sdk::Client, id: baton_core::ExecutionId) -> baton_core::Result<()> {
    /// let why = client.explain(&id).await?;
    /// println!("{}: {}", why.reason.unwrap_or("finished"), why.detail);
    /// # Ok(()) }
    /// ```
    pub async fn explain(&self, id: &ExecutionId) -> Result<baton_core::Explanation> {
        self.transport.explain(id).await
    }

    /// Turns the event history of the client's namespace on or off for
    /// the executions created from now on (see
    /// [`baton_core::AdminBackend::set_history`]; off by default); answers
    /// whether it was on before.
    ///
    /// # Errors
    /// `InvalidInput`, `Unavailable`.
    pub async fn set_history(&self, enabled: bool) -> Result<bool> {
        self.transport.set_history(&self.namespace, enabled).await
    }

    /// Whether executions created in the client's namespace now record
    /// their history.
    ///
    /// # Errors
    /// `Unavailable`.
    pub async fn history_enabled(&self) -> Result<bool> {
        self.transport.history_enabled(&self.namespace).await
    }

    /// Keeps the finished executions of the client's namespace (of `lane`
    /// only, when given) for `keep` after they finish, instead of the
    /// deployment's default retention (see
    /// [`baton_core::AdminBackend::set_retention`]); answers the keep the
    /// rule replaced.
    ///
    /// # Errors
    /// `InvalidInput` (keep outside 1 s..=36500 d, too many rules),
    /// `Unavailable`.
    ///
    /// ```no_run
    /// # async fn demo(client: baton_sdk::Client) -> baton_core::Result<()> {
    /// use std::time::Duration;
    /// client.set_retention(None, Duration::from_secs(30 * 86_400)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_retention(
        &self,
        lane: Option<&baton_core::Lane>,
        keep: std::time::Duration,
    ) -> Result<Option<std::time::Duration>> {
        // Checked here too, so a keep the server would refuse is refused
        // alike over HTTP (where it travels as whole milliseconds).
        baton_core::raw::rules::check_keep(keep)?;
        self.transport
            .set_retention(&self.namespace, lane, keep)
            .await
    }

    /// Removes the retention rule of the client's namespace (of `lane`,
    /// when given); answers the keep it had, `None` when there was none.
    ///
    /// # Errors
    /// `Unavailable`.
    pub async fn remove_retention(
        &self,
        lane: Option<&baton_core::Lane>,
    ) -> Result<Option<std::time::Duration>> {
        self.transport.remove_retention(&self.namespace, lane).await
    }

    /// Every retention rule of the deployment (all namespaces), by
    /// namespace, its all-lanes rule first.
    ///
    /// # Errors
    /// `Unavailable`.
    pub async fn retention_rules(&self) -> Result<Vec<baton_core::RetentionRule>> {
        self.transport.retention_rules().await
    }

    /// Sets `limit` (of any namespace; names are deployment-wide) and
    /// answers the limit it replaced: claims then take an execution only
    /// while every limit covering it has room for its key (see
    /// [`baton_core::AdminBackend::set_limit`]).
    ///
    /// # Errors
    /// `InvalidInput` ([`baton_core::Limit::check`], too many limits),
    /// `Unavailable`.
    ///
    /// ```no_run
    /// # async fn demo(client: baton_sdk::Client) -> baton_core::Result<()> {
    /// use baton_core::Limit;
    /// client
    ///     .set_limit(&Limit {
    ///         name: "per-tenant".parse()?,
    ///         namespace: client.namespace().clone(),
    ///         lane: None,
    ///         key: "tag:tenant".parse()?,
    ///         max_running: Some(5),
    ///         rate: None,
    ///         fair: true,
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_limit(&self, limit: &baton_core::Limit) -> Result<Option<baton_core::Limit>> {
        limit.check()?;
        self.transport.set_limit(limit).await
    }

    /// Removes the limit named `name`; answers it, `None` when there was
    /// none.
    ///
    /// # Errors
    /// `Unavailable`.
    pub async fn remove_limit(
        &self,
        name: &baton_core::LimitName,
    ) -> Result<Option<baton_core::Limit>> {
        self.transport.remove_limit(name).await
    }

    /// The limits of `namespace` (every namespace's when `None`), by
    /// namespace then name.
    ///
    /// # Errors
    /// `Unavailable`.
    pub async fn limits(&self, namespace: Option<&Namespace>) -> Result<Vec<baton_core::Limit>> {
        self.transport.limits_of(namespace).await
    }

    /// How the keys of the limit named `name` stand now (running, claims in
    /// the rate's window), by key value, at most `limit` keys.
    ///
    /// # Errors
    /// `InvalidInput` (no limit has this name), `Unavailable`.
    pub async fn limit_usage(
        &self,
        name: &baton_core::LimitName,
        limit: usize,
    ) -> Result<Vec<baton_core::LimitUsage>> {
        self.transport.limit_usage(name, limit).await
    }

    /// The history of execution `id`: its events numbered above `after`,
    /// oldest first, at most `limit` (`1..=1000`) — every change of state
    /// with its time, attempt, worker and detail, signals delivered and
    /// operators' edits (see [`baton_core::AdminBackend::events`]).
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput`, `Unavailable`.
    ///
    /// ```no_run
    /// # async fn demo(client: baton_sdk::Client, id: baton_core::ExecutionId) -> baton_core::Result<()> {
    /// for e in client.events(&id, 0, 100).await? {
    ///     println!("{} {} {:?}", e.at, e.event, e.detail);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn events(
        &self,
        id: &ExecutionId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<baton_core::ExecutionEvent>> {
        self.transport.events(id, after, limit).await
    }

    /// Deletes execution `id` and its descendants with everything they
    /// hold (see [`baton_core::AdminBackend::delete`]); one that has not
    /// finished needs `force` (it is cancelled first and its worker
    /// fenced). Answers how many executions were removed.
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput`, `Conflict` (unfinished without `force`,
    /// or a child that has not finished), `Contention` (retry),
    /// `Unavailable`.
    ///
    /// ```no_run
    /// # async fn demo(client: baton_sdk::Client, id: baton_core::ExecutionId) -> baton_core::Result<()> {
    /// let report = client.delete(&id, false).await?;
    /// println!("removed {} executions", report.deleted);
    /// # Ok(()) }
    /// ```
    pub async fn delete(&self, id: &ExecutionId, force: bool) -> Result<baton_core::DeleteReport> {
        self.transport.delete(id, force).await
    }

    /// Cancels, deletes or replays what a filter matches, at most `request.limit`
    /// per call; pass `next_cursor` back to go on (see
    /// [`baton_core::AdminBackend::bulk`]). With `dry_run`, only counts.
    ///
    /// # Errors
    /// `InvalidInput`, `Unavailable`.
    pub async fn bulk(&self, request: baton_core::BulkRequest) -> Result<baton_core::BulkReport> {
        self.transport.bulk(request).await
    }

    /// The snapshots of `ids`, in order, `None` for an id that names no
    /// execution (at most 1,000 ids; one call over HTTP).
    ///
    /// # Errors
    /// `InvalidInput` (too many ids), `Unavailable`.
    pub async fn describe_many(
        &self,
        ids: &[ExecutionId],
    ) -> Result<Vec<Option<ExecutionSnapshot>>> {
        self.transport.describe_many(ids).await
    }

    /// Pauses execution `id` and, with scope `tree` (the default),
    /// every live descendant: nothing paused is claimed, promoted or timed
    /// out until it is resumed; a running one's worker stops at its next
    /// renew and the attempt counts as no failure. Answers the snapshot
    /// and how many descendants were paused.
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput`, `Conflict` (it already finished),
    /// `Unavailable`.
    ///
    /// ```no_run
    /// # async fn demo(client: baton_sdk::Client, id: baton_core::ExecutionId) -> baton_core::Result<()> {
    /// use baton_core::CancelScope;
    /// let paused = client.pause(&id, CancelScope::Tree).await?;
    /// println!("paused it and {} descendants", paused.cascaded);
    /// client.resume(&id, CancelScope::Tree).await?;
    /// # Ok(()) }
    /// ```
    pub async fn pause(
        &self,
        id: &ExecutionId,
        scope: baton_core::CancelScope,
    ) -> Result<baton_core::PauseOutcome> {
        self.transport.pause(id, scope).await
    }

    /// Resumes execution `id` and, with scope `tree` (the default), every
    /// paused descendant: each returns to the state it left, or `waiting`
    /// when what it waited for happened meanwhile.
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput`, `Conflict` (it already finished),
    /// `Unavailable`.
    pub async fn resume(
        &self,
        id: &ExecutionId,
        scope: baton_core::CancelScope,
    ) -> Result<baton_core::PauseOutcome> {
        self.transport.resume(id, scope).await
    }

    /// Runs a failed, cancelled, expired or skipped execution again: it is
    /// `waiting`, with a fresh attempt budget and its history kept.
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput`, `Conflict` (any other state),
    /// `Unavailable`.
    pub async fn replay(&self, id: &ExecutionId) -> Result<ExecutionSnapshot> {
        self.transport.replay(id).await
    }

    /// Pauses `lane` of the client's namespace: no claim takes its work
    /// until [`resume_lane`](Self::resume_lane). Answers whether this call
    /// paused it (false: it already was).
    ///
    /// # Errors
    /// `InvalidInput`, `Unavailable`.
    pub async fn pause_lane(&self, lane: &str) -> Result<bool> {
        let lane = Lane::new(lane)?;
        self.transport
            .set_lane_paused(&self.namespace, &lane, true)
            .await
    }

    /// Resumes `lane` of the client's namespace. Answers whether it was
    /// paused.
    ///
    /// # Errors
    /// `InvalidInput`, `Unavailable`.
    pub async fn resume_lane(&self, lane: &str) -> Result<bool> {
        let lane = Lane::new(lane)?;
        self.transport
            .set_lane_paused(&self.namespace, &lane, false)
            .await
    }

    /// The lanes of the client's namespace that hold executions or are
    /// paused, by name, with their counts.
    ///
    /// # Errors
    /// `Unavailable`.
    pub async fn lanes(&self) -> Result<Vec<baton_core::LaneInfo>> {
        self.transport.lanes(&self.namespace).await
    }

    /// The live workers of the client's namespace, by id (at most
    /// `limit`, `1..=1000`).
    ///
    /// # Errors
    /// `InvalidInput`, `Unavailable`.
    pub async fn workers(&self, limit: usize) -> Result<Vec<WorkerInfo>> {
        self.transport.workers(&self.namespace, limit).await
    }

    /// The key-value state of execution `id`, ascending by key.
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput`, `Unavailable`.
    pub async fn state(&self, id: &ExecutionId) -> Result<Vec<StateEntry>> {
        self.transport.state(id).await
    }

    /// The progress frames of execution `id` numbered above `after`,
    /// ascending (at most `limit`, `1..=1000`). With none yet, waits up to
    /// `wait` for the next one or for the execution to finish — woken by
    /// the append, never polling. Answers the frames and the execution's
    /// state (terminal: no frame follows).
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput`, `Unavailable`.
    ///
    /// ```no_run
    /// # async fn demo(client: baton_sdk::Client, id: baton_core::ExecutionId) -> baton_core::Result<()> {
    /// use std::time::Duration;
    /// let mut after = 0;
    /// loop {
    ///     let (frames, state) = client.progress(&id, after, 100, Duration::from_secs(30)).await?;
    ///     for f in &frames {
    ///         println!("{}: {}", f.seq, String::from_utf8_lossy(&f.frame));
    ///         after = f.seq;
    ///     }
    ///     if frames.is_empty() && state.is_terminal() {
    ///         break;
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn progress(
        &self,
        id: &ExecutionId,
        after: u64,
        limit: usize,
        wait: Duration,
    ) -> Result<(Vec<ProgressFrame>, State)> {
        baton_core::Page::first(limit).validate()?;
        self.transport.progress(id, after, limit, wait).await
    }

    /// Waits until execution `id` is terminal and answers its snapshot, or
    /// after `timeout` the snapshot as it is then (check its `state`). The
    /// wait is woken by the transition itself (in process on SQLite, by
    /// `NOTIFY` on Postgres, by a `PUBLISH` from the finishing call on
    /// Valkey; over HTTP, a long-poll the server wakes the same way): a
    /// waiting client costs nothing while nothing changes.
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput`, `Unavailable`.
    ///
    /// ```no_run
    /// # async fn demo(client: baton_sdk::Client, id: baton_core::ExecutionId) -> baton_core::Result<()> {
    /// use std::time::Duration;
    /// let snap = client.wait_for_completion(&id, Duration::from_secs(60)).await?;
    /// if snap.state.is_terminal() {
    ///     let result: Option<u64> = baton_sdk::decode_result(&snap)?;
    ///     println!("result: {result:?}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn wait_for_completion(
        &self,
        id: &ExecutionId,
        timeout: Duration,
    ) -> Result<ExecutionSnapshot> {
        let deadline = baton_core::raw::deadline_in(timeout);
        let mut snap = self.transport.describe(id).await?;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if snap.state.is_terminal() || left.is_zero() {
                return Ok(snap);
            }
            // In bounded pieces: a notification lost with a dropped
            // connection costs at most one piece.
            snap = self
                .transport
                .wait_for_change(id, ChangeMark::of(&snap), left.min(WAIT_PIECE))
                .await?;
        }
    }

    /// Waits until execution `id` no longer matches `seen` (it finished,
    /// its custom status changed or a progress frame was appended) or
    /// `timeout` passes; answers its snapshot then. What a follower such as
    /// `baton watch` loops on.
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput`, `Unavailable`.
    pub async fn wait_for_change(
        &self,
        id: &ExecutionId,
        seen: ChangeMark,
        timeout: Duration,
    ) -> Result<ExecutionSnapshot> {
        self.transport.wait_for_change(id, seen, timeout).await
    }

    /// Counts executions per lane and state in the client's namespace.
    ///
    /// ```no_run
    /// # async fn demo(client: baton_sdk::Client) -> baton_core::Result<()> {
    /// for (lane, counts) in client.stats().await? {
    ///     println!("{lane}: {} waiting", counts.waiting);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn stats(&self) -> Result<BTreeMap<Lane, StateCounts>> {
        self.transport.counts(&self.namespace).await
    }
}

/// The result of a completed execution decoded from JSON; `None` when it has
/// no result (not completed).
///
/// ```
/// # fn demo(snap: &baton_core::ExecutionSnapshot) -> baton_core::Result<()> {
/// let total: Option<u64> = baton_sdk::decode_result(snap)?;
/// # let _ = total; Ok(()) }
/// ```
pub fn decode_result<T: DeserializeOwned>(snapshot: &ExecutionSnapshot) -> Result<Option<T>> {
    snapshot
        .result
        .as_deref()
        .map(|bytes| {
            serde_json::from_slice(bytes).map_err(|e| {
                EngineError::invalid(
                    "result",
                    String::from_utf8_lossy(bytes),
                    format!("does not decode as the requested type: {e}"),
                )
            })
        })
        .transpose()
}

/// Opens (creating and migrating where needed) the backend a URL names:
/// `sqlite://PATH`, `sqlite::memory:`, `postgres://…` when built with the
/// `postgres` feature, and `redis://…` / `valkey://…` / `redis+cluster://…`
/// when built with the `valkey` feature. The one place Baton's binaries turn a backend URL
/// into a backend.
///
/// # Errors
/// `Unsupported` for a backend not compiled in, `Configuration` for a URL
/// that names no known backend, and whatever opening the backend answers.
///
/// ```no_run
/// # async fn demo() -> baton_core::Result<()> {
/// let backend = baton_sdk::open_backend("sqlite://baton.db").await?;
/// println!("{} partitions", backend.partitions().get());
/// # Ok(()) }
/// ```
pub async fn open_backend(url: &str) -> Result<Arc<dyn AdminBackend>> {
    match BackendKind::of_url(url) {
        Some(BackendKind::Sqlite) => Ok(Arc::new(baton_sqlite::SqliteBackend::connect(url).await?)),
        Some(BackendKind::Postgres) => postgres(url).await,
        Some(BackendKind::Valkey) => valkey(url).await,
        _ => Err(EngineError::invalid(
            "backend",
            url,
            "use sqlite://PATH, sqlite::memory:, postgres://…, redis://HOST:PORT, \
             redis+cluster://HOST:PORT,… (or, for a client, http://HOST:PORT)",
        )),
    }
}

#[cfg(feature = "postgres")]
async fn postgres(url: &str) -> Result<Arc<dyn AdminBackend>> {
    Ok(Arc::new(
        baton_postgres::PostgresBackend::connect(url).await?,
    ))
}

#[cfg(feature = "valkey")]
async fn valkey(url: &str) -> Result<Arc<dyn AdminBackend>> {
    Ok(Arc::new(baton_valkey::ValkeyBackend::connect(url).await?))
}

#[cfg(not(feature = "valkey"))]
async fn valkey(_url: &str) -> Result<Arc<dyn AdminBackend>> {
    Err(EngineError::Unsupported {
        operation: "connect",
        backend: BackendKind::Valkey.as_str(),
    })
}

#[cfg(not(feature = "postgres"))]
async fn postgres(_url: &str) -> Result<Arc<dyn AdminBackend>> {
    Err(EngineError::Unsupported {
        operation: "connect",
        backend: BackendKind::Postgres.as_str(),
    })
}
