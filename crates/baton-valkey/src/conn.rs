//! One connection type over a standalone server or a cluster, and the
//! mapping of driver errors to [`EngineError`].

use std::sync::Arc;

use baton_core::{EngineError, Result};
use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
use redis::{Cmd, Pipeline, Value};

use crate::errors::ServerError;
use crate::library::{Library, Verdict, judge};

/// A multiplexed connection: concurrent calls from many tasks share one
/// socket per server and are pipelined on the wire.
#[derive(Clone)]
pub enum Conn {
    /// A standalone server, reconnecting on failure.
    Single(ConnectionManager),
    /// A cluster; commands are routed by their first key's slot.
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conn::Single(_) => "Conn::Single",
            Conn::Cluster(_) => "Conn::Cluster",
        })
    }
}

/// A connection plus the library it keeps loaded.
#[derive(Clone, Debug)]
pub struct Server {
    conn: Conn,
    library: Arc<Library>,
    /// Where the server is, for error messages.
    pub display: Arc<str>,
}

impl Server {
    pub fn new(conn: Conn, display: String) -> Self {
        Server {
            conn,
            library: Arc::new(Library::build()),
            display: display.into(),
        }
    }

    /// Runs one command, as is.
    pub async fn raw(&self, cmd: &Cmd) -> Result<Value> {
        self.send(cmd).await.map_err(|e| self.map(&e))
    }

    async fn send(&self, cmd: &Cmd) -> redis::RedisResult<Value> {
        match self.conn.clone() {
            Conn::Single(mut c) => cmd.query_async(&mut c).await,
            Conn::Cluster(mut c) => cmd.query_async(&mut c).await,
        }
    }

    /// Runs one command; if the server lost the function library (it
    /// restarted without persistence, or was flushed), loads it and runs the
    /// command once more.
    pub async fn run(&self, cmd: &Cmd) -> Result<Value> {
        self.reloading(|| self.send(cmd)).await
    }

    /// Runs a pipeline (a transaction when it is atomic) and answers each
    /// command's reply, in order; an error reply of any command is the
    /// error of the whole call.
    pub async fn raw_pipe(&self, pipe: &Pipeline) -> Result<Vec<Value>> {
        self.send_pipe(pipe).await.map_err(|e| self.map(&e))
    }

    async fn send_pipe(&self, pipe: &Pipeline) -> redis::RedisResult<Vec<Value>> {
        match self.conn.clone() {
            Conn::Single(mut c) => pipe.query_async(&mut c).await,
            Conn::Cluster(mut c) => pipe.query_async(&mut c).await,
        }
    }

    /// [`Server::run`] for a pipeline: when the server lost the function
    /// library, loads it and runs the whole pipeline once more (every
    /// pipeline this backend sends may be repeated: the commands beside
    /// the function call only write immutable payloads or read them).
    pub async fn run_pipe(&self, pipe: &Pipeline) -> Result<Vec<Value>> {
        self.reloading(|| self.send_pipe(pipe)).await
    }

    /// [`Server::run_pipe`] of exactly two commands, answering both replies.
    pub async fn run_two(&self, first: Cmd, second: Cmd) -> Result<(Value, Value)> {
        let mut pipe = redis::pipe();
        pipe.add_command(first).add_command(second);
        let mut replies = self.run_pipe(&pipe).await?.into_iter();
        match (replies.next(), replies.next()) {
            (Some(a), Some(b)) => Ok((a, b)),
            _ => Err(crate::read::corrupt(
                "a pipeline answered fewer replies than commands",
            )),
        }
    }

    /// Runs `call`; when the server answers that a function is missing,
    /// loads the library and runs `call` once more.
    async fn reloading<T, F, Fut>(&self, call: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        match call().await {
            Err(e) if ServerError::of(&e) == ServerError::FunctionMissing => {
                tracing::warn!(server = %self.display, "the Baton function library is missing; loading it again");
                self.ensure_library().await?;
                call().await.map_err(|e| self.map(&e))
            }
            other => other.map_err(|e| self.map(&e)),
        }
    }

    /// `FCALL name 1 key args...`
    pub fn fcall(name: &str, key: &str) -> Cmd {
        let mut c = redis::cmd("FCALL");
        c.arg(name).arg(1).arg(key);
        c
    }

    /// Makes sure every primary holds this build's library, loading it where
    /// it is missing or stale. Safe when several processes start at once:
    /// loading the same text twice is harmless, and a newer library is never
    /// replaced.
    pub async fn ensure_library(&self) -> Result<()> {
        let versions = self.loaded_versions().await?;
        let mut replace = false;
        for v in &versions {
            if judge(v.as_deref(), &self.library)? == Verdict::Replace {
                replace = true;
            }
        }
        if !replace {
            return Ok(());
        }
        let mut load = redis::cmd("FUNCTION");
        load.arg("LOAD").arg("REPLACE").arg(&self.library.code);
        // Routed to every primary on a cluster.
        self.raw(&load).await.map_err(|e| match e {
            EngineError::Unavailable { message } => EngineError::Configuration {
                message: format!(
                    "cannot load the Baton function library on {}: {message}; \
                     Baton needs Redis >= 7.0 or Valkey >= 7.2",
                    self.display
                ),
            },
            other => other,
        })?;
        tracing::info!(server = %self.display, version = %self.library.version, "loaded the Baton function library");
        Ok(())
    }

    /// The library version each primary reports (None: no library).
    async fn loaded_versions(&self) -> Result<Vec<Option<String>>> {
        let mut cmd = redis::cmd("FCALL");
        cmd.arg("baton_version").arg(0);
        match &self.conn {
            Conn::Single(c) => {
                let r = cmd.query_async::<Value>(&mut c.clone()).await;
                Ok(vec![version_of(r)])
            }
            Conn::Cluster(c) => {
                // FUNCTION LIST answers on every primary, with or without
                // the library (an FCALL would fail the whole fan-out when
                // one primary lacks it); the version is read from the code.
                let mut list = redis::cmd("FUNCTION");
                list.arg("LIST")
                    .arg("LIBRARYNAME")
                    .arg("baton")
                    .arg("WITHCODE");
                let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
                let reply = c
                    .clone()
                    .route_command(&list, routing)
                    .await
                    .map_err(|e| self.map(&e))?;
                let per_node: Vec<Value> = match reply {
                    Value::Map(pairs) => pairs.into_iter().map(|(_, v)| v).collect(),
                    other => vec![other],
                };
                Ok(per_node.iter().map(version_in_code).collect())
            }
        }
    }

    /// The library version this build loads.
    pub fn library_version(&self) -> &str {
        &self.library.version
    }

    /// The [`EngineError`] for a driver error of this server.
    pub fn map(&self, e: &redis::RedisError) -> EngineError {
        crate::errors::map(&self.display, e)
    }
}

/// The library version written into the code of a `FUNCTION LIST … WITHCODE`
/// reply, if the reply holds the `baton` library.
fn version_in_code(v: &Value) -> Option<String> {
    const MARK: &str = "local LIBRARY_VERSION = '";
    match v {
        Value::BulkString(b) => {
            let code = std::str::from_utf8(b).ok()?;
            let rest = &code[code.find(MARK)? + MARK.len()..];
            Some(rest[..rest.find('\'')?].to_owned())
        }
        Value::Array(items) | Value::Set(items) => items.iter().find_map(version_in_code),
        Value::Map(pairs) => pairs.iter().find_map(|(_, v)| version_in_code(v)),
        _ => None,
    }
}

fn version_of(r: redis::RedisResult<Value>) -> Option<String> {
    match r {
        Ok(Value::BulkString(b)) => String::from_utf8(b).ok(),
        Ok(Value::SimpleString(s)) => Some(s),
        _ => None,
    }
}
