//! Where the database lives and how it is opened: [`SqliteConfig`] and its URL form.

use std::path::PathBuf;
use std::time::Duration;

use baton_core::raw::url::partitions_option;
use baton_core::{EngineError, Limits, PartitionCount, Result, SharedClock, SystemClock};

/// Where the database lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A file, created if missing.
    File(PathBuf),
    /// A private in-memory database, gone when the backend is dropped.
    Memory,
}

/// Settings of a [`SqliteBackend`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SqliteConfig {
    /// The database.
    pub location: Location,
    /// Partition count; `None` uses the recorded one (or the default for a
    /// new database). A value differing from the recorded one is a
    /// configuration error.
    pub partitions: Option<PartitionCount>,
    /// Request limits.
    pub limits: Limits,
    /// The clock every time decision reads.
    pub clock: SharedClock,
    /// `FULL` (default) fsyncs every commit; `NORMAL` only at checkpoints.
    pub synchronous_full: bool,
    /// How long a writer waits for another process's lock before answering
    /// [`Contention`](EngineError::Contention). Default 10 s.
    pub busy_timeout: Duration,
}

impl SqliteConfig {
    /// Defaults for a database at `location`.
    pub fn new(location: Location) -> Self {
        SqliteConfig {
            location,
            partitions: None,
            limits: Limits::default(),
            clock: SystemClock::shared(),
            synchronous_full: true,
            busy_timeout: Duration::from_secs(10),
        }
    }

    /// Parses a backend URL: `sqlite://PATH` (relative), `sqlite:///ABS/PATH`,
    /// `sqlite::memory:`, with optional `?partitions=N&synchronous=full|normal`.
    ///
    /// ```
    /// use baton_sqlite::{Location, SqliteConfig};
    /// let c = SqliteConfig::from_url("sqlite://data/baton.db?partitions=32").unwrap();
    /// assert_eq!(c.location, Location::File("data/baton.db".into()));
    /// assert_eq!(c.partitions.unwrap().get(), 32);
    /// assert!(SqliteConfig::from_url("postgres://x").is_err());
    /// ```
    pub fn from_url(url: &str) -> Result<Self> {
        let rest = url.strip_prefix("sqlite:").ok_or_else(|| {
            EngineError::invalid(
                "backend",
                url,
                "a SQLite URL starts with sqlite:// (for example sqlite://baton.db or sqlite::memory:)",
            )
        })?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let location = match path {
            ":memory:" | "//:memory:" => Location::Memory,
            _ => {
                let p = path.strip_prefix("//").unwrap_or(path);
                if p.is_empty() {
                    return Err(EngineError::invalid(
                        "backend",
                        url,
                        "the SQLite URL names no file; use sqlite://baton.db",
                    ));
                }
                Location::File(PathBuf::from(p))
            }
        };
        let mut config = SqliteConfig::new(location);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "partitions" => config.partitions = Some(partitions_option(v)?),
                "synchronous" => {
                    config.synchronous_full = match v.to_ascii_lowercase().as_str() {
                        "full" => true,
                        "normal" => false,
                        _ => {
                            return Err(EngineError::invalid(
                                "synchronous",
                                v,
                                "must be full or normal",
                            ));
                        }
                    }
                }
                _ => {
                    return Err(EngineError::invalid(
                        "backend",
                        url,
                        format!("unknown SQLite URL option {k:?}; known: partitions, synchronous"),
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
}

#[cfg(test)]
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_forms() {
        assert_eq!(
            SqliteConfig::from_url("sqlite::memory:").unwrap().location,
            Location::Memory
        );
        assert_eq!(
            SqliteConfig::from_url("sqlite:///var/lib/baton.db")
                .unwrap()
                .location,
            Location::File("/var/lib/baton.db".into())
        );
        assert!(
            !SqliteConfig::from_url("sqlite://x.db?synchronous=normal")
                .unwrap()
                .synchronous_full
        );
        for bad in [
            "sqlite://",
            "sqlite://x.db?nope=1",
            "sqlite://x.db?partitions=0",
            "redis://x",
        ] {
            assert!(SqliteConfig::from_url(bad).is_err(), "{bad}");
        }
    }
}
