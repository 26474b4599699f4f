use super::*;

#[test]
fn ids_spread_over_every_partition() {
    let count = PartitionCount::new(16).unwrap();
    let mut seen = [0u32; 16];
    for _ in 0..4000 {
        let id = ExecutionId::generate(count);
        seen[id.partition().get() as usize] += 1;
    }
    // 250 expected per partition; a stuck hash would leave some empty.
    assert!(seen.iter().all(|&n| n > 150), "uneven spread: {seen:?}");
}

#[test]
fn partition_hash_is_stable() {
    // Pinned: changing the hash would strand every stored execution.
    let uuid = Uuid::parse_str("019ab1c2-7d3e-7f00-8a1b-2c3d4e5f6071").unwrap();
    assert_eq!(
        partition_of(&uuid, PartitionCount::new(16).unwrap()).get(),
        13
    );
    assert_eq!(
        partition_of(&uuid, PartitionCount::new(1024).unwrap()).get(),
        669
    );
}

#[test]
fn rejects_malformed_ids() {
    for bad in [
        "",
        "{p:1}",
        "p:1-019ab1c2-7d3e-7f00-8a1b-2c3d4e5f6071",
        "{p:01}-019ab1c2-7d3e-7f00-8a1b-2c3d4e5f6071",
        "{p:x}-019ab1c2-7d3e-7f00-8a1b-2c3d4e5f6071",
        "{p:5000}-019ab1c2-7d3e-7f00-8a1b-2c3d4e5f6071",
        "{p:1}-019AB1C2-7d3e-7f00-8a1b-2c3d4e5f6071",
        "{p:1}-019ab1c2-7d3e-4f00-8a1b-2c3d4e5f6071",
        "{p:1}-019ab1c27d3e7f008a1b2c3d4e5f6071",
    ] {
        let err = bad.parse::<ExecutionId>().unwrap_err();
        assert_eq!(err.code(), "invalid_input", "{bad}");
    }
}

#[test]
fn generate_in_lands_in_the_partition_asked_for_and_keeps_ids_ordered() {
    for n in [1u16, 3, 16, 255, 256, 257, 1000, 1024] {
        let count = PartitionCount::new(n).unwrap();
        let mut last: Option<ExecutionId> = None;
        for p in [0, n / 2, n - 1] {
            for _ in 0..20 {
                let id = ExecutionId::generate_in(PartitionId(p), count).unwrap();
                assert_eq!(id.partition(), PartitionId(p), "{n} partitions");
                assert!(id.check_partition(count).is_ok());
                assert_eq!(id.uuid().get_version_num(), 7);
                if let Some(prev) = &last {
                    assert!(prev.uuid() < id.uuid(), "ids must keep creation order");
                }
                last = Some(id);
            }
        }
    }
    let count = PartitionCount::new(4).unwrap();
    let e = ExecutionId::generate_in(PartitionId(4), count).unwrap_err();
    assert!(e.to_string().contains("partitions 0..4"), "{e}");
}

#[test]
fn check_partition_catches_foreign_ids() {
    let id = ExecutionId::generate(PartitionCount::new(1024).unwrap());
    let forged = ExecutionId {
        uuid: id.uuid,
        partition: PartitionId((id.partition.0 + 1) % 1024),
    };
    assert!(
        forged
            .check_partition(PartitionCount::new(1024).unwrap())
            .is_err()
    );
}

#[test]
fn lease_tokens_reject_garbage() {
    let id = ExecutionId::generate(PartitionCount::DEFAULT);
    for bad in [
        String::new(),
        format!("{id}.1"),
        format!("{id}.0.0000000000000001"),
        format!("{id}.1.xyz"),
        format!("{id}.-1.0000000000000001"),
        "nope.1.0000000000000001".to_string(),
    ] {
        assert!(bad.parse::<LeaseToken>().is_err(), "{bad}");
    }
}

#[test]
fn nonces_drawn_at_once_are_as_many_as_asked_and_differ() {
    assert!(LeaseToken::random_nonces(0).is_empty());
    let nonces = LeaseToken::random_nonces(1_000);
    assert_eq!(nonces.len(), 1_000);
    let distinct: std::collections::HashSet<u64> = nonces.iter().copied().collect();
    assert_eq!(distinct.len(), 1_000, "64 random bits each: no repeats");
    // Every bit position takes both values somewhere in a thousand draws.
    let (ones, zeros) = nonces
        .iter()
        .fold((0u64, 0u64), |(o, z), n| (o | n, z | !n));
    assert_eq!((ones, zeros), (u64::MAX, u64::MAX));
}
