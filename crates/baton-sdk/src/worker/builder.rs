//! [`WorkerBuilder`]: a worker's settings, checked and turned into a running
//! [`Worker`] by [`WorkerBuilder::start`].

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_core::{
    CapabilityName, ClaimRequest, EngineError, Lane, LeaseToken, Namespace, Result, WorkerId,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{Semaphore, watch};

use super::Counters;
use super::Worker;
use super::run::{Shared, claim_loop, heartbeat};
use crate::client::Client;
use crate::context::{Context, HandlerError};
use crate::transport::Transport;

pub(super) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
pub(super) type Handler = Arc<
    dyn Fn(Context, Vec<u8>) -> BoxFuture<std::result::Result<Vec<u8>, HandlerError>> + Send + Sync,
>;

/// How long one claim waits for work on a backend in this process before
/// claiming again; bounds how late work submitted by another process is seen
/// on backends without cross-process wake-ups.
const DIRECT_CLAIM_WAIT: Duration = Duration::from_millis(500);
/// How long one HTTP claim long-polls. Shutdown waits for an outstanding
/// long-poll to answer (its leases must not be dropped), so this also bounds
/// how long stopping to claim may take.
const HTTP_CLAIM_WAIT: Duration = Duration::from_secs(2);

/// Configures and starts a [`Worker`].
///
/// ```no_run
/// # async fn demo(client: baton_sdk::Client) -> baton_core::Result<()> {
/// use std::time::Duration;
/// use baton_sdk::{Context, HandlerError, Worker};
///
/// #[derive(serde::Deserialize)]
/// struct Email { to: String }
///
/// async fn send(_ctx: Context, email: Email) -> Result<String, HandlerError> {
///     Ok(format!("sent to {}", email.to))
/// }
///
/// let worker = Worker::builder(&client)
///     .lane("emails")
///     .concurrency(16)
///     .lease(Duration::from_secs(30))
///     .handler("email.send", send)
///     .start()?;
/// // … until the application stops:
/// worker.shutdown(Duration::from_secs(10)).await;
/// # Ok(()) }
/// ```
pub struct WorkerBuilder {
    transport: Transport,
    namespace: String,
    lanes: Vec<String>,
    worker_id: Option<String>,
    capabilities: Vec<String>,
    versions: (Option<String>, Option<String>),
    session_idle: Option<Duration>,
    concurrency: usize,
    lease: Duration,
    claim_wait: Option<Duration>,
    handlers: HashMap<String, Handler>,
    fallback: Option<Handler>,
    default_lane: String,
}

impl std::fmt::Debug for WorkerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerBuilder")
            .field("namespace", &self.namespace)
            .field("lanes", &self.lanes)
            .field("concurrency", &self.concurrency)
            .field("lease", &self.lease)
            .field("kinds", &self.handlers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl WorkerBuilder {
    pub(super) fn new(client: &Client) -> Self {
        WorkerBuilder {
            transport: client.transport.clone(),
            namespace: client.namespace().to_string(),
            lanes: Vec::new(),
            worker_id: None,
            capabilities: Vec::new(),
            versions: (None, None),
            session_idle: None,
            concurrency: 1,
            lease: Duration::from_secs(30),
            claim_wait: None,
            handlers: HashMap::new(),
            fallback: None,
            default_lane: client.lane().to_string(),
        }
    }

    /// Claims from `namespace` instead of the client's.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Adds a lane to claim from (up to 16); the client's lane when none is
    /// named.
    pub fn lane(mut self, lane: impl Into<String>) -> Self {
        self.lanes.push(lane.into());
        self
    }

    /// The id recorded on attempts; default `<host>-<pid>-<random>`.
    pub fn worker_id(mut self, id: impl Into<String>) -> Self {
        self.worker_id = Some(id.into());
        self
    }

    /// Offers a capability: executions requiring it may be claimed.
    pub fn capability(mut self, capability: impl Into<String>) -> Self {
        self.capabilities.push(capability.into());
        self
    }

    /// The handler versions this worker runs, both ends inclusive (`None`:
    /// open): it takes executions without a version and those whose version
    /// is in the range. By default every version. A rolling deploy starts
    /// the new handlers with `versions(Some("2"), None)` beside old workers
    /// with `versions(None, Some("1.999"))`.
    pub fn versions(mut self, min: Option<&str>, max: Option<&str>) -> Self {
        self.versions = (min.map(str::to_owned), max.map(str::to_owned));
        self
    }

    /// How long this worker keeps a session after its last claim or renew
    /// of the session's work (default 30 s): the session's next execution
    /// within that time comes back here.
    pub fn session_idle(mut self, idle: Duration) -> Self {
        self.session_idle = Some(idle);
        self
    }

    /// Most handlers running at once (default 1, at least 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Lease length asked for at claim and at every renewal (default 30 s).
    /// The heartbeat renews every third of it, so a crashed worker's work is
    /// reclaimed within about one lease.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How long one claim waits for work before asking again (default 500 ms
    /// on a backend URL, 2 s over HTTP).
    pub fn claim_wait(mut self, wait: Duration) -> Self {
        self.claim_wait = Some(wait);
        self
    }

    /// Registers a typed handler for `kind`: the payload is decoded from JSON
    /// as `P` (a payload that does not decode fails the execution
    /// permanently) and the output encoded as the JSON result.
    pub fn handler<P, O, F, Fut>(mut self, kind: impl Into<String>, handler: F) -> Self
    where
        P: DeserializeOwned + Send + 'static,
        O: Serialize + Send + 'static,
        F: Fn(Context, P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<O, HandlerError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let erased: Handler = Arc::new(move |ctx: Context, bytes: Vec<u8>| {
            let handler = handler.clone();
            Box::pin(async move {
                let payload: P = serde_json::from_slice(&bytes).map_err(|e| {
                    HandlerError::permanent(format!(
                        "the payload does not decode as this handler's input ({e})"
                    ))
                })?;
                let out = handler(ctx, payload).await?;
                serde_json::to_vec(&out).map_err(|e| {
                    HandlerError::permanent(format!("the handler's output is not JSON ({e})"))
                })
            }) as BoxFuture<_>
        });
        self.handlers.insert(kind.into(), erased);
        self
    }

    /// Registers a handler for `kind` that takes and returns raw bytes (JSON
    /// for HTTP clients).
    pub fn raw_handler<F, Fut>(mut self, kind: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Context, Vec<u8>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<Vec<u8>, HandlerError>> + Send + 'static,
    {
        self.handlers.insert(kind.into(), erase_raw(handler));
        self
    }

    /// Runs `handler` for every kind without a handler of its own. Without a
    /// fallback such executions fail retryably, so a worker that has the
    /// handler can take them.
    pub fn fallback<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(Context, Vec<u8>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<Vec<u8>, HandlerError>> + Send + 'static,
    {
        self.fallback = Some(erase_raw(handler));
        self
    }

    /// Validates the settings and starts claiming. Must be called inside a
    /// Tokio runtime.
    ///
    /// # Errors
    /// `InvalidInput` for a malformed namespace, lane, worker id,
    /// capability or version, too many lanes, a version range whose lowest
    /// end is above its highest, a session idle time out of range, or a
    /// lease outside the backend's limits.
    pub fn start(self) -> Result<Worker> {
        let namespace = Namespace::new(self.namespace)?;
        let mut names = self.lanes;
        if names.is_empty() {
            names.push(self.default_lane);
        }
        let mut lanes = names
            .into_iter()
            .map(Lane::new)
            .collect::<Result<Vec<_>>>()?;
        lanes.dedup();
        let worker_id = match self.worker_id {
            Some(id) => WorkerId::new(id)?,
            None => default_worker_id()?,
        };
        let capabilities = self
            .capabilities
            .into_iter()
            .map(CapabilityName::new)
            .collect::<Result<BTreeSet<_>>>()?;
        let limits = self.transport.limits();
        let batch = self.concurrency.min(limits.max_batch);
        let Some(first) = lanes.first().cloned() else {
            return Err(EngineError::invalid("lanes", 0, "name at least one lane"));
        };
        let version = |v: Option<String>| v.map(|v| baton_core::Version::new(&v)).transpose();
        let versions =
            baton_core::VersionRange::between(version(self.versions.0)?, version(self.versions.1)?);
        let mut request = ClaimRequest::new(namespace, first, worker_id.clone(), batch)
            .with_capabilities(capabilities)
            .with_lease_ttl(self.lease)
            .with_versions(versions);
        if let Some(idle) = self.session_idle {
            request = request.with_session_idle(idle);
        }
        for lane in lanes.into_iter().skip(1) {
            request = request.with_lane(lane);
        }
        request.validate(&limits)?;
        let claim_wait = self.claim_wait.unwrap_or(match self.transport {
            Transport::Direct(_) => DIRECT_CLAIM_WAIT,
            Transport::Http(_) => HTTP_CLAIM_WAIT,
        });
        let shared = Arc::new(Shared {
            transport: self.transport,
            request,
            max_batch: limits.max_batch,
            slots: Arc::new(Semaphore::new(self.concurrency)),
            concurrency: self.concurrency,
            held: Mutex::new(HashMap::new()),
            handlers: self.handlers,
            fallback: self.fallback,
            counters: Counters::default(),
        });
        let (stop_claiming, claim_rx) = watch::channel(false);
        let (stop_heartbeat, heartbeat_rx) = watch::channel(false);
        let claim_task = tokio::spawn(claim_loop(shared.clone(), claim_wait, claim_rx));
        let heartbeat_task = tokio::spawn(heartbeat(shared.clone(), heartbeat_rx));
        Ok(Worker {
            shared,
            stop_claiming,
            stop_heartbeat,
            claim_task,
            heartbeat_task,
        })
    }
}

fn erase_raw<F, Fut>(handler: F) -> Handler
where
    F: Fn(Context, Vec<u8>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<Vec<u8>, HandlerError>> + Send + 'static,
{
    Arc::new(move |ctx, bytes| Box::pin(handler(ctx, bytes)) as BoxFuture<_>)
}

fn default_worker_id() -> Result<WorkerId> {
    let host: String = std::fs::read_to_string("/etc/hostname")
        .unwrap_or_default()
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        .take(64)
        .collect();
    let host = if host.is_empty() {
        "worker".into()
    } else {
        host
    };
    let nonce = LeaseToken::random_nonce() & 0xffff_ffff;
    WorkerId::new(format!("{host}-{}-{nonce:08x}", std::process::id()))
}
