#!/usr/bin/env python3
"""Times bulk cancel then bulk replay of N executions over HTTP against a
fresh `baton serve` on a fresh SQLite file (FULL), for each binary given,
alternating A and B, RUNS times. Usage: benches/bulk.py A_BIN B_BIN RUNS N"""
import json, os, socket, subprocess, sys, tempfile, time, urllib.request, statistics, shutil

def port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def call(base, method, path, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())

def run(binary, n):
    d = tempfile.mkdtemp(dir="/var/tmp")
    p = port()
    env = dict(os.environ, BATON_LISTEN=f"127.0.0.1:{p}", BATON_BACKEND=f"sqlite://{d}/b.db")
    srv = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{p}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1); break
            except Exception:
                time.sleep(0.1)
        for i in range(0, n, 1000):
            call(base, "POST", "/v1/executions/batch",
                 {"executions": [{"kind": "k", "lane": "bulk"} for _ in range(min(1000, n - i))]})
        out = {}
        for op in ["cancel", "replay"]:
            t = time.monotonic(); cursor = None; changed = 0
            while True:
                r = call(base, "POST", f"/v1/executions/bulk/{op}",
                         {"filter": {"lane": "bulk"}, "limit": 1000, "cursor": cursor})
                changed += r["changed"]; cursor = r["next_cursor"]
                if cursor is None: break
            out[op] = (time.monotonic() - t, changed)
        return out
    finally:
        srv.terminate(); srv.wait(); shutil.rmtree(d, ignore_errors=True)

a, b, runs, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
res = {"A": {"cancel": [], "replay": []}, "B": {"cancel": [], "replay": []}}
for i in range(runs):
    for name, binary in (("A", a), ("B", b)):
        out = run(binary, n)
        for op, (secs, changed) in out.items():
            assert changed == n, (name, op, changed)
            res[name][op].append(n / secs)
            print(f"{name} {op} {n / secs:,.0f}/s", flush=True)
for op in ["cancel", "replay"]:
    ma, mb = statistics.median(res["A"][op]), statistics.median(res["B"][op])
    print(f"{op}: A median {ma:,.0f}/s [{min(res['A'][op]):,.0f}-{max(res['A'][op]):,.0f}]  "
          f"B median {mb:,.0f}/s [{min(res['B'][op]):,.0f}-{max(res['B'][op]):,.0f}]  B/A {mb/ma:.2f}")
