//! Where the schema lives and how it is reached: [`PostgresConfig`] and its URL form.

use std::time::Duration;

use baton_core::raw::url::partitions_option;
use baton_core::{EngineError, Limits, PartitionCount, Result, SharedClock, SystemClock};

use crate::{DEFAULT_SCHEMA, migrate};

/// Settings of a [`PostgresBackend`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PostgresConfig {
    /// Connection URL understood by the driver (`postgres://user:pass@host:port/db`
    /// and libpq options such as `sslmode`), without Baton's own options.
    pub url: String,
    /// The schema holding Baton's tables; created and migrated on open.
    /// Several deployments may share one database in different schemas.
    pub schema: String,
    /// Partition count; `None` uses the recorded one (or the default for a
    /// new schema). A value differing from the recorded one is a
    /// configuration error.
    pub partitions: Option<PartitionCount>,
    /// Request limits.
    pub limits: Limits,
    /// The clock every time decision reads.
    pub clock: SharedClock,
    /// Most connections the pool opens. Three more come on top, each opened
    /// when first needed: two `LISTEN` connections (wake-ups, change
    /// notices) and the complete combiner's own. Default 10.
    pub max_connections: u32,
    /// How long a call waits for a connection — a free one, or a new one
    /// while the server cannot be reached — before answering
    /// [`Unavailable`](EngineError::Unavailable). Default 5 s, so a caller
    /// hears "unavailable, retry" promptly while the server is down;
    /// `?acquire_timeout_ms=N` in the URL.
    pub acquire_timeout: Duration,
}

impl PostgresConfig {
    /// Defaults for the database at `url` (taken as is), schema
    /// [`DEFAULT_SCHEMA`].
    pub fn new(url: impl Into<String>) -> Self {
        PostgresConfig {
            url: url.into(),
            schema: DEFAULT_SCHEMA.to_owned(),
            partitions: None,
            limits: Limits::default(),
            clock: SystemClock::shared(),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
        }
    }

    /// Parses a backend URL: `postgres://` or `postgresql://`, with Baton's
    /// options `schema=NAME`, `partitions=N` and `max_connections=N` in the
    /// query; every other option is passed to the driver.
    ///
    /// ```
    /// use baton_postgres::PostgresConfig;
    /// let c = PostgresConfig::from_url(
    ///     "postgres://baton@db:5432/jobs?schema=shop&partitions=32&sslmode=prefer",
    /// )
    /// .unwrap();
    /// assert_eq!(c.schema, "shop");
    /// assert_eq!(c.partitions.unwrap().get(), 32);
    /// assert_eq!(c.url, "postgres://baton@db:5432/jobs?sslmode=prefer");
    /// assert!(PostgresConfig::from_url("sqlite://x.db").is_err());
    /// assert!(PostgresConfig::from_url("postgres://db/x?schema=Bad-Name").is_err());
    /// ```
    pub fn from_url(url: &str) -> Result<Self> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(EngineError::invalid(
                "backend",
                url,
                "a Postgres URL starts with postgres:// (for example postgres://user@localhost/db?schema=baton)",
            ));
        }
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut config = PostgresConfig::new(base);
        let mut passed = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "schema" => {
                    migrate::check_schema(v)?;
                    config.schema = v.to_owned();
                }
                "partitions" => config.partitions = Some(partitions_option(v)?),
                "acquire_timeout_ms" => {
                    config.acquire_timeout = v
                        .parse::<u64>()
                        .ok()
                        .filter(|n| (1..=3_600_000).contains(n))
                        .map(Duration::from_millis)
                        .ok_or_else(|| {
                            EngineError::invalid(
                                "acquire_timeout_ms",
                                v,
                                "must be a number of milliseconds between 1 and 3600000",
                            )
                        })?;
                }
                "max_connections" => {
                    config.max_connections = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=1000).contains(n))
                        .ok_or_else(|| {
                            EngineError::invalid(
                                "max_connections",
                                v,
                                "must be a number between 1 and 1000",
                            )
                        })?;
                }
                _ => passed.push(pair),
            }
        }
        if !passed.is_empty() {
            config.url = format!("{base}?{}", passed.join("&"));
        }
        Ok(config)
    }

    /// Sets the schema.
    pub fn with_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
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

    /// Sets the pool size.
    pub fn with_max_connections(mut self, max_connections: u32) -> Self {
        self.max_connections = max_connections;
        self
    }
}

#[cfg(test)]
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_options_are_split_from_driver_options() {
        let c = PostgresConfig::from_url("postgresql://u@h/db").unwrap();
        assert_eq!(c.schema, DEFAULT_SCHEMA);
        assert_eq!(c.url, "postgresql://u@h/db");
        assert!(c.partitions.is_none());
        let c = PostgresConfig::from_url("postgres://u@h/db?max_connections=4&schema=a_1").unwrap();
        assert_eq!(c.max_connections, 4);
        assert_eq!(c.schema, "a_1");
        for bad in [
            "postgres://h/db?partitions=0",
            "postgres://h/db?partitions=x",
            "postgres://h/db?schema=",
            "postgres://h/db?schema=pg_x",
            "postgres://h/db?schema=9a",
            "postgres://h/db?max_connections=0",
            "redis://x",
        ] {
            assert!(PostgresConfig::from_url(bad).is_err(), "{bad}");
        }
    }
}
