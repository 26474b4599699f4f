//! Conversions every backend's normalising read adapter shares: stored
//! text and numbers into canonical types, strictly. A value Baton never
//! writes is a [`Corruption`](EngineError::Corruption) error that names
//! where it was found (`ctx`, such as `execution {id}`) and what it was —
//! never a default.
//!
//! What is specific to one backend (its column types, its state literals)
//! stays in that backend's adapter; these are the steps that are the same
//! everywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use crate::raw::rules::ParentFacts;
use crate::{CapabilityName, EngineError, ExecutionId, Kind, State, TagKey, TreeNode};

/// Parses stored text as `T`; `what` names the field in the error.
///
/// ```
/// use baton_core::{raw::stored, Lane};
/// let lane: Lane = stored::parse("lane", "execution x", "emails").unwrap();
/// assert_eq!(lane.as_str(), "emails");
/// let e = stored::parse::<Lane>("lane", "execution x", "no spaces").unwrap_err();
/// assert!(e.to_string().contains("execution x: stored lane \"no spaces\""));
/// ```
pub fn parse<T: FromStr>(what: &str, ctx: &str, raw: &str) -> Result<T, EngineError> {
    raw.parse().map_err(|_| {
        EngineError::corruption(format!("{ctx}: stored {what} {raw:?} is not a valid value"))
    })
}

/// A stored integer that must fit `T` (a count, an attempt number).
///
/// ```
/// use baton_core::raw::stored;
/// assert_eq!(stored::in_range::<u32>("attempts", "execution x", 3).unwrap(), 3);
/// assert!(stored::in_range::<u32>("attempts", "execution x", -1).is_err());
/// ```
pub fn in_range<T: TryFrom<i64>>(what: &str, ctx: &str, v: i64) -> Result<T, EngineError> {
    T::try_from(v).map_err(|_| EngineError::corruption(format!("{ctx}: {what} {v} out of range")))
}

/// Tags decoded from their stored JSON object, with every key checked.
pub fn tags(
    ctx: &str,
    map: BTreeMap<String, String>,
) -> Result<BTreeMap<TagKey, String>, EngineError> {
    map.into_iter()
        .map(|(k, v)| Ok((parse("tag key", ctx, &k)?, v)))
        .collect()
}

/// Required capabilities decoded from their stored JSON array, each checked.
pub fn capabilities(ctx: &str, list: &[String]) -> Result<BTreeSet<CapabilityName>, EngineError> {
    list.iter().map(|c| parse("capability", ctx, c)).collect()
}

/// [`tags`] from the JSON text itself.
///
/// ```
/// use baton_core::raw::stored;
/// let t = stored::tags_json("execution x", r#"{"customer":"42"}"#).unwrap();
/// assert_eq!(t.len(), 1);
/// assert!(stored::tags_json("execution x", "[1]").is_err());
/// ```
pub fn tags_json(ctx: &str, raw: &str) -> Result<BTreeMap<TagKey, String>, EngineError> {
    let map: BTreeMap<String, String> = serde_json::from_str(raw)
        .map_err(|e| EngineError::corruption(format!("{ctx}: tags {raw:?}: {e}")))?;
    tags(ctx, map)
}

/// [`capabilities`] from the JSON text itself.
///
/// ```
/// use baton_core::raw::stored;
/// assert_eq!(stored::capabilities_json("execution x", r#"["gpu"]"#).unwrap().len(), 1);
/// assert!(stored::capabilities_json("execution x", r#"["a b"]"#).is_err());
/// ```
pub fn capabilities_json(ctx: &str, raw: &str) -> Result<BTreeSet<CapabilityName>, EngineError> {
    let list: Vec<String> = serde_json::from_str(raw)
        .map_err(|e| EngineError::corruption(format!("{ctx}: capabilities {raw:?}: {e}")))?;
    capabilities(ctx, &list)
}

/// A flow member from its stored parent (text id, if any), state and kind.
pub fn tree_node(
    id: ExecutionId,
    parent: Option<&str>,
    state: &str,
    kind: &str,
) -> Result<TreeNode, EngineError> {
    let ctx = format!("execution {id}");
    Ok(TreeNode {
        parent: parent
            .map(|p| parse::<ExecutionId>("parent", &ctx, p))
            .transpose()?,
        state: parse::<State>("state", &ctx, state)?,
        kind: parse::<Kind>("kind", &ctx, kind)?,
        id,
    })
}

/// What a create needs of a parent `id`, from its stored namespace and
/// root (text id; `None` for a root).
pub fn parent_facts(
    id: &ExecutionId,
    namespace: &str,
    root: Option<&str>,
) -> Result<ParentFacts, EngineError> {
    let ctx = format!("execution {id}");
    Ok(ParentFacts {
        namespace: parse("namespace", &ctx, namespace)?,
        root: root
            .map(|r| parse::<ExecutionId>("root", &ctx, r))
            .transpose()?,
    })
}
