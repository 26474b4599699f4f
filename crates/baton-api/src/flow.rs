//! Flows: the answer of a cancel that reaches a subtree, the children of an
//! execution, and the tree of a flow.

use baton_core::{
    Cancellation, EngineError, ExecutionId, Kind, ListCursor, Page, Result, State, Tree, TreeNode,
};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::Snapshot;

/// The answer of `POST /v1/executions/{id}/cancel`: the execution's
/// snapshot, with two more fields at the top level beside the snapshot's
/// own.
///
/// ```
/// use baton_api::CancelAnswer;
/// let text = r#"{"id": "{p:13}-019ab1c2-7d3e-7f00-8a1b-2c3d4e5f6071", "namespace": "default",
///   "lane": "default", "kind": "k", "state": "cancelled", "priority": 0, "payload": null,
///   "attempts": 0, "max_attempts": 3, "created_at": "2030-01-01T00:00:00.000Z",
///   "updated_at": "2030-01-01T00:00:00.000Z", "run_at": null, "deadline": null,
///   "result": null, "last_error": null, "cancel_reason": null,
///   "cascaded": 12, "cascade_pending": false}"#;
/// let answer: CancelAnswer = serde_json::from_str(text).unwrap();
/// assert_eq!(answer.cascaded, 12);
/// assert_eq!(answer.snapshot.kind.as_str(), "k");
/// ```
///
/// Reading it takes serde_json (the snapshot's payload is kept as the JSON
/// text sent, which only serde_json's own deserializer hands out).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CancelAnswer {
    /// The execution after the call.
    #[serde(flatten)]
    pub snapshot: Snapshot,
    /// Descendants this call cancelled (0 for scope `execution`).
    pub cascaded: u64,
    /// True when the subtree was too big for one call: the scheduler's
    /// cascade pass cancels the rest within moments.
    pub cascade_pending: bool,
}

impl<'de> Deserialize<'de> for CancelAnswer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        /// The fields beside the snapshot's; absent from servers older than
        /// flows, whose cancel reached one execution only.
        #[derive(Deserialize)]
        struct Extra {
            #[serde(default)]
            cascaded: u64,
            #[serde(default)]
            cascade_pending: bool,
        }
        // `flatten` buffers the fields, which a raw JSON payload cannot
        // pass through; read the object twice instead.
        let raw = Box::<RawValue>::deserialize(d)?;
        let snapshot: Snapshot = serde_json::from_str(raw.get()).map_err(D::Error::custom)?;
        let extra: Extra = serde_json::from_str(raw.get()).map_err(D::Error::custom)?;
        Ok(CancelAnswer {
            snapshot,
            cascaded: extra.cascaded,
            cascade_pending: extra.cascade_pending,
        })
    }
}

impl From<&Cancellation> for CancelAnswer {
    fn from(c: &Cancellation) -> Self {
        CancelAnswer {
            snapshot: Snapshot::from(&c.snapshot),
            cascaded: c.cascaded,
            cascade_pending: c.cascade_pending,
        }
    }
}

impl CancelAnswer {
    /// The `baton-core` answer this carries.
    ///
    /// # Errors
    /// As [`Snapshot::into_snapshot`].
    pub fn into_cancellation(self) -> Result<Cancellation> {
        Ok(Cancellation {
            snapshot: self.snapshot.into_snapshot()?,
            cascaded: self.cascaded,
            cascade_pending: self.cascade_pending,
        })
    }
}

/// Parses an optional `limit` parameter: `default` when absent, else a
/// whole number in `1..=max`.
fn parse_limit(text: Option<String>, default: usize, max: usize) -> Result<usize> {
    let Some(text) = text else {
        return Ok(default);
    };
    text.parse::<usize>().map_err(|_| {
        EngineError::invalid(
            "limit",
            &text,
            format!("must be a whole number between 1 and {max}"),
        )
    })
}

/// The query of `GET /v1/executions/{id}/children`. Values are read as text
/// and parsed by [`into_page`](Self::into_page), so that each error names
/// its parameter.
///
/// ```
/// use baton_api::ChildrenQuery;
/// let page = ChildrenQuery { limit: Some("20".into()), cursor: None }.into_page().unwrap();
/// assert_eq!(page.limit, 20);
/// assert!(ChildrenQuery { limit: Some("0".into()), cursor: None }.into_page().is_err());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChildrenQuery {
    /// Page size, 1 to 1000; 100 when absent.
    #[serde(default)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page; empty or absent for the first.
    #[serde(default)]
    pub cursor: Option<String>,
}

impl ChildrenQuery {
    /// The query asking for `page`.
    pub fn from_page(page: Page) -> Self {
        ChildrenQuery {
            limit: Some(page.limit.to_string()),
            cursor: page.cursor.map(|c| c.to_string()),
        }
    }

    /// The page asked for.
    ///
    /// # Errors
    /// `InvalidInput` naming `limit` or `cursor`.
    pub fn into_page(self) -> Result<Page> {
        let limit = parse_limit(self.limit, Page::DEFAULT_LIMIT, Page::MAX_LIMIT)?;
        let cursor = self
            .cursor
            .filter(|c| !c.is_empty())
            .map(|c| c.parse::<ListCursor>())
            .transpose()?;
        let page = Page { limit, cursor };
        page.validate()?;
        Ok(page)
    }

    /// The query string (without `?`), values percent-encoded.
    pub fn to_query_string(&self) -> String {
        [("limit", &self.limit), ("cursor", &self.cursor)]
            .iter()
            .filter_map(|(k, v)| {
                v.as_ref()
                    .map(|v| format!("{k}={}", crate::encode_component(v)))
            })
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// The query of `GET /v1/executions/{id}/tree`.
///
/// ```
/// use baton_api::TreeQuery;
/// assert_eq!(TreeQuery::default().into_limit().unwrap(), 1000);
/// assert!(TreeQuery { limit: Some("10001".into()) }.into_limit().is_err());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeQuery {
    /// Most members to answer, 1 to 10,000; 1,000 when absent.
    #[serde(default)]
    pub limit: Option<String>,
}

impl TreeQuery {
    /// The query asking for at most `limit` members.
    pub fn from_limit(limit: usize) -> Self {
        TreeQuery {
            limit: Some(limit.to_string()),
        }
    }

    /// The limit asked for.
    ///
    /// # Errors
    /// `InvalidInput` naming `limit`.
    pub fn into_limit(self) -> Result<usize> {
        let limit = parse_limit(self.limit, Tree::DEFAULT_LIMIT, Tree::MAX_LIMIT)?;
        Tree::check_limit(limit)?;
        Ok(limit)
    }
}

/// One member of a flow in a [`TreeAnswer`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeItem {
    /// Its id.
    pub id: ExecutionId,
    /// Its parent; `null` for the root.
    pub parent: Option<ExecutionId>,
    /// Its state.
    pub state: State,
    /// Its handler name.
    pub kind: Kind,
}

/// The answer of `GET /v1/executions/{id}/tree`: the flow's root and its
/// members in creation order, every parent before its children.
///
/// ```
/// use baton_api::TreeAnswer;
/// let answer: TreeAnswer = serde_json::from_str(r#"{
///   "root": "{p:13}-019ab1c2-7d3e-7f00-8a1b-2c3d4e5f6071",
///   "items": [{"id": "{p:13}-019ab1c2-7d3e-7f00-8a1b-2c3d4e5f6071", "parent": null,
///              "state": "running", "kind": "report.build"}],
///   "truncated": false}"#).unwrap();
/// let tree = answer.into_tree();
/// assert_eq!(tree.items[0].id, tree.root);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeAnswer {
    /// The flow's root, also when the tree was asked for by a member's id.
    pub root: ExecutionId,
    /// The members, ascending by id (creation order).
    pub items: Vec<TreeItem>,
    /// True when the flow has more members than were answered.
    pub truncated: bool,
}

impl From<&Tree> for TreeAnswer {
    fn from(t: &Tree) -> Self {
        TreeAnswer {
            root: t.root.clone(),
            items: t
                .items
                .iter()
                .map(|n| TreeItem {
                    id: n.id.clone(),
                    parent: n.parent.clone(),
                    state: n.state,
                    kind: n.kind.clone(),
                })
                .collect(),
            truncated: t.truncated,
        }
    }
}

impl TreeAnswer {
    /// The `baton-core` tree this answer holds.
    pub fn into_tree(self) -> Tree {
        Tree {
            root: self.root,
            items: self
                .items
                .into_iter()
                .map(|i| TreeNode {
                    id: i.id,
                    parent: i.parent,
                    state: i.state,
                    kind: i.kind,
                })
                .collect(),
            truncated: self.truncated,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use baton_core::{
        ChildKey, ExecutionSnapshot, Lane, Namespace, PartitionCount, RetryPolicy, Timestamp,
    };
    use std::collections::{BTreeMap, BTreeSet};

    fn child() -> ExecutionSnapshot {
        let at: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
        let root = ExecutionId::generate(PartitionCount::DEFAULT);
        ExecutionSnapshot {
            session: None,
            version: None,
            id: ExecutionId::generate_in(root.partition(), PartitionCount::DEFAULT).unwrap(),
            namespace: Namespace::new("ns").unwrap(),
            lane: Lane::new("l").unwrap(),
            kind: Kind::new("k").unwrap(),
            state: State::Cancelled,
            priority: 0,
            payload: br#"{"big": 123456789012345678901234567890}"#.to_vec(),
            tags: BTreeMap::new(),
            attempts: 0,
            retry: RetryPolicy::default(),
            idempotency_key: None,
            required_capabilities: BTreeSet::new(),
            parent: Some(root.clone()),
            child_key: Some(ChildKey::new("shard 7").unwrap()),
            root,
            created_at: at,
            updated_at: at,
            run_at: None,
            deadline: None,
            finished_at: Some(at),
            worker_id: None,
            lease_expires_at: None,
            result: None,
            last_error: None,
            cancel_reason: Some("stop".into()),
            waiting_on: None,
            suspension: None,
            pause: None,
            custom_status: None,
            status_version: 0,
            progress_seq: 0,
        }
    }

    #[test]
    fn a_cancel_answer_is_the_snapshot_and_two_counters() {
        let c = Cancellation {
            snapshot: child(),
            cascaded: 500,
            cascade_pending: true,
        };
        let wire = serde_json::to_string(&CancelAnswer::from(&c)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&wire).unwrap();
        assert_eq!(v["cascaded"], 500);
        assert_eq!(v["cascade_pending"], true);
        assert_eq!(v["state"], "cancelled");
        assert_eq!(v["child_key"], "shard 7");
        assert!(
            wire.contains(r#""payload":{"big": 123456789012345678901234567890}"#),
            "{wire}"
        );
        let back: CancelAnswer = serde_json::from_str(&wire).unwrap();
        assert_eq!(back.into_cancellation().unwrap(), c);
    }

    #[test]
    fn a_cancel_answer_of_an_older_server_counts_nothing() {
        let c = Cancellation {
            snapshot: child(),
            cascaded: 0,
            cascade_pending: false,
        };
        let mut v = serde_json::to_value(CancelAnswer::from(&c)).unwrap();
        let o = v.as_object_mut().unwrap();
        o.remove("cascaded");
        o.remove("cascade_pending");
        let back: CancelAnswer = serde_json::from_value(v).unwrap();
        assert_eq!((back.cascaded, back.cascade_pending), (0, false));
    }

    #[test]
    fn a_tree_round_trips() {
        let s = child();
        let tree = Tree {
            root: s.root.clone(),
            items: vec![
                TreeNode {
                    id: s.root.clone(),
                    parent: None,
                    state: State::Running,
                    kind: Kind::new("root").unwrap(),
                },
                TreeNode {
                    id: s.id.clone(),
                    parent: s.parent.clone(),
                    state: s.state,
                    kind: s.kind.clone(),
                },
            ],
            truncated: true,
        };
        let v = serde_json::to_value(TreeAnswer::from(&tree)).unwrap();
        assert_eq!(v["items"][0]["parent"], serde_json::Value::Null);
        assert_eq!(v["items"][1]["parent"], s.root.to_string());
        assert_eq!(v["truncated"], true);
        let back: TreeAnswer = serde_json::from_value(v).unwrap();
        assert_eq!(back.into_tree(), tree);
    }

    #[test]
    fn flow_queries_name_their_parameter() {
        for bad in ["0", "1001", "ten", "-1"] {
            let e = ChildrenQuery {
                limit: Some(bad.into()),
                cursor: None,
            }
            .into_page()
            .unwrap_err();
            assert!(
                matches!(e, EngineError::InvalidInput { field: "limit", .. }),
                "{bad}: {e}"
            );
        }
        let e = ChildrenQuery {
            limit: None,
            cursor: Some("garbage".into()),
        }
        .into_page()
        .unwrap_err();
        assert!(
            matches!(
                e,
                EngineError::InvalidInput {
                    field: "cursor",
                    ..
                }
            ),
            "{e}"
        );
        for bad in ["0", "10001", "many"] {
            let e = TreeQuery {
                limit: Some(bad.into()),
            }
            .into_limit()
            .unwrap_err();
            assert!(
                matches!(e, EngineError::InvalidInput { field: "limit", .. }),
                "{bad}: {e}"
            );
        }
        assert_eq!(TreeQuery::from_limit(10_000).into_limit().unwrap(), 10_000);
        let page = Page {
            limit: 7,
            cursor: Some(ListCursor::after(&child().id)),
        };
        let q = ChildrenQuery::from_page(page);
        assert!(q.to_query_string().starts_with("limit=7&cursor="));
        assert_eq!(q.into_page().unwrap(), page);
    }
}
