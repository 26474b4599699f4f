//! Three `baton serve` processes on one SQLite file split the partitions;
//! one is killed with SIGKILL; the survivors take over its partitions and
//! reclaim the leases that expire in them. Waits are bounded polls; nothing
//! asserts on elapsed time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use baton_core::{
    AdminBackend, AttemptOutcome, ClaimRequest, EngineBackend, Kind, Lane, Namespace, NewExecution,
    NodeId, WorkerId,
};
use baton_sqlite::SqliteBackend;

struct Node {
    name: &'static str,
    child: Child,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(url: &str, name: &'static str) -> Node {
    let child = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args([
            "--backend",
            url,
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--node-id",
            name,
            "--ownership-ttl-ms",
            "1500",
            "--sweep-ms",
            "100",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Node { name, child }
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("gave up waiting (30 s) for: {what}");
}

async fn owners(backend: &SqliteBackend) -> Vec<Option<NodeId>> {
    backend
        .partition_owners()
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.owner)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_nodes_partitions_are_taken_over_and_its_leases_reclaimed() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("nodes.db").display());
    let backend = SqliteBackend::connect(&url).await.unwrap();
    let total = usize::from(backend.partitions().get());

    let mut nodes = vec![start(&url, "n1"), start(&url, "n2"), start(&url, "n3")];
    eventually("three nodes split every partition", || async {
        let o = owners(&backend).await;
        let distinct: BTreeSet<_> = o.iter().flatten().cloned().collect();
        o.iter().all(Option::is_some) && distinct.len() == 3
    })
    .await;
    let victim = NodeId::new("n1").unwrap();
    let victims_partitions: BTreeSet<_> = backend
        .partition_owners()
        .await
        .unwrap()
        .into_iter()
        .filter(|o| o.owner.as_ref() == Some(&victim))
        .map(|o| o.partition)
        .collect();
    assert!(!victims_partitions.is_empty());

    // Work in every partition, claimed under short leases nobody renews.
    let ns = Namespace::new("nodes").unwrap();
    let lane = Lane::new("main").unwrap();
    let batch = (0..200)
        .map(|i| {
            NewExecution::new(
                ns.clone(),
                lane.clone(),
                Kind::new("k").unwrap(),
                i.to_string().into_bytes(),
            )
        })
        .collect();
    backend.create(batch).await.unwrap();
    let claims = backend
        .claim(
            ClaimRequest::new(ns, lane, WorkerId::new("doomed-worker").unwrap(), 200)
                .with_lease_ttl(Duration::from_secs(3)),
        )
        .await
        .unwrap();
    assert_eq!(claims.len(), 200);
    let in_victims: Vec<_> = claims
        .iter()
        .filter(|c| victims_partitions.contains(&c.id.partition()))
        .map(|c| c.id.clone())
        .collect();
    assert!(
        !in_victims.is_empty(),
        "some work lives in the victim's partitions"
    );

    // SIGKILL: no graceful release of its partitions.
    let victim_node = nodes.remove(0);
    assert_eq!(victim_node.name, "n1");
    drop(victim_node);

    eventually("the survivors own every partition", || async {
        let o = owners(&backend).await;
        o.len() == total
            && o.iter().all(|w| w.is_some())
            && !o.iter().any(|w| w.as_ref() == Some(&victim))
    })
    .await;
    eventually(
        "every lease, the victim's partitions included, is reclaimed",
        || async {
            for c in &claims {
                let attempts = backend.attempts(&c.id).await.unwrap();
                if attempts[0].outcome != Some(AttemptOutcome::LeaseExpired) {
                    return false;
                }
            }
            true
        },
    )
    .await;

    // The survivors shut down cleanly on SIGTERM and release their partitions.
    for mut node in nodes.drain(..) {
        let pid = node.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        let exit = node.child.wait().unwrap();
        assert!(exit.success(), "{} exited with {exit}", node.name);
    }
    eventually("released partitions show no owner", || async {
        owners(&backend).await.iter().all(Option::is_none)
    })
    .await;
}
