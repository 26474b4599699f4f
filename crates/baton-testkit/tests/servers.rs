//! The test servers the kit starts: each answers through the kit's own RESP
//! client and is the version it claims to be. Without a server binary and
//! outside CI each test prints why and passes as skipped; under CI it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use baton_testkit::servers::{self, RedisServer, RespValue};

fn info_server(server: &RedisServer) -> String {
    server
        .command(&["INFO", "server"])
        .unwrap()
        .as_text()
        .expect("INFO answers a bulk string")
}

/// A key under a fresh prefix can be written and read back.
fn round_trip(server: &RedisServer, key: &str) {
    assert_eq!(
        server.command(&["SET", key, "v1"]).unwrap(),
        RespValue::Simple("OK".into())
    );
    assert_eq!(
        server.command(&["GET", key]).unwrap(),
        RespValue::Bulk(b"v1".to_vec())
    );
    assert_eq!(
        server.command(&["DEL", key]).unwrap(),
        RespValue::Integer(1)
    );
    assert_eq!(server.command(&["GET", key]).unwrap(), RespValue::Nil);
}

#[test]
fn unique_prefixes_are_short_lowercase_and_distinct() {
    let a = RedisServer::unique_prefix();
    let b = RedisServer::unique_prefix();
    assert_ne!(a, b);
    assert_eq!(a.len(), 33);
    assert!(a.starts_with('t'));
    assert!(
        a.chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
    );
}

#[tokio::test]
async fn valkey_is_a_standalone_valkey_9() {
    let Some(server) = servers::valkey().await else {
        return;
    };
    assert!(server.url().starts_with("redis://"), "{}", server.url());
    assert_eq!(
        server.command(&["PING"]).unwrap(),
        RespValue::Simple("PONG".into())
    );
    let info = info_server(server);
    assert!(info.contains("valkey_version:9."), "{info}");
    assert!(info.contains("server_mode:standalone"), "{info}");
    round_trip(server, &format!("{}:k", RedisServer::unique_prefix()));
    // An error reply is an Err, not a value.
    let err = server.command(&["NO-SUCH-COMMAND"]).unwrap_err();
    assert!(err.contains("ERR"), "{err}");
}

#[tokio::test]
async fn redis7_is_a_standalone_redis_7_0() {
    let Some(server) = servers::redis7().await else {
        return;
    };
    assert!(server.url().starts_with("redis://"), "{}", server.url());
    assert!(
        !server.url().ends_with(":6379"),
        "never the system server: {}",
        server.url()
    );
    assert_eq!(
        server.command(&["PING"]).unwrap(),
        RespValue::Simple("PONG".into())
    );
    let info = info_server(server);
    assert!(info.contains("redis_version:7.0."), "{info}");
    assert!(!info.contains("valkey_version"), "{info}");
    assert!(info.contains("redis_mode:standalone"), "{info}");
    round_trip(server, &format!("{}:k", RedisServer::unique_prefix()));
}

#[tokio::test]
async fn valkey_cluster_has_three_masters_and_every_slot() {
    let Some(server) = servers::valkey_cluster().await else {
        return;
    };
    let url = server.url();
    assert!(url.starts_with("redis+cluster://"), "{url}");
    assert_eq!(url.matches(',').count(), 2, "{url}");
    assert_eq!(
        server.command(&["PING"]).unwrap(),
        RespValue::Simple("PONG".into())
    );
    let cluster = server
        .command(&["CLUSTER", "INFO"])
        .unwrap()
        .as_text()
        .unwrap();
    assert!(cluster.contains("cluster_state:ok"), "{cluster}");
    assert!(cluster.contains("cluster_known_nodes:3\r"), "{cluster}");
    assert!(cluster.contains("cluster_size:3\r"), "{cluster}");
    assert!(
        cluster.contains("cluster_slots_assigned:16384"),
        "{cluster}"
    );
    let info = info_server(server);
    assert!(info.contains("valkey_version:9."), "{info}");
    assert!(info.contains("server_mode:cluster"), "{info}");
    // Commands go to the first node, which owns slots 0..=5460: use a key
    // of this test's prefix that hashes there.
    let prefix = RedisServer::unique_prefix();
    let key = (0..)
        .map(|i| format!("{{{prefix}{i}}}:k"))
        .find(
            |k| match server.command(&["CLUSTER", "KEYSLOT", k]).unwrap() {
                RespValue::Integer(slot) => slot <= 5460,
                other => panic!("KEYSLOT answered {other:?}"),
            },
        )
        .unwrap();
    round_trip(server, &key);
}
