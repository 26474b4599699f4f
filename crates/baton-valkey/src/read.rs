//! Replies of the function library turned into Baton's types. Stored values
//! outside Baton's vocabulary are `Corruption`, never defaulted.

use std::collections::HashMap;
use std::str::FromStr;

use baton_core::raw::{rules, stored};
use baton_core::{
    AttemptOutcome, AttemptRecord, Backoff, ChildKey, DependencyPolicy, EngineError, ExecutionId,
    ExecutionSnapshot, IdempotencyKey, Kind, Lane, Namespace, PartitionCount, PartitionId, Result,
    RetryPolicy, State, Timestamp, WorkerId,
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

/// The fields of an execution record (and its payload, as `pl`).
#[derive(Debug)]
pub struct Fields(HashMap<String, Vec<u8>>);

impl Fields {
    /// From an execution record as stored: a MessagePack map whose keys are
    /// text and whose values are text (numbers, written by no Baton
    /// version, are read as their decimal text too).
    pub fn from_record(record: &[u8]) -> Result<Fields> {
        let mut r = MsgPack {
            buf: record,
            pos: 0,
        };
        let n = r.map_len()?;
        let mut map = HashMap::with_capacity(n + 1);
        for _ in 0..n {
            let k = r.value()?;
            let key =
                String::from_utf8(k).map_err(|_| corrupt("a record key that is not UTF-8"))?;
            let v = r.value()?;
            map.insert(key, v);
        }
        if r.pos != record.len() {
            return Err(corrupt("trailing bytes after an execution record"));
        }
        Ok(Fields(map))
    }

    /// Sets one field.
    pub fn set(&mut self, k: &str, v: Vec<u8>) {
        self.0.insert(k.to_owned(), v);
    }

    pub(crate) fn raw(&self, k: &str) -> Option<&[u8]> {
        self.0.get(k).map(Vec::as_slice)
    }

    pub(crate) fn opt_str(&self, ctx: &str, k: &str) -> Result<Option<&str>> {
        self.raw(k)
            .map(|b| {
                std::str::from_utf8(b)
                    .map_err(|_| EngineError::corruption(format!("{ctx}: field {k} is not UTF-8")))
            })
            .transpose()
    }

    pub(crate) fn str(&self, ctx: &str, k: &str) -> Result<&str> {
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

    pub(crate) fn parsed<T: FromStr>(&self, ctx: &str, k: &str) -> Result<T> {
        let s = self.str(ctx, k)?;
        s.parse::<T>()
            .map_err(|_| EngineError::corruption(format!("{ctx}: field {k} holds {s:?}")))
    }

    pub(crate) fn opt_parsed<T: FromStr>(&self, ctx: &str, k: &str) -> Result<Option<T>> {
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

/// A snapshot from an execution record.
/// The root of the flow `id` belongs to: its stored root, or itself.
pub fn snapshot_root(id: &ExecutionId, f: &Fields) -> Result<ExecutionId> {
    Ok(
        f.opt_parsed::<ExecutionId>(&format!("execution {id}"), "rt")?
            .unwrap_or_else(|| id.clone()),
    )
}

pub fn snapshot(id: ExecutionId, f: &Fields) -> Result<ExecutionSnapshot> {
    let ctx = format!("execution {id}");
    let ctx = ctx.as_str();
    // Absent tags and capabilities are none.
    let tags = stored::tags_json(ctx, f.opt_str(ctx, "tags")?.unwrap_or("{}"))?;
    let required_capabilities =
        stored::capabilities_json(ctx, f.opt_str(ctx, "caps")?.unwrap_or("[]"))?;
    let retry = match f.opt_str(ctx, "rp")? {
        Some(raw) => retry_policy(ctx, raw)?,
        None => legacy_retry_policy(ctx, f)?,
    };
    let state = f.state(ctx)?;
    let (custom_status, status_version) = custom_status(ctx, f)?;
    let snapshot = ExecutionSnapshot {
        session: rules::stored_session(ctx, f.opt_str(ctx, "ses")?)?,
        version: rules::stored_version(ctx, f.opt_str(ctx, "ver")?)?,
        namespace: f.parsed::<Namespace>(ctx, "ns")?,
        lane: f.parsed::<Lane>(ctx, "lane")?,
        kind: f.parsed::<Kind>(ctx, "kind")?,
        state,
        priority: f.num(ctx, "pri")?,
        payload: f.raw("pl").map(<[u8]>::to_vec).unwrap_or_default(),
        tags,
        attempts: f.num(ctx, "att")?,
        retry,
        idempotency_key: f.opt_parsed::<IdempotencyKey>(ctx, "ik")?,
        required_capabilities,
        parent: f.opt_parsed::<ExecutionId>(ctx, "par")?,
        child_key: f.opt_parsed::<ChildKey>(ctx, "ck")?,
        root: snapshot_root(&id, f)?,
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
        waiting_on: rules::blocked_on(
            state,
            f.opt_num::<u64>(ctx, "oc")?.unwrap_or(0),
            dependencies(ctx, f)?,
        ),
        suspension: suspension(ctx, state, f)?,
        pause: rules::stored_pause(ctx, state, f.opt_str(ctx, "pf")?, f.opt_str(ctx, "pv")?)?,
        custom_status,
        status_version,
        progress_seq: f.opt_num(ctx, "pq")?.unwrap_or(0),
        id,
    };
    snapshot.check_consistent()?;
    Ok(snapshot)
}

/// The custom status and its version from the fields `cs cv` (library
/// generation 7; absent: never set). A status is stored with a version of
/// at least 1, and a version only with a status.
fn custom_status(ctx: &str, f: &Fields) -> Result<(Option<Vec<u8>>, u64)> {
    let status = f.raw("cs").map(<[u8]>::to_vec);
    let version: u64 = f.opt_num(ctx, "cv")?.unwrap_or(0);
    if status.is_some() != (version > 0) {
        return Err(EngineError::corruption(format!(
            "{ctx}: custom status version {version} {} a status",
            if status.is_some() { "with" } else { "without" }
        )));
    }
    Ok((status, version))
}

/// The wait of a suspended execution from its fields `wp wc wt wo` (a
/// timeout stored empty is none, like an absent one).
fn suspension(ctx: &str, state: State, f: &Fields) -> Result<Option<baton_core::Suspension>> {
    let timeout_at = match f.opt_str(ctx, "wt")? {
        None | Some("") => None,
        Some(_) => f.opt_num::<i64>(ctx, "wt")?,
    };
    rules::stored_suspension(
        ctx,
        state,
        f.opt_str(ctx, "wp")?,
        f.opt_str(ctx, "wc")?,
        timeout_at,
        f.opt_str(ctx, "wo")?,
    )
}

/// A dependent's stored policy and counters (total, completed, finished
/// otherwise); `None` without dependencies (and for every record written
/// before library generation 4).
pub fn dependencies(ctx: &str, f: &Fields) -> Result<Option<(DependencyPolicy, u32, u32, u32)>> {
    let Some(policy) = f.opt_parsed::<DependencyPolicy>(ctx, "dp")? else {
        return Ok(None);
    };
    Ok(Some((
        policy,
        f.num(ctx, "dt")?,
        f.opt_num(ctx, "dd")?.unwrap_or(0),
        f.opt_num(ctx, "db")?.unwrap_or(0),
    )))
}

/// The stored retry policy: `max_attempts initial_ms max_ms multiplier
/// jitter(1|0)`.
fn retry_policy(ctx: &str, raw: &str) -> Result<RetryPolicy> {
    let bad = || EngineError::corruption(format!("{ctx}: retry policy {raw:?}"));
    let parts: Vec<&str> = raw.split(' ').collect();
    let [ma, bi, bm, bx, bj] = parts.as_slice() else {
        return Err(bad());
    };
    Ok(RetryPolicy {
        max_attempts: ma.parse().map_err(|_| bad())?,
        backoff: Backoff {
            initial_ms: bi.parse().map_err(|_| bad())?,
            max_ms: bm.parse().map_err(|_| bad())?,
            multiplier: bx.parse().map_err(|_| bad())?,
            jitter: match *bj {
                "1" => true,
                "0" => false,
                _ => return Err(bad()),
            },
        },
    })
}

/// The retry policy of a record written before it was one field (library
/// generation 1): five fields `ma bi bm bx bj`.
fn legacy_retry_policy(ctx: &str, f: &Fields) -> Result<RetryPolicy> {
    let jitter = match f.str(ctx, "bj")? {
        "1" => true,
        "0" => false,
        other => return Err(EngineError::corruption(format!("{ctx}: jitter {other:?}"))),
    };
    Ok(RetryPolicy {
        max_attempts: f.num(ctx, "ma")?,
        backoff: Backoff {
            initial_ms: f.num(ctx, "bi")?,
            max_ms: f.num(ctx, "bm")?,
            multiplier: f.num(ctx, "bx")?,
            jitter,
        },
    })
}

/// The attempts recorded in an execution record, oldest first.
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

/// Encodes an execution record as the function library stores it: a
/// MessagePack map of text fields (what `cmsgpack.pack` makes of a Lua
/// table of strings).
pub fn encode_record(fields: &[(&str, &[u8])]) -> Vec<u8> {
    fn head(out: &mut Vec<u8>, len: usize, fix: u8, fix_max: usize, tags: [u8; 3]) {
        if len <= fix_max {
            out.push(fix | len as u8);
        } else if len <= 0xff && tags[0] != 0 {
            out.push(tags[0]);
            out.push(len as u8);
        } else if len <= 0xffff {
            out.push(tags[1]);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(tags[2]);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
    }
    let mut out = Vec::with_capacity(
        64 + fields
            .iter()
            .map(|(k, v)| k.len() + v.len() + 3)
            .sum::<usize>(),
    );
    head(&mut out, fields.len(), 0x80, 15, [0, 0xde, 0xdf]);
    for (k, v) in fields {
        for s in [k.as_bytes(), v] {
            head(&mut out, s.len(), 0xa0, 31, [0xd9, 0xda, 0xdb]);
            out.extend_from_slice(s);
        }
    }
    out
}

/// The subset of MessagePack the function library writes: one map of text
/// (or, defensively, integer) values.
struct MsgPack<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl MsgPack<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| corrupt("a truncated execution record"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn be(&mut self, n: usize) -> Result<u64> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    fn map_len(&mut self) -> Result<usize> {
        let n = match self.byte()? {
            b @ 0x80..=0x8f => u64::from(b & 0x0f),
            0xde => self.be(2)?,
            0xdf => self.be(4)?,
            // An empty Lua table is packed as an empty array.
            0x90 => 0,
            other => return Err(corrupt(format_args!("record type byte {other:#x}"))),
        };
        usize::try_from(n).map_err(|_| corrupt("a record too large"))
    }

    /// One text or integer value, as bytes.
    fn value(&mut self) -> Result<Vec<u8>> {
        let tag = self.byte()?;
        let len = match tag {
            0xa0..=0xbf => u64::from(tag & 0x1f),
            0xd9 | 0xc4 => self.be(1)?,
            0xda | 0xc5 => self.be(2)?,
            0xdb | 0xc6 => self.be(4)?,
            0x00..=0x7f => return Ok(tag.to_string().into_bytes()),
            0xcc => return Ok(self.be(1)?.to_string().into_bytes()),
            0xcd => return Ok(self.be(2)?.to_string().into_bytes()),
            0xce => return Ok(self.be(4)?.to_string().into_bytes()),
            0xcf => return Ok(self.be(8)?.to_string().into_bytes()),
            0xd0 => return Ok((self.be(1)? as u8 as i8).to_string().into_bytes()),
            0xd1 => return Ok((self.be(2)? as u16 as i16).to_string().into_bytes()),
            0xd2 => return Ok((self.be(4)? as u32 as i32).to_string().into_bytes()),
            0xd3 => return Ok((self.be(8)? as i64).to_string().into_bytes()),
            0xe0..=0xff => return Ok((tag as i8).to_string().into_bytes()),
            other => return Err(corrupt(format_args!("record value type byte {other:#x}"))),
        };
        let len = usize::try_from(len).map_err(|_| corrupt("a record value too large"))?;
        Ok(self.take(len)?.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        let refs: Vec<(&str, &[u8])> = pairs.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
        Fields::from_record(&encode_record(&refs)).unwrap()
    }

    #[test]
    fn retry_policies_of_both_record_layouts_decode() {
        let want = RetryPolicy {
            max_attempts: 4,
            backoff: Backoff {
                initial_ms: 250,
                max_ms: 9000,
                multiplier: 1.5,
                jitter: true,
            },
        };
        let now = fields(&[("rp", "4 250 9000 1.5 1")]);
        assert_eq!(
            retry_policy("x", now.str("x", "rp").unwrap()).unwrap(),
            want
        );
        let old = fields(&[
            ("ma", "4"),
            ("bi", "250"),
            ("bm", "9000"),
            ("bx", "1.5"),
            ("bj", "1"),
        ]);
        assert_eq!(legacy_retry_policy("x", &old).unwrap(), want);
        for bad in [
            "",
            "4 250 9000 1.5",
            "4 250 9000 1.5 2",
            "4 x 9000 1.5 1",
            "4 250 9000 1.5 1 0",
        ] {
            let e = retry_policy("execution e", bad).unwrap_err();
            assert!(e.to_string().contains("retry policy"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn records_decode() {
        // {"a": "1", "bb": "xyz"} as cmsgpack packs it, plus an integer.
        let rec = [
            0x83, 0xa1, b'a', 0xa1, b'1', 0xa2, b'b', b'b', 0xa3, b'x', b'y', b'z', 0xa1, b'n',
            0xcd, 0x01, 0x00,
        ];
        let f = Fields::from_record(&rec).unwrap();
        assert_eq!(f.raw("a"), Some(&b"1"[..]));
        assert_eq!(f.raw("bb"), Some(&b"xyz"[..]));
        assert_eq!(f.raw("n"), Some(&b"256"[..]));
        let mut long = vec![0x81, 0xa1, b'p', 0xda, 0x01, 0x00];
        long.extend(std::iter::repeat_n(b'q', 256));
        assert_eq!(
            Fields::from_record(&long).unwrap().raw("p").unwrap().len(),
            256
        );
        assert!(Fields::from_record(&rec[..5]).is_err(), "truncated");
        let big = "v".repeat(70_000);
        let enc = encode_record(&[("a", b"1"), ("p", big.as_bytes()), ("e", b"")]);
        let back = Fields::from_record(&enc).unwrap();
        assert_eq!(back.raw("a"), Some(&b"1"[..]));
        assert_eq!(back.raw("p").unwrap().len(), 70_000);
        assert_eq!(back.raw("e"), Some(&b""[..]));
        let many: Vec<(String, Vec<u8>)> =
            (0..20).map(|i| (format!("k{i}"), vec![b'x'; 40])).collect();
        let refs: Vec<(&str, &[u8])> = many
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        assert_eq!(
            Fields::from_record(&encode_record(&refs)).unwrap().0.len(),
            20
        );
        assert!(Fields::from_record(&[0xc0]).is_err(), "not a map");
    }
}
