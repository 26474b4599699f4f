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
//! ## Waiting without a worker
//! `release`, `suspend` and `signal` are one `FCALL` each on the
//! execution's partition (library generation 5, RFC 0007). Signals live in
//! a list per execution (`sg:<uuid>`, tagged in place when a wait consumes
//! them) with a hash of their idempotency keys (`sk:<uuid>`); wait timeouts
//! in a sorted set per partition (`timeouts`) that the timeout pass cleans
//! lazily. A claim reads signals only for an execution whose wait log is
//! not empty, so work that never waited costs the claim nothing.
//!
//! ## Checkpointed steps
//! `record_step` is one `FCALL` on the execution's partition (library
//! generation 6, RFC 0008), fenced by the live lease. Steps live in a hash
//! per execution (`st:<uuid>`, name → step) counted by the record's `sn`;
//! a claim reads the hash only for an execution whose count is not zero,
//! so work without steps costs the claim nothing.
//!
//! ## Key-value state, custom status, progress and waiting for a change
//! `set_state`, `set_status` and `append_progress` are one `FCALL` each
//! (library generation 7), fenced by the live lease. The state lives in a
//! hash per execution (`kv:<uuid>`, counted by the record's `kc`), the
//! custom status in the record itself (`cs`, its version `cv`), so every
//! snapshot carries it, and progress frames in a sorted set per execution
//! by number (`pg:<uuid>`; the record's `pq` is the last number), so a read
//! after a cursor and dropping the oldest are one range command each.
//!
//! A reader of `wait_for_change` marks its execution watched (the
//! partition's `watch` sorted set, member uuid, score the time until which
//! it waits) and this backend instance subscribes, once, to
//! `<prefix>:changed` on the first node. Every function that changes what
//! a reader follows (a terminal transition, a new status, a frame) looks up
//! the mark and, while it holds, `PUBLISH`es the execution's id there; the
//! subscription wakes the readers of that id, which read again. An
//! execution nobody watches costs one `ZSCORE` per change and no message;
//! a waiting reader costs nothing until its execution changes. A lost
//! subscription wakes every reader of the instance once it is back.
//!
//! ## Operator control
//! `set_priority`, `set_tag` and `revoke` are one `FCALL` each on the
//! execution's partition (library generation 8); a revoke settles the
//! attempt as the reclaim pass settles an expired lease. The worker
//! registry lives per namespace under a hash tag of its own (`{w:<ns>}`: a
//! hash of entries and a sorted set by last seen), written by claims and
//! renews only now and then (`baton_core::raw::Sightings`); see `ops`.
//!
//! `pause`, `resume` and `replay` are one `FCALL` each on the execution's
//! partition (library generation 9); a tree pause or resume walks the
//! descendants within the cascade budget in the same call and queues the
//! rest for the cascade pass, exactly like a cancel (a flow lives in one
//! partition). A paused execution is `paused` in its record, which keeps
//! the state it left (`pf`) and the pausing ancestor (`pv`), and sits in no
//! index a claim or a pass reads — only in `deadlines`, so deadlines still
//! reach it. A paused lane is a field of the hash `lp:<ns>` written to every
//! partition in turn and read by each partition's claim: a claim that runs
//! in a partition before the write lands there may still take the lane's
//! work; once `pause_lane` answers, none does (see `ops::pause_lane`).
//!
//! A unit of a delete is one `FCALL` (`baton_delete`, library generation
//! 11) over ids of one partition: a forced one cancels as `baton_cancel`
//! does with scope tree, and every execution is removed by the routine the
//! trim pass uses (`remove_execution` in `lua/common.lua`), so a delete and
//! a trim leave the same keys behind: none of the execution's.
//!
//! A unit of a bulk cancel or replay is one `FCALL` (`baton_cancel_units`,
//! `baton_replay_units`, library generation 14) over at most
//! `raw::bulk::MAX_UNIT_IDS` ids of one partition: each id is cancelled or
//! replayed by the routine its single call runs (`cancel_one`,
//! `replay_one` in `lua/common.lua`), so the keys it leaves are the single
//! call's; the lanes the unit woke are announced once.
//!
//! ## History
//! The history is kept per namespace, off by default: `set_history` writes
//! the namespace to the hash `hx` of every partition in turn (as
//! `pause_lane` writes a lane's flag), and `baton_create` reads its own
//! partition's copy for the namespaces it creates in. An execution keeps
//! the setting it was created with (the record field `hx`); without it
//! nothing below is written for it.
//! Every change of an execution's state appends an event to its history
//! in the `FCALL` that makes it (library generation 12): one `RPUSH` to a
//! list per execution (`ev:<uuid>`), numbered by the record's `ev`. The
//! list keeps the first event and the latest up to
//! `ExecutionEvent::MAX_KEPT`, so only an append past the bound drops one;
//! `remove_execution` deletes it with the execution. Events store the facts
//! (states, time, attempt count, worker, detail); `events` names them when
//! it reads the list, joined with the record's attempts.
//!
//! ## Retention
//! A retention rule is a field of the hash `ret` of every partition
//! (`<ns>/<lane>`, or `<ns>/` for every lane, → keep ms), written to each
//! in turn by `set_retention` (as `set_history` writes `hx`; library
//! generation 13). `baton_create` stamps a root covered by a rule with its
//! keep (the record field `kp`, read from its own partition's copy). A
//! finished root without `kp` sits in the partition's `done` set scored
//! by when its keep counts from; one with `kp` in `kept`, scored by when
//! it is due. The trim pass reads both up to what is due (`done` up to now
//! minus the default, `kept` up to now) and judges each root under the rule
//! in force then (`rules::trim_verdict`): one not due yet moves to where
//! that rule's keep places it, and is read again then.
//!
//! ## Limits
//! A limit's cap must hold across partitions and on a cluster, where the
//! end of a run (in its partition's slot) and its key's count (elsewhere)
//! cannot be one `FCALL`. So the slots are reservations kept in a slot of
//! their own per namespace (library generation 15; `limits`, and the key
//! schema in `lua/common.lua`):
//! - **Keys.** `{lim:<ns>}:def` (name → definition), `:gen` (bumped by
//!   every change), `:hold` (holder `<uuid>:<attempt>` → when its slots
//!   lapse) and `:hk` (holder → the sets it is counted in), per limit and
//!   key value `:r:<limit>/<value>` (its holders) and `:q:<limit>/<value>`
//!   (its rate window's claims), and per limit `:v:<limit>` (its key values
//!   with runs or claims). `{ctl}:limits` names each limit's namespace.
//!   Every partition holds a copy of the lanes of a namespace some limit
//!   covers (`lim:<ns>`: lanes, `''` for every lane, and the generation it
//!   was written for), and `lrel`, the releases its ends recorded.
//! - **A claim.** `baton_claim` (and the peek before it) skips the lanes its
//!   partition's copy names and answers those that hold work, so a process
//!   with any view of the limits never takes their work unjudged. Only then
//!   the backend claims that work through the limited path, in rounds: peek
//!   each partition's candidates in claim order (`baton_limit_peek`,
//!   passing over key values already known to have no room), admit them in
//!   one call on `{lim:<ns>}` (`baton_limit_admit`: drops lapsed holders,
//!   judges each as `rules::Admission` does, and adds a holder scored by
//!   the lease's expiry plus [`LIMIT_LAPSE_GRACE`] to each of its keys and
//!   the claim to each rate's window), claim exactly the admitted in their
//!   partitions (`baton_limit_claim`: only if still waiting at the attempt
//!   admitted with the tags admitted, and the copy's generation is the
//!   admission's; it marks the record `lh`), and give back the slots (and
//!   window claims) of those it could not claim (`baton_limit_release`). A
//!   candidate already held is passed by, so two claimers never share a
//!   holder; so is one already in a window of its keys (an admission read
//!   before its claim took place, whose give-back would erase the window
//!   entry of that claim). Work of keys without room is read past, never
//!   waited behind, but a claim reads at most 20,000 index entries of
//!   limited work: work behind a deeper backlog of such keys waits until
//!   the backlog shrinks.
//! - **Releases.** Every move out of `running` (`move` and the complete of
//!   `baton_complete`, mirroring `rules::release_on`) of a run marked `lh`
//!   records its release in the partition's `lrel` in the same `FCALL` and
//!   lists it in the woken part of the reply; the backend applies it in
//!   `{lim:<ns>}` before the call answers (complete, fail, release,
//!   suspend, wait for children, cancel, revoke, pause, delete, and the
//!   reclaim, expire and cascade passes alike), then deletes the record
//!   and wakes the run's lane. A release whose caller stopped in between
//!   is handed out again by the next promote pass of its partition (a
//!   scheduler tick). The holder is the backstop: it lapses at its lease's
//!   expiry plus the grace, and a renew extends it (`baton_renew` answers
//!   `renewed <ns>` for a run holding slots and the backend sends
//!   `baton_limit_renew`).
//! - **Exact.** The admission counts every live holder and adds holders in
//!   the same atomic call, and a holder exists from before its claim until
//!   its release or lapse: the cap is never exceeded, under any number of
//!   claimers, on a single server or a cluster. A slot may stay taken
//!   after its run ended until the release is applied: at most a scheduler
//!   tick after a crash between the end and applying it, or a lease (plus
//!   the grace) when the release record is lost too. `set_limit` writes the
//!   definition marked as adopting (the limit holds its work back
//!   meanwhile, and `explain` says `limited`), then every partition's copy
//!   (from then on only the limited path takes the work), then counts what
//!   already runs (`baton_limit_running`, `baton_limit_adopt`,
//!   `baton_limit_mark`, freeing what ended meanwhile and extending what a
//!   renew extended meanwhile), and only then puts the limit in force
//!   (`baton_limit_enforce`, only while the definition and the generation
//!   are still the ones it wrote: a writer that outlived its lock never
//!   brings back a limit removed since); a claim admitted before the
//!   change and claiming after the copies were rewritten is refused by the
//!   generation (its slots go back). Limit writers take a `{ctl}` lock.
//! - **Tags.** A run counts under the key values its claim was judged by
//!   until it ends: a `set_tag` on a running run holding slots does not
//!   move it to another key (the SQL backends count a running run by its
//!   current tags, so the two may differ until the run ends). A `set_tag`
//!   between a claim's peek and its claim makes the claim pass the
//!   execution by (its slots go back; the next claim judges the new tags).
//! - **Failures.** A claim never drops claims that took place: when its
//!   limited path fails part way (the namespace's node briefly
//!   unreachable), it answers what it claimed and logs the failure; only a
//!   claim that took nothing answers the error. Slots admitted to a
//!   partition whose claim failed stay taken (whether it claimed is
//!   unknown) until they lapse. Applying releases and extending the slots
//!   of renewed runs are best effort after a call that committed: a failure
//!   is logged, and the release is applied by the promote pass, the
//!   extension by the next renew (else the slots lapse at the earlier
//!   expiry plus the grace). A `set_limit` or `remove_limit` that answers
//!   an error may have rewritten only some partitions' copies, so the
//!   change holds only in part until the call is repeated and succeeds.
//! - **Cost.** A namespace without limits pays one `HMGET` of an absent key
//!   inside each `baton_claim` (and one command in the peek's pipeline):
//!   no extra call. A claim of limited work costs the plain claim's calls,
//!   then per round a peek per partition with limited work, one admission
//!   and a claim per partition admitted to (a give-back only after a
//!   race). An end of a run holding slots costs one `baton_limit_release`
//!   and, together, an `HDEL` and a `PUBLISH`; a renew of one, one
//!   `baton_limit_renew` per namespace. Work of limited and unlimited
//!   lanes in one claim is taken unlimited first, so claim order holds
//!   within each, not across them.
//! - **Cluster.** Each call still touches one slot: a namespace's limits
//!   are one slot, so all claims of a limited namespace meet at one node
//!   for their admission (one call per claim round, whatever its size).
//!
//! ## Fair limits
//! A fair limit orders the claims of the lanes it covers by turns
//! (`rules::fair_turn`; library generation 17): whenever an execution
//! enters `waiting` there — `enter()` in `lua/common.lua`, which every move
//! into `waiting` goes through, plus `baton_create` and
//! `baton_set_priority`, which place waiting work themselves — its ready
//! time `rd`, and so its waiting-set member, becomes its turn: right after
//! the latest turn of its key's waiting work at its priority, never before
//! the lane's head at that priority.
//! - **Keys.** Each partition's copy of a namespace's limits (`lim:<ns>`)
//!   names the key spec of the fair limit ordering a lane (`f:<lane>`, and
//!   `f:` for every lane without its own; `rules::fair_limit` picks the
//!   first by name), beside the limited lanes, which only limits with a cap
//!   or a rate mark: a fair-only limit leaves its work on the plain claim
//!   path. The waiting work of a key sits, besides its waiting set, in
//!   `fk:<ns>/<lane>/<key>` (same members, score 0), so its latest turn at
//!   a priority is one reversed `BYLEX` range over the priority's prefix,
//!   and the head the first member of each waiting set past that prefix.
//!   The record keeps its key (`fk`) while it waits, so whatever takes it
//!   out of `waiting` (`leave()`, or `take()` for a claim) finds the set,
//!   even after the limit changed or went.
//! - **Per partition.** Turns are given within a partition, and a claim
//!   merges the partitions' waiting sets in member order, so the
//!   partitions' turns compose into fairness across them to within each
//!   key's share of each partition: a key with work in every partition
//!   holds a turn per partition per round. So a create call deals the work
//!   of a fair lane over the partitions one by one (elsewhere a call's work
//!   goes to one partition): a tenant submitting one batch spreads like a
//!   tenant submitting many (the instance's view of a namespace's fair
//!   limits is at most a second old). Work of one flow shares its root's
//!   partition, so its turns are exact.
//! - **Cost.** A lane no fair limit covers pays one `HMGET` of the
//!   namespace's copy per call that moves work into `waiting` there (an
//!   absent key without limits; read once per lane and call), and nothing
//!   on a claim. A move into `waiting` of a fair lane costs three ranges
//!   and one more `ZADD` (a claim one more `ZREM`); its create is placed
//!   item by item rather than in one batched `ZADD`.
//!
//! ## Routing
//! Sessions and handler versions (library generation 16). A record holds
//! its session (`ses`), version (`ver`) and the version's sort key (`vk`);
//! work with either waits in its lane's conditional set (`wx:`), so work
//! without them is claimed as before. A claim passes its version keys and
//! each candidate's `vk` is compared as text.
//! - **Exact sessions.** Every execution of a session is created in
//!   `rules::session_partition`, and its lock lives in that partition's
//!   hash `ses` (`<ns>/<session>` → `<worker>|<expires ms>|<idle ms>`, with
//!   `sesx` indexing expiries): the `FCALL` that claims the session's work
//!   checks the lock and takes it (`take` in `common.lua`, shared by
//!   `baton_claim` and `baton_limit_claim`), so two workers never hold one
//!   session, on a cluster too. Work of a session another worker holds
//!   stays waiting and is read past.
//! - **Lifetime.** `baton_renew` extends the lock its worker holds;
//!   `baton_reclaim` releases the lock of a reclaimed run's worker and
//!   sweeps lapsed locks (a lapsed lock also yields to any claim).
//! - **Idempotency.** A key within a session has the field `<ns>/<lane>
//!   <session> <key>` in the partition's `idem` (which is the session's);
//!   a key without one keeps `<ns>/<lane>/<key>`.
//!
//! ## Durability
//! An acknowledged call has been applied by the server; whether it survives
//! a server crash depends on the server's persistence: none (lost on
//! restart), `appendonly yes` + `appendfsync everysec` (at most about one
//! second of acknowledged calls lost on a power failure; none on a process
//! crash), `appendfsync always` (nothing acknowledged is lost). After a
//! restart that lost the function library the backend loads it again and
//! carries on. See `rfcs/0002-valkey-backend.md`.

mod admin;
mod backend;
mod claim;
mod combine;
mod config;
mod conn;
mod create;
mod errors;
mod flow;
mod hints;
mod lease;
mod library;
mod limits;
mod manage;
mod memory;
mod ops;
mod ownership;
mod read;
mod scan;
mod wait;
mod wake;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use baton_core::raw::{PreparedExecution, Wakeups, Watchers};
use baton_core::{
    AttemptRecord, Claim, ClaimRequest, CreateOutcome, EngineError, ExecutionId, ExecutionSnapshot,
    Failure, Lane, LeaseToken, ListCursor, ListFilter, ListPage, Namespace, NewExecution, NodeId,
    Ownership, Page, PartitionCount, PartitionId, PartitionOwner, RenewOutcome, RenewRequest,
    RenewStatus, Result, ScanReport, State, StateCounts, Timestamp,
};
use futures_util::future::try_join_all;
use redis::{Cmd, Value};
use uuid::Uuid;

pub use config::ValkeyConfig;
use conn::{Conn, Server};
pub use library::GENERATION as LIBRARY_GENERATION;
pub use limits::LIMIT_LAPSE_GRACE;
use read::{Fields, array, bytes, int, opt_int, seq_and_lanes, text};

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
    /// Readers waiting for executions to change (`wait_for_change`).
    watchers: Arc<Watchers>,
    /// The subscription to change announcements, started by the first
    /// reader that waits: instances that never wait receive none.
    change_listener: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The node the subscriptions listen on (a cluster forwards `PUBLISH`
    /// to every node).
    listen_node: String,
    completer: tokio::sync::mpsc::UnboundedSender<combine::Pending>,
    hint_repaired: Mutex<HashMap<u16, Instant>>,
    /// Where the next create call places its executions (see `create`).
    placement: baton_core::raw::Placement,
    /// The fair limits of each namespace as this instance last read them,
    /// and when: creates spread the work of fair lanes over the
    /// partitions (see `create`).
    fair_views: Mutex<HashMap<String, FairView>>,
    /// Which worker sightings this instance wrote, so claims and renews
    /// write the registry only now and then (see `ops`).
    sightings: baton_core::raw::Sightings,
}

/// A namespace's fair limits by name, and when they were read.
type FairView = (Instant, Arc<Vec<baton_core::Limit>>);

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self.listener.take() {
            task.abort();
        }
        if let Some(task) = self.change_listener.get_mut().ok().and_then(Option::take) {
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

/// One woken lane of a partition: raise its hint and wake its claimers; or,
/// with `released`, the end of a run in that lane that held limit slots:
/// apply its release (see `limits`).
struct Woken {
    partition: u16,
    seq: i64,
    lane_id: String,
    /// The holder (`<uuid>:<attempt>`) whose slots to release.
    released: Option<String>,
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
            .map(|n| baton_core::raw::url::redact(n))
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
        let listener = Some(wake::spawn_listener(
            config.nodes[0].clone(),
            format!("{}:wake:*", config.prefix),
            Arc::clone(&wake),
        ));
        let completer = combine::start(
            server.clone(),
            config.prefix.clone(),
            config.limits.cascade_budget,
        );
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
                watchers: Arc::new(Watchers::default()),
                change_listener: std::sync::Mutex::new(None),
                listen_node: config.nodes[0].clone(),
                hint_repaired: Mutex::new(HashMap::new()),
                placement: baton_core::raw::Placement::default(),
                fair_views: Mutex::new(HashMap::new()),
                sightings: baton_core::raw::Sightings::default(),
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
        self.inner.placement.next(self.inner.partitions).get()
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

    /// The channel change announcements are published on (see
    /// `announce_change` in `lua/common.lua`).
    fn change_channel(&self) -> String {
        format!("{}:changed", self.inner.prefix)
    }

    fn check_id(&self, id: &ExecutionId) -> Result<()> {
        id.check_partition(self.inner.partitions)
    }

    async fn run(&self, cmd: &Cmd) -> Result<Value> {
        self.inner.server.run(cmd).await
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
    let store = format!("deployment under prefix {prefix}");
    Ok(baton_core::raw::rules::reconcile_partitions(Some(text), wanted, &store)?.count)
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

/// A lease nonce as the functions store it: 16 hex digits.
pub(crate) fn hex_nonce(n: u64) -> String {
    format!("{n:016x}")
}

/// An optional instant as the functions take it: milliseconds, or empty.
pub(crate) fn ms(t: Option<Timestamp>) -> String {
    t.map(|t| t.as_millis().to_string()).unwrap_or_default()
}

/// Runs a call's work in a task of its own and waits for it: a caller that
/// gives up (a client hanging up, a timeout) drops only its wait, so a call
/// whose function took effect still raises the hints and wakes the
/// claimers of the work it made claimable (otherwise that work would stay
/// invisible to claims until the promote pass repairs hints).
pub(crate) async fn detached<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    tokio::spawn(work).await.map_err(|e| {
        EngineError::unavailable(format!(
            "a Valkey call stopped before it answered: {e}; retry"
        ))
    })?
}
