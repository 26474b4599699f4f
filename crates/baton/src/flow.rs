//! The commands of flows: cancel (which reaches descendants unless told
//! not to), tree and children. `--json` prints the HTTP API's answer types.

use std::collections::{HashMap, HashSet};

use baton_api::{CancelAnswer, ListAnswer, TreeAnswer};
use baton_core::{
    AdminBackend, CancelRequest, CancelScope, ExecutionId, ListCursor, Page, Tree, TreeNode,
};

use crate::show::print_page;
use crate::{CliResult, print_json};

/// Levels of indentation `baton tree` draws; deeper members are drawn at
/// this level with their depth written out, so a long chain stays readable.
const MAX_INDENT: usize = 32;

/// `baton cancel ID [--reason R] [--only]`.
pub(crate) async fn cancel(
    backend: &dyn AdminBackend,
    id: &str,
    reason: Option<String>,
    only: bool,
    json: bool,
) -> CliResult<()> {
    let id: ExecutionId = id.parse()?;
    let scope = if only {
        CancelScope::Execution
    } else {
        CancelScope::Tree
    };
    let out = backend
        .cancel(&id, CancelRequest::with_reason(reason).with_scope(scope))
        .await?;
    if json {
        print_json(&CancelAnswer::from(&out));
        return Ok(());
    }
    let snap = &out.snapshot;
    match scope {
        CancelScope::Execution => {
            println!(
                "{} is {}; its descendants were left as they are",
                snap.id, snap.state
            );
        }
        CancelScope::Tree => {
            let n = out.cascaded;
            let noun = if n == 1 { "descendant" } else { "descendants" };
            println!(
                "{} is {}; {n} {noun} cancelled with it",
                snap.id, snap.state
            );
            if out.cascade_pending {
                println!(
                    "the subtree is too big for one call: the scheduler (of `baton serve`) cancels the rest; `baton tree {}` shows the progress",
                    snap.id
                );
            }
        }
    }
    Ok(())
}

/// `baton tree ID [--limit N]`.
pub(crate) async fn tree(
    backend: &dyn AdminBackend,
    id: &str,
    limit: usize,
    json: bool,
) -> CliResult<()> {
    let id: ExecutionId = id.parse()?;
    let tree = backend.tree(&id, limit).await?;
    if json {
        print_json(&TreeAnswer::from(&tree));
    } else {
        print!("{}", render_tree(&tree));
    }
    Ok(())
}

/// `baton children ID [--limit N] [--cursor C]`.
pub(crate) async fn children(
    backend: &dyn AdminBackend,
    id: &str,
    limit: usize,
    cursor: Option<String>,
    json: bool,
) -> CliResult<()> {
    let id: ExecutionId = id.parse()?;
    let cursor = cursor.map(|c| c.parse::<ListCursor>()).transpose()?;
    let page = backend.children(&id, Page { limit, cursor }).await?;
    if json {
        print_json(&ListAnswer::from(&page));
        return Ok(());
    }
    print_page(&page, &format!("{id} has no children"), |c| {
        format!("baton children '{id}' --limit {limit} --cursor {c}")
    });
    Ok(())
}

/// The flow as an indented tree, one member a line (`id  kind  state`),
/// every child under its parent in creation order, then a line that says
/// how many members were shown and whether the flow has more.
pub(crate) fn render_tree(tree: &Tree) -> String {
    let present: HashSet<&ExecutionId> = tree.items.iter().map(|n| &n.id).collect();
    let mut below: HashMap<&ExecutionId, Vec<&TreeNode>> = HashMap::new();
    // Top level: the root, and any member whose parent is not in the
    // answer (a root already trimmed by retention).
    let mut tops: Vec<&TreeNode> = Vec::new();
    for node in &tree.items {
        match &node.parent {
            Some(p) if present.contains(p) => below.entry(p).or_default().push(node),
            _ => tops.push(node),
        }
    }
    let mut out = String::new();
    // Depth first without recursion: a flow may be a chain thousands deep.
    // Each entry: the node, the indentation of its line, whether it is the
    // last of its siblings, and its depth below the top level.
    let mut stack: Vec<(&TreeNode, String, bool, usize)> = Vec::new();
    for (i, node) in tops.iter().enumerate().rev() {
        stack.push((node, String::new(), i + 1 == tops.len(), 0));
    }
    while let Some((node, indent, last, depth)) = stack.pop() {
        let branch = match (depth, last) {
            (0, _) => "",
            (_, true) => "└─ ",
            (_, false) => "├─ ",
        };
        // Past MAX_INDENT levels lines stop moving right and say their depth.
        let deep = if depth > MAX_INDENT {
            format!("(depth {depth}) ")
        } else {
            String::new()
        };
        out.push_str(&format!(
            "{indent}{branch}{deep}{}  {}  {}
",
            node.id, node.kind, node.state
        ));
        let child_indent = match (depth, last) {
            (0, _) => indent.clone(),
            (d, _) if d >= MAX_INDENT => indent.clone(),
            (_, true) => format!("{indent}   "),
            (_, false) => format!("{indent}│  "),
        };
        if let Some(kids) = below.get(&node.id) {
            for (i, kid) in kids.iter().enumerate().rev() {
                stack.push((kid, child_indent.clone(), i + 1 == kids.len(), depth + 1));
            }
        }
    }
    let n = tree.items.len();
    let noun = if n == 1 { "member" } else { "members" };
    if tree.truncated {
        out.push_str(&format!(
            "showing the first {n} {noun} of flow {}; it has more (raise --limit, up to {}, or page one level with `baton children`)\n",
            tree.root,
            Tree::MAX_LIMIT
        ));
    } else {
        out.push_str(&format!("{n} {noun} in flow {}\n", tree.root));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use baton_core::{Kind, PartitionCount, State};

    fn node(id: &ExecutionId, parent: Option<&ExecutionId>, kind: &str) -> TreeNode {
        TreeNode {
            id: id.clone(),
            parent: parent.cloned(),
            state: State::Waiting,
            kind: Kind::new(kind).unwrap(),
        }
    }

    #[test]
    fn children_sit_under_their_parent_with_branches() {
        let root = ExecutionId::generate(PartitionCount::DEFAULT);
        let id = || ExecutionId::generate_in(root.partition(), PartitionCount::DEFAULT).unwrap();
        let (a, b, a1) = (id(), id(), id());
        let tree = Tree {
            root: root.clone(),
            items: vec![
                node(&root, None, "root"),
                node(&a, Some(&root), "a"),
                node(&b, Some(&root), "b"),
                node(&a1, Some(&a), "a1"),
            ],
            truncated: false,
        };
        let text = render_tree(&tree);
        let expected = format!(
            "{root}  root  waiting\n├─ {a}  a  waiting\n│  └─ {a1}  a1  waiting\n└─ {b}  b  waiting\n4 members in flow {root}\n"
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn a_deep_chain_stops_moving_right() {
        let root = ExecutionId::generate(PartitionCount::DEFAULT);
        let mut items = vec![node(&root, None, "root")];
        for _ in 0..100 {
            let parent = items.last().unwrap().id.clone();
            let id = ExecutionId::generate_in(root.partition(), PartitionCount::DEFAULT).unwrap();
            items.push(node(&id, Some(&parent), "step"));
        }
        let text = render_tree(&Tree {
            root,
            items,
            truncated: false,
        });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 102, "{text}");
        assert!(lines[100].contains("(depth 100) "), "{}", lines[100]);
        let widest = lines.iter().map(|l| l.chars().count()).max().unwrap();
        assert!(widest < 3 * MAX_INDENT + 120, "{widest}");
    }

    #[test]
    fn a_truncated_tree_says_so() {
        let root = ExecutionId::generate(PartitionCount::DEFAULT);
        let tree = Tree {
            root: root.clone(),
            items: vec![node(&root, None, "root")],
            truncated: true,
        };
        let text = render_tree(&tree);
        assert!(text.contains("showing the first 1 member"), "{text}");
        assert!(text.contains("--limit"), "{text}");
    }
}
