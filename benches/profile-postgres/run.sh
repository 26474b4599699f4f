#!/usr/bin/env bash
# One measured `baton bench --scenario steady` run on a throwaway Postgres
# with pg_stat_statements (see README.md here for starting it): resets the
# statistics, runs the bench into schema LABEL, then dumps WAL, table,
# statement and pg_waldump figures into $OUT (default: the current
# directory), where `port` and `workdir` name the server's port and data
# directory's parent.
# usage: run.sh LABEL BIN DURATION [extra bench args]; WORKERS=n (default 4)
set -euo pipefail
L=$1 BIN=$2 DUR=$3; shift 3
cd "${OUT:-.}"
P=$(cat port); W=$(cat workdir)
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
PSQL="psql -h 127.0.0.1 -p $P -U postgres -X -q -v ON_ERROR_STOP=1 postgres"
URL="postgres://postgres@127.0.0.1:$P/postgres?schema=$L"
$BIN --backend "$URL" migrate
$PSQL -c "CHECKPOINT"
$PSQL -Atc "SELECT pg_stat_reset(); SELECT pg_stat_reset_shared('wal'); SELECT pg_stat_statements_reset();" >/dev/null
sleep 1
START=$($PSQL -Atc "SELECT pg_current_wal_insert_lsn()")
$BIN --backend "$URL" --json bench --scenario steady --duration "$DUR" --workers "${WORKERS:-4}" "$@" | tail -n 1 > out-$L.json
sleep 2   # let backends flush their stats
END=$($PSQL -Atc "SELECT pg_current_wal_insert_lsn()")
echo "$START $END" > lsn-$L.txt
cat out-$L.json
$PSQL -Atc "SELECT pg_wal_lsn_diff('$END','$START')"
$PSQL -A -F$'\t' -c "SELECT * FROM pg_stat_wal" > wal-$L.tsv
$PSQL -A -F$'\t' -c "SELECT COALESCE(pi.inhparent::regclass::text, s.relname) AS tbl, sum(n_tup_ins) ins, sum(n_tup_upd) upd, sum(n_tup_hot_upd) hot, sum(n_tup_del) del, sum(n_dead_tup) dead, sum(n_live_tup) live, sum(autovacuum_count) av, sum(autoanalyze_count) aa FROM pg_stat_user_tables s LEFT JOIN pg_inherits pi ON pi.inhrelid = s.relid WHERE s.schemaname='$L' GROUP BY 1 ORDER BY 1" > tables-$L.tsv
$PSQL -A -F$'\t' -c "SELECT namespace, state, count(*) FROM $L.executions GROUP BY 1,2" > counts-$L.tsv
$PSQL -A -F$'\t' -c "SELECT count(*), count(*) FILTER (WHERE outcome='completed') FROM $L.attempts" > attempts-$L.tsv
$PSQL -A -F$'\t' -c "SELECT calls, round(total_exec_time::numeric,1) total_ms, round(mean_exec_time::numeric,3) mean_ms, rows, shared_blks_hit, shared_blks_read, shared_blks_dirtied, wal_records, wal_fpi, wal_bytes, toplevel, queryid, regexp_replace(left(query, 160), '\s+', ' ', 'g') q FROM pg_stat_statements ORDER BY total_exec_time DESC" > stmts-$L.tsv
# relfilenode -> name for waldump mapping
$PSQL -A -F$'\t' -c "SELECT c.relfilenode, c.relname, c.relkind, COALESCE(pi.inhparent::regclass::text,'') parent FROM pg_class c LEFT JOIN pg_inherits pi ON pi.inhrelid=c.oid WHERE c.relfilenode<>0" > relmap-$L.tsv
"$pg_bin/pg_waldump" -p $W/pg/pg_wal -s $START -e $END --stats=record > waldump-stats-$L.txt 2>&1 || true
"$pg_bin/pg_waldump" -p $W/pg/pg_wal -s $START -e $END > waldump-$L.txt 2>&1 || true
wc -l waldump-$L.txt
