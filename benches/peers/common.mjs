// The steady loop every peer runs, shaped like `baton bench --scenario
// steady`: producers submit batches while the backlog (submitted but not
// completed) is under a bound, workers run a no-op handler, the first
// tenth of the run is warm-up, and the figure is completions per second
// over the rest. One JSON line on stdout at the end; "ready" on stderr
// once set-up is done, so the driver measures the server from there.

export function args(defaults) {
  const out = { duration: 8, producers: 2, batch: 100, payload: 1024, backlog: 800, ...defaults };
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
  return out;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// submit(n, payload): creates n jobs in one call.
// start(onCompleted): starts the workers; onCompleted(n) counts n jobs
// whose completion the queue has recorded.
// stop(): stops the workers and closes connections.
export async function steady(system, opts, { submit, start, stop }) {
  const counts = { submitted: 0, completed: 0 };
  let stopping = false;
  await start((n = 1) => {
    counts.completed += n;
  });
  process.stderr.write("ready\n");
  const payload = "x".repeat(opts.payload);
  const producers = [];
  for (let p = 0; p < opts.producers; p++) {
    producers.push(
      (async () => {
        while (!stopping) {
          if (counts.submitted - counts.completed >= opts.backlog) {
            await sleep(1);
            continue;
          }
          await submit(opts.batch, payload);
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
  const counted = counts.completed - warm.completed;
  const submitted = counts.submitted - warm.submitted;
  stopping = true;
  await Promise.all(producers);
  await stop();
  const round1 = (x) => Math.round(x * 10) / 10;
  process.stdout.write(
    JSON.stringify({
      system,
      scenario: "steady",
      executions: counts.completed,
      submitted: counts.submitted,
      duration_s: Math.round(seconds * 1000) / 1000,
      throughput_per_sec: round1(counted / seconds),
      submit_per_sec: round1(submitted / seconds),
      options: opts,
    }) + "\n",
    // A timer or socket a library leaves behind must not keep the run
    // alive once its figures are out.
    () => process.exit(0),
  );
}
