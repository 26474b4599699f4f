//! Backend URLs and settings.

use std::time::Duration;

use baton_core::raw::url::partitions_option;
use baton_core::{EngineError, Limits, PartitionCount, Result, SharedClock, SystemClock};

/// Settings of a [`ValkeyBackend`](crate::ValkeyBackend).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ValkeyConfig {
    /// Node URLs for the driver (`redis://[user:pass@]host:port[/db]`); one
    /// for a standalone server, the seed nodes for a cluster.
    pub nodes: Vec<String>,
    /// The nodes form a Valkey/Redis Cluster.
    pub cluster: bool,
    /// Prefix of every key, so several deployments can share a server.
    /// Default `baton`.
    pub prefix: String,
    /// Partition count; `None` uses the recorded one (or the default for a
    /// new deployment). A value differing from the recorded one is a
    /// configuration error.
    pub partitions: Option<PartitionCount>,
    /// Request limits.
    pub limits: Limits,
    /// The clock every time decision reads.
    pub clock: SharedClock,
    /// How long one attempt to open a connection may take before the call
    /// answers [`Unavailable`](EngineError::Unavailable). Default 2 s;
    /// `?connect_timeout_ms=N` in the URL.
    pub connect_timeout: Duration,
    /// How long a command may wait for its reply before the call answers
    /// [`Unavailable`](EngineError::Unavailable) (whether it took effect is
    /// then unknown, as with any lost reply). Default 10 s;
    /// `?response_timeout_ms=N` in the URL.
    pub response_timeout: Duration,
}

impl ValkeyConfig {
    /// Defaults for a standalone server at `node` (a `redis://` URL).
    pub fn new(node: impl Into<String>) -> Self {
        ValkeyConfig {
            nodes: vec![node.into()],
            cluster: false,
            prefix: "baton".into(),
            partitions: None,
            limits: Limits::default(),
            clock: SystemClock::shared(),
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(10),
        }
    }

    /// Parses a backend URL:
    ///
    /// - `redis://[user:password@]host:port[/db]` or `valkey://…`: one
    ///   standalone server;
    /// - `redis+cluster://[user:password@]host1:port1,host2:port2,…` or
    ///   `valkey+cluster://…`: a cluster, reached through any of the seed
    ///   nodes listed;
    ///
    /// each with optional `?prefix=NAME&partitions=N`, and
    /// `connect_timeout_ms=N&response_timeout_ms=N` (see the fields).
    ///
    /// ```
    /// use baton_valkey::ValkeyConfig;
    /// let c = ValkeyConfig::from_url("redis://127.0.0.1:6379?prefix=shop&partitions=32").unwrap();
    /// assert_eq!(c.nodes, ["redis://127.0.0.1:6379"]);
    /// assert_eq!((c.prefix.as_str(), c.partitions.unwrap().get(), c.cluster), ("shop", 32, false));
    /// let c = ValkeyConfig::from_url("valkey+cluster://10.0.0.1:7000,10.0.0.2:7000").unwrap();
    /// assert_eq!(c.nodes, ["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"]);
    /// assert!(c.cluster);
    /// assert!(ValkeyConfig::from_url("postgres://x").is_err());
    /// ```
    pub fn from_url(url: &str) -> Result<Self> {
        let bad = |why: &str| EngineError::invalid("backend", url, why.to_owned());
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            bad("a Valkey URL looks like redis://host:port or redis+cluster://host1:port1,host2:port2")
        })?;
        let cluster = match scheme {
            "redis" | "valkey" => false,
            "redis+cluster" | "valkey+cluster" => true,
            _ => {
                return Err(bad(
                    "a Valkey URL starts with redis://, valkey://, redis+cluster:// or valkey+cluster://",
                ));
            }
        };
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (auth, hosts) = match rest.rsplit_once('@') {
            Some((a, h)) => (format!("{a}@"), h),
            None => (String::new(), rest),
        };
        let (hosts, db) = match hosts.split_once('/') {
            Some((h, d)) if !d.is_empty() => (h, format!("/{d}")),
            Some((h, _)) => (h, String::new()),
            None => (hosts, String::new()),
        };
        if cluster && !db.is_empty() {
            return Err(bad("a cluster has only database 0; drop the /db part"));
        }
        let nodes: Vec<String> = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| format!("redis://{auth}{h}{db}"))
            .collect();
        if nodes.is_empty() {
            return Err(bad("the URL names no host; use redis://127.0.0.1:6379"));
        }
        if !cluster && nodes.len() > 1 {
            return Err(bad(
                "several hosts need the cluster form redis+cluster://host1:port1,host2:port2",
            ));
        }
        let mut config = ValkeyConfig::new(String::new());
        config.nodes = nodes;
        config.cluster = cluster;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "prefix" => config.prefix = check_prefix(v)?,
                "partitions" => config.partitions = Some(partitions_option(v)?),
                "connect_timeout_ms" => {
                    config.connect_timeout = timeout_ms("connect_timeout_ms", v)?
                }
                "response_timeout_ms" => {
                    config.response_timeout = timeout_ms("response_timeout_ms", v)?
                }
                _ => {
                    return Err(EngineError::invalid(
                        "backend",
                        url,
                        format!(
                            "unknown Valkey URL option {k:?}; known: prefix, partitions, \
                             connect_timeout_ms, response_timeout_ms"
                        ),
                    ));
                }
            }
        }
        Ok(config)
    }

    /// Sets the clock.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the partition count.
    pub fn with_partitions(mut self, partitions: PartitionCount) -> Self {
        self.partitions = Some(partitions);
        self
    }

    /// Sets the key prefix (letters, digits, `_`, `-`, `.`; 1 to 64).
    pub fn with_prefix(mut self, prefix: &str) -> Result<Self> {
        self.prefix = check_prefix(prefix)?;
        Ok(self)
    }
}

fn timeout_ms(field: &'static str, v: &str) -> Result<Duration> {
    match v.parse::<u64>() {
        Ok(n) if (1..=3_600_000).contains(&n) => Ok(Duration::from_millis(n)),
        _ => Err(EngineError::invalid(
            field,
            v,
            "must be a number of milliseconds between 1 and 3600000",
        )),
    }
}

fn check_prefix(p: &str) -> Result<String> {
    let ok = !p.is_empty()
        && p.len() <= 64
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(p.to_owned())
    } else {
        Err(EngineError::invalid(
            "prefix",
            p,
            "a key prefix is 1 to 64 of A-Z a-z 0-9 _ - .",
        ))
    }
}
