// The loops every peer runs, shaped like `baton bench`:
//
// - `--scenario steady`: producers submit batches while the backlog
//   (submitted but not completed) is under a bound, workers run a no-op
//   handler, the first tenth of the run is warm-up, and the figure is
//   completions per second over the rest.
// - `--scenario latency --rate R`: open-loop offered load of R jobs per
//   second, submitted every millisecond (as `baton bench` does; at most
//   256 submissions in flight, as there); each job carries the instant it was
//   *due* (not sent), so a stalled producer shows up as latency. The
//   figures are submit→start percentiles: from due to the handler's start.
//
// One JSON line on stdout at the end; "ready" on stderr once set-up is
// done, so the driver measures the server from there.

export function args(defaults) {
  const out = {
    scenario: "steady",
    duration: 8,
    producers: 2,
    batch: 100,
    payload: 1024,
    backlog: 800,
    rate: 1000,
    ...defaults,
  };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i].replace(/^--/, "");
    // --local-queue sets localQueue.
    const key = flag.replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(key in out)) throw new Error(`unknown option --${flag}; known: ${Object.keys(out).join(", ")}`);
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`--${flag} needs a value`);
    out[key] = typeof out[key] === "number" ? Number(value) : value;
  }
  if (!["steady", "latency"].includes(out.scenario)) {
    throw new Error(`--scenario ${out.scenario}: steady or latency`);
  }
  return out;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The system's parts:
// - submit(jobs): creates the jobs (an array of job data objects) in one call;
// - start(onStarted, onCompleted): starts the workers; the handler calls
//   onStarted(data) when it begins a job, and onCompleted(n) counts n jobs
//   whose completion the queue has recorded;
// - stop(): stops the workers and closes connections.
export async function run(system, opts, parts) {
  const counts = { submitted: 0, completed: 0 };
  const started = [];
  let measuring = opts.scenario === "latency";
  await parts.start(
    (data) => {
      if (measuring && data && typeof data.t === "number") started.push(Date.now() - data.t);
    },
    (n = 1) => {
      counts.completed += n;
    },
  );
  process.stderr.write("ready\n");
  const payload = "x".repeat(opts.payload);
  const report =
    opts.scenario === "steady"
      ? await steady(opts, parts, counts, payload)
      : await latency(opts, parts, counts, payload);
  measuring = false;
  await parts.stop();
  started.sort((a, b) => a - b);
  const q = (p) => (started.length ? started[Math.min(started.length - 1, Math.floor(p * started.length))] : null);
  const round1 = (x) => Math.round(x * 10) / 10;
  const doc = {
    system,
    scenario: opts.scenario,
    executions: counts.completed,
    submitted: counts.submitted,
    duration_s: Math.round(report.seconds * 1000) / 1000,
    throughput_per_sec: round1(report.counted / report.seconds),
    submit_per_sec: round1(report.submitted / report.seconds),
    options: opts,
  };
  if (opts.scenario === "latency") {
    Object.assign(doc, { rate: opts.rate, p50_ms: q(0.5), p95_ms: q(0.95), p99_ms: q(0.99), max_ms: q(1) });
  }
  // A timer or socket a library leaves behind must not keep the run alive
  // once its figures are out.
  process.stdout.write(JSON.stringify(doc) + "\n", () => process.exit(0));
}

async function steady(opts, parts, counts, payload) {
  let stopping = false;
  const producers = [];
  for (let p = 0; p < opts.producers; p++) {
    producers.push(
      (async () => {
        while (!stopping) {
          if (counts.submitted - counts.completed >= opts.backlog) {
            await sleep(1);
            continue;
          }
          const jobs = [];
          for (let i = 0; i < opts.batch; i++) jobs.push({ p: payload });
          await parts.submit(jobs);
          counts.submitted += opts.batch;
        }
      })(),
    );
  }
  const began = performance.now();
  const total = opts.duration * 1000;
  await sleep(total / 10);
  const warm = { ...counts };
  const windowBegan = performance.now();
  await sleep(Math.max(0, total - (performance.now() - began)));
  const seconds = (performance.now() - windowBegan) / 1000;
  const report = {
    seconds,
    counted: counts.completed - warm.completed,
    submitted: counts.submitted - warm.submitted,
  };
  stopping = true;
  await Promise.all(producers);
  return report;
}

async function latency(opts, parts, counts, payload) {
  const total = opts.duration * 1000;
  const began = Date.now();
  const inFlight = new Set();
  let offered = 0;
  while (Date.now() - began < total) {
    const due = Math.floor(((Date.now() - began) / 1000) * opts.rate);
    while (offered < due) {
      const n = Math.min(due - offered, 1000);
      const jobs = [];
      // The i-th job (from 1) is due at i / rate seconds.
      for (let i = offered + 1; i <= offered + n; i++) jobs.push({ t: began + (i * 1000) / opts.rate, p: payload });
      offered += n;
      const call = parts.submit(jobs).then(() => {
        counts.submitted += n;
        inFlight.delete(call);
      });
      inFlight.add(call);
      if (inFlight.size >= 256) await Promise.race(inFlight);
    }
    await sleep(1);
  }
  await Promise.all(inFlight);
  // Let the last jobs start before the workers stop.
  const deadline = Date.now() + 5000;
  while (counts.completed < counts.submitted && Date.now() < deadline) await sleep(10);
  const seconds = (Date.now() - began) / 1000;
  return { seconds, counted: counts.completed, submitted: counts.submitted };
}
