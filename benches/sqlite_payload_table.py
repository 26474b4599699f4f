#!/usr/bin/env python3
"""Would a payload table pay on SQLite? A probe with Python's sqlite3, outside Baton.

    benches/sqlite_payload_table.py [--rounds 5] [--batches 300] [--payload-bytes 1024]

Runs the row work of Baton's SQLite `steady` on a table shaped like
`executions` (the same partial indexes for claims, leases and finished
rows; forty-odd columns; WAL, synchronous = FULL): batches of 100
inserted in one transaction, claimed by one UPDATE … RETURNING, then
completed by one UPDATE … FROM (VALUES …) RETURNING, every returned row
carrying the payload as Baton's claim and complete answer it. Two
layouts, alternating round by round, a fresh file each:

- `inline`: the payload in the row, rewritten by every claim and
  completion;
- `table`: the payload in a table of its own, written once at insert and
  read back by a subquery in each RETURNING.

Prints the microseconds of wall time per execution for each layout
(sorted, then the median): the client's own work is in both alike.
"""

import argparse
import os
import statistics
import sqlite3
import tempfile
import time
import uuid

COLUMNS = 30
BATCH = 100


def run(layout, batches, payload, work):
    path = os.path.join(work, f"{layout}.db")
    for suffix in ("", "-wal", "-shm"):
        try:
            os.remove(path + suffix)
        except FileNotFoundError:
            pass
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("PRAGMA journal_mode = WAL")
    c.execute("PRAGMA synchronous = FULL")
    extra = ", ".join(f"c{i} INTEGER" for i in range(COLUMNS))
    inline = "payload BLOB NOT NULL," if layout == "inline" else ""
    c.execute(
        f"CREATE TABLE e (uuid BLOB PRIMARY KEY, ns TEXT, lane TEXT, kind TEXT, state TEXT, "
        f"prio INTEGER, {inline} tags TEXT, worker TEXT, nonce INTEGER, exp INTEGER, "
        f"result BLOB, ready INTEGER, {extra}) STRICT"
    )
    c.execute("CREATE INDEX claim ON e (ns, lane, prio DESC, ready, uuid) WHERE state = 'waiting'")
    c.execute("CREATE INDEX leases ON e (exp) WHERE state = 'running'")
    c.execute("CREATE INDEX adm ON e (ns, lane, state) WHERE state NOT IN ('waiting', 'running')")
    if layout == "table":
        c.execute("CREATE TABLE p (uuid BLOB PRIMARY KEY, payload BLOB NOT NULL) STRICT")
    body = os.urandom(payload)
    read = "payload" if layout == "inline" else "(SELECT payload FROM p WHERE p.uuid = e.uuid) AS payload"
    returned = ("uuid, ns, lane, kind, state, prio, tags, worker, nonce, exp, result, ready, "
                + ", ".join(f"c{i}" for i in range(COLUMNS)) + ", " + read)
    names = ", ".join(f"c{i}" for i in range(COLUMNS))
    ones = ", ".join(["1"] * COLUMNS)
    began = time.perf_counter()
    seq = 0
    for _ in range(batches):
        ids = [uuid.uuid1().bytes for _ in range(BATCH)]
        c.execute("BEGIN IMMEDIATE")
        if layout == "inline":
            c.executemany(
                f"INSERT INTO e (uuid, ns, lane, kind, state, prio, payload, tags, ready, {names}) "
                f"VALUES (?, 'ns', 'l', 'k', 'waiting', 0, ?, '{{}}', ?, {ones})",
                [(u, body, seq + j) for j, u in enumerate(ids)],
            )
        else:
            c.executemany(
                f"INSERT INTO e (uuid, ns, lane, kind, state, prio, tags, ready, {names}) "
                f"VALUES (?, 'ns', 'l', 'k', 'waiting', 0, '{{}}', ?, {ones})",
                [(u, seq + j) for j, u in enumerate(ids)],
            )
            c.executemany("INSERT INTO p VALUES (?, ?)", [(u, body) for u in ids])
        c.execute("COMMIT")
        seq += BATCH
        c.execute("BEGIN IMMEDIATE")
        claimed = c.execute(
            "UPDATE e SET state = 'running', worker = 'w', nonce = 1, exp = 99 WHERE uuid IN "
            "(SELECT uuid FROM e WHERE ns = 'ns' AND lane = 'l' AND state = 'waiting' "
            f"ORDER BY prio DESC, ready, uuid LIMIT {BATCH}) RETURNING {returned}"
        ).fetchall()
        c.execute("COMMIT")
        assert len(claimed) == BATCH and len(claimed[0][-1]) == payload
        c.execute("BEGIN IMMEDIATE")
        values = ", ".join("(?)" for _ in claimed)
        done = c.execute(
            "UPDATE e SET state = 'completed', worker = NULL, nonce = NULL, exp = NULL, "
            f"result = x'00' FROM (VALUES {values}) v WHERE e.uuid = v.column1 RETURNING {returned}",
            [row[0] for row in claimed],
        ).fetchall()
        c.execute("COMMIT")
        assert len(done) == BATCH and len(done[0][-1]) == payload
    elapsed = time.perf_counter() - began
    c.close()
    return elapsed / (batches * BATCH) * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--payload-bytes", type=int, default=1024)
    args = parser.parse_args()
    results = {"inline": [], "table": []}
    with tempfile.TemporaryDirectory() as work:
        for _ in range(args.rounds):
            for layout in results:
                results[layout].append(run(layout, args.batches, args.payload_bytes, work))
    for layout, us in results.items():
        print(f"{layout}: µs per execution {sorted(round(u, 1) for u in us)}, "
              f"median {statistics.median(us):.1f}")


if __name__ == "__main__":
    main()
