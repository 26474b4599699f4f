#!/usr/bin/env bash
# Several `baton bench --scenario latency` processes at once on one
# Postgres, each with one worker and its own namespace, for each binary
# given, alternating, ROUNDS times; prints per binary and round the summed
# throughput and the median (over the processes) of submit→start p50 and
# p99. A fresh schema per run, dropped after it. What several submitting
# processes cost each other (RESULTS, "Postgres: wake-ups sent after the
# commit, measured and left out").
# usage: multi_latency.sh PORT ROUNDS PROCS RATE BIN...
#   PORT: a throwaway server on 127.0.0.1 (trust auth, user postgres)
set -euo pipefail
P=$1 R=$2 K=$3 RATE=$4; shift 4
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for i in $(seq 1 "$R"); do
  for bin in "$@"; do
    S="ml_${i}_$RANDOM"
    URL="postgres://postgres@127.0.0.1:$P/postgres?schema=$S"
    "$bin" --backend "$URL" migrate >/dev/null
    for k in $(seq 1 "$K"); do
      "$bin" --backend "$URL" --json bench --scenario latency --rate "$RATE" --duration 8 \
        --workers 1 > "$out/$k.json" &
    done
    wait
    python3 - "$bin" "$i" "$out" <<'PY'
import glob, json, statistics, sys
runs = [json.loads(open(f).read().strip().splitlines()[-1]) for f in sorted(glob.glob(sys.argv[3] + "/*.json"))]
print(sys.argv[1], "round", sys.argv[2],
      "throughput", round(sum(r["throughput_per_sec"] for r in runs)),
      "p50", round(statistics.median(r["p50_ms"] for r in runs), 1),
      "p99", round(statistics.median(r["p99_ms"] for r in runs), 1))
PY
    rm -f "$out"/*.json
    psql -h 127.0.0.1 -p "$P" -U postgres -Atq -c "SET client_min_messages = warning" -c "DROP SCHEMA $S CASCADE" postgres >/dev/null
  done
done
