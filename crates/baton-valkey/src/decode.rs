//! Replies of the function library turned into Baton's types. Stored values
//! outside Baton's vocabulary are `Corruption`, never defaulted.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;

use baton_core::{
    AttemptOutcome, AttemptRecord, Backoff, CapabilityName, EngineError, ExecutionId,
    ExecutionSnapshot, IdempotencyKey, Kind, Lane, Namespace, PartitionCount, PartitionId, Result,
    RetryPolicy, State, TagKey, Timestamp, WorkerId,
};
use redis::Value;
use uuid::Uuid;

pub fn corrupt(what: impl std::fmt::Display) -> EngineError {
    EngineError::corruption(format!(
        "unexpected reply from the Baton function library: {what}"
    ))
}

/// The bytes of a string reply.
pub fn bytes(v: &Value) -> Result<&[u8]> {
    match v {
        Value::BulkString(b) => Ok(b),
        Value::SimpleString(s) => Ok(s.as_bytes()),
        Value::Okay => Ok(b"OK"),
        other => Err(corrupt(format_args!("expected a string, got {other:?}"))),
    }
}

/// A string reply as UTF-8 text.
pub fn text(v: &Value) -> Result<&str> {
    std::str::from_utf8(bytes(v)?).map_err(|_| corrupt("a reply that is not UTF-8"))
}

/// An integer reply (or a string holding one).
pub fn int(v: &Value) -> Result<i64> {
    match v {
        Value::Int(n) => Ok(*n),
        other => text(other)?
            .parse::<f64>()
            .ok()
            .filter(|f| f.fract() == 0.0)
            .map(|f| f as i64)
            .ok_or_else(|| corrupt(format_args!("expected an integer, got {other:?}"))),
    }
}

/// An integer, or None for the empty string.
pub fn opt_int(v: &Value) -> Result<Option<i64>> {
    match v {
        Value::BulkString(b) if b.is_empty() => Ok(None),
        Value::Nil => Ok(None),
        other => int(other).map(Some),
    }
}

/// The elements of an array reply.
pub fn array(v: Value) -> Result<Vec<Value>> {
    match v {
        Value::Array(items) => Ok(items),
        Value::Set(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        other => Err(corrupt(format_args!("expected an array, got {other:?}"))),
    }
}

/// A partition's reported sequence and the lanes (`ns/lane`) it woke or
/// found empty.
pub fn seq_and_lanes(v: Value) -> Result<(i64, Vec<String>)> {
    let mut items = array(v)?.into_iter();
    let seq = int(&items
        .next()
        .ok_or_else(|| corrupt("empty sequence reply"))?)?;
    let lanes = items
        .map(|l| text(&l).map(str::to_owned))
        .collect::<Result<_>>()?;
    Ok((seq, lanes))
}

/// An execution hash as read with HGETALL.
#[derive(Debug)]
pub struct Fields(HashMap<String, Vec<u8>>);

impl Fields {
    /// From a flat field/value array; None when the hash does not exist.
    pub fn from_flat(v: Value) -> Result<Option<Fields>> {
        let items = match v {
            Value::Map(pairs) => pairs
                .into_iter()
                .flat_map(|(k, v)| [k, v])
                .collect::<Vec<_>>(),
            other => array(other)?,
        };
        if items.is_empty() {
            return Ok(None);
        }
        let mut map = HashMap::with_capacity(items.len() / 2);
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            let key = text(&k)?.to_owned();
            let value = match v {
                Value::BulkString(b) => b,
                other => bytes(&other)?.to_vec(),
            };
            map.insert(key, value);
        }
        Ok(Some(Fields(map)))
    }

    /// Sets one field.
    pub fn set(&mut self, k: &str, v: Vec<u8>) {
        self.0.insert(k.to_owned(), v);
    }

    fn raw(&self, k: &str) -> Option<&[u8]> {
        self.0.get(k).map(Vec::as_slice)
    }

    fn opt_str(&self, ctx: &str, k: &str) -> Result<Option<&str>> {
        self.raw(k)
            .map(|b| {
                std::str::from_utf8(b)
                    .map_err(|_| EngineError::corruption(format!("{ctx}: field {k} is not UTF-8")))
            })
            .transpose()
    }

    fn str(&self, ctx: &str, k: &str) -> Result<&str> {
        self.opt_str(ctx, k)?
            .ok_or_else(|| EngineError::corruption(format!("{ctx}: field {k} is missing")))
    }

    fn opt_num<T: FromStr>(&self, ctx: &str, k: &str) -> Result<Option<T>> {
        self.opt_str(ctx, k)?
            .map(|s| {
                s.parse::<T>().map_err(|_| {
                    EngineError::corruption(format!("{ctx}: field {k} holds {s:?}, not a number"))
                })
            })
            .transpose()
    }

    fn num<T: FromStr>(&self, ctx: &str, k: &str) -> Result<T> {
        self.opt_num(ctx, k)?
            .ok_or_else(|| EngineError::corruption(format!("{ctx}: field {k} is missing")))
    }

    fn opt_ts(&self, ctx: &str, k: &str) -> Result<Option<Timestamp>> {
        Ok(self.opt_num::<i64>(ctx, k)?.map(Timestamp::from_millis))
    }

    fn ts(&self, ctx: &str, k: &str) -> Result<Timestamp> {
        Ok(Timestamp::from_millis(self.num::<i64>(ctx, k)?))
    }

    fn parsed<T: FromStr>(&self, ctx: &str, k: &str) -> Result<T> {
        let s = self.str(ctx, k)?;
        s.parse::<T>()
            .map_err(|_| EngineError::corruption(format!("{ctx}: field {k} holds {s:?}")))
    }

    fn opt_parsed<T: FromStr>(&self, ctx: &str, k: &str) -> Result<Option<T>> {
        self.opt_str(ctx, k)?
            .map(|s| {
                s.parse::<T>()
                    .map_err(|_| EngineError::corruption(format!("{ctx}: field {k} holds {s:?}")))
            })
            .transpose()
    }

    fn opt_text(&self, ctx: &str, k: &str) -> Result<Option<String>> {
        Ok(self.opt_str(ctx, k)?.map(str::to_owned))
    }

    /// The execution's state field.
    pub fn state(&self, ctx: &str) -> Result<State> {
        self.parsed(ctx, "st")
    }
}

/// Rebuilds an execution id from a UUID (simple hex form) stored in
/// `partition`.
pub fn execution_id(
    uuid_hex: &str,
    partition: PartitionId,
    partitions: PartitionCount,
) -> Result<ExecutionId> {
    let uuid = Uuid::try_parse(uuid_hex)
        .map_err(|_| EngineError::corruption(format!("stored execution uuid {uuid_hex:?}")))?;
    ExecutionId::from_parts(uuid, partition, partitions)
}

/// A snapshot from an execution hash.
pub fn snapshot(id: ExecutionId, f: &Fields) -> Result<ExecutionSnapshot> {
    let ctx = format!("execution {id}");
    let ctx = ctx.as_str();
    let tags_raw = f.str(ctx, "tags")?;
    let tags: BTreeMap<String, String> = serde_json::from_str(tags_raw)
        .map_err(|e| EngineError::corruption(format!("{ctx}: tags {tags_raw:?}: {e}")))?;
    let tags = tags
        .into_iter()
        .map(|(k, v)| {
            TagKey::new(k.clone())
                .map(|k| (k, v))
                .map_err(|_| EngineError::corruption(format!("{ctx}: tag key {k:?}")))
        })
        .collect::<Result<BTreeMap<_, _>>>()?;
    let caps_raw = f.str(ctx, "caps")?;
    let caps: Vec<String> = serde_json::from_str(caps_raw)
        .map_err(|e| EngineError::corruption(format!("{ctx}: caps {caps_raw:?}: {e}")))?;
    let required_capabilities = caps
        .iter()
        .map(|c| {
            CapabilityName::new(c.clone())
                .map_err(|_| EngineError::corruption(format!("{ctx}: capability {c:?}")))
        })
        .collect::<Result<BTreeSet<_>>>()?;
    let jitter = match f.str(ctx, "bj")? {
        "1" => true,
        "0" => false,
        other => return Err(EngineError::corruption(format!("{ctx}: jitter {other:?}"))),
    };
    let snapshot = ExecutionSnapshot {
        namespace: f.parsed::<Namespace>(ctx, "ns")?,
        lane: f.parsed::<Lane>(ctx, "lane")?,
        kind: f.parsed::<Kind>(ctx, "kind")?,
        state: f.state(ctx)?,
        priority: f.num(ctx, "pri")?,
        payload: f.raw("pl").map(<[u8]>::to_vec).unwrap_or_default(),
        tags,
        attempts: f.num(ctx, "att")?,
        retry: RetryPolicy {
            max_attempts: f.num(ctx, "ma")?,
            backoff: Backoff {
                initial_ms: f.num(ctx, "bi")?,
                max_ms: f.num(ctx, "bm")?,
                multiplier: f.num(ctx, "bx")?,
                jitter,
            },
        },
        idempotency_key: f.opt_parsed::<IdempotencyKey>(ctx, "ik")?,
        required_capabilities,
        parent: f.opt_parsed::<ExecutionId>(ctx, "par")?,
        created_at: f.ts(ctx, "ca")?,
        updated_at: f.ts(ctx, "ua")?,
        run_at: f.opt_ts(ctx, "ra")?,
        deadline: f.opt_ts(ctx, "dl")?,
        finished_at: f.opt_ts(ctx, "fa")?,
        worker_id: f.opt_parsed::<WorkerId>(ctx, "wid")?,
        lease_expires_at: f.opt_ts(ctx, "le")?,
        result: f.raw("res").map(<[u8]>::to_vec),
        last_error: f.opt_text(ctx, "err")?,
        cancel_reason: f.opt_text(ctx, "cr")?,
        id,
    };
    let running = snapshot.state == State::Running;
    if running != (snapshot.worker_id.is_some() && snapshot.lease_expires_at.is_some()) {
        return Err(EngineError::corruption(format!(
            "{ctx}: state {} disagrees with its lease fields",
            snapshot.state
        )));
    }
    if snapshot.state.is_terminal() != snapshot.finished_at.is_some() {
        return Err(EngineError::corruption(format!(
            "{ctx}: state {} disagrees with finished_at",
            snapshot.state
        )));
    }
    Ok(snapshot)
}

/// The attempts recorded in an execution hash, oldest first.
pub fn attempts(id: &ExecutionId, f: &Fields) -> Result<Vec<AttemptRecord>> {
    let ctx = format!("execution {id}");
    let ctx = ctx.as_str();
    let count: u32 = f.num(ctx, "att")?;
    (1..=count)
        .map(|n| {
            let a = format!("a{n}");
            Ok(AttemptRecord {
                number: n,
                worker_id: f.parsed::<WorkerId>(ctx, &format!("{a}w"))?,
                started_at: f.ts(ctx, &format!("{a}s"))?,
                ended_at: f.opt_ts(ctx, &format!("{a}e"))?,
                outcome: f.opt_parsed::<AttemptOutcome>(ctx, &format!("{a}o"))?,
                error: f.opt_text(ctx, &format!("{a}x"))?,
            })
        })
        .collect()
}
