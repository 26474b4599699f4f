//! Listing: `GET /v1/executions`.

use baton_core::{
    EngineError, ExecutionId, IdempotencyKey, Kind, Lane, ListCursor, ListFilter, ListPage,
    Namespace, Page, Result, State, TagKey, Timestamp,
};
use serde::{Deserialize, Serialize};

use crate::{Snapshot, encode_component, namespace_or_default};

/// The query of `GET /v1/executions`. Values are read as text and parsed by
/// [`into_request`](Self::into_request), so that each error names its
/// parameter.
///
/// ```
/// use baton_api::ListQuery;
/// let q = ListQuery { lane: Some("emails".into()), tag: Some("customer:42".into()), ..Default::default() };
/// let (filter, page) = q.into_request().unwrap();
/// assert_eq!(filter.namespace.as_str(), "default");
/// assert_eq!(filter.tag.unwrap().1, "42");
/// assert_eq!(page.limit, 100);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Namespace; `default` when absent.
    pub namespace: Option<String>,
    /// Only this lane.
    pub lane: Option<String>,
    /// Only these states, comma-separated (`failed,expired`).
    pub state: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only executions with this tag, written `KEY:VALUE` (split at the
    /// first colon, so the key cannot hold one: use `tag_key` and
    /// `tag_value` for such keys).
    pub tag: Option<String>,
    /// Only executions with a tag of this key, which may hold colons; with
    /// `tag_value`, instead of `tag`.
    #[serde(default)]
    pub tag_key: Option<String>,
    /// The value of the tag named by `tag_key`.
    #[serde(default)]
    pub tag_value: Option<String>,
    /// Only children of this execution.
    #[serde(default)]
    pub parent: Option<String>,
    /// Only executions created strictly after this instant (RFC 3339).
    #[serde(default)]
    pub created_after: Option<String>,
    /// Only executions created strictly before this instant.
    #[serde(default)]
    pub created_before: Option<String>,
    /// Only executions that finished strictly after this instant.
    #[serde(default)]
    pub finished_after: Option<String>,
    /// Only executions that finished strictly before this instant.
    #[serde(default)]
    pub finished_before: Option<String>,
    /// Only the execution submitted with this idempotency key (a business
    /// id; with `lane`, at most one).
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Page size, 1 to 1000; 100 when absent.
    pub limit: Option<String>,
    /// `next_cursor` of the previous page; empty or absent for the first.
    pub cursor: Option<String>,
}

impl ListQuery {
    /// The query asking for `page` of `filter`.
    pub fn from_request(filter: &ListFilter, page: Page) -> Self {
        ListQuery {
            namespace: Some(filter.namespace.to_string()),
            lane: filter.lane.as_ref().map(|l| l.to_string()),
            state: (!filter.states.is_empty()).then(|| {
                let names: Vec<&str> = filter.states.iter().map(|s| s.as_str()).collect();
                names.join(",")
            }),
            kind: filter.kind.as_ref().map(|k| k.to_string()),
            tag: filter
                .tag
                .as_ref()
                .filter(|(k, _)| !k.as_str().contains(':'))
                .map(|(k, v)| format!("{k}:{v}")),
            tag_key: filter
                .tag
                .as_ref()
                .filter(|(k, _)| k.as_str().contains(':'))
                .map(|(k, _)| k.to_string()),
            tag_value: filter
                .tag
                .as_ref()
                .filter(|(k, _)| k.as_str().contains(':'))
                .map(|(_, v)| v.clone()),
            parent: filter.parent.as_ref().map(|p| p.to_string()),
            created_after: filter.created_after.map(|t| t.to_string()),
            created_before: filter.created_before.map(|t| t.to_string()),
            finished_after: filter.finished_after.map(|t| t.to_string()),
            finished_before: filter.finished_before.map(|t| t.to_string()),
            idempotency_key: filter.idempotency_key.as_ref().map(|k| k.to_string()),
            limit: Some(page.limit.to_string()),
            cursor: page.cursor.map(|c| c.to_string()),
        }
    }

    /// The filter and page asked for.
    ///
    /// # Errors
    /// `InvalidInput` naming the parameter at fault.
    pub fn into_request(self) -> Result<(ListFilter, Page)> {
        let ns = self.namespace.map(Namespace::new).transpose()?;
        let mut filter = ListFilter::namespace(namespace_or_default(ns)?);
        if let Some(l) = self.lane {
            filter = filter.with_lane(Lane::new(l)?);
        }
        if let Some(s) = self.state {
            filter = filter.with_states(parse_states(&s)?);
        }
        let instant = |field: &'static str, text: Option<String>| -> Result<Option<Timestamp>> {
            text.map(|t| {
                t.parse::<Timestamp>().map_err(|_| {
                    EngineError::invalid(
                        field,
                        t,
                        "an RFC 3339 instant such as 2030-01-01T00:00:00Z",
                    )
                })
            })
            .transpose()
        };
        filter = filter
            .with_created(
                instant("created_after", self.created_after)?,
                instant("created_before", self.created_before)?,
            )
            .with_finished(
                instant("finished_after", self.finished_after)?,
                instant("finished_before", self.finished_before)?,
            );
        if let Some(k) = self.idempotency_key {
            filter = filter.with_idempotency_key(IdempotencyKey::new(k)?);
        }
        if let Some(k) = self.kind {
            filter = filter.with_kind(Kind::new(k)?);
        }
        if let Some(p) = self.parent {
            filter = filter.with_parent(p.parse::<ExecutionId>()?);
        }
        match (self.tag, self.tag_key, self.tag_value) {
            (None, None, None) => {}
            (Some(t), None, None) => {
                // Tag values are free text, keys cannot hold a colon in this
                // form: split at the first one.
                let Some((k, v)) = t.split_once(':') else {
                    return Err(EngineError::invalid(
                        "tag",
                        t,
                        "write it as KEY:VALUE, for example tag=customer:42 (or tag_key=KEY&tag_value=VALUE)",
                    ));
                };
                filter = filter.with_tag(TagKey::new(k)?, v);
            }
            (None, Some(k), Some(v)) => filter = filter.with_tag(TagKey::new(k)?, v),
            (Some(t), _, _) => {
                return Err(EngineError::invalid(
                    "tag",
                    t,
                    "give either tag=KEY:VALUE or tag_key and tag_value, not both",
                ));
            }
            (None, k, _) => {
                return Err(EngineError::invalid(
                    "tag",
                    k.unwrap_or_default(),
                    "tag_key and tag_value go together: give both, or write tag=KEY:VALUE",
                ));
            }
        }
        let limit = match self.limit {
            None => Page::DEFAULT_LIMIT,
            Some(l) => l.parse::<usize>().map_err(|_| {
                EngineError::invalid(
                    "limit",
                    &l,
                    format!("must be a whole number between 1 and {}", Page::MAX_LIMIT),
                )
            })?,
        };
        let cursor = self
            .cursor
            .filter(|c| !c.is_empty())
            .map(|c| c.parse::<ListCursor>())
            .transpose()?;
        let page = Page { limit, cursor };
        page.validate()?;
        Ok((filter, page))
    }

    /// The query string (without `?`), values percent-encoded.
    pub fn to_query_string(&self) -> String {
        let pairs = [
            ("namespace", &self.namespace),
            ("lane", &self.lane),
            ("state", &self.state),
            ("kind", &self.kind),
            ("tag", &self.tag),
            ("tag_key", &self.tag_key),
            ("tag_value", &self.tag_value),
            ("parent", &self.parent),
            ("created_after", &self.created_after),
            ("created_before", &self.created_before),
            ("finished_after", &self.finished_after),
            ("finished_before", &self.finished_before),
            ("idempotency_key", &self.idempotency_key),
            ("limit", &self.limit),
            ("cursor", &self.cursor),
        ];
        let parts: Vec<String> = pairs
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode_component(v))))
            .collect();
        parts.join("&")
    }
}

/// The states of a `state` parameter, comma-separated. An empty list is
/// invalid: it would otherwise match every state.
///
/// ```
/// use baton_core::State;
/// assert_eq!(baton_api::parse_states("failed, expired").unwrap(), vec![State::Failed, State::Expired]);
/// assert!(baton_api::parse_states(" , ").is_err());
/// ```
pub fn parse_states(text: &str) -> Result<Vec<State>> {
    let states = text
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| n.parse::<State>())
        .collect::<Result<Vec<_>>>()?;
    if states.is_empty() {
        return Err(EngineError::invalid(
            "state",
            text,
            "name at least one state (waiting, failed, …), or leave the filter out",
        ));
    }
    Ok(states)
}

/// The answer of `GET /v1/executions`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ListAnswer {
    /// Matching executions, oldest first.
    pub items: Vec<Snapshot>,
    /// Pass as `cursor` for the next page; `null` when none may follow.
    pub next_cursor: Option<String>,
}

impl From<&ListPage> for ListAnswer {
    fn from(page: &ListPage) -> Self {
        ListAnswer {
            items: page.items.iter().map(Snapshot::from).collect(),
            next_cursor: page.next_cursor.map(|c| c.to_string()),
        }
    }
}

impl ListAnswer {
    /// The `baton-core` page this answer holds.
    ///
    /// # Errors
    /// `InvalidInput` for a cursor that is not one Baton hands out.
    pub fn into_page(self) -> Result<ListPage> {
        Ok(ListPage {
            items: self
                .items
                .into_iter()
                .map(Snapshot::into_snapshot)
                .collect::<Result<_>>()?,
            next_cursor: self.next_cursor.map(|c| c.parse()).transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn list_queries_round_trip() {
        let filter = ListFilter::namespace(Namespace::new("n").unwrap())
            .with_state(State::Failed)
            .with_tag(TagKey::new("customer").unwrap(), "a b:c");
        let q = ListQuery::from_request(&filter, Page::first(5));
        assert_eq!(
            q.to_query_string(),
            "namespace=n&state=failed&tag=customer%3Aa%20b%3Ac&limit=5"
        );
        let (f, p) = q.into_request().unwrap();
        assert_eq!((f, p.limit), (filter, 5));
    }

    /// Every filter survives the trip through a query string (what the
    /// SDK sends): a filter left out here would be dropped silently.
    #[test]
    fn every_filter_round_trips_through_the_query_string() {
        let t = |ms| Some(baton_core::Timestamp::from_millis(ms));
        let filter = ListFilter::namespace(Namespace::new("n").unwrap())
            .with_lane(Lane::new("l").unwrap())
            .with_states([State::Failed, State::Expired])
            .with_kind(Kind::new("k").unwrap())
            .with_tag(TagKey::new("customer").unwrap(), "42")
            .with_parent(ExecutionId::generate(baton_core::PartitionCount::DEFAULT))
            .with_created(t(1_900_000_000_000), t(1_900_000_000_500))
            .with_finished(t(1_900_000_001_000), t(1_900_000_001_500))
            .with_idempotency_key(baton_core::IdempotencyKey::new("order 7").unwrap());
        let page = Page::first(7);
        let text = ListQuery::from_request(&filter, page).to_query_string();
        let q: ListQuery = serde_urlencoded_like(&text);
        let (f, p) = q.into_request().unwrap();
        assert_eq!((f, p.limit), (filter, 7));
    }

    /// Parses `a=b&c=d` with percent-decoding, as the server's query
    /// extractor does.
    fn serde_urlencoded_like(text: &str) -> ListQuery {
        let mut map = serde_json::Map::new();
        for pair in text.split('&') {
            let (k, v) = pair.split_once('=').unwrap();
            let v = percent_decode(v);
            map.insert(k.to_owned(), serde_json::Value::String(v));
        }
        serde_json::from_value(serde_json::Value::Object(map)).unwrap()
    }

    fn percent_decode(v: &str) -> String {
        let bytes = v.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_parent_filter_reaches_the_query_string() {
        let parent = ExecutionId::generate(baton_core::PartitionCount::DEFAULT);
        let filter =
            ListFilter::namespace(Namespace::new("n").unwrap()).with_parent(parent.clone());
        let q = ListQuery::from_request(&filter, Page::first(5));
        assert_eq!(
            q.to_query_string(),
            format!(
                "namespace=n&parent={}&limit=5",
                encode_component(&parent.to_string())
            )
        );
        let (f, _) = q.into_request().unwrap();
        assert_eq!(f.parent, Some(parent));
    }

    #[test]
    fn a_tag_key_with_a_colon_has_its_own_parameters() {
        let filter = ListFilter::namespace(Namespace::new("n").unwrap())
            .with_tag(TagKey::new("app:env").unwrap(), "prod:eu");
        let q = ListQuery::from_request(&filter, Page::first(5));
        assert_eq!(
            q.to_query_string(),
            "namespace=n&tag_key=app%3Aenv&tag_value=prod%3Aeu&limit=5"
        );
        let (f, _) = q.into_request().unwrap();
        assert_eq!(f, filter);
        for bad in [
            ListQuery {
                tag_key: Some("a:b".into()),
                ..Default::default()
            },
            ListQuery {
                tag_value: Some("v".into()),
                ..Default::default()
            },
            ListQuery {
                tag: Some("a:b".into()),
                tag_key: Some("a".into()),
                tag_value: Some("b".into()),
                ..Default::default()
            },
        ] {
            assert!(bad.into_request().is_err());
        }
    }
}

/// The body of `POST /v1/executions/describe`.
///
/// ```
/// let body: baton_api::DescribeManyBody =
///     serde_json::from_str(r#"{"ids": ["{p:1}-019ab1c2-7d3e-7f00-8a1b-2c3d4e5f6071"]}"#).unwrap();
/// assert_eq!(body.into_ids().unwrap().len(), 1);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DescribeManyBody {
    /// The execution ids, at most 1,000.
    pub ids: Vec<String>,
}

impl DescribeManyBody {
    /// The ids asked for, in order.
    ///
    /// # Errors
    /// `InvalidInput` naming the first malformed id and its place, or too
    /// many ids.
    pub fn into_ids(self) -> Result<Vec<ExecutionId>> {
        if self.ids.len() > Page::MAX_LIMIT {
            return Err(EngineError::invalid(
                "ids",
                self.ids.len(),
                format!("at most {} ids per call", Page::MAX_LIMIT),
            ));
        }
        self.ids
            .iter()
            .enumerate()
            .map(|(i, id)| id.parse::<ExecutionId>().map_err(|e| e.in_batch(i)))
            .collect()
    }
}

/// The answer of `POST /v1/executions/describe`: one item per id asked
/// for, in order, `null` for an id that names no execution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DescribeManyAnswer {
    /// The snapshots, in the order of the ids.
    pub items: Vec<Option<Snapshot>>,
}

/// The filter of a bulk call: the list filters (as `GET /v1/executions`
/// takes them) and `ids`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkFilterBody {
    /// Namespace; `default` when absent.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Only this lane.
    #[serde(default)]
    pub lane: Option<String>,
    /// Only these states, comma-separated.
    #[serde(default)]
    pub state: Option<String>,
    /// Only this kind.
    #[serde(default)]
    pub kind: Option<String>,
    /// Only executions with this tag, `KEY:VALUE`.
    #[serde(default)]
    pub tag: Option<String>,
    /// A tag key holding colons, with `tag_value`, instead of `tag`.
    #[serde(default)]
    pub tag_key: Option<String>,
    /// The value of the tag named by `tag_key`.
    #[serde(default)]
    pub tag_value: Option<String>,
    /// Only children of this execution.
    #[serde(default)]
    pub parent: Option<String>,
    /// Created strictly after this instant (RFC 3339).
    #[serde(default)]
    pub created_after: Option<String>,
    /// Created strictly before this instant.
    #[serde(default)]
    pub created_before: Option<String>,
    /// Finished strictly after this instant.
    #[serde(default)]
    pub finished_after: Option<String>,
    /// Finished strictly before this instant.
    #[serde(default)]
    pub finished_before: Option<String>,
    /// Only the execution with this idempotency key.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Only these executions (each must also match the rest), at most 1,000.
    #[serde(default)]
    pub ids: Vec<String>,
}

/// The body of `POST /v1/executions/bulk/cancel`, `/bulk/delete` and
/// `/bulk/replay`.
///
/// ```
/// let body: baton_api::BulkBody = serde_json::from_str(
///     r#"{"filter": {"lane": "reports", "state": "failed,expired"}, "limit": 500, "dry_run": true}"#,
/// ).unwrap();
/// let request = body.into_request(baton_core::BulkAction::Replay).unwrap();
/// assert!(request.dry_run);
/// assert_eq!(request.limit, 500);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkBody {
    /// Which executions.
    #[serde(default)]
    pub filter: BulkFilterBody,
    /// Most executions this call reaches, `1..=1000` (default 1000).
    #[serde(default)]
    pub limit: Option<usize>,
    /// Count only; change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// `next_cursor` of the previous call.
    #[serde(default)]
    pub cursor: Option<String>,
    /// For a cancel: the reason stored on each.
    #[serde(default)]
    pub reason: Option<String>,
    /// For a cancel: `tree` (default) or `execution`.
    #[serde(default)]
    pub scope: Option<baton_core::CancelScope>,
    /// For a delete: cancel and delete executions that have not finished.
    #[serde(default)]
    pub force: bool,
    /// Required (`true`) to act on a whole namespace: a body with neither
    /// a narrowing filter nor ids is refused otherwise.
    #[serde(default)]
    pub all: bool,
}

impl BulkBody {
    /// The bulk request asked for, doing `action` (a cancel takes this
    /// body's reason and scope).
    ///
    /// # Errors
    /// `InvalidInput` naming the field at fault.
    pub fn into_request(self, action: baton_core::BulkAction) -> Result<baton_core::BulkRequest> {
        let f = self.filter;
        let query = ListQuery {
            namespace: f.namespace,
            lane: f.lane,
            state: f.state,
            kind: f.kind,
            tag: f.tag,
            tag_key: f.tag_key,
            tag_value: f.tag_value,
            parent: f.parent,
            created_after: f.created_after,
            created_before: f.created_before,
            finished_after: f.finished_after,
            finished_before: f.finished_before,
            idempotency_key: f.idempotency_key,
            ..ListQuery::default()
        };
        let (filter, _) = query.into_request()?;
        let ids = DescribeManyBody { ids: f.ids }.into_ids()?;
        if !self.all && ids.is_empty() && !filter.narrows() {
            return Err(EngineError::invalid(
                "filter",
                "namespace only",
                "give a filter (lane, state, …) or ids, or \"all\": true to act on the whole namespace",
            ));
        }
        if !matches!(action, baton_core::BulkAction::Cancel(_))
            && (self.reason.is_some() || self.scope.is_some())
        {
            return Err(EngineError::invalid(
                "reason",
                format!("given to a {}", action.name()),
                "reason and scope belong to a bulk cancel",
            ));
        }
        if self.force && !matches!(action, baton_core::BulkAction::Delete { .. }) {
            return Err(EngineError::invalid(
                "force",
                format!("given to a {}", action.name()),
                "force belongs to a bulk delete",
            ));
        }
        let action = match action {
            baton_core::BulkAction::Cancel(_) => baton_core::BulkAction::Cancel(
                baton_core::CancelRequest::with_reason(self.reason)
                    .with_scope(self.scope.unwrap_or_default()),
            ),
            baton_core::BulkAction::Delete { .. } => {
                baton_core::BulkAction::Delete { force: self.force }
            }
            other => other,
        };
        Ok(baton_core::BulkRequest {
            action,
            filter,
            ids,
            limit: self.limit.unwrap_or(Page::MAX_LIMIT),
            dry_run: self.dry_run,
            cursor: self
                .cursor
                .filter(|c| !c.is_empty())
                .map(|c| c.parse::<ListCursor>())
                .transpose()?,
            actor: None,
        })
    }
}

/// The answer of a bulk call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkAnswer {
    /// Executions the call reached.
    pub matched: u64,
    /// Executions it changed (a dry run: would change).
    pub changed: u64,
    /// Reached executions it could not change, with why.
    #[serde(default)]
    pub skipped: Vec<BulkSkipped>,
    /// Pass back as `cursor` to go on; `null` once nothing more matches.
    pub next_cursor: Option<String>,
    /// Present when the audit events of the changed executions could not
    /// be written (the changes stand): why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_error: Option<String>,
}

/// One execution a bulk call could not change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkSkipped {
    /// Its id.
    pub id: ExecutionId,
    /// Why.
    pub reason: String,
}

impl From<&baton_core::BulkReport> for BulkAnswer {
    fn from(r: &baton_core::BulkReport) -> Self {
        BulkAnswer {
            matched: r.matched,
            changed: r.changed,
            skipped: r
                .skipped
                .iter()
                .map(|(id, reason)| BulkSkipped {
                    id: id.clone(),
                    reason: reason.clone(),
                })
                .collect(),
            next_cursor: r.next_cursor.map(|c| c.to_string()),
            audit_error: r.audit_error.clone(),
        }
    }
}

impl BulkAnswer {
    /// The `baton-core` report this carries.
    ///
    /// # Errors
    /// `InvalidInput` for a cursor this build cannot read.
    pub fn into_report(self) -> Result<baton_core::BulkReport> {
        Ok(baton_core::BulkReport {
            matched: self.matched,
            changed: self.changed,
            skipped: self.skipped.into_iter().map(|s| (s.id, s.reason)).collect(),
            next_cursor: self
                .next_cursor
                .map(|c| c.parse::<ListCursor>())
                .transpose()?,
            audit_error: self.audit_error,
        })
    }
}
