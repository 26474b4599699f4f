#!/usr/bin/env bash
# Prices table layouts for Postgres's hot path outside Baton, with pgbench
# on a throwaway server (see ../README.md for starting one): each pgbench
# transaction submits 100 executions, claims 100 and completes them, as
# `steady` does per batch, in three layouts alternating round by round:
#
#   record  Baton's layout today (the real migrated schema);
#   lean    the same without the admin list index and the retention indexes;
#   queue   a queue row and a lease row beside the record (queue.pgbench).
#
# Prints, per run, executions per second and, per execution, the machine's
# CPU (both cores: the server's processes and pgbench's), WAL records and
# WAL bytes; then the medians per layout.
# usage: run.sh PORT BATON_BIN [ROUNDS=5] [SECONDS=10] [CLIENTS=4]
set -euo pipefail
PORT=$1 BIN=$2 ROUNDS=${3:-5} SECS=${4:-10} CLIENTS=${5:-4}
HERE=$(cd "$(dirname "$0")" && pwd)
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
DB=${DB:-postgres}
PSQL="psql -h 127.0.0.1 -p $PORT -U postgres -X -q -v ON_ERROR_STOP=1 -At $DB"
for s in record lean queue; do
    $PSQL -c "DROP SCHEMA IF EXISTS probe_$s CASCADE"
    $BIN --backend "postgres://postgres@127.0.0.1:$PORT/$DB?schema=probe_$s" migrate >/dev/null
done
$PSQL -f "$HERE/common.sql" >/dev/null
$PSQL -f "$HERE/setup.sql" >/dev/null
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat; }
results=$(mktemp)
for r in $(seq 1 "$ROUNDS"); do
    for s in record lean queue; do
        script=$s; [ "$s" = lean ] && script=record
        sed "s/SCHEMA/probe_$s/g" "$HERE/$script.pgbench" > "$results.sql"
        $PSQL -c "TRUNCATE probe_$s.executions, probe_$s.attempts" \
              -c "DO \$\$ BEGIN IF to_regclass('probe_$s.queue') IS NOT NULL THEN TRUNCATE probe_$s.queue, probe_$s.leases; END IF; END \$\$" \
              -c "CHECKPOINT"
        w0=$($PSQL -c "SELECT wal_records || ' ' || wal_bytes FROM pg_stat_wal")
        c0=$(busy)
        tps=$("$pg_bin/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -n -M prepared \
              -c "$CLIENTS" -j 2 -T "$SECS" -f "$results.sql" "$DB" 2>/dev/null \
              | awk '/^tps/{print $3}')
        c1=$(busy)
        w1=$($PSQL -c "SELECT wal_records || ' ' || wal_bytes FROM pg_stat_wal")
        done=$($PSQL -c "SELECT count(*) FROM probe_$s.executions WHERE state = 'completed'")
        hz=$(getconf CLK_TCK)
        python3 - "$s" "$tps" "$done" "$c0" "$c1" "$hz" $w0 $w1 "$SECS" >> "$results" <<'PY'
import sys
s, tps, done, c0, c1, hz, r0, b0, r1, b1, secs = sys.argv[1:]
done = int(done); cpu_us = (int(c1) - int(c0)) / int(hz) * 1e6
print(s, round(done / float(secs)), round(cpu_us / done, 1),
      round((int(r1) - int(r0)) / done, 1), round((int(b1) - int(b0)) / done))
PY
        tail -n 1 "$results"
    done
done
echo "layout  median: exec/s  cpu_us/exec  wal_records/exec  wal_bytes/exec"
python3 - "$results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
for s in ("record", "lean", "queue"):
    mine = [r for r in rows if r[0] == s]
    cols = [statistics.median(float(r[i]) for r in mine) for i in range(1, 5)]
    print(s, *cols)
PY
rm -f "$results" "$results.sql"
