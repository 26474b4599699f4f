// graphile-worker on Postgres (see common.mjs).
//
//   node graphile.mjs --url postgres://… [--concurrency 10] [--local-queue 200]
//
// Tuned as graphile-worker's performance documentation recommends for
// throughput: a local queue (`localQueue.size`: jobs fetched and locked in
// batches) and batched completions (`completeJobBatchDelay`), bulk adds
// (`addJobs`). graphile-worker deletes a job when it completes: it keeps
// no result and no history of attempts (see README.md, fairness notes).
import { Logger, makeWorkerUtils, run as runWorker } from "graphile-worker";
import { args, run } from "./common.mjs";

const opts = args({ url: "", concurrency: 10, localQueue: 200, completeDelay: 0 });
// Its default logger prints a line per job; only warnings and errors here.
const logger = new Logger(() => (level, message) => {
  if (level === "error" || level === "warning") process.stderr.write(`graphile-worker: ${message}\n`);
});
const utils = await makeWorkerUtils({ connectionString: opts.url, logger });
await utils.migrate();
let runner;

await run("graphile-worker", opts, {
  async submit(jobs) {
    await utils.addJobs(jobs.map((payload) => ({ identifier: "noop", payload })));
  },
  async start(onStarted, onCompleted) {
    runner = await runWorker({
      connectionString: opts.url,
      concurrency: opts.concurrency,
      maxPoolSize: opts.concurrency + 2,
      noHandleSignals: true,
      logger,
      pollInterval: 1000,
      taskList: { noop: async (payload) => onStarted(payload) },
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
