//! `baton`: the command line of the Baton execution engine.
//!
//! Every command talks to a backend named by `--backend URL` (or
//! `BATON_BACKEND`; default `sqlite://baton.db`), prints a table a person can
//! read, or one JSON document with `--json`.

mod bench;
mod bulk;
mod control;
mod flow;
mod follow;
mod limits;
mod serve;
mod show;
mod table;
mod wait;
mod worker;

use std::io::Read;
use std::process::ExitCode;
use std::sync::Arc;

use baton_api::{Created, check_json};
use baton_core::{
    AdminBackend, BackendKind, Backoff, BulkAction, CancelRequest, CancelScope, CapabilityName,
    ChildKey, DependencyMode, DependencyPolicy, EngineError, ExecutionId, IdempotencyKey, Kind,
    Lane, Namespace, NewExecution, RetryPolicy, TagKey, Timestamp, Tree, UpstreamFailure,
};
use clap::{Args, Parser, Subcommand};
use serde_json::json;
use serde_json::value::RawValue;

const AFTER_HELP: &str = "\
Exit status: 0 success, 2 invalid input, 3 not found, 4 conflict or lease lost,
5 backend unavailable (retry), 6 (wait, watch) the execution finished without
completing, 7 (wait, watch) the time ran out first, 1 anything else.

Examples:
  baton submit email.send --payload '{\"to\":\"a@example.com\"}' --lane emails
  baton list --state waiting
  baton describe '{p:13}-019ab1c2-7d3e-7f00-8a1b-2c3d4e5f6071' --steps --state
  baton wait '{p:13}-019ab1c2-7d3e-7f00-8a1b-2c3d4e5f6071' --timeout 30s
  baton watch '{p:13}-019ab1c2-7d3e-7f00-8a1b-2c3d4e5f6071'
  baton cancel '{p:13}-019ab1c2-7d3e-7f00-8a1b-2c3d4e5f6071' --reason 'no longer needed'
  baton submit thumbnail --parent '{p:13}-019ab1c2-7d3e-7f00-8a1b-2c3d4e5f6071' --child-key a.png
  baton submit report --parent ROOT --depends-on A --depends-on B --needs any
  baton tree '{p:13}-019ab1c2-7d3e-7f00-8a1b-2c3d4e5f6071'
  baton signal '{p:13}-019ab1c2-7d3e-7f00-8a1b-2c3d4e5f6071' approval --data '{\"by\":\"ana\"}'
  baton serve --listen 127.0.0.1:7420";

/// Baton: a durable execution engine. Submit, inspect and cancel executions.
#[derive(Debug, Parser)]
#[command(name = "baton", version, after_help = AFTER_HELP)]
struct Cli {
    /// Backend URL: sqlite://PATH, sqlite::memory:, postgres://USER@HOST:5432/DB,
    /// redis://HOST:6379, redis+cluster://HOST1:PORT,HOST2:PORT (and
    /// http://HOST:PORT of `baton serve` for `worker`)
    #[arg(
        long,
        global = true,
        env = "BATON_BACKEND",
        default_value = "sqlite://baton.db"
    )]
    backend: String,
    /// Print one JSON document instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Submit one execution.
    Submit(SubmitArgs),
    /// Show everything about one execution.
    Describe {
        /// The execution id, as printed by submit or list.
        id: String,
        /// Also list its attempts.
        #[arg(long)]
        attempts: bool,
        /// Also list its checkpointed steps.
        #[arg(long)]
        steps: bool,
        /// Also list its key-value state.
        #[arg(long)]
        state: bool,
    },
    /// Wait until an execution finishes and print how: exit status 0 when
    /// it completed, 6 when it finished otherwise, 7 when the time ran out.
    /// Woken by the finish itself, not by polling.
    Wait {
        /// The execution id.
        id: String,
        /// Give up after this long (500ms, 30s, 5m, 2h); without it, wait
        /// until it finishes.
        #[arg(long, value_parser = follow::parse_duration)]
        timeout: Option<std::time::Duration>,
    },
    /// Follow an execution: print its progress frames and each change of
    /// its custom status as they happen, until it finishes (exit status as
    /// `wait`). With --json, one JSON document per line.
    Watch {
        /// The execution id.
        id: String,
        /// Stop following after this long (500ms, 30s, 5m, 2h).
        #[arg(long, value_parser = follow::parse_duration)]
        timeout: Option<std::time::Duration>,
    },
    /// List executions, oldest first.
    List(ListArgs),
    /// Cancel an execution that has not finished, and every unfinished
    /// execution below it in its flow (unless --only).
    ///
    /// Prints how many descendants were cancelled with it. A subtree too big
    /// for one call is finished by the scheduler of `baton serve`; the
    /// answer says so, and `baton tree` shows the progress.
    ///
    /// Without an id, cancels every execution the filters match (--state,
    /// --lane, --tag, --created-before, …, or --all): it shows how many
    /// first and asks (unless --yes), then works through them a thousand
    /// at a time, showing progress.
    Cancel {
        /// The execution id; leave it out to cancel by filter.
        id: Option<String>,
        /// Why it is cancelled; shown by describe (descendants get "cancelled
        /// with its ancestor ID: REASON").
        #[arg(long)]
        reason: Option<String>,
        /// Cancel this execution alone; its descendants keep running.
        #[arg(long)]
        only: bool,
        #[command(flatten)]
        bulk: BulkArgs,
    },
    /// Show the flow an execution belongs to as an indented tree, from its
    /// root: id, kind and state of each member, children under their parent
    /// in the order they were created.
    Tree {
        /// The id of any member of the flow.
        id: String,
        /// Most members to show, 1 to 10000; the output says when the flow
        /// has more.
        #[arg(long, default_value_t = Tree::DEFAULT_LIMIT)]
        limit: usize,
    },
    /// List the children of an execution (one level of its flow), oldest
    /// first.
    Children {
        /// The parent execution id.
        id: String,
        /// Page size, 1 to 1000.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Continue after a previous page (its next_cursor).
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Deliver a signal to an execution: it resumes a suspended execution
    /// whose wait it completes, and is kept for a later wait otherwise.
    Signal {
        /// The execution id.
        id: String,
        /// The waitpoint (signal name), such as approval.
        name: String,
        /// JSON payload of the signal.
        #[arg(long, default_value = "null")]
        data: String,
        /// Idempotency key: a repeat with the same key changes nothing.
        #[arg(long)]
        key: Option<String>,
    },
    /// List the signals an execution holds, oldest first: the ones its
    /// waits consumed (WAIT is the wait's number) and the buffered ones.
    Signals {
        /// The execution id.
        id: String,
    },
    /// Change the priority of an execution that has not finished; a
    /// waiting one is reordered among its lane at once.
    Priority {
        /// The execution id.
        id: String,
        /// The new priority (higher runs first).
        #[arg(allow_hyphen_values = true)]
        priority: i32,
    },
    /// Set a tag of an execution (any state): KEY=VALUE.
    Tag {
        /// The execution id.
        id: String,
        /// The tag, KEY=VALUE.
        tag: String,
    },
    /// Remove a tag of an execution.
    Untag {
        /// The execution id.
        id: String,
        /// The tag key.
        key: String,
    },
    /// Turn the event history of a namespace on or off, or show whether it
    /// is on. Off by default: it costs a write per transition. Executions
    /// keep the setting they were created with.
    History {
        /// on, off or show.
        #[arg(value_enum, default_value = "show")]
        switch: HistorySwitch,
        /// The namespace.
        #[arg(long, default_value = "default")]
        namespace: String,
    },
    /// Show the history of an execution, oldest first: every change of
    /// state with its time, attempt, worker and detail (a cancel reason,
    /// an error), signals delivered and operators' edits. The first event
    /// and the latest 199 are kept.
    Events {
        /// The execution id.
        id: String,
        /// Only events numbered above this one.
        #[arg(long, default_value_t = 0)]
        after: u64,
    },
    /// Say in words why an execution is not running now: what it waits
    /// for, who runs it, or how many of its lane go before it.
    Explain {
        /// The execution id.
        id: String,
    },
    /// Revoke a running execution's lease: its attempt ends as an expired
    /// lease would, and it is retried (or fails on its last attempt).
    Revoke {
        /// The execution id.
        id: String,
    },
    /// Pause an execution that has not finished, and every unfinished
    /// execution below it in its flow (unless --only): nothing paused is
    /// claimed, promoted or timed out until `baton resume`; a running one's
    /// worker stops at its next renew, and the attempt does not count.
    Pause {
        /// The execution id.
        id: String,
        /// Pause this execution alone; its descendants keep running.
        #[arg(long)]
        only: bool,
    },
    /// Resume a paused execution, and every paused execution below it in
    /// its flow (unless --only): each returns to the state it left, or
    /// waiting when what it waited for happened meanwhile.
    Resume {
        /// The execution id.
        id: String,
        /// Resume this execution alone.
        #[arg(long)]
        only: bool,
    },
    /// Run a failed, cancelled, expired or skipped execution again: it is
    /// waiting, with a fresh attempt budget; its history stays.
    ///
    /// Without an id, replays every failed, cancelled, expired or skipped
    /// execution the filters match, as `baton cancel` does by filter.
    Replay {
        /// The execution id; leave it out to replay by filter.
        id: Option<String>,
        #[command(flatten)]
        bulk: BulkArgs,
    },
    /// Delete an execution and its descendants with everything they hold
    /// (attempts, results, signals, steps, state, progress, tags); its
    /// idempotency key may be used again.
    ///
    /// One that has not finished, or has unfinished descendants, needs
    /// --force: it is cancelled first (its worker stops at its next renew)
    /// and then deleted. A child of a flow is deleted alone only once it
    /// and its descendants finished.
    Delete {
        /// The execution id.
        id: String,
        /// Cancel and delete it even if it has not finished.
        #[arg(long)]
        force: bool,
    },
    /// Delete every execution the filters match (--state, --lane, --tag,
    /// --created-before, --finished-before, …, or --all), with their
    /// descendants: it shows how many first and asks (unless --yes), then
    /// works through them a thousand at a time, showing progress.
    /// Unfinished executions are skipped unless --force.
    Purge {
        #[command(flatten)]
        bulk: BulkArgs,
        /// Cancel and delete matching executions that have not finished.
        #[arg(long)]
        force: bool,
    },
    /// Pause or resume a lane: a paused lane's work is not claimed.
    #[command(subcommand)]
    Lane(LaneCommand),
    /// Keep a namespace's (or one lane's) finished executions for a given
    /// time instead of the deployment's default (`baton serve
    /// --retention`); list or remove such rules.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Cap how many executions of one key (a tag's value, the kind, the
    /// lane) run at once and how many start per window; list, inspect or
    /// remove limits.
    #[command(subcommand)]
    Limit(limits::LimitCommand),
    /// List the lanes of a namespace with executions or paused: whether
    /// each is paused, and its executions per state.
    Lanes {
        /// Namespace to list.
        #[arg(long, default_value = "default")]
        namespace: String,
    },
    /// List the live workers of a namespace: those whose claims or renews
    /// were seen within the last minute.
    Workers {
        /// Namespace to list.
        #[arg(long, default_value = "default")]
        namespace: String,
        /// Most workers to list, 1 to 1000.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Count executions per lane and state.
    Stats {
        /// Namespace to count.
        #[arg(long, default_value = "default")]
        namespace: String,
    },
    /// Create or upgrade the backend's schema, and show its version.
    Migrate,
    /// Serve the HTTP API, with the scheduler, until SIGINT or SIGTERM.
    Serve(serve::ServeArgs),
    /// Run a shell command for every execution claimed from a lane, until
    /// SIGINT or SIGTERM. --backend may also be http://HOST:PORT of `baton serve`.
    Worker(worker::WorkerArgs),
    /// Measure end-to-end throughput and latency of the backend in a fresh
    /// namespace: submit, claim and complete no-op executions.
    Bench(bench::BenchArgs),
}

/// `baton lane pause|resume LANE`.
#[derive(Debug, Subcommand)]
enum LaneCommand {
    /// Stop claims from taking the lane's work, on every partition, until
    /// it is resumed; everything else about its executions goes on.
    Pause {
        /// The lane.
        lane: String,
        /// Its namespace.
        #[arg(long, default_value = "default")]
        namespace: String,
    },
    /// Let claims take the lane's work again.
    Resume {
        /// The lane.
        lane: String,
        /// Its namespace.
        #[arg(long, default_value = "default")]
        namespace: String,
    },
}

/// `baton retention set|list|remove`.
#[derive(Debug, Subcommand)]
enum RetentionCommand {
    /// Keep the namespace's finished executions (of --lane only, when
    /// given) for KEEP after they finish. A lane's rule wins over its
    /// namespace's. A longer keep protects every execution at once; a
    /// shorter one applies to executions created from now on (`baton
    /// purge` removes older ones sooner).
    Set {
        /// The namespace.
        namespace: String,
        /// How long: 30d, 36h, 90m, 45s (1s to 36500d).
        keep: String,
        /// The lane the rule covers; without it, every lane of the
        /// namespace without a rule of its own.
        #[arg(long)]
        lane: Option<String>,
    },
    /// List every rule.
    List,
    /// Remove a rule (of --lane, when given; else the namespace's rule
    /// for every lane).
    Remove {
        /// The namespace.
        namespace: String,
        /// The lane whose rule goes.
        #[arg(long)]
        lane: Option<String>,
    },
}

/// What `baton history` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum HistorySwitch {
    /// Record the history of executions created from now on.
    On,
    /// Stop recording it for executions created from now on.
    Off,
    /// Say whether it is on.
    Show,
}

#[derive(Debug, Args)]
struct SubmitArgs {
    /// Handler name, such as email.send.
    kind: String,
    /// JSON payload; '-' reads it from standard input.
    #[arg(long, default_value = "null")]
    payload: String,
    #[arg(long, default_value = "default")]
    namespace: String,
    #[arg(long, default_value = "default")]
    lane: String,
    /// Higher runs first.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    priority: i32,
    /// Start no earlier than this many milliseconds from now.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    delay_ms: i64,
    /// Start no earlier than this RFC 3339 time.
    #[arg(long)]
    run_at: Option<String>,
    /// Expire the execution if it has not finished by this RFC 3339 time.
    #[arg(long)]
    deadline: Option<String>,
    /// Attempts in total, including the first.
    #[arg(long, default_value_t = 3)]
    max_attempts: u32,
    /// First retry delay in milliseconds (doubling up to 60 s, with jitter).
    #[arg(long, default_value_t = 1000)]
    backoff_ms: u64,
    /// Submitting the same key again in this namespace and lane returns the first execution.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// A tag, KEY=VALUE; repeatable.
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// A capability the worker must offer; repeatable.
    #[arg(long = "capability")]
    capabilities: Vec<String>,
    /// The session it belongs to: the worker holding the session runs it
    /// (the idempotency key then deduplicates within the session).
    #[arg(long)]
    session: Option<String>,
    /// The handler version it was written for (`2`, `2.1`): only workers
    /// whose version range contains it claim it.
    #[arg(long = "version", value_name = "VERSION")]
    handler_version: Option<String>,
    /// The parent execution (same namespace); the child lives in its
    /// parent's partition and is cancelled with it.
    #[arg(long)]
    parent: Option<String>,
    /// Submitting the same key again under the same --parent returns the
    /// first child instead of creating another. Needs --parent.
    #[arg(long, requires = "parent")]
    child_key: Option<String>,
    /// An execution of the same flow this one runs after; repeatable. It is
    /// `blocked` until the policy (--needs, --on-upstream-failure) is met.
    /// Needs --parent (a member of that flow, such as its root).
    #[arg(long = "depends-on", requires = "parent")]
    depends_on: Vec<String>,
    /// How many upstream executions must complete: all (the default), any,
    /// or a number K (a quorum).
    #[arg(long, requires = "depends_on")]
    needs: Option<String>,
    /// What happens once that can no longer be met: skip (the default),
    /// fail, or run anyway.
    #[arg(long, requires = "depends_on")]
    on_upstream_failure: Option<String>,
}

/// The filters `list` and the bulk commands share.
#[derive(Clone, Debug, Args)]
struct FilterArgs {
    #[arg(long, default_value = "default")]
    namespace: String,
    #[arg(long)]
    lane: Option<String>,
    /// waiting, delayed, blocked, running, suspended, paused, completed,
    /// failed, cancelled, expired or skipped; several comma-separated
    /// (failed,expired) match any of them.
    #[arg(long)]
    state: Option<String>,
    #[arg(long)]
    kind: Option<String>,
    /// Only executions with this tag, KEY=VALUE.
    #[arg(long)]
    tag: Option<String>,
    /// Only children of this execution.
    #[arg(long)]
    parent: Option<String>,
    /// Only executions created after this instant: RFC 3339
    /// (2030-01-01T00:00:00Z) or a time ago (30m, 2h, 7d).
    #[arg(long)]
    created_after: Option<String>,
    /// Only executions created before this instant (as --created-after).
    #[arg(long)]
    created_before: Option<String>,
    /// Only executions that finished after this instant.
    #[arg(long)]
    finished_after: Option<String>,
    /// Only executions that finished before this instant.
    #[arg(long)]
    finished_before: Option<String>,
    /// Only the execution submitted with this idempotency key (a business
    /// id); with --lane at most one.
    #[arg(long)]
    key: Option<String>,
}

impl BulkArgs {
    /// The flags of a bulk call mean nothing beside an id: refused rather
    /// than ignored (a `--dry-run` must never act).
    fn refuse_with_an_id(&self) -> CliResult<()> {
        let narrows = show::filter_of(self.filter.clone())?.narrows();
        if self.dry_run || self.yes || self.all || narrows {
            return Err(EngineError::invalid(
                "id",
                "given with filters",
                "give either an execution id or filters (--state, --dry-run, --yes, --all …), not both",
            )
            .into());
        }
        Ok(())
    }
}

#[derive(Debug, Args)]
struct ListArgs {
    #[command(flatten)]
    filter: FilterArgs,
    /// Page size, 1 to 1000.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Continue after a previous page (its next_cursor).
    #[arg(long)]
    cursor: Option<String>,
}

/// What `baton cancel` and `baton replay` take instead of an id: which
/// executions, and how to go about it.
#[derive(Debug, Args)]
struct BulkArgs {
    #[command(flatten)]
    filter: FilterArgs,
    /// Act on every execution of the namespace (no other filter needed).
    #[arg(long)]
    all: bool,
    /// Count what would change, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Do not ask before changing (needed when standard input is not a
    /// terminal).
    #[arg(long, short = 'y')]
    yes: bool,
}

/// An error ready for the user: the message and what to do about it.
struct CliError {
    message: String,
    hint: Option<String>,
    code: u8,
}

impl From<EngineError> for CliError {
    fn from(e: EngineError) -> Self {
        let (code, hint) = match &e {
            EngineError::InvalidInput { .. } => (2, None),
            EngineError::NotFound { .. } => (
                3,
                Some("check the id with `baton list`, and that --backend points at the right database".into()),
            ),
            EngineError::Conflict { .. } | EngineError::LeaseLost { .. } => (4, None),
            EngineError::Unavailable { .. } | EngineError::Contention { .. } => {
                (5, Some("the backend did not answer; retry, or check --backend".into()))
            }
            _ => (1, None),
        };
        CliError {
            message: e.to_string(),
            hint,
            code,
        }
    }
}

type CliResult<T> = Result<T, CliError>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A server, a worker and the bench spread their tasks over every core;
    // the other commands make a few backend calls and exit.
    let mut builder = if matches!(
        cli.command,
        Command::Serve(_) | Command::Worker(_) | Command::Bench(_)
    ) {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.message);
            if let Some(hint) = e.hint {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(e.code)
        }
    }
}

async fn open_backend(url: &str) -> CliResult<Arc<dyn AdminBackend>> {
    if BackendKind::of_url(url).is_none() {
        return Err(CliError {
            message: format!("unrecognised backend URL {url:?}"),
            hint: Some(
                "backend URLs look like sqlite://baton.db, sqlite::memory:, postgres://user@host:5432/db, redis://host:6379 or redis+cluster://host1:6379,host2:6379"
                    .into(),
            ),
            code: 2,
        });
    }
    baton_sdk::open_backend(url).await.map_err(|e| match e {
        EngineError::Unsupported { backend, .. } => CliError {
            message: format!("the {backend} backend is not available in this build of baton"),
            hint: Some("use --backend sqlite://baton.db or postgres://user@host:5432/db".into()),
            code: 2,
        },
        other => other.into(),
    })
}

async fn run(cli: Cli) -> CliResult<()> {
    if let Command::Worker(args) = &cli.command {
        return worker::run(&cli.backend, args).await;
    }
    let backend = open_backend(&cli.backend).await?;
    let json = cli.json;
    match cli.command {
        Command::Submit(args) => submit(backend.as_ref(), args, json).await,
        Command::Describe {
            id,
            attempts,
            steps,
            state,
        } => {
            let with = show::With {
                attempts,
                steps,
                state,
            };
            show::describe(backend.as_ref(), &id, with, json).await
        }
        Command::Wait { id, timeout } => follow::wait(backend.as_ref(), &id, timeout, json).await,
        Command::Watch { id, timeout } => follow::watch(backend.as_ref(), &id, timeout, json).await,
        Command::List(args) => show::list(backend.as_ref(), args, json).await,
        Command::Cancel {
            id: Some(id),
            reason,
            only,
            bulk: args,
        } => {
            args.refuse_with_an_id()?;
            flow::cancel(backend.as_ref(), &id, reason, only, json).await
        }
        Command::Cancel {
            id: None,
            reason,
            only,
            bulk: args,
        } => {
            let scope = if only {
                CancelScope::Execution
            } else {
                CancelScope::Tree
            };
            let cancel = CancelRequest::with_reason(reason).with_scope(scope);
            bulk::run(backend.as_ref(), BulkAction::Cancel(cancel), args, json).await
        }
        Command::Tree { id, limit } => flow::tree(backend.as_ref(), &id, limit, json).await,
        Command::Children { id, limit, cursor } => {
            flow::children(backend.as_ref(), &id, limit, cursor, json).await
        }
        Command::Signal {
            id,
            name,
            data,
            key,
        } => wait::signal(backend.as_ref(), &id, &name, &data, key, json).await,
        Command::Signals { id } => wait::signals(backend.as_ref(), &id, json).await,
        Command::Priority { id, priority } => {
            control::priority(backend.as_ref(), &id, priority, json).await
        }
        Command::Tag { id, tag } => control::tag(backend.as_ref(), &id, &tag, false, json).await,
        Command::Untag { id, key } => control::tag(backend.as_ref(), &id, &key, true, json).await,
        Command::Revoke { id } => control::revoke(backend.as_ref(), &id, json).await,
        Command::Explain { id } => control::explain(backend.as_ref(), &id, json).await,
        Command::History { switch, namespace } => {
            let enabled = match switch {
                HistorySwitch::On => Some(true),
                HistorySwitch::Off => Some(false),
                HistorySwitch::Show => None,
            };
            control::history(backend.as_ref(), &namespace, enabled, json).await
        }
        Command::Events { id, after } => control::events(backend.as_ref(), &id, after, json).await,
        Command::Pause { id, only } => {
            control::pause(backend.as_ref(), &id, only, true, json).await
        }
        Command::Resume { id, only } => {
            control::pause(backend.as_ref(), &id, only, false, json).await
        }
        Command::Replay {
            id: Some(id),
            bulk: args,
        } => {
            args.refuse_with_an_id()?;
            control::replay(backend.as_ref(), &id, json).await
        }
        Command::Replay {
            id: None,
            bulk: args,
        } => bulk::run(backend.as_ref(), BulkAction::Replay, args, json).await,
        Command::Delete { id, force } => control::delete(backend.as_ref(), &id, force, json).await,
        Command::Purge { bulk: args, force } => {
            bulk::run(backend.as_ref(), BulkAction::Delete { force }, args, json).await
        }
        Command::Lane(LaneCommand::Pause { lane, namespace }) => {
            control::lane(backend.as_ref(), &namespace, &lane, true, json).await
        }
        Command::Lane(LaneCommand::Resume { lane, namespace }) => {
            control::lane(backend.as_ref(), &namespace, &lane, false, json).await
        }
        Command::Retention(RetentionCommand::Set {
            namespace,
            keep,
            lane,
        }) => {
            control::set_retention(backend.as_ref(), &namespace, lane.as_deref(), &keep, json).await
        }
        Command::Retention(RetentionCommand::List) => {
            control::retention_rules(backend.as_ref(), json).await
        }
        Command::Retention(RetentionCommand::Remove { namespace, lane }) => {
            control::remove_retention(backend.as_ref(), &namespace, lane.as_deref(), json).await
        }
        Command::Limit(command) => limits::run(backend.as_ref(), command, json).await,
        Command::Lanes { namespace } => control::lanes(backend.as_ref(), &namespace, json).await,
        Command::Workers { namespace, limit } => {
            control::workers(backend.as_ref(), &namespace, limit, json).await
        }
        Command::Stats { namespace } => show::stats(backend.as_ref(), &namespace, json).await,
        Command::Serve(args) => serve::run(backend, &cli.backend, args).await,
        Command::Worker(args) => worker::run(&cli.backend, &args).await,
        Command::Bench(args) => bench::run(backend, args, json).await,
        Command::Migrate => {
            let caps = backend.capabilities();
            let version = match caps.backend {
                BackendKind::Postgres => baton_postgres::latest_schema_version(),
                BackendKind::Valkey => i64::from(baton_valkey::LIBRARY_GENERATION),
                _ => baton_sqlite::latest_schema_version(),
            };
            if json {
                print_json(&json!({
                    "backend": caps.backend,
                    "schema_version": version,
                    "partitions": backend.partitions().get(),
                }));
            } else {
                println!(
                    "{} schema is at version {version} ({} partitions)",
                    caps.backend,
                    backend.partitions().get()
                );
            }
            Ok(())
        }
    }
}

fn split_pair<'a>(field: &'static str, text: &'a str) -> CliResult<(&'a str, &'a str)> {
    text.split_once('=').ok_or_else(|| {
        EngineError::invalid(
            field,
            text,
            "write it as KEY=VALUE, for example --tag customer=42",
        )
        .into()
    })
}

async fn submit(backend: &dyn AdminBackend, a: SubmitArgs, json: bool) -> CliResult<()> {
    let payload_text = if a.payload == "-" {
        let mut buf = String::new();
        std::io::stdin()
            .read_to_string(&mut buf)
            .map_err(|e| CliError {
                message: format!("cannot read the payload from standard input: {e}"),
                hint: None,
                code: 1,
            })?;
        buf
    } else {
        a.payload
    };
    // Kept as the text given, so numbers of any size stay exactly as typed.
    let payload: Box<RawValue> = serde_json::from_str(&payload_text).map_err(|e| {
        EngineError::invalid(
            "payload",
            &payload_text,
            format!("not valid JSON ({e}); quote strings, for example --payload '\"hello\"'"),
        )
    })?;
    check_json("payload", payload.get())?;
    let payload = payload.get().as_bytes().to_vec();
    let mut new = NewExecution::new(
        Namespace::new(a.namespace)?,
        Lane::new(a.lane)?,
        Kind::new(a.kind)?,
        payload,
    )
    .with_priority(a.priority)
    .with_delay_ms(a.delay_ms)
    .with_retry(RetryPolicy {
        max_attempts: a.max_attempts,
        backoff: Backoff {
            initial_ms: a.backoff_ms,
            max_ms: a.backoff_ms.max(Backoff::default().max_ms),
            ..Backoff::default()
        },
    });
    if let Some(t) = a.run_at {
        new = new.with_run_at(t.parse::<Timestamp>()?);
    }
    if let Some(t) = a.deadline {
        new = new.with_deadline(t.parse::<Timestamp>()?);
    }
    if let Some(k) = a.idempotency_key {
        new = new.with_idempotency_key(IdempotencyKey::new(k)?);
    }
    for t in &a.tags {
        let (k, v) = split_pair("tag", t)?;
        new = new.with_tag(TagKey::new(k)?, v);
    }
    for c in a.capabilities {
        new = new.with_capability(CapabilityName::new(c)?);
    }
    if let Some(s) = a.session {
        new = new.with_session(baton_core::SessionName::new(s)?);
    }
    if let Some(v) = a.handler_version {
        new = new.with_version(baton_core::Version::new(&v)?);
    }
    if let Some(p) = a.parent {
        new = new.with_parent(p.parse::<ExecutionId>()?);
    }
    if !a.depends_on.is_empty() {
        let upstream = a
            .depends_on
            .iter()
            .map(|d| d.parse::<ExecutionId>())
            .collect::<Result<Vec<_>, _>>()?;
        new = new
            .with_dependencies(upstream)
            .with_dependency_policy(dependency_policy(
                a.needs.as_deref(),
                a.on_upstream_failure.as_deref(),
            )?);
    }
    let by_child_key = a.child_key.is_some();
    if let Some(k) = a.child_key {
        new = new.with_child_key(ChildKey::new(k)?);
    }
    let out = backend.create(vec![new]).await?;
    let Some(o) = out.first() else {
        return Err(EngineError::corruption("the backend answered no outcome").into());
    };
    if json {
        print_json(&Created::from(o));
    } else if o.created {
        println!("submitted {} ({})", o.id, o.state);
    } else if by_child_key {
        println!(
            "already submitted with this child key under this parent: {} ({})",
            o.id, o.state
        );
    } else {
        println!(
            "already submitted with this idempotency key: {} ({})",
            o.id, o.state
        );
    }
    Ok(())
}

/// The policy of `--needs` and `--on-upstream-failure`.
fn dependency_policy(
    needs: Option<&str>,
    on_failure: Option<&str>,
) -> Result<DependencyPolicy, EngineError> {
    let mode = match needs.unwrap_or("all") {
        "all" => DependencyMode::AllOf,
        "any" => DependencyMode::AnyOf,
        k => DependencyMode::Quorum(k.parse().map_err(|_| {
            EngineError::invalid(
                "needs",
                k,
                "expected all, any, or how many upstream executions must complete",
            )
        })?),
    };
    let on_failure = match on_failure.unwrap_or("skip") {
        "skip" => UpstreamFailure::Skip,
        "fail" => UpstreamFailure::Fail,
        "run" => UpstreamFailure::Run,
        other => {
            return Err(EngineError::invalid(
                "on_upstream_failure",
                other,
                "expected skip, fail or run",
            ));
        }
    };
    Ok(DependencyPolicy::new(mode, on_failure))
}

/// Prints one JSON document (a `baton-api` answer type, so `--json` shows
/// what the HTTP API answers).
fn print_json<T: serde::Serialize>(v: &T) {
    match serde_json::to_string(v) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("error: cannot encode the answer as JSON: {e}"),
    }
}
