// graphile-worker on Postgres, steady (see common.mjs).
//
//   node graphile.mjs --url postgres://… [--concurrency 10] [--local-queue 200]
//
// Tuned as graphile-worker's performance documentation recommends for
// throughput: a local queue (`localQueue.size`: jobs fetched and locked in
// batches) and batched completions (`completeJobBatchDelay`), bulk adds
// (`addJobs`). graphile-worker deletes a job when it completes: it keeps
// no result and no history of attempts (see README.md, fairness notes).
import { Logger, makeWorkerUtils, run } from "graphile-worker";
import { args, steady } from "./common.mjs";

const opts = args({ url: "", concurrency: 10, localQueue: 200, completeDelay: 0 });
// Its default logger prints a line per job; only warnings and errors here.
const logger = new Logger(() => (level, message) => {
  if (level === "error" || level === "warning") process.stderr.write(`graphile-worker: ${message}\n`);
});
const utils = await makeWorkerUtils({ connectionString: opts.url, logger });
await utils.migrate();
let runner;

await steady("graphile-worker", opts, {
  async submit(n, payload) {
    const jobs = [];
    for (let i = 0; i < n; i++) jobs.push({ identifier: "noop", payload: { p: payload } });
    await utils.addJobs(jobs);
  },
  async start(onCompleted) {
    runner = await run({
      connectionString: opts.url,
      concurrency: opts.concurrency,
      maxPoolSize: opts.concurrency + 2,
      noHandleSignals: true,
      logger,
      pollInterval: 1000,
      taskList: { noop: async () => {} },
      preset: {
        worker: {
          localQueue: { size: opts.localQueue },
          completeJobBatchDelay: opts.completeDelay,
          failJobBatchDelay: opts.completeDelay,
        },
      },
    });
    runner.events.on("job:complete", ({ error }) => {
      if (!error) onCompleted(1);
    });
  },
  async stop() {
    await runner.stop();
    await utils.release();
  },
});
