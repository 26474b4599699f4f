//! # baton-valkey
//!
//! Baton's highest-throughput backend: every state change is one `FCALL` of
//! the `baton` function library (the files of `lua/`), touching only the
//! keys of one partition. Every key of a partition carries the partition's
//! hash tag `{p:N}`, so the same code runs on a single Valkey/Redis server
//! and on a cluster. Needs Redis ≥ 7.0 or Valkey ≥ 7.2.
//!
//! ```no_run
//! # async fn demo() -> baton_core::Result<()> {
//! use baton_core::{EngineBackendExt, Kind, Lane, Namespace, NewExecution};
//! let backend = baton_valkey::ValkeyBackend::connect("redis://127.0.0.1:6379").await?;
//! let created = backend
//!     .create_one(NewExecution::new(Namespace::new("shop")?, Lane::new("emails")?, Kind::new("email.send")?, b"{}".to_vec()))
//!     .await?;
//! println!("{} is {}", created.id, created.state);
//! # Ok(()) }
//! ```
//!
//! ## Finding work without probing every partition
//! Each lane has a hint key (`B:hint:{ns/lane}`, a sorted set of partition
//! numbers) listing partitions that may hold its waiting work. A function
//! that turns a lane's waiting set in a partition from empty to non-empty
//! reports it; the backend then raises the hint (`ZADD GT` with the
//! partition's sequence number) and publishes on the lane's wake-up channel.
//! A claim reads the hints of its lanes and visits only those partitions; a
//! partition found empty is dropped from the hint unless work arrived after
//! it was seen. The scheduler's promote pass repairs hints every few
//! seconds, so a client that died between a create and its hint delays that
//! work by seconds, never loses it.
//!
//! ## Durability
//! An acknowledged call has been applied by the server; whether it survives
//! a server crash depends on the server's persistence: none (lost on
//! restart), `appendonly yes` + `appendfsync everysec` (at most about one
//! second of acknowledged calls lost on a power failure; none on a process
//! crash), `appendfsync always` (nothing acknowledged is lost). After a
//! restart that lost the function library the backend loads it again and
//! carries on. See `rfcs/0002-valkey-backend.md`.

mod complete;
mod config;
mod conn;
mod decode;
mod library;
mod ops;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use baton_core::raw::{PreparedExecution, Wakeups};
use baton_core::{
    AdminBackend, AttemptRecord, Capabilities, Claim, ClaimRequest, CreateOutcome, EngineBackend,
    EngineError, ExecutionId, ExecutionSnapshot, Failure, Lane, LeaseToken, ListCursor, ListFilter,
    ListPage, Namespace, NewExecution, NodeId, Ownership, Page, PartitionCount, PartitionId,
    PartitionOwner, RenewOutcome, RenewRequest, RenewStatus, Result, ScanReport, State,
    StateCounts, Timestamp,
};
use futures_util::future::try_join_all;
use redis::{Cmd, Value};
use uuid::Uuid;

pub use config::ValkeyConfig;
use conn::{Conn, Server};
use decode::{Fields, array, bytes, int, opt_int, seq_and_lanes, text};
pub use library::GENERATION as LIBRARY_GENERATION;

/// How often the promote pass of a partition also repairs claim hints.
const HINT_REPAIR_EVERY: Duration = Duration::from_secs(5);
/// Most members the first peek of a multi-partition claim asks for, over
/// all its candidate partitions.
const PEEK_BUDGET: usize = 1000;
/// Most index entries one list call examines per partition.
const LIST_BUDGET: usize = 2000;

/// The Valkey/Redis backend. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct ValkeyBackend {
    inner: Arc<Inner>,
}

struct Inner {
    server: Server,
    prefix: String,
    partitions: PartitionCount,
    limits: baton_core::Limits,
    clock: baton_core::SharedClock,
    cluster: bool,
    durable: bool,
    wake: Arc<Wakeups>,
    listener: Option<tokio::task::JoinHandle<()>>,
    completer: tokio::sync::mpsc::UnboundedSender<complete::Pending>,
    hint_repaired: Mutex<HashMap<u16, Instant>>,
    /// Where the next create call places its executions (see `create`).
    placement: AtomicU32,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self.listener.take() {
            task.abort();
        }
    }
}

impl std::fmt::Debug for ValkeyBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValkeyBackend")
            .field("server", &self.inner.server.display)
            .field("prefix", &self.inner.prefix)
            .field("cluster", &self.inner.cluster)
            .field("partitions", &self.inner.partitions.get())
            .finish()
    }
}

/// One woken lane of a partition: raise its hint and wake its claimers.
struct Woken {
    partition: u16,
    seq: i64,
    lane_id: String,
}

/// How often a cluster call is retried (slot moves, a lost node) before it
/// answers `Unavailable`, and the shortest and longest wait between tries in
/// milliseconds: about a second in all, where the driver's default is
/// minutes.
const CLUSTER_RETRIES: u32 = 3;
const CLUSTER_MIN_RETRY_WAIT_MS: u64 = 50;
const CLUSTER_MAX_RETRY_WAIT_MS: u64 = 400;

impl ValkeyBackend {
    /// Connects to the deployment named by `url` (see
    /// [`ValkeyConfig::from_url`]).
    pub async fn connect(url: &str) -> Result<Self> {
        Self::open(ValkeyConfig::from_url(url)?).await
    }

    /// Connects with explicit settings: loads the function library where it
    /// is missing or stale, records the partition count (or checks it
    /// against the recorded one) and starts the wake-up listener.
    ///
    /// # Errors
    /// `Unavailable` when the server cannot be reached, `Configuration` when
    /// the partition count differs from the recorded one, the server holds a
    /// newer library, or it is older than Redis 7.0 / Valkey 7.2.
    pub async fn open(config: ValkeyConfig) -> Result<Self> {
        let display = config
            .nodes
            .iter()
            .map(|n| strip_auth(n))
            .collect::<Vec<_>>()
            .join(",");
        let unreachable = |e: redis::RedisError| {
            EngineError::unavailable(format!(
                "cannot connect to Valkey at {display}: {e}; is the server running and the URL right?"
            ))
        };
        // The drivers' defaults back off for minutes between reconnection
        // attempts and wait for replies forever; a job engine must answer
        // "unavailable, retry" at once while the server is down and serve
        // again within a second or so of its return. A failed reconnection
        // is tried again by the next call.
        let conn = if config.cluster {
            let client = redis::cluster::ClusterClient::builder(config.nodes.clone())
                .connection_timeout(config.connect_timeout)
                .response_timeout(config.response_timeout)
                .retries(CLUSTER_RETRIES)
                .min_retry_wait(CLUSTER_MIN_RETRY_WAIT_MS)
                .max_retry_wait(CLUSTER_MAX_RETRY_WAIT_MS)
                .build()
                .map_err(unreachable)?;
            Conn::Cluster(client.get_async_connection().await.map_err(unreachable)?)
        } else {
            let client = redis::Client::open(config.nodes[0].as_str()).map_err(unreachable)?;
            // One attempt per reconnection: the call that finds the server
            // gone answers at once, and the next call tries again.
            let settings = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(config.connect_timeout)
                .set_response_timeout(config.response_timeout)
                .set_number_of_retries(0);
            Conn::Single(
                redis::aio::ConnectionManager::new_with_config(client, settings)
                    .await
                    .map_err(unreachable)?,
            )
        };
        let server = Server::new(conn, display.clone());
        server.ensure_library().await?;
        let partitions = record_partitions(&server, &config.prefix, config.partitions).await?;
        let durable = fsyncs_every_write(&server).await;
        let wake = Arc::new(Wakeups::default());
        let listener = Some(spawn_listener(
            config.nodes[0].clone(),
            format!("{}:wake:*", config.prefix),
            Arc::clone(&wake),
        ));
        let completer = complete::start(server.clone(), config.prefix.clone());
        Ok(ValkeyBackend {
            inner: Arc::new(Inner {
                completer,
                server,
                prefix: config.prefix,
                partitions,
                limits: config.limits,
                clock: config.clock,
                cluster: config.cluster,
                durable,
                wake,
                listener,
                hint_repaired: Mutex::new(HashMap::new()),
                // Instances start at different places, so that several
                // submitting processes do not fill the same partition.
                placement: AtomicU32::new(rand_start()),
            }),
        })
    }

    /// The version of the function library this build loads.
    pub fn library_version(&self) -> &str {
        self.inner.server.library_version()
    }

    /// The key prefix of this deployment.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The partition the next create call places its executions in: the
    /// partitions in turn, one call each.
    fn next_placement(&self) -> u16 {
        let n = u32::from(self.inner.partitions.get());
        (self.inner.placement.fetch_add(1, Ordering::Relaxed) % n) as u16
    }

    fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    fn base(&self, p: u16) -> String {
        format!("{}:{{p:{p}}}", self.inner.prefix)
    }

    fn ctl(&self) -> String {
        format!("{}:{{ctl}}", self.inner.prefix)
    }

    fn hint_key(&self, lane_id: &str) -> String {
        format!("{}:hint:{{{lane_id}}}", self.inner.prefix)
    }

    fn channel(&self, lane_id: &str) -> String {
        format!("{}:wake:{lane_id}", self.inner.prefix)
    }

    fn check_id(&self, id: &ExecutionId) -> Result<()> {
        id.check_partition(self.inner.partitions)
    }

    async fn run(&self, cmd: &Cmd) -> Result<Value> {
        self.inner.server.run(cmd).await
    }

    /// Raises the hints of woken lanes and wakes their claimers, here and in
    /// every other process. Awaited before the call that woke them answers,
    /// so a claim made after it sees the hint. It runs in a task of its own:
    /// a caller that gives up after its function call took effect must not
    /// leave the new work unhinted (invisible to claims until the promote
    /// pass repairs hints).
    async fn announce(&self, woken: Vec<Woken>) -> Result<()> {
        if woken.is_empty() {
            return Ok(());
        }
        let mut calls = Vec::with_capacity(woken.len() * 2);
        for w in &woken {
            let mut zadd = redis::cmd("ZADD");
            zadd.arg(self.hint_key(&w.lane_id))
                .arg("GT")
                .arg(w.seq)
                .arg(w.partition);
            calls.push(zadd);
            let mut publish = redis::cmd("PUBLISH");
            publish.arg(self.channel(&w.lane_id)).arg("");
            calls.push(publish);
        }
        let inner = Arc::clone(&self.inner);
        let task = tokio::spawn(async move {
            try_join_all(calls.iter().map(|c| inner.server.raw(c))).await?;
            // Local claimers are woken only now: woken earlier, they could
            // read the hint before it is raised and go back to sleep.
            for w in &woken {
                if let Some((ns, lane)) = w.lane_id.split_once('/') {
                    inner.wake.notify(ns, lane);
                }
            }
            Ok(())
        });
        task.await.map_err(|e| {
            EngineError::unavailable(format!("announcing new work stopped: {e}; retry"))
        })?
    }

    /// Forgets hints of lanes a partition was seen without (in the
    /// background: a stale hint only costs a wasted probe).
    fn drop_hints(&self, partition: u16, seq: i64, lane_ids: Vec<String>) {
        if lane_ids.is_empty() {
            return;
        }
        let server = self.inner.server.clone();
        let keys: Vec<String> = lane_ids.iter().map(|l| self.hint_key(l)).collect();
        tokio::spawn(async move {
            for key in keys {
                let mut c = Server::fcall("baton_hint_drop", &key);
                c.arg(partition).arg(seq);
                if let Err(e) = server.raw(&c).await {
                    tracing::debug!(error = %e, "dropping a claim hint failed");
                    return;
                }
            }
        });
    }

    fn woken_from(&self, partition: u16, v: Value) -> Result<Vec<Woken>> {
        let (seq, lanes) = seq_and_lanes(v)?;
        Ok(lanes
            .into_iter()
            .map(|lane_id| Woken {
                partition,
                seq,
                lane_id,
            })
            .collect())
    }

    /// Sends `call` (complete / fail / cancel of `id`) right after a plain
    /// read of the execution's payload, in one pipeline: the payload is
    /// immutable and lives exactly as long as the record, so a read made
    /// before the call belongs to the snapshot the call answers.
    async fn with_payload(&self, id: &ExecutionId, call: Cmd) -> Result<(Value, Value)> {
        let mut get = redis::cmd("GET");
        get.arg(format!(
            "{}:p:{}",
            self.base(id.partition().get()),
            id.uuid().simple()
        ));
        let (payload, reply) = self.inner.server.run_two(get, call).await?;
        Ok((reply, payload))
    }

    /// Interprets the reply of complete / fail / cancel, with the payload
    /// read before the call.
    async fn outcome(
        &self,
        id: &ExecutionId,
        operation: &'static str,
        reply: Value,
        payload: Value,
    ) -> Result<ExecutionSnapshot> {
        let mut items = array(reply)?.into_iter();
        let tag = items
            .next()
            .ok_or_else(|| decode::corrupt("an empty reply"))?;
        match text(&tag)? {
            "ok" => {
                let woken = items
                    .next()
                    .ok_or_else(|| decode::corrupt("a reply without its woken lanes"))?;
                let woken = self.woken_from(id.partition().get(), woken)?;
                let Some(record) = items.next() else {
                    return Err(decode::corrupt("a reply without the execution's record"));
                };
                let mut fields = Fields::from_record(bytes(&record)?)?;
                let payload = match payload {
                    Value::BulkString(b) => b,
                    Value::Nil => {
                        return Err(EngineError::corruption(format!(
                            "execution {id} has a record but no payload"
                        )));
                    }
                    other => bytes(&other)?.to_vec(),
                };
                fields.set("pl", payload);
                let snap = decode::snapshot(id.clone(), &fields)?;
                self.announce(woken).await?;
                Ok(snap)
            }
            "conflict" => {
                let state = items
                    .next()
                    .ok_or_else(|| decode::corrupt("a conflict without a state"))?;
                let state: State = text(&state)?
                    .parse()
                    .map_err(|_| decode::corrupt("a conflict naming an unknown state"))?;
                let reason = match items.next() {
                    Some(r) => text(&r)?.to_owned(),
                    None => String::new(),
                };
                Err(EngineError::Conflict {
                    id: id.clone(),
                    operation,
                    state,
                    reason,
                })
            }
            "lost" => {
                let reason = match items.next() {
                    Some(r) => text(&r)?.to_owned(),
                    None => "the lease is no longer current".to_owned(),
                };
                Err(EngineError::lease_lost(id, reason))
            }
            "not_found" => Err(EngineError::NotFound { id: id.clone() }),
            "corrupt" => {
                let message = match items.next() {
                    Some(r) => text(&r)?.to_owned(),
                    None => String::new(),
                };
                Err(EngineError::corruption(format!(
                    "execution {id}: {message}"
                )))
            }
            other => Err(decode::corrupt(format_args!("reply tag {other:?}"))),
        }
    }

    /// The execution record, and with `payload` its payload as field `pl`
    /// (read right after it on the same connection; an execution trimmed in
    /// between is not found).
    async fn read_fields(&self, id: &ExecutionId, payload: bool) -> Result<Fields> {
        self.check_id(id)?;
        let base = self.base(id.partition().get());
        let uuid = id.uuid().simple();
        let mut get = redis::cmd("GET");
        get.arg(format!("{base}:e:{uuid}"));
        let not_found = || EngineError::NotFound { id: id.clone() };
        let record = |v: Value| -> Result<Fields> {
            match v {
                Value::Nil => Err(not_found()),
                other => Fields::from_record(bytes(&other)?),
            }
        };
        if !payload {
            return record(self.run(&get).await?);
        }
        let mut get_payload = redis::cmd("GET");
        get_payload.arg(format!("{base}:p:{uuid}"));
        let (fields, payload) = tokio::try_join!(self.run(&get), self.run(&get_payload))?;
        let mut fields = record(fields)?;
        match payload {
            Value::Nil => return Err(not_found()),
            other => fields.set("pl", bytes(&other)?.to_vec()),
        }
        Ok(fields)
    }

    /// A scheduler pass's `{ processed, next_due, woken? }` reply.
    async fn scan_report(&self, partition: u16, reply: Value, offset: i64) -> Result<ScanReport> {
        let mut items = array(reply)?.into_iter();
        let processed = int(&items
            .next()
            .ok_or_else(|| decode::corrupt("empty scan reply"))?)?;
        let next = match items.next() {
            Some(v) => opt_int(&v)?,
            None => None,
        };
        if let Some(w) = items.next() {
            let woken = self.woken_from(partition, w)?;
            self.announce(woken).await?;
        }
        Ok(ScanReport {
            processed: u64::try_from(processed).unwrap_or(0),
            next_due: next.map(|t| Timestamp::from_millis(t.saturating_add(offset))),
        })
    }

    /// Raises the hints of every lane with waiting work in `partition`, at
    /// most every few seconds per partition.
    async fn repair_hints(&self, partition: u16) -> Result<()> {
        let due = {
            let Ok(mut last) = self.inner.hint_repaired.lock() else {
                return Ok(());
            };
            let now = Instant::now();
            match last.get(&partition) {
                Some(t) if now.duration_since(*t) < HINT_REPAIR_EVERY => false,
                _ => {
                    last.insert(partition, now);
                    true
                }
            }
        };
        if !due {
            return Ok(());
        }
        let reply = self
            .run(&Server::fcall("baton_lanes", &self.base(partition)))
            .await?;
        let (seq, lanes) = seq_and_lanes(reply)?;
        let calls: Vec<Cmd> = lanes
            .iter()
            .map(|l| {
                let mut z = redis::cmd("ZADD");
                z.arg(self.hint_key(l)).arg("GT").arg(seq).arg(partition);
                z
            })
            .collect();
        try_join_all(calls.iter().map(|c| self.inner.server.raw(c))).await?;
        Ok(())
    }
}

/// An execution's member in its lane's waiting set: claim order as one
/// byte string (priority descending, then ready_at, then uuid), since
/// members of equal score sort by their bytes. Must equal what `member` in
/// `lua/common.lua` computes from the stored record.
fn claim_member(priority: i32, ready_at_ms: i64, uuid: &str) -> String {
    let rank = i64::from(i32::MAX) - i64::from(priority);
    format!("{rank:08x}{:016x}{uuid}", ready_at_ms.max(0))
}

/// A starting point for the placement rotation that differs between
/// processes and instances (the low bits of a fresh lease nonce).
fn rand_start() -> u32 {
    (LeaseToken::random_nonce() & 0xffff_ffff) as u32
}

fn strip_auth(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://{host}"),
        _ => url.to_owned(),
    }
}

/// The partition a submission with an idempotency key lives in: a function
/// of (namespace, lane, key), so every submission of the key reaches the
/// same partition, where one function call checks and records it.
fn idempotency_partition(new: &NewExecution, partitions: PartitionCount) -> Option<u16> {
    let key = new.idempotency_key.as_ref()?;
    let parts = [new.namespace.as_str(), new.lane.as_str(), key.as_str()];
    let h = fnv1a(parts.iter().flat_map(|p| p.bytes().chain([0u8])));
    Some((h % u64::from(partitions.get())) as u16)
}

/// 64-bit FNV-1a: stable across processes and releases, as anything that
/// decides where data lives (or names a library version) must be.
fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

async fn record_partitions(
    server: &Server,
    prefix: &str,
    wanted: Option<PartitionCount>,
) -> Result<PartitionCount> {
    let key = format!("{prefix}:{{ctl}}:meta");
    let proposed = wanted.unwrap_or_default();
    let mut setnx = redis::cmd("HSETNX");
    setnx.arg(&key).arg("partitions").arg(proposed.get());
    server.run(&setnx).await?;
    let mut get = redis::cmd("HGET");
    get.arg(&key).arg("partitions");
    let recorded = server.run(&get).await?;
    let text = text(&recorded)?;
    let recorded = text
        .parse::<u16>()
        .ok()
        .and_then(|n| PartitionCount::new(n).ok())
        .ok_or_else(|| EngineError::corruption(format!("recorded partition count {text:?}")))?;
    if let Some(w) = wanted
        && w != recorded
    {
        return Err(EngineError::Configuration {
            message: format!(
                "the deployment under prefix {prefix} was created with {} partitions but {} were requested; \
                 start with partitions={} (or leave it unset)",
                recorded.get(),
                w.get(),
                recorded.get()
            ),
        });
    }
    Ok(recorded)
}

/// Whether the server appends every write to its AOF and fsyncs it before
/// answering (`appendonly yes`, `appendfsync always`): only then does an
/// acknowledged call survive a crash of the server's host. A server that
/// refuses `CONFIG GET` (managed services often do) counts as not durable.
async fn fsyncs_every_write(server: &Server) -> bool {
    let get = |name: &str| {
        let mut c = redis::cmd("CONFIG");
        c.arg("GET").arg(name);
        c
    };
    let value = |v: Value| -> Option<String> {
        let items = match v {
            Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
            other => array(other).ok()?,
        };
        items.get(1).and_then(|v| text(v).ok()).map(str::to_owned)
    };
    let (aof, fsync) = (get("appendonly"), get("appendfsync"));
    match tokio::join!(server.raw(&aof), server.raw(&fsync)) {
        (Ok(a), Ok(f)) => {
            value(a).as_deref() == Some("yes") && value(f).as_deref() == Some("always")
        }
        _ => false,
    }
}

/// Subscribes to every lane's wake-up channel on the first node (a cluster
/// forwards `PUBLISH` to every node) and wakes local claimers. Reconnects
/// forever; after a reconnect every parked claimer is woken, since messages
/// may have been missed meanwhile.
fn spawn_listener(
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
