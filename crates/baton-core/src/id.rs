//! Identifiers: [`ExecutionId`], [`PartitionId`], [`PartitionCount`] and
//! [`LeaseToken`].
//!
//! An execution id is a UUIDv7 plus the partition it lives in. The partition is
//! part of the id's text form as a Valkey hash tag (`{p:17}`), so every process
//! routes an id to its partition — and on Valkey Cluster to its slot — without
//! a lookup. The partition is a stable hash of the UUID's random bits modulo
//! the deployment's partition count, so the executions of one lane spread over
//! every partition instead of piling onto one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::error::EngineError;

/// How many partitions a deployment has.
///
/// A deployment setting, recorded by the backend the first time it starts;
/// starting later with a different count is a
/// [`Configuration`](EngineError::Configuration) error, because every stored
/// id's partition was computed with the recorded count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub struct PartitionCount(u16);

impl PartitionCount {
    /// The default: 16 partitions.
    pub const DEFAULT: PartitionCount = PartitionCount(16);
    /// The largest supported count.
    pub const MAX: u16 = 1024;

    /// A partition count in `1..=1024`.
    ///
    /// ```
    /// use baton_core::PartitionCount;
    /// assert_eq!(PartitionCount::new(32).unwrap().get(), 32);
    /// assert!(PartitionCount::new(0).is_err());
    /// ```
    pub fn new(n: u16) -> Result<Self, EngineError> {
        if (1..=Self::MAX).contains(&n) {
            Ok(PartitionCount(n))
        } else {
            Err(EngineError::invalid(
                "partitions",
                n,
                format!("the partition count must be between 1 and {}", Self::MAX),
            ))
        }
    }

    /// The count as a number.
    pub fn get(self) -> u16 {
        self.0
    }

    /// Every partition of the deployment, in order.
    pub fn iter(self) -> impl Iterator<Item = PartitionId> {
        (0..self.0).map(PartitionId)
    }

    /// Checks the arguments of a scheduler pass: `partition` must be one of
    /// this deployment's and `limit` at least 1.
    ///
    /// ```
    /// use baton_core::{PartitionCount, PartitionId};
    /// let count = PartitionCount::new(4).unwrap();
    /// assert!(count.check_scan(PartitionId(3), 10).is_ok());
    /// assert!(count.check_scan(PartitionId(4), 10).is_err());
    /// assert!(count.check_scan(PartitionId(0), 0).is_err());
    /// ```
    pub fn check_scan(self, partition: PartitionId, limit: usize) -> Result<(), EngineError> {
        if partition.get() >= self.0 {
            return Err(EngineError::invalid(
                "partition",
                partition,
                format!("this deployment has partitions 0..{}", self.0),
            ));
        }
        if limit == 0 {
            return Err(EngineError::invalid(
                "limit",
                limit,
                "a scheduler pass needs a limit of at least 1",
            ));
        }
        Ok(())
    }
}

impl Default for PartitionCount {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl TryFrom<u16> for PartitionCount {
    type Error = EngineError;
    fn try_from(n: u16) -> Result<Self, EngineError> {
        PartitionCount::new(n)
    }
}

impl From<PartitionCount> for u16 {
    fn from(p: PartitionCount) -> u16 {
        p.0
    }
}

/// One partition of a deployment, `0..count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PartitionId(pub u16);

impl PartitionId {
    /// The partition number.
    pub fn get(self) -> u16 {
        self.0
    }

    /// The Valkey hash tag of this partition, `{p:N}`: every key of the
    /// partition contains it, so the partition maps to one cluster slot.
    pub fn hash_tag(self) -> String {
        format!("{{p:{}}}", self.0)
    }
}

impl fmt::Display for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The id of one execution: a UUIDv7 and its partition.
///
/// Text form: `{p:<partition>}-<uuid>`, for example
/// `{p:13}-019ab1c2-7d3e-7f00-8a1b-2c3d4e5f6071`. Display and parse round-trip;
/// anything else is an [`InvalidInput`](EngineError::InvalidInput) error.
/// In a URL path the braces must be percent-encoded (`%7Bp:13%7D-…`); HTTP
/// servers decode them.
///
/// ```
/// use baton_core::{ExecutionId, PartitionCount};
/// let count = PartitionCount::new(8).unwrap();
/// let id = ExecutionId::generate(count);
/// let parsed: ExecutionId = id.to_string().parse().unwrap();
/// assert_eq!(parsed, id);
/// assert!(parsed.check_partition(count).is_ok());
/// assert!("not-an-id".parse::<ExecutionId>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExecutionId {
    // Field order matters for `Ord`: ids sort by creation time first.
    uuid: Uuid,
    partition: PartitionId,
}

impl ExecutionId {
    /// A new id for a deployment with `count` partitions.
    pub fn generate(count: PartitionCount) -> Self {
        let uuid = Uuid::now_v7();
        ExecutionId {
            partition: partition_of(&uuid, count),
            uuid,
        }
    }

    /// A new id for a deployment with `count` partitions that lands in
    /// `partition`: a fresh UUIDv7 whose last (random) byte is chosen so its
    /// hash falls there. Backends use it to place a batch of new executions
    /// together; the id still carries its partition and routes as any other.
    ///
    /// ```
    /// use baton_core::{ExecutionId, PartitionCount, PartitionId};
    /// let count = PartitionCount::new(16).unwrap();
    /// let id = ExecutionId::generate_in(PartitionId(5), count).unwrap();
    /// assert_eq!(id.partition(), PartitionId(5));
    /// assert!(id.check_partition(count).is_ok());
    /// assert!(ExecutionId::generate_in(PartitionId(16), count).is_err());
    /// ```
    ///
    /// # Errors
    /// `InvalidInput` when `partition` is not below `count`.
    pub fn generate_in(partition: PartitionId, count: PartitionCount) -> Result<Self, EngineError> {
        if partition.0 >= count.get() {
            return Err(EngineError::invalid(
                "partition",
                partition.0,
                format!(
                    "a deployment with {} partitions has partitions 0..{}",
                    count.get(),
                    count.get()
                ),
            ));
        }
        let n = u64::from(count.get());
        loop {
            let mut bytes = *Uuid::now_v7().as_bytes();
            let head = fnv1a(FNV_OFFSET, &bytes[8..15]);
            // Every value of the last byte is tried, starting from the random
            // one drawn, so the byte stays as random as the target allows;
            // with more than 256 partitions none may fit, and a new UUID is
            // drawn.
            let start = bytes[15];
            for k in 0..=255u8 {
                let b = start.wrapping_add(k);
                if fnv1a(head, &[b]) % n == u64::from(partition.0) {
                    bytes[15] = b;
                    return Ok(ExecutionId {
                        uuid: Uuid::from_bytes(bytes),
                        partition,
                    });
                }
            }
        }
    }

    /// Rebuilds an id from a stored UUID and partition; the partition is
    /// recomputed and checked, so a mismatch is reported as corruption.
    pub fn from_parts(
        uuid: Uuid,
        partition: PartitionId,
        count: PartitionCount,
    ) -> Result<Self, EngineError> {
        let id = ExecutionId { uuid, partition };
        id.check_partition(count).map_err(|_| {
            EngineError::corruption(format!(
                "stored execution {id} does not hash to partition {partition} with {} partitions",
                count.get()
            ))
        })?;
        Ok(id)
    }

    /// The UUIDv7 part.
    pub fn uuid(&self) -> Uuid {
        self.uuid
    }

    /// The partition this execution lives in.
    pub fn partition(&self) -> PartitionId {
        self.partition
    }

    /// Checks that this id belongs to a deployment with `count` partitions:
    /// its partition must be in range and equal to the hash of its UUID.
    pub fn check_partition(&self, count: PartitionCount) -> Result<(), EngineError> {
        if partition_of(&self.uuid, count) == self.partition {
            Ok(())
        } else {
            Err(EngineError::invalid(
                "id",
                self,
                format!(
                    "this id does not belong to a deployment with {} partitions (was it copied from another deployment?)",
                    count.get()
                ),
            ))
        }
    }
}

/// FNV-1a over bytes 8..16 of the UUIDv7 (after the variant bits: a counter
/// seeded at random every millisecond, then random bits), never the
/// timestamp, so consecutive ids land on unrelated partitions. Stable across
/// processes, languages and releases, which a partition function must be.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// 64-bit FNV-1a of `bytes`, continued from `h`.
fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn partition_of(uuid: &Uuid, count: PartitionCount) -> PartitionId {
    let h = fnv1a(FNV_OFFSET, &uuid.as_bytes()[8..16]);
    PartitionId((h % u64::from(count.get())) as u16)
}

impl fmt::Display for ExecutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{p:{}}}-{}", self.partition.0, self.uuid.hyphenated())
    }
}

impl fmt::Debug for ExecutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExecutionId({self})")
    }
}

impl FromStr for ExecutionId {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self, EngineError> {
        let bad = |why: &str| {
            EngineError::invalid(
                "id",
                s,
                format!(
                    "{why}; an execution id looks like {{p:13}}-019ab1c2-7d3e-7f00-8a1b-2c3d4e5f6071"
                ),
            )
        };
        let rest = s
            .strip_prefix("{p:")
            .ok_or_else(|| bad("missing the {p:N} partition tag"))?;
        let (digits, rest) = rest
            .split_once("}-")
            .ok_or_else(|| bad("missing the {p:N} partition tag"))?;
        if digits.is_empty()
            || digits.len() > 4
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || (digits.len() > 1 && digits.starts_with('0'))
        {
            return Err(bad("the partition must be a number without leading zeros"));
        }
        let partition: u16 = digits.parse().map_err(|_| bad("partition out of range"))?;
        if partition >= PartitionCount::MAX {
            return Err(bad("partition out of range"));
        }
        if rest.len() != 36 || rest.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(bad("the uuid must be lowercase and hyphenated"));
        }
        let uuid = Uuid::try_parse(rest).map_err(|_| bad("the uuid part is malformed"))?;
        if uuid.get_version_num() != 7 {
            return Err(bad("the uuid must be version 7"));
        }
        Ok(ExecutionId {
            uuid,
            partition: PartitionId(partition),
        })
    }
}

impl Serialize for ExecutionId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ExecutionId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A worker's proof of ownership of one attempt: the execution id, the attempt
/// number (the fencing token: it only grows) and a random nonce that makes the
/// token unguessable.
///
/// Text form: `<execution id>.<attempt>.<16 hex digits>`. A token whose attempt
/// is no longer the running one, or whose nonce differs from the stored one, is
/// stale: operations presented with it change nothing and fail with
/// [`LeaseLost`](EngineError::LeaseLost) — except replays of the call that
/// ended the attempt, which `complete` and `fail` answer as documented on
/// [`EngineBackend`](crate::EngineBackend).
///
/// ```
/// use baton_core::{ExecutionId, LeaseToken, PartitionCount};
/// let id = ExecutionId::generate(PartitionCount::DEFAULT);
/// let token = LeaseToken::new(id.clone(), 2, 0xfeed);
/// let back: LeaseToken = token.to_string().parse().unwrap();
/// assert_eq!(back, token);
/// assert_eq!(back.attempt(), 2);
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct LeaseToken {
    id: ExecutionId,
    attempt: u32,
    nonce: u64,
}

impl LeaseToken {
    /// Builds a token. Backends call this when they grant a lease.
    pub fn new(id: ExecutionId, attempt: u32, nonce: u64) -> Self {
        LeaseToken { id, attempt, nonce }
    }

    /// A fresh random nonce for a new lease.
    pub fn random_nonce() -> u64 {
        Uuid::new_v4().as_u64_pair().0
    }

    /// `n` fresh random nonces, drawn from the operating system at once (a
    /// claim asks for one per execution it may take, and one draw each
    /// would be a system call each). Should the one draw fail, each is
    /// drawn as [`LeaseToken::random_nonce`] draws it.
    pub fn random_nonces(n: usize) -> Vec<u64> {
        let mut bytes = vec![0u8; n * 8];
        if getrandom::fill(&mut bytes).is_err() {
            return (0..n).map(|_| Self::random_nonce()).collect();
        }
        bytes
            .chunks_exact(8)
            .map(|c| {
                let mut word = [0u8; 8];
                word.copy_from_slice(c);
                u64::from_le_bytes(word)
            })
            .collect()
    }

    /// The execution this lease is for.
    pub fn execution_id(&self) -> &ExecutionId {
        &self.id
    }

    /// The attempt number this lease fences (1-based).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The random part of the token.
    pub fn nonce(&self) -> u64 {
        self.nonce
    }
}

impl fmt::Display for LeaseToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{:016x}", self.id, self.attempt, self.nonce)
    }
}

impl fmt::Debug for LeaseToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The nonce is a credential; keep it out of logs.
        write!(f, "LeaseToken({}, attempt {})", self.id, self.attempt)
    }
}

impl FromStr for LeaseToken {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self, EngineError> {
        let bad = || {
            EngineError::invalid(
                "lease",
                s,
                "a lease token looks like <execution id>.<attempt>.<16 hex digits>, exactly as claim returned it",
            )
        };
        let mut parts = s.rsplitn(3, '.');
        let nonce = parts.next().ok_or_else(bad)?;
        let attempt = parts.next().ok_or_else(bad)?;
        let id = parts.next().ok_or_else(bad)?;
        if nonce.len() != 16
            || !nonce
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(bad());
        }
        if attempt.is_empty() || !attempt.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let attempt: u32 = attempt.parse().map_err(|_| bad())?;
        if attempt == 0 {
            return Err(bad());
        }
        let nonce = u64::from_str_radix(nonce, 16).map_err(|_| bad())?;
        Ok(LeaseToken {
            id: id.parse().map_err(|_| bad())?,
            attempt,
            nonce,
        })
    }
}

impl Serialize for LeaseToken {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LeaseToken {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
