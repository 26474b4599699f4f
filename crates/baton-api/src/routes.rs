//! The routes of the API: method, path template and OpenAPI operation id.
//!
//! The server builds its router from [`Route::ALL`] (one handler per
//! variant, matched exhaustively), and a test compares the list with
//! `/v1/openapi.json`; a route added here without a handler or a document
//! entry does not build or does not pass.

use std::fmt;

/// An HTTP method the API uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// `GET`: reads.
    Get,
    /// `POST`: most changes.
    Post,
    /// `PUT`: setting a value at a known place (status, a state key).
    Put,
    /// `DELETE`: removing one (a state key).
    Delete,
}

impl Method {
    /// The method as written in a request line: `GET`, `POST`, `PUT`,
    /// `DELETE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One route of the API.
///
/// ```
/// use baton_api::{Method, Route};
/// assert_eq!(Route::Describe.method(), Method::Get);
/// assert_eq!(Route::Describe.path(), "/v1/executions/{id}");
/// assert_eq!(Route::Cancel.path_with("%7Bp%3A3%7D-x"), "/v1/executions/%7Bp%3A3%7D-x/cancel");
/// ```
///
/// Deliberately exhaustive: a new route is a breaking change for every
/// `match` on it, which is how the server is forced to give it a handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Route {
    /// `POST /v1/executions`: submit one.
    Submit,
    /// `POST /v1/executions/batch`: submit many at once.
    SubmitBatch,
    /// `GET /v1/executions`: list, filtered, with a cursor.
    List,
    /// `GET /v1/executions/{id}`: the snapshot.
    Describe,
    /// `POST /v1/executions/describe`: the snapshots of many ids at once.
    DescribeMany,
    /// `POST /v1/executions/bulk/cancel`: cancel what a filter matches.
    BulkCancel,
    /// `POST /v1/executions/bulk/replay`: replay what a filter matches.
    BulkReplay,
    /// `POST /v1/executions/bulk/delete`: delete what a filter matches.
    BulkDelete,
    /// `DELETE /v1/executions/{id}`: delete one (with its descendants).
    Delete,
    /// `GET /v1/executions/{id}/events`: its history.
    Events,
    /// `PUT /v1/namespaces/{namespace}/history`: turn the history of a
    /// namespace on or off.
    SetHistory,
    /// `GET /v1/namespaces/{namespace}/history`: whether it is on.
    History,
    /// `PUT /v1/retention/{namespace}`: keep a namespace's (or a lane's)
    /// finished executions for a given time.
    SetRetention,
    /// `DELETE /v1/retention/{namespace}`: remove such a rule.
    RemoveRetention,
    /// `GET /v1/retention`: every retention rule.
    Retention,
    /// `PUT /v1/limits/{name}`: set a limit (a cap and/or a rate per key).
    SetLimit,
    /// `DELETE /v1/limits/{name}`: remove a limit.
    RemoveLimit,
    /// `GET /v1/limits`: the limits (of one namespace, or all).
    Limits,
    /// `GET /v1/limits/{name}/usage`: how the keys of a limit stand now.
    LimitUsage,
    /// `POST /v1/executions/{id}/cancel`: cancel it, and by default its
    /// non-terminal descendants.
    Cancel,
    /// `GET /v1/executions/{id}/children`: its children, with a cursor.
    Children,
    /// `GET /v1/executions/{id}/tree`: the flow it belongs to, from its root.
    Tree,
    /// `POST /v1/lanes/{lane}/claim`: claim work, optionally waiting.
    Claim,
    /// `POST /v1/executions/{id}/complete`.
    Complete,
    /// `POST /v1/executions/{id}/fail`.
    Fail,
    /// `POST /v1/executions/{id}/wait-children`: hand the lease back until
    /// the execution's children have finished.
    WaitChildren,
    /// `POST /v1/executions/{id}/release`: hand the lease back without
    /// consuming an attempt (a worker shutting down).
    Release,
    /// `POST /v1/executions/{id}/suspend`: wait for signals or a timer
    /// without a worker.
    Suspend,
    /// `POST /v1/executions/{id}/signals/{name}`: deliver a signal; the
    /// API token or the waitpoint's token authorises it.
    Signal,
    /// `GET /v1/executions/{id}/signals`: the signals it holds.
    Signals,
    /// `POST /v1/executions/{id}/steps/{name}`: record a step under the
    /// lease.
    RecordStep,
    /// `GET /v1/executions/{id}/steps`: the steps it recorded.
    Steps,
    /// `PUT /v1/executions/{id}/status`: set the custom status under the
    /// lease.
    SetStatus,
    /// `POST /v1/executions/{id}/progress`: append a progress frame under
    /// the lease.
    AppendProgress,
    /// `GET /v1/executions/{id}/progress`: frames after a cursor, with a
    /// long-poll.
    Progress,
    /// `PUT /v1/executions/{id}/state/{key}`: set a state key under the
    /// lease.
    SetState,
    /// `DELETE /v1/executions/{id}/state/{key}`: clear a state key under
    /// the lease.
    ClearState,
    /// `GET /v1/executions/{id}/state`: the key-value state.
    State,
    /// `PUT /v1/executions/{id}/priority`: change the priority of an
    /// unfinished execution.
    SetPriority,
    /// `PUT /v1/executions/{id}/tags/{key}`: set a tag.
    SetTag,
    /// `DELETE /v1/executions/{id}/tags/{key}`: remove a tag.
    RemoveTag,
    /// `POST /v1/executions/{id}/revoke`: end a running execution's
    /// attempt as an expired lease would.
    Revoke,
    /// `GET /v1/workers`: the live workers of a namespace.
    Workers,
    /// `GET /v1/executions/{id}/explain`: why it is not running, in words.
    Explain,
    /// `POST /v1/executions/{id}/pause`: pause it, and by default its
    /// descendants.
    Pause,
    /// `POST /v1/executions/{id}/resume`: resume it, and by default its
    /// paused descendants.
    Resume,
    /// `POST /v1/executions/{id}/replay`: run a failed, cancelled, expired
    /// or skipped execution again with a fresh attempt budget.
    Replay,
    /// `POST /v1/lanes/{lane}/pause`: claims stop taking the lane's work.
    PauseLane,
    /// `POST /v1/lanes/{lane}/resume`: claims take the lane's work again.
    ResumeLane,
    /// `GET /v1/lanes`: the lanes of a namespace, paused or not, with
    /// counts.
    Lanes,
    /// `POST /v1/leases/renew`: renew every lease of a worker.
    Renew,
    /// `GET /v1/stats`: counts per lane and state.
    Stats,
    /// `GET /healthz`: liveness; the one route without a token.
    Health,
    /// `GET /metrics`: Prometheus text.
    Metrics,
    /// `GET /v1/openapi.json`: the OpenAPI document.
    OpenApi,
}

impl Route {
    /// Every route, in the order of the contract.
    pub const ALL: [Route; 55] = [
        Route::Submit,
        Route::SubmitBatch,
        Route::List,
        Route::Describe,
        Route::DescribeMany,
        Route::BulkCancel,
        Route::BulkReplay,
        Route::BulkDelete,
        Route::Delete,
        Route::Events,
        Route::SetHistory,
        Route::History,
        Route::SetRetention,
        Route::RemoveRetention,
        Route::Retention,
        Route::SetLimit,
        Route::RemoveLimit,
        Route::Limits,
        Route::LimitUsage,
        Route::Cancel,
        Route::Children,
        Route::Tree,
        Route::Claim,
        Route::Complete,
        Route::Fail,
        Route::WaitChildren,
        Route::Release,
        Route::Suspend,
        Route::Signal,
        Route::Signals,
        Route::RecordStep,
        Route::Steps,
        Route::SetStatus,
        Route::AppendProgress,
        Route::Progress,
        Route::SetState,
        Route::ClearState,
        Route::State,
        Route::SetPriority,
        Route::SetTag,
        Route::RemoveTag,
        Route::Revoke,
        Route::Workers,
        Route::Explain,
        Route::Pause,
        Route::Resume,
        Route::Replay,
        Route::PauseLane,
        Route::ResumeLane,
        Route::Lanes,
        Route::Renew,
        Route::Stats,
        Route::Health,
        Route::Metrics,
        Route::OpenApi,
    ];

    /// The route's method.
    pub fn method(self) -> Method {
        match self {
            Route::List
            | Route::Describe
            | Route::Children
            | Route::Tree
            | Route::Signals
            | Route::Steps
            | Route::Progress
            | Route::State
            | Route::Workers
            | Route::Explain
            | Route::Events
            | Route::History
            | Route::Retention
            | Route::Limits
            | Route::LimitUsage
            | Route::Lanes
            | Route::Stats
            | Route::Health
            | Route::Metrics
            | Route::OpenApi => Method::Get,
            Route::Submit
            | Route::SubmitBatch
            | Route::DescribeMany
            | Route::BulkCancel
            | Route::BulkReplay
            | Route::BulkDelete
            | Route::Cancel
            | Route::Claim
            | Route::Complete
            | Route::Fail
            | Route::WaitChildren
            | Route::Release
            | Route::Suspend
            | Route::Signal
            | Route::RecordStep
            | Route::AppendProgress
            | Route::Revoke
            | Route::Pause
            | Route::Resume
            | Route::Replay
            | Route::PauseLane
            | Route::ResumeLane
            | Route::Renew => Method::Post,
            Route::SetStatus
            | Route::SetState
            | Route::SetPriority
            | Route::SetTag
            | Route::SetHistory
            | Route::SetRetention
            | Route::SetLimit => Method::Put,
            Route::ClearState
            | Route::RemoveTag
            | Route::Delete
            | Route::RemoveRetention
            | Route::RemoveLimit => Method::Delete,
        }
    }

    /// The path template; a parameter is written `{name}`.
    pub fn path(self) -> &'static str {
        match self {
            Route::Submit | Route::List => "/v1/executions",
            Route::SubmitBatch => "/v1/executions/batch",
            Route::Describe | Route::Delete => "/v1/executions/{id}",
            Route::DescribeMany => "/v1/executions/describe",
            Route::BulkCancel => "/v1/executions/bulk/cancel",
            Route::BulkReplay => "/v1/executions/bulk/replay",
            Route::BulkDelete => "/v1/executions/bulk/delete",
            Route::Cancel => "/v1/executions/{id}/cancel",
            Route::Children => "/v1/executions/{id}/children",
            Route::Tree => "/v1/executions/{id}/tree",
            Route::Claim => "/v1/lanes/{lane}/claim",
            Route::Complete => "/v1/executions/{id}/complete",
            Route::Fail => "/v1/executions/{id}/fail",
            Route::WaitChildren => "/v1/executions/{id}/wait-children",
            Route::Release => "/v1/executions/{id}/release",
            Route::Suspend => "/v1/executions/{id}/suspend",
            Route::Signal => "/v1/executions/{id}/signals/{name}",
            Route::Signals => "/v1/executions/{id}/signals",
            Route::RecordStep => "/v1/executions/{id}/steps/{name}",
            Route::Steps => "/v1/executions/{id}/steps",
            Route::SetStatus => "/v1/executions/{id}/status",
            Route::AppendProgress | Route::Progress => "/v1/executions/{id}/progress",
            Route::SetState | Route::ClearState => "/v1/executions/{id}/state/{key}",
            Route::State => "/v1/executions/{id}/state",
            Route::SetPriority => "/v1/executions/{id}/priority",
            Route::SetTag | Route::RemoveTag => "/v1/executions/{id}/tags/{key}",
            Route::Revoke => "/v1/executions/{id}/revoke",
            Route::Workers => "/v1/workers",
            Route::Explain => "/v1/executions/{id}/explain",
            Route::Events => "/v1/executions/{id}/events",
            Route::SetHistory | Route::History => "/v1/namespaces/{namespace}/history",
            Route::SetRetention | Route::RemoveRetention => "/v1/retention/{namespace}",
            Route::Retention => "/v1/retention",
            Route::SetLimit | Route::RemoveLimit => "/v1/limits/{name}",
            Route::Limits => "/v1/limits",
            Route::LimitUsage => "/v1/limits/{name}/usage",
            Route::Pause => "/v1/executions/{id}/pause",
            Route::Resume => "/v1/executions/{id}/resume",
            Route::Replay => "/v1/executions/{id}/replay",
            Route::PauseLane => "/v1/lanes/{lane}/pause",
            Route::ResumeLane => "/v1/lanes/{lane}/resume",
            Route::Lanes => "/v1/lanes",
            Route::Renew => "/v1/leases/renew",
            Route::Stats => "/v1/stats",
            Route::Health => "/healthz",
            Route::Metrics => "/metrics",
            Route::OpenApi => "/v1/openapi.json",
        }
    }

    /// The route's `operationId` in the OpenAPI document.
    pub fn operation_id(self) -> &'static str {
        match self {
            Route::Submit => "submit",
            Route::SubmitBatch => "submitBatch",
            Route::List => "list",
            Route::Describe => "describe",
            Route::DescribeMany => "describeMany",
            Route::BulkCancel => "bulkCancel",
            Route::BulkReplay => "bulkReplay",
            Route::BulkDelete => "bulkDelete",
            Route::Delete => "delete",
            Route::Events => "events",
            Route::SetHistory => "setHistory",
            Route::History => "history",
            Route::SetRetention => "setRetention",
            Route::RemoveRetention => "removeRetention",
            Route::Retention => "retention",
            Route::SetLimit => "setLimit",
            Route::RemoveLimit => "removeLimit",
            Route::Limits => "limits",
            Route::LimitUsage => "limitUsage",
            Route::Cancel => "cancel",
            Route::Children => "children",
            Route::Tree => "tree",
            Route::Claim => "claim",
            Route::Complete => "complete",
            Route::Fail => "fail",
            Route::WaitChildren => "waitChildren",
            Route::Release => "release",
            Route::Suspend => "suspend",
            Route::Signal => "signal",
            Route::Signals => "signals",
            Route::RecordStep => "recordStep",
            Route::Steps => "steps",
            Route::SetStatus => "setStatus",
            Route::AppendProgress => "appendProgress",
            Route::Progress => "progress",
            Route::SetState => "setState",
            Route::ClearState => "clearState",
            Route::State => "state",
            Route::SetPriority => "setPriority",
            Route::SetTag => "setTag",
            Route::RemoveTag => "removeTag",
            Route::Revoke => "revoke",
            Route::Workers => "workers",
            Route::Explain => "explain",
            Route::Pause => "pause",
            Route::Resume => "resume",
            Route::Replay => "replay",
            Route::PauseLane => "pauseLane",
            Route::ResumeLane => "resumeLane",
            Route::Lanes => "lanes",
            Route::Renew => "renew",
            Route::Stats => "stats",
            Route::Health => "health",
            Route::Metrics => "metrics",
            Route::OpenApi => "openapi",
        }
    }

    /// False for `/healthz`, and for the signal route, which checks the
    /// API token or a waitpoint token itself: when the server has an API
    /// token, every other route requires it.
    pub fn requires_token(self) -> bool {
        !matches!(self, Route::Health | Route::Signal)
    }

    /// The path with its first parameter replaced by `value`, which the
    /// caller has already percent-encoded
    /// ([`encode_component`](crate::encode_component)). A route without a
    /// parameter answers its path unchanged.
    pub fn path_with(self, value: &str) -> String {
        self.path_with_all(&[value])
    }

    /// The path with its parameters replaced by `values`, in order (each
    /// already percent-encoded); parameters without a value stay as
    /// written.
    pub fn path_with_all(self, values: &[&str]) -> String {
        let mut path = self.path().to_owned();
        for value in values {
            match (path.find('{'), path.find('}')) {
                (Some(open), Some(close)) if open < close => {
                    path = format!("{}{value}{}", &path[..open], &path[close + 1..]);
                }
                _ => break,
            }
        }
        path
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method(), self.path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_listed_once() {
        let mut seen: Vec<(Method, &str)> =
            Route::ALL.iter().map(|r| (r.method(), r.path())).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), Route::ALL.len());
    }

    #[test]
    fn parameters_are_filled() {
        assert_eq!(Route::Claim.path_with("emails"), "/v1/lanes/emails/claim");
        assert_eq!(Route::Describe.path_with("x"), "/v1/executions/x");
        assert_eq!(Route::Tree.path_with("x"), "/v1/executions/x/tree");
        assert_eq!(Route::Children.method(), Method::Get);
        assert_eq!(Route::Stats.path_with("x"), "/v1/stats");
        assert_eq!(Route::Health.to_string(), "GET /healthz");
        assert_eq!(
            Route::Signal.path_with_all(&["x", "approval"]),
            "/v1/executions/x/signals/approval"
        );
    }
}
