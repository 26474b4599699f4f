//! Limits: `PUT`, `GET` and `DELETE /v1/limits…`.

use serde::{Deserialize, Serialize};

/// A rate of a limit: at most `count` claims of one key in any window of
/// `per_ms` milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateBody {
    /// Claims a window allows.
    pub count: u32,
    /// The window, in milliseconds.
    pub per_ms: u64,
}

/// The body of `PUT /v1/limits/{name}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitBody {
    /// The namespace whose executions it covers.
    pub namespace: String,
    /// The one lane it covers; absent or `null`: every lane.
    #[serde(default)]
    pub lane: Option<String>,
    /// What it counts executions under: `tag:<key>`, `kind` or `lane`.
    pub key: String,
    /// How many of one key may run at once; `null`: no cap.
    #[serde(default)]
    pub max_running: Option<u32>,
    /// How many claims of one key a window allows; `null`: no rate.
    #[serde(default)]
    pub rate: Option<RateBody>,
    /// Whether claims take turns between its keys; absent: `false`.
    #[serde(default)]
    pub fair: bool,
}

impl LimitBody {
    /// The limit named `name` this body describes; `InvalidInput` for a
    /// name, key or value Baton would not accept.
    pub fn limit(&self, name: &str) -> Result<baton_core::Limit, baton_core::EngineError> {
        let limit = baton_core::Limit {
            name: name.parse()?,
            namespace: self.namespace.parse()?,
            lane: self.lane.as_deref().map(str::parse).transpose()?,
            key: self.key.parse()?,
            max_running: self.max_running,
            rate: self.rate.map(|r| baton_core::Rate {
                count: r.count,
                per: std::time::Duration::from_millis(r.per_ms),
            }),
            fair: self.fair,
        };
        limit.check()?;
        Ok(limit)
    }
}

/// A limit: an item of `GET /v1/limits`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitAnswer {
    /// Its name.
    pub name: String,
    /// The namespace it covers.
    pub namespace: String,
    /// The lane it covers; `null`: every lane.
    pub lane: Option<String>,
    /// `tag:<key>`, `kind` or `lane`.
    pub key: String,
    /// The cap; `null`: none.
    pub max_running: Option<u32>,
    /// The rate; `null`: none.
    pub rate: Option<RateBody>,
    /// Whether claims take turns between its keys.
    #[serde(default)]
    pub fair: bool,
}

impl From<&baton_core::Limit> for LimitAnswer {
    fn from(limit: &baton_core::Limit) -> Self {
        LimitAnswer {
            name: limit.name.to_string(),
            namespace: limit.namespace.to_string(),
            lane: limit.lane.as_ref().map(ToString::to_string),
            key: limit.key.to_string(),
            max_running: limit.max_running,
            rate: limit.rate.map(|r| RateBody {
                count: r.count,
                per_ms: r.per.as_millis() as u64,
            }),
            fair: limit.fair,
        }
    }
}

impl LimitAnswer {
    /// The limit it names; `InvalidInput` for a value Baton would not
    /// accept.
    pub fn limit(&self) -> Result<baton_core::Limit, baton_core::EngineError> {
        LimitBody {
            namespace: self.namespace.clone(),
            lane: self.lane.clone(),
            key: self.key.clone(),
            max_running: self.max_running,
            rate: self.rate,
            fair: self.fair,
        }
        .limit(&self.name)
    }
}

/// The answer of `GET /v1/limits`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitsAnswer {
    /// The limits, by namespace, then name.
    pub items: Vec<LimitAnswer>,
}

/// The query of `GET /v1/limits`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsQuery {
    /// Only the limits of this namespace; absent: every namespace's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// The answer of `PUT` and `DELETE /v1/limits/{name}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitChangeAnswer {
    /// The limit's name.
    pub name: String,
    /// The limit now; `null` after a `DELETE`.
    pub limit: Option<LimitAnswer>,
    /// The limit it replaced or removed; `null` when there was none.
    pub previous: Option<LimitAnswer>,
}

/// One key of a limit: an item of `GET /v1/limits/{name}/usage`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitKeyAnswer {
    /// The key's value.
    pub key_value: String,
    /// Executions of it running now.
    pub running: u64,
    /// Claims of it in the rate's window ending now.
    pub window_claims: u32,
}

/// The answer of `GET /v1/limits/{name}/usage`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitUsageAnswer {
    /// The limit's name.
    pub name: String,
    /// Each key with runs or recent claims, by key value.
    pub items: Vec<LimitKeyAnswer>,
}

/// The query of `GET /v1/limits/{name}/usage`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitUsageQuery {
    /// The most keys to answer (default 100, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}
